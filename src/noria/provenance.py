"""Where a record came from: git commit, environment, time.

Every lineage record (data snapshots, training runs, model versions) uses these so that
from any artifact one can walk back to the code and environment that made it.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class GitState:
    commit: str | None
    dirty: bool
    branch: str | None

    def as_dict(self) -> dict[str, str | bool | None]:
        return {"commit": self.commit, "dirty": self.dirty, "branch": self.branch}


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(root: Path, *, untracked: bool = False) -> GitState:
    """The commit checked out at ``root`` and whether the work tree differs from it.

    ``untracked=True`` also counts untracked (not ignored) files as a difference, as model
    lineage does: a new module the training imports is not in the commit. Outside a git
    repository (or without git installed) the commit is None: the record still gets
    written, it just cannot point at code.
    """
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return GitState(None, False, None)
    status = _git(root, "status", "--porcelain", f"--untracked-files={'normal' if untracked else 'no'}")
    branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD")
    return GitState(commit, bool(status), branch)


def utc_now() -> str:
    """An ISO-8601 UTC timestamp with seconds, e.g. 2013-07-01T12:00:00+00:00."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def environment() -> dict[str, str]:
    from noria import __version__

    return {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.platform(),
        "noria": __version__,
    }


def file_sha256(path: Path) -> str | None:
    """sha256 of a file, or None if it does not exist (e.g. uv.lock outside a checkout)."""
    try:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    except OSError:
        return None


def git_stage(root: Path, *paths: Path) -> bool:
    """``git add`` the given files if ``root`` is in a git repository; True if staged.

    Lineage records are meant to be committed with the code; Noria stages them (as DVC's
    autostage does for .dvc files) and leaves the commit to the user.
    """
    if _git(root, "rev-parse", "--git-dir") is None:
        return False
    return _git(root, "add", "--", *(str(p) for p in paths)) is not None


def git_commit_staged(root: Path, message: str) -> str | None:
    """Commit what is staged (e.g. a snapshot's .dvc file and lineage record); the new commit.

    Used by the demo so that the model trained next points at a clean commit. Without a git
    identity configured, a local one (Noria) is used for this commit only.
    """
    if _git(root, "diff", "--cached", "--quiet") is not None:  # exit 0: nothing staged
        return None
    identity = (
        [] if _git(root, "config", "user.email") else ["-c", "user.name=Noria", "-c", "user.email=noria@localhost"]
    )
    if _git(root, *identity, "commit", "-q", "-m", message) is None:
        return None
    return _git(root, "rev-parse", "HEAD")
