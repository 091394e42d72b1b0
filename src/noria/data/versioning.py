"""Data versioning on DVC: track the dataset folder, push it to a remote, find old versions.

A snapshot id *is* DVC's content hash of the dataset folder (the md5 of its ``.dir``
manifest), so two ingests of the same data give the same id. Any version that was ever
tracked stays readable through DVC's cache (and its remote): :func:`version_files` maps a
snapshot id to the cached files without touching the workspace.

The remote is a folder or an ``s3://bucket/prefix`` URL (:class:`Remote`). On S3 the
credentials come from the standard AWS variables or files, and an S3-compatible server
(SeaweedFS, MinIO) is reached through ``AWS_ENDPOINT_URL`` or an explicit endpoint. Reads
always go to the remote the project is configured with, not the one recorded in
``.dvc/config`` at ingest time: a fresh clone in a pod reads its snapshots from S3.

The data remote may have an endpoint and keys of its own (``NORIA_DATA_S3_ENDPOINT_URL``,
``NORIA_DATA_S3_ACCESS_KEY_ID``, ``NORIA_DATA_S3_SECRET_ACCESS_KEY``; :mod:`noria.s3`): how
pre-production reads production's data with a read-only identity while its other stores stay
its own. The keys (and that endpoint) go to ``.dvc/config.local``, which git ignores, never to
the tracked ``.dvc/config``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from noria.errors import ExternalToolError, MissingExtraError, SnapshotNotFoundError

if TYPE_CHECKING:
    from noria.config import Project

# DVC would otherwise phone home with usage analytics and update checks.
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
log = logging.getLogger("noria.data")


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


REMOTE_NAME = "noria"


@dataclass(frozen=True)
class Remote:
    """Where DVC pushes and fetches data: a folder, or a URL such as ``s3://bucket/prefix``.

    ``endpoint_url`` points S3 at a compatible server (``http://seaweedfs:8333``). Without
    it the S3 client follows ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``), else AWS.
    Credentials are ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, a profile or the pod's
    role, as for any AWS client, unless the data remote has keys of its own
    (``access_key_id`` / ``secret_access_key``: ``NORIA_DATA_S3_*``, :func:`project_remote`).
    """

    url: str
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    own_endpoint: bool = False  # the endpoint came from NORIA_DATA_S3_ENDPOINT_URL (kept in config.local)

    @property
    def identity(self) -> Any:
        """The data remote's own keys as a :class:`noria.s3.Identity`, None: boto3's usual chain."""
        from noria import s3

        if self.access_key_id and self.secret_access_key:
            return s3.Identity(self.access_key_id, self.secret_access_key)
        return None

    @property
    def is_url(self) -> bool:
        return "://" in self.url

    @property
    def is_s3(self) -> bool:
        return self.url.startswith("s3://")

    def options(self, root: Path, *, relative: bool = False, local: bool = True) -> dict[str, Any]:
        """DVC's settings for this remote (``relative``: a local path as ``.dvc/config`` keeps it).

        ``local=False`` leaves out what belongs in ``.dvc/config.local`` only (:meth:`local_options`).
        """
        if self.is_url:
            url = self.url
        else:
            # DVC takes local paths relative to the current folder and stores them relative
            # to .dvc/config, so the project folder can move.
            url = os.path.relpath(_abs(root, self.url)) if relative else str(_abs(root, self.url))
        opts: dict[str, Any] = {"url": url}
        if self.is_s3 and self.endpoint_url and not self.own_endpoint:
            opts["endpointurl"] = self.endpoint_url
        return opts | self.local_options() if local else opts

    def local_options(self) -> dict[str, Any]:
        """The settings git must not see (``.dvc/config.local``): the data remote's own endpoint and keys."""
        opts: dict[str, Any] = {}
        if self.is_s3 and self.endpoint_url and self.own_endpoint:
            opts["endpointurl"] = self.endpoint_url
        if self.is_s3 and self.access_key_id and self.secret_access_key:
            opts["access_key_id"] = self.access_key_id
            opts["secret_access_key"] = self.secret_access_key
        return opts

    def check_installed(self) -> None:
        """Fail early, naming the extra, when an S3 remote lacks DVC's S3 plugin."""
        if self.is_s3 and importlib.util.find_spec("dvc_s3") is None:
            raise MissingExtraError(
                f"storage.dvc_remote is {self.url!r}, but DVC's S3 support (dvc-s3) is not installed",
                fix="pip install 'noria[cluster]' (or pip install dvc-s3)",
            )

    def fix(self) -> str:
        """What to check when talking to this remote fails."""
        if self.is_s3:
            from noria import s3

            where = s3.DATA_ENDPOINT_VARIABLE if self.own_endpoint else "storage.s3_endpoint_url or AWS_ENDPOINT_URL"
            keys = (
                f"{s3.DATA_KEY_VARIABLE} / {s3.DATA_SECRET_VARIABLE}"
                if self.access_key_id
                else "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
            )
            endpoint = f"the endpoint {self.endpoint_url} ({where})" if self.endpoint_url else where
            return (
                f"check storage.dvc_remote ({self.url}; the bucket must exist), the credentials "
                f"({keys}) and, for SeaweedFS or MinIO, {endpoint}"
            )
        return f"check the DVC remote in noria.yaml (storage.dvc_remote = {self.url})"


