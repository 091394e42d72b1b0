"""The monitoring report: one self-contained HTML file with plots, what ``noria monitor report`` writes.

Sections: drift per feature over time, the score distribution against the reference, live
performance on delayed labels, drift alerts and retraining decisions, and the champion history.
Everything is drawn in the terms of the project's task (:mod:`noria.tasks`): the live primary
metric (binary: ROC AUC; multi-class: log loss; regression: RMSE) against its holdout value per
model version, the project's KPI against its target, the task's own figures (binary: precision,
recall and calibration; multi-class: accuracy, macro F1, top-label calibration and class shares;
regression: errors per window and mean label against mean prediction), the daily figures, and
the score (a probability, the predicted class's probability, or the predicted value, in the
target's unit). Everything comes from records Noria already keeps: the monitoring store (drift,
performance, decisions), the prediction log, the reference profile stored with the model
version, and the champion history on the registered model. A section without data says which
command produces it.

The file needs nothing else to be read: plots are inline SVG (text drawn as paths), styles
are inline, and the one inline script only counts drawn plots (``data-plots-drawn`` on
``<body>``, which the browser test checks against ``data-plots``). No network, no fonts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np

from noria import atomic
from noria.errors import NoriaError, NotFoundError
from noria.monitoring.store import MonitoringStore, now_iso
from noria.tasks import BinaryTask, Task

if TYPE_CHECKING:
    from noria.config import Project
    from noria.monitoring.profile import NumericProfile

NEWEST_SCORE_WINDOWS = 3  # windows of the prediction log drawn against the reference score histogram


@dataclass(frozen=True)
class ScoreView:
    """The reference score distribution of one model version and the scores it served lately."""

    version: int
    reference: NumericProfile  # the score's profile: quantile bins and cumulative counts
    windows: list[tuple[str, np.ndarray[Any, np.dtype[np.float64]]]]  # (window, served scores)


@dataclass
class ReportData:
    """Everything the report shows; :func:`collect_report` gathers it, :func:`render_report` draws it."""

    project: str
    model_name: str
    task: Task = field(default_factory=BinaryTask)  # the project's task: what the score and metrics mean
    metric_drop: float | None = None  # monitoring.policy.metric_drop: a larger drop calls for a retrain
    drift: list[dict[str, Any]] = field(default_factory=list)
    performance: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    champion: int | None = None
    champion_events: list[dict[str, Any]] = field(default_factory=list)
    score: ScoreView | None = None
    notes: dict[str, str] = field(default_factory=dict)  # section -> why it has no data
    generated_at: str = field(default_factory=now_iso)


def write_report(project: Project, out: Path | None = None) -> Path:
    """Write the monitoring report (default ``<monitoring.dir>/report.html``) atomically; return its path."""
    target = Path(out) if out is not None else MonitoringStore.of(project).root / "report.html"
    if target.is_dir():
        target = target / "report.html"
    atomic.write_text(target, render_report(collect_report(project)), mode=atomic.SHARED)  # meant to be shared
    return target


def collect_report(project: Project) -> ReportData:
    """Read the monitoring store, the prediction log and the registry for the project's model."""
    from noria.tasks import task_of

    name = project.config.model.name
    store = MonitoringStore.of(project)
    data = ReportData(
        project=project.config.project,
        model_name=name,
        task=task_of(project),
        metric_drop=project.config.monitoring.policy.metric_drop,
        drift=[r for r in store.records("drift") if r.get("model_name") == name],
        performance=[r for r in store.records("performance") if r.get("model_name") == name],
        decisions=[d for d in store.decisions() if d.get("model_name", name) in (name, "")],
    )
    if not registry_exists(project):
        missing = "no model registry yet: train a model with `noria pipeline run training`"
        data.notes["champion"] = missing
        data.notes["score"] = missing
        return data
    _collect_registry(project, data)
    _collect_scores(project, data)
    return data


def registry_exists(project: Project) -> bool:
    """False when the registry is a local SQLite file or folder not created yet (opening it would create it)."""
    from noria.registry.mlflow_client import tracking_uri

    uri = tracking_uri(project)
    if uri.startswith("sqlite:///"):
        rest = uri[len("sqlite:///") :]
        return rest == ":memory:" or Path(rest).is_file()
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(parsed.path).exists()
    return Path(uri).exists() if not parsed.scheme else True


def _collect_registry(project: Project, data: ReportData) -> None:
    from noria.registry import champion_history, list_models

    try:
        (summary,) = list_models(project, data.model_name)
        history = champion_history(project, data.model_name)
    except NotFoundError:
        data.notes["champion"] = (
            f"no registered model {data.model_name!r} yet: train one with `noria pipeline run training`"
        )
        return
    except NoriaError as exc:
        data.notes["champion"] = f"the registry could not be read: {exc}"
        return
    data.champion = summary.aliases.get("champion")
    data.champion_events = list(history.events)
    if not history.events:
        data.notes["champion"] = "the champion was never moved through Noria (promote, rollback)"


def _collect_scores(project: Project, data: ReportData) -> None:
    from noria.monitoring.window import load_profile, read_window, windows_in_log

    logged = list(windows_in_log(project))
    if not logged:
        data.notes["score"] = "no prediction log yet: serve predictions with `noria serve`"
        return
    served: list[tuple[str, Any]] = []
    for window in logged[-NEWEST_SCORE_WINDOWS:]:
        rows = read_window(project, window)
        if not rows.empty:
            served.append((window, rows[rows["model_name"] == data.model_name]))
    served = [(w, rows) for w, rows in served if not rows.empty]
    if not served:
        data.notes["score"] = f"the prediction log has no served predictions of {data.model_name!r}"
        return
    version = int(served[-1][1]["model_version"].value_counts().idxmax())  # the newest window's main version
    try:
        profile = load_profile(project, data.model_name, version)
    except NoriaError as exc:
        data.notes["score"] = f"no reference profile to compare with: {exc}"
        return
    if profile.score is None:
        data.notes["score"] = f"the reference profile of version {version} has no score histogram"
        return
    windows = []
    for window, rows in served:
        values = rows.loc[rows["model_version"] == version, "score"].to_numpy(dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size:
            windows.append((window, values))
    data.score = ScoreView(version=version, reference=profile.score, windows=windows)


def render_report(data: ReportData) -> str:
    """The report as one HTML document (matplotlib is imported here, not before)."""
    from noria.monitoring import report_page as html

    return html.document(data)


__all__ = ["ReportData", "ScoreView", "collect_report", "registry_exists", "render_report", "write_report"]
