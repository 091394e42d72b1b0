"""The model card: what the model is for, what it was trained on, how well it does, where it fails.

Its intended use, its users and the decisions they take, and its risks with their mitigations
come from the project's pages (``docs/goals.md``, ``docs/explanations.md``, ``docs/risk.md``;
see :mod:`noria.training.card_docs`), each cited with its sign-off; a page not written or not
filled in yet is said so, and the card's default text stands in for it.

One card per model version, written twice from the same content: ``model_card.md`` (plots as
PNG files in ``model_card_files/``) and ``model_card.html`` (one self-contained file, plots
inline as base64 PNG). It speaks the task's language: a probability that the label is true
(binary), the probabilities of the named classes (multi-class), a value in the target's unit
(regression). Plots per task: feature importance and slices always; ROC and calibration
curves (binary); a confusion matrix and the top label's calibration (multi-class); predicted
against actual values and residuals by decile (regression). Limits the numbers reveal
(drift of the label between periods, miscalibration or bias, a gap between validation and
holdout, slices too small to judge) are written automatically.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from noria import atomic
from noria.tasks import BinaryTask, Task, make_task
from noria.training import _plots
from noria.training._doc import Doc, Image
from noria.training.card_docs import PART, citation, fallback_note, paragraphs
from noria.training.card_text import fmt, intended_use, measured_limits, metric_notes, users, what
from noria.training.evaluation import Evaluation
from noria.training.model import TrainedModel
from noria.training.split import Split
from noria.training.tuning import TuneResult

CARD_MD = "model_card.md"
CARD_HTML = "model_card.html"
IMAGE_DIR = "model_card_files"


def model_info(
    model: TrainedModel,
    split: Split | Mapping[str, Any],
    *,
    name: str,
    version: str | int | None = None,
    tuning: TuneResult | None = None,
    intended_use: str | None = None,
    limitations: Sequence[str] = (),
    docs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``info`` mapping :func:`write_model_card` reads, built from the training objects.

    ``split``: the split, or its :meth:`Split.summary` (what the training pipeline passes on).
    ``docs``: what :func:`noria.training.card_docs.read_card_docs` read from the project's pages
    (None: no project folder, the card's defaults apply and it says so). ``intended_use``, when
    given, is used instead of the goals page.
    """
    task = model.task
    return {
        "name": name,
        "version": None if version is None else str(version),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "task": task.name,
        "classes": list(task.classes),
        "target": {"name": task.label_name, "unit": task.unit},
        "label": model.label,
        "features": model.features,
        "categorical": model.categorical,
        "params": model.params,
        "best_iteration": model.best_iteration,
        "num_trees": int(model.booster.num_trees()),
        "refit_on_train": model.refit_on_train,
        "validation": _validation_scores(model),
        "split": split.summary() if isinstance(split, Split) else dict(split),
        "tuning": None if tuning is None else {k: v for k, v in tuning.to_dict().items() if k != "trials"},
        "intended_use": intended_use,
        "limitations": list(limitations),
        "docs": None if docs is None else dict(docs),
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
        atomic.write_bytes(out / IMAGE_DIR / image.name, image.png, mode=atomic.SHARED)
    md = atomic.write_text(out / CARD_MD, doc.markdown(IMAGE_DIR), mode=atomic.SHARED)
    page = atomic.write_text(out / CARD_HTML, doc.html(), mode=atomic.SHARED)
    return md, page


# Metrics shown in the "metrics vs baselines" table, per task.
TABLE_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "pr_auc", "log_loss", "brier", "mean_score"),
    "multiclass": ("log_loss", "accuracy", "macro_f1", "brier", "ece"),
    "regression": ("rmse", "mae", "r2", "bias", "mean_prediction"),
}


def _task(info: Mapping[str, Any], ev: Evaluation) -> Task:
    target = info.get("target") or {}
    name = str(info.get("task") or ev.task)
    if name == "binary" and not target:
        return BinaryTask()
    return make_task(
        name, classes=info.get("classes") or ev.classes, name=target.get("name"), unit=ev.unit or target.get("unit", "")
    )


