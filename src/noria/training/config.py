"""The ``training:`` and ``model:`` sections of noria.yaml (pydantic models only: importing this
module loads no LightGBM, Optuna or scikit-learn).

The ``model:`` section says what the model is: its registry name, its task and what it predicts
(the target). In the ``training:`` section, periods are written in the project's windows
(``windows:``; months by default) and are required to train; every other key has a default.
Nothing here knows a dataset: no default periods, slices or baseline features.

.. code-block:: yaml

    training:
      train: {from: 2024-01, to: 2024-07}     # windows of the project's unit
      test: {from: 2024-08, to: 2024-08}
      validation_fraction: 0.15      # or validation_windows: 1
      seed: 42
      trials: 20                     # 0 = no tuning, default parameters
      timeout_seconds: null          # a wall-clock cap on tuning (breaks exact reruns)
      slices: [store, channel]       # columns of the training set
      hour_band_column: hour         # an hour-of-day column, sliced by bands of the day
      baselines: [majority_rate, logistic_regression, {name: last_week, function: shop:last_week}]
      baseline_features: [hour, weekday, store]
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from noria.errors import ConfigError
from noria.names import MODEL_NAME_FIX, model_name_problem
from noria.periods import Period


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# Kept here, not in baselines.py, so that loading the config never imports LightGBM.
BaselineKind = Literal[
    "majority_rate", "class_prior", "mean", "logistic_regression", "linear_regression", "context_lightgbm"
]
BASELINE_KINDS: tuple[BaselineKind, ...] = (
    "majority_rate",
    "class_prior",
    "mean",
    "logistic_regression",
    "linear_regression",
    "context_lightgbm",
)
# LightGBM metrics early stopping and tuning may use, per task (the first is the default).
TUNE_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("auc", "binary_logloss", "average_precision"),
    "multiclass": ("multi_logloss", "multi_error"),
    "regression": ("rmse", "l1", "l2"),
}
# The built-in baselines each task can fit, the default ones first.
TASK_BASELINES: dict[str, tuple[str, ...]] = {
    "binary": ("majority_rate", "logistic_regression", "context_lightgbm"),
    "multiclass": ("class_prior", "logistic_regression", "context_lightgbm"),
    "regression": ("mean", "linear_regression", "context_lightgbm"),
}


class BaselineFunction(BaseModel):
    """A project's own baseline: ``function(frame) -> predictions`` (one per row of the holdout frame)."""

    model_config = ConfigDict(extra="forbid")

    # The baseline's name in tables and metric names (baseline_<name>_...).
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    # module:function(frame) -> one prediction per row (probabilities, class probabilities, values).
    function: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
    # What it predicts, in words (the model card).
    description: str = ""


