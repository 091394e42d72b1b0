from __future__ import annotations

import pandas as pd
import pytest
from training_flights_frame import LABEL, TIME

from noria.errors import ConfigError, DataError
from noria.periods import Period
from noria.training import Split, split_by_time

H1, H2 = ("2013-01", "2013-06"), ("2013-07", "2013-12")


def test_parts_are_ordered_disjoint_and_labelled(flights: pd.DataFrame, split: Split) -> None:
    assert split.fit[TIME].max() < split.valid[TIME].min()
    assert split.train[TIME].max() < split.test[TIME].min()
    assert len(split.fit) + len(split.valid) == len(split.train)
    assert split.valid[TIME].min() >= pd.Timestamp("2013-05-01", tz="UTC")  # the end of training
    assert split.test[TIME].min() >= pd.Timestamp("2013-07-01", tz="UTC")
    for part in (split.train, split.test):
        assert part[LABEL].notna().all()
        assert set(part[LABEL].unique()) == {0, 1}
    # cancelled flights (missing label) are dropped and counted per period
    in_train = (flights[TIME] < pd.Timestamp("2013-07-01", tz="UTC")) & flights[LABEL].isna()
    assert split.dropped_unlabelled["train"] == int(in_train.sum()) > 0
    assert split.dropped_unlabelled["test"] + split.dropped_unlabelled["train"] == int(flights[LABEL].isna().sum())
    assert abs(len(split.valid) / len(split.train) - 0.15) < 0.02


def test_summary_is_plain_data(split: Split) -> None:
    summary = split.summary()
    assert summary["parts"]["test"]["window"]["label"] == "2013-07..2013-12"
    assert summary["parts"]["fit"]["rows"] == len(split.fit)
    assert summary["dropped_unlabelled"] == split.dropped_unlabelled


def test_test_period_before_train_fails_early(flights: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="lies before the train period") as info:
        split_by_time(flights, TIME, LABEL, train=H2, test=H1)
    assert info.value.fix and "after" in info.value.fix


def test_overlapping_periods_fail(flights: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="overlaps"):
        split_by_time(flights, TIME, LABEL, train=("2013-01", "2013-07"), test=H2)


def test_training_set_without_positives_fails(flights: pd.DataFrame) -> None:
    frame = flights.assign(**{LABEL: flights[LABEL].where(flights[LABEL].isna() | (flights[TIME].dt.month > 6), 0)})
    with pytest.raises(DataError, match="no positive labels") as info:
        split_by_time(frame, TIME, LABEL, train=H1, test=H2)
    assert "label" in (info.value.fix or "")


def test_test_set_with_one_class_fails(flights: pd.DataFrame) -> None:
    frame = flights.assign(**{LABEL: flights[LABEL].where(flights[TIME].dt.month < 7, 0.0)})
    with pytest.raises(DataError, match="test set"):
        split_by_time(frame, TIME, LABEL, train=H1, test=H2)


def test_empty_periods_fail(flights: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"train period 2012-01..2012-06 holds no labelled rows"):
        split_by_time(flights, TIME, LABEL, train=("2012-01", "2012-06"), test=H2)
    with pytest.raises(DataError, match="test period"):
        split_by_time(flights, TIME, LABEL, train=H1, test=("2015-01", "2015-03"))


def test_label_must_be_binary(toy: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="cannot use"):
        split_by_time(toy.assign(y=toy["x"]), "ts", "y", train=H1, test=H2)
    with pytest.raises(DataError, match="dtype"):
        split_by_time(toy.assign(y="late"), "ts", "y", train=H1, test=H2)


def test_booleans_and_naive_times_are_accepted(toy: pd.DataFrame) -> None:
    frame = toy.assign(y=toy["y"].astype(bool), ts=toy["ts"].dt.tz_localize(None))
    split = split_by_time(frame, "ts", "y", train=H1, test=H2)
    assert str(split.test["ts"].dt.tz) == "UTC"
    assert len(split.train) == 181 and len(split.test) == 184


def test_duplicate_index_labels_are_fine(toy: pd.DataFrame) -> None:
    frame = pd.concat([toy, toy]).sort_values("ts", kind="mergesort")  # every index label twice
    split = split_by_time(frame, "ts", "y", train=H1, test=H2)
    assert len(split.train) == 2 * 181 and split.train["y"].dtype == "int8"


def test_time_column_must_be_a_timestamp(toy: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="not a timestamp") as info:
        split_by_time(toy.assign(ts=toy["ts"].astype(str)), "ts", "y", train=H1, test=H2)
    assert "pd.to_datetime" in (info.value.fix or "")


def test_missing_columns_are_named(toy: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="no column 'when'"):
        split_by_time(toy, "when", "y", train=H1, test=H2)


def test_validation_by_months(toy: pd.DataFrame) -> None:
    split = split_by_time(toy, "ts", "y", train=H1, test=H2, valid_windows=1)
    assert split.valid["ts"].min() == pd.Timestamp("2013-06-01", tz="UTC")
    assert len(split.valid) == 30
    with pytest.raises(ConfigError, match="not both|both valid_fraction"):
        split_by_time(toy, "ts", "y", train=H1, test=H2, valid_windows=1, valid_fraction=0.2)
    with pytest.raises(ConfigError, match="whole train period"):
        split_by_time(toy, "ts", "y", train=H1, test=H2, valid_windows=6)
    with pytest.raises(ConfigError, match="valid_fraction"):
        split_by_time(toy, "ts", "y", train=H1, test=H2, valid_fraction=0.7)


@pytest.mark.parametrize(
    ("period", "message"),
    [(("2013/01", "2013-06"), "not a month"), (("2013-06", "2013-01"), "before it starts"), ("2013", "pair")],
)
def test_bad_periods_are_config_errors(toy: pd.DataFrame, period: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        split_by_time(toy, "ts", "y", train=period, test=H2)


def test_config_periods_and_days(toy: pd.DataFrame) -> None:
    split = split_by_time(
        toy, "ts", "y", train=Period(start="2013-01", end="2013-06"), test=("2013-07-01", "2013-07-31")
    )
    assert len(split.test) == 31
    assert split.test_window.end == pd.Timestamp("2013-08-01", tz="UTC")
