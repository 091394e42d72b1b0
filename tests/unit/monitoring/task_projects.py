"""Tiny real projects of every task for the monitoring tests, and prediction logs written for them.

* ``games``: multi-class (H / D / A), the event key is (kickoff, home) like the football example's,
  ISO weeks of Berlin time; the label is a column of the request table, or a label function
  that says when each result became known (``label_time``, the final whistle) with
  ``mature_after`` for results without one.
* ``small``: binary (late = dep_delay > 15) on a few flights, the event key is the table's
  primary key (year, month, day, carrier, flight) unless given, UTC months.
* ``readings``: regression (a level 30 minutes later), an integer event key, windows from a
  project function (halves of months), labels from a column.

Each is a folder with noria.yaml, features.yaml and a small module, raw CSV files (a directory
source, ingested by :func:`noria.data.ingest.ingest`) and, when asked, a copy of an empty
migrated MLflow database. Prediction logs are written by the service's own writer
(:class:`noria.serving.predlog.PredictionLog`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from noria.config import Project, load_project
from noria.serving.predlog import PredictionLog

CLASSES = ("H", "D", "A")
BERLIN = "Europe/Berlin"

GAMES_YAML = """\
project: games
data:
  source: {kind: directory, path: raw}
  tables:
    games:
      file: games.csv
      primary_key: [kickoff, home]
      partition: {timestamp: kickoff}
      columns:
        kickoff: {type: timestamp}
        home: {type: str}
        rating: {type: float}
        home_goals: {type: int, nullable: true}
        away_goals: {type: int, nullable: true}
        result: {type: str, nullable: true, allowed: [H, D, A]}
        final_whistle: {type: timestamp, nullable: true}
model:
  name: games-result
  task: multiclass
  target: TARGET
windows: {unit: week, timezone: Europe/Berlin}
tracking: {uri: "sqlite:///.noria/mlflow.db"}
monitoring:
  feedback: {min_labels: 20, review_band: 0.1}
  policy: {metric_drop: 0.05, train_windows: 2, test_windows: 1}
"""
GAMES_COLUMN_TARGET = "{column: result, classes: [H, D, A]}"
GAMES_FUNCTION_TARGET = (
    "{function: games_features:match_result, classes: [H, D, A], mature_after: 3h,"
    " tables: {games: [kickoff, home, home_goals, away_goals, final_whistle]}}"
)
GAMES_FEATURES = """\
request:
  table: games
  columns: [kickoff, home, rating]
  ids: [kickoff, home]
  timestamp: games_features:kickoff_time
entities: {}
sources: {}
feature_views: {}
request_views:
  fixture:
    passthrough: [rating]
services:
  main:
    features: [fixture]
"""
GAMES_CODE = '''\
import numpy as np
import pandas as pd


def kickoff_time(columns):
    return columns["kickoff"]


def match_result(tables):
    """H / D / A from the goals, known at the final whistle (missing: mature_after applies)."""
    games = tables["games"]
    home = games["home_goals"].to_numpy(dtype="float64")
    away = games["away_goals"].to_numpy(dtype="float64")
    label = np.select([home > away, home < away, home == away], ["H", "A", "D"], default="").astype(object)
    label[label == ""] = None
    return pd.DataFrame(
        {
            "kickoff": games["kickoff"],
            "home": games["home"],
            "label": label,
            "label_time": games["final_whistle"],
        }
    )
'''

READINGS_YAML = """\
project: readings
data:
  source: {kind: directory, path: raw}
  tables:
    readings:
      file: readings.csv
      primary_key: [reading_id]
      partition: {timestamp: at}
      columns:
        reading_id: {type: int}
        sensor: {type: str}
        at: {type: timestamp}
        level: {type: float}
        later: {type: float, nullable: true}
model:
  name: level-in-30
  task: regression
  target: {column: later, name: level in 30 min, unit: mg/dL, mature_after: 30m}
windows: {unit: function, function: "readings_features:half_month"}
tracking: {uri: "sqlite:///.noria/mlflow.db"}
monitoring:
  feedback: {min_labels: 20}
  kpi: {name: mean absolute error (mg/dL), target: 12}
  policy: {metric_drop: 2.0, train_windows: 2, test_windows: 1}
"""
READINGS_FEATURES = """\
request:
  table: readings
  columns: [reading_id, sensor, at, level]
  timestamp: readings_features:reading_time
entities: {}
sources: {}
feature_views: {}
request_views:
  reading:
    passthrough: [level]
services:
  main:
    features: [reading]
