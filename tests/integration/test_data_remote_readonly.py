"""Pre-production reads production's data remote with a read-only identity (two real SeaweedFS servers).

Production's store checks credentials: its admin identity (what production's pods use) and a
read-only identity that may only Read and List the data bucket, as deploy/terraform/envs/prod
gives pre-production. Pre-production's own store is a second server, named by the ``AWS_*``
variables (its MLflow artifacts, pipeline store, prediction log and monitoring records live
there); only the data remote is read from production, through ``NORIA_DATA_S3_ENDPOINT_URL`` /
``NORIA_DATA_S3_ACCESS_KEY_ID`` / ``NORIA_DATA_S3_SECRET_ACCESS_KEY``.

- ``noria data pull`` in pre-production brings production's newest snapshot, the same frame;
  the keys go to ``.dvc/config.local`` (git-ignored), never to the tracked ``.dvc/config``;
- ``noria data ingest`` there fails before reading anything, with an error naming the variables
  and saying pre-production reads production's data and does not ingest; production's bucket
  is unchanged;
- half an identity (the key without the secret) is a clear configuration error.

With the variables unset nothing changes: tests/integration/test_dvc_s3.py runs that way.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import yaml
from s3_support import SeaweedS3, seaweed
from tests.conftest import SMALL_CONFIG, flight_rows, write_small_sources

from noria.config import load_project
from noria.data.ingest import ingest
from noria.data.published import PREFIX
from noria.data.snapshots import open_snapshot

pytestmark = pytest.mark.integration

BUCKET = "noria-data"
READER = ("preprod-reader", "preprod-reader-secret")
# what deploy/terraform/modules/platform lets the reader see: the DVC remote's prefix only, not the
# prediction log beside it (s3://noria-data/predictions: requests, possibly personal data)
READABLE = f"{BUCKET}/dvc/*"
NORIA = [str(Path(sys.executable).parent / "noria")]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SeaweedS3, SeaweedS3]]:
    """(production's store with a read-only identity on the data bucket, pre-production's own store)."""
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(2) as pool:
        prod = pool.submit(stack.enter_context, seaweed(tmp_path_factory.mktemp("prod-s3"), readers={READABLE: READER}))
        own = pool.submit(stack.enter_context, seaweed(tmp_path_factory.mktemp("preprod-s3")))
        importlib.import_module("noria.data.validate")
        importlib.import_module("dvc.repo")
        prod_store, own_store = prod.result(timeout=120), own.result(timeout=120)
        prod_store.create_bucket(BUCKET)
        own_store.create_bucket("noria-artifacts")  # pre-production's own store: no data bucket at all
        yield prod_store, own_store


def config(prefix: str) -> str:
    data = yaml.safe_load(SMALL_CONFIG)
    data["storage"] = {"dvc_remote": f"s3://{BUCKET}/{prefix}"}
    return yaml.safe_dump(data, sort_keys=False)


def preprod_env(prod: SeaweedS3, own: SeaweedS3) -> dict[str, str]:
    """Pre-production's pod: AWS_* name its own store; NORIA_DATA_S3_* production's data, read-only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NORIA_", "AWS_"))}
    return (
        env
        | own.env()
        | {
            "NORIA_DATA_S3_ENDPOINT_URL": prod.endpoint,
            "NORIA_DATA_S3_ACCESS_KEY_ID": READER[0],
            "NORIA_DATA_S3_SECRET_ACCESS_KEY": READER[1],
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
    )


def test_preprod_pulls_production_data_read_only_and_may_not_ingest(
    small_project: Path, stores: tuple[SeaweedS3, SeaweedS3], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prod, own = stores
    prefix = f"dvc/{uuid.uuid4().hex[:8]}"
    (small_project / "noria.yaml").write_text(config(prefix), encoding="utf-8")
    for var, value in prod.env().items():  # production: its admin identity, one store, no NORIA_DATA_S3_*
        monkeypatch.setenv(var, value)
    production = load_project(small_project, environ={})
    write_small_sources(small_project, flight_rows([1, 2]))
    snap = ingest(production).record
    published = set(prod.keys(BUCKET, prefix + "/"))
    assert f"{prefix}/{PREFIX}/{snap.id}.json" in published

    pod = tmp_path / "preprod"  # the image's project: noria.yaml, no data, no records
    pod.mkdir()
    (pod / "noria.yaml").write_text(config(prefix), encoding="utf-8")
    env = preprod_env(prod, own)
    done = subprocess.run([*NORIA, "--project", str(pod), "data", "pull"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    for var in ("NORIA_DATA_S3_ENDPOINT_URL", "NORIA_DATA_S3_ACCESS_KEY_ID", "NORIA_DATA_S3_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, env[var])
    pulled = load_project(pod, environ={})
    pd.testing.assert_frame_equal(open_snapshot(pulled).read("flights"), open_snapshot(production).read("flights"))
    # the keys (and production's endpoint) are in the git-ignored config.local only
    tracked = (pod / ".dvc" / "config").read_text(encoding="utf-8")
    local = (pod / ".dvc" / "config.local").read_text(encoding="utf-8")
    assert READER[1] not in tracked and prod.endpoint not in tracked
    assert READER[1] in local and prod.endpoint in local
    # (in a git repository, DVC's own .gitignore keeps config.local out of git)
    assert "/config.local" in (small_project / ".dvc" / ".gitignore").read_text(encoding="utf-8")

    # Pre-production does not ingest: the write is refused, with the reason and the variables named.
    write_small_sources(pod, flight_rows([3]))
    done = subprocess.run([*NORIA, "--project", str(pod), "data", "ingest"], env=env, capture_output=True, text=True)
    assert done.returncode == 3, done.stdout + done.stderr  # a ConfigError
    message = " ".join((done.stdout + done.stderr).split())
    assert "reads production's data and does not ingest" in message, message
    for var in ("NORIA_DATA_S3_ENDPOINT_URL", "NORIA_DATA_S3_ACCESS_KEY_ID", "NORIA_DATA_S3_SECRET_ACCESS_KEY"):
        assert var in message, message
    assert set(prod.keys(BUCKET, prefix + "/")) == published  # production's data unchanged
    assert not (pod / "data" / "dataset" / "flights" / "month=2013-03").exists()
    assert own.keys("noria-artifacts") == []  # and nothing of the data landed on pre-production's store

    # The identity reads the DVC remote only: production's prediction log beside it stays closed.
    import boto3

    prod.client().put_object(Bucket=BUCKET, Key="predictions/2013-01.jsonl", Body=b"{}")
    reader = boto3.client(
        "s3", endpoint_url=prod.endpoint, aws_access_key_id=READER[0], aws_secret_access_key=READER[1],
        region_name="us-east-1",
    )  # fmt: skip
    with pytest.raises(Exception, match="AccessDenied"):
        reader.get_object(Bucket=BUCKET, Key="predictions/2013-01.jsonl")
    assert reader.list_objects_v2(Bucket=BUCKET, Prefix=prefix + "/")["KeyCount"] > 0


def test_half_an_identity_is_a_clear_error(small_project: Path, stores: tuple[SeaweedS3, SeaweedS3]) -> None:
    from noria.errors import ConfigError

    prod, _ = stores
    (small_project / "noria.yaml").write_text(config("dvc/half"), encoding="utf-8")
    project = load_project(small_project, environ={})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NORIA_DATA_S3_ENDPOINT_URL", prod.endpoint)
        mp.setenv("NORIA_DATA_S3_ACCESS_KEY_ID", READER[0])
        with pytest.raises(ConfigError, match="NORIA_DATA_S3_SECRET_ACCESS_KEY"):
            ingest(project)
