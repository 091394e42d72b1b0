"""The real training pipeline under faults: SIGKILL in each step, and a full disk under its store.

Real: the tiny regression project of tests/e2e/test_training_pipeline.py (720 synthetic events
from a directory source, Feast's registry, DuckDB point-in-time joins, LightGBM with two Optuna
trials, MLflow on SQLite; a whole run takes seconds), one real ingest, and the
``noria pipeline run training --run-id R`` CLI as a child process in its own process group.
Nothing is mocked and nothing is paused.

SIGKILL: the group is killed the moment the run's record of the step before the chosen one
appears in the pipeline store (``.noria/artifacts/runs/training/R/steps/<step>.json``; the
store is ``storage.artifacts_dir`` while ``pipelines.store`` is unset), or, for three extra
register points, when MLflow holds the run's first artifact file, the logged model's
``model.lgb``, or the new model version (read from the SQLite tracking database). The same
command is then run again with the same run id; its outputs are compared with an uninterrupted
run in a twin project (same files, another folder). ``FAULTS_FULL=1`` kills in every step and at
every register point; the default run kills in training_set, tune, register and at the new version.

Full disk: a real tmpfs of 2 MiB (``mount -t tmpfs``, needs root or CAP_SYS_ADMIN; CI fails
rather than skips without it) mounted as the project's pipeline store and filled to the last
byte (or to 160 KiB short of it, so the run dies part-way), then freed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from noria.training.pipeline import training_pipeline
from tests.e2e.test_training_pipeline import tiny_project
from tests.faults.conftest import FaultRecord, full_mode, wait_for
from tests.faults.test_concurrency_faults import _env, error_line, pipeline_cmd, store_consistency
from tests.faults.test_serving_faults import fill, tmpfs

MODEL = "tiny-reg"  # the tiny regression project's model
STEPS = list(training_pipeline().order)
# Outputs that are pure content: an interrupted-then-resumed run must give the very artifacts of an
# uninterrupted one. (training_set_info names the project's folder; tune, report, register and gate carry
# timings, dates or MLflow ids: they differ between any two runs, killed or not.)
CONTENT = ("context", "training_set", "train_rows", "test_rows", "split_info", "train", "evaluation")
# kill point -> the step it lands in. A plain step name: killed when the step before it is on record.
KILL_POINTS = {name: name for name in STEPS} | {
    "register@run-artifacts": "register",  # the MLflow run is open (RUNNING) and uploading artifacts
    "register@model-logged": "register",  # the logged model's files are there; the version is next
    "register@version-created": "register",  # the registry holds the new version; the run is not closed yet
}
# Without FAULTS_FULL, two points that cover both kinds: a pure step (tune) and the registry write
# (a version created, the step not yet on record); `make faults` kills in every step.
POINTS = list(KILL_POINTS) if full_mode() else ["tune", "register@version-created"]


@contextlib.contextmanager
def clean_noria_env() -> Iterator[None]:
    """No NORIA_* variable of the caller's shell reaches the in-process ingest."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("NORIA_")}
    try:
        yield
    finally:
        os.environ.update(saved)


def ingested(root: Path) -> Path:
    """The tiny regression project, its six months ingested (one snapshot)."""
    from noria.config import load_project
    from noria.data.ingest import ingest

    with clean_noria_env():
        tiny_project(root, "regression")
        ingest(load_project(root, environ={}), "2020-01", "2020-06")
    return root


def store_root(root: Path) -> Path:
    """The project's pipeline store (the default: ``storage.artifacts_dir``)."""
    from noria.config import load_project
    from noria.pipelines._project import store_for_project

    return Path(store_for_project(load_project(root, environ={})).url)


def run_folder(root: Path, run_id: str) -> Path:
    return store_root(root) / "runs" / "training" / run_id


def recorded_steps(run: Path) -> list[str]:
    steps = run / "steps"
    return sorted(p.stem for p in steps.glob("*.json")) if steps.is_dir() else []


