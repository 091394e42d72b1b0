"""noria.features exports exactly its public names, lazily."""

from __future__ import annotations

import subprocess
import sys

import noria.features


def test_all_names_resolve() -> None:
    assert noria.features.__all__ == sorted(noria.features.__all__)
    for name in noria.features.__all__:
        assert getattr(noria.features, name) is not None, name


def test_importing_the_package_loads_no_heavy_library() -> None:
    code = "import sys, noria.features; print(sorted(m for m in ('feast', 'duckdb', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
