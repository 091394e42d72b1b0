"""The Mage project exported from a pipeline runs headless with `mage run`, in Mage's own environment.

Mage pins its own dependencies (an older typer, SQLAlchemy, ...), so it cannot share the
project's lock: the test builds a separate venv from orch_mage_requirements.txt (pip, from
PyPI, with uv when available) once, under ~/.cache/noria/ (or $MAGE_TEST_VENV), and reuses it
while the pins are unchanged. The first build downloads about 1.4 GB. The generated blocks
call the main venv's `noria` in a subprocess, so Mage never imports Noria.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "pipelines" / "orchestrators"))

import orch_testproject as tp

from noria.config import load_project
from noria.pipelines.orchestrators import OrchestratorsConfig, export_mage

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REQUIREMENTS = Path(__file__).with_name("orch_mage_requirements.txt")
REPO = Path(__file__).resolve().parents[2]
MAGE_VERSION = next(
    line.split("==")[1] for line in REQUIREMENTS.read_text().splitlines() if line.startswith("mage-ai==")
)


def mage_venv() -> Path:
    """A venv with exactly the pinned Mage, built on first use and reused while the pins are unchanged."""
    root = Path(os.environ.get("MAGE_TEST_VENV") or Path.home() / ".cache" / "noria" / f"mage-venv-{MAGE_VERSION}")
    pins = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    marker = root / ".noria-requirements-sha256"
    root.parent.mkdir(parents=True, exist_ok=True)
    with (root.parent / f"{root.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs never build the same venv at once
        if marker.exists() and marker.read_text() == pins and (root / "bin" / "mage").exists():
            return root
        # uv (on PATH, or where the Makefile puts it) downloads in parallel: seconds instead of minutes.
        uv = shutil.which("uv")
        if uv is None and (REPO / ".tools" / "bin" / "uv").exists():
            uv = str(REPO / ".tools" / "bin" / "uv")
        python = root / "bin" / "python"
        if not python.exists():
            shutil.rmtree(root, ignore_errors=True)
            create = [uv, "venv", "-q", "--python", sys.executable] if uv else [sys.executable, "-m", "venv"]
            subprocess.run([*create, str(root)], check=True)
        if uv:
            install = [uv, "pip", "install", "-q", "--python", str(python)]
        else:
            install = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        done = subprocess.run([*install, "-r", str(REQUIREMENTS)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(
                f"installing Mage {MAGE_VERSION} into {root} failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}"
            )
        marker.write_text(pins)
    return root


@pytest.mark.timeout(3600)  # the first build of the Mage venv
def test_mage_project_runs_headless_and_fills_the_store(tmp_path: Path) -> None:
    venv = mage_venv()
    project_dir = tp.make_project(tmp_path / "proj")
    config = OrchestratorsConfig(executable=str(tp.NORIA), retries=0, schedule="@weekly")
    mage_dir = tmp_path / "mage"
    folder = export_mage(load_project(project_dir, environ={}), tp.REF, mage_dir, config=config)
    assert folder == mage_dir / "pipelines" / "orchtest_diamond"

    env = tp.clean_env(MAGE_DATA_DIR=str(tmp_path / "mage-data"))
    run_vars = json.dumps({"noria_run_id": "mage-run-1", "count": 5})
    done = subprocess.run(
        [str(venv / "bin" / "mage"), "run", str(mage_dir), "orchtest_diamond", "--runtime-vars", run_vars],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Pipeline run completed." in done.stdout
    # Every step ran once, as its own `noria pipeline run --step` process, in graph order.
    started = [line.split("--step ")[1].split()[0] for line in done.stdout.splitlines() if "--step " in line]
    assert sorted(started) == sorted(tp.STEPS) and started[0] == "numbers" and started[-1] == "report"

    statuses, report = tp.report_of_run(project_dir, "mage-run-1", count=5)
    assert statuses == dict.fromkeys(tp.STEPS, "resumed")
    assert report == tp.expected_report(count=5)

    # A failing step fails the Mage run (here: a parameter of the wrong type, exit code 3).
    bad = json.dumps({"noria_run_id": "mage-run-2", "count": "many"})
    failed = subprocess.run(
        [str(venv / "bin" / "mage"), "run", str(mage_dir), "orchtest_diamond", "--runtime-vars", bad],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert failed.returncode != 0
    assert "returned non-zero exit status 3" in failed.stdout + failed.stderr
