"""The real training pipeline re-run with nothing changed, against its cold run (same project,
same machine, same run).

A new flights project (``noria init``) ingests its default range (January-June 2013) and runs
``noria pipeline run training`` as a user does:

- cold: the first run on an empty artifact store and registry (every step runs; the gate
  promotes version 1);
- first re-run: right after the gate promoted; the only change in the registry is that
  promotion, which ``champion_now`` recognises as the gate's own, so its decision is reused;
- warm: nothing changed (every step cached but ``context``, ``card_docs`` and ``champion_now``,
  which read the snapshot, the model card's pages and the registry; the gate's decision is reused).

Reported as command wall time (what a user or an orchestrator waits for, Python start-up and
imports included) and as the runner's own time. Target (scale issue): warm <= 5 % of cold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import Result, Target, median

TITLE = "Training pipeline: unchanged re-run vs cold run (real flights project)"
BIN = Path(sys.executable).parent


def _run(root: Path, env: dict[str, str]) -> tuple[float, dict[str, object]]:
    start = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "noria"), "--project", str(root), "pipeline", "run", "training", "--json"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    wall = time.perf_counter() - start
    return wall, json.loads(done.stdout)


def _runner_seconds(run: dict[str, object]) -> float:
    return float(run["seconds"])  # type: ignore[arg-type]


def _count(run: dict[str, object], status: str) -> int:
    steps = run["steps"]
    assert isinstance(steps, dict)
    return sum(1 for s in steps.values() if s["status"] == status)


def run(quick: bool = False) -> Result:
    repeat = 3 if quick else 5
    env = os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1"}
    if quick:
        env |= {"NORIA_TRAINING__TRIALS": "2"}
    with tempfile.TemporaryDirectory(prefix="noria-bench-rerun-") as tmp:
        root = Path(tmp) / "flights"
        subprocess.run([str(BIN / "noria"), "init", str(root)], check=True, capture_output=True, env=env)
        subprocess.run(
            [str(BIN / "noria"), "--project", str(root), "data", "ingest"], check=True, env=env, capture_output=True
        )
        cold_wall, cold = _run(root, env)
        again_wall, again = _run(root, env)
        warm = [_run(root, env) for _ in range(repeat)]
    warm_wall = median([w for w, _ in warm])
    warm_runner = median([_runner_seconds(r) for _, r in warm])
    rows = [
        {
            "run": "cold (empty store and registry)",
            "wall s": round(cold_wall, 2),
            "runner s": round(_runner_seconds(cold), 2),
            "ran / cached": f"{_count(cold, 'ran')} / {_count(cold, 'cached')}",
            "vs cold": 1.0,
        },
        {
            "run": "first re-run, right after the promotion",
            "wall s": round(again_wall, 2),
            "runner s": round(_runner_seconds(again), 2),
            "ran / cached": f"{_count(again, 'ran')} / {_count(again, 'cached')}",
            "vs cold": round(again_wall / cold_wall, 3),
        },
        {
            "run": f"unchanged (median of {repeat})",
            "wall s": round(warm_wall, 2),
            "runner s": round(warm_runner, 2),
            "ran / cached": f"{_count(warm[0][1], 'ran')} / {_count(warm[0][1], 'cached')}",
            "vs cold": round(warm_wall / cold_wall, 3),
        },
    ]
    share = warm_wall / cold_wall
    return Result(
        name="training_rerun",
        title=TITLE,
        columns=["run", "wall s", "runner s", "ran / cached", "vs cold"],
        rows=rows,
        targets=[
            Target("unchanged re-run / cold run (wall)", round(share, 3), "<= 0.05", share <= 0.05),
            Target(
                "steps run again right after the promotion",
                _count(again, "ran"),
                "<= 2 (context, champion_now)",
                _count(again, "ran") <= 2,
            ),
        ],
        notes=(
            "Wall: the whole `noria pipeline run training` command. Runner: the run's own time as it"
            " records it. The unchanged re-run is mostly Python start-up and imports; `champion_now` reads"
            " MLflow's SQLite registry tables directly (no MLflow start-up)."
            + (" Quick mode: 2 tuning trials." if quick else "")
        ),
    )
