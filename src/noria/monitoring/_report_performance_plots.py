"""The performance plots of the monitoring report (section 3), in the task's terms.

Live primary metric against the holdout per model version, the KPI against its target, the
task's own figures per window; calibration (binary, multi-class), residuals (regression) and
class shares (multi-class), each with the daily figures of one window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from noria.monitoring._report_svg import color, new_figure, number, rc_style
from noria.monitoring._report_words import (
    DAILY,
    SHARE_METRICS,
    better,
    direction,
    metric_name,
    positive_name,
    target_name,
    with_unit,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from noria.tasks import Task


def primary_of(records: Sequence[Mapping[str, Any]], task: Task) -> str:
    """The primary metric the records were judged on (theirs, else the task's)."""
    named = [str(r["primary_metric"]) for r in records if r.get("primary_metric")]
    return named[-1] if named else task.primary_metric


def kpi_of(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The newest record's KPI (metric, name, value, target) or an empty dict."""
    for record in reversed(records):
        kpi = record.get("kpi")
        if isinstance(kpi, dict) and kpi.get("metric"):
            return kpi
    return {}


def performance(records: Sequence[Mapping[str, Any]], windows: Sequence[str], task: Task) -> Figure:
    """Live primary metric vs holdout per model version; the KPI against its target; the task's own figures."""
    import matplotlib

    position = {w: i for i, w in enumerate(windows)}
    versions = sorted({int(r["model_version"]) for r in records})
    primary = primary_of(records, task)
    kpi = kpi_of(records)
    fig = new_figure(max(9.0, 3.5 + 0.7 * len(windows)), 7.2, (0.8, 2.0, 0.3, 0.45), hspace=0.35)
    with matplotlib.rc_context(rc_style()):
        main_ax, kpi_ax, task_ax = fig.subplots(3, 1, sharex=True)
        for i, version in enumerate(versions):
            mine = [r for r in records if int(r["model_version"]) == version]
            x = [position[str(r["window"])] for r in mine]
            metrics = [r.get("metrics") or {} for r in mine]
            c = color(i)
            main_ax.plot(x, [number(m.get(primary)) for m in metrics], "o-", color=c, label=f"v{version} live")
            holdout = [number(r.get("holdout", r.get("holdout_auc"))) for r in mine]
            if any(math.isfinite(h) for h in holdout):
                level = next(h for h in reversed(holdout) if math.isfinite(h))
                main_ax.hlines(
                    level, min(x) - 0.3, max(x) + 0.3, colors=c, linestyles="--", label=f"v{version} holdout"
                )
            kpis = [kpi_of([r]) for r in mine]
            kpi_ax.plot(x, [number(k.get("value")) for k in kpis], "D-", color=c, label=f"v{version}")
            _task_lines(task_ax, task, x, metrics, version, c)
        main_ax.set_ylabel(metric_name(primary, task))
        main_ax.set_title(
            f"Live {metric_name(primary, task)} on delayed labels vs holdout, per model version"
            f"{direction(primary, task)}",
            loc="left",
        )
        _kpi_axis(kpi_ax, kpi, task)
        _task_axis(task_ax, task)
        task_ax.set_xticks(range(len(windows)), list(windows))
        for ax in (main_ax, kpi_ax, task_ax):
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


def _kpi_axis(ax: Axes, kpi: Mapping[str, Any], task: Task) -> None:
    from matplotlib.ticker import PercentFormatter

    metric = str(kpi.get("metric") or "")
    if not metric:
        ax.set_title("KPI: none recorded (monitoring.kpi)", loc="left")
        return
    name = str(kpi.get("name") or metric)
    target = number(kpi.get("target"))
    shown = metric_name(metric, task)
    if math.isfinite(target):
        ax.axhline(target, color="#222222", linestyle=":", linewidth=1.2, label=f"target {target:.4g}")
    way = better(metric, task)
    title = f"KPI: {name}" + (f" = {shown}" if name != metric else "") + (f"; {way}" if way else "")
    ax.set_title(title + (", against its target" if math.isfinite(target) else ", no target set"), loc="left")
    ax.set_ylabel(shown)
    if metric in SHARE_METRICS or metric.startswith("share_"):
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))


def _task_lines(
    ax: Axes, task: Task, x: Sequence[int], metrics: Sequence[Mapping[str, Any]], version: int, c: str
) -> None:
    """The task's own figures of one model version over the windows."""

    def line(key: str, style: str, label: str) -> None:
        ax.plot(x, [number(m.get(key)) for m in metrics], style, color=c, label=f"v{version} {label}")

    if task.name == "binary":
        line("precision", "o-", "precision")
        line("recall", "s:", "recall")
        line("flagged_rate", "^:", "flagged")
        line("base_rate", "x", metric_name("base_rate", task))
    elif task.name == "multiclass":
        line("accuracy", "o-", "accuracy")
        line("macro_f1", "s:", "macro F1")
    else:
        line("mae", "o-", "MAE")
        line("rmse", "^:", "RMSE")
        line("bias", "s--", "bias")


def _task_axis(ax: Axes, task: Task) -> None:
    from matplotlib.ticker import PercentFormatter

    if task.name == "binary":
        ax.set_ylabel("share")
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_title(
            f"At the decision threshold: precision, recall, share flagged; {metric_name('base_rate', task)}",
            loc="left",
        )
    elif task.name == "multiclass":
        ax.set_ylabel("accuracy / macro F1")
        ax.set_title("Accuracy and macro F1 of the predicted class", loc="left")
    else:
        ax.axhline(0.0, color="#999999", linewidth=0.8)
        ax.set_ylabel(with_unit("error", task))
        ax.set_title(
            f"Error per window: MAE, RMSE and bias (mean prediction - mean label) of {target_name(task)}", loc="left"
        )


