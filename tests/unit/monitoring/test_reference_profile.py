"""Building, saving and loading reference profiles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from noria.errors import DataError, NotFoundError
from noria.monitoring import CategoricalProfile, DriftConfig, NumericProfile, ReferenceProfile
from noria.monitoring.profile import SCHEMA_VERSION


def _frame(rows: int = 500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "distance": rng.gamma(2.0, 500.0, rows),
            "hour": rng.integers(5, 23, rows),
            "carrier": rng.choice(["UA", "B6", "EV", "DL"], rows),
            "delayed_before": rng.random(rows) < 0.2,
        }
    )
    frame.loc[::7, "distance"] = np.nan
    frame.loc[::11, "carrier"] = None
    return frame


def test_build_records_counts_bins_and_categories() -> None:
    frame = _frame()
    profile = ReferenceProfile.build(frame, scores=np.linspace(0, 1, 500), importance={"distance": 2.0})
    distance = profile.features["distance"]
    assert isinstance(distance, NumericProfile)
    assert distance.count + distance.missing == 500 and distance.missing == frame["distance"].isna().sum()
    assert distance.bin_counts.sum() == distance.count
    assert distance.edges.shape[0] == 9 and np.all(np.diff(distance.edges) > 0)
    assert distance.ecdf_counts[-1] == distance.count and distance.ecdf_exact
    assert distance.std == pytest.approx(np.nanstd(frame["distance"]))
    carrier = profile.features["carrier"]
    assert isinstance(carrier, CategoricalProfile)
    assert set(carrier.categories) == {"UA", "B6", "EV", "DL"} and carrier.other == 0
    assert list(carrier.counts) == sorted(carrier.counts, reverse=True)
    assert profile.features["delayed_before"].kind == "categorical"  # booleans are categories
    assert profile.features["hour"].kind == "numeric"
    assert profile.score is not None and profile.score.count == 500
    assert profile.rows == 500 and profile.importance == {"distance": 2.0}


def test_top_categories_and_other() -> None:
    frame = pd.DataFrame({"tail": ["a"] * 5 + ["b"] * 3 + ["c", "d"]})
    p = ReferenceProfile.build(frame, config=DriftConfig(max_categories=2)).features["tail"]
    assert isinstance(p, CategoricalProfile)
    assert p.categories == ("a", "b") and p.counts.tolist() == [5, 3] and p.other == 2


def test_forced_categorical_and_constant_and_all_missing_columns() -> None:
    frame = pd.DataFrame({"code": [1, 2, 2, 3], "const": [4.0] * 4, "empty": [np.nan] * 4})
    profile = ReferenceProfile.build(frame, categorical=["code"])
    code = profile.features["code"]
    assert isinstance(code, CategoricalProfile) and code.categories == ("2", "1", "3")
    const = profile.features["const"]
    assert isinstance(const, NumericProfile) and const.std == 0 and const.ecdf_values.tolist() == [4.0]
    empty = profile.features["empty"]
    assert isinstance(empty, NumericProfile) and empty.count == 0 and empty.missing_rate == 1.0


def _round_trip(profile: ReferenceProfile, path: Path) -> ReferenceProfile:
    profile.save(path)
    return ReferenceProfile.load(path)


@settings(max_examples=30, deadline=None)
@given(
    values=st.lists(st.floats(allow_nan=True, allow_infinity=False, width=64), min_size=1, max_size=60),
    labels=st.lists(st.text(max_size=4) | st.none(), min_size=60, max_size=60),
    points=st.integers(16, 40),
)
def test_json_round_trip_is_exact(
    values: list[float], labels: list[str | None], points: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    frame = pd.DataFrame({"v": values, "c": labels[: len(values)]})
    profile = ReferenceProfile.build(
        frame, scores=np.asarray(values) / 3, importance={"v": 0.5}, config=DriftConfig(ecdf_points=points)
    )
    loaded = _round_trip(profile, tmp_path_factory.mktemp("p") / "profile.json")
    assert loaded == profile
    original = profile.features["v"]
    again = loaded.features["v"]
    assert isinstance(original, NumericProfile) and isinstance(again, NumericProfile)
    assert again.ecdf_values.tobytes() == original.ecdf_values.tobytes()  # bit for bit
    assert again.edges.tobytes() == original.edges.tobytes()


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "models" / "profile.json"
    ReferenceProfile.build(_frame()).save(target)
    ReferenceProfile.build(_frame(seed=1)).save(target)
    assert sorted(p.name for p in target.parent.iterdir()) == ["profile.json"]
    data = json.loads(target.read_text())
    assert data["schema"] == "noria.reference-profile" and data["schema_version"] == SCHEMA_VERSION


def test_load_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no reference profile"):
        ReferenceProfile.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        ReferenceProfile.load(bad)
    bad.write_text(json.dumps({"schema": "something-else"}))
    with pytest.raises(DataError, match="not a Noria reference profile"):
        ReferenceProfile.load(bad)
    data = ReferenceProfile.build(_frame()).to_dict() | {"schema_version": 99}
    bad.write_text(json.dumps(data))
    with pytest.raises(DataError, match="version 99") as info:
        ReferenceProfile.load(bad)
    assert info.value.fix and "rebuild" in info.value.fix
    damaged = ReferenceProfile.build(_frame()).to_dict()
    del damaged["features"][0]["ecdf_values"]
    bad.write_text(json.dumps(damaged))
    with pytest.raises(DataError, match="damaged"):
        ReferenceProfile.load(bad)


def test_build_rejects_bad_input() -> None:
    with pytest.raises(DataError, match="empty frame"):
        ReferenceProfile.build(pd.DataFrame({"a": []}))
    with pytest.raises(DataError, match="'when' has dtype datetime64"):
        ReferenceProfile.build(pd.DataFrame({"when": pd.to_datetime(["2013-01-01"])}))
    with pytest.raises(DataError, match="importance names 'nope'"):
        ReferenceProfile.build(_frame(), importance={"nope": 1.0})
    with pytest.raises(DataError, match="negative"):
        ReferenceProfile.build(_frame(), importance={"hour": -1.0})
    with pytest.raises(DataError, match="one score per row"):
        ReferenceProfile.build(_frame(), scores=[0.5, 0.1])
    with pytest.raises(DataError, match="strictly increasing"):
        ReferenceProfile.build(_frame(), bin_edges={"distance": [3.0, 1.0]})
    with pytest.raises(DataError, match="not numeric features"):
        ReferenceProfile.build(_frame(), bin_edges={"carrier": [1.0]})
    with pytest.raises(DataError, match="categorical names 'nope'"):
        ReferenceProfile.build(_frame(), categorical=["nope"])
