"""Where a record came from: git commit, environment, time.

Every lineage record (data snapshots, training runs, model versions) uses these so that
from any artifact one can walk back to the code and environment that made it.

Inside a container image there is no git checkout: the image says which code it holds through
environment variables its Dockerfile sets from build arguments (:data:`IMAGE_ENV`:
``GIT_COMMIT``, ``GIT_DIRTY``, ``UV_LOCK_SHA256``, ``IMAGE_VERSION``; the same values are its OCI
labels). Outside a git repository :func:`git_state` falls back to them, so a run or snapshot
made in a pod records the image's commit; :func:`code_version` is what ``/version`` shows.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# What an image knows about the code it holds -> the environment variable its Dockerfile sets.
# Not NORIA_* (those are configuration overrides); "unknown" (a build without the argument) and
# empty values count as not set.
IMAGE_ENV = {
    "git_commit": "GIT_COMMIT",
    "git_dirty": "GIT_DIRTY",
    "uv_lock_sha256": "UV_LOCK_SHA256",
    "image_version": "IMAGE_VERSION",
}


def image_provenance(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The code version an image declares (see :data:`IMAGE_ENV`): only the values that are set."""
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for key, var in IMAGE_ENV.items():
        value = env.get(var, "").strip()
        if value and value.lower() != "unknown":
            out[key] = value
    return out


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
    repository (or without git installed) the commit is the one the container image declares
    (``GIT_COMMIT``, ``GIT_DIRTY``: :func:`image_provenance`), else None: the record still gets
    written, it just cannot point at code.
    """
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        image = image_provenance()
        return GitState(image.get("git_commit"), image.get("git_dirty", "false").lower() == "true", None)
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


def code_version(root: Path | None) -> dict[str, str | bool | None]:
    """The code this process runs: Noria's version, the git commit (of ``root``'s checkout, else
    the image's), whether the tree was dirty, the uv.lock hash, the installed packages' hash and the
    image version."""
    from noria import __version__

    image = image_provenance()
    git = git_state(root) if root is not None else GitState(image.get("git_commit"), False, None)
    lock = None
    if root is not None:  # the project's folder, or a parent up to the checkout's top
        top = _git(root, "rev-parse", "--show-toplevel")
        for folder in (root.resolve(), *root.resolve().parents):
            if (folder / "uv.lock").is_file():
                lock = file_sha256(folder / "uv.lock")
                break
            if top is None or folder == Path(top).resolve():
                break
    return {
        "noria": __version__,
        "git_commit": git.commit,
        "git_dirty": git.dirty if git.commit else None,
        "uv_lock_sha256": lock or image.get("uv_lock_sha256"),
        "packages_sha256": packages_sha256(),
        "image_version": image.get("image_version"),
    }


@functools.lru_cache(maxsize=1)
def installed_packages() -> tuple[str, ...]:
    """Every distribution of this Python environment as ``name==version`` (names normalised as
    PEP 503 does), sorted: what ``pip freeze`` lists, read from the installed metadata.

    The exact environment a run or service had, whatever installed it (uv, pip, an image);
    ``pip install -r`` of the list rebuilds it. Cached: a process does not change its packages.
    """
    from importlib.metadata import distributions

    found: dict[str, str] = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name:
            key = re.sub(r"[-_.]+", "-", name).lower()
            found.setdefault(key, f"{key}=={dist.version}")  # the first on sys.path is the one imported
    return tuple(sorted(found.values()))


def packages_text() -> str:
    """:func:`installed_packages` as a requirements file (one pin per line)."""
    return "".join(f"{line}\n" for line in installed_packages())


def packages_sha256() -> str:
    """sha256 of :func:`packages_text`: equal exactly when two environments hold the same versions."""
    return hashlib.sha256(packages_text().encode("utf-8")).hexdigest()


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