"""
READINGS_CODE = '''\
import numpy as np
import pandas as pd


def reading_time(columns):
    return columns["at"]


def half_month(times):
    """2024-03-a (days 1-15, UTC) or 2024-03-b (the rest): labels that sort chronologically."""
    stamps = pd.DatetimeIndex(np.asarray(times, dtype="datetime64[ns]"))
    half = np.where(stamps.day <= 15, "a", "b")
    out = (stamps.strftime("%Y-%m") + "-" + half).to_numpy(dtype=object)
    out[stamps.isna()] = None
    return out
'''


def _write(root: Path, files: Mapping[str, str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text), encoding="utf-8")
    (root / ".noria").mkdir(exist_ok=True)


def _finish(root: Path, registry: Path | None, git: bool) -> Project:
    if registry is not None:
        shutil.copy(registry, root / ".noria" / "mlflow.db")
    if git:
        subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    return load_project(root, environ={})


# --- small (binary) ----------------------------------------------------------------------------------

SMALL_FEATURES = """\
request:
  table: flights
  columns: [year, month, day, carrier, flight, origin, distance, time_hour]
  timestamp: small_features:departure
IDS
entities: {}
sources: {}
feature_views: {}
request_views:
  trip:
    passthrough: [distance]
services:
  main:
    features: [trip]
"""
SMALL_CODE = """\
def departure(columns):
    return columns["time_hour"]
"""


def small_project(root: Path, flights: pd.DataFrame, *, ids: list[str] | None = None, git: bool = True) -> Project:
    """The tests' small flights project (tests/conftest.py) with a binary target and the flights given."""
    from tests.conftest import SMALL_CONFIG

    config = SMALL_CONFIG + "model:\n  name: small-late\n  target: {column: dep_delay, threshold: 15}\n"
    features = SMALL_FEATURES.replace("IDS", f"  ids: [{', '.join(ids)}]" if ids else "")
    _write(root, {"noria.yaml": config, "features.yaml": features, "small_features.py": SMALL_CODE})
    raw = root / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    flights.assign(time_hour=_iso(flights["time_hour"])).to_csv(raw / "flights.csv", index=False)
    (raw / "planes.csv").write_text("tailnum,seats\nN1,100\n", encoding="utf-8")
    return _finish(root, None, git)


def small_flights(n: int = 60, seed: int = 3) -> pd.DataFrame:
    """``n`` flights over February and March 2013 (UTC); every 10th has no delay (cancelled)."""
    rng = np.random.default_rng(seed)
    when = pd.Timestamp("2013-02-01T06:00:00Z") + pd.to_timedelta(np.sort(rng.choice(55 * 24, n, replace=False)), "h")
    delay = np.round(rng.normal(10, 20, n))
    delay[np.arange(n) % 10 == 4] = np.nan
    return pd.DataFrame(
        {
            "year": when.year,
            "month": when.month,
            "day": when.day,
            "carrier": rng.choice(["UA", "AA"], n),
            "flight": rng.integers(1, 6, n),
            "dep_delay": delay,
            "distance": rng.uniform(100, 2000, n).round(),
            "origin": rng.choice(["EWR", "JFK", "LGA"], n),
            "time_hour": when,
        }
    ).drop_duplicates(["year", "month", "day", "carrier", "flight"], ignore_index=True)


# --- games (multi-class) ---------------------------------------------------------------------------


def games_table(n: int = 240, seed: int = 0, start: str = "2024-03-04T08:00:00+01:00", days: int = 27) -> pd.DataFrame:
    """``n`` games over ``days`` days from ``start`` (Berlin time; DST starts on 31 March 2024).

    Every 15th game has no score (no label); every 4th has no final whistle (its label is
    known ``mature_after`` after kickoff).
    """
    rng = np.random.default_rng(seed)
    base = pd.Timestamp(start).tz_convert("UTC")
    minutes = np.sort(rng.choice(days * 24 * 60, size=n, replace=False))
    kickoff = base + pd.to_timedelta(minutes, unit="m")
    home_goals = rng.integers(0, 4, n).astype("float64")
    away_goals = rng.integers(0, 3, n).astype("float64")
    unscored = np.arange(n) % 15 == 7
    home_goals[unscored] = np.nan
    away_goals[unscored] = np.nan
    result = np.select(
        [home_goals > away_goals, home_goals < away_goals, home_goals == away_goals], ["H", "A", "D"], default=""
    ).astype(object)
    result[result == ""] = None
    whistle = pd.Series(kickoff + pd.Timedelta(minutes=110))
    whistle[np.arange(n) % 4 == 1] = pd.NaT
    return pd.DataFrame(
        {
            "kickoff": kickoff,
            "home": rng.choice(["Ajax", "Bayern", "Celtic", "Dynamo"], n).astype(object),
            "rating": np.round(rng.normal(0, 1, n), 3),
            "home_goals": pd.array(home_goals, dtype="Int64"),
            "away_goals": pd.array(away_goals, dtype="Int64"),
            "result": result,
            "final_whistle": whistle.to_numpy(),
        }
    )


def _iso(values: Iterable[Any]) -> list[str]:
    return ["" if pd.isna(v) else pd.Timestamp(v).isoformat() for v in values]


def write_games_raw(root: Path, games: pd.DataFrame) -> None:
    raw = root / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    out = games.assign(kickoff=_iso(games["kickoff"]), final_whistle=_iso(games["final_whistle"]))
    out.to_csv(raw / "games.csv", index=False)


