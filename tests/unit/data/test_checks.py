"""Data contracts beyond single columns: every row of a source file accounted for whatever the
month range, partitions that cannot be read quarantined, and the declared ``checks:`` of a table
(HHMM times, dates that exist, columns present together, order, uniqueness, project functions)."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from noria.config import load_project, parse_config
from noria.data.ingest import ingest
from noria.data.validate import validate_table
from noria.errors import ConfigError

CONFIG = textwrap.dedent(
    """\
    project: contracts
    data:
      source: {kind: directory, path: raw}
      tables:
        trips:
          file: trips.csv
          primary_key: [year, month, day, trip]
          partition: {year: year, month: month}
          columns:
            year: {type: int}
            month: {type: int}
            day: {type: int}
            trip: {type: int}
            sched_dep: {type: int}
            dep: {type: int, nullable: true}
            delay: {type: float, nullable: true}
            sched_arr: {type: int, nullable: true}
            seat: {type: str, nullable: true}
          checks:
            - {name: hhmm_times, hhmm: [sched_dep, dep]}
            - {name: real_date, date: {year: year, month: month, day: day}}
            - {name: departed_has_delay, requires: [delay], when: dep}
            - {name: arrives_after_departure, column: sched_arr, not_before: sched_dep}
            - {name: one_trip_per_seat, unique_within: [year, month, day, seat]}
            - name: short_delay
              function: "contract_checks:delay_is_short"
              reason: delays over 10 hours are typing errors
    """
)
HEADER = "year,month,day,trip,sched_dep,dep,delay,sched_arr,seat"
CODE = """\
def delay_is_short(frame):
    return frame["delay"].isna() | (frame["delay"].abs() <= 600)  # no delay: nothing to judge
