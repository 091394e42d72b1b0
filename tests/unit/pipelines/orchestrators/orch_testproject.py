"""A tiny Noria project with a diamond pipeline, for the orchestrator tests.

``make_project(folder)`` writes noria.yaml and ``orch_flows.py`` (the pipeline, imported by the
step command from the project folder as ``orch_flows:diamond``) and returns the folder.

    numbers --> squares --+
        \\                  +--> report
         +---> total -----+
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

REF = "orch_flows:diamond"
STEPS = ["numbers", "squares", "total", "report"]
EDGES = {("numbers", "squares"), ("numbers", "total"), ("squares", "report"), ("total", "report")}
REPO = Path(__file__).resolve().parents[4]
NORIA = REPO / ".venv" / "bin" / "noria"

CONFIG = """\
project: orchtest
data:
  source: {kind: directory, path: raw}
  tables:
    t:
      file: t.csv
      primary_key: [id]
      columns:
        id: {type: int}
profiles:
  cluster: {}
"""

FLOWS = '''\
"""The diamond pipeline of the orchestrator tests (written by orch_testproject.py)."""

from pathlib import Path

from noria.pipelines import Pipeline, scratch_dir, step


@step
def numbers(count: int) -> list[int]:
    return list(range(1, count + 1))


@step
def squares(numbers: list[int]) -> list[int]:
    return [n * n for n in numbers]


@step
def total(numbers: list[int], offset: int = 0) -> int:
    return sum(numbers) + offset


@step
def report(squares: list[int], total: int, title: str) -> Path:
    path = scratch_dir() / "report.txt"
    path.write_text(f"{title}: squares={squares} total={total}\\n")
    return path


diamond = Pipeline(
    "diamond",
    [numbers, squares, total, report],
    params={"count": 4, "title": "it's a \\"report\\" & more"},
    description="Squares and a total of the first numbers, reported together.",
)
'''


def make_project(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "noria.yaml").write_text(CONFIG, encoding="utf-8")
    (folder / "orch_flows.py").write_text(textwrap.dedent(FLOWS), encoding="utf-8")
    return folder


def expected_report(count: int = 4, title: str = 'it\'s a "report" & more', offset: int = 0) -> str:
    nums = list(range(1, count + 1))
    return f"{title}: squares={[n * n for n in nums]} total={sum(nums) + offset}\n"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a fresh process: no NORIA_* leftovers, telemetry off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NORIA_", "AIRFLOW"))}
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1"})
    env.update(extra)
    return env


def report_of_run(project_dir: Path, run_id: str, **params: Any) -> tuple[dict[str, str], str]:
    """Each step's status when run ``run_id`` is run again locally (``resumed`` if a task did it), and the report."""
    from noria.config import load_project
    from noria.pipelines import find_pipeline, run_pipeline, store_for_project

    project = load_project(project_dir, profile="local", environ={})
    store = store_for_project(project)
    result = run_pipeline(find_pipeline(project, REF), store, run_id=run_id, params=params, progress=False)
    statuses = {name: r.status for name, r in result.steps.items()}
    return statuses, Path(result.load("report")).read_text()
