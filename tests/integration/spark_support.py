"""The Spark environment of the Spark integration tests: a venv holding only pyspark (pinned).

pyspark is not a project dependency: :func:`spark_venv` builds a venv holding only the pins of
features_spark_requirements.txt (uv or pip, from PyPI) once, under ~/.cache/noria/ (or
$SPARK_TEST_VENV), and reuses it while the pins are unchanged; the first build takes about
40 s. A Spark job runs in that venv's Python with the project's source and venv on PYTHONPATH
(:func:`spark_env`), so it uses the very same pandas, pyarrow, LightGBM and Noria as the tests.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from tests.conftest import require_binary

REQUIREMENTS = Path(__file__).with_name("features_spark_requirements.txt")
REPO = Path(__file__).resolve().parents[2]
PYSPARK_VERSION = next(
    line.split("==")[1] for line in REQUIREMENTS.read_text().splitlines() if line.startswith("pyspark==")
)


def require_java() -> None:
    """Spark needs Java 17+: skips locally naming the package, fails in CI."""
    if not os.environ.get("JAVA_HOME"):
        require_binary("java")


def spark_venv() -> Path:
    """A venv with exactly the pinned pyspark, built on first use and reused while the pins are unchanged."""
    root = Path(os.environ.get("SPARK_TEST_VENV") or Path.home() / ".cache" / "noria" / f"spark-venv-{PYSPARK_VERSION}")
    pins = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    marker = root / ".noria-requirements-sha256"
    python = root / "bin" / "python"
    root.parent.mkdir(parents=True, exist_ok=True)
    with (root.parent / f"{root.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs never build the same venv at once
        if marker.exists() and marker.read_text() == pins and python.exists():
            return root
        uv = shutil.which("uv")
        if uv is None and (REPO / ".tools" / "bin" / "uv").exists():
            uv = str(REPO / ".tools" / "bin" / "uv")
        shutil.rmtree(root, ignore_errors=True)
        # The same interpreter as this venv: the project's packages come from here via PYTHONPATH.
        create = [uv, "venv", "-q", "--python", sys.executable] if uv else [sys.executable, "-m", "venv"]
        subprocess.run([*create, str(root)], check=True)
        if uv:
            install = [uv, "pip", "install", "-q", "--python", str(python)]
        else:
            install = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        done = subprocess.run([*install, "-r", str(REQUIREMENTS)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(
                f"installing pyspark {PYSPARK_VERSION} into {root} failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}"
            )
        marker.write_text(pins)
    return root


def spark_env() -> dict[str, str]:
    """The environment a Spark job runs in: the project's source and venv on PYTHONPATH, Spark on loopback."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), sysconfig.get_paths()["purelib"]]),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
