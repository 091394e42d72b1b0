from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pipelines_flows as flows
import pytest
from typer.testing import CliRunner

from noria.cli import app as root_app
from noria.cli.pipeline import app as pipeline_app
from noria.config import load_project
from noria.pipelines import (
    Pipeline,
    PipelineDefinitionError,
    PipelineNotFoundError,
    PipelinesConfig,
    load_pipeline,
    parse_params,
    register_pipeline,
)
from noria.pipelines._project import store_for_project
from noria.pipelines._registry import BUILTIN

if not any(g.name == "pipeline" for g in root_app.registered_groups):
    root_app.add_typer(pipeline_app, name="pipeline")


def invoke(project: Path, *args: str) -> Any:
    return CliRunner().invoke(root_app, ["--project", str(project), "pipeline", *args])


def test_lookup_order_and_references(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_pipeline("pipelines_flows:numbers") is flows.numbers
    built = load_pipeline("pipelines_flows:numbers_pipeline")  # a factory is called
    assert isinstance(built, Pipeline) and built.name == "numbers"
    assert load_pipeline("nums", config_registry={"nums": "pipelines_flows:slow"}) is flows.slow
    monkeypatch.setitem(BUILTIN, "builtin-test", "pipelines_flows:slow")
    assert load_pipeline("builtin-test") is flows.slow
    register_pipeline("registered-test", flows.numbers_pipeline)
    assert load_pipeline("registered-test").name == "numbers"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("no-such-pipeline", "no pipeline named 'no-such-pipeline'"),
        ("no_such_module_xyz:p", "cannot import module 'no_such_module_xyz'"),
        ("pipelines_flows:nothing", "has no attribute 'nothing'"),
        ("pipelines_flows:tick", "not a Pipeline"),
        ("pipelines_flows:", "not of the form module:attribute"),
    ],
)
def test_lookup_errors(ref: str, message: str) -> None:
    with pytest.raises(PipelineNotFoundError, match=message) as err:
        load_pipeline(ref)
    assert err.value.fix


def test_parse_params() -> None:
    assert parse_params(["a=1", "b=x", "c=[1, 2]", "d=", "e=a=b", "f=true"]) == {
        "a": 1,
        "b": "x",
        "c": [1, 2],
        "d": "",
        "e": "a=b",
        "f": True,
    }
    with pytest.raises(PipelineDefinitionError, match="KEY=VALUE"):
        parse_params(["novalue"])


def test_config_section_and_store(project_dir: Path, tmp_path: Path) -> None:
    project = load_project(project_dir)
    assert project.config.pipelines == PipelinesConfig()
    assert store_for_project(project).url == str(project_dir / ".noria" / "artifacts")
    # Once NoriaConfig carries a `pipelines` section, it is honoured.
    config = SimpleNamespace(
        pipelines=PipelinesConfig(store=str(tmp_path / "elsewhere")), storage=project.config.storage
    )
    other = SimpleNamespace(config=config, path=project.path, root=project.root)
    assert store_for_project(other).url == str(tmp_path / "elsewhere")  # type: ignore[arg-type]
    with pytest.raises(Exception, match="extra"):
        PipelinesConfig.model_validate({"stor": "x"})


def test_cli_run_show_list(project_dir: Path, counter: Path) -> None:
    result = invoke(project_dir, "run", "pipelines_flows:numbers", "--param", "rows=10", "--run-id", "c1")
    assert result.exit_code == 0, result.output
    assert "run c1 of numbers: 5 ran" in result.output
    assert "source" in result.output and "done" in result.output  # the progress lines (stderr)
    again = invoke(project_dir, "run", "pipelines_flows:numbers", "--param", "rows=10", "--json", "-q")
    assert again.exit_code == 0, again.output
    payload = json.loads(again.stdout)
    assert {s["status"] for s in payload["steps"].values()} == {"cached"}
    forced = invoke(project_dir, "run", "pipelines_flows:numbers", "--param", "rows=10", "--no-cache", "-q")
    assert "5 ran" in forced.output

    shown = invoke(project_dir, "show", "pipelines_flows:numbers")
    assert shown.exit_code == 0, shown.output
    assert "scaled: inputs [source <- source]  params [factor]  outputs [scaled]" in shown.output
    assert "scaled -> totals  (scaled)" in shown.output
    shown_json = json.loads(invoke(project_dir, "show", "pipelines_flows:numbers", "--json").stdout)
    assert [s["name"] for s in shown_json["steps"]] == ["source", "scaled", "totals", "size", "report"]

    register_pipeline("listed-test", flows.numbers)
    listed = invoke(project_dir, "list")
    assert listed.exit_code == 0
    assert "listed-test  registered in code" in listed.output.splitlines()
    assert any(line.startswith("training ") and "(built in)" in line for line in listed.output.splitlines())


def test_cli_errors_map_to_exit_codes(project_dir: Path) -> None:
    bad_param = invoke(project_dir, "run", "pipelines_flows:numbers", "--param", "nope=1")
    assert bad_param.exit_code == 3 and "has no parameter 'nope'" in bad_param.output
    missing = invoke(project_dir, "run", "no-such-pipeline")
    assert missing.exit_code == 5 and "no pipeline named" in missing.output
