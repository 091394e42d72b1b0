from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from noria.errors import ConfigError, DataError
from noria.pipelines import ArtifactNotFoundError, LocalArtifactStore, open_store
from noria.pipelines._serializers import dump_artifact
from noria.pipelines._store import hash_folder


def staged(store: LocalArtifactStore, value: object, name: str = "a") -> Path:
    folder = store.staging / name
    folder.mkdir()
    dump_artifact(value, folder)
    return folder


def test_put_is_content_addressed(store: LocalArtifactStore) -> None:
    df = pd.DataFrame({"x": [1, 2, 3]})
    first = store.put(staged(store, df, "one"))
    second = store.put(staged(store, df.copy(), "two"))
    assert first == second and len(first) == 64
    assert store.exists(first)
    assert [p.name for p in (store.root / "objects").rglob("*") if p.parent.parent.name == "objects"] == [first]
    assert not list(store.staging.iterdir())  # both staging folders consumed
    other = store.put(staged(store, pd.DataFrame({"x": [1, 2, 4]})))
    assert other != first


def test_hash_covers_names_and_content(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        (folder / "d").mkdir(parents=True)
        (folder / "d" / "f.txt").write_text("same")
    assert hash_folder(a) == hash_folder(b)
    (b / "d" / "f.txt").rename(b / "d" / "g.txt")
    assert hash_folder(a) != hash_folder(b)


def test_get_missing_and_bad_ids(store: LocalArtifactStore) -> None:
    with pytest.raises(ArtifactNotFoundError, match="not in the store"):
        store.get("0" * 64)
    with pytest.raises(ArtifactNotFoundError, match="not an artifact id"):
        store.get("../../etc")
    assert not store.exists("f" * 64)


def test_records_round_trip_and_reject_traversal(store: LocalArtifactStore) -> None:
    assert store.read_record("runs/p/r/run.json") is None
    store.write_record("runs/p/r/run.json", {"a": 1})
    store.write_record("runs/p/r/run.json", {"a": 2})
    assert store.read_record("runs/p/r/run.json") == {"a": 2}
    with pytest.raises(ValueError, match="invalid record key"):
        store.write_record("../escape.json", {})
    (store.root / "runs/p/r/bad.json").write_text("{not json")
    with pytest.raises(DataError, match="not a JSON object"):
        store.read_record("runs/p/r/bad.json")


def test_a_record_write_cut_short_keeps_the_old_record(
    store: LocalArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write_record("runs/p/r/rec.json", {"v": 1})

    def crash(fd: int) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk gone"):
        store.write_record("runs/p/r/rec.json", {"v": 2})
    assert store.read_record("runs/p/r/rec.json") == {"v": 1}
    assert [p.name for p in (store.root / "runs/p/r").iterdir()] == ["rec.json"]  # no temp file left behind


def test_failed_put_publishes_nothing(store: LocalArtifactStore, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = staged(store, {"k": "v"})

    def crash(self: Path, target: Path) -> None:
        raise OSError("killed during rename")

    monkeypatch.setattr(Path, "rename", crash)
    with pytest.raises(OSError, match="killed"):
        store.put(folder)
    assert not any(p.is_dir() and len(p.name) == 64 for p in (store.root / "objects").rglob("*"))


def test_stale_staging_is_swept(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "s")
    old, new = store.staging / "old", store.staging / "new"
    old.mkdir()
    new.mkdir()
    os.utime(old, (0, 0))
    LocalArtifactStore(tmp_path / "s")
    assert [p.name for p in store.staging.iterdir()] == ["new"]


def test_open_store_picks_the_backend(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path / "x"), LocalArtifactStore)
    assert isinstance(open_store(f"file://{tmp_path / 'y'}"), LocalArtifactStore)
    with pytest.raises(ConfigError, match="unsupported scheme"):
        open_store("gs://bucket/x")