def calibration(record: Mapping[str, Any], task: Task) -> Figure:
    """Reliability diagram of one window (binary: the positive class; multi-class: the top label) and its days."""
    import matplotlib

    bins = [b for b in record.get("calibration") or [] if b.get("count")]
    fig = new_figure(10.5, 3.6, (0.6, 1.2, 0.35, 0.55), wspace=0.22)
    with matplotlib.rc_context(rc_style()):
        left, right = fig.subplots(1, 2, width_ratios=[1, 1.5])
        predicted = np.array([number(b.get("mean_predicted")) for b in bins])
        observed = np.array([number(b.get("observed")) for b in bins])
        counts = np.array([float(b.get("count") or 0) for b in bins])
        left.plot([0, 1], [0, 1], color="#999999", linewidth=1, linestyle="--", label="perfect calibration")
        sizes = 12 + 160 * counts / max(counts.max(), 1) if counts.size else 12
        left.scatter(predicted, observed, s=sizes, color=color(0), zorder=3, label="bins (size: predictions)")
        left.plot(predicted, observed, color=color(0), linewidth=1)
        left.set_xlim(0, 1)
        left.set_ylim(0, 1)
        if task.name == "multiclass":
            left.set_xlabel("mean probability of the predicted class")
            left.set_ylabel("share predicted right")
            what = "top label"
        else:
            left.set_xlabel(f"mean predicted probability of {positive_name(task)}")
            left.set_ylabel(f"observed {metric_name('base_rate', task)}")
            what = "positive class"
        left.set_title(f"Calibration ({what}), {record.get('window')} (v{record.get('model_version')})", loc="left")
        left.legend(loc="upper left")
        _daily(right, record, task)
    return fig


def residuals(
    records: Sequence[Mapping[str, Any]], windows: Sequence[str], newest: Mapping[str, Any], task: Task
) -> Figure:
    """Regression: mean label against mean prediction per window and version, and the newest window's days."""
    import matplotlib

    position = {w: i for i, w in enumerate(windows)}
    fig = new_figure(10.5, 3.6, (0.8, 1.2, 0.35, 0.55), wspace=0.28)
    with matplotlib.rc_context(rc_style()):
        left, right = fig.subplots(1, 2, width_ratios=[1.2, 1.3])
        for i, version in enumerate(sorted({int(r["model_version"]) for r in records})):
            mine = [r for r in records if int(r["model_version"]) == version]
            x = [position[str(r["window"])] for r in mine]
            metrics = [r.get("metrics") or {} for r in mine]
            labels = [number(m.get("mean_label")) for m in metrics]
            predictions = [number(m.get("mean_prediction")) for m in metrics]
            left.plot(x, labels, "o-", color=color(i), label=f"v{version} mean label")
            left.plot(x, predictions, "s--", color=color(i), alpha=0.8, label=f"v{version} mean prediction")
            left.vlines(x, labels, predictions, colors=color(i), alpha=0.35, linewidth=3)
        left.set_xticks(range(len(windows)), list(windows))
        left.set_ylabel(with_unit(target_name(task), task))
        left.set_title("Mean label vs mean prediction per window (the gap is the bias)", loc="left")
        left.legend(loc="best")
        _daily(right, newest, task)
    return fig


def class_shares(records: Sequence[Mapping[str, Any]], windows: Sequence[str], classes: Sequence[str]) -> Figure:
    """Multi-class: the share of each class among the labels, per window (the newest version's record)."""
    import matplotlib
    from matplotlib.ticker import PercentFormatter

    newest: dict[str, Mapping[str, Any]] = {}
    for record in records:
        newest[str(record["window"])] = record.get("metrics") or {}
    fig = new_figure(max(9.0, 3.5 + 0.7 * len(windows)), 3.0, (0.7, 2.0, 0.3, 0.45))
    with matplotlib.rc_context(rc_style()):
        ax = fig.add_subplot()
        x = np.arange(len(windows))
        bottom = np.zeros(len(windows))
        for i, name in enumerate(classes):
            shares = np.array([number(newest.get(w, {}).get(f"share_{name}")) for w in windows])
            shares = np.nan_to_num(shares)
            ax.bar(x, shares, 0.6, bottom=bottom, color=color(i), label=str(name))
            bottom += shares
        ax.set_xticks(x, list(windows))
        ax.set_ylim(0, 1)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_ylabel("share of labels")
        ax.set_title("Observed class shares per window", loc="left")
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


def _daily(ax: Axes, record: Mapping[str, Any], task: Task) -> None:
    """The daily figures of one window in the task's terms (binary: ROC AUC, precision, recall; multi-class:
    accuracy, log loss; regression: RMSE, MAE)."""
    days = [d for d in record.get("days") or [] if d.get("day")]
    x = np.arange(len(days))
    for i, key in enumerate(DAILY.get(task.name, ())):
        ax.plot(x, [number(d.get(key)) for d in days], "o-", markersize=3, color=color(i), label=metric_name(key, task))
    if task.name == "binary":
        shown = metric_name("base_rate", task)
        ax.plot(x, [number(d.get("base_rate")) for d in days], color="#777777", linewidth=1, label=shown)
    step = max(1, math.ceil(len(days) / 8))  # at most eight dates under the axis
    ax.set_xticks(x[::step], [str(d["day"])[5:] for d in days][::step])
    ax.set_xlabel("day (month-day)")
    ax.set_title(f"Daily, {record.get('window')} (v{record.get('model_version')})", loc="left")
    if days:
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    else:
        ax.text(0.5, 0.5, "no daily figures", ha="center", va="center", transform=ax.transAxes)


__all__ = ["calibration", "class_shares", "kpi_of", "performance", "primary_of", "residuals"]
