"""noria.s3 against a real S3 server: the endpoint order, and one missing-bucket error for every store.

SeaweedFS (s3_support.py) is the S3 server; nothing is mocked. It accepts any credentials (no
IAM), so refused credentials are checked in tests/integration/test_cluster_stack.py, whose stack
has them; the mapping itself is in tests/unit/test_s3.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from s3_support import SeaweedS3, seaweed

from noria import s3
from noria.errors import ConfigError, ExternalToolError

pytestmark = pytest.mark.integration

BUCKET = "noria-helper"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    with seaweed(tmp_path_factory.mktemp("seaweed")) as running:
        running.create_bucket(BUCKET)
        running.client().put_object(Bucket=BUCKET, Key="p/hello.txt", Body=b"hello")
        yield running


@pytest.fixture(autouse=True)
def s3_env(server: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)


def test_a_client_from_mlflows_variable_alone_reaches_the_server(
    server: SeaweedS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", server.endpoint)  # what deploy/k8s sets
    endpoint = s3.endpoint_url(None)
    assert endpoint == server.endpoint
    client = s3.client(endpoint, purpose="a test")
    assert client.get_object(Bucket=BUCKET, Key="p/hello.txt")["Body"].read() == b"hello"
    store = s3.Store(f"s3://{BUCKET}/p", BUCKET, "p", endpoint, "the test store", "test.remote")
    with pytest.raises(ExternalToolError) as caught, s3.errors(store, "read p/none"):
        client.get_object(Bucket=BUCKET, Key="p/none")
    assert s3.is_missing(caught.value.__cause__ or caught.value)


def test_a_missing_bucket_is_named_with_its_store_and_config_key_by_every_store(
    server: SeaweedS3, tmp_path: Path
) -> None:
    from noria.monitoring.remote import RemoteRecords
    from noria.pipelines import open_store
    from noria.remote_log import RemoteLog

    with pytest.raises(ConfigError) as store:
        open_store("s3://no-such-bucket/pipelines", cache_dir=tmp_path / "cache").read_record("runs/r.json")
    with pytest.raises(ConfigError) as log:
        RemoteLog("s3://no-such-bucket/predictions").keys()
    with pytest.raises(ExternalToolError) as records:  # monitoring: every S3 failure is exit 7, for the retry
        RemoteRecords("s3://no-such-bucket/monitoring", tmp_path / "monitoring").pull()
    for caught, what, key in (
        (store, "the artifact store", "pipelines.store"),
        (log, "the prediction log", "serving.prediction_log.remote"),
        (records, "the monitoring records", "monitoring.remote"),
    ):
        assert caught.value.message.startswith(f"the bucket 'no-such-bucket' of {what} s3://no-such-bucket/")
        assert f"(endpoint {server.endpoint}) does not exist" in caught.value.message
        assert "aws s3 mb s3://no-such-bucket" in str(caught.value.fix) and key in str(caught.value.fix)
