"""A window of served predictions, and its drift against the reference profile of the model that served it.

The prediction log (written by ``noria serve`` and ``noria predict``) is the source: every
served row carries the feature vector the model saw (``feature.<name>`` columns), its score,
the model version and the request's event time (``event_time``), which windows are cut by, in
the project's unit (``windows:``; months by default). A window in which the champion changed
is split by model version, each part judged against its own version's profile (stored as a
run artifact at training time; drift checks never re-read training data).

With ``serving.prediction_log.remote`` (``s3://bucket/prefix``) the log lives in object storage
(serving ships each rolled file there): :func:`log_folder` copies the files not yet copied into
``serving.prediction_log.remote_cache`` and the windows are read from that copy.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noria.errors import NoriaError, NotFoundError
from noria.monitoring.store import MonitoringStore
from noria.windows import Windows

if TYPE_CHECKING:
    import pandas as pd

    from noria.config import Project
    from noria.monitoring.drift import DriftReport
    from noria.monitoring.profile import ReferenceProfile

FEATURE_PREFIX = "feature."  # noria.serving.predlog.FEATURE_PREFIX (not imported: serving pulls in FastAPI)
KEY_PREFIX = "key."  # noria.serving.predlog.KEY_PREFIX
EVENT_TIME = "event_time"  # noria.serving.predlog.EVENT_TIME
PROFILE_ARTIFACTS = ("reference_profile.json", "monitoring/reference_profile.json")


def prediction_log_dir(project: Project) -> Path:
    """The local folder serving writes the log to (files leave it once shipped, with a remote)."""
    return project.path(project.config.serving.prediction_log.dir)


def log_folder(project: Project) -> Path:
    """The folder monitoring reads the log from: the local log, or, with
    ``serving.prediction_log.remote`` set, a local copy of the remote log brought up to date now."""
    cfg = project.config.serving.prediction_log
    remote = getattr(cfg, "remote", None)
    if not remote:
        return prediction_log_dir(project)
    from noria.remote_log import mirror

    return mirror(remote, project.path(cfg.remote_cache))


def read_window(project: Project, window: str, *, served_only: bool = True, folder: Path | None = None) -> pd.DataFrame:
    """Successful prediction-log rows whose event time falls inside ``window``, oldest first.

    ``served_only`` drops shadow rows (scored by the challenger, never returned). Rows without
    an event time (logged before the log carried one, or whose key could not be computed)
    cannot be windowed and are left out.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    windows = Windows.of(project)
    windows.check(window)
    folder = folder or log_folder(project)
    files = _log_files(folder)
    if not files:
        where = project.config.serving.prediction_log.remote or folder
        raise NotFoundError(
            f"the prediction log at {where} is empty",
            fix="serve predictions first (noria serve, then POST /predict), or check serving.prediction_log.dir"
            " (and serving.prediction_log.remote)",
        )
    dataset = _dataset(files)
    if EVENT_TIME not in dataset.schema.names:
        return pd.DataFrame()
    condition = (ds.field("status") == 200) & ds.field(EVENT_TIME).is_valid()
    bounds = windows.bounds(window)
    if bounds is not None:  # a built-in unit: the filter reaches Parquet; a window function labels rows after
        ts = ds.field(EVENT_TIME)
        condition = condition & (ts >= pd.Timestamp(bounds[0])) & (ts < pd.Timestamp(bounds[1]))
    if served_only:
        condition = condition & (ds.field("served") == True)  # noqa: E712 - an Arrow expression, not a bool
    try:
        frame = dataset.to_table(filter=condition).to_pandas()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # files that disagree on a column's type (a feature whose type changed between model
        # versions): each file on its own, put together by pandas
        frame = pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)
        keep = frame["status"].eq(200) & frame[EVENT_TIME].notna()
        if bounds is not None:
            keep &= frame[EVENT_TIME].ge(pd.Timestamp(bounds[0])) & frame[EVENT_TIME].lt(pd.Timestamp(bounds[1]))
        if served_only:
            keep &= frame["served"].fillna(False).astype(bool)
        frame = frame[keep]
    if bounds is None and len(frame):
        frame = frame[windows.labels(frame[EVENT_TIME]) == window]
    out: pd.DataFrame = frame.sort_values(EVENT_TIME, kind="stable").reset_index(drop=True)
    return out


def _log_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("date=*/predictions-*.parquet")) if folder.is_dir() else []


def _dataset(files: list[Path]) -> Any:
    """The log's files as one Arrow dataset, with every column of every file.

    Files differ in their columns (a version's features, the ids, files from before a column
    existed): the dataset's schema is the union of theirs, so nothing is left out because the
    first file lacks it. Files that disagree on a column's type keep the first file's schema
    (the reader then falls back to reading file by file).
    """
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    try:
        schema = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        schema = None
    return ds.dataset([str(f) for f in files], format="parquet", schema=schema)


