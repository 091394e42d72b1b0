"""noria.yaml loading: line-numbered errors, profiles, NORIA_* overrides."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from noria.config import load_project, parse_config
from noria.errors import ConfigError, ProjectNotFoundError

BASE = textwrap.dedent(
    """\
    project: demo
    data:
      tables:
        t:
          file: t.csv
          primary_key: [k]
          columns:
            k: {type: int}
      source: {kind: directory, path: raw}
    training:
      train: {from: 2013-01, to: 2013-06}
      test: {from: 2013-07, to: 2013-12}
      trials: 5
    profiles:
      cluster:
        tracking: {uri: "http://mlflow:5000"}
        training: {trials: 50}
    """
)


def _project(tmp_path: Path, text: str = BASE) -> Path:
    (tmp_path / "noria.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def test_reference_project_config_is_valid() -> None:
    project = load_project(Path(__file__).parents[2] / "examples" / "flights", environ={})
    assert project.config.project == "flights"
    assert set(project.config.data.tables) == {"flights", "weather", "planes", "airports", "airlines"}
    assert project.config.data.tables["flights"].partition is not None


def test_unknown_key_names_key_and_line(tmp_path: Path) -> None:
    text = BASE.replace("k: {type: int}", "k: {type: int, minimum: 3}")
    with pytest.raises(ConfigError) as err:
        load_project(_project(tmp_path, text), environ={})
    assert "noria.yaml:8" in str(err.value)
    assert "data.tables.t.columns.k.minimum" in str(err.value)
    assert "unknown key" in str(err.value)


def test_wrong_type_names_key_line_and_value(tmp_path: Path) -> None:
    text = BASE.replace("trials: 5", "trials: many")
    with pytest.raises(ConfigError) as err:
        load_project(_project(tmp_path, text), environ={})
    message = str(err.value)
    assert "noria.yaml:13" in message and "training.trials" in message and "'many'" in message


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    text = BASE.replace("trials: 5", "trials: -1").replace("{type: int}", "{type: integer}")
    with pytest.raises(ConfigError) as err:
        load_project(_project(tmp_path, text), environ={})
    assert "2 problems" in str(err.value)


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"noria.yaml:2: key 'project' is given twice"):
        parse_config("project: a\nproject: b\n")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "is empty"),
        ("project: [unclosed\n", "not valid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
    ],
)
def test_malformed_files(text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_config(text)


def test_profile_overrides_and_unknown_profile(tmp_path: Path) -> None:
    root = _project(tmp_path)
    local = load_project(root, environ={})
    cluster = load_project(root, profile="cluster", environ={})
    assert local.config.training.trials == 5 and local.profile == "local"
    assert cluster.config.training.trials == 50
    assert cluster.config.tracking.uri == "http://mlflow:5000"
    with pytest.raises(ConfigError, match="profile 'staging' is not defined"):
        load_project(root, profile="staging", environ={})


def test_profile_error_points_at_profile_line(tmp_path: Path) -> None:
    root = _project(tmp_path, BASE.replace("training: {trials: 50}", "training: {trials: -1}"))
    with pytest.raises(ConfigError, match=r"noria.yaml:17: training.trials"):
        load_project(root, profile="cluster", environ={})


def test_env_overrides_win_and_are_typed(tmp_path: Path) -> None:
    root = _project(tmp_path)
    env = {"NORIA_TRAINING__TRIALS": "7", "NORIA_PROFILE": "cluster", "NORIA_SERVING__PORT": "9000"}
    project = load_project(root, environ=env)
    assert project.config.training.trials == 7
    assert project.config.serving.port == 9000
    assert project.profile == "cluster"


def test_bad_env_override_names_the_variable(tmp_path: Path) -> None:
    root = _project(tmp_path)
    with pytest.raises(ConfigError, match="environment variable NORIA_TRAINING__TRIALS: training.trials"):
        load_project(root, environ={"NORIA_TRAINING__TRIALS": "x"})
    with pytest.raises(ConfigError, match="NORIA_TRAINIG__TRIALS does not name a config key"):
        load_project(root, environ={"NORIA_TRAINIG__TRIALS": "3"})


def test_impossible_training_period(tmp_path: Path) -> None:
    root = _project(tmp_path, BASE.replace("{from: 2013-01, to: 2013-06}", "{from: 2013-09, to: 2013-06}"))
    with pytest.raises(ConfigError, match="'from' \\(2013-09\\) is after 'to' \\(2013-06\\)"):
        load_project(root, environ={})


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", ".hidden", "a\\b", "x" * 200])
def test_model_name_path_tricks_rejected(tmp_path: Path, name: str) -> None:
    root = _project(tmp_path, BASE + f"model: {{name: {name!r}}}\n")
    with pytest.raises(ConfigError, match="model.name"):
        load_project(root, environ={})


def test_primary_key_must_be_declared(tmp_path: Path) -> None:
    root = _project(tmp_path, BASE.replace("primary_key: [k]", "primary_key: [id]"))
    with pytest.raises(ConfigError, match="primary_key column 'id' is not declared"):
        load_project(root, environ={})


def test_project_found_from_subfolder_or_not_at_all(tmp_path: Path) -> None:
    root = _project(tmp_path)
    sub = root / "a" / "b"
    sub.mkdir(parents=True)
    assert load_project(sub, environ={}).root == root.resolve()
    empty = tmp_path.parent / (tmp_path.name + "-empty")
    empty.mkdir()
    with pytest.raises(ProjectNotFoundError, match="noria init"):
        load_project(empty, environ={})


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            "model:\n  task: regression\n  target: {column: k, threshold: 3}\n",
            "target.threshold applies to binary tasks only (task is regression)",
        ),
        ("model:\n  task: multiclass\n  target: {column: k}\n", "a multiclass task needs target.classes"),
        ("model:\n  task: binary\n  target: {column: k, classes: [a, b]}\n", "target.classes applies to multiclass"),
        ("model:\n  target: {column: k, function: m:f, tables: {t: [k]}}\n", "give either column"),
        ("model:\n  target: {function: m:f}\n", "a label function needs tables"),
        ("model:\n  target: {column: k, mature_after: soon}\n", "mature_after 'soon' is not a duration"),
        ("model:\n  task: regression\n  target: {column: k}\nwindows: {unit: week}\n", "is not a week window"),
    ],
)
def test_a_target_that_does_not_fit_its_task_names_the_line_and_the_fix(
    tmp_path: Path, model: str, message: str
) -> None:
    text = BASE.replace("profiles:\n", model + "profiles:\n", 1)
    with pytest.raises(ConfigError, match="noria.yaml:[0-9]+") as err:
        load_project(_project(tmp_path, text), environ={})
    assert message in str(err.value), str(err.value)
    assert err.value.fix


def test_windows_and_replay_labels_are_checked_against_the_unit(tmp_path: Path) -> None:
    text = BASE.replace(
        "profiles:\n",
        "windows: {unit: function, function: m:season}\nreplay: {from: 1990-91, to: 1991-92}\nprofiles:\n",
        1,
    )
    text = text.replace("2013-01, to: 2013-06", "1965-66, to: 1989-90").replace(
        "2013-07, to: 2013-12", "1990-91, to: 1990-91"
    )
    project = load_project(_project(tmp_path, text), environ={})
    assert project.config.windows.unit == "function" and project.config.replay is not None
    bad = BASE.replace("profiles:\n", "replay: {from: 2013-07, to: 2013-W02}\nprofiles:\n", 1)
    with pytest.raises(ConfigError, match=r"replay.to: '2013-W02' is not a month window"):
        load_project(_project(tmp_path, bad), environ={})
