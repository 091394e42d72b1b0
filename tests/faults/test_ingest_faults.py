"""SIGKILL during ``noria data ingest``, and two ingests at once on one project.

Real: the ``noria data ingest`` CLI in its own process (its own process group, killed with
SIGKILL), DVC (add, push to the project's local remote), git, Parquet, the lineage records.
Injected: only *where* the kill lands. Either the real CLI is killed as soon as the file system
shows it reached a point (its staging folder appears, DVC's lock file appears), or the CLI runs
in a Python process that wraps one Noria/DVC function with a pause (the function itself runs
unchanged), so the kill lands exactly at a chosen boundary: before the swap, before DVC, between
``dvc add`` and ``dvc push``, before the lineage record.

After every kill: the visible snapshots (``noria data list`` = the lineage records) are only
whole ones, ``data/dataset`` is the old version or the new one (never a mixture) and every
recorded snapshot reads back with its recorded row counts; then simply re-running the same
command completes with the snapshot id, files and parent that an uninterrupted ingest gives in a
twin project, and the DVC remote holds the whole new version.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SMALL_CONFIG, write_small_sources
from tests.faults.conftest import FaultRecord, full_mode, wait_for

NORIA = str(Path(sys.executable).with_name("noria"))
BASE = ("2013-01", "2013-01")
NEXT = ("2013-02", "2013-03")

# The real CLI, with one function wrapped by a pause at the chosen point (the function runs unchanged).
HOOKED_INGEST = r"""
import sys, time
from pathlib import Path

point, marker, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])


def pause():
    marker.touch()
    deadline = time.monotonic() + 300
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


import dvc.repo
from noria.data import ingest as ingest_mod, versioning

if point == "staged":  # the new version is complete in staging; nothing swapped yet
    real_swap = ingest_mod._swap
    def _swap(new, current):
        pause()
        real_swap(new, current)
    ingest_mod._swap = _swap
elif point == "swapped":  # data/dataset is the new version; DVC has not seen it yet
    real_track = versioning.track
    def track(*args, **kwargs):
        pause()
        return real_track(*args, **kwargs)
    versioning.track = track
elif point == "dvc-added":  # `dvc add` done (dataset.dvc names the new version); `dvc push` not started
    real_push = dvc.repo.Repo.push
    def push(self, *args, **kwargs):
        pause()
        return real_push(self, *args, **kwargs)
    dvc.repo.Repo.push = push
elif point == "pushed":  # pushed to the remote; the lineage record is not written yet
    real_track = versioning.track
    def track(*args, **kwargs):
        version = real_track(*args, **kwargs)
        pause()
        return version
    versioning.track = track
else:
    raise SystemExit(f"unknown point {point}")

from noria.cli import main

main(["--project", sys.argv[4], "data", "ingest", *sys.argv[5:]])
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NORIA_")}
    return env | {"MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1", "COLUMNS": "200"}


def make_project(root: Path) -> Path:
    """The small project of tests/conftest.py (3 months of 5 flights, 2 planes), a git repository."""
    root.mkdir(parents=True)
    (root / "noria.yaml").write_text(SMALL_CONFIG, encoding="utf-8")
    write_small_sources(root)
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    return root


def dataset_files(root: Path) -> dict[str, bytes]:
    dataset = root / "data" / "dataset"
    return {str(p.relative_to(dataset)): p.read_bytes() for p in sorted(dataset.rglob("*")) if p.is_file()}


