"""Data versioning on DVC: track the dataset folder, push it to a remote, find old versions.

A snapshot id *is* DVC's content hash of the dataset folder (the md5 of its ``.dir``
manifest), so two ingests of the same data give the same id. Any version that was ever
tracked stays readable through DVC's cache (and its remote): :func:`version_files` maps a
snapshot id to the cached files without touching the workspace.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from noria.errors import ExternalToolError, SnapshotNotFoundError

# DVC would otherwise phone home with usage analytics and update checks.
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@dataclass(frozen=True)
class TrackedVersion:
    """What DVC recorded for one version of a tracked folder (its .dvc file's ``outs``)."""

    md5: str  # without the ".dir" suffix: this is the snapshot id
    size: int
    nfiles: int
    path: str

    def dvc_out(self) -> dict[str, Any]:
        return {
            "md5": f"{self.md5}.dir",
            "size": self.size,
            "nfiles": self.nfiles,
            "hash": "md5",
            "path": self.path,
        }


def _quiet() -> None:
    """Silence DVC's INFO messages ("To track the changes with git, run: ...").

    They are meant for DVC's own CLI; Noria stages the files itself (core.autostage) and
    prints its own summary. DVC sets its logger's level when imported, so this runs after.
    """
    import dvc.repo  # noqa: F401  (sets up DVC's logger)

    logging.getLogger("dvc").setLevel(logging.WARNING)


def _repo(root: Path) -> Any:
    from dvc.repo import Repo

    _quiet()
    return Repo(str(root))


def _git_toplevel(root: Path) -> Path | None:
    done = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=False
    )
    return Path(done.stdout.strip()).resolve() if done.returncode == 0 else None


def ensure_repo(root: Path, remote: str) -> None:
    """Initialise DVC in ``root`` if needed and point its default remote at ``remote``."""
    from dvc.repo import Repo

    _quiet()
    if not (root / ".dvc").is_dir():
        top = _git_toplevel(root)
        try:
            Repo.init(str(root), no_scm=top is None, subdir=top is not None and top != root.resolve())
        except Exception as exc:  # DVC raises many types; all mean the same thing here
            raise ExternalToolError(
                f"dvc init failed in {root}: {exc}", fix="run `dvc init` there by hand to see why"
            ) from exc
    # DVC takes local paths relative to the current folder and stores them relative to
    # .dvc/config, so the project folder can move.
    url = remote if "://" in remote else os.path.relpath(_abs(root, remote))
    repo = _repo(root)
    try:
        with repo.config.edit() as conf:
            conf["core"]["analytics"] = False
            conf["core"]["autostage"] = True  # `git add` the .dvc file DVC writes
            conf["core"]["remote"] = "noria"
            conf["remote"]["noria"] = {"url": url}
    finally:
        repo.close()
    if "://" not in remote:
        _abs(root, remote).mkdir(parents=True, exist_ok=True)


def _abs(root: Path, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else root / p


def track(root: Path, folder: Path) -> TrackedVersion:
    """``dvc add`` the folder (writing ``<folder>.dvc``), push to the remote, return the version."""
    repo = _repo(root)
    try:
        repo.add([str(folder)])
        repo.push(targets=[str(folder.with_suffix(".dvc"))])
    except Exception as exc:
        raise ExternalToolError(
            f"DVC could not track {folder}: {exc}",
            fix="check the DVC remote in noria.yaml (storage.dvc_remote)",
        ) from exc
    finally:
        repo.close()
    return read_dvc_file(folder.with_suffix(".dvc"))


def read_dvc_file(dvc_file: Path) -> TrackedVersion:
    out = yaml.safe_load(dvc_file.read_text(encoding="utf-8"))["outs"][0]
    return TrackedVersion(
        md5=str(out["md5"]).removesuffix(".dir"),
        size=int(out["size"]),
        nfiles=int(out["nfiles"]),
        path=str(out["path"]),
    )


def version_files(root: Path, dvc_file: Path, version: TrackedVersion) -> dict[str, Path]:
    """Relative path -> cached file for every file of a tracked version (fetched if missing).

    ``dvc_file`` is the .dvc file that tracks (some version of) the folder; it is only used
    to know where the folder lives when an old version has to be fetched from the remote.
    """
    repo = _repo(root)
    try:
        odb = repo.cache.local
        manifest = Path(odb.oid_to_path(f"{version.md5}.dir"))
        if not manifest.is_file():
            _fetch(repo, dvc_file, version)
        if not manifest.is_file():
            raise SnapshotNotFoundError(
                f"snapshot {version.md5[:8]} is neither in the DVC cache nor on the remote",
                fix="point storage.dvc_remote at the remote it was pushed to, then retry",
            )
        entries = json.loads(manifest.read_text(encoding="utf-8"))
        files = {e["relpath"]: Path(odb.oid_to_path(e["md5"])) for e in entries}
        if any(not p.is_file() for p in files.values()):
            _fetch(repo, dvc_file, version)
        return files
    finally:
        repo.close()


def _fetch(repo: Any, dvc_file: Path, version: TrackedVersion) -> None:
    """Fetch an old version from the remote using a throw-away .dvc file naming it.

    The file sits next to the real one and names the same output path, so DVC only fills
    its cache; the workspace copy is left alone.
    """
    tmp = dvc_file.with_name(f".noria-fetch-{version.md5}.dvc")
    tmp.write_text(yaml.safe_dump({"outs": [version.dvc_out()]}), encoding="utf-8")
    try:
        repo.fetch(targets=[str(tmp)])
    except Exception as exc:
        raise ExternalToolError(
            f"dvc fetch of snapshot {version.md5[:8]} failed: {exc}", fix="check the DVC remote is reachable"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
