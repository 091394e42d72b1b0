from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest
from test_card_docs import GOAL, RISK, kit_project
from training_flights_frame import LABEL
from training_flights_frame import TEST_CATEGORICAL as CATS
from training_flights_frame import TEST_FEATURES as FEATURES

from noria.training import (
    Evaluation,
    Split,
    TrainedModel,
    evaluate,
    feature_importance,
    fit_baselines,
    model_info,
    slice_specs,
    train,
    write_model_card,
)
from noria.training.card_docs import read_card_docs

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained(split: Split) -> tuple[TrainedModel, Evaluation]:
    model = train(split, FEATURES, CATS, None, max_rounds=40, early_stopping_rounds=10)
    baselines = fit_baselines(split, ["majority_rate", "logistic_regression"], FEATURES, CATS)
    ev = evaluate(
        model, split.test, LABEL, slices=slice_specs(["origin", "carrier"], "sched_hour"),
        min_slice_rows=50, baselines=baselines,
    )  # fmt: skip
    return model, ev


def test_card_files_and_embedded_plots(trained: tuple[TrainedModel, Evaluation], split: Split, tmp_path: Path) -> None:
    model, ev = trained
    info = model_info(model, split, name="flight-delay", version=3, limitations=["No cancellations predicted."])
    lineage = {"snapshot": "2013-h1-abc123", "git_commit": "0123abc", "features": {"view": "flight_context"}}
    md, page = write_model_card(tmp_path, info, ev, feature_importance(model), lineage)
    assert md == tmp_path / "model_card.md" and page == tmp_path / "model_card.html"

    html = page.read_text()
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 4
    assert all(base64.b64decode(data).startswith(PNG) for data in images)
    assert 'src="http' not in html and "<script" not in html  # self-contained, nothing fetched

    text = md.read_text()
    linked = re.findall(r"!\[[^\]]*\]\((model_card_files/[a-z]+\.png)\)", text)
    assert sorted(linked) == sorted(f"model_card_files/{n}.png" for n in ("roc", "calibration", "slices", "importance"))
    assert all((tmp_path / link).read_bytes().startswith(PNG) for link in linked)
    for section in ("Intended use", "Data snapshot", "Features", "Metrics vs baselines", "Slices", "Limits"):
        assert f"## {section}" in text and section in html
    assert "# Model card: flight-delay v3" in text
    assert "2013-h1-abc123" in text and "logistic_regression" in text and "No cancellations predicted." in text
    assert f"{ev.metrics['roc_auc']:.4f}" in text
    assert f"train {split.dropped_unlabelled['train']}" in text  # dropped (cancelled) rows are reported
    assert not list(tmp_path.rglob("*.tmp"))


def test_html_escapes_user_text(trained: tuple[TrainedModel, Evaluation], split: Split, tmp_path: Path) -> None:
    model, ev = trained
    info = model_info(model, split, name="m", intended_use="<script>alert(1)</script>")
    _, page = write_model_card(tmp_path, info, ev, feature_importance(model), {"note": "a|b <b>"})
    html = page.read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;" in html


def test_card_without_baselines_or_measurable_slices(split: Split, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    scores = rng.random(len(split.test))
    model = train(split, FEATURES, CATS, None, max_rounds=5, early_stopping_rounds=2)
    ev = evaluate(scores, split.test, LABEL, slices={"origin": "origin"}, min_slice_rows=10**6)
    md, page = write_model_card(tmp_path, model_info(model, split, name="m"), ev, feature_importance(model), {})
    assert page.read_text().count('<img src="data:image/png;base64,') == 4
    assert "not recorded" in md.read_text()


def _section(text: str, title: str) -> str:
    """The Markdown under ``## title`` up to the next heading."""
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_card_quotes_the_project_pages_with_their_sign_offs(
    trained: tuple[TrainedModel, Evaluation], split: Split, tmp_path: Path
) -> None:
    model, ev = trained
    docs = tmp_path / "project" / "docs"
    docs.mkdir(parents=True)
    (docs / "goals.md").write_text(GOAL)
    (docs / "risk.md").write_text(RISK)
    (docs / "explanations.md").write_text(
        "# Explanations\n\n## Who reads the explanations\n\n- Dispatchers: move a backup driver.\n"
        "- The hub manager: plans the next day's shifts.\n\n## Review with the users\n\n"
        "Reviewed by Ana Lima (head of operations) on 2026-04-01.\n"
    )
    info = model_info(model, split, name="m", docs=read_card_docs(tmp_path / "project"))
    md, page = write_model_card(tmp_path / "card", info, ev, feature_importance(model), {})
    text, html = md.read_text(), page.read_text()

    headings = re.findall(r"(?m)^## (.+)$", text)
    assert headings[:2] == ["Intended use", "Users and decisions"] and headings[-1] == "Risks and mitigations"
    intended = _section(text, "Intended use")
    assert "Dispatchers decide each morning which deliveries get a backup driver;" in intended
    assert (
        'From docs/goals.md, section "Business goal"; signed off: Agreed by Ana Lima (head of operations) on '
        "2026-03-01; Agreed by Bo Chen (model owner) on 2026-03-02." in intended
    )
    assert "Rank rows by their risk" not in text  # the page replaces the default
    users = _section(text, "Users and decisions")
    assert "- Dispatchers: move a backup driver." in users and "- The hub manager: plans" in users
    assert "signed off: Reviewed by Ana Lima (head of operations) on 2026-04-01." in users
    risks = _section(text, "Risks and mitigations")
    assert "| risk | likelihood | impact | mitigation |" in risks
    assert "| a late delivery is missed | high | low | a dispatcher reviews the top 5 % by hand |" in risks
    assert "Eva Roth (risk) on 2026-03-04." in risks
    assert "<td>a dispatcher reviews the top 5 % by hand</td>" in html and "Bo Chen (model owner)" in html
    assert "TODO" not in text  # the goals page's unfilled KPI section is not quoted


def test_card_says_when_a_page_is_not_filled_in_and_shows_the_default(
    trained: tuple[TrainedModel, Evaluation], split: Split, tmp_path: Path
) -> None:
    model, ev = trained
    root = kit_project(tmp_path, "flights")  # the pages `noria init` writes, every TODO still in place
    (root / "docs" / "explanations.md").unlink()
    info = model_info(model, split, name="m", docs=read_card_docs(root))
    md, page = write_model_card(tmp_path / "card", info, ev, feature_importance(model), {})
    text, html = md.read_text(), page.read_text()
    assert (
        'docs/goals.md is not filled in yet (its section "Business goal" still holds a placeholder): '
        "the default below applies." in _section(text, "Intended use")
    )
    assert "Rank rows by their risk of" in _section(text, "Intended use")
    assert "docs/explanations.md is not written yet: the default below applies." in text
    assert "Whoever calls the service" in _section(text, "Users and decisions")
    risks = _section(text, "Risks and mitigations")
    assert "docs/risk.md is not filled in yet" in risks and "the promotion gate" in risks
    assert "TODO" not in text and "TODO" not in html  # a placeholder is never shown as content

    # no project folder at all (a library call): the card says so too
    bare = write_model_card(tmp_path / "bare", model_info(model, split, name="m"), ev, feature_importance(model), {})
    assert "No project folder was given, so docs/risk.md was not read" in bare[0].read_text()
