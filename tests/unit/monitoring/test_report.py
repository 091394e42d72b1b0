"""The HTML monitoring report, built from records of real drift and performance computations.

Most tests need no registry (the report says so in the score and champion sections); one builds
the whole report on a real SQLite MLflow registry with champion moves and a prediction log.
"""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.unit.monitoring.report_support import MODEL, MONTHS, fill_store, migrated_db_fixture, registry_project

from noria.config import Project, load_project
from noria.monitoring import ReferenceProfile
from noria.monitoring._report_html import SCORE_ROW, drift_matrix
from noria.monitoring._report_plots import profile_shares
from noria.monitoring.report import ReportData, collect_report, registry_exists, render_report, write_report
from noria.monitoring.store import MonitoringStore

CONFIG = """\
project: reporttest
data:
  source: {kind: directory, path: raw}
  tables:
    flights:
      file: flights.csv
      primary_key: [id]
      columns:
        id: {type: int}
model:
  name: flight-delay
"""
SECTIONS = ("summary", "drift", "score", "performance", "alerts", "champion")


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "noria.yaml").write_text(CONFIG, encoding="utf-8")
    return load_project(root, environ={})


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[MonitoringStore, dict[str, object]]:
    """A store with six months of records (computed once: drift on 40 features takes a few seconds)."""
    store = MonitoringStore(tmp_path_factory.mktemp("store") / "monitoring")
    return store, fill_store(store)


def _copy_store(source: MonitoringStore, project: Project) -> MonitoringStore:
    import shutil

    target = MonitoringStore.of(project)
    shutil.copytree(source.root, target.root)
    return target


def _svgs(html: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", html, flags=re.S)


def _section(html: str, name: str) -> str:
    match = re.search(rf'<(section|header) id="{name}">(.*?)</\1>', html, flags=re.S)
    assert match, f"no section {name}"
    return match.group(2)


def _assert_self_contained(html: str) -> None:
    assert not re.search(r"""\b(src|href)\s*=\s*["']?\s*(https?:|//)""", html, flags=re.I)
    assert "http://" not in html and "https://" not in html  # not even SVG namespace URLs
    assert "<link" not in html and "@import" not in html and "<script src" not in html
    assert "url(http" not in html and "@font-face" not in html
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "ids repeat across the inline SVGs"
    for svg in _svgs(html):  # every plot is well-formed XML (the xlink prefix is implied in HTML)
        ET.fromstring(svg.replace("<svg ", '<svg xmlns:xlink="urn:x" ', 1))


def test_report_from_the_store_has_every_section_plots_and_nothing_external(
    project: Project, filled: tuple[MonitoringStore, dict[str, object]]
) -> None:
    store = _copy_store(filled[0], project)
    alerts: dict[str, list[str]] = filled[1]["alerts"]  # type: ignore[assignment]
    path = write_report(project)
    assert path == store.root / "report.html" and path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in store.root.iterdir() if p.name.startswith(".")] == []  # no temp file left
    html = path.read_text(encoding="utf-8")
    for name in SECTIONS:
        _section(html, name)
    _assert_self_contained(html)
    # heatmap, performance, calibration and timeline; no registry here, so no score or champion plot
    assert len(_svgs(html)) == 4 and 'data-plots="4"' in html
    for name in ("drift", "performance", "alerts"):
        assert "<svg" in _section(html, name)
    assert "no model registry yet" in _section(html, "score") and "<svg" not in _section(html, "score")
    assert "no model registry yet" in _section(html, "champion")
    summary = _section(html, "summary")
    assert "2013-12" in summary and "reporttest" in summary and MODEL in summary
    assert f"<b>{sum(len(a) for a in alerts.values())}</b>" in summary  # alerts over all windows
    assert alerts["2013-07"] == ["temp", "score"]  # July is 25 F warmer than January-June
    drift = _section(html, "drift")
    assert "<td>temp</td>" in drift and "ALERT" in drift
    heatmap = _svgs(_section(html, "drift"))[0]
    assert heatmap.count("<path") > 40 * 6  # one cell per feature and window at least
    decisions = _section(html, "alerts")
    assert "drift alert on temp, score" in decisions and "roc_auc 0.731 beats 0.712" in decisions
    performance = _section(html, "performance")
    for month in MONTHS:
        assert f"<td>{month}</td>" in performance


def test_drift_matrix_orders_by_importance_and_keeps_values(filled: tuple[MonitoringStore, dict[str, object]]) -> None:
    records = filled[0].records("drift")
    m = drift_matrix(records)
    assert m.rows[:6] == ["temp", "hour", "carrier", "distance", "visib", "wind_speed"]
    assert m.rows[-1] == SCORE_ROW and len(m.rows) == 41
    assert m.important == [True] * 6 + [False] * 35  # noise features have 0.5 % of the importance
    assert m.columns == [f"{w}\nv{1 if w <= '2013-09' else 3}" for w in MONTHS]
    for c, record in enumerate(records):
        by_name = {f["name"]: f for f in record["features"]}
        for r, name in enumerate(m.rows[:-1]):
            assert m.psi[r, c] == pytest.approx(by_name[name]["psi"])
            assert m.alerts[r, c] == by_name[name]["alert"]
        assert m.psi[-1, c] == pytest.approx(record["score"]["psi"])
    assert m.alerts[0].all() and not m.alerts[1:-1].any()
    assert (m.psi_warn, m.psi_alert) == (0.1, 0.25)


