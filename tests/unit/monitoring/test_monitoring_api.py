"""The public surface of noria.monitoring and its settings."""

from __future__ import annotations

import subprocess
import sys

import pydantic
import pytest

import noria.monitoring as monitoring
from noria.monitoring import DriftConfig


def test_all_is_exactly_the_public_names() -> None:
    assert set(monitoring.__all__) == set(monitoring._EXPORTS)
    for name in monitoring.__all__:
        assert getattr(monitoring, name) is not None
    with pytest.raises(AttributeError):
        _ = monitoring.does_not_exist  # type: ignore[attr-defined]


def test_the_config_model_loads_without_pandas_or_scipy() -> None:
    code = (
        "import sys; from noria.monitoring.config import DriftConfig; DriftConfig(); "
        "assert 'pandas' not in sys.modules and 'scipy' not in sys.modules"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_drift_config_defaults_and_checks() -> None:
    cfg = DriftConfig()
    assert (cfg.psi_warn, cfg.psi_alert, cfg.p_value, cfg.min_importance) == (0.1, 0.25, 0.05, 0.05)
    with pytest.raises(pydantic.ValidationError, match="psi_warn"):
        DriftConfig(psi_warn=0.5, psi_alert=0.2)
    with pytest.raises(pydantic.ValidationError, match="missing_warn"):
        DriftConfig(missing_warn=0.5, missing_alert=0.2)
    with pytest.raises(pydantic.ValidationError, match="extra"):
        DriftConfig.model_validate({"psi_warning": 0.1})
