"""Table-level quality gates (``quality:`` per table) and ``noria data show ID --quarantine``.

A gate judges a whole table of one ingest: past its threshold the ingest is refused (nothing
written but the quarantined rows, kept for a look) or, with ``on_fail: warn``, the snapshot is
made and carries the warning in the summary and the lineage record.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from noria.cli import app
from noria.config import load_project, parse_config
from noria.data.ingest import ingest
from noria.data.snapshots import list_snapshots
from noria.errors import ConfigError, DataError

CONFIG = textwrap.dedent(
    """\
    project: gates
    data:
      source: {kind: directory, path: raw}
      tables:
        trips:
          file: trips.csv
          primary_key: [year, month, day]
          partition: {year: year, month: month}
          columns:
            year: {type: int}
            month: {type: int}
            day: {type: int, min: 1, max: 31}
            minutes: {type: float, nullable: true}
            note: {type: str, nullable: true}
          quality:
            max_quarantined: 0.1
            max_missing: {"*": 0.5, minutes: 0.2}
            min_rows_vs_previous: 0.5
        places:
          file: places.csv
          primary_key: [place]
          columns:
            place: {type: str}
          quality: {min_rows_vs_previous: 0.5}
    model:
      task: regression
      target: {column: minutes}
    """
)
runner = CliRunner()


def _rows(month: int, days: int, *, minutes: str = "{d}", bad: int = 0) -> list[str]:
    rows = [f"2013,{month},{d},{minutes.format(d=d)},n{d}" for d in range(1, days + 1)]
    return rows + [f"2013,{month},{40 + i},1,x" for i in range(bad)]  # day 40: quarantined


def _write(root: Path, rows: list[str], places: int = 10) -> None:
    (root / "raw" / "trips.csv").write_text("\n".join(["year,month,day,minutes,note", *rows]) + "\n")
    (root / "raw" / "places.csv").write_text("\n".join(["place", *(f"P{i}" for i in range(places))]) + "\n")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "gates"
    (root / "raw").mkdir(parents=True)
    (root / "noria.yaml").write_text(CONFIG, encoding="utf-8")
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    return root


def _set_on_fail(root: Path, value: str) -> None:
    config = yaml.safe_load((root / "noria.yaml").read_text())
    for table in config["data"]["tables"].values():
        table["quality"]["on_fail"] = value
    (root / "noria.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def test_too_many_quarantined_rows_refuse_the_ingest_and_keep_the_rows_for_a_look(root: Path) -> None:
    _write(root, _rows(1, 20, bad=3))  # 3 of 23 quarantined: 13 % > 10 %
    with pytest.raises(DataError) as err:
        ingest(load_project(root, environ={}), "2013-01", "2013-01")
    text = str(err.value)
    assert (
        "ingest refused by 1 quality gate(s): table 'trips': gate quarantined: 3 of 23 rows quarantined (13.0%)" in text
    )
    assert "more than max_quarantined 10.0% (most broken: day: above maximum x3)" in text
    assert "raise data.tables.trips.quality.max_quarantined" in text and "on_fail: warn" in text
    assert list_snapshots(load_project(root, environ={})) == []  # nothing written ...
    kept = list((root / "data" / "quarantine" / "trips").glob("*.parquet"))
    assert len(kept) == 1 and str(kept[0].relative_to(root)) in text  # ... but the rows to look at


def test_missing_shares_per_column_and_for_every_column(root: Path) -> None:
    rows = _rows(1, 10, minutes="{d}")
    rows = [r.rsplit(",", 1)[0] + "," if i < 6 else r for i, r in enumerate(rows)]  # note missing in 6 of 10
    rows = [r.replace("2013,1,9,9,", "2013,1,9,,").replace("2013,1,10,10,", "2013,1,10,,") for r in rows]
    rows.append("2013,1,11,,n11")  # minutes missing in 3 of 11: 27 % > 20 %
    _write(root, rows)
    with pytest.raises(DataError) as err:
        ingest(load_project(root, environ={}), "2013-01", "2013-01")
    text = str(err.value)
    assert "refused by 2 quality gate(s)" in text
    assert "gate missing:minutes: minutes is missing in 27.3% of 11 accepted rows, more than max_missing 20.0%" in text
    assert "gate missing:note: note is missing in 54.5% of 11 accepted rows, more than max_missing 50.0%" in text


def test_a_truncated_month_or_table_is_refused_against_the_snapshot_before(root: Path) -> None:
    project = load_project(root, environ={})
    _write(root, [*_rows(1, 20), *_rows(2, 18)])
    ingest(project, "2013-01", "2013-02")
    _write(root, [*_rows(1, 20), *_rows(2, 18), *_rows(3, 20), *_rows(4, 6)], places=4)
    with pytest.raises(DataError) as err:
        ingest(project, "2013-03", "2013-04")
    text = str(err.value)
    assert (
        "table 'trips': gate rows_vs_previous: 1 month(s) hold fewer than 50% of the 19 rows of a typical month"
        " in the snapshot before (2013-04: 6 rows)" in text
    )
    assert "table 'places': gate rows_vs_previous: 4 rows, 40% of the 10 in the snapshot before (min 50%)" in text
    assert len(list_snapshots(project)) == 1


def test_a_label_column_with_no_value_is_refused(root: Path) -> None:
    project = load_project(root, environ={})
    _write(root, _rows(1, 5, minutes=""))
    with pytest.raises(DataError, match="gate label_missing: the label column minutes"):
        ingest(project, "2013-01", "2013-01")


def test_warn_makes_the_snapshot_and_records_and_prints_the_warning(root: Path) -> None:
    _set_on_fail(root, "warn")
    _write(root, _rows(1, 20, bad=3))
    result = runner.invoke(app, ["--project", str(root), "data", "ingest", "--from", "2013-01", "--to", "2013-01"])
    assert result.exit_code == 0, result.output
    assert "warning: table 'trips': gate quarantined: 3 of 23 rows quarantined" in result.output
    record = list_snapshots(load_project(root, environ={}))[0]
    assert record.tables["trips"].warnings == [
        "gate quarantined: 3 of 23 rows quarantined (13.0%), more than max_quarantined 10.0%"
        " (most broken: day: above maximum x3)"
    ]
    shown = runner.invoke(app, ["--project", str(root), "data", "show", record.short_id])
    assert "warning: table 'trips': gate quarantined" in shown.output


def test_data_show_quarantine_prints_the_rows_with_their_reasons(root: Path) -> None:
    _set_on_fail(root, "warn")
    _write(root, _rows(1, 20, bad=3))
    runner.invoke(app, ["--project", str(root), "data", "ingest", "--from", "2013-01", "--to", "2013-01"])
    base = ["--project", str(root), "data", "show", "latest", "--quarantine"]
    shown = runner.invoke(app, [*base, "--limit", "2"])
    assert shown.exit_code == 0, shown.output
    assert "(2 of 3 shown)" in shown.output and "day=40 is above the maximum 31" in shown.output
    as_json = json.loads(runner.invoke(app, [*base, "--json", "--limit", "0"]).output)
    assert [r["line"] for r in as_json["rows"]] == [22, 23, 24]  # lines of the file
    assert as_json["rows"][0] == {
        "table": "trips",
        "line": 22,
        "reasons": "day=40 is above the maximum 31",
        "row": {"year": "2013", "month": "1", "day": "40", "minutes": "1", "note": "x"},
    }
    ruled = json.loads(runner.invoke(app, [*base, "--json", "--rule", "above the maximum"]).output)
    assert len(ruled["rows"]) == 3
    assert json.loads(runner.invoke(app, [*base, "--json", "--rule", "below the minimum"]).output)["rows"] == []
    none = runner.invoke(app, [*base, "--table", "places"])
    assert "its ingest quarantined no rows of places" in none.output
    wrong = runner.invoke(app, [*base, "--table", "nope"])
    assert wrong.exit_code != 0 and "has no table 'nope'" in wrong.output


@pytest.mark.parametrize(
    ("quality", "message"),
    [
        ("{max_missing: {nope: 0.1}}", "quality.max_missing names 'nope', not declared under columns"),
        ("{max_missing: {place: 5}}", "max_missing.place is 5.0: a share between 0 and 1"),
        ("{max_quarantined: 2}", "less than or equal to 1"),
        ("{on_fail: ignore}", "refuse"),
    ],
)
def test_gates_that_cannot_work_are_config_errors(quality: str, message: str) -> None:
    text = CONFIG.replace("quality: {min_rows_vs_previous: 0.5}", f"quality: {quality}")
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert message in str(err.value)
