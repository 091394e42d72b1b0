"""The plots of the monitoring report, drawn with matplotlib and returned as inline SVG text.

This module holds the drift heatmap (section 1), the score distribution (2), the alerts and
retraining timeline (4) and the champion history (5); the performance plots (3) are in
:mod:`._report_performance_plots`, the task's words (titles, axis labels) in
:mod:`._report_words`, the figure kit (:func:`new_figure`, :func:`to_svg`) in
:mod:`._report_svg`. Every function takes plain data (arrays, record dicts) and a figure comes
back. The names of those modules the report's tests use are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from noria.monitoring._report_performance_plots import calibration, class_shares, performance, residuals
from noria.monitoring._report_svg import FloatArray, color, new_figure, number, rc_style, to_svg
from noria.monitoring._report_words import DAILY, metric_name, score_label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from noria.monitoring.profile import NumericProfile
    from noria.tasks import Task

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
    with matplotlib.rc_context(rc_style({"axes.grid": False})):
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
    with matplotlib.rc_context(rc_style()):
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
    with matplotlib.rc_context(rc_style()):
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
    with matplotlib.rc_context(rc_style()):
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


__all__ = [
    "DAILY",
    "FloatArray",
    "calibration",
    "champion_steps",
    "class_shares",
    "drift_heatmap",
    "metric_name",
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
