"""The plots of the monitoring report, drawn with matplotlib and returned as inline SVG text.

Every function takes plain data (arrays, record dicts) and returns one ``<svg>`` element:
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
    from matplotlib.figure import Figure

    from noria.monitoring.profile import NumericProfile

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


# --- 2. score distribution ---------------------------------------------------------------------


def score_distribution(reference: NumericProfile, windows: Sequence[tuple[str, FloatArray]], bins: int = 20) -> Figure:
    """The reference score distribution (from the profile) against the scores of the newest windows.

    Left: shares on equal-width bins of the score, the reference read off the profile's
    cumulative counts (exact when the profile kept every distinct score, else within its
    ``ks_error_bound``). Right: shares in the profile's own quantile bins, what PSI compares.
    """
    import matplotlib
    from matplotlib.ticker import PercentFormatter

    seen = np.concatenate([reference.edges, *(values for _, values in windows)])
    low = min(0.0, float(seen.min(initial=0.0)), _finite(reference.minimum, 0.0))
    high = max(1.0, float(seen.max(initial=1.0)), _finite(reference.maximum, 1.0))
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
        left.set_xlabel("predicted probability of a delay")
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


def performance(records: Sequence[Mapping[str, Any]], windows: Sequence[str]) -> Figure:
    """Live AUC vs holdout AUC per model version; precision and recall; the business KPI."""
    import matplotlib
    from matplotlib.ticker import PercentFormatter

    position = {w: i for i, w in enumerate(windows)}
    versions = sorted({int(r["model_version"]) for r in records})
    fig = new_figure(max(9.0, 3.5 + 0.7 * len(windows)), 7.2, (0.7, 2.0, 0.3, 0.45), hspace=0.35)
    with matplotlib.rc_context(_style()):
        auc_ax, pr_ax, kpi_ax = fig.subplots(3, 1, sharex=True)
        for i, version in enumerate(versions):
            mine = [r for r in records if int(r["model_version"]) == version]
            x = [position[r["window"]] for r in mine]
            metrics = [r.get("metrics") or {} for r in mine]
            c = color(i)
            auc_ax.plot(x, [number(m.get("roc_auc")) for m in metrics], "o-", color=c, label=f"v{version} live")
            holdout = [number(r.get("holdout")) for r in mine]
            if any(math.isfinite(h) for h in holdout):
                level = next(h for h in reversed(holdout) if math.isfinite(h))
                auc_ax.hlines(level, min(x) - 0.3, max(x) + 0.3, colors=c, linestyles="--", label=f"v{version} holdout")
            pr_ax.plot(x, [number(m.get("precision")) for m in metrics], "o-", color=c, label=f"v{version} precision")
            pr_ax.plot(x, [number(m.get("recall")) for m in metrics], "s:", color=c, label=f"v{version} recall")
            kpi_ax.plot(
                x,
                [number((r.get("kpi") or {}).get("value")) for r in mine],
                "D-",
                color=c,
                label=f"v{version} delayed flagged",
            )
            kpi_ax.plot(x, [number(m.get("flagged_rate")) for m in metrics], "^:", color=c, label=f"v{version} flagged")
            kpi_ax.plot(x, [number(m.get("base_rate")) for m in metrics], "x", color=c, label=f"v{version} delay rate")
        auc_ax.set_ylabel("ROC AUC")
        auc_ax.set_title("Live AUC on delayed labels vs holdout AUC, per model version", loc="left")
        pr_ax.set_ylabel("precision / recall")
        pr_ax.set_title("At the serving threshold", loc="left")
        kpi_ax.set_ylabel("share")
        kpi_ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        kpi_ax.set_title("KPI: share of delayed flights flagged in advance; share flagged; delay rate", loc="left")
        kpi_ax.set_xticks(range(len(windows)), list(windows))
        for ax in (auc_ax, pr_ax, kpi_ax):
            ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


def calibration(record: Mapping[str, Any]) -> Figure:
    """Reliability diagram of one window, and its daily AUC / precision / recall."""
    import matplotlib

    bins = [b for b in record.get("calibration") or [] if b.get("count")]
    days = [d for d in record.get("days") or [] if d.get("day")]
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
        left.set_xlabel("mean predicted probability")
        left.set_ylabel("observed delay rate")
        left.set_title(f"Calibration, {record.get('window')} (v{record.get('model_version')})", loc="left")
        left.legend(loc="upper left")
        x = np.arange(len(days))
        for i, key in enumerate(("roc_auc", "precision", "recall")):
            right.plot(x, [number(d.get(key)) for d in days], "o-", markersize=3, color=color(i), label=key)
        right.plot(x, [number(d.get("base_rate")) for d in days], color="#777777", linewidth=1, label="delay rate")
        step = max(1, len(days) // 10)
        right.set_xticks(x[::step], [str(d["day"])[5:] for d in days][::step])
        right.set_title(f"Daily, {record.get('window')}", loc="left")
        right.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


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
    "drift_heatmap",
    "new_figure",
    "number",
    "performance",
    "profile_shares",
    "score_distribution",
    "timeline",
    "to_svg",
]
