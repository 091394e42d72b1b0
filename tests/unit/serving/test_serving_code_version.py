"""The code version inside an image: GIT_COMMIT, GIT_DIRTY, UV_LOCK_SHA256 and IMAGE_VERSION (set by
deploy/docker/*.Dockerfile from build arguments) are what a project folder without a git checkout
records on runs and snapshots, and what ``/version`` shows. scripts/docker_test.sh checks the same
on the built images."""

from __future__ import annotations

import subprocess
from pathlib import Path

import lightgbm as lgb
import pytest
from fastapi.testclient import TestClient
from tests.unit.serving.conftest import AppFactory
from tests.unit.serving.serving_support import KEY, make_project, register

from noria.provenance import code_version, git_state, image_provenance
from noria.registry import collect_lineage, lineage_of
from noria.registry.lineage import format_lineage

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LOCK = "f" * 64
IMAGE = {"GIT_COMMIT": COMMIT, "GIT_DIRTY": "false", "UV_LOCK_SHA256": LOCK, "IMAGE_VERSION": "0.1.0"}


@pytest.fixture
def in_image(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in IMAGE.items():
        monkeypatch.setenv(name, value)


def test_image_variables_are_read_and_unknown_counts_as_unset() -> None:
    assert image_provenance(IMAGE) == {
        "git_commit": COMMIT,
        "git_dirty": "false",
        "uv_lock_sha256": LOCK,
        "image_version": "0.1.0",
    }
    assert image_provenance({"GIT_COMMIT": "unknown", "UV_LOCK_SHA256": " "}) == {}


def test_outside_git_the_image_commit_is_recorded(tmp_path: Path, in_image: None) -> None:
    state = git_state(tmp_path)
    assert (state.commit, state.dirty) == (COMMIT, False)
    code = code_version(tmp_path)
    assert code["git_commit"] == COMMIT and code["uv_lock_sha256"] == LOCK and code["image_version"] == "0.1.0"


def test_a_git_checkout_wins_over_the_image_variables(tmp_path: Path, in_image: None) -> None:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "uv.lock").write_text("locked\n")
    subprocess.run(["git", "-C", str(tmp_path), "add", "uv.lock"], check=True)
    subprocess.run(
        ["git", "-C", str(tmp_path), "commit", "-q", "-m", "x"], check=True, env=env | {"PATH": "/usr/bin:/bin"}
    )
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    code = code_version(tmp_path)
    assert code["git_commit"] == head.strip() != COMMIT and code["uv_lock_sha256"] != LOCK


def test_a_run_made_in_an_image_records_its_commit_lock_and_version(
    tmp_path: Path, migrated_db: Path, booster: lgb.Booster, in_image: None
) -> None:
    project = make_project(tmp_path / "proj", migrated_db)  # a folder, not a git checkout: as /app/project
    lineage = collect_lineage(project, data_snapshot="s", feature_service="f", feature_definition_hash="h")
    assert (lineage.git_commit, lineage.git_dirty, lineage.uv_lock_sha256) == (COMMIT, False, LOCK)
    assert lineage.image_version == "0.1.0" and lineage.to_tags()["noria.image.version"] == "0.1.0"
    register(project, booster, "champion")
    report = lineage_of(project, "flight-delay@champion")
    assert report.lineage.git_commit == COMMIT and report.lineage.image_version == "0.1.0"
    text = format_lineage(report)
    assert COMMIT in text and LOCK in text and "image 0.1.0" in text


def test_version_shows_the_code_the_service_runs(make_app: AppFactory, in_image: None) -> None:
    with TestClient(make_app()) as client:
        client.headers["Authorization"] = f"Bearer {KEY}"
        code = client.get("/version").json()["code"]
    assert code["git_commit"] == COMMIT and code["uv_lock_sha256"] == LOCK and code["image_version"] == "0.1.0"
    assert code["noria"]
