"""Tuning on a bounded sample against tuning on every row: time per trial and the model's
holdout quality, same data, same trials, same seed, in the same run.

The real flights training set of one year (train January-November 2013, holdout December) is
built once with the project's own feature definitions; the same split is then tuned twice with
``noria.training.tune``: on every fit row, and on a seeded sample of ``SAMPLE`` fit rows (a
quarter as many validation rows), the way ``training.tune_sample_rows`` does when history grows.
Each best parameter set then trains the final model on every row and is scored on the holdout.
Target (scale issue): the quality cost of sampled tuning is negligible (holdout primary metric
within 0.005), and a sampled trial costs no more than a full one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import Result, Target

TITLE = "Tuning on a bounded sample vs every row (flights, one year)"
BIN = Path(sys.executable).parent
SAMPLE = 60_000


def _split(root: Path) -> tuple[Any, list[str], list[str]]:
    from noria.config import load_project
    from noria.features import build_training_set
    from noria.training import split_by_time

    project = load_project(root)
    built = build_training_set(project, "2013-01", "2013-12")
    info = built.record.to_dict()
    features = list(info["features"])
    categorical = [f for f in features if info["feature_types"].get(f) == "str"]
    split = split_by_time(
        built.frame,
        "event_timestamp",
        info["label"]["name"],
        train=("2013-01", "2013-11"),
        test=("2013-12", "2013-12"),
    )
    return split, features, categorical


def run(quick: bool = False) -> Result:
    from noria.training import evaluate, train, tune

    trials = 4 if quick else 12
    env = os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1"}
    with tempfile.TemporaryDirectory(prefix="noria-bench-tune-") as tmp:
        root = Path(tmp) / "flights"
        subprocess.run([str(BIN / "noria"), "init", str(root)], check=True, capture_output=True, env=env)
        for argv in (["data", "ingest", "--from", "2013-01", "--to", "2013-12"], ["features", "apply"]):
            subprocess.run(
                [str(BIN / "noria"), "--project", str(root), *argv], check=True, capture_output=True, env=env
            )
        split, features, categorical = _split(root)
    rows = []
    quality = {}
    per_trial = {}
    for name, sample in (("every row", None), (f"sample of {SAMPLE:,}", SAMPLE)):
        started = time.perf_counter()
        tuned = tune(split, features, categorical, trials=trials, seed=42, sample_rows=sample)
        tune_s = time.perf_counter() - started
        model = train(split, features, categorical, tuned.best_params, seed=42)
        metric = evaluate(model, split.test, split.label).metrics["roc_auc"]
        quality[name], per_trial[name] = float(metric or 0.0), tune_s / trials
        rows.append(
            {
                "tuned on": name,
                "fit rows": tuned.fit_rows,
                "valid rows": tuned.valid_rows,
                "tune s": round(tune_s, 1),
                "s per trial": round(tune_s / trials, 2),
                "holdout ROC AUC (final model on all rows)": round(float(metric or 0.0), 4),
            }
        )
    full, sampled = rows[0]["tuned on"], rows[1]["tuned on"]
    cost = quality[full] - quality[sampled]
    speed = per_trial[full] / per_trial[sampled]
    return Result(
        name="tuning_sample",
        title=TITLE,
        columns=list(rows[0]),
        rows=rows,
        targets=[
            Target("AUC lost by sampled tuning", round(cost, 4), "<= 0.005", cost <= 0.005),
            Target("full / sampled time per trial", round(speed, 2), ">= 1", speed >= 1),
        ],
        notes=f"{trials} trials each, seed 42; the final model of each learns on all {len(split.fit):,} fit rows.",
    )