def _build(info: Mapping[str, Any], ev: Evaluation, importance: pd.DataFrame, lineage: Mapping[str, Any]) -> Doc:
    name = str(info.get("name") or "model")
    version = info.get("version")
    label = str(info.get("label") or ev.label)
    task = _task(info, ev)
    metric, metric_name = ev.primary_metric, _plots.metric_label(ev.primary_metric)
    doc = Doc(f"Model card: {name}" + (f" v{version}" if version else ""))
    value = ev.primary()
    direction = "higher" if ev.higher_is_better else "lower"
    better = max if ev.higher_is_better else min
    best = better(
        (b for b in ev.baselines if b.metrics.get(metric) is not None),
        key=lambda b: b.metrics.get(metric) or 0.0,
        default=None,
    )
    unit = f" {task.unit}" if task.name == "regression" and task.unit else ""
    summary = f"Predicts {what(task, label)}. Holdout {metric_name} {fmt(value)}{unit} on {_rows(ev)} rows"
    if best is not None and value is not None and best.metrics.get(metric) is not None:
        theirs = float(best.metrics[metric] or 0.0)
        summary += f"; the strongest baseline ({best.name}) reaches {fmt(theirs)}{unit}"
        summary += f" ({value - theirs:+.4f}; {direction} is better)"
    doc.para(summary + ".")

    if info.get("intended_use"):
        doc.heading(PART["intended_use"].title)
        doc.para(str(info["intended_use"]))
    else:
        _from_page(doc, info, "intended_use", lambda: doc.para(intended_use(task, label)))
    _from_page(doc, info, "users", lambda: doc.para(users(task, label)))

    doc.heading("Data snapshot")
    doc.table(["item", "value"], [[k, _plain(v)] for k, v in lineage.items()] or [["lineage", "not recorded"]])
    split = info.get("split") or {}
    parts = split.get("parts", {})
    headers, rows = _parts_table(task, parts)
    doc.table(headers, rows)
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
    shown = TABLE_METRICS[task.name]
    table = [["model", described, *(ev.metrics.get(k) for k in shown)]]
    table += [[b.name, b.description, *(b.metrics.get(k) for k in shown)] for b in ev.baselines]
    doc.table(["model", "description", *(_plots.metric_label(k) for k in shown)], table)
    doc.para(metric_notes(task, ev))
    _task_sections(doc, task, ev)

    doc.heading("Slices (holdout)")
    doc.image(Image("slices.png", _plots.slices_png(ev), f"{metric_name} by slice"))
    extra = ("log_loss", "brier") if task.name == "binary" else tuple(k for k in shown if k != metric)[:2]
    doc.table(
        ["slice", "value", "rows", *(["positives"] if task.name == "binary" else []), metric_name,
         *(_plots.metric_label(k) for k in extra), "note"],
        [
            [
                s.slice,
                s.value,
                s.rows,
                *([s.positives] if task.name == "binary" else []),
                s.metrics.get(metric) if s.metrics else None,
                *(s.metrics.get(k) if s.metrics else None for k in extra),
                s.reason or "",
            ]
            for s in ev.slices
        ],
    )  # fmt: skip

    doc.heading("Training")
    tuning = info.get("tuning") or {}
    facts = [
        f"task {task.describe()}, LightGBM objective {(info.get('params') or {}).get('objective', task.objective)}",
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
            f"{fmt(tuning.get('best_value'))} in {fmt(tuning.get('seconds'), 1)} s"
        )
    doc.bullets(facts)
    params = info.get("params") or {}
    doc.table(["parameter", "value"], [[k, _plain(params[k])] for k in sorted(params)])

    doc.heading("Limits")
    doc.bullets([*measured_limits(info, ev, task), *[str(x) for x in info.get("limitations") or []]])
    _from_page(doc, info, "risks", lambda: doc.table(["risk", "mitigation built into Noria"], _DEFAULT_RISKS))
    return doc


def _from_page(doc: Doc, info: Mapping[str, Any], key: str, default: Callable[[], None]) -> None:
    """A part of the card from the project's page (cited with its sign-off), or its default, saying why."""
    part = PART[key]
    doc.heading(part.title)
    docs = info.get("docs")
    entry = docs.get(key) if isinstance(docs, Mapping) else None
    note = fallback_note(part, entry)
    if note is not None or not isinstance(entry, Mapping):
        doc.para(note or "")
        default()
        return
    for kind, body in paragraphs(str(entry.get("text") or "")):
        if kind == "table":
            doc.table(*body)
        elif kind == "ul":
            doc.bullets(body)
        else:
            doc.para(body)
    doc.para(citation(part, dict(entry)))