def project_remote(project: Project) -> Remote:
    """The DVC remote the project is configured with (``storage.dvc_remote``).

    The S3 endpoint is ``NORIA_DATA_S3_ENDPOINT_URL`` (the data remote's own, e.g. production's
    store read from pre-production), else ``storage.s3_endpoint_url``; when both are unset,
    ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL`` or ``MLFLOW_S3_ENDPOINT_URL`` (what the
    Kubernetes manifests set). The keys are ``NORIA_DATA_S3_ACCESS_KEY_ID`` /
    ``NORIA_DATA_S3_SECRET_ACCESS_KEY`` when set, else the usual AWS chain.
    """
    from noria import s3

    storage = project.config.storage
    remote = storage.dvc_remote
    url = remote if "://" in remote else str(project.path(remote))
    own = s3.data_endpoint()
    # else the same chain as the pipeline store: config, AWS_ENDPOINT_URL(_S3), MLFLOW_S3_ENDPOINT_URL
    endpoint = own or s3.endpoint_url(storage.s3_endpoint_url)
    identity = s3.data_identity() if url.startswith("s3://") else None
    return Remote(
        url=url,
        endpoint_url=str(endpoint) if endpoint else None,
        access_key_id=identity.access_key_id if identity else None,
        secret_access_key=identity.secret_access_key if identity else None,
        own_endpoint=bool(own) and url.startswith("s3://"),
    )


def _quiet() -> None:
    """Silence DVC's INFO messages ("To track the changes with git, run: ...").

    They are meant for DVC's own CLI; Noria stages the files itself (core.autostage) and
    prints its own summary. DVC sets its logger's level when imported, so this runs after.
    """
    import warnings

    import dvc.repo  # noqa: F401  (sets up DVC's logger)

    logging.getLogger("dvc").setLevel(logging.WARNING)
    # DVC 3.67 trips pygtrie's own deprecation (_NoneStep.value) on every add: noise for users
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"dvc(\.|$)")


