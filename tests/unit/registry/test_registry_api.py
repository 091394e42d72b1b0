"""``noria.registry.__all__`` is exactly its exports, and importing the package stays cheap."""

from __future__ import annotations

import subprocess
import sys

import noria.registry as registry


def test_all_is_exactly_the_exports() -> None:
    assert registry.__all__ == sorted(registry._EXPORTS)
    for name in registry.__all__:
        assert getattr(registry, name) is not None


def test_import_is_lazy_and_switches_telemetry_off_before_mlflow() -> None:
    code = (
        "import os, sys; os.environ.pop('MLFLOW_DISABLE_TELEMETRY', None)\n"
        "import noria.registry, noria.registry.config\n"
        "heavy = [m for m in ('mlflow', 'numpy', 'lightgbm', 'pandas') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "from noria.registry import get_version\n"
        "assert os.environ['MLFLOW_DISABLE_TELEMETRY'] == 'true'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
