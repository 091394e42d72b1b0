"""docs/maturity.md is run as written: every line of its ```bash run blocks, from the repository's root.

The commands run in a temporary folder holding a link to the repository's examples/, so the files
they write (maturity.json, maturity.html) land there and the assessment is of the real project.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PAGE = ROOT / "docs" / "maturity.md"
BLOCK = re.compile(r"```bash run\n(?P<body>.*?)```", re.S)

pytestmark = pytest.mark.slow


def test_every_command_of_the_page_runs(tmp_path: Path) -> None:
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NORIA_")}
    env |= {"MLFLOW_DISABLE_TELEMETRY": "true", "PATH": f"{Path(sys.executable).parent}:{env['PATH']}"}
    lines = [line for m in BLOCK.finditer(PAGE.read_text(encoding="utf-8")) for line in m["body"].splitlines()]
    assert len(lines) >= 4
    for line in lines:
        done = subprocess.run(line, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"`{line}` failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    assessment = json.loads((tmp_path / "maturity.json").read_text(encoding="utf-8"))
    assert assessment["project"] == "flights" and len(assessment["statements"]) == 60
    assert (tmp_path / "maturity.html").read_text(encoding="utf-8").count('class="statement"') == 60
