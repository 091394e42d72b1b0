"""Shared Optuna studies: several workers, one process or pod each, tuning one model together.

The study lives in an Optuna RDB storage: PostgreSQL at scale
(``postgresql+psycopg2://optuna@postgres/optuna``), SQLite on one machine
(``sqlite:///.noria/optuna.db``, relative to the project). What makes N workers one search:

- The study is created once (:func:`create_study`; PostgreSQL's unique study name settles
  a race) and only its creator enqueues the untuned start parameters, so they run once.
- Each worker samples with its own seed (:func:`worker_seed`) and TPE's *constant liar*
  (running trials count as bad), so workers do not evaluate the same point twice.
- Every trial records the worker that ran it (user attribute ``worker``).
- Workers send a heartbeat; a trial whose worker died (pod evicted, OOM-killed) is marked
  failed by the next worker that starts a trial, instead of hanging as "running" for ever.
- :func:`study_result` gives the best parameters of the whole study; the training
  pipeline's ``tune`` step returns them (``--param study_storage=... study_trials=0``).

A worker pod runs :func:`noria.training.tune_worker.tune_worker` on the split of one pipeline run. Credentials never go
in the URL (it is recorded with the run's parameters): libpq reads ``PGPASSWORD`` or
``~/.pgpass``, which a Kubernetes Secret can provide.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna

from noria.errors import ConfigError, ExternalToolError, NotFoundError
from noria.training.config import TrainingSettings
from noria.training.search import METRICS, START_PARAMS, TrialSummary, TuneResult

HEARTBEAT_SECONDS = 60
# Fields of training settings that change what a trial measures; a study is only shared by
# runs that agree on all of them (the budget, slices and baselines do not count).
_OBJECTIVE_FIELDS = (
    "train", "test", "time_column", "validation_fraction", "validation_windows", "seed", "tune_metric",
    "max_boost_rounds", "early_stopping_rounds",
)  # fmt: skip


def redact(url: str) -> str:
    """The storage URL with any password masked, for records and messages."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@", 1)[-1] if "@" in url else url