def cli_ingest(root: Path, months: tuple[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NORIA, "--project", str(root), "data", "ingest", "--from", months[0], "--to", months[1], "--json"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def library_ingest(root: Path, months: tuple[str, str]) -> str:
    from noria.config import load_project
    from noria.data.ingest import ingest

    return ingest(load_project(root, environ={}), *months).record.id


@dataclass
class Twin:
    """What an uninterrupted ingest gives: ids, parent and files after BASE, then after NEXT."""

    base_id: str
    base_files: dict[str, bytes]
    final_id: str
    final_parent: str | None
    final_files: dict[str, bytes]


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Twin:
    from noria.config import load_project
    from noria.data.snapshots import get_record

    root = make_project(tmp_path_factory.mktemp("twin") / "proj")
    base = library_ingest(root, BASE)
    base_files = dataset_files(root)
    final = library_ingest(root, NEXT)
    record = get_record(load_project(root, environ={}), final)
    return Twin(base, base_files, final, record.parent, dataset_files(root))


@pytest.fixture
def project(tmp_path: Path, twin: Twin) -> Iterator[Path]:
    """A project holding the BASE snapshot (ingested in this process, uninterrupted)."""
    for var in list(os.environ):
        if var.startswith("NORIA_"):
            os.environ.pop(var)
    root = make_project(tmp_path / "proj")
    assert library_ingest(root, BASE) == twin.base_id, "the same data must give the same id in every project"
    yield root


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL the process group this test started (the CLI and anything it spawned)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def state(root: Path, twin: Twin) -> dict[str, Any]:
    """What a killed ingest left, checked for consistency: only whole snapshots are visible."""
    from noria.config import load_project
    from noria.data.snapshots import list_snapshots, open_snapshot, tracked_version

    project = load_project(root, environ={})
    records = list_snapshots(project)
    ids = [r.id for r in records]
    assert ids in ([twin.base_id], [twin.base_id, twin.final_id]), f"unexpected snapshots {ids}"
    for record in records:  # every visible snapshot reads back whole, with its recorded row counts
        snap = open_snapshot(project, record.id)
        for table, account in record.tables.items():
            assert len(snap.read(table)) == account.rows_in_snapshot, (record.id, table)
    files = dataset_files(root)
    assert files in (twin.base_files, twin.final_files), "data/dataset is a mixture of two versions"
    tracked = tracked_version(project)
    return {
        "records": len(ids),
        "dataset": "new" if files == twin.final_files and files != twin.base_files else "old",
        "dvc_file": "new" if tracked and tracked.md5 == twin.final_id else "old",
        "staging_left": bool(list((root / "data").glob(".staging-*"))),
    }


def rerun_and_check(root: Path, twin: Twin) -> str:
    """Re-run the very same command: it completes as an uninterrupted ingest would have."""
    from noria.config import load_project
    from noria.data.snapshots import get_record, list_snapshots, open_snapshot

    done = cli_ingest(root, NEXT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    printed = json.loads(done.stdout)
    assert printed["id"] == twin.final_id
    project = load_project(root, environ={})
    assert [r.id for r in list_snapshots(project)] == [twin.base_id, twin.final_id]
    assert dataset_files(root) == twin.final_files
    assert not list((root / "data").glob(".staging-*")) and not list((root / "data").glob(".*.old"))
    # The remote holds the whole new version (and the old one): read both with the DVC cache gone.
    shutil.rmtree(root / ".dvc" / "cache")
    for snapshot_id in (twin.base_id, twin.final_id):
        record = get_record(project, snapshot_id)
        snap = open_snapshot(project, snapshot_id)
        for table, account in record.tables.items():
            assert len(snap.read(table)) == account.rows_in_snapshot
    parent = get_record(project, twin.final_id).parent
    assert parent == twin.final_parent, (
        f"the lineage record of the re-run names parent {parent}, an uninterrupted ingest names {twin.final_parent}"
    )
    return str(printed["id"])


HOOK_POINTS = ["staged", "swapped", "dvc-added", "pushed"]


# A run killed after `dvc add` leaves data/dataset.dvc naming a version that has no lineage
# record: the re-run must still name the previous snapshot as its parent (found by these cases;
# fixed in src/noria/data/ingest.py::_parent).
@pytest.mark.parametrize("point", HOOK_POINTS)
def test_sigkill_at_each_ingest_boundary_then_rerun(
    point: str, project: Path, twin: Twin, tmp_path: Path, fault_record: FaultRecord
) -> None:
    fault_record.fault = f"SIGKILL of `noria data ingest` at the boundary '{point}'"
    fault_record.checked = (
        "only whole snapshots visible; data/dataset old or new, never mixed; rerun gives the same id, "
        "files and parent as an uninterrupted ingest; remote holds the whole version"
    )
    fault_record.lost = None
    marker, go = tmp_path / "paused", tmp_path / "go"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            HOOKED_INGEST,
            point,
            str(marker),
            str(go),
            str(project),
            "--from",
            NEXT[0],
            "--to",
            NEXT[1],
        ],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_for(lambda: marker.exists() or proc.poll() is not None, 180, f"the ingest to reach {point}")
        assert proc.poll() is None, (proc.stderr.read() if proc.stderr else b"").decode()[-2000:]
    finally:
        kill_group(proc)
        if proc.stderr:
            proc.stderr.close()
    left = state(project, twin)
    fault_record.figures["state after kill"] = left
    assert left["records"] == 1, "a snapshot was recorded before it was whole"
    rerun = rerun_and_check(project, twin)
    fault_record.figures["rerun id == twin id"] = rerun[:8]
    fault_record.lost = 0


def _staging_appeared(root: Path) -> bool:
    return any((root / "data").glob(".staging-*"))


def _dvc_running(root: Path) -> bool:
    tmp = root / ".dvc" / "tmp"
    return (tmp / "rwlock").exists() and (tmp / "rwlock").stat().st_size > 2


WATCHED: dict[str, Callable[[Path], bool]] = {
    "staging folder appears": _staging_appeared,
    "DVC holds its lock (add/push running)": _dvc_running,
}


@pytest.mark.parametrize("trigger", list(WATCHED))
def test_sigkill_of_the_plain_cli_when_the_disk_shows_progress(
    trigger: str, project: Path, twin: Twin, fault_record: FaultRecord
) -> None:
    """No hook at all: the real CLI is killed as soon as the file system shows the trigger."""
    fault_record.fault = f"SIGKILL of the plain `noria data ingest` process group when the {trigger}"
    fault_record.checked = "consistent state after the kill; rerun gives the twin's id, files and remote content"
    fault_record.lost = None
    watch = WATCHED[trigger]
    proc = subprocess.Popen(
        [NORIA, "--project", str(project), "data", "ingest", "--from", NEXT[0], "--to", NEXT[1]],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    fired = False
    try:
        deadline = time.monotonic() + 180
        while proc.poll() is None and time.monotonic() < deadline:
            if watch(project):
                fired = True
                break
            time.sleep(0.002)
    finally:
        kill_group(proc)
    left = state(project, twin)
    fault_record.figures["trigger seen before exit"] = fired
    fault_record.figures["state after kill"] = left
    rerun_and_check(project, twin)
    fault_record.lost = 0


def test_sigkill_at_fixed_delays_then_rerun(project: Path, twin: Twin, fault_record: FaultRecord) -> None:
    """No hook: the real CLI killed after fixed delays (wherever it is), each followed by the checks."""
    delays = [1.5, 3.0, 4.0, 5.0, 5.5, 6.0, 6.5, 7.5] if full_mode() else [3.5, 5.0, 6.0]
    fault_record.fault = f"SIGKILL of `noria data ingest` after {', '.join(f'{d:g}' for d in delays)} s, in turn"
    fault_record.checked = "after each kill: consistent state; then one rerun gives the twin's id, files, parent"
    fault_record.lost = None
    seen = []
    for delay in delays:
        proc = subprocess.Popen(
            [NORIA, "--project", str(project), "data", "ingest", "--from", NEXT[0], "--to", NEXT[1]],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            time.sleep(delay)
            finished = proc.poll() is not None
        finally:
            kill_group(proc)
        left = state(project, twin)
        seen.append(f"{delay:g}s: {'finished' if finished else 'killed'} {left}")
        if left["records"] == 2:
            break  # it completed: nothing more to interrupt
    fault_record.figures["kills"] = seen
    rerun_and_check(project, twin)
    fault_record.lost = 0


HOLD_LOCK = HOOKED_INGEST  # paused at "staged" the first ingest holds the project's ingest lock


def test_two_ingests_at_once_the_second_is_refused_with_the_fix(
    project: Path, twin: Twin, tmp_path: Path, fault_record: FaultRecord
) -> None:
    fault_record.fault = "a second `noria data ingest` while one is running in the same project"
    fault_record.checked = "second refused at once naming the fix (lock); first completes; result == one ingest"
    fault_record.lost = None
    marker, go = tmp_path / "paused", tmp_path / "go"
    first = subprocess.Popen(
        [
            sys.executable,
            "-c",
            HOLD_LOCK,
            "staged",
            str(marker),
            str(go),
            str(project),
            "--from",
            NEXT[0],
            "--to",
            NEXT[1],
            "--json",
        ],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for(lambda: marker.exists() or first.poll() is not None, 180, "the first ingest to hold the lock")
        started = time.monotonic()
        second = cli_ingest(project, NEXT)
        refused_in = time.monotonic() - started
        go.touch()
        out, err = first.communicate(timeout=180)
    finally:
        kill_group(first)
    message = second.stdout + second.stderr
    assert second.returncode != 0, message
    assert "another `noria data ingest` is running in this project" in message, message
    assert "wait for it to finish, then retry" in message, message
    assert first.returncode == 0, err[-2000:]
    assert json.loads(out)["id"] == twin.final_id
    left = state(project, twin)
    assert left["records"] == 2 and dataset_files(project) == twin.final_files
    fault_record.figures["second refused after (s, incl. start-up)"] = round(refused_in, 1)
    fault_record.figures["second's message"] = " ".join(message.split())[:160]
    fault_record.lost = 0


def test_two_plain_ingests_started_together_never_interleave(
    project: Path, twin: Twin, fault_record: FaultRecord
) -> None:
    """No hook: two real CLIs started at the same moment; whichever way they race, one result."""
    fault_record.fault = "two plain `noria data ingest` started together on one project"
    fault_record.checked = "each either succeeds or is refused by the lock; final state == one ingest"
    fault_record.lost = None
    cmd = [NORIA, "--project", str(project), "data", "ingest", "--from", NEXT[0], "--to", NEXT[1], "--json"]
    procs = [
        subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        if proc.returncode == 0:
            outcomes.append("ok")
            assert json.loads(out)["id"] == twin.final_id
        else:
            assert "another `noria data ingest` is running" in out + err, out + err
            outcomes.append("refused (lock)")
    assert "ok" in outcomes
    left = state(project, twin)
    assert left["records"] == 2 and dataset_files(project) == twin.final_files
    fault_record.figures["outcomes"] = outcomes
    fault_record.lost = 0


@pytest.mark.integration
def test_s3_dies_when_dvc_push_starts_then_comes_back(
    tmp_path: Path, twin: Twin, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecord
) -> None:
    """Real SeaweedFS (S3) as the DVC remote, SIGKILLed by its PID the moment ``dvc push`` starts
    (the ingest waits at that point until the server is dead), then started again on the same
    data folder."""
    from tests.integration.s3_support import seaweed

    fault_record.fault = "S3 (SeaweedFS) killed as `dvc push` of an ingest starts; restarted"
    fault_record.checked = (
        "ingest fails in bounded time naming the remote and the fix; no snapshot recorded; after restart "
        "a plain rerun pushes the whole version (read back with no DVC cache) with the twin's id"
    )
    fault_record.lost = None
    for var in list(os.environ):
        if var.startswith("NORIA_"):
            monkeypatch.delenv(var)
    root = make_project(tmp_path / "proj")
    config = (root / "noria.yaml").read_text() + "storage: {dvc_remote: 's3://noria-faults/data'}\n"
    (root / "noria.yaml").write_text(config)
    store = tmp_path / "seaweed"
    with seaweed(store) as s3:
        s3.create_bucket("noria-faults")
        for var, value in s3.env().items():
            monkeypatch.setenv(var, value)
        assert library_ingest(root, BASE) == twin.base_id
        marker, go = tmp_path / "paused", tmp_path / "go"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                HOOKED_INGEST,
                "dvc-added",
                str(marker),
                str(go),
                str(root),
                "--from",
                NEXT[0],
                "--to",
                NEXT[1],
            ],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        wait_for(lambda: marker.exists() or proc.poll() is not None, 180, "the ingest to reach dvc push")
    # SeaweedFS is SIGKILLed (by its PID) on leaving the block: now let the push run into it.
    try:
        started = time.monotonic()
        go.touch()
        out, err = proc.communicate(timeout=600)
        failed_after = time.monotonic() - started
    finally:
        kill_group(proc)
    message = " ".join((out + err).split())
    fault_record.figures["push failed after (s)"] = round(failed_after, 1)
    fault_record.figures["error"] = message[-300:]
    assert proc.returncode != 0, message[-2000:]
    assert "DVC could not track" in message and "storage.dvc_remote" in message, message[-2000:]
    assert failed_after < 300, "no bounded give-up"
    left = state(root, twin)
    fault_record.figures["state after failure"] = left
    assert left["records"] == 1, "a snapshot was recorded although its push failed"
    with seaweed(store) as s3:  # the same data folder: the base version must still be there
        for var, value in s3.env().items():
            monkeypatch.setenv(var, value)
        rerun_and_check(root, twin)
    fault_record.lost = 0
