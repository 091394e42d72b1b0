"""Delayed labels for every task: files of ids + label (with their quarantine), and labels from an
ingested data snapshot through the project's own target rule, maturity counted.

The counts always add up: rows read = accepted + rejected + unlabelled + immature + duplicates.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.unit.monitoring.task_projects import (
    BERLIN,
    CLASSES,
    games_project,
    games_table,
    readings_project,
    readings_table,
    small_flights,
    small_project,
)
from tests.unit.serving.serving_support import make_migrated_db, make_project

from noria.config import Project
from noria.data.ingest import ingest
from noria.errors import ConfigError, SourceError, ValidationError
from noria.monitoring.labels import Labels, labels_from_snapshot, load_labels

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"

FLIGHT_IDS = ["year", "month", "day", "carrier", "flight", "origin", "sched_dep_time"]


def _adds_up(labels: Labels) -> None:
    parts = len(labels) + labels.rejected + labels.unlabelled + labels.immature + labels.duplicates
    assert labels.rows_read == parts, vars(labels)


def _reasons(labels: Labels) -> dict[int, str]:
    assert labels.quarantine_path is not None
    q = pd.read_parquet(labels.quarantine_path)
    assert len(q) == labels.rejected
    return dict(zip(q["row"].tolist(), q["reason"].tolist(), strict=True))


@pytest.fixture(scope="module")
def flights(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Project:
    """The flights reference project (its ids: year, month, day, carrier, flight, origin, sched_dep_time)."""
    import mlflow

    cache = getattr(request.config, "cache", None)
    folder = cache.mkdir(f"mlflow-db-{mlflow.__version__}") if cache is not None else None
    tmp = tmp_path_factory.mktemp("flights")
    return make_project(tmp / "p", make_migrated_db(folder, tmp))


# --- files ---------------------------------------------------------------------------------------------

BINARY_CSV = """\
year,month,day,carrier,flight,origin,sched_dep_time,dep_delay
2013,7,1,UA,1545,EWR,515,20
2013,7,1,UA,12x,EWR,600,0
2013,7,1,AA,11,JFK,,0
2013,7,1,AA,12,JFK,6.5,0
2013,7,1,DL,13,LGA,700,maybe
2013,7,1,DL,14,LGA,730,20
2013,7,1,DL,14,LGA,730,-5
2013,7,1,B6,15,JFK,800,30
2013,7,1,B6,15,JFK, 800,31
2013,7,1,,16,JFK,800,0
2013,7,1,WN,18,EWR,900,
2013,7,1,WN,19,EWR,900,16
2013,7,2,WN,19,EWR,900,inf
2013,7,2,WN,20,EWR,900,15
"""


def test_a_binary_labels_file_applies_the_target_rule_and_quarantines_bad_rows(
    flights: Project, tmp_path: Path
) -> None:
    path = tmp_path / "outcomes.csv"
    path.write_text(BINARY_CSV, encoding="utf-8")
    labels = load_labels(flights, path, quarantine_dir=tmp_path / "q")
    _adds_up(labels)
    # accepted: UA 1545 (20 > 15), B6 15 once (30 and 31: both late), WN 19 (16), WN 20 (15: not late)
    got = labels.frame.sort_values("flight")
    assert got["flight"].tolist() == [15.0, 19.0, 20.0, 1545.0] and got["y"].tolist() == [1.0, 1.0, 0.0, 1.0]
    assert list(labels.frame.columns) == [*FLIGHT_IDS, "y"] and labels.ids == FLIGHT_IDS
    assert (labels.rows_read, labels.rejected, labels.unlabelled, labels.duplicates) == (14, 8, 1, 1)
    assert labels.immature == 0 and not labels.windowed
    reasons = _reasons(labels)
    assert reasons == {
        2: "flight=12x is not a whole number",
        3: "sched_dep_time is missing",
        4: "sched_dep_time=6.5 is not a whole number",
        5: "dep_delay=maybe is not a number",
        6: "the request appears 2 times with different labels",
        7: "the request appears 2 times with different labels",
        10: "carrier is missing",
        13: "dep_delay=inf is infinite",
    }
    q = pd.read_parquet(labels.quarantine_path)  # type: ignore[arg-type]
    assert q.loc[q["row"] == 2, "flight"].item() == "12x"  # kept as written
    assert list(q.columns) == ["row", *FLIGHT_IDS, "dep_delay", "reason"]
    assert Path(labels.quarantine_path).parent == tmp_path / "q"  # type: ignore[arg-type]


def test_a_label_column_wins_over_the_target_column_and_must_be_a_boolean(flights: Project, tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "year": [2013] * 4,
            "month": [7] * 4,
            "day": [1, 1, 2, 2],
            "carrier": ["UA", "AA", "DL", "B6"],
            "flight": [1, 2, 3, 4],
            "origin": ["EWR", "JFK", "LGA", "JFK"],
            "sched_dep_time": [515, 600, 700, 800],
            "label": ["true", "0", "maybe", None],
            "dep_delay": [0.0, 90.0, 0.0, 0.0],  # ignored: the label is given
        }
    )
    path = tmp_path / "outcomes.csv"
    frame.to_csv(path, index=False)
    labels = load_labels(flights, path, quarantine_dir=tmp_path / "q")
    _adds_up(labels)
    assert labels.frame["y"].tolist() == [1.0, 0.0] and (labels.rejected, labels.unlabelled) == (1, 1)
    assert _reasons(labels) == {3: "label=maybe is not true/false or 1/0"}
    # Parquet keeps the types: booleans, numbers
    frame.assign(label=[True, False, True, None]).to_parquet(tmp_path / "outcomes.parquet")
    again = load_labels(flights, tmp_path / "outcomes.parquet", quarantine_dir=tmp_path / "q")
    assert again.frame["y"].tolist() == [1.0, 0.0, 1.0] and again.unlabelled == 1 and again.rejected == 0


def test_unusable_labels_files_raise_clear_errors(flights: Project, tmp_path: Path) -> None:
    q = tmp_path / "q"
    (tmp_path / "no_origin.csv").write_text("year,month,day,carrier,flight,sched_dep_time,label\n2013,7,1,UA,1,5,1\n")
    with pytest.raises(ValidationError, match="no column 'origin'") as info:
        load_labels(flights, tmp_path / "no_origin.csv", quarantine_dir=q)
    assert "the request ids (year, month, day, carrier, flight, origin, sched_dep_time)" in info.value.message
    assert info.value.fix and "ISO 8601" in info.value.fix
    (tmp_path / "no_label.csv").write_text("year,month,day,carrier,flight,origin,sched_dep_time\n2013,7,1,UA,1,EWR,5\n")
    with pytest.raises(ValidationError, match="no column 'label' or 'dep_delay'"):
        load_labels(flights, tmp_path / "no_label.csv", quarantine_dir=q)
    (tmp_path / "neither.csv").write_text("carrier,x\nUA,1\n")
    with pytest.raises(ValidationError, match="no column 'year', 'month', .*'sched_dep_time', 'label' or 'dep_delay'"):
        load_labels(flights, tmp_path / "neither.csv", quarantine_dir=q)
    with pytest.raises(SourceError, match="does not exist"):
        load_labels(flights, tmp_path / "missing.csv", quarantine_dir=q)
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(SourceError, match="cannot read labels file"):
        load_labels(flights, tmp_path / "broken.parquet", quarantine_dir=q)
    (tmp_path / "empty.csv").write_text("year,month\n")
    with pytest.raises(SourceError, match="has no rows"):
        load_labels(flights, tmp_path / "empty.csv", quarantine_dir=q)
    (tmp_path / "labels.xlsx").write_bytes(b"")
    with pytest.raises(ValidationError, match="neither Parquet nor CSV"):
        load_labels(flights, tmp_path / "labels.xlsx", quarantine_dir=q)
    assert not q.exists()


MULTICLASS_CSV = """\
kickoff,home,label
2024-03-04T09:00:00+01:00,Ajax,H
2024-03-04T09:00:00,Ajax,D
2024-03-04T10:00:00Z,Bayern,X
yesterday,Celtic,A
2024-03-05T10:00:00Z,,A
2024-03-05T11:00:00Z,Dynamo,
2024-03-05T12:00:00Z,Dynamo, A
2024-03-05T12:00:00Z,Dynamo,A
2024-03-05T13:00:00+00:00,Dynamo,D
2024-03-05T14:00:00+01:00,Dynamo,H
"""


def test_a_multiclass_labels_file_names_classes_and_timestamp_ids(tmp_path: Path) -> None:
    project = games_project(tmp_path / "games")
    path = tmp_path / "results.csv"
    path.write_text(MULTICLASS_CSV, encoding="utf-8")
    labels = load_labels(project, path, quarantine_dir=tmp_path / "q")
    _adds_up(labels)
    assert (labels.rows_read, labels.rejected, labels.unlabelled, labels.duplicates) == (10, 6, 1, 1)
    assert _reasons(labels) == {
        2: "kickoff=2024-03-04T09:00:00 has no UTC offset (add Z or e.g. -04:00)",
        3: "label=X is not one of model.target.classes (H, D, A)",
        4: "kickoff=yesterday is not an ISO 8601 time",
        5: "home is missing",
        # 13:00 UTC and 14:00+01:00 are the same kickoff: one game, two results
        9: "the request appears 2 times with different labels",
        10: "the request appears 2 times with different labels",
    }
    assert labels.frame["kickoff"].tolist() == [
        pd.Timestamp("2024-03-04T08:00:00Z"),
        pd.Timestamp("2024-03-05T12:00:00Z"),
    ]
    assert str(labels.frame["kickoff"].dtype) == "datetime64[us, UTC]"
    assert [CLASSES[int(v)] for v in labels.frame["y"]] == ["H", "A"]
    # the target column of a column target works too; Parquet timestamps must carry their zone
    games = pd.DataFrame(
        {
            "kickoff": pd.to_datetime(["2024-03-04 09:00", "2024-03-04 10:00"]).tz_localize(BERLIN),
            "home": ["Ajax", "Bayern"],
            "result": ["D", "A"],
        }
    )
    games.to_parquet(tmp_path / "results.parquet")
    again = load_labels(project, tmp_path / "results.parquet", quarantine_dir=tmp_path / "q")
    assert again.frame["y"].tolist() == [1.0, 2.0] and again.rejected == 0
    assert again.frame["kickoff"].iloc[0] == pd.Timestamp("2024-03-04T08:00:00Z")
    games.assign(kickoff=games["kickoff"].dt.tz_localize(None)).to_parquet(tmp_path / "naive.parquet")
    with pytest.raises(ValidationError, match="kickoff holds timestamps without a time zone") as info:
        load_labels(project, tmp_path / "naive.parquet", quarantine_dir=tmp_path / "q")
    assert info.value.fix and "UTC" in info.value.fix


def test_a_regression_labels_file_takes_numbers(tmp_path: Path) -> None:
    project = readings_project(tmp_path / "readings")
    path = tmp_path / "levels.csv"
    path.write_text("reading_id,label\n1000,131.5\n1001,abc\n1002,inf\n1003.5,90\n1004,\n1005, 1e2\n1000,131.5\n")
    labels = load_labels(project, path, quarantine_dir=tmp_path / "q")
    _adds_up(labels)
    assert labels.frame["reading_id"].tolist() == [1000.0, 1005.0] and labels.frame["y"].tolist() == [131.5, 100.0]
    assert (labels.rejected, labels.unlabelled, labels.duplicates) == (3, 1, 1)
    assert _reasons(labels) == {
        2: "label=abc is not a number",
        3: "label=inf is infinite",
        4: "reading_id=1003.5 is not a whole number",
    }


def test_thirty_thousand_label_rows_are_read_column_wise(flights: Project, tmp_path: Path) -> None:
    n = 30_000
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "year": 2013,
            "month": 7,
            "day": rng.integers(1, 31, n),
            "carrier": rng.choice(["UA", "AA", "DL"], n),
            "flight": np.arange(n) + 1,
            "origin": "EWR",
            "sched_dep_time": 900,
            "dep_delay": rng.normal(10, 30, n).round(1).astype(str),
        }
    )
    frame.loc[::1000, "dep_delay"] = "n/a"
    path = tmp_path / "month.csv"
    frame.to_csv(path, index=False)
    import time

    started = time.perf_counter()
    labels = load_labels(flights, path, quarantine_dir=tmp_path / "q")
    assert time.perf_counter() - started < 3.0
    assert labels.rejected == 30 and len(labels) == n - 30
    _adds_up(labels)


# --- snapshots -------------------------------------------------------------------------------------------


def _iso_weeks(times: pd.Series) -> np.ndarray:
    local = pd.DatetimeIndex(times).tz_convert(BERLIN)
    iso = local.isocalendar()
    return np.array([f"{y}-W{w:02d}" for y, w in zip(iso["year"], iso["week"], strict=True)], dtype=object)


@pytest.fixture(scope="module")
def games_snapshot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, pd.DataFrame]:
    """The games project with a label function (label_time = the final whistle, else 3 h after kickoff),
    its games ingested as a snapshot."""
    games = games_table(n=240, seed=0)
    project = games_project(tmp_path_factory.mktemp("games") / "p", games, function_target=True, git=True)
    ingest(project, "2024-03", "2024-04")
    return project, games


def _expected_games(games: pd.DataFrame, weeks: list[str], as_of: pd.Timestamp) -> dict[str, pd.DataFrame | int]:
    """Labels of the games of ``weeks`` known at ``as_of``, computed here from the raw games."""
    part = games[np.isin(_iso_weeks(games["kickoff"]), weeks)]
    known_at = pd.Series(part["final_whistle"]).fillna(part["kickoff"] + pd.Timedelta(hours=3))
    has = part["result"].notna()
    mature = has & (known_at <= as_of)
    return {
        "rows": len(part),
        "unlabelled": int((~has).sum()),
        "immature": int((has & ~mature).sum()),
        "labels": part[mature][["kickoff", "home", "result"]].reset_index(drop=True),
    }


def test_labels_from_a_snapshot_through_a_label_function_count_what_is_not_mature(
    games_snapshot: tuple[Project, pd.DataFrame],
) -> None:
    project, games = games_snapshot
    weeks = sorted(set(_iso_weeks(games["kickoff"])))
    assert weeks == ["2024-W10", "2024-W11", "2024-W12", "2024-W13"]
    labels = labels_from_snapshot(project, weeks)
    _adds_up(labels)
    end = games["kickoff"].max()  # "now" is the newest event of the snapshot
    expected = _expected_games(games, weeks, end)
    assert (labels.rows_read, labels.unlabelled, labels.immature) == (
        expected["rows"],
        expected["unlabelled"],
        expected["immature"],
    )
    assert labels.immature > 0 and labels.rejected == 0 and labels.duplicates == 0 and labels.windowed
    assert labels.source.startswith("snapshot ") and labels.extra["as_of"] == end.isoformat()
    got = labels.frame.sort_values("kickoff").reset_index(drop=True)
    want = expected["labels"]
    assert isinstance(want, pd.DataFrame)
    assert got["kickoff"].tolist() == want["kickoff"].tolist() and got["home"].tolist() == want["home"].tolist()
    assert [CLASSES[int(v)] for v in got["y"]] == want["result"].tolist()
    assert got["window"].tolist() == list(_iso_weeks(got["kickoff"]))


def test_labels_from_a_snapshot_as_of_an_earlier_moment_and_for_some_windows(
    games_snapshot: tuple[Project, pd.DataFrame],
) -> None:
    project, games = games_snapshot
    as_of = pd.Timestamp("2024-03-20T12:00:00Z")
    labels = labels_from_snapshot(project, ["2024-W12", "2024-W11"], as_of="2024-03-20T13:00:00+01:00")
    _adds_up(labels)
    expected = _expected_games(games, ["2024-W11", "2024-W12"], as_of)
    assert (labels.rows_read, len(labels), labels.immature) == (
        expected["rows"],
        len(expected["labels"]),  # type: ignore[arg-type]
        expected["immature"],
    )
    assert set(labels.frame["window"]) == {"2024-W11", "2024-W12"} and labels.extra["windows"] == [
        "2024-W11",
        "2024-W12",
    ]
    assert labels.extra["as_of"] == "2024-03-20T12:00:00+00:00"
    # a window no game falls in: nothing read, nothing lost
    empty = labels_from_snapshot(project, ["2025-W01"])
    assert len(empty) == 0 and empty.rows_read == 0 and str(empty.frame["kickoff"].dtype) == "datetime64[us, UTC]"
    with pytest.raises(ConfigError, match="window: '2024-03' is not a week window"):
        labels_from_snapshot(project, ["2024-03"])
    with pytest.raises(ValidationError, match="as_of='soon' is not a time"):
        labels_from_snapshot(project, ["2024-W11"], as_of="soon")


def test_binary_labels_from_a_snapshot_by_the_threshold_rule(tmp_path: Path) -> None:
    flights = small_flights()
    project = small_project(tmp_path / "small", flights)
    ingest(project, "2013-02", "2013-03")
    labels = labels_from_snapshot(project, ["2013-02", "2013-03"])
    _adds_up(labels)
    known = flights[flights["dep_delay"].notna()]
    assert (labels.rows_read, len(labels), labels.unlabelled, labels.immature) == (
        len(flights),
        len(known),
        len(flights) - len(known),
        0,
    )
    key = ["year", "month", "day", "carrier", "flight"]
    got = labels.frame.sort_values(key).reset_index(drop=True)
    want = known.sort_values(key).reset_index(drop=True)
    assert got["flight"].tolist() == want["flight"].astype(float).tolist()
    assert got["y"].tolist() == (want["dep_delay"] > 15).astype(float).tolist()
    assert set(labels.frame["window"]) == {"2013-02", "2013-03"}


def test_a_request_labelled_twice_in_the_snapshot_is_rejected_or_kept_once(tmp_path: Path) -> None:
    """With ids [carrier, flight] one request is every day's flight of that number: repeated labels."""
    flights = small_flights(n=40, seed=5)
    project = small_project(tmp_path / "small", flights, ids=["carrier", "flight"])
    ingest(project, "2013-02", "2013-03")
    labels = labels_from_snapshot(project, ["2013-02", "2013-03"], quarantine_dir=tmp_path / "q")
    _adds_up(labels)
    known = flights[flights["dep_delay"].notna()].assign(late=lambda f: f["dep_delay"] > 15)
    per = known.groupby(["carrier", "flight"])["late"]
    conflicting = per.transform("nunique") > 1
    assert labels.rejected == int(conflicting.sum()) > 0
    assert labels.duplicates == int((~conflicting).sum()) - per.nunique()[per.nunique() == 1].size
    assert len(labels) == int((per.nunique() == 1).sum())
    q = pd.read_parquet(labels.quarantine_path)  # type: ignore[arg-type]
    assert q["reason"].str.match(r"the request appears \d+ times with different labels").all()
    assert list(q.columns) == ["row", "carrier", "flight", "label", "reason"]


