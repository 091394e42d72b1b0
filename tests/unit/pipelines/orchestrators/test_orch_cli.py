"""`noria airflow render`, `noria kfp compile`, `noria mage export`: thin commands over the library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orch_testproject as tp
import pytest
from typer.testing import CliRunner

from noria.cli import app as root_app
from noria.cli.orchestrate import airflow_app, kfp_app, mage_app

# Until the lead registers the sub-apps in noria.cli, attach them here (a no-op once registered).
for _sub, _name in ((airflow_app, "airflow"), (kfp_app, "kfp"), (mage_app, "mage")):
    if not any(g.name == _name for g in root_app.registered_groups):
        root_app.add_typer(_sub, name=_name)


def invoke(project: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(root_app, ["--project", str(project), *args])
    return result.exit_code, result.output


def test_each_command_writes_its_artifact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tp.make_project(tmp_path / "proj")
    monkeypatch.setenv("NORIA_PIPELINES__STORE", "s3://bucket/noria")  # Kubeflow's pods share an S3 store
    code, out = invoke(project, "airflow", "render", tp.REF, "--out", str(tmp_path / "dags"), "--param", "count=2")
    assert code == 0, out
    assert out.splitlines() == [
        f"wrote {tmp_path / 'dags' / f}"
        for f in ("orchtest_diamond.py", "orchtest_ingest.py", "orchtest_features.py", "orchtest_monitor.py")
    ]
    assert "params={'count': 2," in (tmp_path / "dags" / "orchtest_diamond.py").read_text()

    code, out = invoke(project, "kfp", "compile", tp.REF, "-o", str(tmp_path / "p.yaml"))
    assert code == 0, out
    assert out.strip() == f"wrote {tmp_path / 'p.yaml'}" and "pipeline_job_uuid" in (tmp_path / "p.yaml").read_text()

    code, out = invoke(project, "mage", "export", tp.REF, str(tmp_path / "mage"))
    assert code == 0, out
    assert (tmp_path / "mage" / "pipelines" / "orchtest_diamond" / "metadata.yaml").exists()


def test_errors_exit_with_their_code_and_a_fix(tmp_path: Path) -> None:
    project = tp.make_project(tmp_path / "proj")
    code, out = invoke(project, "airflow", "render", "nope", "--out", str(tmp_path / "dags"))
    assert code == 5 and "no pipeline named 'nope'" in out and "fix:" in out
    code, out = invoke(project, "mage", "export", tp.REF, str(tmp_path / "m"), "--param", "rounds=1")
    assert code == 3 and "no parameter 'rounds'" in out
    assert not (tmp_path / "dags").exists()


def test_help_has_examples_and_the_module_imports_nothing_heavy() -> None:
    for group, command in (("airflow", "render"), ("kfp", "compile"), ("mage", "export")):
        result = CliRunner().invoke(root_app, [group, command, "--help"])
        assert result.exit_code == 0 and "Example:" in result.output
    heavy = ("airflow", "kfp", "kubernetes", "pandas", "noria.pipelines")
    code = f"import noria.cli.orchestrate, sys; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert done.stdout.strip() == "[]"