def resolve_storage(url: str, root: Path) -> str:
    """A relative SQLite path is relative to the project folder, not the process's cwd."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return prefix + str(root / url[len(prefix) :])
    return url


def worker_seed(seed: int, worker: int) -> int:
    """Worker 0 keeps ``seed`` (a lone worker reproduces an in-memory run); others get their own."""
    if worker == 0:
        return seed
    digest = hashlib.sha256(f"{seed}:{worker}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def open_storage(url: str, *, heartbeat_seconds: int | None = HEARTBEAT_SECONDS) -> optuna.storages.RDBStorage:
    """Connect to an Optuna RDB storage, creating its tables if needed (safe when workers race)."""
    import sqlalchemy.exc as sa_exc

    kwargs: dict[str, Any] = {}
    if not url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"pool_pre_ping": True}  # long-lived pods outlive idle connections
    if heartbeat_seconds:
        kwargs |= {"heartbeat_interval": heartbeat_seconds, "grace_period": 2 * heartbeat_seconds}
    for attempt in range(4):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, **kwargs)
        except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError) as exc:
            raise ConfigError(
                f"study storage {redact(url)!r} is not a usable database URL: {exc}",
                fix="use e.g. postgresql+psycopg2://USER@HOST/DB or sqlite:///.noria/optuna.db",
            ) from None
        except sa_exc.OperationalError as exc:
            raise ExternalToolError(
                f"cannot connect to the study storage {redact(url)}: {str(exc).splitlines()[0]}",
                fix="check the database is up and reachable; the password comes from PGPASSWORD or ~/.pgpass",
            ) from None
        except (sa_exc.IntegrityError, sa_exc.ProgrammingError) as exc:
            # Two workers creating Optuna's tables at once: one wins, the other retries.
            if attempt == 3:
                raise ExternalToolError(
                    f"cannot create Optuna's tables in {redact(url)}: {str(exc).splitlines()[0]}",
                    fix="check the database user may create tables there, or create the study once by hand",
                ) from exc
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def _dispose(storage: optuna.storages.RDBStorage) -> None:
    storage.remove_session()
    storage.engine.dispose()


def _check_metric(metric: str) -> optuna.study.StudyDirection:
    if metric not in METRICS:
        raise ConfigError(f"tuning metric {metric!r} is not supported", fix=f"use one of {sorted(METRICS)}")
    return optuna.study.StudyDirection[METRICS[metric].upper()]


def _create(storage: optuna.storages.RDBStorage, study_name: str, metric: str) -> bool:
    """Create the study and enqueue the start parameters (True), or check the existing one (False)."""
    direction = _check_metric(metric)
    try:
        study = optuna.load_study(storage=storage, study_name=study_name)
    except KeyError:
        try:
            study = optuna.create_study(storage=storage, study_name=study_name, direction=direction)
        except optuna.exceptions.DuplicatedStudyError:  # another worker created it just now
            study = optuna.load_study(storage=storage, study_name=study_name)
        else:
            study.set_user_attr("metric", metric)
            study.enqueue_trial(START_PARAMS)
            return True
    if study.direction != direction:
        raise ConfigError(
            f"study {study_name!r} exists and {study.direction.name.lower()}s its metric, "
            f"but tuning on {metric!r} needs to {METRICS[metric]}",
            fix="use another study name, or the metric the study was created for",
        )
    recorded = study.user_attrs.get("metric")
    if recorded is not None and recorded != metric:
        raise ConfigError(
            f"study {study_name!r} exists and tunes on {recorded!r}, not {metric!r}",
            fix="use another study name, or the metric the study was created for",
        )
    return False


def create_study(storage_url: str, study_name: str, *, metric: str = "auc") -> bool:
    """Create the shared study (True) or find it already there (False); safe to call from every worker."""
    storage = open_storage(storage_url, heartbeat_seconds=None)
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return _create(storage, study_name, metric)
    finally:
        optuna.logging.set_verbosity(previous)
        _dispose(storage)


def join_study(
    storage_url: str,
    study_name: str,
    metric: str,
    *,
    seed: int,
    worker: int,
    startup_trials: int,
    pruner: optuna.pruners.BasePruner,
    heartbeat_seconds: int | None = None,
) -> optuna.Study:
    """The shared study as worker ``worker`` sees it (created if it does not exist yet)."""
    storage = open_storage(storage_url, heartbeat_seconds=heartbeat_seconds or HEARTBEAT_SECONDS)
    _create(storage, study_name, metric)
    sampler = optuna.samplers.TPESampler(
        seed=worker_seed(seed, worker), n_startup_trials=startup_trials, constant_liar=True
    )
    return optuna.load_study(storage=storage, study_name=study_name, sampler=sampler, pruner=pruner)


def study_result(storage_url: str, study_name: str) -> TuneResult:
    """The best parameters of a shared study and every trial in it (all workers)."""
    storage = open_storage(storage_url, heartbeat_seconds=None)
    try:
        try:
            study = optuna.load_study(storage=storage, study_name=study_name)
        except KeyError:
            raise NotFoundError(
                f"there is no study {study_name!r} in {redact(storage_url)}",
                fix="check the study name, or start the tuning workers first",
            ) from None
        trials = study.get_trials(deepcopy=False)
        done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not done:
            raise NotFoundError(
                f"study {study_name!r} has no finished trial yet ({len(trials)} in other states)",
                fix="wait for the tuning workers, or let the tune step run trials itself (study_trials > 0)",
            )
        best = study.best_trial
        # Recorded when the study was created (older studies: the first metric of its direction).
        metric = study.user_attrs.get("metric") or next(
            (m for m, d in METRICS.items() if d == study.direction.name.lower()), "auc"
        )
        return TuneResult.from_best_trial(
            best, metric, [_summary(t) for t in trials], round(sum(_seconds(t) for t in trials), 3)
        )
    finally:
        _dispose(storage)


def _seconds(trial: optuna.trial.FrozenTrial) -> float:
    return trial.duration.total_seconds() if trial.duration is not None else 0.0


def _summary(trial: optuna.trial.FrozenTrial) -> TrialSummary:
    return TrialSummary(
        number=trial.number,
        state=trial.state.name.lower(),
        value=trial.value,
        best_iteration=trial.user_attrs.get("best_iteration"),
        seconds=round(_seconds(trial), 3),
        params=dict(trial.params),
        worker=int(trial.user_attrs.get("worker", 0)),
    )


def default_study_name(context: Mapping[str, Any]) -> str:
    """A name every worker of a pipeline run derives alike: model, snapshot, objective settings."""
    training = context["training"]
    objective = {key: training.get(key) for key in _OBJECTIVE_FIELDS}
    task = context.get("task", "binary")
    if task != "binary":  # binary names stay those of studies created before tasks existed
        objective["task"] = task
        objective["classes"] = (context.get("target") or {}).get("classes")
    payload = json.dumps([objective, context.get("definition_hash")], sort_keys=True, default=str)
    digest = hashlib.sha256(payload.encode()).hexdigest()[:10]
    return f"{context['model_name']}-{str(context['snapshot_id'])[:8]}-{digest}"


def tune_options(settings: TrainingSettings, task: str = "binary") -> dict[str, Any]:
    """The keyword arguments of :func:`noria.training.tune` that come from ``training:`` settings."""
    return {
        "seed": settings.seed,
        "timeout": settings.timeout_seconds,
        "num_threads": settings.num_threads,
        "metric": settings.metric_for(task),
        "max_rounds": settings.max_boost_rounds,
        "early_stopping_rounds": settings.early_stopping_rounds,
        "sample_rows": settings.tune_sample_rows,
    }