def test_regression_labels_from_a_snapshot_with_function_windows(tmp_path: Path) -> None:
    readings = readings_table(n=300, seed=1)
    project = readings_project(tmp_path / "readings", readings, git=True)
    ingest(project, "2024-03", "2024-04")
    windows = ["2024-03-a", "2024-03-b", "2024-04-a"]
    labels = labels_from_snapshot(project, windows)
    _adds_up(labels)
    end = readings["at"].max()
    has = readings["later"].notna()
    mature = has & (readings["at"] + pd.Timedelta(minutes=30) <= end)
    assert (labels.rows_read, len(labels), labels.unlabelled, labels.immature) == (
        len(readings),
        int(mature.sum()),
        int((~has).sum()),
        int((has & ~mature).sum()),
    )
    assert labels.immature >= 1  # the newest reading's level 30 minutes later is not known yet
    got = labels.frame.sort_values("reading_id")
    assert got["y"].tolist() == readings.loc[mature, "later"].tolist()
    day = pd.DatetimeIndex(readings.loc[mature, "at"]).day
    assert got["window"].tolist() == [
        f"{m:%Y-%m}-{'a' if d <= 15 else 'b'}" for m, d in zip(readings.loc[mature, "at"], day, strict=True)
    ]


BROKEN_LABEL_FUNCTIONS = '''

def twice(tables):
    """Every result twice: one label per event is the contract."""
    out = match_result(tables)
    return pd.concat([out, out.head(3)], ignore_index=True)


def no_label(tables):
    return match_result(tables).drop(columns=["label"])


def a_list(tables):
    return list(match_result(tables)["label"])
'''


