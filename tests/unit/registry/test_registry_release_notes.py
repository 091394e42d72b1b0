"""Release notes on the version that becomes @champion, on a real MLflow registry (SQLite store).

Every way the champion moves writes them: the gate, a forced promotion, the CLI (`noria promote`)
and a rollback (the console's promotion: tests/unit/console/test_console.py); a version the gate
keeps out gets none. The note is the
version's tag ``noria.release_notes`` and its MLflow description, read back through a fresh client.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from registry_helpers import evaluation, git
from test_registry_cli import run

from noria import __version__
from noria.config import Project
from noria.registry import (
    GateConfig,
    ModelVersionInfo,
    format_lineage,
    lineage_of,
    promote,
    promote_if_better,
    rollback,
)
from noria.registry.mlflow_client import get_client
from noria.registry.records import current_actor

NAME = "flight-delay"
GATE = GateConfig(min_delta=0.01, max_slice_drop=0.05)
AT = re.compile(r" at \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00")


def stored(project: Project, version: int) -> tuple[str, str]:
    """The note tag and the description of a version, as a new client reads them."""
    mv = get_client(project).get_model_version(NAME, str(version))
    return (mv.tags or {}).get("noria.release_notes", ""), mv.description or ""


def test_the_gate_writes_what_from_where_why_who_and_when_on_the_new_champion(
    project: Project, registered: Callable[..., ModelVersionInfo]
) -> None:
    git(project.root, "init", "-q", "-b", "main")
    git(project.root, "add", "noria.yaml")
    git(project.root, "commit", "-q", "-m", "init")
    commit = git(project.root, "rev-parse", "HEAD")
    v1, v2, v3 = registered(), registered(), registered()
    promote_if_better(project, NAME, v1.version, evaluation(0.70), gate=GATE, note="training pipeline")
    first, _ = stored(project, 1)
    assert first.startswith(f"Promoted {NAME} version 1 to @champion through the gate, by {current_actor()} at ")
    assert "(training pipeline)." in first.splitlines()[0]
    assert "- Gate decision: passed: no champion yet; roc_auc 0.7000; behavioural checks passed" in first
    assert "- Previous champion: none (first champion)" in first

    decision = promote_if_better(project, NAME, v2.version, evaluation(0.72), gate=GATE)
    assert decision.promoted
    note, description = stored(project, 2)
    assert description == note
    lines = note.splitlines()
    assert AT.search(lines[0]) and decision.at in lines[0] and f"by {decision.by}" in lines[0]
    assert lines[1] == (
        "- Gate decision: passed: vs champion version 1: roc_auc 0.7200 vs champion 0.7000: improvement +0.0200 "
        "(>= min_delta 0.01; higher is better); behavioural checks passed"
    )
    assert lines[2] == "- Checks: prediction_range ok; invariance ok; same_holdout ok; beats_champion ok; slices ok"
    assert lines[3] == "- Holdout: log_loss 0.5000, roc_auc 0.7200 on snap1:2013-07..2013-12"
    assert lines[4] == "- Previous champion: version 1"
    assert lines[5] == f"- Run: {v2.run_id}"
    assert lines[6] == "- Data snapshot: snap1; features: flights_v1 (definition abc123)"
    # .noria/ (the MLflow store) is untracked in this repository, so the run saw a dirty tree
    assert lines[7] == f"- Code: git {commit} (uncommitted changes); noria {__version__}"
    assert stored(project, 1)[0] == first  # the former champion keeps its own note

    kept_out = promote_if_better(project, NAME, v3.version, evaluation(0.721), gate=GATE)
    assert not kept_out.promoted and stored(project, 3) == ("", "")

    # `noria lineage` and `noria models list --json` show it.
    assert "  release notes\n    Promoted flight-delay version 2" in format_lineage(lineage_of(project, NAME))
    code, out, _ = run(project, "models", "list", NAME, "--json")
    versions = {v["version"]: v for v in json.loads(out)[0]["versions"]}
    assert code == 0 and versions[2]["description"] == note and versions[2]["tags"]["noria.release_notes"] == note


def test_forced_cli_and_rollback_write_notes_and_keep_what_a_person_wrote(
    project: Project, registered: Callable[..., ModelVersionInfo]
) -> None:
    v1, v2 = registered(), registered()
    client = get_client(project)
    client.update_model_version(NAME, str(v1.version), description="Trained by Ada on the spring data.")
    code, _, _ = run(project, "promote", NAME, "1", "--force", "--reason", "first model (INC-7)")
    assert code == 0
    note, description = stored(project, 1)
    assert note.startswith(f"Promoted {NAME} version 1 to @champion, forced (gate skipped), by ")
    assert "- Reason: first model (INC-7)" in note and "- Previous champion: none (first champion)" in note
    assert f"- Run: {v1.run_id}" in note and "- Data snapshot: snap1;" in note
    assert "- Code: git (not recorded); noria " in note  # the project is not in git: said, not invented
    assert description == "Trained by Ada on the spring data.\n\n" + note

    promote(project, NAME, v2.version, force=True, reason="better on JFK")
    assert "- Reason: better on JFK" in stored(project, 2)[0]
    assert "- Previous champion: version 1" in stored(project, 2)[0]

    rollback(project, NAME, "bad canary")
    back, description = stored(project, 1)
    assert back.startswith(f"Rolled {NAME} @champion back to version 1, by ")
    assert "- Reason: bad canary" in back and "- Previous champion: version 2" in back
    # The person's text stays once; only Noria's earlier note was replaced.
    assert description == "Trained by Ada on the spring data.\n\n" + back
    assert description.count("Trained by Ada") == 1 and "first model (INC-7)" not in description
