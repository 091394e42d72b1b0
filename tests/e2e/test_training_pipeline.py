"""End to end on real data: ingest, features, the training pipeline, registry and gate.

A small window keeps it fast: train on January 2013, hold out February, no tuning trials.
Real components throughout: DVC, Feast's registry, DuckDB, LightGBM, MLflow on SQLite.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from noria.config import load_project
from noria.data.ingest import ingest
from noria.features import list_usage
from noria.pipelines import run_project_pipeline
from noria.registry import get_version, lineage_of
from noria.scaffold import init_project

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ENV = {
    "NORIA_TRAINING__TRIALS": "0",
    "NORIA_TRAINING__TRAIN__FROM": "2013-01",
    "NORIA_TRAINING__TRAIN__TO": "2013-01",
    "NORIA_TRAINING__TEST__FROM": "2013-02",
    "NORIA_TRAINING__TEST__TO": "2013-02",
    "NORIA_TRAINING__BASELINES": "[majority_rate]",
}


def test_training_pipeline_registers_a_gated_champion_with_lineage(tmp_path: Path) -> None:
    root = init_project(tmp_path / "flights")
    project = load_project(root, environ=ENV)
    snapshot = ingest(project, "2013-01", "2013-02").record

    first = run_project_pipeline(project, "training", progress=False)
    assert first.count("ran") == 8
    evaluation = first.load("evaluation")
    assert evaluation["metrics"]["roc_auc"] > 0.65  # a real signal on a month we did not train on
    assert evaluation["split"]["parts"]["test"]["rows"] > 20_000
    decision = first.load("gate")
    assert decision["promoted"] and decision["alias"] == "champion"

    champion = get_version(project, "flight-delay@champion")
    assert champion.version == decision["version"] == 1
    report = lineage_of(project, "flight-delay@champion")
    text = str(report.to_dict() if hasattr(report, "to_dict") else report)
    assert snapshot.id in text and first.run_id in text
    usage = list_usage(project, "flight-delay")
    assert usage and usage[0].service == "flight_delay"

    again = run_project_pipeline(project, "training", progress=False)
    # only `context` and `gate` rerun: the gate depends on the current champion, never cached
    assert again.count("cached") == 6 and again.count("ran") == 2
    assert "already @champion" in again.load("gate")["reason"]

    # A new holdout period reruns the training; the gate compares on the same holdout.
    changed = run_project_pipeline(project, "training", params={"test_from": "2013-02"}, progress=False)
    assert changed.count("cached") == 6


def test_impossible_split_fails_before_any_work(tmp_path: Path) -> None:
    from noria.errors import NoriaError

    root = init_project(tmp_path / "flights")
    project = load_project(root, environ=ENV)
    ingest(project, "2013-01", "2013-01")
    with pytest.raises(NoriaError, match="test"):
        run_project_pipeline(project, "training", params={"test_from": "2012-12", "test_to": "2012-12"}, progress=False)
    with pytest.raises(NoriaError, match="ingest the test months first"):
        run_project_pipeline(project, "training", progress=False)
