"""Training runs: parameters, metrics, artifacts, lineage tags and the model, on MLflow.

Metrics are buffered and sent with ``MlflowClient.log_batch`` in chunks of at most 1,000
(MLflow's limit per request), never one call per value: a 1,000-point learning curve is
one round trip instead of 1,000.

    with start_run(project, "train", lineage) as run:
        run.log_params({"num_leaves": 31})
        run.log_curve("valid_auc", aucs)          # buffered
        run.log_metrics({"roc_auc": 0.72})        # buffered
        version = run.log_model(booster, "my-model")
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from noria.errors import NoriaError, ValidationError
from noria.registry.lineage import MODEL_CARD_TAG, PACKAGES_ARTIFACT, TAGS, Lineage
from noria.registry.mlflow_client import ensure_experiment, get_client, mlflow_errors
from noria.registry.models import ABANDONED_TAG, ModelVersionInfo, log_lightgbm_model

if TYPE_CHECKING:
    import lightgbm
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from noria.config import Project

MAX_METRICS_PER_BATCH = 1000  # mlflow.utils.validation.MAX_METRICS_PER_BATCH
MAX_PARAMS_PER_BATCH = 100  # mlflow.utils.validation.MAX_PARAMS_TAGS_PER_BATCH
MODEL_CARD_FILE = "model_card.md"


class RunHandle:
    """One open MLflow run. Use as a context manager: it flushes and closes the run on exit."""

    def __init__(self, client: MlflowClient, run_id: str, experiment_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.experiment_id = experiment_id
        self._pending: list[Metric] = []
        self._closed = False

    # -- metrics: buffered ------------------------------------------------------------------

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Buffer one value per metric at ``step`` (default 0); sent on flush or when 1,000 are waiting."""
        from mlflow.entities import Metric

        stamp = _now_ms()
        at = 0 if step is None else int(step)
        for key, value in metrics.items():
            self._pending.append(Metric(key, _number(key, value), stamp, at))
        self._flush_full_chunks()

    def log_curve(self, name: str, values: Iterable[float], start_step: int = 0) -> None:
        """Buffer a whole curve (one value per step, e.g. per boosting iteration)."""
        from mlflow.entities import Metric

        stamp = _now_ms()
        self._pending.extend(
            Metric(name, _number(name, value), stamp, step) for step, value in enumerate(values, start=start_step)
        )
        self._flush_full_chunks()

    def _flush_full_chunks(self) -> None:
        while len(self._pending) >= MAX_METRICS_PER_BATCH:
            chunk, self._pending = (
                self._pending[:MAX_METRICS_PER_BATCH],
                self._pending[MAX_METRICS_PER_BATCH:],
            )
            self._send(chunk)

    def flush(self) -> None:
        """Send every buffered metric now."""
        self._flush_full_chunks()
        if self._pending:
            chunk, self._pending = self._pending, []
            self._send(chunk)

    def _send(self, metrics: list[Metric]) -> None:
        with mlflow_errors(f"log {len(metrics)} metrics to run {self.run_id}"):
            self.client.log_batch(self.run_id, metrics=metrics, synchronous=True)

    # -- params, tags, artifacts: sent at once ------------------------------------------------

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(str(k), _param_value(v)) for k, v in params.items()]
        for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
            with mlflow_errors(f"log params to run {self.run_id}"):
                self.client.log_batch(self.run_id, params=items[start : start + MAX_PARAMS_PER_BATCH], synchronous=True)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(str(k), str(v)) for k, v in tags.items()]
        for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
            with mlflow_errors(f"set tags on run {self.run_id}"):
                self.client.log_batch(self.run_id, tags=items[start : start + MAX_PARAMS_PER_BATCH], synchronous=True)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Upload a file or folder to the run's artifacts (under ``artifact_path`` if given)."""
        local = Path(path)
        if not local.exists():
            raise ValidationError(
                f"cannot log artifact {local}: it does not exist", fix="pass an existing file or folder"
            )
        with mlflow_errors(f"upload {local.name} to run {self.run_id}"):
            if local.is_dir():
                self.client.log_artifacts(self.run_id, str(local), artifact_path)
            else:
                self.client.log_artifact(self.run_id, str(local), artifact_path)

    def log_dict(self, data: Mapping[str, Any], artifact_file: str) -> None:
        with mlflow_errors(f"upload {artifact_file} to run {self.run_id}"):
            self.client.log_dict(self.run_id, dict(data), artifact_file)

    def log_model_card(self, markdown: str) -> str:
        """Store the model card (Markdown) with the run; returns its artifact path."""
        with tempfile.TemporaryDirectory(prefix="noria-card-") as tmp:
            file = Path(tmp) / MODEL_CARD_FILE
            file.write_text(markdown, encoding="utf-8")
            self.log_artifact(file)
        self.set_tags({MODEL_CARD_TAG: MODEL_CARD_FILE})
        return MODEL_CARD_FILE

    def log_model(
        self, booster: lightgbm.Booster, name: str, tags: Mapping[str, str] | None = None
    ) -> ModelVersionInfo:
        """Log the booster (LightGBM text) and register it as a new version of ``name``."""
        self.flush()  # the model's metrics are copied from the run as it stands
        return log_lightgbm_model(
            self.client,
            experiment_id=self.experiment_id,
            run_id=self.run_id,
            booster=booster,
            name=name,
            tags=tags,
        )

    # -- lifecycle -------------------------------------------------------------------------------

    def end(self, status: str = "FINISHED") -> None:
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            with mlflow_errors(f"close run {self.run_id}"):
                self.client.set_terminated(self.run_id, status=status)

    def __enter__(self) -> RunHandle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.end("FINISHED")
            return
        # Keep what was measured before the failure (a partial curve helps debugging), but
        # never let a second failure here hide the original one.
        with contextlib.suppress(NoriaError):
            self.flush()
        self._pending.clear()
        # The server may be what failed: its error (raised below) says what broke first. A run it
        # cannot mark FAILED now stays RUNNING until a re-run of the same pipeline run closes it.
        with contextlib.suppress(NoriaError):
            self.end("FAILED")


