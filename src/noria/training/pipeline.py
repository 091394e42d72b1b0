"""The reference training pipeline: ``noria pipeline run training``.

    context -> training_set -> split -> tune -> train -> evaluate -> register -> gate
    card_docs ---------------------------------------------^

Every step is cached by the pipeline runner (code, parameters, input artifacts), so a rerun
with nothing changed skips everything. ``context`` is never cached: it resolves the data
snapshot (``latest`` by default) and the project settings each time, and its output
changes only when they do, which is what invalidates the steps below it. ``card_docs`` is
never cached either: it reads the sections of the project's pages the model card quotes, so
editing them re-renders the card (``evaluate`` and what follows it) and nothing before it.
Each step can also run alone (``--step S --run-id R``): that is what Airflow and Kubeflow run.
The first three steps live in :mod:`noria.training.pipeline_inputs` (importable from here too).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from noria.pipelines import Pipeline, current_project, current_run_id, scratch_dir, step
from noria.training.pipeline_inputs import (
    _columns,
    _rows,
    _settings,
    _task,
    _windows,
    card_docs,
    context,
    training_set,
)

TIME_COLUMN = "event_timestamp"


@step(outputs=("train_rows", "test_rows", "split_info"))
def split(
    training_set: Path, training_set_info: dict[str, Any], context: dict[str, Any]
) -> tuple[Path, pd.DataFrame, dict[str, Any]]:
    """Time-based split: train months vs later test months; unlabelled rows counted and dropped.

    The train rows (time order, fit rows first; the time, the label, the features and the
    baseline features) go to a Parquet file, read column by column below; the test rows (one
    holdout period, every column) stay a frame.
    """
    from noria.training.rows import split_files

    s = _settings(context)
    train, test = s.periods()
    features, _ = _columns(training_set_info)
    out = scratch_dir() / "train_rows"
    parts = split_files(
        training_set,
        out,
        time_col=s.time_column,
        label=training_set_info["label"]["name"],
        columns=features,
        optional=s.baseline_features or (),
        train=train,
        test=test,
        valid_fraction=s.validation_fraction,
        valid_windows=s.validation_windows,
        windows=_windows(context),
        task=_task(context),
    )
    return out, parts.test, parts.plan.summary()


@step
def tune(
    train_rows: Path,
    training_set_info: dict[str, Any],
    context: dict[str, Any],
    study_storage: str = "",
    study_name: str = "",
    study_trials: int = -1,
) -> dict[str, Any]:
    """Optuna search on the validation slice at the end of the train period (the test stays unseen).

    Trials read only the sampled rows (``training.tune_sample_rows``) from the train rows' file.
    ``study_storage`` (an Optuna storage URL; PostgreSQL at scale) makes the search a shared
    study that tune workers (``noria.training.tune_worker.tune_worker``, one pod each) add trials
    to. This step is worker 0: it runs ``study_trials`` trials itself (-1: ``training.trials``;
    0: none) and returns the best of the whole study. ``study_name`` defaults to a name
    derived from the model, snapshot and settings; pass a new one (e.g. with the run id) to
    start a fresh search, since a finished step is cached like any other.
    """
    from noria.training.study import default_study_name, redact, resolve_storage, study_result, tune_options
    from noria.training.tuning import tune_rows

    s = _settings(context)
    trials = s.trials if study_trials < 0 else study_trials
    if not study_storage and trials == 0:
        return {"best_params": None, "trials": 0}
    storage = resolve_storage(study_storage, current_project().root) if study_storage else None
    name = (study_name or default_study_name(context)) if storage else None
    if trials > 0:
        features, categorical = _columns(training_set_info)
        result = tune_rows(
            _rows(train_rows, context),
            features,
            categorical,
            trials=trials,
            storage=storage,
            study_name=name,
            **tune_options(s, context["task"]),
        )
    if storage is not None and name is not None:
        result = study_result(storage, name)
        return result.to_dict() | {
            "best_params": result.best_params,
            "study": {"storage": redact(storage), "name": name},
        }
    return result.to_dict() | {"best_params": result.best_params}


@step
def train(
    train_rows: Path,
    tune: dict[str, Any],
    training_set_info: dict[str, Any],
    context: dict[str, Any],
) -> Path:
    """LightGBM with the tuned parameters, saved in its native text format.

    The train rows are read once into one float64 matrix (LightGBM bins it without a copy; the
    fit and validation parts are views of it): the same model as from frames, in a fraction of
    the memory.
    """
    from noria.training.model import fit_model

    s = _settings(context)
    features, categorical = _columns(training_set_info)
    rows = _rows(train_rows, context)
    matrix = rows.matrix(features, categorical)
    model = fit_model(
        matrix.rows(slice(0, rows.fit_rows)),
        matrix.rows(slice(rows.fit_rows, None)),
        matrix if s.refit_on_full_train else None,
        label=rows.label,
        task=rows.task,
        params=tune.get("best_params"),
        seed=s.seed,
        num_threads=s.num_threads,
        metric=s.metric_for(context["task"]),
        max_rounds=s.max_boost_rounds,
        early_stopping_rounds=s.early_stopping_rounds,
    )
    del matrix
    folder = scratch_dir() / "model"
    model.save(folder)
    return folder


@step(outputs=("evaluation", "report"))
def evaluate(
    train: Path,
    train_rows: Path,
    test_rows: pd.DataFrame,
    split_info: dict[str, Any],
    tune: dict[str, Any],
    training_set_info: dict[str, Any],
    context: dict[str, Any],
    card_docs: dict[str, Any],
) -> tuple[dict[str, Any], Path]:
    """Holdout metrics, slices, baselines, the model card and the monitoring reference profile.

    Everything in the task's terms (``context.task``). ``report/test_scores.json`` holds the
    model's holdout predictions for the gate: one number per row (binary P(positive),
    regression value) or one list of K class probabilities per row (multi-class). Baselines
    learn on a seeded sample of the train rows (``training.baseline_sample_rows``) and the
    reference profile summarises another (``training.profile_sample_rows``): only those rows
    are read.
    """
    from noria.monitoring import ReferenceProfile
    from noria.training import TrainedModel, feature_importance, fit_baselines, slice_specs
    from noria.training import evaluate as run_evaluate
    from noria.training.card import model_info, write_model_card
    from noria.training.model import row_scores
    from noria.training.rows import split_of
    from noria.training.split import sample_positions

    s = _settings(context)
    task = _task(context)
    label = training_set_info["label"]["name"]
    features, categorical = _columns(training_set_info)
    model = TrainedModel.load(train)
    _check_task(model, task)
    rows = _rows(train_rows, context)
    kinds = s.baseline_kinds(task.name)
    learned = [k for k in kinds if k in ("logistic_regression", "linear_regression", "context_lightgbm")]
    sample = sample_positions(rows.rows, s.baseline_sample_rows, s.seed)
    columns = [*features, *(s.baseline_features or [])] if learned else []
    baseline_rows = rows.frame(columns, sample)
    baselines = fit_baselines(
        split_of(baseline_rows, int(np.searchsorted(sample, rows.fit_rows)), test_rows, split_info, task),
        kinds,
        features,
        categorical,
        context_features=s.baseline_features,
        seed=s.seed,
        functions=s.baseline_functions(),
        root=current_project().root,
    )
    del baseline_rows
    evaluation = run_evaluate(
        model,
        test_rows,
        label,
        task=task,
        slices=slice_specs(s.slices, s.hour_band_column),
        min_slice_rows=s.min_slice_rows,
        baselines=baselines,
        calibration_bins=s.calibration_bins,
        threshold=context["decision_threshold"],
    )
    importance = feature_importance(model)
    report = scratch_dir() / "report"
    report.mkdir()
    shares = dict(zip(importance["feature"], importance["gain"], strict=True))
    reference = rows.frame(features, sample_positions(rows.rows, s.profile_sample_rows, s.seed))
    profile = ReferenceProfile.build(
        reference[features],
        scores=row_scores(task, model.predict(reference)),  # what the service logs as `score`
        importance=shares,
        categorical=categorical,
        metadata={
            "snapshot_id": context["snapshot_id"],
            "definition_hash": context["definition_hash"],
            "training_rows": str(rows.rows),
            "profiled_rows": str(len(reference)),
        },
    )
    profile.save(report / "reference_profile.json")
    importance.to_csv(report / "feature_importance.csv", index=False)
    info = model_info(model, split_info, name=context["model_name"], tuning=None, docs=card_docs)
    lineage = {
        "data snapshot": context["snapshot_id"],
        "feature definition hash": context["definition_hash"],
        "feature service": training_set_info["service"],
        "training set": f"{training_set_info['rows']:,} rows, {training_set_info['period']}",
    }
    write_model_card(report, info, evaluation, importance, lineage)
    (report / "test_scores.json").write_text(json.dumps(model.predict(test_rows).tolist()))
    return evaluation.to_dict() | {"flat": evaluation.flat_metrics(), "split": split_info}, report


def _check_task(model: Any, task: Any) -> None:
    """The trained model is one of the project's task (a model trained before a task change is not)."""
    if model.task.name != task.name or tuple(model.task.classes) != tuple(task.classes):
        from noria.errors import DataError

        raise DataError(
            f"the trained model is a {model.task.describe()} model but the project's task is {task.describe()}",
            fix="rerun the training pipeline from the train step (the task changed since the model was trained)",
        )


