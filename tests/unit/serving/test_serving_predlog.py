"""The prediction log writer: rolls by rows and by time, loses nothing on close, files appear atomically."""

from __future__ import annotations

import json
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


def test_a_batch_producer_waits_for_room_and_loses_nothing(tmp_path: Path) -> None:
    """Back-pressure (batch scoring): waiting for room before each write keeps the queue within
    its bound and every row reaches the log, where the service's path would drop."""
    log = PredictionLog(tmp_path, max_queue_rows=100)
    for start in range(0, 20_000, 50):
        assert log.wait_for_room(50)
        log.write(_row(i) for i in range(start, start + 50))
        assert log._queue.qsize() <= 100
    log.close()
    assert (log.rows_written, log.dropped) == (20_000, 0)
    assert len(read_prediction_log(tmp_path)) == 20_000


def test_reading_an_empty_folder_gives_an_empty_frame(tmp_path: Path) -> None:
    assert read_prediction_log(tmp_path).empty


def test_request_path_records_give_the_same_columns_as_dict_rows(tmp_path: Path) -> None:
    from datetime import datetime

    from pydantic import BaseModel
    from tests.unit.serving.serving_support import FLIGHT

    from noria.serving.model import Scored
    from noria.serving.predlog import ScoredRow, rows_to_table

    class Flight(BaseModel):  # any request model: the log keeps it as JSON
        carrier: str
        flight: int
        origin: str
        dest: str
        tailnum: str
        scheduled_departure: str
        distance: float

    flight = Flight.model_validate_json(json.dumps(FLIGHT))
    names = ("visib", "carrier")
    ood = [{"feature": "visib", "kind": "out_of_range", "detail": "visib 99 is above the training maximum 10"}]
    served = Scored(0.25, 0.25, -1.1, False, None, None, None, [], [0.5, "UA"])
    shadow = Scored(0.75, 0.75, 1.1, True, None, None, None, ood, [99.0, None])
    body = b'{"carrier": "UA"}'
    when = datetime.fromisoformat(FLIGHT["scheduled_departure"]).timestamp()
    records = [
        ScoredRow("r1", 0, 1.7e9, "m", 3, "champion", True, body, served, 0.5, names, 2.0, None, 0.3, when, {"id": 7}),
        ScoredRow("r2", 1, 1.7e9 + 1, "m", 3, "shadow", False, flight, shadow, 0.5, names),
    ]
    table = rows_to_table(records)
    assert table.equals(rows_to_table([r.as_dict() for r in records]))  # the writer's fast path changes nothing
    mixed = rows_to_table([records[0], {"request_id": "bad", "status": 422, "error": "distance: too small"}])
    assert mixed.column("status").to_pylist() == [200, 422] and mixed.column("feature.visib").to_pylist() == [0.5, None]
    frame = table.to_pandas()
    assert list(frame["ood_reasons"][1]) == [ood[0]["detail"]] and frame["feature.carrier"].tolist() == ["UA", None]
    assert frame["event_time"][0] == datetime.fromisoformat(FLIGHT["scheduled_departure"])  # given by the producer
    assert frame["key.id"].tolist()[0] == 7 and frame["score"].tolist() == [0.25, 0.75]
    assert json.loads(frame["input"][1]) == FLIGHT
    assert frame["lookup_ms"].isna().tolist() == [True, True] and frame["model_ms"].tolist()[0] == 0.3


