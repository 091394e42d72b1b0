"""Atomic writes of files and folders: a reader sees the old content or the new, never a part.

Every file or folder Noria writes for others to read (records, reports, Parquet, generated
code, published datasets) goes through this module, under one rule:

1. **Same folder.** The new content is written under a temporary name *in the target's own
   folder*, never in ``/tmp``: a rename is atomic only within one file system, and the
   target's folder is the one place sure to be on the target's.
2. **File, then rename, then folder.** The temporary file (for a folder: every file and
   folder in it) is flushed to disk with ``fsync`` *before* it is renamed over the target;
   after the rename the parent folder is ``fsync``-ed, so the rename itself survives a power
   cut. Without the first fsync a crash could leave the new name pointing at a file of zeros
   or a short one (the rename reached the disk before the data); without the second the old
   content may come back after a reboot although the writer went on believing it was done.
3. **Failure cleans up.** An error (or ``KeyboardInterrupt``) inside the write removes the
   temporary file; the target keeps its old content.
4. **Recognisable leftovers.** A process killed mid-write leaves only a temporary name:
   ``.<target name>.<8 hex>.tmp`` (with the writer's suffix after it when a library insists
   on one, e.g. ``.tmp.yaml``), and a folder being replaced waits as ``.<name>.old``. Both
   are hidden (leading dot) and end in ``.tmp`` / ``.old``, so no reader that lists
   ``*.json``, ``*.parquet`` or a Parquet dataset (which skips hidden files) takes them for
   data. :func:`is_temp` recognises them, :func:`remove_stale` deletes old ones and
   :func:`recover_dir` undoes a half-done folder replacement.

Permissions: a new file gets what a plain ``open()`` gives (``0o666`` less the umask) unless
the caller asks for a ``mode``; a file that replaces another keeps the replaced file's mode.

Folders: :func:`publish_dir` yields a sibling temporary folder to build in, then puts it in
place with :func:`replace_dir`. With no folder at the target this is one rename. Replacing an
existing folder takes two (POSIX cannot swap two folders in one): the old folder is renamed
to ``.<name>.old``, the new one to ``<name>``, then the old one is deleted. A crash between
the two renames leaves no ``<name>`` for that instant but the complete old folder under
``.<name>.old``; :func:`recover_dir` (which :func:`replace_dir` runs first) renames it back,
so readers see the old version or the new one, never a mixture.

Standard library only: every layer may import it.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TEMP_SUFFIX = ".tmp"
OLD_SUFFIX = ".old"
STALE_SECONDS = 3600.0  # a temporary name this old belongs to no running writer
SHARED = 0o644  # the mode of files meant for other users and services, whatever the umask
_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp(\.[A-Za-z0-9]+)?$")


def temp_name(target: Path, suffix: str = "") -> Path:
    """A fresh temporary name beside ``target`` (``.<name>.<8 hex>.tmp<suffix>``); not created."""
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}{suffix}")


def is_temp(path: Path | str) -> bool:
    """Whether ``path`` is a temporary name of this module (a write in progress, or one a crash left)."""
    name = Path(path).name
    return bool(_TEMP_NAME.match(name)) or (name.startswith(".") and name.endswith(OLD_SUFFIX))


def fsync_dir(folder: Path) -> None:
    """Flush ``folder``'s entries (names created, renamed, removed) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:  # a file system that cannot sync a folder (some network ones) has nothing to flush
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush ``path``'s content to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """Flush every file and folder under ``folder`` (and ``folder`` itself) to disk."""
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            fsync_file(Path(dirpath) / name)
        fsync_dir(Path(dirpath))


def _reserve(target: Path, suffix: str) -> Path:
    """Create an empty temporary file beside ``target`` (mode as ``open()`` would give it)."""
    while True:
        tmp = temp_name(target, suffix)
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:  # pragma: no cover - 32 random bits met an existing name
            continue
        return tmp


def _mode_for(target: Path, mode: int | None) -> int | None:
    if mode is not None:
        return mode
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        return None


