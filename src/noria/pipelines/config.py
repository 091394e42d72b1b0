"""The ``pipelines:`` section of noria.yaml (a pydantic model only: importing it loads no runner)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class PipelinesConfig(BaseModel):
    """The ``pipelines:`` section of noria.yaml.

    ``store`` is a folder or an ``s3://bucket/prefix`` URL (default: ``storage.artifacts_dir``);
    ``s3_endpoint_url`` points boto3 at SeaweedFS/MinIO (else ``AWS_ENDPOINT_URL`` or AWS);
    ``cache_dir`` keeps local copies of artifacts read from S3; ``registry`` maps pipeline
    names to ``module:attribute`` references.
    """

    model_config = ConfigDict(extra="forbid")

    # Step artifacts, cache and run records: a folder or s3://bucket/prefix (default: storage.artifacts_dir).
    store: str | None = None
    # An S3-compatible server (SeaweedFS, MinIO) for an s3:// store; else AWS_ENDPOINT_URL or AWS.
    s3_endpoint_url: str | None = None
    # Local copies of artifacts read from S3.
    cache_dir: str = ".noria/artifact-cache"
    # The project's own pipelines: name -> module:attribute.
    registry: dict[str, str] = {}


__all__ = ["PipelinesConfig"]
