"""docs/reliability.md is generated from the fault suite's results (``make faults``); it must list
every case of ``tests/faults`` with its outcome, and every loss it reports must be counted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _cases() -> set[str]:
    """``module::test[param]`` of every case, as the suite's recorder names them."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", "tests/faults"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    ids = [line for line in done.stdout.splitlines() if line.startswith("tests/faults/")]
    return {re.sub(r"^tests/faults/test_(\w+)\.py::", r"\1::", i) for i in ids}


def test_the_reliability_page_lists_every_fault_case_passed_with_no_uncounted_loss() -> None:
    page = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    listed = dict(re.findall(r"^- `([^`]+)` \(([^)]+)\)$", page, flags=re.M))
    missing = sorted(_cases() - set(listed))
    assert not missing, f"docs/reliability.md lacks {missing}: run `make faults` and commit the page"
    assert {case: outcome for case, outcome in listed.items() if outcome != "passed"} == {}
    assert "NOT counted" not in page and "| failed |" not in page