@pytest.mark.parametrize(
    ("function", "message", "fix"),
    [
        ("twice", r"returned 6 rows with duplicate ids, e\.g\. \{'kickoff'", "one label per event"),
        ("no_label", r"returned no column 'label' \(it returned: kickoff, home, label_time\)", "'label'"),
        ("a_list", r"returned list", "return a pandas DataFrame"),
    ],
)
def test_a_label_function_that_breaks_its_contract_is_named_with_the_fix(
    tmp_path: Path, function: str, message: str, fix: str
) -> None:
    from noria.config import load_project
    from noria.features.definitions import FeatureDefinitionError

    root = tmp_path / "p"
    games_project(root, games_table(n=60, seed=2), function_target=True, git=True)
    with (root / "games_features.py").open("a") as fh:
        fh.write(BROKEN_LABEL_FUNCTIONS)
    yaml = (root / "noria.yaml").read_text()
    (root / "noria.yaml").write_text(yaml.replace("games_features:match_result", f"games_features:{function}"))
    project = load_project(root, environ={})
    ingest(project, "2024-03", "2024-04")
    with pytest.raises(FeatureDefinitionError, match=message) as err:
        labels_from_snapshot(project, ["2024-W11"])
    assert f"model.target.function games_features:{function}" in str(err.value)
    assert err.value.fix is not None and fix in err.value.fix