def outputs_of(result: dict[str, Any]) -> dict[str, str]:
    return {out: aid for st in result["steps"].values() for out, aid in st["outputs"].items()}


def statuses_of(result: dict[str, Any]) -> dict[str, str]:
    return {name: st["status"] for name, st in result["steps"].items()}


def kill_ready(point: str, root: Path, run: Path) -> Callable[[], bool]:
    """True once the run reached ``point`` (see KILL_POINTS)."""
    mlartifacts = root / ".noria" / "mlartifacts"
    if point == "register@run-artifacts":
        return lambda: any(mlartifacts.glob("*/artifacts/*"))
    if point == "register@model-logged":
        return lambda: any((mlartifacts / "models").glob("*/artifacts/model.lgb"))
    if point == "register@version-created":
        return lambda: versions_in(root / ".noria" / "mlflow.db") > 0
    at = STEPS.index(KILL_POINTS[point])
    marker = run / "run.json" if at == 0 else run / "steps" / f"{STEPS[at - 1]}.json"
    return marker.exists


def versions_in(db: Path) -> int:
    """Model versions in the SQLite tracking database, read-only (0 while it or its tables do not exist)."""
    try:
        with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=1)) as con:
            return int(con.execute("SELECT count(*) FROM model_versions").fetchone()[0])
    except sqlite3.Error:
        return 0


def intact_objects(store: Path) -> tuple[int, list[str]]:
    """How many artifacts ``objects/`` holds and which of them no longer match their content id."""
    from noria.pipelines._store import hash_folder

    folders = [p for p in (store / "objects").glob("*/*") if p.is_dir()]
    return len(folders), sorted(p.name[:12] for p in folders if hash_folder(p) != p.name)