def _gate_evaluation(
    scores: Any, flat: dict[str, float], evaluation: dict[str, Any], holdout_id: str, invariance: Any, task: Any
) -> Any:
    """The gate's view of an evaluation: the holdout metrics, the primary metric per slice, the predictions."""
    from noria.registry import Evaluation

    metric = task.primary_metric
    slices = {
        f"{s['slice']}={s['value']}": s["metrics"][metric]
        for s in evaluation["slices"]
        if s.get("metrics") and s["metrics"].get(metric) is not None
    }
    metrics = {k.removeprefix("test_"): v for k, v in flat.items() if "baseline_" not in k and "slice_" not in k}
    return Evaluation.from_arrays(metrics, scores, slices=slices, invariance=invariance, holdout_id=holdout_id)


@step
def register(
    train: Path,
    report: Path,
    evaluation: dict[str, Any],
    tune: dict[str, Any],
    split_info: dict[str, Any],
    training_set_info: dict[str, Any],
    context: dict[str, Any],
) -> dict[str, Any]:
    """An MLflow run with params, batched metrics, curves, lineage, card and profile; a new version."""
    from noria.features import record_usage
    from noria.registry import collect_lineage, start_run
    from noria.training import TrainedModel

    project = current_project()
    model = TrainedModel.load(train)
    lineage = collect_lineage(
        project,
        data_snapshot=context["snapshot_id"],
        feature_service=training_set_info["service"],
        feature_definition_hash=context["definition_hash"],
        pipeline_run_id=current_run_id(),
    )
    with start_run(project, f"train-{context['snapshot_id'][:8]}", lineage) as run:
        period = context["training"]
        run.log_params(
            model.params
            | {"trials": int(tune.get("n_trials", 0)), "features": len(model.features)}
            | {f"{part}_{end}": period[part][end] for part in ("train", "test") for end in ("from", "to")}
        )
        run.log_metrics(evaluation["flat"])
        for name, values in model.valid_curve.items():
            run.log_curve(f"valid_{name}", values)
        run.log_dict(split_info, "split.json")
        run.log_dict(training_set_info, "training_set.json")
        run.log_dict({k: v for k, v in evaluation.items() if k != "flat"}, "evaluation.json")
        for file in sorted(report.rglob("*")):
            if file.is_file():
                run.log_artifact(file, str(file.parent.relative_to(report)) if file.parent != report else None)
        run.log_model_card((report / "model_card.md").read_text(encoding="utf-8"))
        # The booster's text holds the objective serving checks against model.task; the tag says it plainly.
        version = run.log_model(model.booster, context["model_name"], tags={"noria.task": model.task.name})
    record_usage(
        project,
        context["model_name"],
        version.version,
        training_set_info["service"],
        context["definition_hash"],
        features=model.features,
        training_set=training_set_info["path"],
    )
    return {"name": version.name, "version": version.version, "run_id": version.run_id}