def games_project(
    root: Path,
    games: pd.DataFrame | None = None,
    *,
    function_target: bool = False,
    registry: Path | None = None,
    git: bool = False,
) -> Project:
    target = GAMES_FUNCTION_TARGET if function_target else GAMES_COLUMN_TARGET
    _write(
        root,
        {
            "noria.yaml": GAMES_YAML.replace("TARGET", target),
            "features.yaml": GAMES_FEATURES,
            "games_features.py": GAMES_CODE,
        },
    )
    write_games_raw(root, games if games is not None else games_table())
    return _finish(root, registry, git)


def game_probabilities(games: pd.DataFrame, seed: int) -> np.ndarray:
    """Probabilities of H / D / A per game that lean to the true result (and sum to 1)."""
    rng = np.random.default_rng(seed)
    raw = rng.dirichlet([2.0, 1.0, 1.5], len(games))
    truth = pd.Series(games["result"]).map({c: i for i, c in enumerate(CLASSES)}).to_numpy()
    known = ~pd.isna(truth)
    rows = np.flatnonzero(known)
    raw[rows, truth[known].astype(int)] += 0.6
    probabilities = raw / raw.sum(axis=1, keepdims=True)
    return np.round(probabilities, 4) / np.round(probabilities, 4).sum(axis=1, keepdims=True)


# --- readings (regression) -------------------------------------------------------------------------


def readings_table(n: int = 300, seed: int = 1, start: str = "2024-03-01T00:00:00Z", days: int = 45) -> pd.DataFrame:
    """``n`` readings over ``days`` days; every 20th has no later level (no label)."""
    rng = np.random.default_rng(seed)
    base = pd.Timestamp(start)
    minutes = np.sort(rng.choice(days * 24 * 60, size=n, replace=False))
    level = np.round(rng.normal(120, 25, n), 1)
    later = np.round(level + rng.normal(0, 15, n), 1)
    later[np.arange(n) % 20 == 3] = np.nan
    return pd.DataFrame(
        {
            "reading_id": np.arange(1000, 1000 + n, dtype=np.int64),
            "sensor": rng.choice(["s1", "s2"], n).astype(object),
            "at": base + pd.to_timedelta(minutes, unit="m"),
            "level": level,
            "later": later,
        }
    )


def readings_project(
    root: Path, readings: pd.DataFrame | None = None, *, registry: Path | None = None, git: bool = False
) -> Project:
    _write(
        root,
        {"noria.yaml": READINGS_YAML, "features.yaml": READINGS_FEATURES, "readings_features.py": READINGS_CODE},
    )
    frame = readings if readings is not None else readings_table()
    raw = root / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    frame.assign(at=_iso(frame["at"])).to_csv(raw / "readings.csv", index=False)
    return _finish(root, registry, git)


# --- the prediction log ------------------------------------------------------------------------------


def log_rows(
    project: Project,
    rows: list[dict[str, Any]],
    *,
    keyed_by_writer: bool = False,
) -> int:
    """Write ``rows`` with the service's own writer; ``keyed_by_writer`` lets it compute the event
    key and time from each row's ``input`` with the project's code. Returns the rows written."""
    folder = project.path(project.config.serving.prediction_log.dir)
    log = PredictionLog(
        folder, roll_rows=100_000, roll_seconds=3600, project_root=project.root if keyed_by_writer else None
    )
    log.write(rows)
    log.close()
    assert log.dropped == 0, f"{log.dropped} rows dropped by the prediction log"
    return log.rows_written


def base_row(i: int, version: int, arm: str = "champion", served: bool = True) -> dict[str, Any]:
    return {
        "request_id": f"req-{i}",
        "row": 0,
        "timestamp": 1.7e9 + i,
        "endpoint": "/predict",
        "status": 200,
        "model_name": "",
        "model_version": version,
        "arm": arm,
        "served": served,
        "input": "{}",
        "ood": False,
        "ood_reasons": [],
    }


def multiclass_row(
    i: int, kickoff: pd.Timestamp, home: str, p: np.ndarray, version: int, **extra: Any
) -> dict[str, Any]:
    top = int(np.argmax(p))
    return base_row(i, version, **extra) | {
        "model_name": "games-result",
        "score": float(p[top]),
        "predicted_class": CLASSES[top],
        "probabilities": [float(v) for v in p],
        "event_time": kickoff.timestamp(),
        "keys": {"kickoff": kickoff.timestamp(), "home": home},
        "features": {"rating": 0.1 * (i % 7)},
    }


def regression_input(reading: Mapping[str, Any]) -> str:
    """A request body the readings service takes (its generated request model)."""
    return json.dumps(
        {
            "reading_id": int(reading["reading_id"]),
            "sensor": str(reading["sensor"]),
            "at": pd.Timestamp(reading["at"]).isoformat(),
            "level": float(reading["level"]),
        }
    )