def test_an_empty_project_gets_a_report_that_says_what_to_run(project: Project) -> None:
    html = write_report(project).read_text(encoding="utf-8")
    for name in SECTIONS:
        _section(html, name)
    assert 'data-plots="0"' in html and "<svg" not in html
    assert "noria monitor drift" in _section(html, "drift")
    assert "no performance records yet: run `noria monitor feedback --labels" in _section(html, "performance")
    assert "noria monitor run" in _section(html, "alerts")
    assert "noria pipeline run training" in _section(html, "champion")
    _assert_self_contained(html)


def test_out_may_be_a_file_or_a_folder(project: Project, tmp_path: Path) -> None:
    assert write_report(project, tmp_path / "out" / "m.html") == tmp_path / "out" / "m.html"
    folder = tmp_path / "reports"
    folder.mkdir()
    assert write_report(project, folder) == folder / "report.html"
    assert (folder / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_record_text_is_escaped_and_decisions_without_a_window_are_placed_by_date(project: Project) -> None:
    store = MonitoringStore.of(project)
    store.append_decision(
        {"window": None, "action": "retrain", "reasons": ["<script>alert(1)</script> & more"],
         "model_version_before": 1, "candidate_version": 2, "promoted": True, "gate_reason": "beats",
         "model_version_after": 2}
    )  # fmt: skip
    html = write_report(project).read_text(encoding="utf-8")
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    decided = store.decisions()[0]["decided_at"][:7]
    assert f"<td>{decided}</td>" in _section(html, "alerts")
    assert len(_svgs(_section(html, "alerts"))) == 1  # the timeline, from the decision alone


def test_missing_values_and_infinite_psi_render(filled: tuple[MonitoringStore, dict[str, object]]) -> None:
    records = filled[0].records("drift")[:2]
    records[0]["features"][0]["psi"] = "inf"  # how FeatureDrift.to_dict writes an infinite PSI
    records[1]["features"][1]["psi"] = None
    records[1]["features"] = records[1]["features"][:-1]  # a feature the newer profile lacks
    m = drift_matrix(records)
    assert np.isinf(m.psi[0, 0]) and np.isnan(m.psi[m.rows.index(records[1]["features"][1]["name"]), 1])
    html = render_report(ReportData("p", MODEL, drift=records))
    assert len(_svgs(html)) == 2  # heatmap and timeline


def test_reference_score_shares_come_exactly_from_the_profile() -> None:
    rng = np.random.default_rng(3)
    scores = rng.beta(2, 6, 4000).round(3)  # repeated values, as a tree model's scores have
    profile = ReferenceProfile.build(pd.DataFrame({"x": rng.normal(size=4000)}), scores=scores)
    assert profile.score is not None
    edges = np.linspace(0, 1, 21)
    assert profile_shares(profile.score, edges) == pytest.approx(np.histogram(scores, bins=edges)[0] / 4000)
    inner = np.array([0.1, 0.2, 0.35])  # values outside the edges are left out
    expected = np.histogram(scores, bins=inner)[0] / 4000
    assert profile_shares(profile.score, inner) == pytest.approx(expected)


def test_the_report_module_does_not_import_matplotlib() -> None:
    code = "import sys, noria.monitoring.report; assert 'matplotlib' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_an_absent_sqlite_registry_is_not_created(project: Project) -> None:
    assert not registry_exists(project)
    data = collect_report(project)
    assert data.champion is None and not (project.root / ".noria" / "mlflow.db").exists()


migrated_db = pytest.fixture(scope="module")(migrated_db_fixture)


def test_full_report_on_a_real_registry_and_prediction_log(tmp_path: Path, migrated_db: Path) -> None:
    project = registry_project(tmp_path / "proj", migrated_db)
    data = collect_report(project)
    assert data.champion == 1  # promoted 1, promoted 2, rolled back to 1
    assert [e["action"] for e in data.champion_events] == ["force", "force", "rollback"]
    assert data.score is not None and data.score.version == 1
    assert [w for w, _ in data.score.windows] == ["2013-10", "2013-11", "2013-12"]
    assert sum(v.size for _, v in data.score.windows) == 1500
    html = render_report(data)
    _assert_self_contained(html)
    assert len(_svgs(html)) == 6 and 'data-plots="6"' in html
    for name in SECTIONS[1:]:
        assert "<svg" in _section(html, name), name
    champion = _section(html, "champion")
    assert "<b>v1</b>" in champion and "version 2 misses late evening flights" in champion
    assert "rollback" in champion and "first model" in champion
    assert "<b>v1</b>" in _section(html, "summary")
    assert "Scores served by version 1" in _section(html, "score")
