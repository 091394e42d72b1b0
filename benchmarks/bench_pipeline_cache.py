"""Pipeline cache: a warm re-run of an unchanged pipeline against its cold run.

The pipeline does real work: it builds a flights-like frame of a few hundred thousand rows,
computes route delay rates with group-bys, joins them back as features, splits, fits a
LightGBM model (saved in its native text format) and scores it. Measured in one process:

- plain: the same step functions called directly, no store, no cache (the peer);
- cold: Noria's runner on an empty artifact store (serialise, hash, record every step);
- warm: the same pipeline again on that store, nothing changed (every step cached);
- one parameter: only ``rounds`` changed, so only fit and evaluate rerun.

Target: warm <= 5 % of cold.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from _harness import Result, Target, median
from noria.pipelines import LocalArtifactStore, Pipeline, RunResult, run_pipeline, scratch_dir, step

TITLE = "Pipeline cache: warm re-run vs cold run (flights-like data, LightGBM)"
# One thread: the benchmark machines are shared, and LightGBM's OpenMP threads degrade badly under contention.
LGB_PARAMS = {"objective": "binary", "learning_rate": 0.1, "num_leaves": 31, "verbose": -1, "num_threads": 1}
ROUNDS = 40
CARRIERS = [f"C{i:02d}" for i in range(16)]
DESTS = [f"D{i:03d}" for i in range(100)]


@step
def flights(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    carrier = rng.integers(0, len(CARRIERS), rows)
    dest = rng.integers(0, len(DESTS), rows)
    hour = rng.integers(5, 23, rows)
    month = rng.integers(1, 13, rows)
    distance = rng.gamma(4.0, 250.0, rows)
    risk = 0.02 * (hour - 5) + 0.15 * (carrier % 4 == 0) + 0.1 * np.isin(month, [6, 7, 12]) + 0.05 * (dest % 7 == 0)
    late = rng.random(rows) < 0.1 + risk
    return pd.DataFrame(
        {
            "carrier": pd.Categorical.from_codes(carrier, CARRIERS),
            "dest": pd.Categorical.from_codes(dest, DESTS),
            "hour": hour.astype("int16"),
            "month": month.astype("int16"),
            "distance": distance,
            "dep_delay": np.where(late, rng.gamma(2.0, 30.0, rows) + 15, rng.normal(0, 8, rows)),
        }
    )


@step
def route_stats(flights: pd.DataFrame) -> pd.DataFrame:
    late = flights.assign(late=(flights["dep_delay"] > 15).astype("float64"))
    by_route = late.groupby(["carrier", "dest"], observed=True).agg(
        route_rate=("late", "mean"), route_n=("late", "size"), route_mean_delay=("dep_delay", "mean")
    )
    by_hour = late.groupby(["carrier", "hour"], observed=True).agg(hour_rate=("late", "mean"))
    joined = late[["carrier", "dest", "hour"]].drop_duplicates()
    joined = joined.merge(by_route.reset_index(), on=["carrier", "dest"]).merge(
        by_hour.reset_index(), on=["carrier", "hour"]
    )
    return joined.reset_index(drop=True)


@step
def features(flights: pd.DataFrame, route_stats: pd.DataFrame) -> pd.DataFrame:
    frame = flights.merge(route_stats, on=["carrier", "dest", "hour"], how="left")
    frame["label"] = (frame["dep_delay"] > 15).astype("int8")
    return frame.drop(columns=["dep_delay"])


@step(outputs=("train", "holdout"))
def split(features: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    early = features["month"] <= 9
    return features[early].reset_index(drop=True), features[~early].reset_index(drop=True)


@step
def fit(train: pd.DataFrame, rounds: int, seed: int) -> Path:
    import lightgbm as lgb

    data = lgb.Dataset(train.drop(columns=["label"]), label=train["label"])
    booster = lgb.train(LGB_PARAMS | {"seed": seed}, data, num_boost_round=rounds)
    path = scratch_dir() / "model.txt"
    booster.save_model(str(path))
    return path


@step
def evaluate(fit: Path, holdout: pd.DataFrame) -> dict[str, float]:
    import lightgbm as lgb
    from sklearn.metrics import roc_auc_score

    booster = lgb.Booster(model_file=str(fit))
    scores = booster.predict(holdout.drop(columns=["label"]))
    return {"auc": float(roc_auc_score(holdout["label"], scores)), "rows": float(len(holdout))}


def build(rows: int) -> Pipeline:
    steps = [flights, route_stats, features, split, fit, evaluate]
    return Pipeline("bench", steps, params={"rows": rows, "seed": 7, "rounds": ROUNDS})


def plain(rows: int) -> dict[str, float]:
    """The same work without Noria: the step functions called directly, values kept in memory."""
    raw = flights.func(rows, 7)
    feats = features.func(raw, route_stats.func(raw))
    train, holdout = split.func(feats)
    folder = Path(tempfile.mkdtemp())
    try:
        import lightgbm as lgb

        data = lgb.Dataset(train.drop(columns=["label"]), label=train["label"])
        booster = lgb.train(LGB_PARAMS | {"seed": 7}, data, num_boost_round=ROUNDS)
        booster.save_model(str(folder / "model.txt"))
        return evaluate.func(folder / "model.txt", holdout)
    finally:
        shutil.rmtree(folder)


def _timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def run(quick: bool) -> Result:
    rows = 150_000 if quick else 300_000
    cold_repeat, warm_repeat = (1, 3) if quick else (2, 5)
    pipeline = build(rows)
    root = Path(tempfile.mkdtemp(prefix="noria-bench-pipeline-"))
    try:
        plain(rows // 10)  # untimed warm-up: imports (LightGBM, scikit-learn) are not part of either side
        plain_times = [_timed(lambda: plain(rows))[0] for _ in range(cold_repeat)]
        cold_times, warm_times, param_times = [], [], []
        auc = 0.0
        for i in range(cold_repeat):
            store = LocalArtifactStore(root / f"store-{i}")

            def again(store: LocalArtifactStore = store, **params: Any) -> RunResult:
                return run_pipeline(pipeline, store, params=params, progress=False)

            seconds, result = _timed(again)
            assert result.count("ran") == 6, result.steps
            cold_times.append(seconds)
            auc = result.load("evaluate")["auc"]
            for _ in range(warm_repeat):
                seconds, warm = _timed(again)
                assert warm.count("cached") == 6, warm.steps
                warm_times.append(seconds)
            seconds, changed = _timed(lambda: again(rounds=ROUNDS + 1))
            assert {n for n, r in changed.steps.items() if r.status == "ran"} == {"fit", "evaluate"}
            param_times.append(seconds)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    cold, warm = median(cold_times), median(warm_times)
    base = median(plain_times)
    rows_out = [
        {"variant": "plain functions (no store, no cache)", "seconds": base, "vs cold": base / cold},
        {"variant": "noria cold run (empty store)", "seconds": cold, "vs cold": 1.0},
        {"variant": "noria warm re-run (nothing changed)", "seconds": warm, "vs cold": warm / cold},
        {"variant": "noria re-run, one parameter changed (2 of 6 steps)", "seconds": median(param_times),
         "vs cold": median(param_times) / cold},
    ]  # fmt: skip
    ratio = warm / cold
    return Result(
        name="pipeline_cache",
        title=TITLE,
        columns=["variant", "seconds", "vs cold"],
        rows=rows_out,
        targets=[Target("warm re-run / cold run", ratio, "<= 0.05", ratio <= 0.05)],
        notes=(
            f"{rows:,} rows, 6 steps (frame, group-bys, join, split, LightGBM {ROUNDS} rounds, AUC {auc:.3f}); "
            f"median of {cold_repeat} cold and {len(warm_times)} warm runs in one process. The cold run's overhead "
            "over plain functions is the price of storing every intermediate result (Parquet + sha256 + records)."
        ),
    )
