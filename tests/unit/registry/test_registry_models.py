"""Model versions: native LightGBM text, registration, lookup errors, loading, listing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import lightgbm as lgb
import numpy as np
import pytest

from noria.config import Project
from noria.errors import NotFoundError
from noria.registry import ModelVersionInfo, get_version, list_models, load_model, promote
from noria.registry.mlflow_client import get_client


def test_register_stores_lightgbm_text_and_no_pickle(
    project: Project, booster: lgb.Booster, registered: Callable[..., ModelVersionInfo]
) -> None:
    info = registered()
    assert info.name == "flight-delay" and info.version == 1 and info.run_id
    folder = Path(urlparse(info.source).path)
    assert (folder / "model.lgb").read_text(encoding="utf-8").startswith("tree\n")
    assert (folder / "MLmodel").is_file()
    assert not [p for p in folder.rglob("*") if p.suffix in (".pkl", ".pickle", ".joblib")]
    assert folder.is_relative_to(project.root / ".noria" / "mlartifacts")
    # The run links to its logged model (MLflow 3 model outputs).
    run = get_client(project).get_run(info.run_id)
    assert run.outputs is not None and len(run.outputs.model_outputs) == 1


def test_load_by_version_and_alias_predicts_like_the_original(
    project: Project, booster: lgb.Booster, registered: Callable[..., ModelVersionInfo]
) -> None:
    registered()
    second = registered()
    promote(project, "flight-delay", second.version, force=True, reason="test")
    x = np.random.default_rng(3).normal(size=(20, 4))
    for ref in ("flight-delay/2", "flight-delay@champion", "flight-delay", "models:/flight-delay/1"):
        loaded = load_model(project, ref)
        assert isinstance(loaded.booster, lgb.Booster)
        np.testing.assert_allclose(loaded.booster.predict(x), booster.predict(x))
    assert load_model(project, "flight-delay").info.version == 2
    assert get_version(project, "flight-delay/2").aliases == ("champion",)


def test_unknown_name_version_and_alias_fail_early_listing_what_exists(
    project: Project, registered: Callable[..., ModelVersionInfo]
) -> None:
    registered()
    with pytest.raises(NotFoundError) as err:
        get_version(project, "flight-dely/1")
    assert "flight-dely" in err.value.message and "registered: flight-delay" in err.value.message
    with pytest.raises(NotFoundError) as err:
        load_model(project, "flight-delay/9")
    assert "no version 9" in err.value.message and "versions: 1" in err.value.message
    with pytest.raises(NotFoundError) as err:
        load_model(project, "flight-delay")  # no champion yet
    assert "no @champion alias" in err.value.message and "aliases: none" in err.value.message
    assert err.value.fix and "noria promote flight-delay" in err.value.fix
    assert err.value.exit_code == 5


def test_list_models(project: Project, registered: Callable[..., ModelVersionInfo]) -> None:
    assert list_models(project) == []
    registered()
    registered()
    registered("other-model")
    promote(project, "flight-delay", 1, force=True, reason="first")
    models = {m.name: m for m in list_models(project)}
    assert set(models) == {"flight-delay", "other-model"}
    fd = models["flight-delay"]
    assert [v.version for v in fd.versions] == [1, 2]
    assert fd.aliases == {"champion": 1}
    assert fd.versions[0].aliases == ("champion",) and fd.versions[1].aliases == ()
    assert fd.to_dict()["versions"][0]["tags"]["noria.gate.decision"] == "forced"
    with pytest.raises(NotFoundError):
        list_models(project, "nope")
    assert [m.name for m in list_models(project, "other-model")] == ["other-model"]
