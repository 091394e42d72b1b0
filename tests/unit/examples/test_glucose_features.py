"""The glucose example's feature code (examples/glucose/glucose_features.py) on hand-made readings.

Leakage is the bug these tests look for: a feature row stamped T must not change when readings
after T change (the label, 30 minutes later, above all). Gaps must give missing values, not
older readings passed off as recent ones. The last test runs everything on the real file.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from tests.conftest import missing

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "glucose"
LAGS = [5, 15, 30, 60]
WINDOWS = [60, 180]


def load_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("glucose_features", EXAMPLE / "glucose_features.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gf = load_module()


def readings(
    minutes: list[float], glucose: list[float] | None = None, signal: list[str | None] | None = None
) -> pd.DataFrame:
    """A readings table as a snapshot holds it: minutes after 2010-06-01 00:00 UTC."""
    start = pd.Timestamp("2010-06-01", tz="UTC")
    values = glucose if glucose is not None else [100.0 + i for i in range(len(minutes))]
    signals = signal if signal is not None else [f"{10 + i / 10:.2f}" for i in range(len(minutes))]
    return pd.DataFrame(
        {
            "time": [start + pd.Timedelta(minutes=m) for m in minutes],
            "glucose": pd.array([int(v) for v in values], dtype="Int64"),
            "sensor_signal": pd.Series(signals, dtype=object),
        }
    )


def minutes_of(times: Any) -> np.ndarray:
    stamps = pd.DatetimeIndex(times)
    return np.asarray((stamps - pd.Timestamp("2010-06-01", tz="UTC")) / pd.Timedelta(minutes=1))


def by_minute(frame: pd.DataFrame) -> pd.DataFrame:
    """A source's output indexed by the minute of its ``event_timestamp``."""
    return frame.set_index(minutes_of(frame["event_timestamp"]))


def recent(table: pd.DataFrame) -> pd.DataFrame:
    return gf.recent_readings({"readings": table}, lags_minutes=LAGS, windows_minutes=WINDOWS, tolerance_minutes=2)


def daily(table: pd.DataFrame) -> pd.DataFrame:
    return gf.daily_profile({"readings": table})


def irregular_day(seed: int = 0) -> pd.DataFrame:
    """A day and a half of 5-minute readings with jitter, 1- and 4-minute steps and gaps."""
    rng = np.random.default_rng(seed)
    steps = rng.choice([5, 5, 5, 5, 4, 1, 20, 45, 150], size=400)
    minutes = np.cumsum(steps).astype(float)
    glucose = np.clip(120 + np.cumsum(rng.normal(0, 3, size=400)), 40, 400).round()
    signal = [None if i % 37 == 0 else ("nil" if i % 23 == 0 else f"{g / 7:.2f}") for i, g in enumerate(glucose)]
    return readings(list(minutes), list(glucose), signal)


# --- leakage -----------------------------------------------------------------------------


@pytest.mark.parametrize("source", [recent, daily])
def test_a_feature_row_depends_only_on_readings_at_or_before_its_stamp(source: Any) -> None:
    table = irregular_day()
    full = source(table)
    for cut in (37, 150, 151, 299):
        cutoff = table["time"].iloc[cut]
        # Readings after the cutoff are dropped, or replaced by absurd values: no change up to it.
        truncated = source(table[table["time"] <= cutoff])
        poisoned_table = table.copy()
        poisoned_table.loc[poisoned_table["time"] > cutoff, "glucose"] = 599
        poisoned = source(poisoned_table)
        upto = full["event_timestamp"] <= cutoff
        pd.testing.assert_frame_equal(full[upto].reset_index(drop=True), truncated.reset_index(drop=True))
        pd.testing.assert_frame_equal(full[upto].reset_index(drop=True), poisoned[upto].reset_index(drop=True))