def _repo(root: Path, remote: Remote | None = None) -> Any:
    """DVC's repo at ``root``; with ``remote``, that remote overrides ``.dvc/config`` (in memory)."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    _quiet()
    if remote is not None:
        remote.check_installed()
    override = {"core": {"remote": REMOTE_NAME}, "remote": {REMOTE_NAME: remote.options(root)}} if remote else None
    try:
        return Repo(str(root), config=override)
    except NotDvcRepoError:
        raise ExternalToolError(
            f"{root} is not a DVC repository (it has no .dvc folder)",
            fix="run `noria data ingest` there once, or commit the .dvc folder so that clones have it",
        ) from None


def _git_toplevel(root: Path) -> Path | None:
    done = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=False
    )
    return Path(done.stdout.strip()).resolve() if done.returncode == 0 else None


def ensure_repo(root: Path, remote: str | Remote, endpoint_url: str | None = None) -> None:
    """Initialise DVC in ``root`` if needed and point its default remote at ``remote``.

    ``remote`` is a folder, a URL, or a :class:`Remote`; ``endpoint_url`` (an S3-compatible
    server) is written to ``.dvc/config`` so that a plain ``dvc pull`` finds it too.
    """
    from dvc.repo import Repo

    _quiet()
    target = remote if isinstance(remote, Remote) else Remote(remote, endpoint_url)
    target.check_installed()
    if not (root / ".dvc").is_dir():
        top = _git_toplevel(root)
        try:
            Repo.init(str(root), no_scm=top is None, subdir=top is not None and top != root.resolve())
        except Exception as exc:  # DVC raises many types; all mean the same thing here
            raise ExternalToolError(
                f"dvc init failed in {root}: {exc}", fix="run `dvc init` there by hand to see why"
            ) from exc
    repo = _repo(root)
    try:
        with repo.config.edit() as conf:
            conf["core"]["analytics"] = False
            conf["core"]["autostage"] = True  # `git add` the .dvc file DVC writes
            conf["core"]["remote"] = REMOTE_NAME
            conf["remote"][REMOTE_NAME] = target.options(root, relative=True, local=False)
        secret = target.local_options()
        if secret:  # git ignores .dvc/config.local: keys never reach a tracked file
            with repo.config.edit("local") as conf:
                conf["remote"][REMOTE_NAME] = {**conf["remote"].get(REMOTE_NAME, {}), **secret}
    finally:
        repo.close()
    if not target.is_url:
        _abs(root, target.url).mkdir(parents=True, exist_ok=True)


def _abs(root: Path, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else root / p


def clear_stale_index_lock(root: Path) -> Path | None:
    """Remove the git ``index.lock`` of ``root``'s repository if no process holds it open; returns it.

    DVC stages the ``.dvc`` file it writes (``core.autostage``) through git's index, which it
    locks with ``index.lock``. A process killed in that moment (SIGKILL, OOM, a node going away)
    leaves the lock behind, and every later ingest would fail on it. Git writes no owner into the
    file, so the lock counts as stale when no running process has it open (``/proc/*/fd``; where
    there is no ``/proc``, when it is over a minute old): a live ``git`` keeps it open while it
    writes. Callers hold the project's ingest lock, so no other Noria ingest races for it.
    """
    done = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--git-path", "index.lock"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return None
    lock = Path(done.stdout.strip())
    lock = (lock if lock.is_absolute() else root / lock).resolve()
    if not lock.exists() or _held_open(lock):
        return None
    lock.unlink(missing_ok=True)
    log.warning("removed %s, left by a git operation that was killed (no process holds it)", lock)
    return lock


def _held_open(path: Path) -> bool:
    """True if a running process has ``path`` open (Linux ``/proc``), else whether it is recent."""
    import time

    proc = Path("/proc")
    if not (proc / "self" / "fd").is_dir():
        return time.time() - path.stat().st_mtime < 60
    target = str(path)
    for pid in proc.iterdir():
        if not pid.name.isdigit():
            continue
        try:
            for fd in (pid / "fd").iterdir():
                if str(fd.readlink()) == target:
                    return True
        except OSError:  # gone, or not ours to read
            continue
    return False


def track(root: Path, folder: Path, remote: Remote | None = None) -> TrackedVersion:
    """``dvc add`` the folder (writing ``<folder>.dvc``), push to the remote, return the version.

    ``remote`` overrides ``.dvc/config`` for the push (by default: what :func:`ensure_repo` wrote).
    A git index lock left by a killed earlier run is cleared first (:func:`clear_stale_index_lock`).
    """
    clear_stale_index_lock(root)
    repo = _repo(root, remote)
    try:
        repo.add([str(folder)])
        repo.push(targets=[str(folder.with_suffix(".dvc"))])
    except Exception as exc:
        where = remote.fix() if remote else "check the DVC remote in noria.yaml (storage.dvc_remote)"
        raise ExternalToolError(f"DVC could not track {folder}: {exc}", fix=where) from exc
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


def version_files(root: Path, dvc_file: Path, version: TrackedVersion, remote: Remote | None = None) -> dict[str, Path]:
    """Relative path -> cached file for every file of a tracked version (fetched if missing).

    ``dvc_file`` is the .dvc file that tracks (some version of) the folder; it is only used
    to know where the folder lives when an old version has to be fetched from the remote.
    ``remote`` is where to fetch from (by default the one in ``.dvc/config``).
    """
    repo = _repo(root, remote)
    where = f" ({remote.url})" if remote else ""
    try:
        odb = repo.cache.local
        manifest = Path(odb.oid_to_path(f"{version.md5}.dir"))
        if not manifest.is_file():
            _fetch(repo, dvc_file, version, remote)
        if not manifest.is_file():
            raise SnapshotNotFoundError(
                f"snapshot {version.md5[:8]} is neither in the DVC cache nor on the remote{where}",
                fix="point storage.dvc_remote at the remote it was pushed to, then retry",
            )
        entries = json.loads(manifest.read_text(encoding="utf-8"))
        files = {e["relpath"]: Path(odb.oid_to_path(e["md5"])) for e in entries}
        if any(not p.is_file() for p in files.values()):
            _fetch(repo, dvc_file, version, remote)
        missing = sorted(rel for rel, p in files.items() if not p.is_file())
        if missing:
            raise SnapshotNotFoundError(
                f"snapshot {version.md5[:8]}: {len(missing)} of {len(files)} files are missing from the DVC "
                f"cache and the remote{where} (first: {missing[0]})",
                fix="point storage.dvc_remote at the remote it was pushed to, or re-push it with `dvc push`",
            )
        return files
    finally:
        repo.close()


def _fetch(repo: Any, dvc_file: Path, version: TrackedVersion, remote: Remote | None = None) -> None:
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
            f"dvc fetch of snapshot {version.md5[:8]} failed: {exc}",
            fix=remote.fix() if remote else "check the DVC remote is reachable",
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