def feature_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """The feature vectors of log rows, with plain feature names (``feature.visib`` -> ``visib``)."""
    columns = [c for c in rows.columns if c.startswith(FEATURE_PREFIX)]
    return rows[columns].rename(columns=lambda c: c[len(FEATURE_PREFIX) :])


def load_profile(project: Project, name: str, version: int) -> ReferenceProfile:
    """The reference profile stored with a model version (its training run's artifact)."""
    from noria.registry import get_version
    from noria.registry.mlflow_client import get_client

    client = get_client(project)
    info = get_version(project, f"{name}/{version}", client=client)
    if not info.run_id:
        raise NotFoundError(f"model {name} version {version} has no training run", fix="register it from a run")
    try:
        profile = run_profile(client, info.run_id)
    except NoriaError:
        raise
    except Exception as exc:  # MLflow raises several unrelated types for an unreachable artifact store
        raise NotFoundError(
            f"cannot read the artifacts of run {info.run_id} ({name} version {version}): {exc}",
            fix="check that the MLflow artifact store is reachable",
        ) from None
    if profile is not None:
        return profile
    raise NotFoundError(
        f"model {name} version {version} has no reference profile (run {info.run_id})",
        fix="retrain it with `noria pipeline run training`, which stores the profile with the model",
    )


def run_profile(client: Any, run_id: str) -> ReferenceProfile | None:
    """The reference profile a training run stored as an artifact; None if it stored none.

    Shared by monitoring (which needs the profile) and serving (which falls back to the
    model's own ranges without one). Errors listing or reading the artifacts propagate.
    """
    from noria.monitoring.profile import ReferenceProfile

    for artifact in PROFILE_ARTIFACTS:
        folder = artifact.rpartition("/")[0] or None
        if artifact in {f.path for f in client.list_artifacts(run_id, folder)}:
            with tempfile.TemporaryDirectory(prefix="noria-profile-") as tmp:
                return ReferenceProfile.load(client.download_artifacts(run_id, artifact, tmp))
    return None


@dataclass(frozen=True)
class WindowDrift:
    """The drift of the rows one model version served in a window."""

    window: str
    model_name: str
    model_version: int
    report: DriftReport
    path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "path": None if self.path is None else str(self.path),
            **self.report.to_dict(),
        }


def drift_window(project: Project, window: str, *, save: bool = True, min_rows: int | None = None) -> list[WindowDrift]:
    """Drift of every model version that served requests of ``window``; saved in the monitoring store.

    What ``noria monitor drift --window W`` runs. Versions with fewer than ``min_rows``
    (default ``monitoring.drift.min_rows``) rows in the window are not judged.
    """
    from noria.monitoring.drift import compute_drift

    rows = read_window(project, window)
    if rows.empty:
        raise NotFoundError(
            f"no served prediction in the log falls in window {window}",
            fix="pick a window the service has scored requests for (noria monitor windows lists them)",
        )
    cfg = project.config.monitoring.drift
    least = cfg.min_rows if min_rows is None else min_rows
    store = MonitoringStore.of(project)
    results = []
    for key, part in rows.groupby(["model_name", "model_version"], sort=True):
        name, version = str(key[0]), int(str(key[1]))
        if len(part) < least:
            continue
        profile = load_profile(project, name, version)
        features = feature_frame(part)
        report = compute_drift(profile, features, cfg, scores=part["score"].to_numpy(dtype=float))
        path = store.save("drift", window, name, version, report.to_dict()) if save else None
        results.append(WindowDrift(window, name, version, report, path))
    if not results:
        raise NotFoundError(
            f"no model version served at least {least} requests of window {window} "
            f"({len(rows)} rows in all): too few to judge drift",
            fix="wait for more traffic, or lower monitoring.drift.min_rows",
        )
    return results


def windows_in_log(project: Project, folder: Path | None = None) -> dict[str, int]:
    """Windows the prediction log has requests for (by event time), with their row counts.

    Every successful row counts, shadow rows (scored but not served) included. ``folder``: the log
    as :func:`log_folder` gave it (by default, asked for now).
    """
    import pandas as pd
    import pyarrow.dataset as ds

    files = _log_files(folder if folder is not None else log_folder(project))
    if not files:
        return {}
    dataset = _dataset(files)
    if EVENT_TIME not in dataset.schema.names:
        return {}
    condition = (ds.field("status") == 200) & ds.field(EVENT_TIME).is_valid()
    table = dataset.to_table(columns=[EVENT_TIME], filter=condition)
    if table.num_rows == 0:
        return {}
    labels = pd.Series(Windows.of(project).labels(table[EVENT_TIME].to_pandas()), dtype=object)
    counts = labels.dropna().value_counts(sort=False).sort_index()
    return {str(w): int(c) for w, c in counts.items()}


__all__ = [
    "WindowDrift",
    "drift_window",
    "feature_frame",
    "load_profile",
    "log_folder",
    "prediction_log_dir",
    "read_window",
    "run_profile",
    "windows_in_log",
]
