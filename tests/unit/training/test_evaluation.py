from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from noria.errors import DataError
from noria.training import Baseline, evaluate, slice_specs


@pytest.fixture
def scored() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 1200
    y = rng.integers(0, 2, n)
    score = np.clip(0.5 * y + rng.random(n) * 0.6, 0, 1)
    origin = rng.choice(["EWR", "JFK", "LGA"], n)
    carrier = np.where(np.arange(n) < 30, "XX", rng.choice(["AA", "UA"], n))  # XX: too small
    hour = rng.integers(5, 23, n)
    frame = pd.DataFrame({"y": y, "score": score, "origin": origin, "carrier": carrier, "sched_hour": hour})
    frame.loc[frame["origin"] == "LGA", "y"] = np.where(frame.loc[frame["origin"] == "LGA", "score"] > 2, 1, 0)
    return frame


def test_overall_and_slices(scored: pd.DataFrame) -> None:
    ev = evaluate(
        scored["score"].to_numpy(), scored, "y",
        slices=slice_specs(["origin", "carrier"], hour_band_column="sched_hour"), min_slice_rows=100,
    )  # fmt: skip
    assert ev.metrics["roc_auc"] == pytest.approx(roc_auc_score(scored["y"], scored["score"]))
    by = {(s.slice, s.value): s for s in ev.slices}
    ewr = scored[scored["origin"] == "EWR"]
    assert by[("origin", "EWR")].metrics is not None
    assert by[("origin", "EWR")].metrics["roc_auc"] == pytest.approx(roc_auc_score(ewr["y"], ewr["score"]))
    assert by[("origin", "LGA")].status == "skipped" and by[("origin", "LGA")].reason == "only one class"
    assert by[("carrier", "XX")].status == "skipped" and "fewer than 100 rows" in by[("carrier", "XX")].reason
    assert by[("carrier", "XX")].rows == 30
    bands = {s.value for s in ev.slices if s.slice == "hour_band"}
    assert bands <= {"00-05 night", "06-09 morning", "10-13 midday", "14-17 afternoon", "18-23 evening"}
    assert sum(s.rows for s in ev.slices if s.slice == "hour_band") == len(scored)
    table = ev.slice_table()
    assert list(table.columns[:6]) == ["slice", "value", "rows", "positives", "status", "reason"]


def test_missing_slice_values_and_duplicate_index(scored: pd.DataFrame) -> None:
    frame = scored.assign(origin=scored["origin"].where(scored["origin"] != "JFK", None))
    frame.index = [0] * len(frame)
    ev = evaluate(frame["score"], frame, "y", slices={"origin": "origin"}, min_slice_rows=10)
    assert {s.value for s in ev.slices} == {"EWR", "LGA", "(missing)"}


def test_to_dict_is_json_and_flat_metrics(scored: pd.DataFrame) -> None:
    base = Baseline("majority_rate", "constant", lambda f: np.full(len(f), 0.4))
    ev = evaluate(scored["score"], scored, "y", slices={"origin": "origin"}, baselines=[base], min_slice_rows=10)
    payload = json.loads(json.dumps(ev.to_dict(), allow_nan=False))
    assert payload["metrics"]["roc_auc"] == pytest.approx(ev.metrics["roc_auc"])
    assert payload["baselines"][0]["metrics"]["roc_auc"] == 0.5
    assert len(payload["calibration"]["bins"]) <= 10
    flat = ev.flat_metrics()
    assert flat["test_roc_auc"] == pytest.approx(ev.metrics["roc_auc"])
    assert flat["test_baseline_majority_rate_roc_auc"] == 0.5
    assert "test_slice_origin_EWR_roc_auc" in flat and "test_slice_origin_LGA_roc_auc" not in flat
    assert all(isinstance(v, float) for v in flat.values())


def test_errors_name_the_problem(scored: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="slice column 'tailnum'"):
        evaluate(scored["score"], scored, "y", slices={"plane": "tailnum"})
    with pytest.raises(DataError, match="one value per row"):
        evaluate(scored["score"], scored, "y", slices={"odd": lambda f: f["origin"].head(3)})
    with pytest.raises(DataError, match="only one class"):
        evaluate(scored["score"], scored.assign(y=0), "y")
    with pytest.raises(DataError, match="labels but"):
        evaluate(scored["score"][:10], scored, "y")
