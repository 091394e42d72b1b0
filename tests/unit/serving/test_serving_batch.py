"""Batch scoring of a Parquet file: same scores as the model, streamed in chunks, delivery recorded."""

from __future__ import annotations

from pathlib import Path

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
from noria.errors import NotFoundError
from noria.serving.batch import list_deliveries, score_file


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
        assert "Example:" in runner.invoke(_cli(), [command, "--help"]).output
