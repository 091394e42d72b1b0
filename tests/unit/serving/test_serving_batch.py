"""Batch scoring of a Parquet file: same scores as the model, streamed in chunks, delivery recorded."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, cast

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import typer
from tests.unit.serving.serving_support import FLIGHT, training_frame
from typer.testing import CliRunner

from noria.cli._state import State
from noria.cli.serve import predict as predict_command
from noria.cli.serve import serve as serve_command
from noria.config import Project
from noria.errors import MissingExtraError, NotFoundError, ValidationError
from noria.serving.batch import list_deliveries, prepare, score_file
from noria.serving.batch_spark import refuse_lookups


def _flights(n: int) -> pd.DataFrame:
    frame, _ = training_frame(seed=11, n=n)
    rows = pd.DataFrame([FLIGHT] * n)
    rows["scheduled_departure"] = pd.date_range("2013-07-01 09:15", periods=n, freq="17min", tz="UTC")
    rows["carrier"] = frame["carrier"].astype(str).to_numpy()
    for col in ("visib", "temp"):
        rows[col] = frame[col].to_numpy()
    rows["distance"] = frame["distance"].to_numpy()
    rows["origin"] = frame["origin"].astype(str).to_numpy()
    return rows


def test_scores_a_file_in_chunks_like_the_model_and_records_the_delivery(
    served_project: Project, booster: lgb.Booster, tmp_path: Path
) -> None:
    flights = _flights(23)
    flights.loc[3, "carrier"] = "ZZ"
    src = tmp_path / "flights.parquet"
    flights.to_parquet(src)
    result = score_file(served_project, src, tmp_path / "out" / "scored.parquet", chunk_size=5, explain=True)
    scored = pd.read_parquet(result.output)
    assert len(scored) == 23 and list(scored.columns[: len(flights.columns)]) == list(flights.columns)
    model_frame = flights[["visib", "temp", "distance", "carrier", "origin"]].copy()
    model_frame["carrier"] = pd.Categorical(model_frame["carrier"], categories=["AA", "DL", "UA"])
    model_frame["origin"] = pd.Categorical(model_frame["origin"], categories=["EWR", "JFK", "LGA"])
    np.testing.assert_allclose(scored["probability"], booster.predict(model_frame, num_threads=1), atol=1e-12)
    assert scored.loc[3, "ood"] and "carrier 'ZZ'" in scored.loc[3, "ood_reasons"]
    assert set(scored["model_version"]) == {1} and scored["explanation"].str.contains("points").all()
    record = result.record
    assert (record.status, record.rows_in, record.rows_out, record.model_version) == ("succeeded", 23, 23, 1)
    assert record.ood_rows >= 1 and record.extra == {"chunk_size": 5}
    assert [d.id for d in list_deliveries(served_project)][-1] == record.id
    assert not list((tmp_path / "out").glob(".*"))  # no temp file left behind


def test_an_empty_file_gives_an_empty_output_with_the_prediction_columns(
    served_project: Project, tmp_path: Path
) -> None:
    src = tmp_path / "empty.parquet"
    _flights(3).iloc[:0].to_parquet(src)
    result = score_file(served_project, src, tmp_path / "scored.parquet")
    scored = pd.read_parquet(result.output)
    assert scored.empty and {"probability", "late", "ood"} <= set(scored.columns)
    assert result.record.rows_in == 0 and result.record.status == "succeeded"


def test_missing_or_broken_input_fails_with_a_clear_error(served_project: Project, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no input file"):
        score_file(served_project, tmp_path / "nope.parquet", tmp_path / "out.parquet")
    broken = tmp_path / "broken.parquet"
    broken.write_text("not parquet", encoding="utf-8")
    with pytest.raises(Exception, match="not a readable Parquet"):
        score_file(served_project, broken, tmp_path / "out.parquet")


def _cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context, project: Path = typer.Option(None, "--project")) -> None:
        ctx.obj = State(project=project)

    app.command("serve")(serve_command)
    app.command("predict")(predict_command)
    return app


def test_cli_predict_and_serve_refusal(served_project: Project, tmp_path: Path) -> None:
    src = tmp_path / "flights.parquet"
    _flights(4).to_parquet(src)
    runner = CliRunner()
    out = tmp_path / "scored.parquet"
    done = runner.invoke(_cli(), ["--project", str(served_project.root), "predict", "-i", str(src), "-o", str(out)])
    assert done.exit_code == 0, done.output
    assert "scored 4 of 4 rows with flight-delay version 1" in done.output and out.is_file()
    refused = runner.invoke(_cli(), ["--project", str(served_project.root), "serve"], env={"NORIA_API_KEYS": ""})
    assert refused.exit_code != 0 and "no API key configured" in str(refused.exception)
    for command in ("serve", "predict"):
        assert "Example" in runner.invoke(_cli(), [command, "--help"]).output


def test_the_spark_engine_without_pyspark_names_the_install_command(
    served_project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # as if not installed, even where it is
    src = tmp_path / "flights.parquet"
    _flights(4).to_parquet(src, coerce_timestamps="us")  # Spark reads microseconds, not pandas' nanoseconds
    before = len(list_deliveries(served_project))
    with pytest.raises(MissingExtraError) as info:
        score_file(served_project, src, tmp_path / "scored", engine="spark")
    assert "noria predict --engine spark needs pyspark" in info.value.message
    assert "pip install 'pyspark>=4.0'" in str(info.value.fix) and "--engine local" in str(info.value.fix)
    assert not (tmp_path / "scored").exists()
    assert len(list_deliveries(served_project)) == before  # refused before a run: no delivery was attempted
    with pytest.raises(ValidationError, match="unknown batch scoring engine"):
        score_file(served_project, src, tmp_path / "scored", engine="dask")
    _flights(4).to_parquet(tmp_path / "nanos.parquet")  # pandas writes nanoseconds, which Spark cannot read
    with pytest.raises(ValidationError, match=r"timestamps in nanoseconds \(scheduled_departure\)") as info:
        score_file(served_project, tmp_path / "nanos.parquet", tmp_path / "scored", engine="spark")
    assert "coerce_timestamps='us'" in str(info.value.fix)


def test_the_spark_engine_refuses_rows_whose_features_the_local_engine_would_look_up(
    served_project: Project,
) -> None:
    prepared = prepare(served_project)
    columns = [*prepared.model.features, "carrier"]
    refuse_lookups(prepared, columns[1:], True)  # no feature store: missing features are missing, as locally
    with_store = dataclasses.replace(prepared, features=cast(Any, object()))
    refuse_lookups(with_store, columns, True)  # every feature inline: nothing to look up
    refuse_lookups(with_store, [], False)  # no rows: nothing to look up either
    with pytest.raises(ValidationError, match=r"lacks 1 of the 5 features .*\(visib\)") as info:
        refuse_lookups(with_store, columns[1:], True)
    assert "--engine local" in str(info.value.fix) and "online_features: off" in str(info.value.fix)


def test_a_folder_of_parquet_files_is_scored_as_one_input(served_project: Project, tmp_path: Path) -> None:
    folder = tmp_path / "requests"
    folder.mkdir()
    flights = _flights(9)
    for i, start in enumerate(range(0, 9, 4)):
        flights.iloc[start : start + 4].to_parquet(folder / f"part-{i}.parquet", index=False)
    (folder / "_SUCCESS").write_text("", encoding="utf-8")  # markers are skipped, as Spark skips them
    whole = score_file(served_project, folder, tmp_path / "from_folder.parquet", chunk_size=3)
    flights.to_parquet(tmp_path / "one.parquet", index=False)
    one = score_file(served_project, tmp_path / "one.parquet", tmp_path / "from_file.parquet", chunk_size=3)
    pd.testing.assert_frame_equal(pd.read_parquet(whole.output), pd.read_parquet(one.output), check_exact=True)
    assert whole.record.rows_in == whole.record.rows_out == 9