def test_the_label_is_never_a_feature_of_its_own_row() -> None:
    table = irregular_day()
    labels = gf.glucose_in_30_min({"readings": table})
    changed = table.copy()
    changed["glucose"] = changed["glucose"] + 50  # every label changes ...
    relabelled = gf.glucose_in_30_min({"readings": changed})
    known = labels["label"].notna()
    assert known.sum() > 50
    assert (relabelled["label"][known] == labels["label"][known] + 50).all()
    # ... and is known only after its prediction time: never at or before it.
    assert (labels.loc[known, "label_time"] > labels.loc[known, "time"] + pd.Timedelta(minutes=27)).all()
    # Feature rows are stamped at the reading itself, so the as-of join at t cannot reach t + 30 min.
    features = recent(table)
    assert (features["event_timestamp"].to_numpy() == labels["time"].to_numpy()).all()


def test_lags_and_labels_never_pick_the_reading_itself() -> None:
    with pytest.raises(ValueError, match="exceed the tolerance"):
        gf.recent_readings({"readings": readings([0, 5])}, lags_minutes=[2], windows_minutes=[60], tolerance_minutes=2)
    with pytest.raises(ValueError, match="below the horizon"):
        gf.glucose_in_30_min({"readings": readings([0, 5])}, horizon_minutes=5, tolerance_minutes=5)


# --- gaps and tolerances -----------------------------------------------------------------


def test_changes_are_missing_after_a_gap_instead_of_using_older_readings() -> None:
    # 0..30 every 5 min, then a 40-minute gap, then 70, 75, 80, 85.
    minutes = [0, 5, 10, 15, 20, 25, 30, 70, 75, 80, 85]
    glucose = [100, 102, 104, 106, 108, 110, 112, 150, 155, 160, 165]
    out = by_minute(recent(readings(minutes, glucose)))
    assert out.loc[30, "glucose_change_5m"] == 2 and out.loc[30, "glucose_change_15m"] == 6
    assert out.loc[30, "glucose_change_30m"] == 12 and np.isnan(out.loc[30, "glucose_change_60m"])
    assert np.isnan(out.loc[70, "glucose_change_5m"]) and np.isnan(out.loc[70, "glucose_change_15m"])
    assert out.loc[75, "glucose_change_5m"] == 5 and np.isnan(out.loc[80, "glucose_change_15m"])
    assert out.loc[85, "glucose_change_15m"] == 15
    assert out.loc[70, "glucose_change_60m"] == 150 - 104  # the reading at 10 is 60 min before 70
    # Trailing windows are (T - w, T]: at 85 the hour holds 30 (55 min ago) .. 85, not 25.
    assert out.loc[85, "readings_1h"] == 5 and out.loc[85, "glucose_min_1h"] == 112
    assert out.loc[85, "glucose_max_1h"] == 165 and out.loc[85, "glucose_mean_1h"] == pytest.approx(148.4)
    assert np.isnan(out.loc[0, "glucose_std_1h"]) and out.loc[10, "glucose_std_1h"] == pytest.approx(2.0)


def test_lag_tolerance_takes_the_nearest_reading_within_two_minutes() -> None:
    # Device clock drift: readings 4 and 1 minutes apart; 15 min before 22 is 7 (6 and 9 are near).
    out = recent(readings([0, 6, 9, 13, 18, 22], [100, 106, 109, 113, 118, 122]))
    last = out.iloc[-1]
    assert last["glucose_change_15m"] == 122 - 106  # 6 is 1 min from 7, 9 is 2 min: the nearer wins
    assert last["glucose_change_5m"] == 122 - 118  # 18 is 1 min from 17
    assert out.iloc[1]["glucose_change_5m"] == 106 - 100  # 0 is 1 min from 6 - 5
    assert np.isnan(out.iloc[2]["glucose_change_15m"])  # nothing within 2 min of 9 - 15


