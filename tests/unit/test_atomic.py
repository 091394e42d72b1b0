"""noria.atomic: content appears whole or not at all, modes, folders, another file system, a killed writer."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from noria import atomic


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_write_text_bytes_and_json(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "a.txt"  # missing folders are made
    assert atomic.write_text(target, "héllo") == target
    assert target.read_bytes() == "héllo".encode()
    atomic.write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    record = {"b": 1, "a": [1.5, None]}
    atomic.write_json(tmp_path / "r.json", record, indent=1, sort_keys=True)
    assert (tmp_path / "r.json").read_text() == json.dumps(record, indent=1, sort_keys=True) + "\n"
    assert names(tmp_path) == ["deep", "r.json"] and names(target.parent) == ["a.txt"]


def test_failure_mid_write_keeps_the_old_content_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "t.parquet"
    atomic.write_text(target, "old")
    with pytest.raises(RuntimeError, match="writer died"), atomic.temp_path(target) as tmp:
        tmp.write_text("half of the new cont")
        assert target.read_text() == "old"  # nothing visible while the write runs
        raise RuntimeError("writer died")
    assert target.read_text() == "old"
    assert names(tmp_path) == ["t.parquet"]


def test_a_failing_fsync_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "rec.json"
    atomic.write_bytes(target, b'{"v": 1}')

    def crash(fd: int) -> None:
        raise OSError(errno.EIO, "disk gone")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk gone"):
        atomic.write_bytes(target, b'{"v": 2, "partial": tr')
    assert json.loads(target.read_text()) == {"v": 1}
    assert names(tmp_path) == ["rec.json"]  # no temp file left behind


def test_the_file_is_synced_before_the_rename_and_the_folder_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, Path.replace

    def fsync(fd: int) -> None:
        events.append("fsync dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync file")
        real_fsync(fd)

    def replace(self: Path, target: Path) -> Path:
        events.append("rename")
        return real_replace(self, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(Path, "replace", replace)
    atomic.write_text(tmp_path / "a", "x")
    assert events == ["fsync file", "rename", "fsync dir"]


def test_modes(tmp_path: Path, umask_022: None) -> None:
    new = atomic.write_text(tmp_path / "new", "x")
    assert new.stat().st_mode & 0o777 == 0o644  # what open() gives under the umask
    os.umask(0o077)
    assert atomic.write_text(tmp_path / "private", "x").stat().st_mode & 0o777 == 0o600
    assert atomic.write_text(tmp_path / "shared", "x", mode=atomic.SHARED).stat().st_mode & 0o777 == 0o644
    kept = tmp_path / "kept"
    kept.write_text("old")
    kept.chmod(0o640)
    atomic.write_text(kept, "new")  # a replaced file keeps its mode
    assert kept.stat().st_mode & 0o777 == 0o640 and kept.read_text() == "new"
    with atomic.temp_path(kept) as tmp:
        pq.write_table(pa.table({"a": [1]}), tmp)  # a writer that opens the path itself
    assert kept.stat().st_mode & 0o777 == 0o640


def test_temp_path_for_writers_that_need_a_path(tmp_path: Path) -> None:
    target = tmp_path / "pipeline.yaml"
    with atomic.temp_path(target, suffix=".yaml") as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".tmp.yaml") and tmp.name.startswith(".pipeline.yaml.")
        assert atomic.is_temp(tmp) and not target.exists()
        tmp.write_text("kind: Pipeline\n")
    assert target.read_text() == "kind: Pipeline\n" and names(tmp_path) == ["pipeline.yaml"]
    table = tmp_path / "t.parquet"
    with atomic.temp_path(table) as tmp:
        pq.write_table(pa.table({"a": [1, 2, 3]}), tmp)
    assert pq.read_table(table).column("a").to_pylist() == [1, 2, 3]


def test_is_temp() -> None:
    assert atomic.is_temp(".rec.json.0a1b2c3d.tmp") and atomic.is_temp(".p.yaml.0a1b2c3d.tmp.yaml")
    assert atomic.is_temp(".dataset.old")
    for name in ("rec.json", ".hidden", "x.tmp", ".rec.json.tmp", "data.parquet"):
        assert not atomic.is_temp(name), name


def test_publish_dir_new_and_replacing(tmp_path: Path) -> None:
    target = tmp_path / "dataset"
    with atomic.publish_dir(target) as build:
        assert build.parent == tmp_path and atomic.is_temp(build) and not target.exists()
        (build / "month=2013-01").mkdir()
        (build / "month=2013-01" / "part.parquet").write_text("v1")
    assert (target / "month=2013-01" / "part.parquet").read_text() == "v1"
    with atomic.publish_dir(target) as build:
        (build / "other.txt").write_text("v2")
        assert (target / "month=2013-01" / "part.parquet").read_text() == "v1"  # readers still see v1
    assert names(target) == ["other.txt"] and names(tmp_path) == ["dataset"]  # no temp, no .old


def test_publish_dir_failure_keeps_the_old_folder(tmp_path: Path) -> None:
    target = tmp_path / "dataset"
    with atomic.publish_dir(target) as build:
        (build / "a.txt").write_text("old")
    with pytest.raises(ValueError, match="bad row"), atomic.publish_dir(target) as build:
        (build / "a.txt").write_text("ne")
        raise ValueError("bad row")
    assert (target / "a.txt").read_text() == "old" and names(tmp_path) == ["dataset"]


def test_a_crash_between_the_two_renames_is_undone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "dataset"
    with atomic.publish_dir(target) as build:
        (build / "a.txt").write_text("old")
    real_replace = Path.replace

    def cut(self: Path, dst: Path) -> Path:
        if Path(dst) == target:  # the new folder's rename: the "crash" falls right before it
            raise KeyboardInterrupt
        return real_replace(self, dst)

    monkeypatch.setattr(Path, "replace", cut)
    built = tmp_path / "built"
    built.mkdir()
    (built / "a.txt").write_text("new")
    with pytest.raises(KeyboardInterrupt):
        atomic.replace_dir(built, target)
    monkeypatch.undo()
    assert not target.exists() and (tmp_path / ".dataset.old" / "a.txt").read_text() == "old"
    atomic.recover_dirs(tmp_path)  # what the next run does first
    assert (target / "a.txt").read_text() == "old" and names(tmp_path) == ["built", "dataset"]
    atomic.replace_dir(built, target)  # and then it completes
    assert (target / "a.txt").read_text() == "new" and names(tmp_path) == ["dataset"]


def test_recover_dir_after_a_finished_replacement_drops_the_old_folder(tmp_path: Path) -> None:
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "a.txt").write_text("new")
    (tmp_path / ".dataset.old").mkdir()
    atomic.recover_dir(tmp_path / "dataset")
    assert names(tmp_path) == ["dataset"] and (tmp_path / "dataset" / "a.txt").read_text() == "new"


def test_replace_dir_over_a_file_and_recover_dirs_leaves_other_files_alone(tmp_path: Path) -> None:
    out = tmp_path / "scored.parquet"
    out.write_text("a single file from an earlier run")
    built = tmp_path / "built"
    built.mkdir()
    (built / "part-0.parquet").write_text("rows")
    atomic.replace_dir(built, out)
    assert names(out) == ["part-0.parquet"] and names(tmp_path) == ["scored.parquet"]
    (tmp_path / ".notes.old").write_text("a user's file, not a folder this module set aside")
    atomic.recover_dirs(tmp_path)
    assert names(tmp_path) == [".notes.old", "scored.parquet"]


def test_works_when_the_target_is_on_another_file_system_than_tmp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = Path("/dev/shm")  # tmpfs on Linux; the test's tmp_path is on the system temp folder's disk
    assert other.is_dir(), "the test needs /dev/shm (a tmpfs) to stand for another file system"
    folder = Path(tempfile.mkdtemp(prefix="noria-atomic-", dir=other))
    try:
        system_tmp = tmp_path / "system-tmp"
        system_tmp.mkdir()
        monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
        assert folder.stat().st_dev != system_tmp.stat().st_dev
        # A temp file in the temp folder could not be renamed there: the bug this module prevents.
        with pytest.raises(OSError) as cross:
            fd, stray = tempfile.mkstemp()
            os.close(fd)
            os.rename(stray, folder / "x")
        assert cross.value.errno == errno.EXDEV
        Path(stray).unlink()
        atomic.write_text(folder / "a.json", "{}")
        with atomic.temp_path(folder / "t.parquet") as tmp:
            pq.write_table(pa.table({"a": [1]}), tmp)
        with atomic.publish_dir(folder / "d") as build:
            (build / "f").write_text("x")
        with atomic.publish_dir(folder / "d") as build:
            (build / "g").write_text("y")
        assert names(folder) == ["a.json", "d", "t.parquet"] and names(folder / "d") == ["g"]
        assert names(system_tmp) == []  # nothing went through the temp folder
    finally:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


KILLED_WRITER = r"""
import sys, time
from pathlib import Path
from noria import atomic

target, marker = Path(sys.argv[1]), Path(sys.argv[2])
with atomic.temp_path(target) as tmp, tmp.open("w") as fh:
    fh.write('{"v": 2, "rows": [')
    fh.flush()
    marker.touch()
    time.sleep(60)
"""


def test_a_killed_writer_leaves_the_old_file_and_a_temp_name_a_rerun_cleans(tmp_path: Path) -> None:
    target = tmp_path / "rec.json"
    atomic.write_text(target, '{"v": 1}')
    marker = tmp_path.parent / f"{tmp_path.name}-marker"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target), str(marker)])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, "the writer died before writing"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    marker.unlink()
    assert json.loads(target.read_text()) == {"v": 1}
    (left,) = [p for p in tmp_path.iterdir() if p != target]
    assert atomic.is_temp(left) and left.read_text().startswith('{"v": 2')
    assert list(tmp_path.glob("*.json")) == [target]  # a reader listing records does not see it
    assert atomic.remove_stale(tmp_path) == []  # young: it could be a live writer's
    old = time.time() - atomic.STALE_SECONDS - 1
    os.utime(left, (old, old))
    assert atomic.remove_stale(tmp_path) == [left] and names(tmp_path) == ["rec.json"]
