"""A run killed with SIGKILL resumes from its last finished step and never reads a partial artifact."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pipelines_flows as flows
import pytest

from noria.pipelines import LocalArtifactStore, run_pipeline

RUN = """
import sys
import pipelines_flows as flows
from noria.pipelines import open_store, run_pipeline
run_pipeline(flows.slow, open_store(sys.argv[1]), run_id=sys.argv[2], progress=False)
"""


def start_and_kill(python: str, env: dict[str, str], store: Path, run_id: str, counter: Path) -> None:
    proc = subprocess.Popen([python, "-c", RUN, str(store), run_id], env=env, stderr=subprocess.PIPE)
    marker = counter / "stuck.blocked"
    deadline = time.monotonic() + 60
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before blocking: {proc.stderr.read().decode() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the run never reached the blocking step")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    if proc.stderr:
        proc.stderr.close()


@pytest.mark.parametrize("where", ["step", "write"])
def test_sigkill_then_resume(
    where: str, python: str, fresh_env: dict[str, str], tmp_path: Path, counter: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "store"
    start_and_kill(python, fresh_env | {"PIPE_TEST_BLOCK": where}, root, "killed", counter)
    assert flows.counts(counter) == {"first": 1, "second": 1, "stuck": 1}

    store = LocalArtifactStore(root)
    record = store.read_record("runs/slow/killed/run.json")
    assert record is not None and record["status"] == "running" and list(record["steps"]) == ["first", "second"]
    assert store.read_record("runs/slow/killed/steps/stuck.json") is None
    if where == "write":
        # The half-written output is on disk, in staging only: never in objects/, never recorded.
        partial = list(store.staging.rglob("blob.bin"))
        assert len(partial) == 1 and 0 < partial[0].stat().st_size < 6000
        in_objects = list((root / "objects").rglob("blob.bin"))
        assert in_objects == []

    # Resume the same run in this process: finished steps are reused, the killed one reruns whole.
    monkeypatch.delenv("PIPE_TEST_BLOCK", raising=False)
    result = run_pipeline(flows.slow, store, run_id="killed", progress=False)
    statuses = {name: r.status for name, r in result.steps.items()}
    assert statuses == {"first": "resumed", "second": "resumed", "stuck": "ran", "model_file": "ran"}
    assert flows.counts(counter) == {"first": 1, "second": 1, "stuck": 2, "model_file": 1}
    blob = result.load("stuck")
    assert blob.data == b"1225.0" * 1000  # complete: sum(range(50)) = 1225
    assert store.read_record("runs/slow/killed/run.json")["status"] == "succeeded"  # type: ignore[index]

    # A new run id finds everything in the cache.
    again = run_pipeline(flows.slow, store, progress=False)
    assert {r.status for r in again.steps.values()} == {"cached"}
    assert result.load("model_file").read_text() == "sum=1225.0\n"
