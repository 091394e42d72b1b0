"""The A/B test report: champion vs challenger on matured labels, and the declared decision rule.

``noria ab report`` reads the requests each arm answered (the prediction log's ``arm``, set by
:mod:`noria.serving.ab_assignment`) and the labels that have matured since, joined the way
``noria monitor feedback`` joins them (:func:`noria.monitoring._performance.join_labels`). Each
arm is scored on the task's primary metric (:func:`noria.task_metrics.task_metrics`: ROC AUC,
log loss, RMSE). The experiment starts at the challenger's first logged request: champion rows
from before it are not part of the test. Each arm keeps the rows of its newest model version.

The difference (challenger - champion) gets a percentile bootstrap interval: the labelled
requests of each arm are resampled independently, with replacement, ``resamples`` times with a
fixed ``seed`` (``serving.ab.decision``), so the same log and labels give the same interval. The
*gain* is the difference signed so that positive means the challenger is better.

Decision (``serving.ab.decision``): ``continue`` while an arm has fewer than
``min_samples_per_arm`` labelled requests; ``promote_challenger`` when the gain's interval lies
above zero and the gain is at least ``min_effect``; ``keep_champion`` when the interval's upper
end is below ``min_effect``, or when ``max_days`` have passed without a win; ``continue``
otherwise. The decision is appended to the monitoring store's ``decisions.jsonl`` (kind ``ab``);
nothing is promoted unless asked (``apply``), and then through the registry's promote API.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from noria.errors import NotFoundError, ValidationError
from noria.monitoring._performance import join_labels, predictions
from noria.monitoring.labels import id_types, labels_from_snapshot, load_labels
from noria.monitoring.store import MonitoringStore
from noria.monitoring.window import read_window, windows_in_log

if TYPE_CHECKING:
    import pandas as pd

    from noria.config import Project
    from noria.tasks import Task

Outcome = Literal["keep_champion", "promote_challenger", "continue"]
ARMS = ("champion", "challenger")
_DAY = 86_400.0


@dataclass(frozen=True)
class ArmResult:
    """One arm of the test: the version that served it, its requests, labels and primary metric."""

    arm: str
    model_version: int | None
    predictions: int
    labelled: int
    metric: float | None


@dataclass
class ABReport:
    """What ``noria ab report`` found and decided."""

    model_name: str
    metric: str
    higher_is_better: bool
    labels: str
    windows: list[str]
    started: str | None  # the challenger's first logged request (UTC)
    newest: str | None  # the newest logged request of the test
    days: float
    arms: dict[str, ArmResult]
    difference: float | None  # challenger - champion, in the metric's units
    interval: tuple[float, float] | None  # of the difference
    gain: float | None  # the difference signed so that positive = the challenger is better
    method: str
    rule: dict[str, Any]
    outcome: Outcome = "continue"
    reason: str = ""
    promotion: dict[str, Any] | None = None
    decision_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["interval"] = None if self.interval is None else list(self.interval)
        return out


def ab_report(
    project: Project,
    labels_path: Path | str | None = None,
    *,
    windows: list[str] | None = None,
    apply: bool = False,
    force: bool = False,
    record: bool = True,
) -> ABReport:
    """Score both arms on matured labels, apply ``serving.ab.decision``, record the decision.

    ``apply``: promote the challenger's version when the outcome is ``promote_challenger``,
    through the promotion gate (or ``force``d, with the A/B reason). What
    ``noria ab report [--labels PATH] [--window W] [--apply [--force]]`` runs.
    """
    from noria.task_metrics import task_metrics
    from noria.tasks import task_of
    from noria.windows import Windows

    task = task_of(project)
    rule = project.config.serving.ab.decision
    spans = Windows.of(project)
    chosen = [spans.check(w, "window") for w in windows] if windows else sorted(windows_in_log(project))
    if not chosen:
        raise NotFoundError("the prediction log holds no served request yet", fix="serve predictions first")
    store = MonitoringStore.of(project)
    quarantine = store.root / "quarantine"
    labels = (
        load_labels(project, labels_path, quarantine_dir=quarantine)
        if labels_path is not None
        else labels_from_snapshot(project, chosen, quarantine_dir=quarantine)
    )
    _, types = id_types(project)
    parts = []
    for window in chosen:
        rows = read_window(project, window)
        if rows.empty:
            continue
        joined, _ = join_labels(rows, labels, task, types, spans.timezone)
        parts.append(joined.assign(ts=_seconds(rows["timestamp"])))
    import pandas as pd

    joined = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if joined.empty or not (joined["arm"] == "challenger").any():
        raise NotFoundError(
            f"no request answered by the challenger arm in {', '.join(chosen)}",
            fix="start a split (serving.ab.challenger_fraction > 0 with a sticky_key) and serve requests,"
            " or pick the windows of the test with --window",
        )
    start = float(joined.loc[joined["arm"] == "challenger", "ts"].min())
    test = joined[(joined["ts"] >= start) & joined["arm"].isin(ARMS)]
    newest = float(test["ts"].max())
    days = (newest - start) / _DAY
    arms: dict[str, ArmResult] = {}
    samples: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for arm in ARMS:
        mine = test[test["arm"] == arm]
        version = int(mine["model_version"].max()) if len(mine) else None
        mine = mine[mine["model_version"] == version]
        lab = mine[mine["y"].notna()]
        y, pred = lab["y"].to_numpy(dtype=np.float64), predictions(lab, task)
        samples[arm] = (y, pred)  # the primary metric (ROC AUC, log loss, RMSE) needs no threshold
        value = task_metrics(task, y, pred).get(task.primary_metric) if len(lab) else None
        arms[arm] = ArmResult(arm, version, len(mine), len(lab), value)
    names = sorted(set(test["model_name"]))
    report = ABReport(
        model_name=names[0] if len(names) == 1 else project.config.model.name,
        metric=task.primary_metric,
        higher_is_better=task.higher_is_better,
        labels=labels.source,
        windows=chosen,
        started=_iso(start),
        newest=_iso(newest),
        days=round(days, 3),
        arms=arms,
        difference=None,
        interval=None,
        gain=None,
        method=f"percentile bootstrap over requests ({rule.resamples} resamples per arm, seed {rule.seed})",
        rule=rule.model_dump(),
    )
    champion, challenger = arms["champion"].metric, arms["challenger"].metric
    if champion is not None and challenger is not None:
        report.difference = challenger - champion
        report.gain = report.difference if task.higher_is_better else -report.difference
        report.interval = _bootstrap(task, samples, rule.resamples, rule.seed, rule.confidence)
    report.outcome, report.reason = decide(report)
    if apply and report.outcome == "promote_challenger":
        from noria.registry import promote

        version = arms["challenger"].model_version
        gate = promote(project, report.model_name, int(version or 0), force=force, reason=f"A/B test: {report.reason}")
        report.promotion = gate.to_dict()
    if record:
        store.append_decision(
            {
                "kind": "ab",
                "window": chosen[-1],
                "action": report.outcome,
                "reasons": [report.reason],
                "model_name": report.model_name,
                "model_version_before": arms["champion"].model_version,
                "candidate_version": arms["challenger"].model_version,
                "promoted": None if report.promotion is None else bool(report.promotion["promoted"]),
                "acted": apply,
                "checks": {k: v for k, v in report.to_dict().items() if k not in ("reason", "outcome", "promotion")},
            }
        )
        report.decision_path = str(store.decisions_path)
    return report


def decide(report: ABReport) -> tuple[Outcome, str]:
    """The outcome of ``report.rule`` on the figures of ``report``, and the reason naming them."""
    rule, metric = report.rule, report.metric
    need, effect, limit = int(rule["min_samples_per_arm"]), float(rule["min_effect"]), float(rule["max_days"])
    elapsed = f"{report.days:.1f} of {limit:g} days (max_days)"
    short = [a for a in report.arms.values() if a.labelled < need or a.metric is None]
    if short:
        counts = ", ".join(f"{a.arm} {a.labelled}" for a in report.arms.values())
        if report.days >= limit:
            return "keep_champion", (
                f"{report.days:.1f} days passed (max_days {limit:g}) with too few labelled requests"
                f" ({counts}; min_samples_per_arm {need}): the test cannot conclude, the champion stays"
            )
        return "continue", f"labelled requests {counts} of the {need} needed per arm; {elapsed}"
    assert report.gain is not None and report.difference is not None
    champion, challenger = report.arms["champion"], report.arms["challenger"]
    figures = (
        f"{metric} challenger {challenger.metric:.4f} (n={challenger.labelled}) vs champion"
        f" {champion.metric:.4f} (n={champion.labelled}), difference {report.difference:+.4f}"
    )
    if report.interval is None:
        return "continue", f"{figures}; the bootstrap gave no interval (too few resamples could be scored)"
    low, high = report.interval
    figures += f" [{low:+.4f}, {high:+.4f}] at {float(rule['confidence']):.0%}"
    gain_low, gain_high = (low, high) if report.higher_is_better else (-high, -low)
    if gain_low > 0 and report.gain >= effect:
        return "promote_challenger", f"{figures}: the challenger is better by at least min_effect {effect:g}"
    if gain_high < 0:
        return "keep_champion", f"{figures}: the challenger is worse"
    if gain_high < effect:
        return "keep_champion", f"{figures}: the challenger cannot be better by min_effect {effect:g}"
    if report.days >= limit:
        return "keep_champion", f"{figures}: no conclusive gain after {report.days:.1f} days (max_days {limit:g})"
    return "continue", f"{figures}: not conclusive yet (min_effect {effect:g}); {elapsed}"


def _bootstrap(
    task: Task, samples: dict[str, tuple[np.ndarray, np.ndarray]], resamples: int, seed: int, confidence: float
) -> tuple[float, float] | None:
    """Percentile interval of challenger - champion, each arm's requests resampled independently."""
    rng = np.random.default_rng(seed)
    values = []
    for arm in ARMS:
        y, pred = samples[arm]
        chunk = max(1, 4_000_000 // max(len(y), 1))  # bounded memory: resamples x rows indexes at a time
        parts = [
            _resampled(task, y, pred, rng.integers(0, len(y), (min(chunk, resamples - done), len(y))))
            for done in range(0, resamples, chunk)
        ]
        values.append(np.concatenate(parts))
    differences = values[1] - values[0]
    differences = differences[np.isfinite(differences)]
    if len(differences) < 0.9 * resamples:  # e.g. resamples of one class: no AUC
        return None
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(differences, [tail, 100.0 - tail])
    return float(low), float(high)


def _resampled(task: Task, y: np.ndarray, pred: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """The primary metric of each resample (a row of ``picks``) as :mod:`noria.task_metrics` has it,
    vectorised: ROC AUC (pairs ranked right, ties half), log loss, RMSE; NaN with one class only."""
    if task.name == "regression":
        return np.asarray(np.sqrt(((pred - y) ** 2)[picks].mean(axis=1)), dtype=np.float64)
    if task.name == "multiclass":
        true = pred[np.arange(len(y)), y.astype(np.int64)] / pred.sum(axis=1)
        return np.asarray((-np.log(np.clip(true, 1e-15, 1.0)))[picks].mean(axis=1), dtype=np.float64)
    # per distinct score: positives drawn x negatives drawn below it (+ half those tied), over all pairs
    order = np.argsort(pred, kind="stable")
    distinct = np.flatnonzero(np.r_[True, np.diff(pred[order]) != 0])
    drawn = np.bincount((np.arange(len(picks))[:, None] * len(y) + picks).ravel(), minlength=picks.size)
    drawn = drawn.reshape(len(picks), len(y))[:, order].astype(np.float64)
    pos = np.add.reduceat(drawn * y[order], distinct, axis=1)
    neg = np.add.reduceat(drawn * (1.0 - y[order]), distinct, axis=1)
    n1, n0 = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (pos * (np.cumsum(neg, axis=1) - 0.5 * neg)).sum(axis=1) / (n1 * n0)
    return np.where((n1 > 0) & (n0 > 0), auc, np.nan)


def _seconds(values: pd.Series) -> np.ndarray:
    """The log's request times as Unix seconds."""
    import pandas as pd

    stamps = pd.to_datetime(values, utc=True)
    if stamps.isna().any():
        raise ValidationError(
            "the prediction log holds requests without a timestamp",
            fix="serve with this version of Noria: its writer stamps every request",
        )
    return (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=np.float64)


def _iso(seconds: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


__all__ = ["ARMS", "ABReport", "ArmResult", "Outcome", "ab_report", "decide"]