"""


def _good_rows(month: int, n: int) -> list[str]:
    return [f"2013,{month},{d},{d},{800 + d},{805 + d},{5 + d},{1100 + d},S{d}" for d in range(1, n + 1)]


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    root = tmp_path / "contracts"
    (root / "raw").mkdir(parents=True)
    (root / "noria.yaml").write_text(CONFIG, encoding="utf-8")
    (root / "contract_checks.py").write_text(CODE, encoding="utf-8")
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    return root


def _write(root: Path, rows: list[str]) -> None:
    (root / "raw" / "trips.csv").write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")


BAD_PARTITIONS = [
    *(f"2013,13,{d},{100 + d},900,905,5,1000,M{d}" for d in range(1, 6)),  # month 13: no partition
    *(f"2013,2,30,{200 + i},900,905,5,1000,F{i}" for i in range(5)),  # 30 February
]


def test_every_row_of_the_file_is_accounted_for_in_every_range(project_dir: Path) -> None:
    """Month 13 and 30 February, from the issue: never skipped, whatever the range asked for."""
    _write(project_dir, [*_good_rows(1, 20), *_good_rows(2, 10), *_good_rows(3, 6), *BAD_PARTITIONS])
    project = load_project(project_dir, environ={})
    january = ingest(project, "2013-01", "2013-01").record.tables["trips"]
    # month 13 has no partition, so the ingest that reads the file quarantines it: all 5 rows
    assert (january.file_rows, january.outside_range) == (46, 21)
    assert (january.read, january.accepted, january.quarantined) == (25, 20, 5)
    assert january.file_rows == january.read + january.outside_range
    assert january.rules == {"month: not a month": 5, "check real_date": 5}
    q = pd.read_parquet(project_dir / str(january.quarantine_file))
    assert q["_rule"].str.startswith("month=13 is not a month (1-12): the row belongs to no partition; ").all()
    assert sorted(q["_source_row"]) == [38, 39, 40, 41, 42]  # lines of the file, after the header

    february = ingest(project, "2013-02", "2013-03").record.tables["trips"]
    assert (february.file_rows, february.outside_range) == (46, 20)
    assert (february.read, february.accepted, february.quarantined) == (26, 16, 10)
    q = pd.read_parquet(project_dir / str(february.quarantine_file))
    assert q["_rule"].str.startswith("2013-2-30 (year, month, day) is not a date and time that exists").sum() == 5
    assert february.rules == {"month: not a month": 5, "check real_date": 10}

    # the same rows again: the snapshot is the one already made (January + February-March)
    assert ingest(project, None, None).unchanged

    fresh = project_dir.parent / "again"
    shutil.copytree(project_dir, fresh, ignore=shutil.ignore_patterns(".noria", ".dvc", "data"))
    whole = ingest(load_project(fresh, environ={}), None, None).record.tables["trips"]
    assert (whole.file_rows, whole.outside_range, whole.read, whole.accepted, whole.quarantined) == (46, 0, 46, 36, 10)


def test_each_kind_of_check_quarantines_with_its_name_and_detail(project_dir: Path) -> None:
    rows = [
        *_good_rows(1, 5),
        "2013,1,10,10,1560,1605,5,1800,A",  # sched_dep 15:60
        "2013,1,11,11,900,60,5,1800,B",  # dep 0060: minute 60 of hour 0
        "2013,1,12,12,2400,2400,0,2500,C",  # 2400 is midnight at the end of the day: fine
        "2013,1,13,13,900,905,,1000,D",  # departed without a delay
        "2013,1,14,14,900,,,1000,E",  # cancelled: no departure, no delay: fine
        "2013,1,15,15,900,905,5,830,F",  # arrives before it departs
        "2013,1,16,16,900,905,5,,G",  # no scheduled arrival: not compared
        "2013,1,1,17,900,905,5,1000,S1",  # seat S1 on 2013-01-01 again
        "2013,1,18,18,900,905,900,1000,H",  # a 15-hour delay: the project's function
        "2013,1,19,19,1275,905,700,700,I",  # three checks at once
    ]
    _write(project_dir, rows)
    project = load_project(project_dir, environ={})
    account = ingest(project, "2013-01", "2013-01").record.tables["trips"]
    q = pd.read_parquet(project_dir / str(account.quarantine_file)).set_index("trip")["_rule"].to_dict()
    assert (account.read, account.accepted, account.quarantined) == (15, 8, 7)
    assert q == {
        "10": "sched_dep=1560 is not a clock time HHMM (hour 0-23, minute 0-59) (check hhmm_times)",
        "11": "dep=60 is not a clock time HHMM (hour 0-23, minute 0-59) (check hhmm_times)",
        "13": "delay missing while dep present (check departed_has_delay)",
        "15": "sched_arr=830 is before sched_dep=900 (check arrives_after_departure)",
        "17": "year=2013, month=1, day=1, seat=S1 repeats an earlier row (check one_trip_per_seat)",
        "18": "the row fails the project's function (check short_delay: delays over 10 hours are typing errors)",
        "19": "sched_dep=1275 is not a clock time HHMM (hour 0-23, minute 0-59) (check hhmm_times); "
        "sched_arr=700 is before sched_dep=1275 (check arrives_after_departure); "
        "the row fails the project's function (check short_delay: delays over 10 hours are typing errors)",
    }
    assert account.rules == {
        "check hhmm_times": 3,
        "check departed_has_delay": 1,
        "check arrives_after_departure": 2,
        "check one_trip_per_seat": 1,
        "check short_delay": 2,
    }


def test_a_date_with_a_local_time_must_exist_in_its_zone() -> None:
    """2 March 2013 02:30 in New York is fine; 10 March 02:30 does not exist (the clocks skip it);
    3 November 01:30 happens twice and exists."""
    config = parse_config(
        textwrap.dedent(
            """\
            project: t
            data:
              source: {kind: directory, path: raw}
              tables:
                t:
                  file: t.csv
                  primary_key: [k]
                  columns:
                    k: {type: int}
                    y: {type: int}
                    m: {type: int}
                    d: {type: int}
                    hhmm: {type: int, nullable: true}
                  checks:
                    - name: departs
                      date: {year: y, month: m, day: d, time: hhmm, timezone: America/New_York}
            """
        )
    )
    spec = config.data.tables["t"]
    raw = pd.DataFrame(
        {
            "k": ["1", "2", "3", "4", "5", "6"],
            "y": ["2013"] * 6,
            "m": ["3", "3", "11", "2", "3", "3"],
            "d": ["2", "10", "3", "29", "10", "10"],
            "hhmm": ["230", "230", "130", "1200", "2400", None],
        },
        dtype=object,
    )
    result = validate_table(spec, raw)
    assert sorted(result.accepted["k"].tolist()) == [1, 3, 5, 6]
    assert result.quarantined.set_index("k")["_rule"].to_dict() == {
        "2": "2013-3-10 230 in America/New_York (y, m, d, hhmm) is not a date and time that exists (check departs)",
        "4": "2013-2-29 1200 in America/New_York (y, m, d, hhmm) is not a date and time that exists (check departs)",
    }


@pytest.mark.parametrize(
    ("checks", "message"),
    [
        ("[{name: a, hhmm: [nope]}]", "check 'a' reads 'nope', not declared under columns"),
        ("[{name: a, hhmm: [s]}]", "check 'a': 's' must be int columns"),
        ("[{name: a}]", "check 'a': give exactly one of hhmm, date, requires"),
        ("[{name: a, hhmm: [n], requires: [n]}]", "(it has hhmm, requires)"),
        ("[{name: A b, hhmm: [n]}]", "check name 'A b': use lowercase letters"),
        ("[{name: a, hhmm: [n]}, {name: a, requires: [n]}]", "two checks are named 'a'"),
        ("[{name: a, not_before: n}]", "not_before needs column"),
        ("[{name: a, column: s, not_before: n}]", "'s' and 'n' cannot be ordered"),
        ("[{name: a, when: n, unique_within: [n]}]", "when goes with requires"),
        ("[{name: a, function: nocolon}]", "function is module:function"),
        ("[{name: a, date: {year: n, month: n, day: n, timezone: Mars/Base}}]", "date.timezone applies"),
    ],
)
def test_checks_that_cannot_work_are_config_errors_with_their_line(checks: str, message: str) -> None:
    text = textwrap.dedent(
        f"""\
        project: t
        data:
          source: {{kind: directory, path: raw}}
          tables:
            t:
              file: t.csv
              primary_key: [n]
              columns:
                n: {{type: int}}
                s: {{type: str}}
              checks: {checks}
        """
    )
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert message in str(err.value) and "noria.yaml:11" in str(err.value)


def test_a_function_check_that_breaks_its_contract_names_the_fix(project_dir: Path) -> None:
    (project_dir / "contract_checks.py").write_text(
        CODE + "\n\ndef broken(frame):\n    return frame['delay']\n", encoding="utf-8"
    )
    yaml = (project_dir / "noria.yaml").read_text().replace("contract_checks:delay_is_short", "contract_checks:broken")
    (project_dir / "noria.yaml").write_text(yaml, encoding="utf-8")
    _write(project_dir, _good_rows(1, 3))
    with pytest.raises(ConfigError) as err:
        ingest(load_project(project_dir, environ={}), "2013-01", "2013-01")
    assert "checks 'short_delay': contract_checks:broken returned a float64 Series of 3 rows" in str(err.value)
    assert err.value.fix and "True where the row passes" in err.value.fix
    assert not (project_dir / "data" / "dataset").exists()  # nothing written