def test_sensor_sessions_restart_after_a_gap_of_more_than_two_hours() -> None:
    minutes = [0, 5, 10, 130, 135, 260, 265]  # 120 min gap: same session; 125 min gap: a new one
    out = by_minute(daily(readings(minutes)))
    assert list(out["hours_since_gap"]) == pytest.approx([0, 5 / 60, 10 / 60, 130 / 60, 135 / 60, 0, 5 / 60])
    assert list(out["readings_24h"]) == [1, 2, 3, 4, 5, 6, 7]


def test_duplicate_times_keep_the_first_reading_and_nil_signals_are_missing() -> None:
    table = readings([0, 5, 5, 10], [100, 104, 190, 108], ["10.0", "nil", "12.5", None])
    out = recent(table)
    assert list(out["latest_glucose"]) == [100, 104, 108]
    assert np.isnan(out["latest_sensor_signal"].iloc[1]) and np.isnan(out["latest_sensor_signal"].iloc[2])
    assert out["event_timestamp"].is_unique
    labels = gf.glucose_in_30_min({"readings": table[["time", "glucose"]]})
    assert labels["time"].is_unique and len(labels) == 3


# --- the label ---------------------------------------------------------------------------


def test_label_is_the_reading_thirty_minutes_later_within_the_tolerance() -> None:
    #            t=0 -> 30 (exact)  t=10 -> 42 (+2)  t=20 -> none at 48..52 (53 is 3 off)  t=28 -> 58
    minutes = [0, 10, 20, 28, 30, 42, 53, 56, 60]
    table = readings(minutes, [100, 110, 120, 128, 130, 142, 153, 156, 160])
    labels = gf.glucose_in_30_min({"readings": table[["time", "glucose"]]}).set_index(minutes_of(table["time"]))
    assert labels.loc[0, "label"] == 130 and labels.loc[10, "label"] == 142
    assert np.isnan(labels.loc[20, "label"]) and pd.isna(labels.loc[20, "label_time"])
    # 58 is equally near 56 and 60: the earlier reading counts (known first).
    assert labels.loc[28, "label"] == 156
    assert minutes_of(labels["label_time"].dropna()).tolist() == [30, 42, 56, 60]  # 30 -> 60 too
    assert str(labels["time"].dtype) == str(labels["label_time"].dtype) == "datetime64[ns, UTC]"
    assert labels["label"].dtype == np.float64


# --- request-time, derived, baseline -----------------------------------------------------


def test_request_functions_are_vectorised_and_use_the_device_clock() -> None:
    time = np.array(["2010-03-24T09:51", "2010-03-28T23:59", "2010-10-10T00:00"], dtype="datetime64[ns]")
    assert (gf.prediction_time({"time": time}) == time).all()
    context = gf.reading_context({"time": time})
    assert list(context["hour_of_day"]) == [9, 23, 0]
    assert list(context["day_of_week"]) == [2, 6, 6]  # Wednesday, Sunday, Sunday
    assert list(context["patient_id"]) == [gf.PATIENT_ID] * 3


def test_derived_features_and_persistence() -> None:
    columns = {
        "latest_glucose": np.array([100.0, 200.0, np.nan]),
        "glucose_change_15m": np.array([6.0, -10.0, 1.0]),
        "glucose_change_30m": np.array([10.0, -30.0, np.nan]),
        "latest_sensor_signal": np.array([20.0, 0.0, 5.0]),
    }
    assert list(gf.linear_extrapolation(columns, horizon_minutes=30)[:2]) == [112.0, 180.0]
    assert list(gf.glucose_acceleration(columns)[:2]) == [2.0, 10.0]
    ratio = gf.glucose_per_signal(columns)
    assert ratio[0] == 5.0 and np.isinf(ratio[1]) and np.isnan(ratio[2])
    frame = pd.DataFrame({"latest_glucose": columns["latest_glucose"], "glucose_mean_24h": [1.0, 2.0, 150.0]})
    assert list(gf.persistence(frame)) == [100.0, 200.0, 150.0]


# --- the config and the code agree ---------------------------------------------------------


