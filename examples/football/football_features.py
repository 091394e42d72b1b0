"""Feature, label and window functions of the football project, referenced from features.yaml
and noria.yaml by name.

* source functions ``fn(tables, **params) -> DataFrame`` turn the ``matches`` table into feature
  tables: the entity key, ``event_timestamp`` (tz-aware UTC, when the values became known) and
  the features. Noria runs them offline; the online store is filled from their output;
* request functions ``fn(columns, **params)`` compute features from a request's own columns
  (numpy arrays: ints int64, strings object, timestamps datetime64[ns] UTC); the same call runs
  on a whole training set and on one request;
* ``match_result`` is the label function, ``kickoff_time`` the prediction time and ``season``
  the window function (timestamps -> ``1975-76``).

Leakage rule: a match's result is known at its final whistle, taken as kickoff + 2 h
(``RESULT_DELAY_HOURS``; the label's ``label_time``). Every feature row is stamped at the time
its newest result became known, so the as-of join (latest row with
``event_timestamp <= kickoff`` within the view's TTL) only sees matches finished by kickoff,
never the match itself.

Points are counted 3 / 1 / 0 in every season: the league gave 2 points for a win until
1994-95, but here points measure strength, not the table, and one scale keeps the decades
comparable.

Clubs that changed their name (``renamed``: old -> new) keep one history: every team-keyed row
is emitted under each of the club's names, so a request naming the club either way finds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

RESULT_DELAY_HOURS = 2.0
SEASON_START_MONTH = 7  # a season is 1 July .. 30 June, German time
LOCAL_TZ = "Europe/Berlin"
CLASSES = ("H", "D", "A")


def pairing_of(home_team: Any, away_team: Any) -> Any:
    """``Hamburger SV|Werder Bremen``: the head-to-head key, the same for sources and requests."""
    return home_team + "|" + away_team


# --- prediction time, label, windows -------------------------------------------------------


def kickoff_time(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """The prediction time is the kickoff itself (UTC)."""
    return columns["kickoff"]


def season(times: np.ndarray) -> np.ndarray:
    """Season labels (``1975-76``) of UTC timestamps; a season starts on 1 July, German time.

    The labels sort chronologically as strings (``1999-00`` < ``2000-01``). Missing times
    (NaT) get None.
    """
    local = pd.DatetimeIndex(np.asarray(times, dtype="datetime64[ns]")).tz_localize("UTC").tz_convert(LOCAL_TZ)
    known = ~local.isna()
    start = np.where(known, local.year - (local.month < SEASON_START_MONTH), 0).astype(np.int64)
    labels = pd.Series(start).astype(str) + "-" + pd.Series((start + 1) % 100).astype(str).str.zfill(2)
    out = labels.to_numpy(dtype=object)
    out[~known] = None
    return out


def match_result(tables: Mapping[str, pd.DataFrame], result_delay_hours: float = RESULT_DELAY_HOURS) -> pd.DataFrame:
    """The label of each match: H (home win), D (draw) or A (away win), known at
    ``kickoff + result_delay_hours``. A match without a score has a missing label."""
    matches = tables["matches"]
    home = matches["home_goals"].to_numpy(dtype=np.float64)
    away = matches["away_goals"].to_numpy(dtype=np.float64)
    label = np.select([home > away, home < away, home == away], ["H", "A", "D"], default="").astype(object)
    label[label == ""] = None  # NaN goals compare False everywhere
    kickoff = _utc(matches["kickoff"])
    return pd.DataFrame(
        {
            "kickoff": kickoff,
            "home_team": matches["home_team"].to_numpy(dtype=object),
            "label": label,
            "label_time": kickoff + pd.Timedelta(hours=result_delay_hours),
        }
    )


# --- request-time and derived features -----------------------------------------------------


def match_context(columns: Mapping[str, np.ndarray], league: str = "bundesliga") -> dict[str, np.ndarray]:
    """What the fixture itself says: the pairing and league keys, the local day and hour of the
    kickoff, and the phase of the season from the round."""
    local = pd.DatetimeIndex(columns["kickoff"]).tz_localize("UTC").tz_convert(LOCAL_TZ)
    matchday = columns["round"]
    return {
        "pairing": pairing_of(columns["home_team"], columns["away_team"]),
        "league": np.full(len(matchday), league, dtype=object),
        "weekday": np.asarray(local.dayofweek, dtype=np.int64),
        "kickoff_hour": np.asarray(local.hour, dtype=np.int64),
        "season_phase": np.select([matchday <= 11, matchday <= 23], ["early", "middle"], "late").astype(object),
    }


def elo_difference(columns: Mapping[str, np.ndarray], newcomer: float = 1450.0) -> np.ndarray:
    """Home rating minus away rating; a team without a rating (promoted) counts as ``newcomer``,
    the rating ``elo_ratings`` gives it on its first match."""
    return _filled(columns["home_elo"], newcomer) - _filled(columns["away_elo"], newcomer)


def difference(columns: Mapping[str, np.ndarray], first: str, second: str) -> np.ndarray:
    """``first - second`` (missing when either is)."""
    return np.asarray(columns[first], dtype=np.float64) - np.asarray(columns[second], dtype=np.float64)


# --- source tables -------------------------------------------------------------------------


def team_form(
    tables: Mapping[str, pd.DataFrame],
    side: str,
    windows: list[int],
    venue: str = "all",
    renamed: Mapping[str, str] | None = None,
    result_delay_hours: float = RESULT_DELAY_HOURS,
) -> pd.DataFrame:
    """Trailing form per team: points and goal difference per match over its last ``w``
    finished matches, for each ``w`` in ``windows`` (fewer at the start of its history).

    ``side`` (``home`` / ``away``) names the request entity the rows are keyed by
    (``home_team`` / ``away_team``) and prefixes the features. ``venue: all`` counts every
    match; ``venue: same`` only the matches the team played on that side (the home team's home
    matches, the away team's away matches) and prefixes ``<side>_venue``. A row is stamped when
    its newest match finished.
    """
    rows = _team_rows(tables["matches"], renamed, result_delay_hours)
    if venue == "same":
        rows = rows[rows["venue"] == side]
    elif venue != "all":
        raise ValueError(f"venue must be 'all' or 'same', not {venue!r}")
    prefix = side if venue == "all" else f"{side}_venue"
    rows = rows.sort_values(["club", "known_at"], kind="stable").reset_index(drop=True)
    out = pd.DataFrame({"club": rows["club"], "event_timestamp": rows["known_at"]})
    for w in windows:
        means = _trailing_means(rows, "club", ["points", "goal_diff"], w)
        out[f"{prefix}_ppm_{w}"] = means["points"]
        out[f"{prefix}_gd_{w}"] = means["goal_diff"]
    return _keyed_by_names(_last_per_stamp(out, ["club"]), "club", f"{side}_team", rows)


def head_to_head(
    tables: Mapping[str, pd.DataFrame],
    meetings: int,
    renamed: Mapping[str, str] | None = None,
    result_delay_hours: float = RESULT_DELAY_HOURS,
) -> pd.DataFrame:
    """The last ``meetings`` finished meetings of two clubs, at either ground, from the first
    club's point of view: keyed by ``pairing`` (``team|opponent``), the number of meetings
    counted (at most ``meetings``), points and goal difference per meeting."""
    rows = _team_rows(tables["matches"], renamed, result_delay_hours)
    rows["pair"] = pairing_of(rows["club"], rows["opponent_club"])
    rows = rows.sort_values(["pair", "known_at"], kind="stable").reset_index(drop=True)
    means = _trailing_means(rows, "pair", ["points", "goal_diff"], meetings)
    out = pd.DataFrame(
        {
            "club": rows["club"],
            "opponent_club": rows["opponent_club"],
            "event_timestamp": rows["known_at"],
            "h2h_meetings": np.minimum(rows.groupby("pair").cumcount().to_numpy() + 1, meetings),
            "h2h_ppm": means["points"],
            "h2h_gd": means["goal_diff"],
        }
    )
    out = _last_per_stamp(out, ["club", "opponent_club"])
    # Every spelling of both clubs: one row per (name of the team, name of the opponent).
    names = _names_by_club(rows)
    out = out.merge(names.rename(columns={"name": "team_name"}), on="club")
    out = out.merge(names.rename(columns={"club": "opponent_club", "name": "opponent_name"}), on="opponent_club")
    out["pairing"] = pairing_of(out["team_name"], out["opponent_name"])
    columns = ["pairing", "event_timestamp", "h2h_meetings", "h2h_ppm", "h2h_gd"]
    return out[columns].sort_values(["pairing", "event_timestamp"], kind="stable").reset_index(drop=True)


def league_trend(
    tables: Mapping[str, pd.DataFrame],
    matches: int,
    league: str = "bundesliga",
    result_delay_hours: float = RESULT_DELAY_HOURS,
) -> pd.DataFrame:
    """The league's recent climate over its last ``matches`` finished matches (306 = one
    season): shares of home wins, draws and away wins, goals per match. Keyed by ``league``."""
    played = _played(tables["matches"])
    home = played["home_goals"].to_numpy(dtype=np.float64)
    away = played["away_goals"].to_numpy(dtype=np.float64)
    rows = pd.DataFrame(
        {
            "league": league,
            "known_at": _utc(played["kickoff"]) + pd.Timedelta(hours=result_delay_hours),
            "home_team": played["home_team"].to_numpy(dtype=object),
            "home_win": (home > away).astype(np.float64),
            "draw": (home == away).astype(np.float64),
            "away_win": (home < away).astype(np.float64),
            "goals": home + away,
        }
    )
    rows = rows.sort_values(["known_at", "home_team"], kind="stable").reset_index(drop=True)
    means = _trailing_means(rows, "league", ["home_win", "draw", "away_win", "goals"], matches)
    out = pd.DataFrame(
        {
            "league": rows["league"],
            "event_timestamp": rows["known_at"],
            "league_home_win_rate": means["home_win"],
            "league_draw_rate": means["draw"],
            "league_away_win_rate": means["away_win"],
            "league_goals_pm": means["goals"],
        }
    )
    return _last_per_stamp(out, ["league"])


def elo_ratings(
    tables: Mapping[str, pd.DataFrame],
    side: str,
    k: float = 20.0,
    home_advantage: float = 100.0,
    newcomer: float = 1450.0,
    reset_after_days: float = 150.0,
    renamed: Mapping[str, str] | None = None,
    result_delay_hours: float = RESULT_DELAY_HOURS,
) -> pd.DataFrame:
    """Elo rating of every club after each of its matches, stamped when the match finished.

    Computed sequentially (one pass over the matches in kickoff order). A club starts at
    ``newcomer`` on its first match, and again when its previous finished match is more than
    ``reset_after_days`` before the kickoff (relegated, then promoted back): keep it equal to
    the view's TTL, so that a lookup finds no rating exactly when the loop restarts the club.
    The update is ``k * margin * (score - expected)``, with ``expected`` from the rating
    difference plus ``home_advantage`` and ``margin`` 1, 1.5, (11 + goal difference) / 8 for a
    goal difference of <= 1, 2, >= 3 (the World Football Elo rule).
    """
    played = _played(tables["matches"])
    rename = dict(renamed or {})
    home = _clubs(played["home_team"], rename)
    away = _clubs(played["away_team"], rename)
    kickoff = _utc(played["kickoff"])
    starts = kickoff.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").astype(np.int64)
    order = np.lexsort((home, starts))
    home, away, starts = home[order], away[order], starts[order]
    ends = starts + int(result_delay_hours * 3600 * 1e9)
    goal_diff = (played["home_goals"].to_numpy(dtype=np.float64) - played["away_goals"].to_numpy(dtype=np.float64))[
        order
    ]
    score = np.where(goal_diff > 0, 1.0, np.where(goal_diff < 0, 0.0, 0.5))
    margin = np.abs(goal_diff)
    multiplier = np.where(margin <= 1, 1.0, np.where(margin == 2, 1.5, (11.0 + margin) / 8.0))
    reset_ns = int(reset_after_days * 86400 * 1e9)

    # history[club]: (finished at, rating after) of its matches, in kickoff order.
    history: dict[str, list[tuple[int, float]]] = {}

    def rating_at(club: str, t: int) -> float:
        # The newest rating finished by t; a club whose previous match ended more than
        # reset_ns before t starts again at newcomer.
        for finished, rating in reversed(history.get(club, [])):
            if finished <= t:
                return rating if t - finished <= reset_ns else newcomer
        return newcomer

    after_home = np.empty(len(home))
    after_away = np.empty(len(home))
    for i in range(len(home)):
        h, a, t = home[i], away[i], starts[i]
        r_home, r_away = rating_at(h, t), rating_at(a, t)
        delta = k * multiplier[i] * (score[i] - _expected_score(r_home + home_advantage - r_away))
        after_home[i], after_away[i] = r_home + delta, r_away - delta
        history.setdefault(h, []).append((ends[i], after_home[i]))
        history.setdefault(a, []).append((ends[i], after_away[i]))

    stamps = pd.to_datetime(np.concatenate([ends, ends])).tz_localize("UTC")
    out = pd.DataFrame(
        {"club": np.concatenate([home, away]), "event_timestamp": stamps, f"{side}_elo": np.r_[after_home, after_away]}
    )
    out = out.sort_values(["club", "event_timestamp"], kind="stable").reset_index(drop=True)
    clubs = pd.DataFrame({"club": np.r_[played["home_team"], played["away_team"]]})
    clubs["name"] = clubs["club"]
    clubs["club"] = _clubs(clubs["club"], rename)
    return _keyed_by_names(_last_per_stamp(out, ["club"]), "club", f"{side}_team", clubs)


# --- helpers -------------------------------------------------------------------------------


def _utc(values: pd.Series) -> pd.Series:
    """A timestamp column as tz-aware UTC (naive values are taken as UTC)."""
    times = pd.to_datetime(values)
    return times.dt.tz_localize("UTC") if times.dt.tz is None else times.dt.tz_convert("UTC")


def _expected_score(rating_difference: float) -> float:
    return 1.0 / (1.0 + 10.0 ** (-rating_difference / 400.0))


def _clubs(names: pd.Series, rename: Mapping[str, str]) -> np.ndarray:
    """Club names as of the newest name (``rename``: old -> new)."""
    return names.replace(dict(rename)).to_numpy(dtype=object) if rename else names.to_numpy(dtype=object)


def _filled(values: np.ndarray, default: float) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return np.where(np.isnan(values), default, values)


def _played(matches: pd.DataFrame) -> pd.DataFrame:
    """Matches with a kickoff and a score."""
    return matches.dropna(subset=["kickoff", "home_goals", "away_goals"])


def _team_rows(matches: pd.DataFrame, renamed: Mapping[str, str] | None, result_delay_hours: float) -> pd.DataFrame:
    """Two rows per finished match, one per team: its club (the newest name), the name it
    played under, opponent's club, venue, when the result was known, goals, goal difference
    and points."""
    played = _played(matches)
    rename = dict(renamed or {})
    known = _utc(played["kickoff"]) + pd.Timedelta(hours=result_delay_hours)
    home_goals = played["home_goals"].to_numpy(dtype=np.float64)
    away_goals = played["away_goals"].to_numpy(dtype=np.float64)
    sides = []
    for venue, team, opponent, scored, conceded in (
        ("home", "home_team", "away_team", home_goals, away_goals),
        ("away", "away_team", "home_team", away_goals, home_goals),
    ):
        sides.append(
            pd.DataFrame(
                {
                    "name": played[team].to_numpy(dtype=object),
                    "club": _clubs(played[team], rename),
                    "opponent_club": _clubs(played[opponent], rename),
                    "venue": venue,
                    "known_at": known.array,
                    "goals_for": scored,
                    "goals_against": conceded,
                }
            )
        )
    rows = pd.concat(sides, ignore_index=True)
    rows["goal_diff"] = rows["goals_for"] - rows["goals_against"]
    rows["points"] = np.select(
        [rows["goals_for"] > rows["goals_against"], rows["goals_for"] == rows["goals_against"]], [3.0, 1.0], 0.0
    )
    return rows


def _trailing_means(rows: pd.DataFrame, key: str, columns: list[str], n: int) -> pd.DataFrame:
    """Mean of ``columns`` over each row and the ``n - 1`` rows before it with the same key
    (rows sorted by key, then time): cumulative sums minus the sums ``n`` rows back."""
    groups = rows.groupby(key, sort=False)
    totals = groups[columns].cumsum()
    before = totals.groupby(rows[key], sort=False).shift(n).fillna(0.0)
    count = np.minimum(groups.cumcount().to_numpy() + 1, n)
    return (totals - before).div(count, axis=0)


def _last_per_stamp(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per key and timestamp: the last, which counts every result known by then."""
    return frame.drop_duplicates([*keys, "event_timestamp"], keep="last").reset_index(drop=True)


def _names_by_club(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[["club", "name"]].drop_duplicates().reset_index(drop=True)


def _keyed_by_names(frame: pd.DataFrame, club: str, key: str, rows: pd.DataFrame) -> pd.DataFrame:
    """``frame`` keyed by club, re-keyed by every name the club played under (``key``)."""
    names = _names_by_club(rows).rename(columns={"club": club, "name": key})
    out = frame.merge(names, on=club).drop(columns=club)
    ordered = [key, "event_timestamp", *(c for c in out.columns if c not in (key, "event_timestamp"))]
    return out[ordered].sort_values([key, "event_timestamp"], kind="stable").reset_index(drop=True)
