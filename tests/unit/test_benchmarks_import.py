"""Every benchmark module imports and has the runner's interface (a renamed helper once broke one
unnoticed until the next `make bench`): ``run(quick=False)`` and a ``TITLE``. Nothing is timed."""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
NAMES = sorted(p.stem for p in BENCHMARKS.glob("bench_*.py"))


@pytest.fixture(autouse=True)
def _benchmarks_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # how benchmarks/run.py imports them


def test_there_are_benchmarks() -> None:
    assert len(NAMES) >= 10, NAMES


@pytest.mark.parametrize("name", NAMES)
def test_the_benchmark_imports_and_has_a_runner(name: str) -> None:
    module = importlib.import_module(name)
    try:
        assert isinstance(module.TITLE, str) and module.TITLE
        assert "quick" in inspect.signature(module.run).parameters
    finally:
        sys.modules.pop(name, None)