class TrainingSettings(BaseModel):
    """The training pipeline's periods, validation, tuning, slices and baselines."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    # Windows (``windows.unit``) to learn from (train) and to judge on (test); required to train.
    train: Period | None = None
    test: Period | None = None
    # The training set's time column (the prediction time the features layer computes).
    time_column: str = "event_timestamp"
    # The validation slice (early stopping, tuning) is the end of the train period:
    # the last share of its rows (validation_fraction), or its last N windows (validation_windows).
    # Default: 15 % of rows.
    validation_fraction: float | None = Field(default=None, gt=0.0, lt=0.5)
    validation_windows: int | None = Field(default=None, ge=1)
    # The seed of tuning and training: the same inputs give the same model.
    seed: int = 42
    # Optuna trials; 0 trains with default parameters.
    trials: int = Field(default=20, ge=0)
    # A wall-clock cap on tuning (seconds); it makes reruns machine-dependent.
    timeout_seconds: float | None = Field(default=None, gt=0)
    # LightGBM's metric for early stopping and tuning; None: the task's (auc for binary).
    tune_metric: str | None = None
    # Most boosting rounds (max_boost_rounds); stop after early_stopping_rounds without improvement.
    max_boost_rounds: int = Field(default=1000, ge=1)
    early_stopping_rounds: int = Field(default=50, ge=1)
    # One LightGBM thread by default: on a shared or busy machine OpenMP threads that spin
    # while waiting slow training down by an order of magnitude (measured 1.5 s with 1 thread
    # vs 33-70 s with 2 on a loaded 2-core host). Raise it on a dedicated machine.
    num_threads: int = Field(default=1, ge=1)
    # Tuning trials learn on at most this many fit rows and judge on at most a quarter as many
    # validation rows (seeded random samples); the final model learns on all of them. About one
    # year of a busy table: a trial costs the same on ten years; None tunes on every row.
    tune_sample_rows: int | None = Field(default=400_000, ge=1_000)
    # Baselines learn on at most this many training rows, a seeded sample (the same rows on every
    # rerun; fit and validation rows as the split has them): a logistic regression on millions of
    # rows costs minutes and tells no more about what the model adds. None: every row.
    baseline_sample_rows: int | None = Field(default=400_000, ge=1_000)
    # The monitoring reference profile (feature and score distributions) summarises at most this
    # many training rows, a seeded sample: scoring millions of rows on one thread only to fill
    # histograms costs minutes and changes nothing a drift test can see. None: every row.
    profile_sample_rows: int | None = Field(default=200_000, ge=100)
    # Refit on fit + validation for the best number of rounds (the newest weeks are not left out).
    refit_on_full_train: bool = True
    # Columns of the training set to report holdout metrics by (e.g. a region, a product line).
    slices: list[str] = Field(default_factory=list)
    # An hour-of-day column (0-23) to slice by bands of the day (night, morning, ...).
    hour_band_column: str | None = None
    # A slice value with fewer holdout rows is reported as skipped, not measured.
    min_slice_rows: int = Field(default=200, ge=1)
    # Equal-width probability bins of the calibration curve.
    calibration_bins: int = Field(default=10, ge=2, le=50)
    # Built-in baselines by name, or a project's own ({name, function}); None: the task's defaults.
    baselines: list[BaselineKind | BaselineFunction] | None = None
    # Features of the context_lightgbm baseline; without them that baseline is skipped.
    baseline_features: list[str] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TrainingSettings:
        if self.train is not None and self.test is not None and self.test.start <= self.train.end:
            where = "before" if self.test.end < self.train.start else "overlapping"
            raise ValueError(
                f"the test period ({self.test.start}..{self.test.end}) is {where} the train period "
                f"({self.train.start}..{self.train.end}); test must start after train ends"
            )
        if self.validation_fraction is not None and self.validation_windows is not None:
            raise ValueError("set validation_fraction or validation_windows, not both")
        return self

    def baseline_kinds(self, task: str = "binary") -> list[str]:
        """Built-in baselines to fit; ``context_lightgbm`` only when its features are configured."""
        chosen = self.baselines if self.baselines is not None else list(TASK_BASELINES[task])
        return [b for b in chosen if isinstance(b, str) and (b != "context_lightgbm" or self.baseline_features)]

    def metric_for(self, task: str = "binary") -> str:
        """LightGBM's metric for early stopping and tuning: ``tune_metric``, else the task's."""
        return self.tune_metric or TUNE_METRICS[task][0]

    def baseline_functions(self) -> list[BaselineFunction]:
        """The project's own baselines."""
        return [b for b in self.baselines or [] if isinstance(b, BaselineFunction)]

    def periods(self) -> tuple[Period, Period]:
        """(train, test), or a clear error when either is not set."""
        if self.train is None or self.test is None:
            missing = " and ".join(k for k in ("train", "test") if getattr(self, k) is None)
            raise ConfigError(
                f"training.{missing} is not set: no period to learn from or judge on",
                fix="add training: {train: {from: A, to: B}, test: {from: C, to: D}} to noria.yaml "
                "(labels of the project's windows, e.g. months 2013-01)",
            )
        return self.train, self.test


TaskName = Literal["binary", "multiclass", "regression"]
_FUNCTION_REF = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
_DURATION = re.compile(r"^\d+\s*(s|m|h|d|w)$")