# The safeguards every model served by Noria has: the risks table when docs/risk.md is not filled in.
_DEFAULT_RISKS = [
    [
        "inputs drift away from the training data",
        "drift alerts on important features; monitoring.policy.on_drift can retrain",
    ],
    [
        "the live metric falls below the holdout",
        "noria monitor feedback on matured labels, the metric-drop alert, retraining through the gate",
    ],
    [
        "a worse model is promoted",
        "the promotion gate (a challenger must beat the champion on the same holdout), noria rollback",
    ],
    [
        "requests outside what the model learned",
        "answers flag out-of-distribution inputs, which go to the review queue",
    ],
]


def _rows(ev: Evaluation) -> int:
    return int(ev.metrics.get("rows") or 0)


def _parts_table(task: Task, parts: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    names = [p for p in ("train", "fit", "valid", "test") if p in parts]

    def window(p: str) -> str:
        return str(parts[p].get("window", {}).get("label", ""))

    if task.name == "multiclass":
        headers = ["part", "window", "rows", *(f"share {c}" for c in task.classes)]
        return headers, [
            [p, window(p), parts[p]["rows"], *((parts[p].get("class_shares") or {}).get(c) for c in task.classes)]
            for p in names
        ]
    if task.name == "regression":
        unit = f" ({task.unit})" if task.unit else ""
        headers = ["part", "window", "rows", f"mean{unit}", "std", "min", "max"]
        return headers, [
            [p, window(p), parts[p]["rows"], *(parts[p].get(k) for k in ("mean", "std", "minimum", "maximum"))]
            for p in names
        ]
    headers = ["part", "window", "rows", "positives", "positive rate"]
    return headers, [[p, window(p), parts[p]["rows"], parts[p]["positives"], parts[p]["positive_rate"]] for p in names]


def _task_sections(doc: Doc, task: Task, ev: Evaluation) -> None:
    """The task's own plots and tables after the metrics table."""
    if task.name == "binary":
        doc.image(Image("roc.png", _plots.roc_png(ev), "ROC curve"))
        _calibration_section(doc, ev, "Calibration")
    elif task.name == "multiclass":
        doc.heading("Confusion matrix")
        doc.image(Image("confusion.png", _plots.confusion_png(ev), "confusion matrix"))
        c = ev.confusion or {}
        doc.table(
            ["actual \\ predicted", *task.classes, "rows", "recall", "precision"],
            [
                [cls, *row, sum(row), recall, precision]
                for cls, row, recall, precision in zip(
                    task.classes, c.get("counts", []), c.get("recall", []), c.get("precision", []), strict=False
                )
            ],
        )
        _calibration_section(doc, ev, "Calibration of the predicted class")
    else:
        doc.heading("Residuals")
        doc.image(Image("predicted.png", _plots.predicted_vs_actual_png(ev), "predicted vs actual"))
        doc.image(Image("residuals.png", _plots.residuals_png(ev), "residuals by decile of the actual value"))
        r = ev.residuals or {}
        unit = f" ({task.unit})" if task.unit else ""
        q = r.get("error_quantiles", {})
        a = r.get("abs_error_quantiles", {})
        doc.para(
            f"Error = predicted - actual{unit}. Half of the errors lie between {fmt(q.get('q25'), 3)} and "
            f"{fmt(q.get('q75'), 3)}, 90 % between {fmt(q.get('q05'), 3)} and {fmt(q.get('q95'), 3)}; the median "
            f"error size is {fmt(a.get('q50'), 3)}, 90 % are below {fmt(a.get('q90'), 3)}."
        )
        doc.table(
            ["actual from", "to", "rows", "mean actual", "mean predicted", "bias", "MAE", "RMSE"],
            [
                [d["low"], d["high"], d["rows"], d["mean_label"], d["mean_prediction"], d["bias"], d["mae"], d["rmse"]]
                for d in r.get("by_label_decile", [])
            ],
        )


def _calibration_section(doc: Doc, ev: Evaluation, title: str) -> None:
    if ev.calibration is None:
        return
    doc.heading(title)
    doc.image(Image("calibration.png", _plots.calibration_png(ev), "calibration curve"))
    observed = "share right" if ev.task == "multiclass" else "observed rate"
    doc.table(
        ["bin", "rows", "mean predicted", observed],
        [[f"{b.lower:.1f}-{b.upper:.1f}", b.rows, b.mean_score, b.observed_rate] for b in ev.calibration.bins],
    )


def _validation_scores(model: TrainedModel) -> dict[str, float]:
    """Each recorded validation metric at the best iteration (before any refit)."""
    i = model.best_iteration
    return {name: float(values[i - 1]) for name, values in model.valid_curve.items() if 0 < i <= len(values)}


def _plain(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)
