"""The model card's plots as PNG bytes (matplotlib's Agg canvas; no pyplot, no global state)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from noria.training.evaluation import Evaluation

_DPI = 100
_MODEL_COLOR = "#1f5fa8"
_BASELINE_COLORS = ("#9a9a9a", "#c77c2e", "#5d9c59", "#8e5ea2")
_PNG_METADATA = {"Software": None}  # keep PNG bytes free of version strings


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, metadata=_PNG_METADATA)
    return buffer.getvalue()


def roc_png(evaluation: Evaluation) -> bytes:
    fig = Figure(figsize=(5.2, 4.6))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle=":", color="#bbbbbb", linewidth=1)
    for color, base in zip(_BASELINE_COLORS, evaluation.baselines, strict=False):
        auc = base.metrics.roc_auc
        ax.plot(
            base.roc["fpr"],
            base.roc["tpr"],
            color=color,
            linewidth=1.2,
            label=f"{base.name} (AUC {auc:.3f})" if auc is not None else base.name,
        )
    auc = evaluation.metrics.roc_auc or float("nan")
    ax.plot(
        evaluation.roc["fpr"],
        evaluation.roc["tpr"],
        color=_MODEL_COLOR,
        linewidth=2,
        label=f"model (AUC {auc:.3f})",
    )
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title="ROC curve (holdout)",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def calibration_png(evaluation: Evaluation) -> bytes:
    fig = Figure(figsize=(5.2, 4.6))
    ax = fig.add_subplot()
    bins = evaluation.calibration.bins
    predicted = [b.mean_score for b in bins]
    observed = [b.observed_rate for b in bins]
    top = max([*predicted, *observed, 0.1]) * 1.1
    ax.plot([0, 1], [0, 1], linestyle=":", color="#bbbbbb", linewidth=1, label="perfect")
    ax.plot(predicted, observed, marker="o", color=_MODEL_COLOR, label="model")
    ece = evaluation.calibration.expected_calibration_error
    ax.set(
        xlabel="mean predicted probability",
        ylabel="observed rate",
        title=f"Calibration (holdout, ECE {ece:.3f})",
        xlim=(0, min(1.0, top)),
        ylim=(0, min(1.0, top)),
    )
    share = ax.twinx()
    share.bar(
        [(b.lower + b.upper) / 2 for b in bins],
        [b.rows for b in bins],
        width=[(b.upper - b.lower) * 0.9 for b in bins],
        color="#dddddd",
        zorder=0,
    )
    share.set_ylabel("rows per bin")
    ax.set_zorder(share.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def slices_png(evaluation: Evaluation, max_bars: int = 40) -> bytes:
    measured = [s for s in evaluation.slices if s.metrics is not None and s.metrics.roc_auc is not None]
    measured = measured[:max_bars]
    fig = Figure(figsize=(6.4, max(2.4, 0.26 * len(measured) + 1.2)))
    ax = fig.add_subplot()
    if not measured:
        ax.text(0.5, 0.5, "no slice value had enough rows of both classes", ha="center", va="center")
        ax.set_axis_off()
        return _png(fig)
    labels = [f"{s.slice} = {s.value} (n={s.rows})" for s in measured]
    values = [float(s.metrics.roc_auc) for s in measured if s.metrics and s.metrics.roc_auc is not None]
    groups = sorted({s.slice for s in measured})
    colors = [_BASELINE_COLORS[groups.index(s.slice) % len(_BASELINE_COLORS)] for s in measured]
    y = np.arange(len(measured))[::-1]
    ax.barh(y, values, color=colors)
    ax.set_yticks(y, labels, fontsize=7)
    overall = evaluation.metrics.roc_auc
    if overall is not None:
        ax.axvline(overall, color=_MODEL_COLOR, linestyle="--", linewidth=1.2, label=f"overall {overall:.3f}")
        ax.legend(loc="lower right", fontsize=8)
    low, high = min([*values, overall or 1.0]), max([*values, overall or 0.0])
    ax.set(xlabel="ROC AUC", title="ROC AUC by slice (holdout)", xlim=(max(0.0, low - 0.05), min(1.0, high + 0.05)))
    return _png(fig)


def importance_png(importance: pd.DataFrame, top: int = 20) -> bytes:
    head = importance.head(top)
    fig = Figure(figsize=(6.4, max(2.4, 0.28 * len(head) + 1.2)))
    ax = fig.add_subplot()
    y = np.arange(len(head))[::-1]
    ax.barh(y, head["gain_share"].to_numpy(), color=_MODEL_COLOR)
    ax.set_yticks(y, head["feature"].astype(str).tolist(), fontsize=8)
    ax.set(xlabel="share of total gain", title=f"Feature importance (gain, top {len(head)})")
    return _png(fig)
