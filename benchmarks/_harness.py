"""The contract every benchmark follows, and what turns its result into JSON + Markdown.

A benchmark is a module ``benchmarks/bench_<name>.py`` exposing ``TITLE`` and
``run(quick: bool) -> Result``. It measures Noria *and its peer in the same run* (the
same machine, the same moment), so results are read as ratios: machines here are shared
and noisy, and single absolute times mean little.
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Target:
    """A stated goal, e.g. 'noria is >= 8x faster than mlflow'."""

    name: str
    value: float
    goal: str
    passed: bool


@dataclass
class Result:
    name: str
    title: str
    columns: list[str]
    rows: list[dict[str, Any]]
    targets: list[Target] = field(default_factory=list)
    notes: str = ""

    def to_markdown(self) -> str:
        lines = [f"## {self.title}", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "---|" * len(self.columns))
        for row in self.rows:
            lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in self.columns) + " |")
        if self.targets:
            lines += ["", "| target | measured | goal | met |", "|---|---|---|---|"]
            for t in self.targets:
                lines.append(f"| {t.name} | {_fmt(t.value)} | {t.goal} | {'yes' if t.passed else '**no**'} |")
        if self.notes:
            lines += ["", self.notes]
        return "\n".join(lines) + "\n"

    def save(self) -> tuple[Path, Path]:
        RESULTS.mkdir(parents=True, exist_ok=True)
        payload = asdict(self) | {
            "machine": {
                "python": platform.python_version(),
                "platform": platform.platform(),
                "cpus": _cpus(),
            },
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        js, md = RESULTS / f"{self.name}.json", RESULTS / f"{self.name}.md"
        for path, text in ((js, json.dumps(payload, indent=2, default=str)), (md, self.to_markdown())):
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
        return js, md


def _cpus() -> int:
    import os

    return os.cpu_count() or 1


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def time_command(argv: Sequence[str], repeat: int, env: dict[str, str] | None = None) -> list[float]:
    """Wall-clock seconds of ``repeat`` runs of a command (after one untimed warm-up run)."""
    subprocess.run(argv, capture_output=True, check=True, env=env)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, env=env)
        times.append(time.perf_counter() - start)
    return times


def time_call(fn: Callable[[], Any], repeat: int) -> list[float]:
    """Wall-clock seconds of ``repeat`` calls of ``fn`` (after one untimed warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median(values: Sequence[float]) -> float:
    return statistics.median(values)