def _wait(condition: Any, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert condition()


def test_the_writer_is_a_child_process_that_ignores_interrupts(tmp_path: Path) -> None:
    """A Ctrl-C reaches the whole process group: the writer must outlive it and write what the service
    sends until the service closes the log."""
    import os
    import signal

    log = PredictionLog(tmp_path, roll_rows=1000, roll_seconds=3600)
    writer = log._writer
    assert writer is not None and writer.proc.pid != os.getpid()
    assert os.getpgid(writer.proc.pid) != os.getpgid(0)  # a group's Ctrl-C does not reach it
    _wait(writer.ready.is_set)
    log.write(_row(i) for i in range(10))
    _wait(lambda: writer.sent == 10)
    os.kill(writer.proc.pid, signal.SIGINT)
    os.kill(writer.proc.pid, signal.SIGTERM)
    time.sleep(0.3)
    assert writer.alive()
    log.write(_row(i) for i in range(10, 20))
    log.close()
    assert log.rows_written == 20 and log.dropped == 0 and writer.proc.returncode == 0


def test_a_killed_writer_counts_its_rows_as_dropped_and_is_replaced(tmp_path: Path) -> None:
    import os
    import signal

    dropped: list[int] = []
    log = PredictionLog(tmp_path, roll_rows=1000, roll_seconds=3600, on_drop=dropped.append)
    first = log._writer
    assert first is not None
    log.write(_row(i) for i in range(30))
    _wait(lambda: first.sent == 30)
    os.kill(first.proc.pid, signal.SIGKILL)  # it held 30 rows, none written yet
    _wait(lambda: log.dropped == 30)
    log.write(_row(i) for i in range(30, 40))
    log.close()
    assert log._writer is not first and log.rows_written == 10 and sum(dropped) == 30
    assert sorted(read_prediction_log(tmp_path)["request_id"]) == sorted(f"r{i}" for i in range(30, 40))


def test_a_row_that_cannot_be_logged_is_counted_and_the_others_are_written(tmp_path: Path) -> None:
    import threading

    log = PredictionLog(tmp_path, roll_rows=1000, roll_seconds=3600)
    log.write([_row(1), {**_row(2), "input": threading.Lock()}, _row(3)])  # a lock cannot be pickled
    log.close()
    assert log.dropped == 1 and log.rows_written == 2
    assert sorted(read_prediction_log(tmp_path)["request_id"]) == ["r1", "r3"]


def test_frames_are_converted_together_and_a_bad_row_costs_only_its_frame() -> None:
    """The writer converts the frames it received together (one fixed cost for all); a frame
    with a row that cannot be converted is reported lost on its own, the others are kept."""
    from noria.serving.predlog_writer import _convert_frames

    class Sink:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def write(self, text: str) -> int:
            self.lines.append(text)
            return len(text)

        def flush(self) -> None:
            pass

    good = [[_row(i) for i in range(3)], [_row(i) for i in range(3, 5)]]
    sink = Sink()
    tables = _convert_frames(good, sink)
    assert [t.num_rows for t in tables] == [5] and not sink.lines
    bad = [{**_row(9), "timestamp": "not a time"}]
    tables = _convert_frames([good[0], bad, good[1]], sink)
    assert [t.num_rows for t in tables] == [3, 2]
    assert [json.loads(line)["rows"] for line in sink.lines] == [1]


def test_the_writer_keys_bodies_with_inline_features_and_frames_unpickled_apart(served_project: Any) -> None:
    """The writer reads the served bodies back in one validation call (inline features taken as
    parsed: the service checked them); a body it cannot read as one request (a batch's, a refused
    one) is left without a key and the others keep theirs. Rows of frames unpickled apart (equal,
    not identical, feature names) give the same columns as one frame's."""
    import pickle

    from tests.unit.serving.serving_support import FLIGHT, INLINE

    from noria.serving.predlog_keys import EventKeyer
    from noria.serving.predlog_rows import rows_to_table

    keyer = EventKeyer(served_project)
    plain = json.dumps(FLIGHT).encode()
    inline = json.dumps({**FLIGHT, "flight": 7, "features": INLINE}).encode()
    batch = json.dumps({"requests": [FLIGHT]}).encode()
    times, keys = keyer.compute([plain, inline])
    assert [k["flight"] for k in keys] == [FLIGHT["flight"], 7] and times[0] == times[1] is not None  # type: ignore[index]
    times, keys = keyer.compute([plain, batch, inline])
    assert keys[1] is None and times[1] is None and [keys[0]["flight"], keys[2]["flight"]] == [1545, 7]  # type: ignore[index]
    # The inline features are skipped by the parser, not read: the project's model ignores them.
    from noria.serving.predlog_keys import keying_model

    assert "features" not in keying_model(keyer.schema).model_fields
    odd = inline.replace(b'"features": {', b'"features": {"Not A Name": [1, {"x": null}], ')
    assert odd != inline and keyer.compute([odd])[1][0]["flight"] == 7  # type: ignore[index]
    assert keyer._lean(inline) is inline  # nothing to cut out
    # A model that keeps unknown fields has the field: it is cut out unread (orjson) before
    # validating, and a body orjson cannot read goes as it is.
    keyer._strip = True
    assert b"features" not in keyer._lean(inline) and keyer._lean(plain) is plain
    unreadable = inline.replace(b'"features": {', b'"features": {"odd": NaN, ')
    assert unreadable != inline and keyer._lean(unreadable) is unreadable

    rows = [{**_row(i), "input": inline} for i in range(4)]
    frames = [pickle.loads(pickle.dumps(rows[:2])), pickle.loads(pickle.dumps(rows[2:]))]
    apart = rows_to_table([row for frame in frames for row in frame], keyer)
    assert apart.equals(rows_to_table(rows, keyer))
    assert apart.column("feature.temp").to_pylist() == [0.0, 1.0, 2.0, 3.0]
    assert apart.column("key.flight").to_pylist() == [7] * 4


def test_a_features_field_the_project_declares_itself_is_validated_as_written() -> None:
    from pydantic import BaseModel, ConfigDict, Field

    from noria.serving.predlog_keys import keying_model
    from noria.serving.requests import INLINE, RequestSchema, _with_inline_features

    class Own(BaseModel):
        carrier: str
        features: list[int] = Field(default_factory=list)  # the project's own field of that name

    class Plain(BaseModel):
        carrier: str

    class Open(BaseModel):
        model_config = ConfigDict(extra="allow")
        carrier: str

    own = RequestSchema(_with_inline_features(Own), request_columns=[], ids=[], column_types={})
    assert keying_model(own) is own.model
    # Noria's field on the project's class: the class itself reads the body, the field skipped
    added = RequestSchema(_with_inline_features(Plain), request_columns=[], ids=[], column_types={})
    keyed = keying_model(added)
    assert issubclass(keyed, Plain) and INLINE not in keyed.model_fields
    assert keyed.model_validate_json('{"carrier": "UA", "features": {"x": [1, 2]}}').carrier == "UA"
    # a model that keeps unknown fields would keep them: the field is kept, as parsed, unchecked
    opened = RequestSchema(_with_inline_features(Open), request_columns=[], ids=[], column_types={})
    keyed = keying_model(opened)
    assert keyed is not opened.model and INLINE in keyed.model_fields
    assert keyed.model_validate_json('{"carrier": "UA", "features": {"x": [1, 2]}}').carrier == "UA"
    # the generated model (no project model) is made the same way: its fields, then Noria's field
    generated = RequestSchema(
        _with_inline_features(Plain, "PredictRequest"), request_columns=[], ids=[], column_types={}
    )
    assert generated.model.__name__ == "PredictRequest" and INLINE not in keying_model(generated).model_fields


def test_the_writer_keys_rows_as_columns_and_row_by_row_alike(served_project: Any) -> None:
    """Served rows all keyed in one go come out as the keyer's columns; rows mixed with the
    producer's own keys, a batch body, a refused request and a request the project's mapping
    cannot map are keyed one by one. Either way each row has its own key (or none), in order."""
    from tests.unit.serving.serving_support import FLIGHT

    from noria.serving.predlog_keys import EventKeyer
    from noria.serving.predlog_rows import rows_to_table

    keyer = EventKeyer(served_project)
    bodies = [json.dumps({**FLIGHT, "flight": f}).encode() for f in (11, 12, 13, 14)]
    served = rows_to_table([{**_row(i), "input": body} for i, body in enumerate(bodies)], keyer)
    assert served.column("key.flight").to_pylist() == [11, 12, 13, 14]
    times, keys = keyer.compute(bodies)
    assert (
        served.column("event_time").to_pylist()
        == rows_to_table(
            [
                {**_row(i), "input": body, "event_time": when, "keys": key}
                for i, (body, when, key) in enumerate(zip(bodies, times, keys, strict=True))
            ]
        )
        .column("event_time")
        .to_pylist()
    )

    mapping = keyer.schema.mapping

    def picky(columns: Any) -> Any:  # the project's mapping failing on one request
        if 13 in list(columns["flight"]):
            raise ValueError("no flight 13")
        return mapping(columns)

    keyer.schema.mapping = picky
    rows = [
        {**_row(0), "input": bodies[0]},
        {**_row(1), "input": bodies[1], "event_time": 1.0, "keys": {"flight": 99}},  # the producer's own
        {**_row(2), "input": json.dumps({"requests": [FLIGHT]}).encode()},  # a batch body: no single request
        {**_row(3), "input": bodies[2]},  # the mapping fails on it
        {**_row(4), "input": bodies[3], "status": 422},  # refused: never keyed
        {**_row(5), "input": bodies[3]},
    ]
    mixed = rows_to_table(rows, keyer)
    assert mixed.column("key.flight").to_pylist() == [11, 99, None, None, None, 14]
    stamps = mixed.column("event_time").to_pylist()
    assert [t is None for t in stamps] == [False, False, True, True, True, False] and stamps[0] == stamps[5]
    assert keyer.unkeyed == 1
