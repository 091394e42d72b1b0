"""Metric logging: Noria's batched curve logging against plain ``mlflow.log_metric`` calls.

Target (issue: tracking and lineage): logging 1,000 metric values through Noria is at
least 30x faster than 1,000 ``mlflow.log_metric`` calls on the same backend. Both write
to the same SQLite MLflow store, into the same run, in the same process; each repetition
uses a new metric key so no write is a duplicate.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path

from _harness import Result, Target, median, time_call

TITLE = "MLflow metric logging: 1,000 values, batched (Noria) vs one call each (mlflow.log_metric)"
VALUES = 1000
CONFIG = """\
project: bench
data:
  tables:
    t:
      file: t.csv
      primary_key: [id]
      columns:
        id: {type: int}
"""


def run(quick: bool = False) -> Result:
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    import mlflow

    from noria.config import load_project
    from noria.registry import collect_lineage, start_run
    from noria.registry.mlflow_client import tracking_uri

    repeat = 1 if quick else 3
    values = [0.5 + i / (4 * VALUES) for i in range(VALUES)]
    with tempfile.TemporaryDirectory(prefix="noria-bench-") as tmp:
        root = Path(tmp)
        (root / "noria.yaml").write_text(CONFIG, encoding="utf-8")
        project = load_project(root, environ={})
        lineage = collect_lineage(project, data_snapshot=None, feature_service=None, feature_definition_hash=None)
        handle = start_run(project, "bench-logging", lineage)  # creates and migrates the store (untimed)
        noria_keys, plain_keys = itertools.count(), itertools.count()

        def noria_batched() -> None:
            handle.log_curve(f"noria_{next(noria_keys)}", values)
            handle.flush()

        def mlflow_per_call() -> None:
            key = f"plain_{next(plain_keys)}"
            for step, value in enumerate(values):
                mlflow.log_metric(key, value, step=step)

        mlflow.set_tracking_uri(tracking_uri(project))
        with mlflow.start_run(run_id=handle.run_id):
            plain = time_call(mlflow_per_call, repeat)
        batched = time_call(noria_batched, repeat)
        handle.end()
        client = handle.client
        for key in ("noria_0", "plain_0"):  # both wrote every value
            logged = sorted(client.get_metric_history(handle.run_id, key), key=lambda m: m.step)
            assert [m.value for m in logged] == values, key
    ratio = median(plain) / median(batched)
    rows = [
        {
            "method": "noria: RunHandle.log_curve + flush (log_batch)",
            "calls": 1,
            "median s": median(batched),
            "min s": min(batched),
            "ms per value": 1000 * median(batched) / VALUES,
        },
        {
            "method": "mlflow.log_metric, one call per value",
            "calls": VALUES,
            "median s": median(plain),
            "min s": min(plain),
            "ms per value": 1000 * median(plain) / VALUES,
        },
    ]
    return Result(
        name="mlflow_logging",
        title=TITLE,
        columns=["method", "calls", "median s", "min s", "ms per value"],
        rows=rows,
        targets=[Target("mlflow.log_metric / noria (time for 1,000 values)", round(ratio, 1), ">= 30x", ratio >= 30)],
        notes=f"{repeat} timed repetitions each after one warm-up; SQLite backend, same run, same process.",
    )
