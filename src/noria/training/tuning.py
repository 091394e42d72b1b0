"""Hyper-parameter search with Optuna, scored on the time-based validation slice.

Each trial trains on ``split.fit`` with early stopping on ``split.valid`` and is scored by
the validation metric at its best iteration: the task's (``auc`` maximised for a binary
model, ``multi_logloss`` minimised for a multi-class one, ``rmse`` minimised for a regression)
unless another of the task's metrics is named. The first trial is the default parameter set
(:data:`START_PARAMS`); TPE starts modelling after ``min(10, max(3, trials // 3))`` trials.
A median pruner stops trials that fall behind the median of earlier ones. Reproducible by
construction: a seeded TPE sampler, one trial at a time (``n_jobs=1``), and LightGBM's
``deterministic`` mode with a fixed thread count.
A ``timeout`` trades that away: how many trials fit in the time depends on the machine.

With ``storage`` and ``study_name`` the study lives in an Optuna RDB storage (PostgreSQL at
scale) and several workers, one process or pod each, add trials to it: see
:mod:`noria.training.study` for the rules that make them one search.

The search space (:data:`SEARCH_SPACE`):

=====================  ====================  =======================================
parameter              range                 why
=====================  ====================  =======================================
learning_rate          0.02 - 0.2 (log)      step size; early stopping picks the rounds
num_leaves             15 - 255 (log)        tree complexity
min_child_samples      10 - 400 (log)        smallest leaf; guards against noise
feature_fraction       0.5 - 1.0             columns per tree (decorrelates trees)
bagging_fraction       0.5 - 1.0             rows per tree (bagging every round)
lambda_l1              1e-8 - 10 (log)       L1 penalty on leaf values
lambda_l2              1e-8 - 10 (log)       L2 penalty on leaf values
cat_smooth             1 - 100 (log)         smoothing of category statistics
=====================  ====================  =======================================
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
import optuna

from noria.errors import ConfigError
from noria.tasks import BinaryTask, Task
from noria.training.model import Matrix, check_metric, lgb_params
from noria.training.search import METRICS as METRICS
from noria.training.search import SEARCH_SPACE as SEARCH_SPACE
from noria.training.search import START_PARAMS as START_PARAMS
from noria.training.search import TrialSummary as TrialSummary
from noria.training.search import TuneResult as TuneResult
from noria.training.split import Split

if TYPE_CHECKING:
    import pandas as pd

    from noria.training.rows import TrainRows

_REPORT_EVERY = 10  # report to the pruner every N boosting rounds


def tune(
    split: Split,
    features: Sequence[str],
    categorical: Sequence[str] = (),
    *,
    trials: int = 20,
    seed: int = 42,
    timeout: float | None = None,
    num_threads: int = 1,
    metric: str | None = None,
    max_rounds: int = 1000,
    early_stopping_rounds: int = 50,
    storage: str | None = None,
    study_name: str | None = None,
    worker: int = 0,
    heartbeat_seconds: int | None = None,
    on_trial: Callable[[TrialSummary], None] | None = None,
    sample_rows: int | None = None,
) -> TuneResult:
    """Run at most ``trials`` trials (and stop after ``timeout`` seconds if given).

    By default the study lives in memory. ``storage`` (an Optuna storage URL, e.g.
    ``postgresql+psycopg2://optuna@db/optuna``) and ``study_name`` make this process worker
    number ``worker`` of a shared study: its trials join those of the other workers, and the
    best parameters returned are the best of the whole study so far (``trials`` lists this
    worker's own). ``heartbeat_seconds`` overrides how often a worker proves it is alive.
    The task is the split's; ``metric`` defaults to the task's (:attr:`noria.tasks.Task.tune_metric`).
    ``sample_rows``: trials learn on at most this many fit rows and are judged on at most a
    quarter as many validation rows (seeded samples), so a trial costs the same however much
    history there is; the final model (``train``) still learns on every row.
    """
    fit, valid = split.fit, split.valid
    if sample_rows is not None:
        fit = _sample(fit, sample_rows, seed)
        valid = _sample(valid, valid_sample_rows(sample_rows), seed)
    features, categorical = list(features), list(categorical)
    fit_m = Matrix.from_frame(fit, split.label, features, categorical)
    valid_m = Matrix.from_frame(valid, split.label, features, categorical, fit_m.categories)
    return tune_matrices(
        fit_m,
        valid_m,
        task=split.task or BinaryTask(),
        sampled=len(fit) < len(split.fit) or len(valid) < len(split.valid),
        trials=trials,
        seed=seed,
        timeout=timeout,
        num_threads=num_threads,
        metric=metric,
        max_rounds=max_rounds,
        early_stopping_rounds=early_stopping_rounds,
        storage=storage,
        study_name=study_name,
        worker=worker,
        heartbeat_seconds=heartbeat_seconds,
        on_trial=on_trial,
    )


def tune_rows(
    rows: TrainRows,
    features: Sequence[str],
    categorical: Sequence[str] = (),
    *,
    sample_rows: int | None = None,
    seed: int = 42,
    **options: Any,
) -> TuneResult:
    """:func:`tune` on the train rows the pipeline's ``split`` step wrote: only the sampled rows
    are read (``sample_rows`` fit rows and a quarter as many validation rows, the rows
    :func:`tune` samples from frames), so memory does not grow with the history."""
    from noria.training.split import sample_positions

    fit = sample_positions(rows.fit_rows, sample_rows, seed)
    valid_size = None if sample_rows is None else valid_sample_rows(sample_rows)
    valid = rows.fit_rows + sample_positions(rows.rows - rows.fit_rows, valid_size, seed)
    matrix = rows.matrix(features, categorical, np.concatenate([fit, valid]))
    return tune_matrices(
        matrix.rows(slice(0, len(fit))),
        matrix.rows(slice(len(fit), None)),
        task=rows.task,
        sampled=len(fit) < rows.fit_rows or len(valid) < rows.rows - rows.fit_rows,
        seed=seed,
        **options,
    )


def valid_sample_rows(sample_rows: int) -> int:
    """Validation rows a trial is judged on when it learns on ``sample_rows`` fit rows: a quarter."""
    return max(sample_rows // 4, 1)


def tune_matrices(
    fit: Matrix,
    valid: Matrix,
    *,
    task: Task,
    sampled: bool = False,
    trials: int = 20,
    seed: int = 42,
    timeout: float | None = None,
    num_threads: int = 1,
    metric: str | None = None,
    max_rounds: int = 1000,
    early_stopping_rounds: int = 50,
    storage: str | None = None,
    study_name: str | None = None,
    worker: int = 0,
    heartbeat_seconds: int | None = None,
    on_trial: Callable[[TrialSummary], None] | None = None,
) -> TuneResult:
    """:func:`tune` on the (already sampled) fit and validation rows as matrices; ``sampled`` says
    whether they are samples (recorded in the result)."""
    metric = metric or task.tune_metric
    if storage is not None and not study_name:
        raise ConfigError("a shared study (storage given) needs a study_name", fix="name the study all workers join")
    if worker < 0:
        raise ConfigError(f"worker = {worker}; expected 0 or more", fix="number the workers 0, 1, 2, ...")
    if trials < 1:
        raise ConfigError(f"trials = {trials}; tuning needs at least 1", fix="set trials to 1 or more, or skip tuning")
    if metric not in METRICS:
        raise ConfigError(f"tuning metric {metric!r} is not supported", fix=f"use one of {sorted(METRICS)}")
    check_metric(metric, task)
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"timeout = {timeout}; expected a positive number of seconds", fix="omit it or make it > 0")
    fit_ds = fit.dataset()
    valid_ds = valid.dataset(reference=fit_ds)
    summaries: list[TrialSummary] = []

    def objective(trial: optuna.Trial) -> float:
        # First, so that even the trial of a worker that dies says whose it was.
        trial.set_user_attr("worker", worker)
        params = lgb_params(suggest(trial), seed=seed, num_threads=num_threads, metric=metric, task=task)
        booster = lgb.train(
            params,
            fit_ds,
            num_boost_round=max_rounds,
            valid_sets=[valid_ds],
            valid_names=["valid"],
            callbacks=[
                lgb.early_stopping(early_stopping_rounds, first_metric_only=True, verbose=False),
                _pruning_callback(trial, metric),
            ],
        )
        trial.set_user_attr("best_iteration", int(booster.best_iteration))
        return float(booster.best_score["valid"][metric])

    def record(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        duration = frozen.duration.total_seconds() if frozen.duration is not None else 0.0
        summary = TrialSummary(
            number=frozen.number,
            state=frozen.state.name.lower(),
            value=frozen.value,
            best_iteration=frozen.user_attrs.get("best_iteration"),
            seconds=round(duration, 3),
            params=dict(frozen.params),
            worker=worker,
        )
        summaries.append(summary)
        if on_trial is not None:
            on_trial(summary)

    started = time.perf_counter()
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Fewer random start-up trials for small budgets, so TPE gets to model the space.
    startup = min(10, max(3, trials // 3))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=100, interval_steps=_REPORT_EVERY)
    try:
        if storage is None:
            study = optuna.create_study(
                direction=METRICS[metric],
                sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup),
                pruner=pruner,
            )
            study.enqueue_trial(START_PARAMS)
        else:
            from noria.training.study import join_study

            assert study_name is not None  # checked above
            study = join_study(
                storage, study_name, metric, seed=seed, worker=worker, startup_trials=startup, pruner=pruner,
                heartbeat_seconds=heartbeat_seconds,
            )  # fmt: skip
        study.optimize(objective, n_trials=trials, timeout=timeout, n_jobs=1, callbacks=[record])
    finally:
        optuna.logging.set_verbosity(previous)
    best = study.best_trial
    return TuneResult.from_best_trial(
        best,
        metric,
        summaries,
        round(time.perf_counter() - started, 3),
        fit_rows=len(fit),
        valid_rows=len(valid),
        sampled=sampled,
    )


def _sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """At most ``rows`` rows of ``frame``, a seeded random sample in the original order."""
    if len(frame) <= rows:
        return frame
    return frame.sample(n=rows, random_state=seed).sort_index()


def suggest(trial: optuna.Trial) -> dict[str, Any]:
    """Draw one parameter set from :data:`SEARCH_SPACE`."""
    params: dict[str, Any] = {}
    for name, (low, high, log, integer) in SEARCH_SPACE.items():
        if integer:
            params[name] = trial.suggest_int(name, int(low), int(high), log=log)
        else:
            params[name] = trial.suggest_float(name, low, high, log=log)
    return params


def _pruning_callback(trial: optuna.Trial, metric: str) -> Callable[[Any], None]:
    """Report the validation metric to Optuna every few rounds; stop the trial if pruned."""

    def callback(env: Any) -> None:
        if (env.iteration + 1) % _REPORT_EVERY:
            return
        for data_name, eval_name, value, *_ in env.evaluation_result_list:
            if data_name == "valid" and eval_name == metric:
                trial.report(float(value), step=env.iteration + 1)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at round {env.iteration + 1}")

    callback.order = 40  # type: ignore[attr-defined]  # after LightGBM's early stopping (order 30)
    return callback
