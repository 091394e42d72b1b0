"""The plots of the monitoring report, drawn with matplotlib and returned as inline SVG text.

Titles and axis labels come from the project's task (:mod:`noria.tasks`: the positive class's
name, the target's name and unit, the classes) through :func:`score_label` and
:func:`metric_name`. Every function takes plain data (arrays, record dicts) and a figure comes
back; :func:`to_svg` turns it into one ``<svg>`` element:
text is drawn as paths (no font is needed to view it), the XML prologue and namespace URLs
are dropped (inline SVG in HTML needs neither), and every ``id`` gets a per-plot prefix so
that several plots can share one HTML page. Figures are built on :class:`Figure` directly,
without pyplot, so no GUI backend is ever chosen and nothing global is touched.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from noria.monitoring.profile import NumericProfile
    from noria.tasks import Task

FloatArray = npt.NDArray[np.float64]

STYLE: dict[str, Any] = {
    "svg.fonttype": "path",
    "svg.hashsalt": "noria-report",  # stable ids, so the same data gives the same file
    "font.size": 8.5,
    "axes.titlesize": 9.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "legend.fontsize": 7.5,
    "legend.frameon": False,
}
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
_NO_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}
_NAMESPACE = re.compile(r'\s+xmlns(:\w+)?="[^"]*"')


def new_figure(
    width: float,
    height: float,
    margins: tuple[float, float, float, float] = (0.7, 0.25, 0.35, 0.5),
    hspace: float = 0.45,
    wspace: float = 0.3,
) -> Figure:
    """A figure with fixed margins (left, right, top, bottom) in inches.

    Fixed margins rather than matplotlib's constrained layout: the layout pass measures every
    text twice and made the report a third slower; these plots have known, simple shapes.
    """
    from matplotlib.figure import Figure

    left, right, top, bottom = margins
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        top=1 - top / height,
        bottom=bottom / height,
        hspace=hspace,
        wspace=wspace,
    )
    return fig


def to_svg(fig: Figure, key: str, label: str) -> str:
    """The figure as one inline ``<svg>`` element whose ids all start with ``key``."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context(_style()):
        fig.savefig(buffer, format="svg", metadata=_NO_METADATA)
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    head_end = text.index(">")
    head = _NAMESPACE.sub("", text[:head_end])
    text = f'{head} role="img" aria-label="{_attr(label)}"{text[head_end:]}'
    text = re.sub(r'\bid="([^"]+)"', rf'id="{key}-\1"', text)
    text = re.sub(r'href="#([^"]+)"', rf'href="#{key}-\1"', text)
    return re.sub(r"url\(#([^)]+)\)", rf"url(#{key}-\1)", text)


def _style(extra: Mapping[str, Any] | None = None) -> Any:
    """The report's rcParams (typed loosely: matplotlib types the keys as a Literal of every name)."""
    return STYLE | dict(extra or {})


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def color(i: int) -> str:
    return COLORS[i % len(COLORS)]


# --- 1. drift heatmap --------------------------------------------------------------------------


