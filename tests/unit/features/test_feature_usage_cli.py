"""Feature usage records and the ``noria features`` commands."""

from __future__ import annotations

import json
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from noria.cli._state import State
from noria.cli.features import app
from noria.config import Project
from noria.features.usage import list_usage, record_usage


def test_usage_is_recorded_per_model_version(flights_project: Project) -> None:
    record_usage(flights_project, "flight-delay", 1, "flight_delay", "a" * 64, features=["temp"])
    record_usage(flights_project, "flight-delay", 2, "flight_delay", "b" * 64)
    record_usage(flights_project, "other", "1", "flight_delay", "b" * 64)
    record_usage(flights_project, "flight-delay", 1, "flight_delay", "c" * 64)  # retrained: replaced
    rows = list_usage(flights_project, "flight-delay")
    assert [(r.version, r.definition_hash[0]) for r in rows] == [("2", "b"), ("1", "c")]
    assert len(list_usage(flights_project)) == 3


def run(project: Project, *args: str) -> Any:
    root = typer.Typer()
    root.add_typer(app, name="features")

    @root.callback()
    def _root(ctx: typer.Context) -> None:
        ctx.obj = State(project=project.root)

    return CliRunner().invoke(root, ["features", *args], catch_exceptions=False)


def test_cli_list_and_usage(flights_project: Project) -> None:
    result = run(flights_project, "list", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {"view": "origin_weather", "feature": "temp"}.items() <= next(
        r for r in rows if r["feature"] == "temp"
    ).items()
    assert "no model has recorded" in run(flights_project, "usage").output
    record_usage(flights_project, "flight-delay", 3, "flight_delay", "d" * 64)
    listed = json.loads(run(flights_project, "usage", "--json").stdout)
    assert listed[0]["version"] == "3" and listed[0]["service"] == "flight_delay"


def test_cli_get_looks_up_one_request(built_project: tuple[Project, Any]) -> None:
    from noria.features.online import materialize

    project, snap = built_project
    materialize(project, "2013-01-08T18:00:00Z", snapshot=snap)
    args = [
        "get",
        "--year",
        "2013",
        "--month",
        "1",
        "--day",
        "8",
        "--sched-dep-time",
        "1330",
        "--time-hour",
        "2013-01-08T18:00:00Z",
        "--carrier",
        "UA",
        "--tailnum",
        "N14228",
        "--origin",
        "EWR",
        "--dest",
        "IAH",
        "--distance",
        "1400",
        "--json",
    ]
    result = run(project, *args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["features"]["route"] == "EWR-IAH" and payload["features"]["sched_hour"] == 13
    assert payload["features"]["plane_seats"] == 149
    assert payload["features"]["temp"] is not None and "temp" not in payload["missing"]


@pytest.mark.parametrize("args", [["get", "--carrier"], ["get", "carrier", "UA"]])
def test_cli_get_rejects_malformed_pairs(built_project: tuple[Project, Any], args: list[str]) -> None:
    from noria.errors import ConfigError

    with pytest.raises(ConfigError, match="--COLUMN VALUE"):
        run(built_project[0], *args)
