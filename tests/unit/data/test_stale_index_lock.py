"""A git ``index.lock`` left by a killed ingest is cleared; one a live process holds is not.

The fault suite (tests/faults/test_ingest_faults.py) found it: SIGKILL while DVC stages the
``.dvc`` file through git's index left ``.git/index.lock``, and the rerun failed on it.
Real git repositories and processes; nothing is mocked.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from noria.data.versioning import clear_stale_index_lock


def _repo(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def test_a_lock_nobody_holds_is_removed(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    lock = root / ".git" / "index.lock"
    lock.write_bytes(b"")
    assert clear_stale_index_lock(root) == lock.resolve()
    assert not lock.exists()
    assert clear_stale_index_lock(root) is None  # nothing left to clear


def test_a_lock_a_running_process_holds_open_is_kept(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    lock = root / ".git" / "index.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import time; f = open({str(lock)!r}, 'wb'); print('open', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        assert clear_stale_index_lock(root) is None
        assert lock.exists()
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    assert clear_stale_index_lock(root) == lock.resolve()  # its holder is gone: now it is stale


def test_a_folder_outside_git_is_left_alone(tmp_path: Path) -> None:
    assert clear_stale_index_lock(tmp_path) is None


def test_dvc_tracks_a_folder_after_a_killed_run_left_the_lock(tmp_path: Path) -> None:
    from noria.data.versioning import ensure_repo, track

    root = _repo(tmp_path)
    ensure_repo(root, str(tmp_path / "remote"))
    folder = root / "data" / "dataset"
    folder.mkdir(parents=True)
    (folder / "part-0.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    (root / ".git" / "index.lock").write_bytes(b"")  # what SIGKILL during DVC's `git add` leaves
    version = track(root, folder)
    assert (root / "data" / "dataset.dvc").is_file() and version.md5
    assert not (root / ".git" / "index.lock").exists()