def drift_heatmap(
    psi: FloatArray,
    alerts: npt.NDArray[np.bool_],
    rows: Sequence[str],
    important: Sequence[bool],
    columns: Sequence[str],
    psi_warn: float,
    psi_alert: float,
) -> Figure:
    """PSI per feature (rows) and window (columns); alerts framed, important features starred."""
    import matplotlib
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    n_rows, n_cols = psi.shape
    label_width = 0.35 + 0.065 * max((len(r) for r in rows), default=4)
    width = max(6.5, label_width + 1.4 + 0.8 * n_cols)
    fig = new_figure(width, 1.1 + 0.22 * n_rows, (label_width, 1.2, 0.4, 0.55))
    with matplotlib.rc_context(_style({"axes.grid": False})):
        ax = fig.add_subplot()
        vmax = max(2 * psi_alert, 0.05)
        cmap = matplotlib.colormaps["YlOrRd"]
        norm = Normalize(0.0, vmax, clip=True)
        shown = np.ma.masked_invalid(np.where(np.isinf(psi), vmax, psi))
        mesh = ax.pcolormesh(shown, cmap=cmap, norm=norm, edgecolors="white", linewidth=0.6)
        ax.set_facecolor("#e6e6e6")  # no value (feature absent, or PSI not applicable)
        ax.set_xlim(0, n_cols)
        ax.set_ylim(n_rows, 0)
        ax.set_xticks(np.arange(n_cols) + 0.5, list(columns), fontsize=7.5)
        labels = [f"\u2605 {name}" if imp else name for name, imp in zip(rows, important, strict=True)]
        ax.set_yticks(np.arange(n_rows) + 0.5, labels, fontsize=7.5)
        for tick, imp in zip(ax.get_yticklabels(), important, strict=True):
            tick.set_fontweight("bold" if imp else "normal")
        ax.tick_params(length=0)
        for side in ("top", "right", "left", "bottom"):
            ax.spines[side].set_visible(False)
        if n_rows * n_cols <= 1200:
            for r in range(n_rows):
                for c in range(n_cols):
                    value = psi[r, c]
                    if math.isnan(value):
                        continue
                    text = "inf" if math.isinf(value) else f"{value:.2f}"
                    dark = norm(min(value, vmax)) > 0.55
                    ax.text(
                        c + 0.5,
                        r + 0.5,
                        text,
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if dark else "#222222",
                    )
        for r, c in zip(*np.nonzero(alerts), strict=True):
            ax.add_patch(Rectangle((c + 0.04, r + 0.06), 0.92, 0.88, fill=False, edgecolor="#08306b", linewidth=2))
        box = ax.get_position()
        bar_height = min(box.height, 3.0 / fig.get_figheight())
        cax = fig.add_axes((box.x1 + 0.15 / width, box.y1 - bar_height, 0.14 / width, bar_height))
        bar = fig.colorbar(mesh, cax=cax, extend="max")
        bar.set_label("PSI against the reference profile")
        for level in (psi_warn, psi_alert):
            bar.ax.axhline(level, color="black", linewidth=1)
        ax.set_title("Drift (PSI) per feature and window  -  \u2605 important feature, framed cell: alert", loc="left")
    return fig


# --- the task's words -----------------------------------------------------------------------

METRIC_NAMES = {
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC",
    "log_loss": "log loss",
    "brier": "Brier score",
    "ece": "ECE",
    "precision": "precision",
    "recall": "recall",
    "flagged_rate": "share flagged",
    "base_rate": "positive rate",
    "mean_score": "mean score",
    "accuracy": "accuracy",
    "macro_f1": "macro F1",
    "mean_confidence": "mean confidence",
    "rmse": "RMSE",
    "mae": "MAE",
    "r2": "R\u00b2",
    "bias": "bias",
    "mean_label": "mean label",
    "mean_prediction": "mean prediction",
}
UNIT_METRICS = frozenset({"rmse", "mae", "bias", "mean_label", "mean_prediction"})  # in the target's unit
SHARE_METRICS = frozenset({"precision", "recall", "flagged_rate", "base_rate", "accuracy"})
DAILY = {
    "binary": ("roc_auc", "precision", "recall"),
    "multiclass": ("accuracy", "log_loss"),
    "regression": ("rmse", "mae"),
}


def positive_name(task: Task) -> str:
    """The positive class of a binary task in the project's words (``model.target.name``)."""
    label = task.label_name
    return f"the positive class ({label})" if label and label != "decision" else "the positive class"


def target_name(task: Task) -> str:
    """What a regression model predicts, in the project's words (``model.target.name``)."""
    return task.label_name if task.label_name and task.label_name != "prediction" else "the target"


def with_unit(text: str, task: Task) -> str:
    return f"{text} ({task.unit})" if task.unit else text


def score_label(task: Task) -> str:
    """What the served score is: a probability, the predicted class's probability, or the predicted value."""
    if task.name == "binary":
        return f"predicted probability of {positive_name(task)}"
    if task.name == "multiclass":
        return "probability of the predicted class (confidence)"
    return with_unit(f"predicted {target_name(task)}", task)


def metric_name(metric: str, task: Task) -> str:
    """A metric's display name; the regression errors carry the target's unit."""
    name = METRIC_NAMES.get(metric) or (f"share of {metric[6:]}" if metric.startswith("share_") else metric)
    if metric == "base_rate" and task.label_name and task.label_name != "decision":
        name = f"rate of {task.label_name}"
    return with_unit(name, task) if task.name == "regression" and metric in UNIT_METRICS else name


def better(metric: str, task: Task) -> str:
    """Which way ``metric`` is better ("higher is better", "lower is better"; "" when it has no direction)."""
    higher = task.metric_directions.get(metric)
    return "" if higher is None else "higher is better" if higher else "lower is better"


