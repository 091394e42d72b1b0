"""The Mage project written by export_mage, read back without Mage (tests/integration runs it with `mage run`)."""

from __future__ import annotations

import ast
from pathlib import Path

import orch_testproject as tp
import yaml

from noria.config import load_project
from noria.pipelines.orchestrators import OrchestratorsConfig, export_mage


def test_blocks_follow_the_graph_and_call_the_step_command(tmp_path: Path) -> None:
    project = load_project(tp.make_project(tmp_path / "proj"), environ={})
    config = OrchestratorsConfig(executable="/opt/noria", env={"A": "1"}, retries=1, schedule="@yearly")
    folder = export_mage(project, tp.REF, tmp_path / "mage", params={"count": 9}, config=config)
    assert folder == tmp_path / "mage" / "pipelines" / "orchtest_diamond"
    meta = yaml.safe_load((folder / "metadata.yaml").read_text())
    assert meta["uuid"] == "orchtest_diamond" and meta["type"] == "python"
    assert meta["variables"] == {"count": 9, "title": 'it\'s a "report" & more'}
    blocks = {b["uuid"]: b for b in meta["blocks"]}
    assert list(blocks) == ["diamond_noria_run"] + [f"diamond_{s}" for s in tp.STEPS]
    edges = {
        (up.removeprefix("diamond_"), b.removeprefix("diamond_")) for b in blocks for up in blocks[b]["upstream_blocks"]
    }
    assert edges == tp.EDGES | {("noria_run", "numbers")}
    for uuid, block in blocks.items():
        assert block["type"] == "custom" and block["language"] == "python"
        assert sorted(block["downstream_blocks"]) == sorted(b for b in blocks if uuid in blocks[b]["upstream_blocks"])
        source = (tmp_path / "mage" / "custom" / f"{uuid}.py").read_text()
        module = ast.parse(source)
        assigned = {
            n.targets[0].id: ast.literal_eval(n.value)
            for n in module.body
            if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)
        }
        if uuid == "diamond_noria_run":
            assert "noria_run_id" in source and "pipeline_run_id" in source
            continue
        assert block["retry_config"] == {"retries": 1, "delay": 300}
        assert assigned == {
            "NORIA": ["/opt/noria", "--project", str(project.root), "--profile", "local"],
            "PIPELINE": tp.REF,
            "STEP": uuid.removeprefix("diamond_"),
            "PARAMS": ["count", "title"],
            "ENV": {"A": "1"},
        }
    triggers = yaml.safe_load((folder / "triggers.yaml").read_text())["triggers"]
    assert [(t["schedule_type"], t["schedule_interval"], t["status"]) for t in triggers] == [
        ("time", "0 0 1 1 *", "active")
    ]
    project_meta = yaml.safe_load((tmp_path / "mage" / "metadata.yaml").read_text())
    assert project_meta["help_improve_mage"] is False  # no usage statistics leave the machine


def test_export_updates_an_existing_project_in_place(tmp_path: Path) -> None:
    project = load_project(tp.make_project(tmp_path / "proj"), environ={})
    mage = tmp_path / "mage"
    mage.mkdir()
    (mage / "metadata.yaml").write_text("project_type: standalone\nvariables_dir: /data/mage\n")
    export_mage(project, tp.REF, mage, config=OrchestratorsConfig(schedule="@daily"))
    folder = export_mage(project, tp.REF, mage, params={"count": 2})
    assert (mage / "metadata.yaml").read_text() == "project_type: standalone\nvariables_dir: /data/mage\n"
    assert not (folder / "triggers.yaml").exists()  # no schedule any more
    assert yaml.safe_load((folder / "metadata.yaml").read_text())["variables"]["count"] == 2
