"""CLI start-up: `noria --help` against the CLIs of its peers, measured in the same run.

Target (issue: foundation): median wall time <= 0.3 s and at least 8x faster than
`mlflow --help`. `feast --help` and `dvc --help` are shown for context.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from _harness import Result, Target, median, time_command

TITLE = "CLI start-up: `--help` wall time (median)"
BIN = Path(sys.executable).parent


def run(quick: bool = False) -> Result:
    repeat = 5 if quick else 15
    env = os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1"}
    tools = {"noria": [str(BIN / "noria"), "--help"], "mlflow": [str(BIN / "mlflow"), "--help"]}
    for extra in ("dvc", "feast"):
        if (BIN / extra).exists():
            tools[extra] = [str(BIN / extra), "--help"]
    times = {name: time_command(argv, repeat, env) for name, argv in tools.items()}
    noria = median(times["noria"])
    rows = [
        {
            "command": f"{name} --help",
            "median s": round(median(t), 4),
            "min s": round(min(t), 4),
            "max s": round(max(t), 4),
            "vs noria": round(median(t) / noria, 1),
        }
        for name, t in times.items()
    ]
    ratio = median(times["mlflow"]) / noria
    return Result(
        name="cli_startup",
        title=TITLE,
        columns=["command", "median s", "min s", "max s", "vs noria"],
        rows=rows,
        targets=[
            Target("noria --help median (s)", round(noria, 4), "<= 0.3", noria <= 0.3),
            Target("mlflow / noria", round(ratio, 1), ">= 8x", ratio >= 8),
        ],
        notes=f"{repeat} timed runs each after one warm-up run; same machine, same run.",
    )