def direction(metric: str, task: Task) -> str:
    way = better(metric, task)
    return f" ({way})" if way else ""


# --- 2. score distribution ---------------------------------------------------------------------


def score_distribution(
    reference: NumericProfile, windows: Sequence[tuple[str, FloatArray]], task: Task, bins: int = 20
) -> Figure:
    """The reference score distribution (from the profile) against the scores of the newest windows.

    Left: shares on equal-width bins of the score (over ``[0, 1]`` at least for a probability,
    over the values seen for a regression model's prediction), the reference read off the
    profile's cumulative counts (exact when the profile kept every distinct score, else within
    its ``ks_error_bound``). Right: shares in the profile's own quantile bins, what PSI compares.
    """
    import matplotlib
    from matplotlib.ticker import PercentFormatter

    seen = np.concatenate([reference.edges, *(values for _, values in windows)])
    seen = seen[np.isfinite(seen)]
    low = min(float(seen.min(initial=np.inf)), _finite(reference.minimum, np.inf))
    high = max(float(seen.max(initial=-np.inf)), _finite(reference.maximum, -np.inf))
    if task.name != "regression":  # a probability: the whole of [0, 1]
        low, high = min(0.0, low), max(1.0, high)
    if not (math.isfinite(low) and math.isfinite(high)):
        low, high = 0.0, 1.0
    if high <= low:
        low, high = low - 0.5, high + 0.5
    equal = np.linspace(low, high, bins + 1)
    ref_equal = profile_shares(reference, equal)
    ref_bins = reference.bin_counts / max(int(reference.bin_counts.sum()), 1)
    fig = new_figure(10.5, 3.6, (0.7, 0.2, 0.35, 0.55), wspace=0.25)
    with matplotlib.rc_context(_style()):
        left, right = fig.subplots(1, 2, width_ratios=[1.3, 1])
        left.stairs(ref_equal, equal, fill=True, color="#bbbbbb", alpha=0.8, label="reference (training)")
        x = np.arange(len(ref_bins))
        step = 0.8 / (len(windows) + 1)
        right.bar(x - 0.4 + step / 2, ref_bins, step, color="#bbbbbb", label="reference")
        for i, (window, values) in enumerate(windows):
            label = f"{window} (n={values.shape[0]:,})"
            n = max(values.shape[0], 1)
            left.stairs(np.histogram(values, bins=equal)[0] / n, equal, color=color(i), linewidth=1.6, label=label)
            counts = np.bincount(np.searchsorted(reference.edges, values, side="right"), minlength=len(ref_bins))
            right.bar(x - 0.4 + step * (i + 1.5), counts / n, step, color=color(i), label=label)
        left.set_xlabel(score_label(task))
        left.set_ylabel("share of predictions")
        left.set_title("Score distribution: reference vs newest windows", loc="left")
        left.legend(loc="best")
        right.set_xticks(x, [f"{i + 1}" for i in x])
        right.set_xlabel("reference score bin (equal shares in training)")
        right.set_title("Share per reference bin (what PSI compares)", loc="left")
        for ax in (left, right):
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    return fig


def profile_shares(reference: NumericProfile, edges: FloatArray) -> FloatArray:
    """Shares of the reference in bins ``[e0, e1), ..., [e(n-1), en]``, from the profile's ECDF.

    Values below ``e0`` or above ``en`` are not counted (the caller's edges span them).
    """
    below = np.searchsorted(reference.ecdf_values, edges, side="left")  # distinct values < each edge
    cumulative = np.concatenate([[0], reference.ecdf_counts])[below].astype(np.float64)
    at_or_below_last = np.searchsorted(reference.ecdf_values, edges[-1], side="right")
    cumulative[-1] = np.concatenate([[0], reference.ecdf_counts])[at_or_below_last]  # last bin closed
    shares: FloatArray = np.diff(cumulative) / max(reference.count, 1)
    return shares


def _finite(value: float, default: float) -> float:
    return value if math.isfinite(value) else default


# --- 3. performance ----------------------------------------------------------------------------


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
    with matplotlib.rc_context(_style()):
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
    with matplotlib.rc_context(_style()):
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
    with matplotlib.rc_context(_style()):
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
    with matplotlib.rc_context(_style()):
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


# --- 4. alerts and retraining ------------------------------------------------------------------


