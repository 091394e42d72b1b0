"""Runs on a real SQLite MLflow store: batched metrics, params, lineage tags, artifacts."""

from __future__ import annotations

import hashlib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from registry_helpers import git

from noria.config import Project
from noria.registry import collect_lineage, start_run
from noria.registry.lineage import TAGS
from noria.registry.mlflow_client import get_client


def lineage_for(project: Project) -> Any:
    return collect_lineage(
        project,
        data_snapshot="snap-42",
        feature_service="flights_v1",
        feature_definition_hash="f00d",
        pipeline_run_id="pipe-7",
    )


def test_metrics_are_sent_in_batches_never_one_call_per_value(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = get_client(project)
    calls: list[int] = []
    real_batch = client.log_batch

    def counting_batch(run_id: str, metrics: Any = (), **kwargs: Any) -> Any:
        calls.append(len(metrics))
        return real_batch(run_id, metrics=metrics, **kwargs)

    monkeypatch.setattr(client, "log_batch", counting_batch)
    monkeypatch.setattr(client, "log_metric", lambda *a, **k: pytest.fail("log_metric must not be used"))
    with start_run(project, "curves", lineage_for(project), client=client) as run:
        calls.clear()  # creation may set tags; count metric traffic only
        run.log_curve("valid_auc", [i / 2500 for i in range(2500)])
        run.log_metrics({"roc_auc": 0.71, "log_loss": 0.43})
        run.log_metrics({"roc_auc": 0.72}, step=1)
    assert [c for c in calls if c] == [1000, 1000, 503]
    history = client.get_metric_history(run.run_id, "valid_auc")
    assert len(history) == 2500
    assert sorted(m.step for m in history) == list(range(2500))
    final = client.get_run(run.run_id)
    assert final.info.status == "FINISHED"
    assert final.data.metrics["roc_auc"] == pytest.approx(0.72)


def test_params_tags_and_model_card(project: Project, tmp_path: Any) -> None:
    client = get_client(project)
    params = {f"p{i}": i for i in range(150)} | {"nested": {"a": [1, 2]}}
    with start_run(project, "params", lineage_for(project), tags={"team": "delays"}) as run:
        run.log_params(params)
        run.set_tags({"stage": "dev"})
        run.log_model_card("# Model card\n\nPredicts late departures.\n")
        extra = tmp_path / "notes.txt"
        extra.write_text("hello", encoding="utf-8")
        run.log_artifact(extra, "extra")
    data = client.get_run(run.run_id).data
    assert len(data.params) == 151 and data.params["nested"] == '{"a": [1, 2]}'
    assert data.tags["team"] == "delays" and data.tags["stage"] == "dev"
    assert data.tags["noria.model_card"] == "model_card.md"
    names = {a.path for a in client.list_artifacts(run.run_id)}
    assert {"model_card.md", "extra"} <= names


def test_every_lineage_tag_is_recorded(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGE_VERSION", "0.1.0")  # set by the images' Dockerfiles (deploy/docker)
    git(project.root, "init", "-q", "-b", "main")
    (project.root / "uv.lock").write_text("version = 1\n", encoding="utf-8")
    git(project.root, "add", "noria.yaml", "uv.lock")
    git(project.root, "commit", "-q", "-m", "init")
    commit = git(project.root, "rev-parse", "HEAD")
    lineage = lineage_for(project)
    assert lineage.git_commit == commit
    assert lineage.git_dirty is True  # .noria/ is untracked here
    with start_run(project, "lineage", lineage) as run:
        pass
    tags = get_client(project).get_run(run.run_id).data.tags
    for tag in TAGS.values():
        assert tag in tags, tag
    assert tags["noria.git.commit"] == commit == tags["mlflow.source.git.commit"]
    assert tags["noria.git.dirty"] == "true"
    assert tags["noria.data.snapshot"] == "snap-42"
    assert tags["noria.features.service"] == "flights_v1"
    assert tags["noria.features.definition_hash"] == "f00d"
    assert tags["noria.pipeline.run_id"] == "pipe-7"
    assert tags["noria.image.version"] == "0.1.0"
    assert tags["noria.env.uv_lock_sha256"] == hashlib.sha256(b"version = 1\n").hexdigest()
    # The installed packages: their hash as a tag, their list (pip freeze's form) as the run's artifact.
    client = get_client(project)
    listed = Path(client.download_artifacts(run.run_id, "environment/packages.txt", str(project.root / "dl")))
    text = listed.read_text(encoding="utf-8")
    assert tags["noria.env.packages_sha256"] == hashlib.sha256(text.encode()).hexdigest()
    lines = text.splitlines()
    assert (
        lines == sorted(lines)
        and f"mlflow=={version('mlflow')}" in lines
        and any(line.startswith("noria==") for line in lines)
    )
    assert tags["noria.infra.tracking_backend"] == "sqlite"
    assert tags["noria.env.python"].split()[-1].startswith("3.")


def test_outside_git_lineage_is_unknown_not_an_error(project: Project) -> None:
    lineage = lineage_for(project)
    assert lineage.git_commit is None and lineage.git_dirty is None and lineage.uv_lock_sha256 is None
    assert "noria.git.commit" not in lineage.to_tags()


def test_failed_run_is_marked_failed(project: Project) -> None:
    with pytest.raises(RuntimeError), start_run(project, "boom", lineage_for(project)) as run:
        run.log_metrics({"x": 1.0})
        raise RuntimeError("training crashed")
    failed = get_client(project).get_run(run.run_id)
    assert failed.info.status == "FAILED"
    assert failed.data.metrics == {"x": 1.0}  # what was measured before the crash is kept


def test_non_numeric_metric_is_a_clear_error(project: Project) -> None:
    from noria.errors import ValidationError

    with start_run(project, "bad", lineage_for(project)) as run, pytest.raises(ValidationError) as err:
        run.log_metrics({"auc": "high"})  # type: ignore[dict-item]
    assert "'auc'" in err.value.message


def test_relative_tracking_paths_resolve_against_the_project(project: Project, monkeypatch: Any) -> None:
    from noria.registry.mlflow_client import artifact_location, tracking_uri

    monkeypatch.chdir("/")
    assert tracking_uri(project) == f"sqlite:///{project.root.resolve()}/.noria/mlflow.db"
    assert artifact_location(project) == (project.root.resolve() / ".noria" / "mlartifacts").as_uri()
    with start_run(project, "where", lineage_for(project)) as run:
        pass
    experiment = get_client(project).get_experiment(run.experiment_id)
    assert experiment.name == "regtest"
    assert experiment.artifact_location == artifact_location(project)
