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
        auc = base.metrics.get("roc_auc")
        if base.roc is None:
            continue
        ax.plot(
            base.roc["fpr"],
            base.roc["tpr"],
            color=color,
            linewidth=1.2,
            label=f"{base.name} (AUC {auc:.3f})" if auc is not None else base.name,
        )
    auc = evaluation.metrics.get("roc_auc") or float("nan")
    curve = evaluation.roc or {"fpr": [], "tpr": []}
    ax.plot(
        curve["fpr"],
        curve["tpr"],
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
    assert evaluation.calibration is not None  # binary and multiclass evaluations have one
    top_label = evaluation.task == "multiclass"
    bins = evaluation.calibration.bins
    predicted = [b.mean_score for b in bins]
    observed = [b.observed_rate for b in bins]
    top = max([*predicted, *observed, 0.1]) * 1.1
    ax.plot([0, 1], [0, 1], linestyle=":", color="#bbbbbb", linewidth=1, label="perfect")
    ax.plot(predicted, observed, marker="o", color=_MODEL_COLOR, label="model")
    ece = evaluation.calibration.expected_calibration_error
    ax.set(
        xlabel="mean probability of the predicted class" if top_label else "mean predicted probability",
        ylabel="share predicted right" if top_label else "observed rate",
        title=f"{'Top-label calibration' if top_label else 'Calibration'} (holdout, ECE {ece:.3f})",
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
    """The primary metric (ROC AUC, log loss, RMSE) per measured slice value, against the overall value."""
    metric = evaluation.primary_metric
    measured = [s for s in evaluation.slices if s.metrics is not None and s.metrics.get(metric) is not None]
    measured = measured[:max_bars]
    fig = Figure(figsize=(6.4, max(2.4, 0.26 * len(measured) + 1.2)))
    ax = fig.add_subplot()
    if not measured:
        why = "enough rows of both classes" if evaluation.task == "binary" else "enough rows"
        ax.text(0.5, 0.5, f"no slice value had {why}", ha="center", va="center")
        ax.set_axis_off()
        return _png(fig)
    labels = [f"{s.slice} = {s.value} (n={s.rows})" for s in measured]
    values = [float(s.metrics[metric] or 0.0) for s in measured if s.metrics is not None]
    groups = sorted({s.slice for s in measured})
    colors = [_BASELINE_COLORS[groups.index(s.slice) % len(_BASELINE_COLORS)] for s in measured]
    y = np.arange(len(measured))[::-1]
    ax.barh(y, values, color=colors)
    ax.set_yticks(y, labels, fontsize=7)
    overall = evaluation.primary()
    if overall is not None:
        ax.axvline(overall, color=_MODEL_COLOR, linestyle="--", linewidth=1.2, label=f"overall {overall:.3f}")
        ax.legend(loc="lower right", fontsize=8)
    name = metric_label(metric)
    everything = [*values, *([overall] if overall is not None else [])]
    if evaluation.task == "binary":
        low, high = min([*values, overall or 1.0]), max([*values, overall or 0.0])
        xlim = (max(0.0, low - 0.05), min(1.0, high + 0.05))
    else:
        xlim = (0.0, max(everything) * 1.08 or 1.0)
    better = "higher" if evaluation.higher_is_better else "lower"
    ax.set(xlabel=f"{name} ({better} is better)", title=f"{name} by slice (holdout)", xlim=xlim)
    return _png(fig)


def confusion_png(evaluation: Evaluation) -> bytes:
    """Multi-class: actual against predicted class, each row as shares of the actual class."""
    assert evaluation.confusion is not None
    classes = list(evaluation.confusion["classes"])
    counts = np.asarray(evaluation.confusion["counts"], dtype=np.float64)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    k = len(classes)
    fig = Figure(figsize=(max(4.2, 0.6 * k + 2.4), max(3.8, 0.55 * k + 2.0)))
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(k):
        for j in range(k):
            color = "white" if shares[i, j] > 0.6 else "#222222"
            ax.text(j, i, f"{int(counts[i, j])}\n{shares[i, j]:.0%}", ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(k), classes, fontsize=8)
    ax.set_yticks(range(k), classes, fontsize=8)
    ax.set(xlabel="predicted class", ylabel="actual class", title="Confusion matrix (holdout; row shares)")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return _png(fig)


def predicted_vs_actual_png(evaluation: Evaluation) -> bytes:
    """Regression: predicted against actual values (a sample of the holdout), with the diagonal."""
    assert evaluation.residuals is not None
    points = evaluation.residuals["points"]
    actual, predicted = np.asarray(points["actual"]), np.asarray(points["predicted"])
    fig = Figure(figsize=(5.2, 4.6))
    ax = fig.add_subplot()
    both = np.concatenate([actual, predicted])
    low, high = (float(both.min()), float(both.max())) if both.size else (0.0, 1.0)
    ax.plot([low, high], [low, high], linestyle=":", color="#bbbbbb", linewidth=1, label="perfect")
    ax.scatter(actual, predicted, s=6, alpha=0.4, color=_MODEL_COLOR, linewidths=0, label="model")
    unit = f" ({evaluation.unit})" if evaluation.unit else ""
    rmse = evaluation.metrics.get("rmse")
    title = "Predicted vs actual (holdout" + (f", RMSE {rmse:.3g})" if rmse is not None else ")")
    ax.set(xlabel=f"actual{unit}", ylabel=f"predicted{unit}", title=title)
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def residuals_png(evaluation: Evaluation) -> bytes:
    """Regression: the error (predicted - actual) by decile of the actual value: mean and RMSE."""
    assert evaluation.residuals is not None
    deciles = evaluation.residuals["by_label_decile"]
    fig = Figure(figsize=(6.0, 4.2))
    ax = fig.add_subplot()
    x = np.arange(len(deciles))
    ax.bar(x - 0.2, [d["bias"] for d in deciles], width=0.4, color=_MODEL_COLOR, label="mean error (bias)")
    ax.bar(x + 0.2, [d["rmse"] for d in deciles], width=0.4, color=_BASELINE_COLORS[0], label="RMSE")
    ax.axhline(0.0, color="#888888", linewidth=0.8)
    ax.set_xticks(x, [f"{d['low']:.3g}-{d['high']:.3g}" for d in deciles], fontsize=7, rotation=45, ha="right")
    unit = f" ({evaluation.unit})" if evaluation.unit else ""
    ax.set(
        xlabel=f"actual value, by decile{unit}",
        ylabel=f"error: predicted - actual{unit}",
        title="Residuals by decile of the actual value",
    )
    ax.legend(loc="best", fontsize=8)
    return _png(fig)


def metric_label(metric: str) -> str:
    """A metric's name as people write it."""
    return {
        "roc_auc": "ROC AUC",
        "pr_auc": "PR AUC",
        "log_loss": "log loss",
        "brier": "Brier",
        "ece": "ECE",
        "accuracy": "accuracy",
        "macro_f1": "macro F1",
        "rmse": "RMSE",
        "mae": "MAE",
        "r2": "R²",
        "bias": "bias",
    }.get(metric, metric.replace("_", " "))


def importance_png(importance: pd.DataFrame, top: int = 20) -> bytes:
    head = importance.head(top)
    fig = Figure(figsize=(6.4, max(2.4, 0.28 * len(head) + 1.2)))
    ax = fig.add_subplot()
    y = np.arange(len(head))[::-1]
    ax.barh(y, head["gain_share"].to_numpy(), color=_MODEL_COLOR)
    ax.set_yticks(y, head["feature"].astype(str).tolist(), fontsize=8)
    ax.set(xlabel="share of total gain", title=f"Feature importance (gain, top {len(head)})")
    return _png(fig)
