"""noria.names: one model-name rule and one environment-variable-name rule, used by every site that checks them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError as PydanticValidationError

from noria import names
from noria.config import ModelConfig
from noria.pipelines.orchestrators.config import OrchestratorsConfig, SecretEnv
from noria.registry import ModelNameError, validate_model_name
from noria.serving.config import ServingConfig

GOOD_MODELS = ["churn", "churn-model", "Churn_Model.v2", "7days", "a" * 100, "a.b-c_d"]
BAD_MODELS = {
    "": "it is empty",
    "a" * 101: "101 characters long",
    "../escape": "path separator",
    "a/b": "path separator",
    "a\\b": "path separator",
    "a..b": "'..'",
    ".hidden": "starts with '.'",
    "tab\there": "control or invisible",
    "zero\u200bwidth": "control or invisible",
    "café": "'é'",
    "two words": "' '",
    "-dash-first": "must start with a letter or digit",
    "_under": "must start with a letter or digit",
}


@pytest.mark.parametrize("name", GOOD_MODELS)
def test_a_good_model_name_passes_the_rule_the_config_and_the_registry(name: str) -> None:
    assert names.model_name_problem(name) is None
    assert validate_model_name(name) == name
    assert ModelConfig(name=name).name == name


@pytest.mark.parametrize(("name", "problem"), BAD_MODELS.items())
def test_a_bad_model_name_is_refused_by_the_config_and_the_registry_for_the_same_reason(
    name: str, problem: str
) -> None:
    found = names.model_name_problem(name)
    assert found is not None and problem in found
    with pytest.raises(ModelNameError) as registry:
        validate_model_name(name)
    assert problem in registry.value.message and registry.value.fix == names.MODEL_NAME_FIX
    if name:  # an empty model.name means "the project's name"
        with pytest.raises(PydanticValidationError) as config:
            ModelConfig(name=name)
        assert found in str(config.value) and "model name" in str(config.value)


def test_an_empty_model_name_in_config_means_the_projects_name() -> None:
    assert ModelConfig(name="").name == ""


GOOD_ENV = ["NORIA_API_KEYS", "MY_KEYS", "_PRIVATE", "my_keys", "Mixed_Case2", "A"]
BAD_ENV = ["", "1ABC", "BAD-NAME", "WITH SPACE", "DOT.NAME", "ÄPFEL", "X=1", "$HOME"]


def _accepted_everywhere(name: str) -> list[bool]:
    """Whether each site that checks an environment variable name accepts ``name``."""
    results = []
    for build in (
        lambda: ServingConfig(api_keys_env=name),
        lambda: SecretEnv(env=name, secret="s", key="k"),
        lambda: OrchestratorsConfig(env={name: "x"}),
    ):
        try:
            build()
        except PydanticValidationError:
            results.append(False)
        else:
            results.append(True)
    return results


@pytest.mark.parametrize("name", GOOD_ENV)
def test_every_site_accepts_the_same_environment_variable_names(name: str) -> None:
    assert names.is_env_name(name)
    assert _accepted_everywhere(name) == [True, True, True]


@pytest.mark.parametrize("name", BAD_ENV)
def test_every_site_refuses_the_same_environment_variable_names(name: str) -> None:
    assert not names.is_env_name(name)
    assert _accepted_everywhere(name) == [False, False, False]


def test_a_refused_variable_name_is_named_in_the_error() -> None:
    with pytest.raises(PydanticValidationError, match="api_keys_env must be an environment variable name.*BAD-NAME"):
        ServingConfig(api_keys_env="BAD-NAME")
    assert not names.is_env_name(None) and not names.is_env_name(3)
