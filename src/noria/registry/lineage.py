"""Lineage: what a training run records about where it came from, and the walk back from a model.

Every run carries these tags (maturity items 22-26): git commit and dirty flag, data
snapshot id, feature service and its definition hash, the uv.lock hash and the installed
packages' hash (their list is the run's ``environment/packages.txt``: a project without a lock
file of its own still records its exact environment), Python and platform, the Noria version,
the pipeline run id and the config profile / backend kind.
:func:`lineage_of` walks model version -> run -> commit, environment, features, data.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noria.errors import NotFoundError
from noria.provenance import file_sha256, git_state, image_provenance, packages_sha256
from noria.registry.mlflow_client import backend_kind, error_code, get_client, mlflow_errors, tracking_uri

if TYPE_CHECKING:
    from noria.config import Project
    from noria.registry.models import ModelVersionInfo

# Lineage field -> run tag. Tags (not params) so they can be searched and never collide.
TAGS: dict[str, str] = {
    "git_commit": "noria.git.commit",
    "git_dirty": "noria.git.dirty",
    "data_snapshot": "noria.data.snapshot",
    "feature_service": "noria.features.service",
    "feature_definition_hash": "noria.features.definition_hash",
    "uv_lock_sha256": "noria.env.uv_lock_sha256",
    "packages_sha256": "noria.env.packages_sha256",
    "python": "noria.env.python",
    "platform": "noria.env.platform",
    "noria_version": "noria.version",
    "lightgbm_version": "noria.env.lightgbm",
    "mlflow_version": "noria.env.mlflow",
    "pipeline_run_id": "noria.pipeline.run_id",
    "image_version": "noria.image.version",
    "profile": "noria.infra.profile",
    "tracking_backend": "noria.infra.tracking_backend",
}
MODEL_CARD_TAG = "noria.model_card"
PACKAGES_ARTIFACT = "environment/packages.txt"  # the installed packages, one name==version a line
NOT_RECORDED = "(not recorded)"


@dataclass(frozen=True)
class Lineage:
    """Where a run came from. None means 'not known' and is recorded as absent."""

    git_commit: str | None
    git_dirty: bool | None
    data_snapshot: str | None
    feature_service: str | None
    feature_definition_hash: str | None
    uv_lock_sha256: str | None
    python: str
    platform: str
    noria_version: str
    lightgbm_version: str | None = None
    mlflow_version: str | None = None
    pipeline_run_id: str | None = None
    profile: str | None = None
    tracking_backend: str | None = None
    image_version: str | None = None  # the container image the run ran in (IMAGE_VERSION), if any
    packages_sha256: str | None = None  # the installed packages (provenance.installed_packages), listed in the run

    def to_tags(self) -> dict[str, str]:
        tags: dict[str, str] = {}
        for key, tag in TAGS.items():
            value = getattr(self, key)
            if value is not None:
                tags[tag] = str(value).lower() if isinstance(value, bool) else str(value)
        if self.git_commit:
            tags["mlflow.source.git.commit"] = self.git_commit  # shown by the MLflow UI
        return tags

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Lineage:
        values: dict[str, Any] = {key: tags.get(tag) for key, tag in TAGS.items()}
        dirty = values["git_dirty"]
        values["git_dirty"] = None if dirty is None else dirty == "true"
        for required in ("python", "platform", "noria_version"):
            values[required] = values[required] or NOT_RECORDED
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _git_toplevel(folder: Path) -> Path | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return Path(done.stdout.strip()).resolve() if done.returncode == 0 else None


def find_uv_lock(root: Path) -> Path | None:
    """The uv.lock for the project: in its folder or a parent, up to the git top level."""
    top = _git_toplevel(root)
    folder = root.resolve()
    for candidate in (folder, *folder.parents):
        lock = candidate / "uv.lock"
        if lock.is_file():
            return lock
        if top is None or candidate == top:
            return None
    return None


def _version_of(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def collect_lineage(
    project: Project,
    *,
    data_snapshot: str | None,
    feature_service: str | None,
    feature_definition_hash: str | None,
    pipeline_run_id: str | None = None,
) -> Lineage:
    """The lineage of a run about to start: the caller says which data and features it uses."""
    from noria import __version__

    git = git_state(project.root, untracked=True)  # in an image: the commit it was built from
    commit, dirty = git.commit, (git.dirty if git.commit else None)
    lock = find_uv_lock(project.root)
    image = image_provenance()
    return Lineage(
        git_commit=commit,
        git_dirty=dirty,
        data_snapshot=data_snapshot,
        feature_service=feature_service,
        feature_definition_hash=feature_definition_hash,
        uv_lock_sha256=file_sha256(lock) if lock else image.get("uv_lock_sha256"),
        python=f"{platform.python_implementation()} {sys.version.split()[0]}",
        platform=platform.platform(),
        noria_version=__version__,
        lightgbm_version=_version_of("lightgbm"),
        mlflow_version=_version_of("mlflow"),
        pipeline_run_id=pipeline_run_id,
        profile=project.profile,
        tracking_backend=backend_kind(tracking_uri(project)),
        image_version=image.get("image_version"),
        packages_sha256=packages_sha256(),
    )


@dataclass(frozen=True)
class LineageReport:
    """The chain from one model version back to its run, code, environment, features and data."""

    model: ModelVersionInfo
    run_id: str
    run_name: str
    experiment: str
    status: str
    started_at: str
    artifact_uri: str
    lineage: Lineage
    model_card: str | None
    metrics: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["model"] = self.model.to_dict()
        out["lineage"] = self.lineage.to_dict()
        return out


def lineage_of(project: Project, ref: str) -> LineageReport:
    """Walk back from ``name``, ``name@alias`` or ``name/version`` to everything that made it."""
    from datetime import UTC, datetime

    from noria.registry._names import parse_model_ref
    from noria.registry.models import resolve

    parsed = parse_model_ref(ref)  # before any path or MLflow call
    client = get_client(project)
    info = resolve(client, parsed)
    if not info.run_id:
        raise NotFoundError(
            f"model {info.name} version {info.version} has no training run recorded",
            fix="register versions through Noria's training (it records the run), or pick another version",
        )
    from mlflow.exceptions import MlflowException

    with mlflow_errors(f"read run {info.run_id}"):
        try:
            run = client.get_run(info.run_id)
        except MlflowException as exc:
            if error_code(exc) != "RESOURCE_DOES_NOT_EXIST":
                raise
            raise NotFoundError(
                f"the run {info.run_id} that trained {info.name} version {info.version} no longer exists",
                fix="restore it in MLflow (`mlflow gc` deletes runs for good), or pick another version",
            ) from None
        experiment = client.get_experiment(run.info.experiment_id)
    tags = dict(run.data.tags)
    started = datetime.fromtimestamp(run.info.start_time / 1000, UTC).isoformat(timespec="seconds")
    return LineageReport(
        model=info,
        run_id=run.info.run_id,
        run_name=run.info.run_name or "",
        experiment=experiment.name,
        status=run.info.status,
        started_at=started,
        artifact_uri=run.info.artifact_uri,
        lineage=Lineage.from_tags(tags),
        model_card=tags.get(MODEL_CARD_TAG),
        metrics={k: float(v) for k, v in sorted(run.data.metrics.items())},
    )


def format_lineage(report: LineageReport) -> str:
    """The chain as indented text, one link per line."""
    lin = report.lineage

    def show(value: object) -> str:
        return NOT_RECORDED if value is None else str(value)

    dirty = "" if lin.git_dirty is None else (" (dirty: uncommitted changes)" if lin.git_dirty else " (clean)")
    m = report.model
    lines = [
        f"model      {m.name} version {m.version}" + (f"  @{', @'.join(m.aliases)}" if m.aliases else ""),
        f"  run      {report.run_id}  {report.run_name!r} in experiment {report.experiment!r}, "
        f"{report.status.lower()}, started {report.started_at}",
        f"  commit   {show(lin.git_commit)}{dirty}",
        f"  env      python {lin.python}; {lin.platform}; noria {lin.noria_version}; "
        f"lightgbm {show(lin.lightgbm_version)}; mlflow {show(lin.mlflow_version)}",
        f"           uv.lock sha256 {show(lin.uv_lock_sha256)}; packages sha256 {show(lin.packages_sha256)}"
        + (f" (the list: run artifact {PACKAGES_ARTIFACT})" if lin.packages_sha256 else ""),
        f"  infra    profile {show(lin.profile)}; tracking backend {show(lin.tracking_backend)}"
        + (f"; image {lin.image_version}" if lin.image_version else ""),
        f"  features service {show(lin.feature_service)}; definition hash {show(lin.feature_definition_hash)}",
        f"  data     snapshot {show(lin.data_snapshot)}",
        f"  pipeline run {show(lin.pipeline_run_id)}",
        f"  artifacts {report.artifact_uri}; model card {show(report.model_card)}",
    ]
    if m.release_notes:  # written when the version became @champion (registry.notes)
        lines.append("  release notes")
        lines += [f"    {line}" for line in m.release_notes.splitlines()]
    return "\n".join(lines)
