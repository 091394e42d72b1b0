"""noria.s3: the one place that parses s3:// URLs, picks the endpoint, builds clients and maps S3 failures.

No S3 server here: the error mapping is fed botocore's own exception types, and the unreachable
endpoint is a real closed port. The stores against a real server (SeaweedFS) are in
tests/integration/test_monitoring_remote.py, test_predlog_s3.py, test_dvc_s3.py and
test_cluster_stack.py (a missing bucket, refused credentials).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from tests.conftest import free_port

from noria import s3
from noria.errors import ConfigError, ExternalToolError


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


STORE = s3.Store(
    "s3://bucket/some/prefix",
    "bucket",
    "some/prefix",
    "http://seaweedfs:8333",
    "the widget store",
    "widgets.remote",
    "widgets.s3_endpoint_url",
)


def _client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} says S3"}}, "ListObjectsV2")


# --- URLs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://bucket/prefix", ("bucket", "prefix")),
        (" s3://bucket/a/b/ ", ("bucket", "a/b")),
        ("s3://bucket", ("bucket", "")),
        ("s3://bucket/", ("bucket", "")),
    ],
)
def test_an_s3_url_splits_into_bucket_and_prefix(url: str, expected: tuple[str, str]) -> None:
    assert s3.parse_url(url, "widgets.remote") == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [("bucket/prefix", "is not an s3:// URL"), ("https://x/y", "is not an s3:// URL"), ("s3:///prefix", "no bucket")],
)
def test_a_bad_url_is_a_config_error_naming_the_key(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        s3.parse_url(url, "widgets.remote", "s3://noria-data/widgets")
    assert caught.value.message.startswith("widgets.remote: ")
    assert "s3://BUCKET/PREFIX" in str(caught.value.fix)


def test_remote_log_keeps_its_parse_remote_with_its_own_key() -> None:
    from noria.remote_log import parse_remote

    assert parse_remote("s3://b/p/") == ("b", "p")
    with pytest.raises(ConfigError, match=r"^serving\.prediction_log\.remote: "):
        parse_remote("b/p")


# --- endpoint ----------------------------------------------------------------------------


def test_the_endpoint_comes_from_config_then_the_standard_variables_then_mlflows() -> None:
    env = {
        "AWS_ENDPOINT_URL_S3": "http://s3-only:1",
        "AWS_ENDPOINT_URL": "http://aws:2",
        "MLFLOW_S3_ENDPOINT_URL": "http://mlflow-s3:3",
    }
    assert s3.endpoint_url(" http://configured:9 ", env) == "http://configured:9"
    assert s3.endpoint_url(None, env) == "http://s3-only:1"
    assert s3.endpoint_url("  ", {k: v for k, v in env.items() if k != "AWS_ENDPOINT_URL_S3"}) == "http://aws:2"
    assert s3.endpoint_url(None, {"MLFLOW_S3_ENDPOINT_URL": "http://mlflow-s3:3"}) == "http://mlflow-s3:3"
    assert s3.endpoint_url(None, {"AWS_ENDPOINT_URL": "  "}) is None  # AWS itself
    assert s3.ENDPOINT_VARIABLES == ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL")


def test_a_client_points_at_the_endpoint_and_reads_credentials_when_made(
    no_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "first")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    first = s3.client("http://seaweedfs:8333", purpose="a test")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "second")
    second = s3.client(None, purpose="a test")
    assert first.meta.endpoint_url == "http://seaweedfs:8333"
    assert second.meta.endpoint_url.startswith("https://s3.")  # AWS itself
    assert first._request_signer._credentials.access_key == "first"
    assert second._request_signer._credentials.access_key == "second"  # not frozen in a default session


# --- the data remote's own endpoint and identity (pre-production reads production's data) ---


def test_the_data_remote_identity_is_unset_whole_or_half_an_error() -> None:
    assert s3.data_identity({}) is None and s3.data_endpoint({}) is None
    assert s3.data_identity({"NORIA_DATA_S3_ACCESS_KEY_ID": " ", "NORIA_DATA_S3_SECRET_ACCESS_KEY": ""}) is None
    both = {"NORIA_DATA_S3_ACCESS_KEY_ID": "reader", "NORIA_DATA_S3_SECRET_ACCESS_KEY": "hush"}
    identity = s3.data_identity(both)
    assert identity == s3.Identity("reader", "hush") and "hush" not in repr(identity)
    assert s3.data_endpoint({"NORIA_DATA_S3_ENDPOINT_URL": " http://prod-s3:8333 "}) == "http://prod-s3:8333"
    for given, missing in (
        ("NORIA_DATA_S3_ACCESS_KEY_ID", "NORIA_DATA_S3_SECRET_ACCESS_KEY"),
        ("NORIA_DATA_S3_SECRET_ACCESS_KEY", "NORIA_DATA_S3_ACCESS_KEY_ID"),
    ):
        with pytest.raises(ConfigError, match=f"{given} is set but {missing} is not") as caught:
            s3.data_identity({given: "x"})
        assert "s3-data-" in str(caught.value.fix)


def test_a_client_with_an_identity_ignores_the_aws_variables(no_aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "own-store")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    reader = s3.client("http://prod:8333", purpose="a test", identity=s3.Identity("reader", "hush"))
    assert reader._request_signer._credentials.access_key == "reader"
    assert s3.client(None, purpose="a test")._request_signer._credentials.access_key == "own-store"


def test_the_data_variables_are_reserved_names_not_config_keys() -> None:
    from noria.config import RESERVED_ENV

    assert set(s3.DATA_VARIABLES) <= RESERVED_ENV


def test_the_remote_keeps_the_data_identity_out_of_the_tracked_dvc_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from noria.data.versioning import Remote, project_remote

    plain = Remote("s3://noria-data/dvc", endpoint_url="http://own:8333")
    assert plain.options(tmp_path) == {"url": "s3://noria-data/dvc", "endpointurl": "http://own:8333"}
    assert plain.local_options() == {} and plain.identity is None
    data = Remote("s3://noria-data/dvc", "http://prod:8333", "reader", "hush", own_endpoint=True)
    assert data.options(tmp_path, local=False) == {"url": "s3://noria-data/dvc"}  # what .dvc/config gets
    assert data.local_options() == {
        "endpointurl": "http://prod:8333",
        "access_key_id": "reader",
        "secret_access_key": "hush",
    }
    assert data.options(tmp_path) == {"url": "s3://noria-data/dvc"} | data.local_options()  # in memory
    assert "hush" not in repr(data) and "NORIA_DATA_S3_ACCESS_KEY_ID" in data.fix()

    class Storage:
        dvc_remote = "s3://noria-data/dvc"
        s3_endpoint_url = "http://own:8333"

    class Config:
        storage = Storage()

    class FakeProject:
        config = Config()

    project: Any = FakeProject()
    for var in s3.DATA_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    assert project_remote(project) == plain  # unset: unchanged
    monkeypatch.setenv("NORIA_DATA_S3_ENDPOINT_URL", "http://prod:8333")
    monkeypatch.setenv("NORIA_DATA_S3_ACCESS_KEY_ID", "reader")
    monkeypatch.setenv("NORIA_DATA_S3_SECRET_ACCESS_KEY", "hush")
    assert project_remote(project) == data


# --- error codes and the mapping ---------------------------------------------------------


def test_error_codes_are_found_also_in_boto3s_upload_wrapper() -> None:
    from boto3.exceptions import S3UploadFailedError

    wrapped = S3UploadFailedError(
        "Failed to upload a to b/c: An error occurred (NoSuchBucket) when calling the PutObject operation"
    )
    assert s3.error_code(wrapped) == "NoSuchBucket"
    assert s3.error_code(_client_error("AccessDenied")) == "AccessDenied"
    assert s3.error_code(ValueError("nothing")) == ""
    assert s3.is_missing(_client_error("404")) and s3.is_missing(_client_error("NoSuchKey"))
    assert not s3.is_missing(_client_error("AccessDenied"))


def test_a_missing_bucket_names_the_bucket_the_store_and_the_config_key() -> None:
    error = s3.error(_client_error("NoSuchBucket"), STORE, "list the widgets")
    assert isinstance(error, ConfigError)
    assert error.message == (
        "the bucket 'bucket' of the widget store s3://bucket/some/prefix (endpoint http://seaweedfs:8333) does not exist"
    )
    assert "aws s3 mb s3://bucket" in str(error.fix) and "widgets.remote" in str(error.fix)
    retried = s3.error(_client_error("NoSuchBucket"), STORE, "list the widgets", config_errors=False)
    assert type(retried) is ExternalToolError and retried.message == error.message


@pytest.mark.parametrize("code", ["AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"])
def test_refused_credentials_name_the_code_and_the_fix(code: str) -> None:
    error = s3.error(_client_error(code), STORE, "read the record r.json")
    assert type(error) is ExternalToolError
    assert error.message == (
        f"S3 refused to read the record r.json in the widget store s3://bucket/some/prefix "
        f"(endpoint http://seaweedfs:8333): {code}"
    )
    assert "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY" in str(error.fix) and "s3://bucket/some/prefix" in str(error.fix)


def test_no_credentials_is_a_config_error_with_the_variables_to_set() -> None:
    error = s3.error(NoCredentialsError(), STORE, "upload w1")
    assert isinstance(error, ConfigError)
    assert error.message.startswith("no S3 credentials to upload w1 in the widget store s3://bucket/some/prefix")
    assert "AWS_ACCESS_KEY_ID" in str(error.fix)
    assert type(s3.error(NoCredentialsError(), STORE, "upload w1", config_errors=False)) is ExternalToolError


def test_an_unreachable_endpoint_names_it_and_where_it_is_set() -> None:
    error = s3.error(EndpointConnectionError(endpoint_url="http://seaweedfs:8333/bucket"), STORE, "list the widgets")
    assert type(error) is ExternalToolError
    assert error.message.startswith("cannot reach the S3 endpoint http://seaweedfs:8333 to list the widgets in s3://")
    assert "widgets.s3_endpoint_url (or AWS_ENDPOINT_URL / MLFLOW_S3_ENDPOINT_URL)" in str(error.fix)
    no_key = s3.Store("s3://b", "b", "", None, "the log", "log.remote")
    fix = str(s3.error(EndpointConnectionError(endpoint_url="x"), no_key, "list").fix)
    assert "set AWS_ENDPOINT_URL / MLFLOW_S3_ENDPOINT_URL to one" in fix


def test_any_other_failure_keeps_s3s_message() -> None:
    error = s3.error(_client_error("SlowDown"), STORE, "write w1")
    assert type(error) is ExternalToolError
    assert "S3 failed to write w1 in the widget store" in error.message and "SlowDown says S3" in error.message


def test_a_real_closed_port_fails_within_seconds_through_the_block(
    no_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    endpoint = f"http://127.0.0.1:{free_port()}"
    client = s3.client(endpoint, purpose="a test", max_attempts=1)
    store = s3.Store("s3://bucket/p", "bucket", "p", endpoint, "the widget store", "widgets.remote")
    started = time.monotonic()
    with pytest.raises(ExternalToolError) as caught, s3.errors(store, "look up w1"):
        client.head_object(Bucket="bucket", Key="p/w1")
    assert time.monotonic() - started < 10
    assert caught.value.message.startswith(f"cannot reach the S3 endpoint {endpoint} to look up w1 in s3://bucket/p")


def test_errors_lets_other_exceptions_through() -> None:
    with pytest.raises(KeyError), s3.errors(STORE, "anything"):
        raise KeyError("not S3's")
