"""SIGKILL of each pipeline step, and a damaged artifact in the pipeline cache.

Real: Noria's local runner and content-addressed artifact store (``noria.pipelines``), run in a
fresh Python process killed with SIGKILL; the artifacts are real files (Parquet, JSON) on disk.
The pipeline is a small one defined here (load -> features -> fit -> evaluate, numpy least
squares), shaped like the training pipeline, so each case takes seconds; the one injected thing
is a pause inside the chosen step (``FAULT_BLOCK=<step>``) so the kill lands in it. The damaged
artifact is a real file in the store's ``objects/`` changed on disk (one digit, or cut in half).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from noria.pipelines import LocalArtifactStore, Pipeline, run_pipeline, step
from tests.faults.conftest import FaultRecord, wait_for

REPO = Path(__file__).resolve().parents[2]


def _tick(name: str) -> None:
    folder = os.environ.get("FAULT_COUNTS")
    if folder:
        with (Path(folder) / f"{name}.count").open("a") as fh:
            fh.write("x\n")
    if os.environ.get("FAULT_BLOCK") == name:
        (Path(os.environ["FAULT_COUNTS"]) / f"{name}.blocked").touch()
        time.sleep(300)


@step
def load(rows: int) -> pd.DataFrame:
    _tick("load")
    rng = np.random.default_rng(7)
    x = rng.normal(size=(rows, 3))
    y = x @ np.array([1.5, -2.0, 0.5]) + rng.normal(scale=0.1, size=rows)
    return pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2], "y": y})


@step
def features(load: pd.DataFrame) -> pd.DataFrame:
    _tick("features")
    out = load.copy()
    out["x0x1"] = out["x0"] * out["x1"]
    return out


@step
def fit(features: pd.DataFrame, ridge: float) -> dict[str, float]:
    _tick("fit")
    cols = ["x0", "x1", "x2", "x0x1"]
    x = features[cols].to_numpy()
    coef = np.linalg.solve(x.T @ x + ridge * np.eye(len(cols)), x.T @ features["y"].to_numpy())
    return {c: float(v) for c, v in zip(cols, coef, strict=True)}


@step
def evaluate(fit: dict[str, float], features: pd.DataFrame, scale: float) -> dict[str, float]:
    _tick("evaluate")
    pred = sum(features[c] * w for c, w in fit.items())
    return {"rmse": float(np.sqrt(np.mean((features["y"] - pred) ** 2))) * scale}


FLOW = Pipeline("faults", [load, features, fit, evaluate], params={"rows": 2000, "ridge": 0.0, "scale": 1.0})
STEPS = list(FLOW.order)

RUN = """
import sys
from tests.faults.test_pipeline_faults import FLOW
from noria.pipelines import open_store, run_pipeline
run_pipeline(FLOW, open_store(sys.argv[1]), run_id=sys.argv[2], progress=False)
"""


def counts(folder: Path) -> dict[str, int]:
    return {p.stem: len(p.read_text().splitlines()) for p in folder.glob("*.count")}


@pytest.fixture
def counter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "counts"
    folder.mkdir()
    monkeypatch.setenv("FAULT_COUNTS", str(folder))
    monkeypatch.delenv("FAULT_BLOCK", raising=False)
    return folder


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Artifact ids of an uninterrupted run in a store of its own."""
    store = LocalArtifactStore(tmp_path_factory.mktemp("reference") / "store")
    result = run_pipeline(FLOW, store, run_id="reference", progress=False)
    return {name: r.outputs[name] for name, r in result.steps.items()}


