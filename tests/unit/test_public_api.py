"""The public surface: ``noria.__all__`` is exactly the exported names, all importable, lazily."""

from __future__ import annotations

import subprocess
import sys

import noria


def test_all_is_exactly_the_public_names() -> None:
    public = set(noria._EXPORTS) | {"__version__"}
    assert set(noria.__all__) == public
    for name in noria.__all__:
        assert getattr(noria, name) is not None


def test_import_noria_is_lazy() -> None:
    code = "import sys, noria; assert 'pandas' not in sys.modules and 'dvc' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_unknown_attribute() -> None:
    import pytest

    with pytest.raises(AttributeError):
        _ = noria.does_not_exist  # type: ignore[attr-defined]