GATE_NOTE = "training pipeline"  # the reason recorded with the gate's promotions


# Never cached: which version is @champion right now (and its newest change) is not an input
# the cache can see; it is what the gate's cached decision is keyed on.
@step(cache=False)
def champion_now(register: dict[str, Any]) -> dict[str, Any]:
    """The registry's @champion of the registered model and the newest promotion or rollback.

    If the newest change is this gate promoting this candidate, the state before it: the one
    that decision was judged against, so a re-run with nothing changed reuses it.
    """
    from noria.registry import champion_state

    return champion_state(
        current_project(), register["name"], before_promotion_of=(int(register["version"]), GATE_NOTE)
    )


# Cached by (candidate, champion, gate settings): the candidate's version, evaluation and
# holdout, ``champion_now`` and the gate settings in ``context`` are its inputs, so a re-run
# with nothing changed reuses the decision, and any promotion, rollback or gate change re-runs it.
@step(version="2")
def gate(
    register: dict[str, Any],
    evaluation: dict[str, Any],
    report: Path,
    train: Path,
    test_rows: pd.DataFrame,
    context: dict[str, Any],
    champion_now: dict[str, Any],
) -> dict[str, Any]:
    """Champion only if it beats the current one on the same holdout and passes behaviour checks.

    The task's primary metric in the task's direction (ROC AUC up, log loss down, RMSE down);
    the champion is re-evaluated on the same holdout rows with the same task.
    """
    import numpy as np

    from noria.registry import GateConfig, InvarianceResult, load_model, promote_if_better
    from noria.training import TrainedModel

    project = current_project()
    task = _task(context)
    s = _settings(context)
    model = TrainedModel.load(train)
    scores = np.asarray(json.loads((report / "test_scores.json").read_text()), dtype=np.float64)
    holdout_id = f"{context['snapshot_id']}:{context['training']['test']['from']}..{context['training']['test']['to']}"
    # Fields the model must ignore (registry.gate.invariance_fields): shuffling them must not move a prediction.
    irrelevant = tuple(context["gate"].get("invariance_fields") or ())
    perturbed = test_rows.copy()
    for field in irrelevant:
        if field in perturbed:
            perturbed[field] = perturbed[field].sample(frac=1.0, random_state=0).to_numpy()
    invariance = InvarianceResult.of(irrelevant, scores, model.predict(perturbed))
    candidate = _gate_evaluation(scores, evaluation["flat"], evaluation, holdout_id, invariance, task)
    label = evaluation["label"]

    def champion_on_same_holdout(info: Any) -> Any:
        from noria.training import evaluate as run_evaluate

        loaded = load_model(project, f"{info.name}/{info.version}")
        champ_scores = _predict(loaded.booster, test_rows)
        # Overall metrics only, as before tasks existed: the champion gets no slices, so the gate's
        # slice check has nothing to compare in the pipeline (binary decisions stay exactly as they were).
        ev = run_evaluate(
            champ_scores,
            test_rows,
            label,
            task=task,
            calibration_bins=s.calibration_bins,
            threshold=context["decision_threshold"],
        )
        return _gate_evaluation(champ_scores, ev.flat_metrics(), ev.to_dict(), holdout_id, None, task)

    decision = promote_if_better(
        project,
        register["name"],
        register["version"],
        candidate,
        champion_on_same_holdout,
        GateConfig.model_validate(context["gate"]),
        note=GATE_NOTE,
        task=task,
    )
    return decision.to_dict()


def _predict(booster: Any, frame: pd.DataFrame) -> Any:
    from noria.training.model import model_frame

    features = booster.feature_name()
    categorical = [c for c in features if frame[c].dtype == object or str(frame[c].dtype) == "category"]
    return booster.predict(model_frame(frame, features, categorical))


def training_pipeline() -> Pipeline:
    return Pipeline(
        "training",
        steps=[context, card_docs, training_set, split, tune, train, evaluate, register, champion_now, gate],
        description="snapshot -> training set -> split -> tune -> train -> evaluate -> register -> gate",
    )
