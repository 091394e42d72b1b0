"""The HTML monitoring report, built from records of real drift and performance computations.

Most tests need no registry (the report says so in the score and champion sections); one builds
the whole report on a real SQLite MLflow registry with champion moves and a prediction log.
Binary, multi-class and regression projects each get a report in their own terms.
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
from tests.unit.monitoring.report_support import (
    MODEL,
    MONTHS,
    MULTICLASS,
    REGRESSION,
    fill_store,
    fill_task_store,
    migrated_db_fixture,
    registry_project,
)

from noria.config import Project, load_project
from noria.monitoring import ReferenceProfile
from noria.monitoring import _report_plots as plots
from noria.monitoring._report_plots import profile_shares
from noria.monitoring.report import ReportData, collect_report, registry_exists, render_report, write_report
from noria.monitoring.report_page import SCORE_ROW, drift_matrix
from noria.monitoring.store import MonitoringStore
from noria.tasks import BinaryTask, Task

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
TASK_CONFIGS = {
    "multiclass": """\
project: footballtest
data:
  source: {kind: directory, path: raw}
  tables:
    matches:
      file: matches.csv
      primary_key: [id]
      columns:
        id: {type: int}
        result: {type: str}
model:
  name: match-result
  task: multiclass
  target: {column: result, classes: [H, D, A], name: result}
monitoring:
  policy: {metric_drop: 0.05}
  kpi: {metric: accuracy, name: results called right, target: 0.5}
""",
    "regression": """\
project: glucosetest
data:
  source: {kind: directory, path: raw}
  tables:
    readings:
      file: readings.csv
      primary_key: [id]
      columns:
        id: {type: int}
        level: {type: float}
model:
  name: glucose-30
  task: regression
  target: {column: level, name: glucose in 30 min, unit: mg/dL}
windows: {unit: week}
monitoring:
  policy: {metric_drop: 5}
  kpi: {metric: mae, name: mean miss, target: 12}
