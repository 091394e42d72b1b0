"""Model names and references are checked before they reach a path or MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest
from registry_helpers import make_project

from noria.errors import ValidationError
from noria.registry import ModelNameError, ModelRef, parse_model_ref, registry_lock, validate_model_name


@pytest.mark.parametrize("name", ["flight-delay", "m", "Model_2.v1", "9lives", "a" * 100])
def test_valid_names(name: str) -> None:
    assert validate_model_name(name) == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("..", "'..'"),
        ("a..b", "'..'"),
        (".hidden", "starts with '.'"),
        ("a\x00b", "control"),
        ("a\nb", "control"),
        ("a\u202eb", "control or invisible"),
        ("a" * 101, "at most 100"),
        ("a b", "' '"),
        ("caf\u00e9", "'\u00e9'"),
        ("-x", "start with a letter or digit"),
        ("~root", "'~'"),
    ],
)
def test_unsafe_names_are_rejected_with_the_reason(name: str, why: str) -> None:
    with pytest.raises(ModelNameError) as err:
        validate_model_name(name)
    assert why in err.value.message
    assert err.value.fix and "letters, digits" in err.value.fix
    assert isinstance(err.value, ValidationError)


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("m", ModelRef("m", alias="champion")),
        ("m@challenger", ModelRef("m", alias="challenger")),
        ("m/3", ModelRef("m", version=3)),
        ("models:/m/12", ModelRef("m", version=12)),
        (" m@champion ", ModelRef("m", alias="champion")),
    ],
)
def test_parse_model_ref(text: str, ref: ModelRef) -> None:
    assert parse_model_ref(text) == ref


def test_parse_model_ref_str_round_trips() -> None:
    for text in ("m", "m@champion", "m/3"):
        assert str(parse_model_ref(text, default_alias=None)) == text


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("m/0", "not a positive integer"),
        ("m/abc", "not a positive integer"),
        ("m/1/2", "not a positive integer"),
        ("../etc/passwd", "'..'"),
        ("..\\..\\x@champion", "path separator"),
        ("m@v1", "alias 'v1'"),
        ("m@", "alias ''"),
        ("@champion", "empty"),
    ],
)
def test_bad_references(text: str, why: str) -> None:
    with pytest.raises(ModelNameError) as err:
        parse_model_ref(text)
    assert why in err.value.message


def test_bad_name_never_reaches_the_file_system(tmp_path: Path) -> None:
    from noria.registry import get_version, load_model

    project = make_project(tmp_path / "p", migrated_db=None)
    for bad in ("../../etc/passwd", "a/../../b@champion", "..\\x"):
        with pytest.raises(ModelNameError):
            load_model(project, bad)
        with pytest.raises(ModelNameError):
            get_version(project, bad)
    with pytest.raises(ModelNameError), registry_lock(project, "../escape"):
        pass
    # Nothing was created: no MLflow database, no lock folder, nothing outside the project.
    assert not (project.root / ".noria").exists()
    assert not (tmp_path / "escape").exists()
