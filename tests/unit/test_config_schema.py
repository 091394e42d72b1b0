"""The JSON Schema of noria.yaml (noria.config_schema, `noria config schema`, schemas/noria.schema.json).

The schema is checked against the draft 2020-12 meta-schema, every noria.yaml the repository
ships (the examples, which are also `noria init`'s templates, and the deployed copy) validates
against it, a wrong type is rejected at its path, the committed copy and the CLI's output are the
models' schema byte for byte, `--output` replaces a file atomically, and docs/configuration.md's
```bash run lines run as written.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from noria import atomic, config_schema
from noria.cli import app
from noria.config import parse_config
from noria.config_schema import MODELINE, REGENERATE, REPO_SCHEMA, render, set_modeline, write_schema
from noria.config_schema import config_schema as make_schema
from noria.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / REPO_SCHEMA
SHIPPED = [*sorted((ROOT / "examples").glob("*/noria.yaml")), ROOT / "deploy/k8s/base/project/noria.yaml"]
runner = CliRunner()


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return make_schema()


def _errors(schema: dict[str, Any], config: Any) -> list[tuple[str, str]]:
    return [(e.json_path, e.message) for e in Draft202012Validator(schema).iter_errors(config)]


def test_the_schema_is_valid_json_schema_with_its_name_and_the_models_comments(schema: dict[str, Any]) -> None:
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == config_schema.SCHEMA_ID and schema["title"] == "noria.yaml"
    assert schema["required"] == ["project", "data"] and schema["additionalProperties"] is False
    # descriptions are the comments above the fields (pydantic keeps none of them)
    assert (
        schema["properties"]["project"]["description"] == "The project's name: lower-case letters, digits, '-' and '_'."
    )
    training = schema["$defs"]["TrainingSettings"]["properties"]
    assert training["trials"]["type"] == "integer" and training["trials"]["description"]
    period = schema["$defs"]["Period"]["properties"]  # aliases are the keys written in YAML
    assert set(period) == {"from", "to"} and period["from"]["description"] == "The first window (included)."
    described = [
        (name, key)
        for name, definition in schema["$defs"].items()
        for key, prop in definition.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert not described, f"keys without a description (comment them where the model defines them): {described}"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_noria_yaml_validates_and_points_at_the_schema(schema: dict[str, Any], path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert _errors(schema, yaml.safe_load(text)) == []
    first = text.splitlines()[0]
    assert first.startswith(MODELINE), f"{path.relative_to(ROOT)} does not start with {MODELINE}"
    if path.parent.parent.name == "examples":  # the deployed copy is the flights example, byte for byte
        assert (path.parent / first.removeprefix(MODELINE)).resolve() == COMMITTED


def test_a_wrong_type_is_rejected_at_its_path_as_the_loader_rejects_it(schema: dict[str, Any]) -> None:
    text = (ROOT / "examples/flights/noria.yaml").read_text(encoding="utf-8")
    config = yaml.safe_load(text)
    config["training"]["trials"] = "many"
    config["model"]["task"] = "clustering"
    config["serving"]["bogus"] = 1
    config["project"] = "Bad Name"
    errors = dict(_errors(schema, config))
    assert set(errors) == {"$.training.trials", "$.model.task", "$.serving", "$.project"}, errors
    assert "'many' is not of type 'integer'" in errors["$.training.trials"]
    assert "'bogus' was unexpected" in errors["$.serving"]
    loaded = yaml.safe_load(text)
    loaded["training"]["trials"] = "many"
    with pytest.raises(ConfigError, match=r"training\.trials: Input should be a valid integer"):
        parse_config(yaml.safe_dump(loaded, sort_keys=False))


def test_the_committed_schema_is_the_models_schema_and_the_clis_output() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render(), f"stale: run `{REGENERATE}`"
    # another process, another hash seed: the same bytes (sorted keys, no set order leaks in)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NORIA_")} | {"PYTHONHASHSEED": "12345"}
    done = subprocess.run(
        [sys.executable, "-m", "noria", "config", "schema"], capture_output=True, env=env, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == COMMITTED.read_bytes()


def test_the_lint_check_names_the_command_when_the_copy_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import config_schema as script  # scripts/config_schema.py, what `make lint` runs
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    monkeypatch.setattr(script, "ROOT", tmp_path)
    monkeypatch.setattr(sys, "argv", ["config_schema.py", "--check"])
    assert script.main() == 1 and "is missing" in capsys.readouterr().err
    (tmp_path / "schemas").mkdir()
    (tmp_path / REPO_SCHEMA).write_text(render().replace('"integer"', '"string"', 1), encoding="utf-8")
    assert script.main() == 1
    err = capsys.readouterr().err
    assert "differs from the config models" in err and f"`{REGENERATE}`" in err
    monkeypatch.setattr(sys, "argv", ["config_schema.py"])  # `make docs`
    assert script.main() == 0 and (tmp_path / REPO_SCHEMA).read_text(encoding="utf-8") == render()
    monkeypatch.setattr(sys, "argv", ["config_schema.py", "--check"])
    assert script.main() == 0


def test_output_replaces_the_file_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "new" / "noria.schema.json"
    result = runner.invoke(app, ["config", "schema", "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8") == render() and result.stdout == ""
    assert sorted(p.name for p in target.parent.iterdir()) == ["noria.schema.json"]  # no temporary left
    # a path that cannot be written is one line naming it, not a traceback
    result = runner.invoke(app, ["config", "schema", "--output", str(target.parent)])
    assert result.exit_code == 1 and f"cannot write the schema to {target.parent}" in result.output
    assert "fix: give --output a file path" in result.output
    assert sorted(p.name for p in target.parent.iterdir()) == ["noria.schema.json"]
    # a write that fails half-way leaves the old file whole and no temporary file behind
    target.write_text("old\n", encoding="utf-8")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space left"):
        write_schema(target)
    assert target.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["noria.schema.json"]


def test_set_modeline_replaces_or_adds_the_first_line() -> None:
    assert set_modeline("# a\nproject: p\n", "s.json") == f"{MODELINE}s.json\n# a\nproject: p\n"
    assert set_modeline(f"{MODELINE}../x.json\nproject: p\n", "s.json") == f"{MODELINE}s.json\nproject: p\n"


def test_the_commands_of_the_configuration_page_run(tmp_path: Path) -> None:
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    lines = [line for m in re.finditer(r"```bash run\n(.*?)```", page, re.S) for line in m[1].splitlines()]
    assert lines == ["noria config schema --output noria.schema.json"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NORIA_")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    for line in lines:
        done = subprocess.run(line, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"`{line}` failed:\n{done.stdout}\n{done.stderr}"
    assert json.loads((tmp_path / "noria.schema.json").read_text(encoding="utf-8")) == make_schema()
