"""Data snapshots on an S3 DVC remote (a real SeaweedFS), read back from a fresh git clone.

A project ingests with ``storage.dvc_remote: s3://...``; the data must land in the bucket.
A ``git clone`` of the project holds only the small files (``dataset.dvc``, the snapshot
records, ``.dvc/config``): no dataset folder, no DVC cache. Reading any snapshot there,
old or new, fetches it from S3 and gives the same frame; so does building a training set
from the feature store's offline sources, which are snapshot tables read the same way.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import yaml
from flights_support import flights_project
from s3_support import SeaweedS3, seaweed
from tests.conftest import SMALL_CONFIG, flight_rows, write_small_sources

from noria.config import Project, load_project
from noria.data.ingest import ingest
from noria.data.snapshots import dataset_dvc_file, open_snapshot, tracked_version
from noria.data.versioning import Remote, version_files
from noria.errors import NoriaError, SnapshotNotFoundError

pytestmark = pytest.mark.integration

BUCKET = "noria-data"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """SeaweedFS with the bucket; while it starts, this process loads what ingest will need."""
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(1) as pool:
        started = pool.submit(stack.enter_context, seaweed(tmp_path_factory.mktemp("seaweed")))
        importlib.import_module("noria.data.validate")  # pandera
        importlib.import_module("dvc.repo")
        importlib.import_module("dvc_s3")
        server = started.result(timeout=120)
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture
def aws(s3: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> SeaweedS3:
    """Credentials and endpoint through the standard AWS variables only (nothing in noria.yaml)."""
    for var, value in s3.env().items():
        monkeypatch.setenv(var, value)
    return s3


def s3_remote(config: str, prefix: str) -> str:
    data = yaml.safe_load(config)
    data["storage"] = {"dvc_remote": f"s3://{BUCKET}/{prefix}"}
    return yaml.safe_dump(data, sort_keys=False)


def commit_and_clone(root: Path, clone: Path) -> Path:
    """Commit what ingest staged (DVC pointers, records, .dvc/config) and ``git clone`` it."""
    git = ["git", "-c", "user.name=noria", "-c", "user.email=noria@example.com"]
    subprocess.run([*git, "-C", str(root), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(root), "commit", "-qm", "data", "--allow-empty"], check=True)
    subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True)
    return clone


def manifest_md5s(project: Project, snapshot_id: str) -> set[str]:
    """The content hashes DVC pushed for one version: its .dir manifest and every file in it."""
    cache = project.root / ".dvc" / "cache" / "files" / "md5"
    manifest = cache / snapshot_id[:2] / f"{snapshot_id[2:]}.dir"
    return {f"{snapshot_id}.dir"} | {e["md5"] for e in json.loads(manifest.read_text())}


def test_snapshots_are_pushed_to_s3_and_read_back_in_a_clone(
    small_project: Path, aws: SeaweedS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"dvc-{uuid.uuid4().hex[:8]}"
    (small_project / "noria.yaml").write_text(s3_remote(SMALL_CONFIG, prefix), encoding="utf-8")
    project = load_project(small_project, environ={})
    write_small_sources(small_project, flight_rows([1, 2]))
    first = ingest(project).record
    old = {t: open_snapshot(project, first.id).read(t) for t in ("flights", "planes")}
    write_small_sources(small_project, flight_rows([1, 2, 3], per_month=6))
    second = ingest(project).record
    assert second.id != first.id and second.parent == first.id
    new_flights = open_snapshot(project, second.id).read("flights")
    assert len(new_flights) == 18 and len(old["flights"]) == 10

    # Both versions are in the bucket, in DVC's layout (files/md5/xx/rest), under the prefix.
    # Beside them, the snapshot records every ingest publishes (noria.data.published).
    keys = set(aws.keys(BUCKET, prefix + "/"))
    records = {f"{prefix}/noria-snapshots/{snap.id}.json" for snap in (first, second)}
    assert records <= keys
    keys -= records
    pushed = {k.removeprefix(f"{prefix}/files/md5/").replace("/", "", 1) for k in keys}
    for snap in (first, second):
        assert manifest_md5s(project, snap.id) <= pushed, snap.short_id
    assert all(k.startswith(f"{prefix}/files/md5/") for k in keys)

    clone = load_project(commit_and_clone(small_project, small_project.parent / "clone"), environ={})
    assert not (clone.data_dir / "dataset").exists() and not (clone.root / ".dvc" / "cache").exists()
    assert (clone.data_dir / "dataset.dvc").is_file()
    for table, frame in old.items():
        pd.testing.assert_frame_equal(open_snapshot(clone, first.id).read(table), frame)
    pd.testing.assert_frame_equal(open_snapshot(clone).read("flights"), new_flights)  # latest = second
    # Reads fill DVC's cache only; the workspace copy of the dataset is never written.
    assert not (clone.data_dir / "dataset").exists() and (clone.root / ".dvc" / "cache").is_dir()

    # The endpoint may also be given explicitly (storage.s3_endpoint_url) instead of AWS_ENDPOINT_URL.
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    third = load_project(commit_and_clone(small_project, small_project.parent / "third"), environ={})
    remote = Remote(f"s3://{BUCKET}/{prefix}", endpoint_url=aws.endpoint)
    version = tracked_version(third)
    assert version is not None and version.md5 == second.id
    files = version_files(third.root, dataset_dvc_file(third), version, remote)
    months = [f"flights/month=2013-0{m}/part-0.parquet" for m in (1, 2, 3)]
    assert sorted(files) == [*months, "planes/part-0.parquet"]
    flights = pd.concat([pd.read_parquet(files[m]) for m in months], ignore_index=True)
    pd.testing.assert_frame_equal(flights, new_flights)
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint)

    # A clone pointed at a prefix that holds nothing says so, naming the remote.
    elsewhere = commit_and_clone(small_project, small_project.parent / "elsewhere")
    wrong = load_project(elsewhere, environ={"NORIA_STORAGE__DVC_REMOTE": f"s3://{BUCKET}/nothing-here"})
    with pytest.raises(SnapshotNotFoundError, match="nothing-here"):
        open_snapshot(wrong, first.id).read("flights")


def test_missing_bucket_is_a_clear_error(small_project: Path, aws: SeaweedS3) -> None:
    config = s3_remote(SMALL_CONFIG, "x").replace(f"s3://{BUCKET}/", "s3://no-such-bucket-noria/")
    (small_project / "noria.yaml").write_text(config, encoding="utf-8")
    with pytest.raises(NoriaError) as caught:
        ingest(load_project(small_project, environ={}))
    assert "no-such-bucket-noria" in caught.value.message + str(caught.value.fix)
    assert "AWS_ENDPOINT_URL" in str(caught.value.fix)


def test_training_set_is_built_in_a_clone_from_s3_only(tmp_path: Path, aws: SeaweedS3) -> None:
    from noria.features import build_training_set

    remote = {"dvc_remote": f"s3://{BUCKET}/flights-{uuid.uuid4().hex[:8]}"}
    root = flights_project(tmp_path / "flights", months=[1], days=3, overrides={"storage": remote})
    project = load_project(root, environ={})
    snap = ingest(project, "2013-01", "2013-01").record
    here = build_training_set(project, "2013-01", "2013-01", snapshot_id=snap.id)

    clone = load_project(commit_and_clone(root, tmp_path / "pod"), environ={})
    assert not (clone.data_dir / "dataset").exists() and not (clone.root / "raw").exists()
    there = build_training_set(clone, "2013-01", "2013-01", snapshot_id=snap.id)
    assert there.record.snapshot_id == snap.id and there.record.rows == here.record.rows > 2000
    assert there.record.definition_hash == here.record.definition_hash
    pd.testing.assert_frame_equal(there.frame, here.frame)


def test_a_pod_with_an_empty_folder_pulls_the_newest_snapshot_and_ingests_on_top_of_it(
    small_project: Path, aws: SeaweedS3, tmp_path: Path
) -> None:
    """What the cluster's Jobs do (deploy/k8s/base/jobs.yaml): every ingest publishes its record
    beside the data; a folder with no record and no git (a pod) runs `noria data pull`, reads the
    newest snapshot, and an ingest of later months there builds on it."""
    from noria.data.published import PREFIX, pull
    from noria.data.snapshots import list_snapshots

    prefix = f"dvc-{uuid.uuid4().hex[:8]}"
    config = s3_remote(SMALL_CONFIG, prefix)
    (small_project / "noria.yaml").write_text(config, encoding="utf-8")
    laptop = load_project(small_project, environ={})
    write_small_sources(small_project, flight_rows([1, 2]))
    first = ingest(laptop).record
    assert aws.keys(BUCKET, f"{prefix}/{PREFIX}/") == [f"{prefix}/{PREFIX}/{first.id}.json"]

    pod_root = tmp_path / "pod"  # the image's project: noria.yaml, no data, no records, no git
    pod_root.mkdir()
    (pod_root / "noria.yaml").write_text(config, encoding="utf-8")
    pod = load_project(pod_root, environ={})
    with pytest.raises(SnapshotNotFoundError, match="no data snapshot yet"):
        open_snapshot(pod)
    pulled = pull(pod)
    assert pulled.pulled == [first.id] and pulled.checked_out == first.id and pulled.known == 1
    pd.testing.assert_frame_equal(open_snapshot(pod).read("flights"), open_snapshot(laptop).read("flights"))
    assert (pod.data_dir / "dataset" / "flights" / "month=2013-02").is_dir()
    assert pull(pod).pulled == [] and pull(pod).checked_out is None  # up to date: nothing to do

    write_small_sources(pod_root, flight_rows([3], per_month=4))  # March arrives at the pod's source
    march = ingest(pod, "2013-03", "2013-03").record
    assert march.parent == first.id and march.months == ["2013-01", "2013-02", "2013-03"]
    assert len(open_snapshot(pod).read("flights")) == 14  # January and February kept, March added
    assert march.git_commit is None  # no git in the folder, no GIT_COMMIT: nothing to record

    again = pull(laptop, checkout=False)  # the laptop sees the pod's snapshot; its dataset is untouched
    assert again.pulled == [march.id] and [r.id for r in list_snapshots(laptop)] == [first.id, march.id]
    assert not (laptop.data_dir / "dataset" / "flights" / "month=2013-03").exists()


def test_a_source_in_s3_is_read_like_a_folder_and_copied_once(small_project: Path, aws: SeaweedS3) -> None:
    """``data.source: {kind: s3, path: s3://...}``: the raw files are objects under a prefix (what a
    cluster's ingest CronJob reads); ingest gives the same snapshot as from the folder."""
    from noria.data.sources import S3_SOURCE_CACHE
    from noria.errors import SourceError

    from_folder = ingest(load_project(small_project, environ={})).record
    bucket, prefix = "raw-landing", f"small-{uuid.uuid4().hex[:6]}"
    aws.create_bucket(bucket)
    client = aws.client()
    for path in sorted((small_project / "raw").iterdir()):
        client.upload_file(str(path), bucket, f"{prefix}/{path.name}")
    config = yaml.safe_load(SMALL_CONFIG)
    config["data"]["source"] = {"kind": "s3", "path": f"s3://{bucket}/{prefix}"}
    (small_project / "noria.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    project = load_project(small_project, environ={})
    from_s3 = ingest(project).record
    assert from_s3.id == from_folder.id  # the same data: the same content-addressed snapshot
    assert {t: open_snapshot(project, from_s3.id).read(t).shape for t in ("flights", "planes")} == {
        t: open_snapshot(project, from_folder.id).read(t).shape for t in ("flights", "planes")
    }
    copied = small_project / S3_SOURCE_CACHE / bucket / prefix / "flights.csv"
    stamp = copied.stat().st_mtime_ns
    ingest(project)
    assert copied.stat().st_mtime_ns == stamp  # unchanged objects are not copied again
    assert not list((small_project / S3_SOURCE_CACHE).rglob("*.tmp"))

    config["data"]["source"]["path"] = f"s3://{bucket}/nothing-here"
    (small_project / "noria.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    with pytest.raises(SourceError, match="no source file under s3://raw-landing/nothing-here"):
        ingest(load_project(small_project, environ={}))