def test_features_yaml_declares_exactly_what_the_functions_return() -> None:
    config = yaml.safe_load((EXAMPLE / "features.yaml").read_text())
    table = irregular_day()
    for view in config["feature_views"].values():
        source = config["sources"][view["source"]]
        assert set(source["tables"]) == {"readings"} and set(source["tables"]["readings"]) <= set(table.columns)
        fn = getattr(gf, source["function"].split(":")[1])
        out = fn({"readings": table[source["tables"]["readings"]]}, **source.get("params", {}))
        assert set(out.columns) == {"patient_id", "event_timestamp", *view["features"]}
        assert view["ttl"], "every view holds readings that go stale: it needs a TTL"
        for name, spec in view["features"].items():
            assert (spec.get("type", "float") == "int") == (out[name].dtype == np.int64), name
    context = config["request_views"]["reading_context"]
    assert set(gf.reading_context({"time": table["time"].dt.tz_convert(None).to_numpy()})) == set(context["features"])
    assert config["entities"]["patient"]["join_key"] in context["features"]
    noria = yaml.safe_load((EXAMPLE / "noria.yaml").read_text())
    target = noria["model"]["target"]
    labels = getattr(gf, target["function"].split(":")[1])(
        {"readings": table[target["tables"]["readings"]]}, **target["params"]
    )
    assert list(labels.columns) == [*config["request"]["ids"], "label", "label_time"]


# --- the real data -----------------------------------------------------------------------


def cgm_file() -> Path:
    """The shipped CGM file; skipped locally without bokeh-sampledata, a failure in CI."""
    try:
        dist = importlib.metadata.distribution("bokeh-sampledata")
    except importlib.metadata.PackageNotFoundError:
        message = "bokeh-sampledata is not installed: pip install bokeh-sampledata (or pip install 'noria[glucose]')"
        missing(message)
    return Path(str(dist.locate_file("bokeh_sampledata/_data/CGM.csv.gz")))


def test_the_real_file_as_noria_yaml_describes_it() -> None:
    config = yaml.safe_load((EXAMPLE / "noria.yaml").read_text())["data"]["tables"]["readings"]
    raw = pd.read_csv(cgm_file(), dtype=str, keep_default_na=False)
    columns = config["columns"]
    renames = {spec["source_column"]: name for name, spec in columns.items() if "source_column" in spec}
    renamed = raw.rename(columns=renames)
    assert list(renamed.columns) == ["sensor_signal", "time", "glucose"]
    assert renamed["sensor_signal"].str.fullmatch(columns["sensor_signal"]["pattern"].strip("^$")).all()
    glucose = pd.to_numeric(renamed["glucose"])
    assert glucose.between(columns["glucose"]["min"], columns["glucose"]["max"]).all()
    table = pd.DataFrame(
        {
            "time": pd.to_datetime(renamed["time"], utc=True, format="ISO8601"),
            "glucose": glucose.astype("Int64"),
            "sensor_signal": renamed["sensor_signal"].astype(object),
        }
    )
    table = table[~table["time"].duplicated()]  # ingest quarantines a repeated key, keeping the first
    assert len(table) == 52_278

    features = recent(table)
    labels = gf.glucose_in_30_min({"readings": table[["time", "glucose"]]})
    assert len(features) == len(labels) == len(table)
    assert 0.97 < labels["label"].notna().mean() < 0.99
    assert features["latest_sensor_signal"].isna().sum() == 1_061  # the nil rows
    # The as-of rule on the real data: features of the first half do not see the second half.
    half = table["time"].iloc[len(table) // 2]
    early = recent(table[table["time"] <= half])
    pd.testing.assert_frame_equal(features[features["event_timestamp"] <= half].reset_index(drop=True), early)
    # Persistence is a fair baseline: 30 minutes on, the level has moved by about 16 mg/dL.
    error = labels["label"].to_numpy() - features["latest_glucose"].to_numpy()
    assert 10 < np.nanmean(np.abs(error)) < 25
