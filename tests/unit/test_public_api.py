"""The public surface: ``noria.__all__`` is exactly the exported names, all importable, lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

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


# Every package that exports lazily (noria._lazy.lazy_exports): its public names, exactly.
LAZY_PACKAGES = [
    "noria",
    "noria.console",
    "noria.features",
    "noria.monitoring",
    "noria.pipelines",
    "noria.pipelines.orchestrators",
    "noria.registry",
    "noria.serving",
    "noria.training",
]
# What importing the package alone must not load (its heavy dependencies load on first use).
HEAVY = ("pandas", "pyarrow", "mlflow", "feast", "dvc", "lightgbm", "optuna", "sklearn", "fastapi", "duckdb")


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_package_exports_exactly_its_names_lazily(package: str) -> None:
    import importlib

    module = importlib.import_module(package)
    exports = module._EXPORTS
    assert set(module.__all__) == set(exports) | ({"__version__"} if package == "noria" else set())
    assert dir(module) == sorted(module.__all__)  # dir() sorts what __dir__ gives
    for name in exports:
        assert getattr(module, name) is not None, f"{package}.{name}"
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'nope'"):
        module.nope  # noqa: B018 - the attribute access is the test
    code = f"import sys, {package}; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]", f"importing {package} loads {loaded.strip()}"
