"""The model card: what the model is for, what it was trained on, how well it does, where it fails.

One card per model version, written twice from the same content: ``model_card.md`` (plots as
PNG files in ``model_card_files/``) and ``model_card.html`` (one self-contained file, plots
inline as base64 PNG). Limits the numbers reveal (drift between periods, miscalibration,
a gap between validation and holdout, slices too small to judge) are written automatically.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from noria.training import _plots
from noria.training._doc import Doc, Image
from noria.training._io import write_bytes_atomic, write_text_atomic
from noria.training.evaluation import Evaluation
from noria.training.model import TrainedModel
from noria.training.split import Split
from noria.training.tuning import TuneResult

CARD_MD = "model_card.md"
CARD_HTML = "model_card.html"
IMAGE_DIR = "model_card_files"


def model_info(
    model: TrainedModel,
    split: Split,
    *,
    name: str,
    version: str | int | None = None,
    tuning: TuneResult | None = None,
    intended_use: str | None = None,
    limitations: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``info`` mapping :func:`write_model_card` reads, built from the training objects."""
    return {
        "name": name,
        "version": None if version is None else str(version),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "label": model.label,
        "features": model.features,
        "categorical": model.categorical,
        "params": model.params,
        "best_iteration": model.best_iteration,
        "num_trees": int(model.booster.num_trees()),
        "refit_on_train": model.refit_on_train,
        "validation": _validation_scores(model),
        "split": split.summary(),
        "tuning": None if tuning is None else {k: v for k, v in tuning.to_dict().items() if k != "trials"},
        "intended_use": intended_use,
        "limitations": list(limitations),
    }


def write_model_card(
    out_dir: Path | str,
    info: Mapping[str, Any],
    evaluation: Evaluation,
    importance: pd.DataFrame,
    lineage: Mapping[str, Any],
) -> tuple[Path, Path]:
    """Write ``model_card.md`` (+ its PNGs) and a self-contained ``model_card.html``."""
    out = Path(out_dir)
    doc = _build(info, evaluation, importance, lineage)
    for image in doc.images():
        write_bytes_atomic(out / IMAGE_DIR / image.name, image.png)
    md = write_text_atomic(out / CARD_MD, doc.markdown(IMAGE_DIR))
    page = write_text_atomic(out / CARD_HTML, doc.html())
    return md, page


def _build(info: Mapping[str, Any], ev: Evaluation, importance: pd.DataFrame, lineage: Mapping[str, Any]) -> Doc:
    name = str(info.get("name") or "model")
    version = info.get("version")
    label = str(info.get("label") or ev.label)
    doc = Doc(f"Model card: {name}" + (f" v{version}" if version else ""))
    auc = ev.metrics.roc_auc
    best = max(
        (b for b in ev.baselines if b.metrics.roc_auc is not None),
        key=lambda b: b.metrics.roc_auc or 0.0,
        default=None,
    )
    summary = f"Predicts the probability that {label} = 1. Holdout ROC AUC {_f(auc)} on {ev.metrics.rows} rows"
    if best is not None and auc is not None and best.metrics.roc_auc is not None:
        summary += f"; the strongest baseline ({best.name}) reaches {_f(best.metrics.roc_auc)}"
        summary += f" ({auc - best.metrics.roc_auc:+.4f})"
    doc.para(summary + ".")

    doc.heading("Intended use")
    doc.para(
        str(
            info.get("intended_use")
            or (
                f"Rank rows by their risk of {label} = 1, for rows like those it was trained on "
                "(same entities, "
                "same kind of period). Decision support: choose the decision threshold for the use case."
            )
        )
    )

    doc.heading("Data snapshot")
    doc.table(["item", "value"], [[k, _plain(v)] for k, v in lineage.items()] or [["lineage", "not recorded"]])
    split = info.get("split") or {}
    parts = split.get("parts", {})
    doc.table(
        ["part", "window", "rows", "positives", "positive rate"],
        [
            [
                p,
                parts[p].get("window", {}).get("label", ""),
                parts[p]["rows"],
                parts[p]["positives"],
                parts[p]["positive_rate"],
            ]
            for p in ("train", "fit", "valid", "test")
            if p in parts
        ],
    )
    dropped = split.get("dropped_unlabelled") or {}
    if dropped:
        doc.para(
            "Rows without a label, dropped before training and evaluation: "
            + ", ".join(f"{k} {v}" for k, v in dropped.items())
            + "."
        )

    doc.heading("Features")
    cats = set(info.get("categorical") or [])
    doc.table(
        ["rank", "feature", "kind", "gain share", "splits"],
        [
            [i + 1, str(feature), "categorical" if feature in cats else "numeric", float(share), int(splits)]
            for i, (feature, share, splits) in enumerate(
                zip(importance["feature"], importance["gain_share"], importance["splits"], strict=True)
            )
        ],
    )
    doc.image(Image("importance.png", _plots.importance_png(importance), "feature importance (gain)"))

    doc.heading("Metrics vs baselines (holdout)")
    tuned = (info.get("tuning") or {}).get("n_trials")
    described = f"LightGBM tuned over {tuned} trials" if tuned else "LightGBM, default parameters"
    rows = [["model", described, *_metric_cells(ev.metrics)]]
    rows += [[b.name, b.description, *_metric_cells(b.metrics)] for b in ev.baselines]
    doc.table(["model", "description", "ROC AUC", "PR AUC", "log loss", "Brier", "mean score"], rows)
    t = ev.threshold
    doc.para(
        f"At threshold {t['threshold']:.2f}: {t['flagged_rate']:.1%} of rows flagged, precision "
        f"{t['precision']:.3f}, recall {t['recall']:.3f}. "
        f"Observed positive rate {ev.metrics.positive_rate:.1%}."
    )
    doc.image(Image("roc.png", _plots.roc_png(ev), "ROC curve"))

    doc.heading("Calibration")
    doc.image(Image("calibration.png", _plots.calibration_png(ev), "calibration curve"))
    doc.table(
        ["bin", "rows", "mean predicted", "observed rate"],
        [[f"{b.lower:.1f}-{b.upper:.1f}", b.rows, b.mean_score, b.observed_rate] for b in ev.calibration.bins],
    )

    doc.heading("Slices (holdout)")
    doc.image(Image("slices.png", _plots.slices_png(ev), "ROC AUC by slice"))
    doc.table(
        ["slice", "value", "rows", "positives", "ROC AUC", "log loss", "Brier", "note"],
        [
            [
                s.slice,
                s.value,
                s.rows,
                s.positives,
                s.metrics.roc_auc if s.metrics else None,
                s.metrics.log_loss if s.metrics else None,
                s.metrics.brier if s.metrics else None,
                s.reason or "",
            ]
            for s in ev.slices
        ],
    )

    doc.heading("Training")
    tuning = info.get("tuning") or {}
    facts = [
        f"trained at {info.get('trained_at') or 'n/a'}",
        f"best iteration {info.get('best_iteration')}, {info.get('num_trees')} trees",
        "refit on the whole train period" if info.get("refit_on_train") else "trained on the fit part only",
    ]
    validation = info.get("validation") or {}
    if validation:
        facts.append("validation (at the best iteration): " + ", ".join(f"{k} {v:.4f}" for k, v in validation.items()))
    if tuning:
        facts.append(
            f"Optuna: {tuning.get('n_trials')} trials, best validation {tuning.get('metric')} "
            f"{_f(tuning.get('best_value'))} in {_f(tuning.get('seconds'), 1)} s"
        )
    doc.bullets(facts)
    params = info.get("params") or {}
    doc.table(["parameter", "value"], [[k, _plain(params[k])] for k in sorted(params)])

    doc.heading("Limits")
    doc.bullets([*_measured_limits(info, ev), *[str(x) for x in info.get("limitations") or []]])
    return doc


