from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest
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