@pytest.mark.parametrize("killed", STEPS)
def test_sigkill_in_each_step_then_the_same_run_resumes(
    killed: str, tmp_path: Path, counter: Path, reference: dict[str, str], fault_record: FaultRecord
) -> None:
    fault_record.fault = f"SIGKILL of a pipeline run inside step '{killed}'"
    fault_record.checked = (
        "run record says running, killed step has no record; rerun of the same run id resumes the finished "
        "steps, reruns the killed one once, outputs identical to an uninterrupted run"
    )
    fault_record.lost = None
    root = tmp_path / "store"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NORIA_")}
    env |= {"PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")]), "FAULT_BLOCK": killed}
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN, str(root), "killed"], env=env, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        wait_for(lambda: (counter / f"{killed}.blocked").exists() or proc.poll() is not None, 120, killed)
        assert proc.poll() is None, (proc.stderr.read() if proc.stderr else b"").decode()[-2000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()
    before = STEPS[: STEPS.index(killed)]
    store = LocalArtifactStore(root)
    run = store.read_record("runs/faults/killed/run.json")
    assert run is not None and run["status"] == "running" and sorted(run["steps"]) == sorted(before)
    assert store.read_record(f"runs/faults/killed/steps/{killed}.json") is None

    result = run_pipeline(FLOW, store, run_id="killed", progress=False)
    statuses = {name: r.status for name, r in result.steps.items()}
    assert statuses == {name: "resumed" if name in before else "ran" for name in STEPS}
    assert counts(counter) == {name: 2 if name == killed else 1 for name in STEPS}
    assert {name: r.outputs[name] for name, r in result.steps.items()} == reference
    assert store.read_record("runs/faults/killed/run.json")["status"] == "succeeded"  # type: ignore[index]
    fault_record.figures["statuses on rerun"] = statuses
    fault_record.lost = 0


def _damage(folder: Path, how: str) -> Path:
    files = [p for p in folder.rglob("*") if p.is_file() and p.name != "meta.json"]
    target = max(files, key=lambda p: p.stat().st_size)
    data = target.read_bytes()
    if how == "truncated":
        target.write_bytes(data[: len(data) // 2])
    else:  # one digit changed: still valid JSON / Parquet framing, a wrong value
        text = data.decode("utf-8")
        i = next(i for i, ch in enumerate(text) if ch.isdigit() and ch != "9")
        target.write_bytes((text[:i] + str(int(text[i]) + 1) + text[i + 1 :]).encode())
    return target


# "corrupted": the fit coefficients (JSON) get one digit changed - it still loads, with a wrong value.
# "truncated": the features table (Parquet) is cut in half - it no longer loads.
CASES = {"corrupted": "fit", "truncated": "features"}


@pytest.mark.parametrize("how", list(CASES))
def test_a_damaged_cached_artifact_is_detected_by_its_hash_and_recomputed(
    how: str, tmp_path: Path, counter: Path, reference: dict[str, str], fault_record: FaultRecord
) -> None:
    output = CASES[how]
    fault_record.fault = f"a {how} cached artifact (output '{output}') in the pipeline store"
    fault_record.checked = "detected by its sha256 on reuse, recomputed (never loaded), results equal to a clean run"
    fault_record.lost = None
    store_root = tmp_path / "store"
    first = run_pipeline(FLOW, LocalArtifactStore(store_root), run_id="first", progress=False)
    artifact = first.steps[output].outputs[output]
    damaged = _damage(store_root / "objects" / artifact[:2] / artifact, how)
    # A fresh store object (a new process would open one), a downstream parameter changed: the
    # step after the damaged one must run, so it would load the damaged artifact if it were reused.
    store = LocalArtifactStore(store_root)
    result = run_pipeline(FLOW, store, params={"scale": 2.0}, run_id="second", progress=False)
    statuses = {name: r.status for name, r in result.steps.items()}
    assert statuses[output] == "ran", f"the damaged {output!r} was reused: {statuses}"
    assert result.steps[output].outputs[output] == artifact  # recomputed, same content, same id
    loaded: Any = result.load(output)
    clean = run_pipeline(FLOW, LocalArtifactStore(tmp_path / "clean"), params={"scale": 2.0}, progress=False)
    expected: Any = clean.load(output)
    if isinstance(loaded, pd.DataFrame):
        pd.testing.assert_frame_equal(loaded, expected)
    else:
        assert loaded == expected
    assert result.load("evaluate") == clean.load("evaluate")
    assert not damaged.exists() or damaged.read_bytes() != b""  # moved aside or rewritten, never served
    fault_record.figures["statuses on rerun"] = statuses
    fault_record.figures["damaged file"] = damaged.name
    fault_record.lost = 0


def test_result_load_of_a_damaged_artifact_raises_naming_the_fix(
    tmp_path: Path, counter: Path, fault_record: FaultRecord
) -> None:
    fault_record.fault = "reading a run's output whose artifact was damaged on disk"
    fault_record.checked = "a clear error naming the fix instead of wrong values; a rerun heals it"
    fault_record.lost = None
    store_root = tmp_path / "store"
    first = run_pipeline(FLOW, LocalArtifactStore(store_root), run_id="first", progress=False)
    artifact = first.steps["fit"].outputs["fit"]
    _damage(store_root / "objects" / artifact[:2] / artifact, "corrupted")
    first.store = LocalArtifactStore(store_root)
    from noria.errors import NoriaError

    with pytest.raises(NoriaError) as caught:
        first.load("fit")
    assert "hash" in str(caught.value) and caught.value.fix and "re-run" in caught.value.fix
    again = run_pipeline(FLOW, LocalArtifactStore(store_root), run_id="again", progress=False)
    assert again.steps["fit"].status == "ran" and again.load("fit") == json.loads(json.dumps(again.load("fit")))
    fault_record.figures["error"] = str(caught.value)
    fault_record.lost = 0
