"""The orchestrator contract: `noria pipeline run NAME --step S --run-id ID` in fresh processes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pipelines_flows as flows
import pytest
from typer.testing import CliRunner

from noria.cli import app as root_app
from noria.cli.pipeline import app as pipeline_app
from noria.config import load_project
from noria.pipelines import ArtifactNotFoundError, LocalArtifactStore, run_pipeline, run_step, store_for_project

# Until the lead registers the sub-app in noria.cli, attach it here (a no-op once registered).
CLI = """
import sys
from noria.cli import app, main
from noria.cli.pipeline import app as pipeline_app
if not any(g.name == "pipeline" for g in app.registered_groups):
    app.add_typer(pipeline_app, name="pipeline")
main(sys.argv[1:])
"""
if not any(g.name == "pipeline" for g in root_app.registered_groups):
    root_app.add_typer(pipeline_app, name="pipeline")

REF = "pipelines_flows:numbers"


def cli(python: str, env: dict[str, str], project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [python, "-c", CLI, "--project", str(project), "pipeline", "run", REF, *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_each_step_in_a_fresh_process(python: str, fresh_env: dict[str, str], project_dir: Path, counter: Path) -> None:
    project = load_project(project_dir)
    store = store_for_project(project)
    assert store.url == str(project_dir / ".noria" / "artifacts")
    assert run_step(flows.numbers, "source", store, run_id="dag-1", params={"factor": 3}).status == "ran"
    # The next task runs in another process that shares only the store and the run id.
    done = cli(python, fresh_env, project_dir, "--step", "scaled", "--run-id", "dag-1", "--param", "factor=3", "--json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["run_id"] == "dag-1" and payload["params"]["factor"] == 3
    assert payload["steps"]["scaled"]["status"] == "ran"
    assert flows.counts(counter) == {"source": 1, "scaled": 1}

    # The remaining steps as separate calls of the same contract, then the whole run resumes.
    for name in ("size", "totals", "report"):
        assert run_step(flows.numbers, name, store, run_id="dag-1", params={"factor": 3}).status == "ran"
    whole = run_pipeline(flows.numbers, store, run_id="dag-1", params={"factor": 3}, progress=False)
    assert {r.status for r in whole.steps.values()} == {"resumed"}
    assert flows.counts(counter) == dict.fromkeys(["source", "scaled", "size", "totals", "report"], 1)
    assert whole.load("report") == "report: 100 rows, totals {'0': 5049.0, '1': 4851.0, '2': 4950.0}"
    # An orchestrator retry of a finished task is a no-op.
    assert run_step(flows.numbers, "totals", store, run_id="dag-1", params={"factor": 3}).status == "resumed"


def test_missing_upstream_names_the_step_to_run_first(project_dir: Path, counter: Path) -> None:
    result = CliRunner().invoke(
        root_app, ["--project", str(project_dir), "pipeline", "run", REF, "--step", "scaled", "--run-id", "r9"]
    )
    assert result.exit_code == ArtifactNotFoundError.exit_code == 5
    assert "needs 'source' from step 'source'" in result.output
    assert "noria pipeline run numbers --step source --run-id r9" in result.output
    assert not counter.joinpath("scaled").exists()


def test_upstream_found_through_the_cache(store: LocalArtifactStore, counter: Path) -> None:
    run_pipeline(flows.numbers, store, progress=False)
    # Another run id: no records for it, but upstream results are cached for the same params.
    assert run_step(flows.numbers, "report", store, run_id="other").status == "cached"
    assert run_step(flows.numbers, "report", store, run_id="other2", use_cache=False).status == "ran"
    assert flows.counts(counter)["report"] == 2
    with pytest.raises(ArtifactNotFoundError):
        run_step(flows.numbers, "report", store, run_id="other3", params={"rows": 7})


def test_bad_step_and_run_id(store: LocalArtifactStore) -> None:
    from noria.pipelines import PipelineDefinitionError

    with pytest.raises(PipelineDefinitionError, match="no step 'nope'"):
        run_step(flows.numbers, "nope", store, run_id="r")
    with pytest.raises(PipelineDefinitionError, match="run id '../x' is not valid"):
        run_step(flows.numbers, "source", store, run_id="../x")
    # Airflow's run ids fit.
    assert run_step(flows.numbers, "source", store, run_id="manual__2024-07-01T00:00:00+00:00").status == "ran"
