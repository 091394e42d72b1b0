"""The ``training:`` section of noria.yaml.

Keeps the existing keys (``train``, ``seed``, ``trials``) with the same meaning and adds the
holdout, validation, budget, slice and baseline settings. Every key has a default.

.. code-block:: yaml

    training:
      train: {from: 2013-01, to: 2013-06}
      test: {from: 2013-07, to: 2013-12}
      validation_fraction: 0.15      # or validation_months: 1
      seed: 42
      trials: 20                     # 0 = no tuning, default parameters
      timeout_seconds: null          # a wall-clock cap on tuning (breaks exact reruns)
      slices: [origin, carrier]
      hour_band_column: sched_hour
      baselines: [majority_rate, logistic_regression, context_lightgbm]
      baseline_features: [sched_hour, day_of_week, month, distance, carrier, origin, dest]
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from noria.periods import Period

# Kept here, not in baselines.py, so that loading the config never imports LightGBM.
BaselineKind = Literal["majority_rate", "logistic_regression", "context_lightgbm"]
BASELINE_KINDS: tuple[BaselineKind, ...] = ("majority_rate", "logistic_regression", "context_lightgbm")


class TrainingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    train: Period = Period(start="2013-01", end="2013-06")
    test: Period = Period(start="2013-07", end="2013-12")
    time_column: str = "event_timestamp"
    # The validation slice (early stopping, tuning) is the end of the train period:
    # the last share of its rows, or its last N months. Default: 15 % of rows.
    validation_fraction: float | None = Field(default=None, gt=0.0, lt=0.5)
    validation_months: int | None = Field(default=None, ge=1)
    seed: int = 42
    trials: int = Field(default=20, ge=0)
    timeout_seconds: float | None = Field(default=None, gt=0)
    tune_metric: Literal["auc", "binary_logloss"] = "auc"
    max_boost_rounds: int = Field(default=1000, ge=1)
    early_stopping_rounds: int = Field(default=50, ge=1)
    # One LightGBM thread by default: on a shared or busy machine OpenMP threads that spin
    # while waiting slow training down by an order of magnitude (measured 1.5 s with 1 thread
    # vs 33-70 s with 2 on a loaded 2-core host). Raise it on a dedicated machine.
    num_threads: int = Field(default=1, ge=1)
    refit_on_full_train: bool = True
    slices: list[str] = Field(default_factory=lambda: ["origin", "carrier"])
    hour_band_column: str | None = "sched_hour"
    min_slice_rows: int = Field(default=200, ge=1)
    calibration_bins: int = Field(default=10, ge=2, le=50)
    baselines: list[BaselineKind] = Field(default_factory=lambda: list(BASELINE_KINDS))
    # Features of the context_lightgbm baseline; without them that baseline is skipped.
    baseline_features: list[str] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TrainingSettings:
        if self.test.start <= self.train.end:
            where = "before" if self.test.end < self.train.start else "overlapping"
            raise ValueError(
                f"the test period ({self.test.start}..{self.test.end}) is {where} the train period "
                f"({self.train.start}..{self.train.end}); test must start after train ends"
            )
        if self.validation_fraction is not None and self.validation_months is not None:
            raise ValueError("set validation_fraction or validation_months, not both")
        return self

    def baseline_kinds(self) -> list[str]:
        """Baselines to fit; ``context_lightgbm`` only when its features are configured."""
        return [b for b in self.baselines if b != "context_lightgbm" or self.baseline_features]
