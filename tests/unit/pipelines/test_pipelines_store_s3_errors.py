"""The S3 store's endpoint resolution and its errors when S3 cannot be used (no server needed).

The store against a real S3 server (SeaweedFS) is in test_pipelines_store_contract.py and
tests/integration/test_cluster_stack.py (a missing bucket, refused credentials).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from tests.conftest import free_port

from noria.errors import ConfigError, ExternalToolError
from noria.pipelines import _store, open_store
from noria.pipelines._store import S3ArtifactStore, s3_endpoint_url


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS setting from this machine: no variables, no config files, no instance metadata."""
    for var in list(os.environ):
        if var.startswith(("AWS_", "MLFLOW_S3_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def test_the_endpoint_comes_from_config_then_the_standard_variables_then_mlflows() -> None:
    env = {
        "AWS_ENDPOINT_URL_S3": "http://s3-only:1",
        "AWS_ENDPOINT_URL": "http://aws:2",
        "MLFLOW_S3_ENDPOINT_URL": "http://mlflow-s3:3",
    }
    assert s3_endpoint_url(" http://configured:9 ", env) == "http://configured:9"
    assert s3_endpoint_url(None, env) == "http://s3-only:1"
    assert s3_endpoint_url("", {k: v for k, v in env.items() if k != "AWS_ENDPOINT_URL_S3"}) == "http://aws:2"
    assert s3_endpoint_url(None, {"MLFLOW_S3_ENDPOINT_URL": "http://mlflow-s3:3"}) == "http://mlflow-s3:3"
    assert s3_endpoint_url(None, {"AWS_ENDPOINT_URL": "  "}) is None  # AWS itself


def test_the_store_uses_mlflows_variable_when_it_is_the_only_one(
    no_aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "http://seaweedfs:8333")  # deploy/k8s sets only this one
    store = open_store("s3://bucket/prefix", cache_dir=tmp_path)
    assert isinstance(store, S3ArtifactStore)
    assert store.endpoint == "http://seaweedfs:8333"
    assert store.client.meta.endpoint_url == "http://seaweedfs:8333"


def test_an_unreachable_endpoint_fails_within_seconds_naming_it(
    no_aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_store, "S3_MAX_ATTEMPTS", 1)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = open_store("s3://bucket/prefix", cache_dir=tmp_path, endpoint_url=endpoint)
    started = time.monotonic()
    with pytest.raises(ExternalToolError) as caught:
        store.read_record("runs/p/r/run.json")
    assert time.monotonic() - started < 10
    assert f"cannot reach the S3 endpoint {endpoint} to read the record runs/p/r/run.json" in caught.value.message
    assert "s3://bucket/prefix" in caught.value.message
    assert "MLFLOW_S3_ENDPOINT_URL" in str(caught.value.fix)


def test_missing_credentials_are_a_config_error_with_the_fix(no_aws: None, tmp_path: Path) -> None:
    store = open_store("s3://bucket/prefix", cache_dir=tmp_path, endpoint_url=f"http://127.0.0.1:{free_port()}")
    folder = store.staging / "artifact"
    folder.mkdir()
    (folder / "meta.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ConfigError, match="no S3 credentials to look up artifact") as caught:
        store.put(folder)
    assert "AWS_ACCESS_KEY_ID" in str(caught.value.fix)


def test_error_codes_are_found_also_in_boto3s_upload_wrapper() -> None:
    from boto3.exceptions import S3UploadFailedError

    wrapped = S3UploadFailedError(
        "Failed to upload a to b/c: An error occurred (NoSuchBucket) when calling the PutObject operation"
    )
    assert _store._error_code(wrapped) == "NoSuchBucket"
    assert _store._error_code(ValueError("nothing")) == ""
