"""The model card's pages: which sections it quotes, when a page counts as filled, the step's cache key.

The pages are the real ones `noria init` writes (the kit rendered into a copy of each template);
the cache keys are the training pipeline's own, computed by the runner that decides what re-runs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from noria._kit import write_kit
from noria.config import load_project
from noria.pipelines import run_project_pipeline, store_for_project
from noria.pipelines._runner import _Executor
from noria.scaffold import TEMPLATES, template_dir
from noria.training.card_docs import PARTS, read_card_docs
from noria.training.pipeline import training_pipeline

GOAL = """\
# Goals and KPI of demo

## Business goal

Dispatchers decide each morning which deliveries get a backup driver; the model ranks the
day's deliveries by their risk of running late.

## KPI and target

- KPI: TODO the business measure.

## Sign-off

Agreed by Ana Lima (head of operations) on 2026-03-01.
Agreed by Bo Chen (model owner) on 2026-03-02.
"""

RISK = """\
# Model risk assessment of demo

## Risks and mitigations

| risk | likelihood | impact | mitigation |
|---|---|---|---|
| inputs drift away from the training data | medium | high | drift alerts; retraining |
| a late delivery is missed | high | low | a dispatcher reviews the top 5 % by hand |

## Sign-off

Agreed by Bo Chen (model owner) on 2026-03-02, reviewed by Eva Roth (risk) on 2026-03-04.
"""


def kit_project(tmp_path: Path, template: str = "blank") -> Path:
    """A copy of ``template`` with the docs pages `noria init` gives it (no git, no DVC: not needed here)."""
    root = tmp_path / template
    shutil.copytree(template_dir(template), root, ignore=shutil.ignore_patterns("data", ".noria", "__pycache__"))
    write_kit(root, load_project(root), template)
    return root


@pytest.mark.parametrize("template", TEMPLATES)
def test_the_pages_noria_init_writes_are_not_filled_in(tmp_path: Path, template: str) -> None:
    docs = read_card_docs(kit_project(tmp_path, template))
    assert set(docs) == {p.key for p in PARTS}
    for part in PARTS:
        entry = docs[part.key]
        assert entry["state"] == "unfilled", (template, part.key, entry)
        assert entry["page"] == part.page and entry["section"] == part.heading
        assert "TODO" in entry["placeholder"]
        assert "text" not in entry  # a placeholder is never passed on as content


def test_filled_sections_with_their_sign_offs(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "goals.md").write_text(GOAL)
    (tmp_path / "docs" / "risk.md").write_text(RISK)
    docs = read_card_docs(tmp_path)

    goal = docs["intended_use"]
    # the business goal section, not the page's title section (which holds the KPI's TODO)
    assert goal["state"] == "filled" and goal["section"] == "Business goal"
    assert goal["text"].startswith("Dispatchers decide") and "KPI" not in goal["text"]
    assert goal["sign_offs"] == [
        {"line": "Agreed by Ana Lima (head of operations) on 2026-03-01.", "date": "2026-03-01"},
        {"line": "Agreed by Bo Chen (model owner) on 2026-03-02.", "date": "2026-03-02"},
    ]
    risk = docs["risks"]
    assert risk["state"] == "filled" and "a dispatcher reviews the top 5 % by hand" in risk["text"]
    # one line, two people: the date after its last sign-off word (the reading `noria maturity` has)
    assert [s["date"] for s in risk["sign_offs"]] == ["2026-03-04"]
    assert docs["users"] == {
        "page": "docs/explanations.md",
        "section": "Who reads the explanations",
        "state": "missing",
    }


def test_a_page_with_one_placeholder_left_or_no_such_section_is_not_used(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    half = RISK.replace("| high | low |", "| TODO | low |")
    (tmp_path / "docs" / "risk.md").write_text(half)
    (tmp_path / "docs" / "goals.md").write_text("# Goals\n\n## KPI and target\n\nOn-time rate above 95 %.\n")
    (tmp_path / "docs" / "explanations.md").write_text("# Explanations\n\n## Who reads the explanations\n\n")
    docs = read_card_docs(tmp_path)
    assert docs["risks"]["state"] == "unfilled" and docs["risks"]["placeholder"].startswith("| a late delivery")
    assert docs["intended_use"]["state"] == "no_section"
    assert docs["users"]["state"] == "unfilled" and docs["users"]["placeholder"] == "(empty)"


def test_unsigned_page_and_template_sign_off_lines(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    unsigned = GOAL.split("## Sign-off")[0] + "## Sign-off\n\nTODO replace with: Agreed by NAME (ROLE) on 2026-01-01\n"
    (tmp_path / "docs" / "goals.md").write_text(unsigned)
    goal = read_card_docs(tmp_path)["intended_use"]
    assert goal["state"] == "filled" and goal["sign_offs"] == []  # a sign-off still marked TODO is no sign-off


def _card_docs_id(root: Path, run_id: str) -> tuple[str, str]:
    """The ``card_docs`` step's output artifact in the project's store, and ``evaluate``'s cache key with it."""
    project = load_project(root)
    result = run_project_pipeline(project, "training", step="card_docs", run_id=run_id, progress=False)
    step = result.steps["card_docs"]
    assert step.status == "ran"  # never cached: the pages are read on every run
    artifact = step.outputs["card_docs"]
    # evaluate's other inputs held fixed: only the pages' artifact differs between the keys compared
    inputs = {
        "train": "t", "train_rows": "r", "test_rows": "h", "split_info": "s", "tune": "u",
        "training_set_info": "i", "context": "c", "card_docs": artifact,
    }  # fmt: skip
    executor = _Executor(training_pipeline(), store_for_project(project), run_id, {}, use_cache=True)
    return artifact, executor.cache_key("evaluate", inputs)


def test_editing_the_risk_page_changes_the_evaluate_cache_key_and_nothing_else_does(tmp_path: Path) -> None:
    root = kit_project(tmp_path)
    before, key_before = _card_docs_id(root, "docs-1")
    again, key_again = _card_docs_id(root, "docs-2")
    assert (again, key_again) == (before, key_before)  # same pages: evaluate stays cached

    risk = root / "docs" / "risk.md"
    risk.write_text(RISK)
    filled, key_filled = _card_docs_id(root, "docs-3")
    assert filled != before and key_filled != key_before  # the card must be re-rendered

    # A page edit outside the quoted sections (the goals page's KPI, a runbook) changes nothing.
    goals = root / "docs" / "goals.md"
    goals.write_text(goals.read_text().replace("## KPI and target", "## KPI and target\n\nA note on the KPI."))
    elsewhere, key_elsewhere = _card_docs_id(root, "docs-4")
    assert (elsewhere, key_elsewhere) == (filled, key_filled)

    risk.write_text(RISK.replace("by hand", "by hand, twice a day"))
    _, key_edited = _card_docs_id(root, "docs-5")
    assert key_edited not in (key_before, key_filled)
    # the other steps do not read the pages: none of them takes the card_docs artifact
    readers = [n for n, s in training_pipeline().steps.items() if "card_docs" in {p.name for p in s.parameters}]
    assert readers == ["evaluate"]