def registry_state(root: Path) -> dict[str, Any]:
    """Every version READY and loadable; MLflow run statuses; logged models that no version uses."""
    from noria.config import load_project
    from noria.registry import load_model
    from noria.registry.mlflow_client import get_client

    project = load_project(root, environ={})
    client = get_client(project)
    found = sorted(client.search_model_versions(f"name = '{MODEL}'"), key=lambda v: int(v.version))
    versions: dict[int, str] = {}
    for version in found:
        assert version.status == "READY", (version.version, version.status)
        assert load_model(project, f"{MODEL}/{version.version}").booster.num_trees() > 0, version.version
        versions[int(version.version)] = client.get_run(version.run_id).info.status
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments)
    logged = client.search_logged_models(experiment_ids=experiments)
    sources = " ".join(v.source for v in found)  # a version's source is its logged model's artifact folder
    aliases = {a: int(v) for a, v in client.get_registered_model(MODEL).aliases.items()} if found else {}
    return {
        "versions (run status)": versions,
        "run statuses": sorted(r.info.status for r in runs),
        "logged models": len(logged),
        "logged models without a version": sorted(str(m.status) for m in logged if m.model_id not in sources),
        "aliases": aliases,
        "run of version": {int(v.version): v.run_id for v in found},
        "abandoned versions": sorted(int(v.version) for v in found if "noria.abandoned" in (v.tags or {})),
    }


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Output ids of an uninterrupted run of the same command in a twin project."""
    root = ingested(tmp_path_factory.mktemp("twin") / "tiny")
    done = subprocess.run(pipeline_cmd(root, "twin"), env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert set(statuses_of(result).values()) == {"ran"}
    return outputs_of(result)


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_sigkill_in_a_training_step_then_the_same_run_resumes(
    point: str, tmp_path: Path, twin: dict[str, str], fault_record: FaultRecord
) -> None:
    killed = KILL_POINTS[point]
    fault_record.fault = f"SIGKILL of `noria pipeline run training` (whole process group) in step '{point}'"
    fault_record.checked = (
        "the killed run is on record as running with only finished steps; the store holds no record naming a "
        "missing or damaged artifact; a rerun with the same --run-id completes, reports the finished steps "
        "resumed, and its deterministic outputs (context, training set, split, model, evaluation) equal an "
        "uninterrupted run's in a twin project; every registered version READY and loadable, no MLflow run RUNNING"
    )
    fault_record.lost = None
    root = ingested(tmp_path / "tiny")
    run = run_folder(root, "killed")
    ready = kill_ready(point, root, run)
    err_path = tmp_path / "killed.stderr"
    started = time.monotonic()
    with err_path.open("wb") as err:
        proc = subprocess.Popen(
            pipeline_cmd(root, "killed"), env=_env(), stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
        )
    try:
        wait_for(lambda: ready() or proc.poll() is not None, 300, f"kill point {point}", poll=0.01)
        alive = proc.poll() is None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    tail = err_path.read_text(errors="replace")[-3000:]
    assert alive, f"the run ended (exit {proc.returncode}) before the kill point {point}: {tail}"
    assert proc.returncode == -signal.SIGKILL
    fault_record.figures["seconds to the kill"] = round(time.monotonic() - started, 1)

    finished = recorded_steps(run)
    landed = next(name for name in STEPS if name not in finished)
    fault_record.figures["steps on record at the kill"] = len(finished)
    fault_record.figures["kill landed in"] = landed
    assert set(STEPS[: STEPS.index(killed)]) <= set(finished), finished
    assert finished == sorted(STEPS[: STEPS.index(landed)]), f"records out of order: {finished}"
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "running", record["status"]
    at_kill = {name: json.loads((run / "steps" / f"{name}.json").read_text())["outputs"] for name in finished}
    store = store_consistency(root)
    fault_record.figures["store after the kill"] = {k: v if isinstance(v, int) else len(v) for k, v in store.items()}
    assert not store["broken"], f"records naming missing or damaged artifacts: {store['broken']}"
    assert not store["damaged"], store["damaged"]

    again = subprocess.run(pipeline_cmd(root, "killed"), env=_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    result = json.loads(again.stdout)
    statuses = statuses_of(result)
    fault_record.figures["statuses on rerun"] = statuses
    fault_record.figures["rerun seconds"] = round(result["seconds"], 1)
    for name in STEPS:
        if name in finished:
            assert statuses[name] == "resumed", (name, statuses)
            assert result["steps"][name]["outputs"] == at_kill[name], name
        elif name == landed:  # its cache entry may be written, its step record not yet
            assert statuses[name] in ("ran", "cached"), (name, statuses)
        else:
            assert statuses[name] == "ran", (name, statuses)
    produced = outputs_of(result)
    differ = [out for out in CONTENT if produced[out] != twin[out]]
    assert not differ, f"outputs differ from the uninterrupted twin run: {differ}"
    fault_record.figures["outputs equal to the twin run"] = list(CONTENT)
    assert json.loads((run / "run.json").read_text())["status"] == "succeeded"
    store = store_consistency(root)
    assert not store["broken"] and not store["damaged"], store

    registry = registry_state(root)
    fault_record.figures["versions registered"] = len(registry["versions (run status)"])
    for key in ("versions (run status)", "run statuses", "logged models", "logged models without a version"):
        fault_record.figures[key] = registry[key]
    assert "RUNNING" not in registry["run statuses"], registry["run statuses"]
    from noria.pipelines._serializers import load_artifact
    from noria.pipelines._store import LocalArtifactStore

    registered = load_artifact(LocalArtifactStore(store_root(root)).get(produced["register"]))
    assert registry["run of version"][registered["version"]] == registered["run_id"]
    assert registry["versions (run status)"][registered["version"]] == "FINISHED"
    # a version a killed attempt created is marked abandoned (never promoted without --force)
    failed = sorted(v for v, status in registry["versions (run status)"].items() if status == "FAILED")
    assert registry["abandoned versions"] == failed, registry
    fault_record.figures["abandoned versions"] = failed
    if failed:
        from noria.config import load_project
        from noria.errors import ValidationError
        from noria.registry import promote

        with pytest.raises(ValidationError, match="was abandoned"):
            promote(load_project(root, environ={}), MODEL, failed[0], reason="try the killed attempt's version")
    decision = load_artifact(LocalArtifactStore(store_root(root)).get(produced["gate"]))
    if decision["promoted"]:
        assert registry["aliases"].get("champion") == registered["version"], (registry["aliases"], registered)
    fault_record.lost = 0


class UnclearStoreError(AssertionError):
    """The CLI's answer to a full pipeline store is not one error line naming the store, ENOSPC and a fix."""