""",
}
# words of the flights example that must not reach another project's report
FLIGHT_WORDS = re.compile(r"(?i)flight|\blate\b|\bdelays?\b|departure|carrier")


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
    for header in ("live ROC AUC", "holdout ROC AUC", "drop (+ = worse)", "KPI: recall (business KPI)", "precision"):
        assert f"<th>{header}</th>" in performance, header
    assert "ROC AUC, 2013-12" in summary and "KPI: recall (business KPI)" in summary


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
    assert "no performance records yet: run `noria monitor feedback`" in _section(html, "performance")
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


def _task_project(tmp_path: Path, name: str) -> tuple[Project, Task]:
    from noria.tasks import task_of

    root = tmp_path / name
    root.mkdir()
    (root / "noria.yaml").write_text(TASK_CONFIGS[name], encoding="utf-8")
    project = load_project(root, environ={})
    return project, task_of(project)


@pytest.mark.parametrize("name", sorted(TASK_CONFIGS))
def test_a_multiclass_and_a_regression_project_get_a_report_in_their_own_terms(tmp_path: Path, name: str) -> None:
    project, task = _task_project(tmp_path, name)
    assert task == {"multiclass": MULTICLASS, "regression": REGRESSION}[name]
    kpi = project.config.monitoring.kpi
    assert kpi.metric and kpi.name
    made = fill_task_store(
        MonitoringStore.of(project), task, project.config.model.name, kpi=(kpi.metric, kpi.name, kpi.target)
    )
    html = write_report(project).read_text(encoding="utf-8")
    _assert_self_contained(html)
    for section in SECTIONS:
        _section(html, section)
    summary, performance = _section(html, "summary"), _section(html, "performance")
    # heatmap, performance, the task's detail plot (calibration or residuals), class shares (multi-class), timeline
    plotted = {"multiclass": 5, "regression": 4}[name]
    assert len(_svgs(html)) == plotted and f'data-plots="{plotted}"' in html
    assert len(_svgs(performance)) == plotted - 2
    assert not FLIGHT_WORDS.search(html), FLIGHT_WORDS.search(html)
    for window in made["windows"]:
        assert f"<td>{window}</td>" in performance
    assert made["windows"][-1] in summary
    if name == "regression":
        assert "regression: glucose in 30 min (mg/dL)" in summary
        for header in ("live RMSE (mg/dL)", "holdout RMSE (mg/dL)", "KPI: mean miss", "MAE (mg/dL)", "R\u00b2"):
            assert f"<th>{header}</th>" in performance, header
        assert "Mean label against mean prediction per window" in performance
        assert "Calibration" not in performance
        assert "RMSE (mg/dL), 2024-W15" in summary and '<div class="card alert"><span>RMSE' in summary  # 13.7 > 5
        assert '<div class="card alert"><span>KPI: mean miss' in summary  # an MAE of 28 misses the target of 12
    else:
        assert "multi-class (H, D, A)" in summary
        for header in ("live log loss", "holdout log loss", "KPI: results called right", "accuracy", "macro F1"):
            assert f"<th>{header}</th>" in performance, header
        assert "Share of each class among the labels" in performance
        assert '<div class="card "><span>log loss, 1998-99' in summary  # better live than on the holdout
    assert "monitoring.policy.metric_drop" in performance


@pytest.mark.parametrize("task", [BinaryTask(label_name="late"), MULTICLASS, REGRESSION], ids=lambda t: t.name)
def test_plot_titles_and_axes_speak_of_the_task(tmp_path: Path, task: Task) -> None:
    store = MonitoringStore(tmp_path / "store")
    if task.name == "binary":
        fill_store(store, rows=300)
    else:
        fill_task_store(store, task, MODEL, rows=300)
    records = store.records("performance")
    windows = sorted({r["window"] for r in records})
    fig = plots.performance(records, windows, task)
    main, kpi, own = fig.axes
    words = {
        "binary": ("ROC AUC", "(higher is better)", "recall", "precision"),
        "multiclass": ("log loss", "(lower is better)", "accuracy", "macro F1"),
        "regression": ("RMSE (mg/dL)", "(lower is better)", "MAE (mg/dL)", "bias"),
    }[task.name]
    assert main.get_ylabel() == words[0] and words[1] in main.get_title(loc="left")
    assert "KPI:" in kpi.get_title(loc="left") and "against its target" in kpi.get_title(loc="left")
    assert any(line.get_label().startswith("target ") for line in kpi.get_lines())
    assert words[2] in kpi.get_ylabel() or words[2] in kpi.get_title(loc="left")
    assert any(words[3] in str(line.get_label()) for line in own.get_lines()) or words[3] in own.get_title(loc="left")
    newest = records[-1]
    detail = (
        plots.residuals(records, windows, newest, task)
        if task.name == "regression"
        else plots.calibration(newest, task)
    )
    left, right = detail.axes[:2]
    expected = {
        "binary": ("mean predicted probability of the positive class (late)", "observed rate of late"),
        "multiclass": ("mean probability of the predicted class", "share predicted right"),
        "regression": ("", "glucose in 30 min (mg/dL)"),
    }[task.name]
    assert (left.get_xlabel(), left.get_ylabel()) == expected
    assert f"Daily, {newest['window']}" in right.get_title(loc="left")
    assert {line.get_label() for line in right.get_lines()} >= {
        plots.metric_name(k, task) for k in plots.DAILY[task.name]
    }
    texts = " ".join(
        str(t) for ax in (*fig.axes, *detail.axes) for t in (ax.get_title(loc="left"), ax.get_xlabel(), ax.get_ylabel())
    )
    if task.name != "binary":
        assert not FLIGHT_WORDS.search(texts), texts


def test_the_score_distribution_is_labelled_and_scaled_in_the_task_s_terms() -> None:
    rng = np.random.default_rng(5)
    reference = ReferenceProfile.build(pd.DataFrame({"x": rng.normal(size=3000)}), scores=rng.normal(140, 30, 3000))
    assert reference.score is not None
    served = [("2024-W14", rng.normal(150, 30, 500)), ("2024-W15", rng.normal(175, 35, 500))]
    fig = plots.score_distribution(reference.score, served, REGRESSION)
    left = fig.axes[0]
    assert left.get_xlabel() == "predicted glucose in 30 min (mg/dL)"
    low, high = left.get_xlim()
    assert low > 0 and high > 200  # the values' range, not a probability's [0, 1]
    probability = ReferenceProfile.build(pd.DataFrame({"x": rng.normal(size=3000)}), scores=rng.beta(2, 5, 3000))
    assert probability.score is not None
    fig = plots.score_distribution(probability.score, [("1998-99", rng.beta(3, 4, 400))], MULTICLASS)
    assert fig.axes[0].get_xlabel() == "probability of the predicted class (confidence)"
    assert fig.axes[0].get_xlim()[0] <= 0 and fig.axes[0].get_xlim()[1] >= 1
    assert plots.score_label(BinaryTask()) == "predicted probability of the positive class"
    assert (
        plots.score_label(BinaryTask(label_name="churned")) == "predicted probability of the positive class (churned)"
    )
