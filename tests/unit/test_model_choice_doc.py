"""docs/model_choice.md's measured section is rendered from a recorded pipeline run (docs/data/model_choice.json).

``scripts/model_choice.py --check`` (run by ``make lint``) must pass on the repository; a page
edited by hand fails it; and the conclusions the page draws are the differences of the figures
in its own table (no claim is written by hand). The run itself (``--run``) is exercised by
tests/e2e/test_model_choice_run.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "model_choice.py"
PAGE = ROOT / "docs" / "model_choice.md"
DATA = ROOT / "docs" / "data" / "model_choice.json"


def _script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT)


def _row(page: str, label: str) -> list[float]:
    """The numbers of the table row starting with ``label`` (bold marks dropped)."""
    line = next(x for x in page.splitlines() if x.startswith(f"| {label}"))
    cells = [c.strip().strip("*") for c in line.strip("|").split("|")]
    return [float(c) for c in cells[2:]]


def test_page_matches_the_recorded_run() -> None:
    done = _script("--check")
    assert done.returncode == 0, done.stderr


def test_recorded_run_is_of_the_real_pipeline() -> None:
    data = json.loads(DATA.read_text(encoding="utf-8"))
    assert len(data["commit"]) == 40
    assert data["snapshot"]["id"] and data["run_id"]
    # Every step of the training pipeline ran (a cached run would not have measured anything).
    for step in ("training_set", "split", "tune", "train", "evaluate", "register", "gate"):
        assert data["seconds"][step] > 0, step
    names = [b["name"] for b in data["baselines"]]
    assert {"majority_rate", "logistic_regression", "context_lightgbm"} <= set(names)
    assert data["split"]["parts"]["test"]["rows"] == data["model"]["metrics"]["rows"]


def test_claims_are_the_differences_of_the_table() -> None:
    page = PAGE.read_text(encoding="utf-8")
    model = _row(page, "LightGBM, tuned")
    logistic = _row(page, "logistic regression")
    context = _row(page, "LightGBM, schedule context only")
    gap = re.search(r"beats the logistic regression on the same features by ([+-]\d\.\d{3}) ROC AUC", page)
    assert gap is not None
    assert abs(float(gap[1]) - (model[0] - logistic[0])) <= 0.0011
    lift = re.search(r"\(schedule context only\) to (\d\.\d{3}) \(([+-]\d\.\d{3}) ROC AUC\)", page)
    assert lift is not None
    assert float(lift[1]) == model[0]
    assert abs(float(lift[2]) - (model[0] - context[0])) <= 0.0011
    # The page does not quote the stand-in frame's figures any more.
    for stale in ("0.740", "0.733", "0.764", "167,249"):
        assert stale not in page, stale


def test_a_hand_edited_page_fails_the_check(tmp_path: Path) -> None:
    page = tmp_path / "model_choice.md"
    shutil.copy(PAGE, page)
    text = page.read_text(encoding="utf-8")
    auc = f"{json.loads(DATA.read_text(encoding='utf-8'))['model']['metrics']['roc_auc']:.3f}"
    assert auc in text
    page.write_text(text.replace(auc, "0.999", 1), encoding="utf-8")
    done = _script("--check", "--page", str(page))
    assert done.returncode == 1 and "differs" in done.stderr
    assert _script("--page", str(page)).returncode == 0  # re-rendered from the JSON
    assert page.read_text(encoding="utf-8") == text


def test_a_page_without_markers_is_refused(tmp_path: Path) -> None:
    page = tmp_path / "model_choice.md"
    page.write_text("# Model choice\n", encoding="utf-8")
    done = _script("--check", "--page", str(page))
    assert done.returncode == 2 and "BEGIN GENERATED model-choice" in done.stderr
