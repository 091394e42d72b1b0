"""One call from a training frame to a saved model, its evaluation and its model card.

This is what a pipeline step calls; each stage is also public on its own.
Layout of ``out_dir``::

    model/model.txt, model/model.json   LightGBM text model + Noria metadata
    evaluation.json                     Evaluation.to_dict()
    tuning.json                         TuneResult.to_dict() (when tuned)
    split.json                          Split.summary()
    feature_importance.csv              gain table
    model_card.md, model_card.html, model_card_files/*.png
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from noria import atomic
from noria.tasks import BinaryTask, Task
from noria.training.baselines import fit_baselines, sample_split
from noria.training.card import model_info, write_model_card
from noria.training.card_docs import read_card_docs
from noria.training.config import TrainingSettings
from noria.training.evaluation import Evaluation, evaluate, slice_specs
from noria.training.model import TrainedModel, feature_importance, train
from noria.training.split import Split, split_by_time
from noria.training.tuning import TrialSummary, TuneResult, tune

MODEL_DIR = "model"


@dataclass
class TrainingOutcome:
    split: Split
    model: TrainedModel
    evaluation: Evaluation
    importance: pd.DataFrame
    tuning: TuneResult | None
    out_dir: Path
    card: tuple[Path, Path]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def model_dir(self) -> Path:
        return self.out_dir / MODEL_DIR

    def summary(self) -> dict[str, Any]:
        """The task's holdout metrics, each baseline's primary metric, rounds, trials and timings."""
        ev = self.evaluation
        return {
            "task": ev.task,
            "primary_metric": ev.primary_metric,
            **{k: v for k, v in ev.metrics.items() if k != "rows"},
            "baselines": {b.name: ev.primary(b.metrics) for b in ev.baselines},
            "best_iteration": self.model.best_iteration,
            "trials": 0 if self.tuning is None else self.tuning.n_trials,
            "seconds": self.seconds,
            "out_dir": str(self.out_dir),
        }


def run_training(
    frame: pd.DataFrame,
    *,
    label: str,
    features: Sequence[str],
    categorical: Sequence[str] = (),
    settings: TrainingSettings | None = None,
    out_dir: Path | str,
    name: str = "model",
    version: str | int | None = None,
    lineage: Mapping[str, Any] | None = None,
    intended_use: str | None = None,
    limitations: Sequence[str] = (),
    decision_threshold: float = 0.5,
    on_trial: Callable[[TrialSummary], None] | None = None,
    task: Task | None = None,
    root: Path | str | None = None,
    docs: Mapping[str, Any] | None = None,
) -> TrainingOutcome:
    """Split by time, tune (if ``settings.trials``), train, evaluate against baselines, write it all.

    ``task`` (default binary) says what the label is; ``root`` is the project folder the
    settings' baseline functions are found in, and whose pages (docs/goals.md,
    docs/explanations.md, docs/risk.md) the model card quotes; ``docs`` passes those pages'
    sections already read (:func:`noria.training.card_docs.read_card_docs`) instead.
    """
    s = settings or TrainingSettings()
    task = task or BinaryTask()
    out = Path(out_dir)
    clock: dict[str, float] = {}
    started = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal started
        now = time.perf_counter()
        clock[stage] = round(now - started, 3)
        started = now

    split = split_by_time(
        frame,
        s.time_column,
        label,
        train=s.periods()[0],
        test=s.periods()[1],
        valid_fraction=s.validation_fraction,
        valid_windows=s.validation_windows,
        task=task,
    )
    lap("split")
    tuning = None
    if s.trials > 0:
        tuning = tune(
            split,
            features,
            categorical,
            trials=s.trials,
            timeout=s.timeout_seconds,
            on_trial=on_trial,
            seed=s.seed,
            num_threads=s.num_threads,
            metric=s.metric_for(task.name),
            max_rounds=s.max_boost_rounds,
            early_stopping_rounds=s.early_stopping_rounds,
            sample_rows=s.tune_sample_rows,
        )
        lap("tune")
    model = train(
        split,
        features,
        categorical,
        tuning.best_params if tuning else None,
        refit=s.refit_on_full_train,
        seed=s.seed,
        num_threads=s.num_threads,
        metric=s.metric_for(task.name),
        max_rounds=s.max_boost_rounds,
        early_stopping_rounds=s.early_stopping_rounds,
    )
    lap("train")
    baselines = fit_baselines(
        sample_split(split, s.baseline_sample_rows, s.seed),
        s.baseline_kinds(task.name),
        features,
        categorical,
        context_features=s.baseline_features,
        seed=s.seed,
        num_threads=s.num_threads,
        functions=s.baseline_functions(),
        root=root,
    )
    lap("baselines")
    evaluation = evaluate(
        model,
        split.test,
        label,
        slices=slice_specs(s.slices, s.hour_band_column),
        min_slice_rows=s.min_slice_rows,
        baselines=baselines,
        calibration_bins=s.calibration_bins,
        threshold=decision_threshold,
    )
    importance = feature_importance(model)
    lap("evaluate")

    model.save(out / MODEL_DIR)
    atomic.write_text(out / "evaluation.json", _json(evaluation.to_dict()), mode=atomic.SHARED)
    atomic.write_text(out / "split.json", _json(split.summary()), mode=atomic.SHARED)
    if tuning is not None:
        atomic.write_text(out / "tuning.json", _json(tuning.to_dict()), mode=atomic.SHARED)
    atomic.write_text(out / "feature_importance.csv", importance.to_csv(index=False), mode=atomic.SHARED)
    info = model_info(
        model,
        split,
        name=name,
        version=version,
        tuning=tuning,
        intended_use=intended_use,
        limitations=limitations,
        docs=docs if docs is not None or root is None else read_card_docs(root),
    )
    card = write_model_card(out, info, evaluation, importance, dict(lineage or {}))
    lap("write")
    return TrainingOutcome(split, model, evaluation, importance, tuning, out, card, clock)


def _json(payload: Any) -> str:
    return json.dumps(payload, indent=2, sort_keys=True, allow_nan=False, default=str)
