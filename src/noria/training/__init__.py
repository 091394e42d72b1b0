"""Training and evaluation: time-based split, Optuna tuning, LightGBM, holdout metrics, model card.

The frame comes from the feature store: one row per event with a timestamp, a label (0/1,
the class index or the number, missing when unknown; see :mod:`noria.tasks`) and feature
columns. Nothing here depends on feature names: callers pass the label, the feature list and
which features are categorical, and the task (``split_by_time(..., task=...)``; binary by
default), which every later stage takes from the split or the model.

    split = split_by_time(frame, "event_timestamp", "label", train=("2013-01", "2013-06"),
                          test=("2013-07", "2013-12"), task=task_of(project))
    result = tune(split, features, categorical, trials=20, seed=42)    # the task's metric
    model = train(split, features, categorical, result.best_params, seed=42)
    ev = evaluate(model, split.test, "label", slices=slice_specs(["region"], "hour_of_day"))

or all of it, with baselines, saved files and the model card: :func:`run_training`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# public name -> defining module; imported on first use (LightGBM, Optuna, scikit-learn and
# matplotlib are slow to import, and a pipeline step rarely needs all of them).
from noria._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "Baseline": "baselines",
    "fit_baselines": "baselines",
    "function_baseline": "baselines",
    "model_info": "card",
    "write_model_card": "card",
    "BaselineResult": "evaluation",
    "Evaluation": "evaluation",
    "SliceMetrics": "evaluation",
    "evaluate": "evaluation",
    "slice_specs": "evaluation",
    "Calibration": "metrics",
    "Metrics": "metrics",
    "binary_metrics": "metrics",
    "calibration": "metrics",
    "hour_band": "metrics",
    "TrainedModel": "model",
    "feature_importance": "model",
    "row_scores": "model",
    "train": "model",
    "TrainingOutcome": "run",
    "run_training": "run",
    "TrainingSettings": "config",
    "Split": "split",
    "TimeWindow": "split",
    "split_by_time": "split",
    "SEARCH_SPACE": "tuning",
    "TrialSummary": "tuning",
    "TuneResult": "tuning",
    "tune": "tuning",
}
__all__ = [
    "SEARCH_SPACE",
    "Baseline",
    "BaselineResult",
    "Calibration",
    "Evaluation",
    "Metrics",
    "SliceMetrics",
    "Split",
    "TimeWindow",
    "TrainedModel",
    "TrainingOutcome",
    "TrainingSettings",
    "TrialSummary",
    "TuneResult",
    "binary_metrics",
    "calibration",
    "evaluate",
    "feature_importance",
    "fit_baselines",
    "function_baseline",
    "hour_band",
    "model_info",
    "row_scores",
    "run_training",
    "slice_specs",
    "split_by_time",
    "train",
    "tune",
    "write_model_card",
]

if TYPE_CHECKING:
    from noria.training.baselines import Baseline, fit_baselines, function_baseline
    from noria.training.card import model_info, write_model_card
    from noria.training.config import TrainingSettings
    from noria.training.evaluation import BaselineResult, Evaluation, SliceMetrics, evaluate, slice_specs
    from noria.training.metrics import Calibration, Metrics, binary_metrics, calibration, hour_band
    from noria.training.model import TrainedModel, feature_importance, row_scores, train
    from noria.training.run import TrainingOutcome, run_training
    from noria.training.split import Split, TimeWindow, split_by_time
    from noria.training.tuning import SEARCH_SPACE, TrialSummary, TuneResult, tune


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
