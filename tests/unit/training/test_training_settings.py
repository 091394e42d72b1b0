from __future__ import annotations

import pydantic
import pytest

import noria.training
from noria.config import NoriaConfig
from noria.errors import ConfigError
from noria.training import TrainingSettings


def test_defaults_and_existing_keys_keep_their_meaning() -> None:
    s = TrainingSettings.model_validate({"train": {"from": "2013-01", "to": "2013-03"}, "seed": 1, "trials": 5})
    assert s.train is not None and (s.train.start, s.train.end, s.seed, s.trials) == ("2013-01", "2013-03", 1, 5)
    assert s.test is None  # no default period: training without one is a clear error
    with pytest.raises(ConfigError, match="training.test is not set"):
        s.periods()
    assert TrainingSettings().slices == [] and TrainingSettings().hour_band_column is None
    # it is the training section of noria.yaml
    assert NoriaConfig.model_fields["training"].annotation is TrainingSettings
    assert TrainingSettings().num_threads == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"train": {"from": "2013-07", "to": "2013-12"}, "test": {"from": "2013-01", "to": "2013-06"}}, "before"),
        (
            {"train": {"from": "2013-01", "to": "2013-06"}, "test": {"from": "2013-06", "to": "2013-12"}},
            "overlapping",
        ),
        ({"validation_fraction": 0.1, "validation_windows": 1}, "not both"),
        ({"trials": -1}, "greater than or equal"),
        ({"baselines": ["oracle"]}, "majority_rate"),
        ({"learning_rate": 0.1}, "Extra inputs"),
    ],
)
def test_bad_settings(data: dict[str, object], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        TrainingSettings.model_validate(data)


def test_context_baseline_needs_its_features() -> None:
    assert "context_lightgbm" not in TrainingSettings().baseline_kinds()
    assert "context_lightgbm" in TrainingSettings(baseline_features=["distance"]).baseline_kinds()


def test_public_names() -> None:
    assert sorted(noria.training.__all__) == sorted(noria.training._EXPORTS)
    for name in noria.training.__all__:
        assert getattr(noria.training, name) is not None
    assert callable(noria.training.tune) and callable(noria.training.evaluate)


def test_settings_import_stays_light() -> None:
    """The lead hangs TrainingSettings in NoriaConfig: loading config must not pull in LightGBM."""
    import subprocess
    import sys

    code = (
        "import sys; import noria.training.config; "
        "print(sorted(m for m in ('lightgbm', 'optuna', 'sklearn', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