# how full the store's disk is when the run starts: KiB left free
FREE_KIB = {"full": 0, "nearly-full": 160}


@pytest.mark.slow
@pytest.mark.parametrize(
    "how",
    [pytest.param(how) for how in FREE_KIB],
)
def test_full_pipeline_store_fails_in_bounded_time_keeps_nothing_half_written_and_recovers(
    how: str, tmp_path: Path, fault_record: FaultRecord
) -> None:
    fault_record.fault = (
        f"the pipeline artifact store's disk is {how} (a real 2 MiB tmpfs as the project's store, "
        f"{FREE_KIB[how]} KiB free) during `noria pipeline run training`, then freed"
    )
    fault_record.checked = (
        "fails within 120 s naming ENOSPC; no record names a missing or damaged artifact, every stored "
        "artifact matches its id, no half-written temp file; after freeing space the same command "
        "(same --run-id) completes, resuming what finished; the error is one line naming the store and the fix"
    )
    fault_record.lost = None
    root = ingested(tmp_path / "tiny")
    store = store_root(root)
    cmd = pipeline_cmd(root, "disk")
    with tmpfs(store, "2m") as disk:
        filler = fill(disk)
        if FREE_KIB[how]:
            os.truncate(filler, filler.stat().st_size - FREE_KIB[how] * 1024)
        fault_record.figures["KiB free at the start"] = shutil.disk_usage(disk).free // 1024
        started = time.monotonic()
        failed = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
        seconds = time.monotonic() - started
        line = error_line(failed.stderr)
        fault_record.figures["seconds to fail"] = round(seconds, 1)
        fault_record.figures["exit code"] = failed.returncode
        fault_record.figures["error (last line)"] = line[:300]
        assert failed.returncode != 0, "the run succeeded on a full store"
        assert seconds < 120, f"the run took {seconds:.0f} s to fail on a full store"
        assert "No space left on device" in failed.stderr or "errno 28" in failed.stderr, failed.stderr[-3000:]

        run = store / "runs" / "training" / "disk"
        finished = recorded_steps(run)
        fault_record.figures["steps on record when it failed"] = finished
        record = json.loads((run / "run.json").read_text()) if (run / "run.json").is_file() else None
        fault_record.figures["run record status"] = record["status"] if record else None
        consistency = store_consistency(root)
        objects, mismatched = intact_objects(store)
        temp = sorted(p.name for p in store.rglob("*.tmp"))
        fault_record.figures["store after the failure"] = {
            "records": consistency["records"],
            "artifacts": objects,
            "staging entries left": len(consistency["staging left"]),
            "temp files left": len(temp),
        }
        assert not consistency["broken"], f"records naming missing or damaged artifacts: {consistency['broken']}"
        assert not consistency["damaged"] and not mismatched, (consistency["damaged"], mismatched)
        assert not temp, f"half-written temp files left: {temp}"

        filler.unlink()
        again = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr[-3000:]
        statuses = statuses_of(json.loads(again.stdout))
        fault_record.figures["statuses after freeing"] = statuses
        assert all(statuses[name] == "resumed" for name in finished), statuses
        assert all(statuses[name] in ("ran", "cached") for name in STEPS if name not in finished), statuses
        assert json.loads((run / "run.json").read_text())["status"] == "succeeded"
        after = store_consistency(root)
        assert not after["broken"] and not after["damaged"], after
    fault_record.lost = 0

    clear = (
        line.startswith("error:")
        and " -- fix: " in line
        and str(store) in line
        and ("No space left" in line or "full" in line)
    )
    if not clear:
        raise UnclearStoreError(f"a full store gives no clear error line; stderr ends: {failed.stderr[-1500:]}")
