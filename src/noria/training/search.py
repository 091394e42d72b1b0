"""What a hyper-parameter search is: the space (:data:`SEARCH_SPACE`), the first trial
(:data:`START_PARAMS`), the metrics it may optimise and their directions (:data:`METRICS`), a
trial's summary and the result. Shared by the search itself (:mod:`noria.training.tuning`) and
the shared Optuna studies its workers add trials to (:mod:`noria.training.study`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from noria.training.model import DEFAULT_PARAMS

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

# name -> (low, high, log scale, integer)
SEARCH_SPACE: dict[str, tuple[float, float, bool, bool]] = {
    "learning_rate": (0.02, 0.2, True, False),
    "num_leaves": (15, 255, True, True),
    "min_child_samples": (10, 400, True, True),
    "feature_fraction": (0.5, 1.0, False, False),
    "bagging_fraction": (0.5, 1.0, False, False),
    "lambda_l1": (1e-8, 10.0, True, False),
    "lambda_l2": (1e-8, 10.0, True, False),
    "cat_smooth": (1.0, 100.0, True, False),
}
# Trial 0 is always LightGBM's defaults as Noria sets them, so tuning starts from (and on the
# validation slice can only improve on) the untuned model.
START_PARAMS: dict[str, Any] = {**DEFAULT_PARAMS, "lambda_l1": 1e-8, "cat_smooth": 10.0}
METRICS: dict[str, Literal["maximize", "minimize"]] = {
    "auc": "maximize",
    "binary_logloss": "minimize",
    "average_precision": "maximize",
    "multi_logloss": "minimize",
    "multi_error": "minimize",
    "rmse": "minimize",
    "l1": "minimize",
    "l2": "minimize",
}


@dataclass
class TrialSummary:
    number: int
    state: str
    value: float | None
    best_iteration: int | None
    seconds: float
    params: dict[str, Any]
    worker: int = 0


@dataclass
class TuneResult:
    """The best parameters found (search space only; seed/threads are added by ``train``)."""

    best_params: dict[str, Any]
    best_value: float
    best_iteration: int
    metric: str
    direction: str
    trials: list[TrialSummary] = field(default_factory=list)
    seconds: float = 0.0
    fit_rows: int = 0  # rows the trials learned on (a sample when the fit part is larger)
    valid_rows: int = 0  # rows the trials were judged on
    sampled: bool = False

    @classmethod
    def from_best_trial(
        cls,
        best: FrozenTrial,
        metric: str,
        trials: list[TrialSummary],
        seconds: float,
        *,
        fit_rows: int = 0,
        valid_rows: int = 0,
        sampled: bool = False,
    ) -> TuneResult:
        """The result whose best is the Optuna trial ``best`` (its parameters, value and the boosting
        rounds it recorded), optimising ``metric``: one rule for what :func:`noria.training.tuning.tune`
        ran and for what a shared study (:func:`noria.training.study.study_result`) holds."""
        return cls(
            best_params=dict(best.params),
            best_value=float(best.value) if best.value is not None else float("nan"),
            best_iteration=int(best.user_attrs.get("best_iteration", 0)),
            metric=metric,
            direction=METRICS[metric],
            trials=trials,
            seconds=seconds,
            fit_rows=fit_rows,
            valid_rows=valid_rows,
            sampled=sampled,
        )

    @property
    def n_trials(self) -> int:
        return len(self.trials)

    def to_dict(self) -> dict[str, Any]:
        return {
            "best_params": self.best_params,
            "best_value": self.best_value,
            "best_iteration": self.best_iteration,
            "metric": self.metric,
            "direction": self.direction,
            "n_trials": self.n_trials,
            "seconds": self.seconds,
            "trials": [asdict(t) for t in self.trials],
            "fit_rows": self.fit_rows,
            "valid_rows": self.valid_rows,
            "sampled": self.sampled,
            "search_space": {k: list(v) for k, v in SEARCH_SPACE.items()},
        }


__all__ = ["METRICS", "SEARCH_SPACE", "START_PARAMS", "TrialSummary", "TuneResult"]