def _measured_limits(info: Mapping[str, Any], ev: Evaluation) -> list[str]:
    out = []
    parts = (info.get("split") or {}).get("parts", {})
    train, test = parts.get("train"), parts.get("test")
    if train and test:
        out.append(
            f"Trained on {train['window']['label']} only; measured on {test['window']['label']}. "
            f"The positive rate moved from {train['positive_rate']:.1%} to {test['positive_rate']:.1%} "
            "between "
            "them: expect drift; other periods, places or entities are untested."
        )
    dropped = sum((info.get("split") or {}).get("dropped_unlabelled", {}).values())
    if dropped:
        out.append(
            f"{dropped} rows had no label (for flights: cancellations) and were left out; the model says "
            "nothing about whether a row will have a label at all."
        )
    ece = ev.calibration.expected_calibration_error
    if ece > 0.02:
        out.append(
            f"Probabilities are off by {ece:.3f} on average on the holdout (calibration error): "
            "read scores as a ranking, or recalibrate before using them as probabilities."
        )
    valid_auc = (info.get("validation") or {}).get("auc")
    if valid_auc is not None and ev.metrics.roc_auc is not None:
        gap = float(valid_auc) - ev.metrics.roc_auc
        if gap > 0.02:
            out.append(f"Holdout ROC AUC is {gap:.3f} below the validation AUC: performance decays after training.")
    skipped = [s for s in ev.slices if s.status == "skipped"]
    if skipped:
        out.append(f"{len(skipped)} slice values were too small or single-class to measure (see Slices).")
    worst = min(
        (s for s in ev.slices if s.metrics and s.metrics.roc_auc is not None),
        key=lambda s: s.metrics.roc_auc if s.metrics and s.metrics.roc_auc is not None else 1.0,
        default=None,
    )
    if worst is not None and worst.metrics is not None and worst.metrics.roc_auc is not None:
        out.append(
            f"Weakest measured slice: {worst.slice} = {worst.value} (ROC AUC {worst.metrics.roc_auc:.3f}, "
            f"{worst.rows} rows)."
        )
    return out


def _validation_scores(model: TrainedModel) -> dict[str, float]:
    """Each recorded validation metric at the best iteration (before any refit)."""
    i = model.best_iteration
    return {name: float(values[i - 1]) for name, values in model.valid_curve.items() if 0 < i <= len(values)}


def _metric_cells(m: Any) -> list[Any]:
    return [m.roc_auc, m.pr_auc, m.log_loss, m.brier, m.mean_score]


def _f(value: Any, digits: int = 4) -> str:
    return "n/a" if value is None else f"{float(value):.{digits}f}"


def _plain(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)