def timeline(
    windows: Sequence[str],
    alerts: Mapping[str, int],
    drifted: Mapping[str, int],
    decisions: Sequence[tuple[str, Mapping[str, Any]]],
) -> Figure:
    """Drift alerts per window (bars) above every retraining decision (markers), on one time axis."""
    import matplotlib
    from matplotlib.ticker import MaxNLocator

    x = np.arange(len(windows))
    fig = new_figure(max(9.0, 3.5 + 0.7 * len(windows)), 4.4, (0.7, 2.0, 0.3, 0.45), hspace=0.12)
    with matplotlib.rc_context(_style()):
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[1.4, 1])
        top.bar(x - 0.2, [drifted.get(w, 0) for w in windows], 0.4, color="#fdae61", label="features drifted")
        top.bar(x + 0.2, [alerts.get(w, 0) for w in windows], 0.4, color="#d7191c", label="alerts (important)")
        top.set_ylabel("features")
        top.yaxis.set_major_locator(MaxNLocator(integer=True))
        top.set_title("Drift alerts and retraining decisions", loc="left")
        top.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
        seen: dict[str, int] = {}
        styles = {
            "promoted": ("^", "#1a9641", "retrained, promoted"),
            "rejected": ("X", "#e66101", "retrained, kept champion"),
            "retrain": ("v", "#e66101", "retrain asked"),
            "none": ("o", "#999999", "no action"),
        }
        drawn: set[str] = set()
        index = {w: i for i, w in enumerate(windows)}
        for window, d in decisions:
            outcome = _outcome(d)
            marker, c, label = styles[outcome]
            level = seen.get(window, 0)
            seen[window] = level + 1
            bottom.scatter(
                index[window], level, marker=marker, s=70, color=c, zorder=3, label=None if outcome in drawn else label
            )
            drawn.add(outcome)
            if outcome == "promoted":
                text = f"v{d.get('model_version_before')}\u2192v{d.get('model_version_after')}"
                bottom.annotate(text, (index[window], level), xytext=(6, 4), textcoords="offset points", fontsize=7)
        bottom.set_ylim(-0.8, max([*seen.values(), 1]) + 0.3)
        bottom.set_yticks([])
        bottom.set_ylabel("decisions")
        bottom.set_xticks(x, list(windows))
        if decisions:
            bottom.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
        else:
            bottom.text(0.5, 0.5, "no retraining decision yet", ha="center", va="center", transform=bottom.transAxes)
    return fig


def _outcome(decision: Mapping[str, Any]) -> str:
    if decision.get("action") != "retrain":
        return "none"
    if decision.get("promoted") is True:
        return "promoted"
    return "rejected" if decision.get("promoted") is False else "retrain"


# --- 5. champion history -----------------------------------------------------------------------


def champion_steps(events: Sequence[tuple[datetime, int, str]], until: datetime) -> Figure:
    """The champion version over time as a step line; a marker per promotion, force or rollback."""
    import matplotlib
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num

    fig = new_figure(9.0, 3.0, (0.7, 1.2, 0.3, 0.5))
    with matplotlib.rc_context(_style()):
        ax = fig.add_subplot()
        times = date2num([t for t, _, _ in events] + [max(until, events[-1][0])])  # type: ignore[no-untyped-call]
        versions = [v for _, v, _ in events]
        ax.step(times, [*versions, versions[-1]], where="post", color=color(0), linewidth=2)
        marks = {"promote": ("o", "#1a9641"), "force": ("D", "#7b3294"), "rollback": ("v", "#d7191c")}
        for action, (marker, c) in marks.items():
            mine = [i for i, (_, _, a) in enumerate(events) if a == action]
            if mine:
                ax.scatter(
                    times[mine], [versions[i] for i in mine], marker=marker, color=c, s=50, zorder=3, label=action
                )
        ax.set_yticks(sorted(set(versions)), [f"v{v}" for v in sorted(set(versions))])
        ax.set_ylim(min(versions) - 0.5, max(versions) + 0.5)
        ax.set_ylabel("champion version")
        ax.set_title("Champion over time", loc="left")
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
        locator = AutoDateLocator()  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    return fig


def number(value: Any) -> float:
    """A record's number as a float: null -> NaN, the string "inf" -> infinity."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


__all__ = [
    "calibration",
    "champion_steps",
    "class_shares",
    "drift_heatmap",
    "new_figure",
    "number",
    "performance",
    "profile_shares",
    "residuals",
    "score_distribution",
    "score_label",
    "timeline",
    "to_svg",
]