@contextmanager
def temp_path(target: Path, *, suffix: str = "", mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` for a writer that needs a path; rename it over
    ``target`` when the block ends without an error.

    For writers that open the file themselves (pyarrow, pandas, zip, a compiler). The file
    exists (empty) when the block starts; the writer may truncate or replace it. ``suffix``
    is for writers that insist on an extension (``.yaml``). An error inside the block removes
    the temporary file and leaves ``target`` as it was. ``mode``: the new file's permissions
    (default: those of the file replaced, else what ``open()`` gives).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _reserve(target, suffix)
    try:
        yield tmp
        fsync_file(tmp)
        wanted = _mode_for(target, mode)
        if wanted is not None:
            tmp.chmod(wanted)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def write_bytes(path: Path, data: bytes, *, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` atomically (the module's rule); return ``path``."""
    with temp_path(path, mode=mode) as tmp, tmp.open("wb") as fh:
        fh.write(data)
    return Path(path)


def write_text(path: Path, text: str, *, mode: int | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return ``path``."""
    return write_bytes(path, text.encode("utf-8"), mode=mode)


def write_json(path: Path, payload: Any, *, mode: int | None = None, **dumps: Any) -> Path:
    """Write ``json.dumps(payload, **dumps)`` and a final newline to ``path`` atomically."""
    return write_text(path, json.dumps(payload, **dumps) + "\n", mode=mode)


def _remove(path: Path) -> None:
    """Delete a folder or a file (a link is removed, not followed); a missing one is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def recover_dir(target: Path) -> None:
    """Finish what a crash cut short in :func:`replace_dir` of ``target``.

    ``.<name>.old`` with no ``<name>``: the crash fell between the two renames; the old
    folder (complete) takes its name back. With ``<name>`` there too the replacement was
    done and the old folder is deleted.
    """
    target = Path(target)
    old = target.with_name(f".{target.name}{OLD_SUFFIX}")
    if not old.exists() and not old.is_symlink():
        return
    if target.exists() or target.is_symlink():
        _remove(old)
    else:
        old.replace(target)
        fsync_dir(target.parent)


def recover_dirs(folder: Path) -> None:
    """:func:`recover_dir` for every ``.<name>.old`` folder in ``folder`` (after a crash, before writing)."""
    for old in Path(folder).glob(f".*{OLD_SUFFIX}"):
        if old.is_dir():
            recover_dir(old.with_name(old.name[1 : -len(OLD_SUFFIX)]))


def replace_dir(built: Path, target: Path) -> None:
    """Put the finished folder ``built`` at ``target`` (same file system), replacing what is there.

    Everything in ``built`` is synced first; then one rename, or for an existing ``target``
    two (old folder aside to ``.<name>.old``, new folder in, old deleted; see the module
    docstring for the crash window and :func:`recover_dir`).
    """
    built, target = Path(built), Path(target)
    recover_dir(target)
    fsync_tree(built)
    old = target.with_name(f".{target.name}{OLD_SUFFIX}")
    if target.exists() or target.is_symlink():
        target.replace(old)
    built.replace(target)
    fsync_dir(target.parent)
    if built.parent != target.parent:
        fsync_dir(built.parent)
    _remove(old)


@contextmanager
def publish_dir(target: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``target`` to build in; when the block ends
    without an error it replaces ``target`` (:func:`replace_dir`), after an error it is deleted."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(target)
    tmp.mkdir()
    try:
        yield tmp
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale(folder: Path, older_than_s: float = STALE_SECONDS) -> list[Path]:
    """Delete the temporary files and folders (:func:`is_temp`) in ``folder`` older than
    ``older_than_s`` seconds: leftovers of killed writers (younger ones may still be written).
    ``.<name>.old`` folders are left to :func:`recover_dir`. Returns what was removed."""
    removed: list[Path] = []
    cutoff = time.time() - older_than_s
    try:
        entries = list(Path(folder).iterdir())
    except FileNotFoundError:
        return removed
    for entry in entries:
        if not _TEMP_NAME.match(entry.name):
            continue
        try:
            if entry.lstat().st_mtime >= cutoff:
                continue
            _remove(entry)
        except FileNotFoundError:
            continue
        removed.append(entry)
    return removed


__all__ = [
    "SHARED",
    "STALE_SECONDS",
    "fsync_dir",
    "fsync_file",
    "fsync_tree",
    "is_temp",
    "publish_dir",
    "recover_dir",
    "recover_dirs",
    "remove_stale",
    "replace_dir",
    "temp_name",
    "temp_path",
    "write_bytes",
    "write_json",
    "write_text",
]
