"""Config sits at the bottom: importing ``noria.config`` loads section models only.

Each package's section model lives in ``<package>/config.py`` (pydantic and the standard
library, plus the light shared modules below); ``noria.config`` composes them. Importing it
must load no runner, no renderer, no runtime module and no heavy third-party package. The
import runs in a fresh interpreter, so modules other tests loaded do not hide a regression.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

# Every Noria module `import noria.config` may load: the package roots it passes through
# (their __init__ modules export lazily), the section models, and the light shared modules.
ALLOWED_NORIA = frozenset(
    {
        "noria",
        "noria._lazy",  # the packages' lazy exports (standard library only)
        "noria.config",
        "noria.config_yaml",  # noria.yaml read with the file:line of every key
        "noria.errors",
        "noria.names",
        "noria.periods",
        "noria.tasks",
        "noria.windows",
        "noria.data",
        "noria.data.config",
        "noria.features",
        "noria.features.config",
        "noria.monitoring",
        "noria.monitoring.config",
        "noria.pipelines",
        "noria.pipelines.config",
        "noria.pipelines.orchestrators",
        "noria.pipelines.orchestrators.config",
        "noria.registry",
        "noria.registry.config",
        "noria.serving",
        "noria.serving.config",
        "noria.training",
        "noria.training.config",
    }
)
# Never loaded by `import noria.config` (all achievable: none has to stay).
FORBIDDEN_NORIA = (
    "noria.data.ingest",
    "noria.data.validate",
    "noria.pipelines._runner",
    "noria.pipelines._store",
    "noria.pipelines._project",
    "noria.pipelines.orchestrators._airflow",
    "noria.pipelines.orchestrators._kfp",
    "noria.pipelines.orchestrators._mage",
    "noria.pipelines.orchestrators._plan",
    "noria.training.run",
    "noria.training.model",
    "noria.serving.app",
    "noria.monitoring.drift",
    "noria.s3",
    "noria.atomic",
)
HEAVY = (
    "pandas",
    "numpy",
    "pyarrow",
    "mlflow",
    "feast",
    "dvc",
    "lightgbm",
    "optuna",
    "sklearn",
    "fastapi",
    "starlette",
    "uvicorn",
    "duckdb",
    "pyspark",
    "jinja2",
    "boto3",
    "rich",
    "typer",
)


def _loaded_after(module: str) -> set[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_config_import_loads_section_models_only() -> None:
    loaded = _loaded_after("noria.config")
    noria = {m for m in loaded if m == "noria" or m.startswith("noria.")}
    assert noria - ALLOWED_NORIA == set()
    assert [m for m in FORBIDDEN_NORIA if m in loaded] == []
    assert sorted({m.split(".")[0] for m in loaded} & set(HEAVY)) == []


@pytest.mark.parametrize(
    "module",
    [
        "noria.data.config",
        "noria.features.config",
        "noria.monitoring.config",
        "noria.pipelines.config",
        "noria.pipelines.orchestrators.config",
        "noria.registry.config",
        "noria.serving.config",
        "noria.training.config",
    ],
)
def test_section_model_does_not_load_noria_config(module: str) -> None:
    """A section model never imports the composed config back (no hidden cycle)."""
    loaded = _loaded_after(module)
    assert "noria.config" not in loaded
    assert {m for m in loaded if m.startswith("noria.")} <= ALLOWED_NORIA


@pytest.mark.parametrize("package", ["noria.pipelines", "noria.pipelines.orchestrators"])
def test_lazy_packages_export_every_public_name(package: str) -> None:
    mod = importlib.import_module(package)
    assert sorted(dir(mod)) == sorted(mod.__all__)
    for name in mod.__all__:
        assert getattr(mod, name) is not None, name
    with pytest.raises(AttributeError):
        _ = mod.no_such_name