def start_run(
    project: Project,
    run_name: str,
    lineage: Lineage,
    *,
    tags: Mapping[str, str] | None = None,
    client: MlflowClient | None = None,
) -> RunHandle:
    """Open a run in the project's experiment, tagged with its lineage from the first moment."""
    client = client or get_client(project)
    experiment_id = ensure_experiment(client, project)
    all_tags = {**lineage.to_tags(), **dict(tags or {})}
    if lineage.pipeline_run_id:
        close_abandoned(client, experiment_id, run_name, lineage.pipeline_run_id)
    with mlflow_errors(f"start run {run_name!r}"):
        run = client.create_run(experiment_id, run_name=run_name, tags=all_tags)
    handle = RunHandle(client, run.info.run_id, experiment_id)
    if lineage.packages_sha256:  # the list behind the hash: the environment can be rebuilt from the run
        from noria.provenance import packages_sha256, packages_text

        if lineage.packages_sha256 == packages_sha256():  # collected in this process (not a lineage read back)
            with mlflow_errors(f"upload {PACKAGES_ARTIFACT} to run {run.info.run_id}"):
                client.log_text(run.info.run_id, packages_text(), PACKAGES_ARTIFACT)
    return handle


def close_abandoned(client: MlflowClient, experiment_id: str, run_name: str, pipeline_run_id: str) -> list[str]:
    """Mark FAILED the runs an earlier attempt of the same pipeline run and step left RUNNING.

    An attempt that lost its tracking server (or was killed) could not close its run; re-running
    the same pipeline run (``--run-id``, as an orchestrator's retry does) opens a new run and ends
    that one. A model version such an attempt had already created (killed between creating it and
    finishing the step) is tagged ``noria.abandoned``: the re-run registers its own, and a
    manual promotion of the abandoned one is refused unless forced.
    """
    tag = TAGS["pipeline_run_id"]
    query = f"tags.`{tag}` = '{pipeline_run_id}' and attributes.status = 'RUNNING'"
    with mlflow_errors(f"look up earlier attempts of pipeline run {pipeline_run_id!r}"):
        found = client.search_runs([experiment_id], filter_string=query, max_results=100)
        abandoned = [r.info.run_id for r in found if r.info.run_name == run_name]
        for run_id in abandoned:
            client.set_terminated(run_id, status="FAILED")
            for version in client.search_model_versions(f"run_id = '{run_id}'"):
                client.set_model_version_tag(
                    version.name,
                    version.version,
                    ABANDONED_TAG,
                    f"created by an attempt of pipeline run {pipeline_run_id} that stopped before its step "
                    "finished; the re-run registered its own version",
                )
    return abandoned


def _now_ms() -> int:
    return int(time.time() * 1000)


def _number(key: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError(
            f"metric {key!r} must be a number, got {value!r}", fix="log numbers; put text in params or tags"
        ) from None
    return number


def _param_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)
