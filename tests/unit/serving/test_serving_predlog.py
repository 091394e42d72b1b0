"""The prediction log writer: rolls by rows and by time, loses nothing on close, files appear atomically."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from noria.serving.predlog import FEATURE_PREFIX, PredictionLog, read_prediction_log


def _row(i: int, features: Any = None) -> dict[str, Any]:
    return {
        "request_id": f"r{i}",
        "row": 0,
        "timestamp": time.time(),
        "endpoint": "/predict",
        "status": 200,
        "model_name": "m",
        "model_version": 1,
        "arm": "champion",
        "served": True,
        "input": b'{"carrier": "UA"}',
        "probability": 0.25,
        "ood_reasons": [],
        "features": features if features is not None else (("temp", "carrier"), [float(i), "UA"]),
    }


def test_rolls_by_rows_and_flushes_the_rest_on_close(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, roll_rows=10, roll_seconds=3600)
    log.write(_row(i) for i in range(25))
    log.close()
    assert [pq.read_metadata(f).num_rows for f in sorted(log.files)] == [10, 10, 5]
    frame = read_prediction_log(tmp_path)
    assert sorted(frame["request_id"]) == sorted(f"r{i}" for i in range(25))
    assert frame[FEATURE_PREFIX + "temp"].sum() == sum(range(25))
    assert set(frame[FEATURE_PREFIX + "carrier"]) == {"UA"} and set(frame["input"]) == {'{"carrier": "UA"}'}
    assert not list(tmp_path.rglob("*.tmp"))  # atomic: only finished files remain
    assert all(f.parent.name.startswith("date=") for f in log.files)


def test_rolls_by_age_without_waiting_for_more_rows(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, roll_rows=1000, roll_seconds=0.2)
    log.write([_row(1)])
    deadline = time.monotonic() + 10
    while not log.files and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(log.files) == 1  # written while the log is still open
    log.write([_row(2)])
    log.close()
    assert len(read_prediction_log(tmp_path)) == 2


def test_rows_of_different_models_share_a_file_with_the_union_of_features(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    log.write([_row(1), _row(2, {"visib": 3.0}), {**_row(3), "status": 422, "features": None, "error": "bad"}])
    log.close()
    frame = read_prediction_log(tmp_path).set_index("request_id")
    assert frame.loc["r2", FEATURE_PREFIX + "visib"] == 3.0 and frame.loc["r1", FEATURE_PREFIX + "temp"] == 1.0
    assert frame.loc["r3", "error"] == "bad"


def test_a_full_queue_drops_and_counts_instead_of_growing(tmp_path: Path) -> None:
    dropped: list[int] = []
    log = PredictionLog(tmp_path, max_queue_rows=100, on_drop=dropped.append)
    # Fill faster than the writer can take: the queue is bounded at 100 waiting rows.
    log.write(_row(i) for i in range(50_000))
    log.close()
    assert log.rows_written + log.dropped == 50_000 and log.dropped > 0
    assert sum(dropped) == log.dropped
    assert len(read_prediction_log(tmp_path)) == log.rows_written


def test_reading_an_empty_folder_gives_an_empty_frame(tmp_path: Path) -> None:
    assert read_prediction_log(tmp_path).empty
