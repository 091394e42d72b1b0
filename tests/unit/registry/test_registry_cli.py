"""`noria lineage`, `noria models list`, `noria promote`, `noria rollback`, `noria ui` end to end."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import pytest
import typer
from registry_helpers import evaluation, git
from typer.testing import CliRunner

from noria.cli import _NoriaGroup, _root
from noria.cli import models as models_cli
from noria.config import Project
from noria.registry import ModelVersionInfo, format_lineage, lineage_of, mlflow_ui_command, promote_if_better

runner = CliRunner()


def cli() -> typer.Typer:
    """The root app with this package's commands, registered as the lead registers them."""
    app = typer.Typer(cls=_NoriaGroup, pretty_exceptions_enable=False, rich_markup_mode=None)
    app.callback()(_root)
    app.add_typer(models_cli.app, name="models")
    for command in (models_cli.promote, models_cli.rollback, models_cli.lineage, models_cli.ui):
        app.command(command.__name__)(command)
    return app


def run(project: Project, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli(), ["--project", str(project.root), *args])
    return result.exit_code, result.stdout, result.stderr


def test_lineage_walks_from_model_to_commit_env_features_and_data(
    project: Project, registered: Callable[..., ModelVersionInfo]
) -> None:
    git(project.root, "init", "-q", "-b", "main")
    git(project.root, "add", "noria.yaml")
    git(project.root, "commit", "-q", "-m", "init")
    commit = git(project.root, "rev-parse", "HEAD")
    info = registered()
    promote_if_better(project, "flight-delay", info.version, evaluation(0.7))
    report = lineage_of(project, "flight-delay@champion")
    assert report.model.version == 1 and report.run_id == info.run_id
    assert report.lineage.git_commit == commit
    assert report.lineage.data_snapshot == "snap1"
    assert report.lineage.feature_service == "flights_v1" and report.lineage.feature_definition_hash == "abc123"
    text = format_lineage(report)
    for needle in (commit, "snap1", "flights_v1", "abc123", "@champion", info.run_id, "uv.lock", "sqlite"):
        assert needle in text, needle

    code, out, _ = run(project, "lineage", "flight-delay/1", "--json")
    assert code == 0
    payload = json.loads(out)
    assert payload["model"]["version"] == 1 and payload["run_id"] == info.run_id
    assert payload["lineage"]["git_commit"] == commit and payload["lineage"]["data_snapshot"] == "snap1"
    code, out, _ = run(project, "lineage", "flight-delay")
    assert code == 0 and "snapshot snap1" in out


def test_cli_models_promote_rollback(project: Project, registered: Callable[..., ModelVersionInfo]) -> None:
    code, out, _ = run(project, "models", "list")
    assert code == 0 and "no registered models" in out
    registered()
    registered()
    code, out, _ = run(project, "promote", "flight-delay", "1", "--force", "--reason", "first")
    assert code == 0 and "version 1 is now @champion" in out
    code, out, err = run(project, "promote", "flight-delay", "2")
    assert code == 4 and "no recorded holdout evaluation" in err and "--force" in err
    code, out, _ = run(project, "promote", "flight-delay", "2", "--force", "--reason", "second")
    assert code == 0
    code, out, _ = run(project, "models", "list", "--json")
    listed = json.loads(out)
    assert listed[0]["aliases"] == {"champion": 2} and len(listed[0]["versions"]) == 2
    code, out, _ = run(project, "models", "list", "flight-delay")
    assert code == 0 and "@champion" in out
    code, out, err = run(project, "rollback", "flight-delay")
    assert code != 0 and "--reason" in err
    code, out, _ = run(project, "rollback", "flight-delay", "--reason", "bad canary")
    assert code == 0 and "version 2 -> 1" in out and "bad canary" in out


@pytest.mark.parametrize(
    ("args", "exit_code", "message"),
    [
        (["lineage", "../../etc/passwd"], 4, "'..'"),
        (["lineage", "nope/1"], 5, "no registered model named 'nope'"),
        (["lineage", "flight-delay/7"], 5, "no version 7"),
        (["lineage", "flight-delay@staging"], 5, "no @staging alias"),
        (["promote", "a/b", "1"], 4, "path separator"),
        (["promote", "flight-delay", "x"], 4, "not a positive integer"),
        (["models", "list", "no-such"], 5, "no registered model named 'no-such'"),
    ],
)
def test_bad_input_fails_early_with_a_clear_message(
    project: Project, registered: Callable[..., ModelVersionInfo], args: list[str], exit_code: int, message: str
) -> None:
    registered()
    code, _, err = run(project, *args)
    assert code == exit_code, err
    assert message in err and err.startswith("error: ") and "fix:" in err


def test_ui_command_serves_the_project_store(project: Project) -> None:
    command = mlflow_ui_command(project, port=5055)
    assert command.url == "http://127.0.0.1:5055" and not command.remote
    assert command.argv[:4] == [sys.executable, "-m", "mlflow", "server"]
    assert f"sqlite:///{project.root.resolve()}/.noria/mlflow.db" in command.argv
    assert (project.root.resolve() / ".noria" / "mlartifacts").as_uri() in command.argv
    remote = project.config.model_copy(
        update={"tracking": project.config.tracking.model_copy(update={"uri": "http://mlflow:5000"})}
    )
    far = mlflow_ui_command(type(project)(project.root, remote), port=1)
    assert far.remote and far.url == "http://mlflow:5000" and far.argv == []


@pytest.mark.slow
def test_ui_server_really_serves_the_project_store(project: Project) -> None:
    import socket
    import subprocess
    import time

    import httpx

    from noria.registry.mlflow_client import ensure_experiment, get_client
    from noria.registry.ui import stop_process_group, ui_environment

    ensure_experiment(get_client(project), project)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = mlflow_ui_command(project, port=port)
    server = subprocess.Popen(command.argv, env=ui_environment(), start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{command.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        found = httpx.get(
            f"{command.url}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "regtest"}, timeout=30
        )
        assert found.status_code == 200 and found.json()["experiment"]["name"] == "regtest"
    finally:
        stop_process_group(server)
    assert server.poll() is not None
