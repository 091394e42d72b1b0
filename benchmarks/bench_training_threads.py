"""LightGBM threads: one thread against every core, with OpenMP's passive and active wait
policies, training the same model on the same data in the same run.

Each variant runs in its own process (OpenMP reads ``OMP_WAIT_POLICY`` once, when LightGBM
loads): 300,000 flights-like rows (categorical carrier and destination, numeric hour, month,
distance), 200 boosting rounds, early stopping off, so every variant does the same work.
Noria sets the passive policy itself (``noria/__init__.py``); the default of
``training.num_threads`` follows what this benchmark finds faster on the reference machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from _harness import Result, Target, median

TITLE = "LightGBM training: 1 thread vs all cores, passive vs active OpenMP wait"

WORKER = r"""
import json, sys, time
import numpy as np, pandas as pd, lightgbm as lgb
rows, threads = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(7)
carrier = rng.integers(0, 16, rows); dest = rng.integers(0, 100, rows)
hour = rng.integers(5, 23, rows); month = rng.integers(1, 13, rows); distance = rng.gamma(4.0, 250.0, rows)
risk = 0.02 * (hour - 5) + 0.15 * (carrier % 4 == 0) + 0.1 * np.isin(month, [6, 7, 12]) + 0.05 * (dest % 7 == 0)
y = (rng.random(rows) < 0.1 + risk).astype(int)
x = pd.DataFrame({"carrier": pd.Categorical(carrier), "dest": pd.Categorical(dest), "hour": hour,
                  "month": month, "distance": distance})
params = {"objective": "binary", "num_leaves": 63, "learning_rate": 0.05, "verbose": -1, "seed": 1,
          "num_threads": threads}
data = lgb.Dataset(x, y, categorical_feature=["carrier", "dest"]).construct()
start = time.perf_counter()
lgb.train(params, data, num_boost_round=200)
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def _time(rows: int, threads: int, policy: str) -> float:
    env = os.environ | {"OMP_WAIT_POLICY": policy}
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(rows), str(threads)], capture_output=True, text=True, check=True, env=env
    )
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


def run(quick: bool = False) -> Result:
    rows = 100_000 if quick else 300_000
    repeat = 2 if quick else 3
    cores = os.cpu_count() or 1
    variants = [(1, "PASSIVE"), (cores, "PASSIVE"), (1, "ACTIVE"), (cores, "ACTIVE")]
    times: dict[tuple[int, str], list[float]] = {v: [] for v in variants}
    for _ in range(repeat):  # interleaved, so a noisy minute hits every variant alike
        for threads, policy in variants:
            times[(threads, policy)].append(_time(rows, threads, policy))
    base = median(times[(1, "PASSIVE")])
    rows_out = [
        {
            "threads": threads,
            "OMP_WAIT_POLICY": policy,
            "median s": round(median(t), 3),
            "min s": round(min(t), 3),
            "vs 1 thread passive": round(median(t) / base, 2),
        }
        for (threads, policy), t in times.items()
    ]
    speedup = base / median(times[(cores, "PASSIVE")])
    return Result(
        name="training_threads",
        title=TITLE,
        columns=["threads", "OMP_WAIT_POLICY", "median s", "min s", "vs 1 thread passive"],
        rows=rows_out,
        targets=[
            Target(
                f"{cores} threads / 1 thread speed-up (passive)",
                round(speedup, 2),
                "> 1.2 to make all cores the default",
                speedup > 1.2,
            )
        ],
        notes=(
            f"{rows:,} rows, 200 rounds, {repeat} interleaved runs per variant, {cores} cores. The machine is"
            " shared: read the ratios, not the seconds."
        ),
    )
