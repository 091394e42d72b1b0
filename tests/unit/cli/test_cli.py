"""The CLI through Typer's runner: exit codes, one-line errors, --debug, JSON output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from noria.cli import app

runner = CliRunner()


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("init", "demo", "data"):
        assert command in result.output


def test_version() -> None:
    from noria import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"noria {__version__}"


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys; from noria.cli import main\n"
        "try: main(['--help'])\nexcept SystemExit: pass\n"
        "heavy = [m for m in ('pandas', 'dvc', 'mlflow', 'feast', 'pandera', 'pyarrow', 'lightgbm') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_user_error_is_one_line_with_fix_and_exit_code(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--project", str(tmp_path), "data", "list"])
    assert result.exit_code == 3
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: no noria.yaml in") and "-- fix: " in lines[0]
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "noria", "--debug", "--project", str(tmp_path), "data", "list"],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "Traceback" in done.stderr and "ProjectNotFoundError" in done.stderr


def test_config_error_exit_code(small_project: Path) -> None:
    text = (small_project / "noria.yaml").read_text().replace("project: small", "project: small\nbogus: 1")
    (small_project / "noria.yaml").write_text(text)
    result = runner.invoke(app, ["--project", str(small_project), "data", "list"])
    assert result.exit_code == 3
    assert "noria.yaml:2: bogus: unknown key" in result.output


def test_ingest_list_show_roundtrip(small_project: Path) -> None:
    base = ["--project", str(small_project)]
    result = runner.invoke(app, [*base, "data", "ingest", "--from", "2013-01", "--to", "2013-02"])
    assert result.exit_code == 0, result.output
    assert "rows read 12 = accepted 12 + quarantined 0" in result.output
    listed = json.loads(runner.invoke(app, [*base, "data", "list", "--json"]).output)
    assert len(listed) == 1
    snapshot_id = listed[0]["id"]
    shown = runner.invoke(app, [*base, "data", "show", snapshot_id[:6], "--json"])
    assert json.loads(shown.output)["id"] == snapshot_id
    table = runner.invoke(app, [*base, "data", "show", snapshot_id[:6]])
    assert snapshot_id in table.output and "flights" in table.output


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["data", "show", "abcdef"], 5, "no data snapshot yet"),
        (["data", "ingest", "--from", "2013-13"], 3, "is not a month"),
        (["data", "ingest", "--from", "2020-01", "--to", "2020-02"], 4, "no rows between"),
    ],
)
def test_error_exit_codes(small_project: Path, args: list[str], code: int, needle: str) -> None:
    result = runner.invoke(app, ["--project", str(small_project), *args])
    assert result.exit_code == code, result.output
    assert needle in result.output


def test_usage_error_is_click_exit_2() -> None:
    result = runner.invoke(app, ["data", "ingest", "--nope"])
    assert result.exit_code == 2


def test_init_creates_a_git_project(tmp_path: Path) -> None:
    target = tmp_path / "p"
    result = runner.invoke(app, ["init", str(target), "--name", "my-flights"])
    assert result.exit_code == 0, result.output
    assert (target / "noria.yaml").read_text().count("project: my-flights") == 1
    assert (target / ".dvc" / "config").is_file()
    log = subprocess.run(["git", "-C", str(target), "log", "--oneline"], capture_output=True, text=True).stdout
    assert "noria init" in log
    status = subprocess.run(["git", "-C", str(target), "status", "--porcelain"], capture_output=True, text=True).stdout
    assert status == ""
    again = runner.invoke(app, ["init", str(target)])
    assert again.exit_code == 3 and "exists and is not empty" in again.output
    bad = runner.invoke(app, ["init", str(tmp_path / "q"), "--name", "Bad Name"])
    assert bad.exit_code == 3 and "project" in bad.output


def test_cli_reference_is_current() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/cli_docs.py", "--check"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[3],
    )
    assert done.returncode == 0, done.stderr


def test_configuration_reference_is_current_and_every_key_is_explained() -> None:
    root = Path(__file__).parents[3]
    done = subprocess.run(
        [sys.executable, "scripts/config_docs.py", "--check"], capture_output=True, text=True, cwd=root
    )
    assert done.returncode == 0, done.stderr
    text = (root / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) > 200  # every key of noria.yaml and features.yaml
    unexplained = [row.split("|")[1].strip() for row in rows if row.rstrip().endswith("|  |")]
    assert not unexplained, f"keys without a meaning (comment them where the model defines them): {unexplained}"