class TargetConfig(_Section):
    """What the model predicts: a column of the request table with a rule, or a label function.

    Column: ``column`` (in ``table``, default the request table) and, for a binary task,
    ``threshold`` (label = column > threshold; without it the column must hold booleans or
    0/1); for a multi-class task the values are among ``classes``; for regression the column
    is the number. Function: ``function`` (``module:function``, like a feature source) reads
    ``tables`` and returns the request ids, ``label`` and optionally ``label_time``.
    ``mature_after``: how long after the event time a label can be trusted (rows whose label is
    not known yet count as unlabelled).
    """

    # A column of the request table holding the outcome (or the label itself).
    column: str | None = None
    # The column's table (default: features.request.table, the only one allowed).
    table: str | None = None
    # Binary: label = column > threshold (missing column value: no label).
    threshold: float | None = None
    # Multiclass: the class values, in order (a label outside them is an error).
    classes: list[str] | None = None
    # Or: a label function module:function(tables, **params) returning the request ids, label
    # and optionally label_time (when the label became known).
    function: str | None = None
    # The label function's snapshot tables and the columns it reads from each.
    tables: dict[str, list[str]] = Field(default_factory=dict)
    # Keyword arguments for the label function.
    params: dict[str, Any] = Field(default_factory=dict)
    # How long after the event time a label can be trusted (30m, 2h, 30d); a row whose label is
    # not known yet counts as unlabelled.
    mature_after: str | None = None
    # Binary: the name of the decision in responses (e.g. late); otherwise what is predicted, in
    # words (explanations: "raised the predicted glucose in 30 min by 12 mg/dL").
    name: str | None = Field(default=None, max_length=60)
    # Regression: the target's unit (mg/dL), shown in responses and explanations.
    unit: str = ""
    # What the label means, for the model card.
    description: str = ""

    @field_validator("classes", mode="before")
    @classmethod
    def _class_text(cls, value: Any) -> Any:
        return [str(v) for v in value] if isinstance(value, list) else value

    @model_validator(mode="after")
    def _one_source(self) -> TargetConfig:
        if (self.column is None) == (self.function is None):
            raise ValueError("give either column: (a column of the request table) or function: (module:function)")
        if self.function is not None:
            if not _FUNCTION_REF.match(self.function):
                raise ValueError(f"{self.function!r} is not a function reference: write module:function")
            if not self.tables:
                raise ValueError("a label function needs tables: {table: [columns it reads]}")
            if self.threshold is not None:
                raise ValueError("threshold applies to a target column; a label function returns the label itself")
        elif self.tables or self.params:
            raise ValueError("tables: and params: belong to a label function (function:)")
        if self.mature_after is not None and not _DURATION.match(str(self.mature_after).strip()):
            raise ValueError(f"mature_after {self.mature_after!r} is not a duration: write e.g. 30m, 2h, 30d")
        if self.classes is not None and (len(self.classes) < 2 or len(set(self.classes)) != len(self.classes)):
            raise ValueError("classes must list at least two distinct values")
        return self

    def rule(self, task: str) -> str:
        """The labelling rule in words (training-set lineage, model card)."""
        if self.function is not None:
            return f"{self.function}({', '.join(self.tables)})"
        where = f"{self.table}.{self.column}" if self.table else str(self.column)
        if task == "binary":
            return f"{where} > {self.threshold:g}" if self.threshold is not None else f"{where} (true/1)"
        if task == "multiclass":
            return f"{where} in {', '.join(self.classes or [])}"
        return where


class ModelConfig(_Section):
    """What the model is: its registry name, its task and what it predicts."""

    # The registered model's name in MLflow (default: the project's name).
    name: str = ""
    # binary, multiclass or regression: objective, metrics, gate, responses and monitoring follow it.
    task: TaskName = "binary"
    # What the model predicts (required to train).
    target: TargetConfig | None = None

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        # Model names end up in paths and URLs: the registry's rule (noria.names), checked at load.
        problem = model_name_problem(value) if value else None
        if problem:
            raise ValueError(f"model name {value!r} is not allowed: {problem}; {MODEL_NAME_FIX}")
        return value

    @model_validator(mode="after")
    def _target_fits_task(self) -> ModelConfig:
        target = self.target
        if target is None:
            return self
        if target.threshold is not None and self.task != "binary":
            raise ValueError(f"target.threshold applies to binary tasks only (task is {self.task}): remove it")
        if self.task == "multiclass" and not target.classes:
            raise ValueError("a multiclass task needs target.classes: [the class values, in order]")
        if self.task != "multiclass" and target.classes:
            raise ValueError(f"target.classes applies to multiclass tasks only (task is {self.task}): remove it")
        if self.task == "binary" and target.name and not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", target.name):
            raise ValueError(
                f"target.name {target.name!r} names the decision field of responses: use lower-case letters,"
                " digits and '_' (e.g. late)"
            )
        if target.unit and self.task != "regression":
            raise ValueError(f"target.unit applies to regression tasks (task is {self.task})")
        return self

    def require_target(self) -> TargetConfig:
        """The target, or a clear error naming the key to add."""
        if self.target is None:
            raise ConfigError(
                "noria.yaml has no model.target: nothing says what the model predicts",
                fix="add model: {task: binary|multiclass|regression, target: {column: ...} or {function: ...}}",
            )
        return self.target


__all__ = [
    "BASELINE_KINDS",
    "TASK_BASELINES",
    "TUNE_METRICS",
    "BaselineFunction",
    "BaselineKind",
    "ModelConfig",
    "TargetConfig",
    "TaskName",
    "TrainingSettings",
]
