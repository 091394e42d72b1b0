"""Concurrent online lookups share one store read: each request still gets exactly its own rows,
a store failure fails every waiting request with the 503 message, a refused row fails only its
own request, and a request that finds the service idle reads at once. Both ways of reading are
covered: in a worker thread (network stores) and on the event loop (SQLite). The requests that
shared a read are scored together, in one model call, and answer as they would alone.

The store here is a small in-memory online table (weather by origin airport) behind Noria's
``FeatureSource`` interface. Read in the worker thread, its first read can be held open, so the
requests arriving meanwhile queue up deterministically instead of by timing; read on the loop,
the requests that reach the lookup in the same turn of the loop share the read.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi import FastAPI
from tests.unit.serving.serving_support import FLIGHT

from noria.config import Project
from noria.errors import ValidationError
from noria.serving.app import create_app
from noria.serving.coalesce import LookupBatcher
from noria.serving.config import ServingConfig
from noria.serving.model import ServedModel
from noria.serving.predlog import read_prediction_log
from noria.serving.sources import LookedUp

WEATHER = {"EWR": (0.5, 71.0), "JFK": (9.0, 55.5), "LGA": (3.0, 62.0)}  # visibility (mi), temperature (F)
HOLD_S = 0.05  # the first read stays held this long after every other request waits

FLIGHTS = [
    {**FLIGHT, "flight": 100 + i, "carrier": carrier, "origin": origin, "distance": 300.0 + 100 * i}
    for i, (carrier, origin) in enumerate(
        [("UA", "EWR"), ("AA", "JFK"), ("DL", "LGA"), ("UA", "JFK"), ("AA", "LGA"), ("DL", "EWR")]
    )
]


class WeatherTable:
    """An online table: visibility and temperature by origin; carrier, origin and distance from the request."""

    def __init__(self, *, hold_first: bool = True, kind: str = "memory") -> None:
        self.kind = kind  # "memory": read in the worker thread; "sqlite": on the event loop
        self.reads: list[list[int]] = []  # the flight numbers of each read, in the order read
        self.started = threading.Event()  # set when a read begins
        self.release = threading.Event()  # the first read waits for it (when held)
        if not hold_first:
            self.release.set()
        self.fail_on_read: int | None = None  # this read (1-based) fails like a broken store
        self.refused_carrier: str | None = None  # rows of this carrier are refused (a NoriaError)

    def descriptions(self) -> dict[str, str]:
        return {"visib": "Visibility (miles).", "temp": "Temperature (F)."}

    def lookup(self, rows: Sequence[Mapping[str, Any]] | Any) -> LookedUp:
        rows = list(rows)
        self.reads.append([int(r["flight"]) for r in rows])
        self.started.set()
        if len(self.reads) == 1 and not self.release.is_set():
            assert self.release.wait(30), "the test never released the first read"
        if self.fail_on_read == len(self.reads):
            raise RuntimeError("disk I/O error")
        refused = [r["carrier"] for r in rows if r["carrier"] == self.refused_carrier]
        if refused:
            raise ValidationError(f"carrier: {refused[0]} is not served", fix="ask for another carrier")
        values = {
            "visib": np.array([WEATHER[r["origin"]][0] for r in rows]),
            "temp": np.array([WEATHER[r["origin"]][1] for r in rows]),
            "distance": np.array([float(r["distance"]) for r in rows]),
            "carrier": np.array([r["carrier"] for r in rows], dtype=object),
            "origin": np.array([r["origin"] for r in rows], dtype=object),
        }
        return LookedUp(values, [[] for _ in rows])


def _app(project: Project, source: WeatherTable, log_dir: Path) -> FastAPI:
    config = ServingConfig.model_validate(
        {"prediction_log": {"dir": str(log_dir)}, "poll_seconds": 0, "require_key_for_predict": False}
    )
    return create_app(project, config=config, feature_source=source, environ={})


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.002)


def _post_all(app: FastAPI, source: WeatherTable, flights: list[dict[str, Any]]) -> list[httpx.Response]:
    """The first flight alone (its read held open), then the others while it is held; all answers."""

    async def scenario() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            batcher = app.state.noria.predictor.batcher
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://noria") as client:

                def post(flight: dict[str, Any]) -> asyncio.Future[httpx.Response]:
                    headers = {"X-Request-ID": f"req-{flight['flight']}"}
                    return asyncio.ensure_future(client.post("/predict", json=flight, headers=headers))

                first = post(flights[0])
                await _until(source.started.is_set, "the first read began")
                rest = [post(f) for f in flights[1:]]
                await _until(lambda: batcher.waiting == len(rest), "every other request waits")
                await asyncio.sleep(HOLD_S)  # every request is now waiting: each lookup lasts at least this
                source.release.set()
                return await asyncio.gather(first, *rest)

    return asyncio.run(scenario())


def test_in_the_worker_thread_concurrent_requests_share_one_read_and_get_their_own_rows(
    served_project: Project, tmp_path: Path
) -> None:
    source = WeatherTable()
    app = _app(served_project, source, tmp_path / "log")
    responses = _post_all(app, source, FLIGHTS)
    assert [r.status_code for r in responses] == [200] * len(FLIGHTS), [r.text for r in responses]
    numbers = [f["flight"] for f in FLIGHTS]
    # The idle service read the first request at once; the five that came meanwhile shared the next read.
    assert source.reads[0] == numbers[:1] and sorted(source.reads[1]) == numbers[1:] and len(source.reads) == 2
    log = read_prediction_log(tmp_path / "log").set_index("request_id")  # flushed by the app's shutdown
    for flight, response in zip(FLIGHTS, responses, strict=True):
        row = log.loc[response.json()["request_id"]]
        visib, temp = WEATHER[flight["origin"]]
        assert (row["key.carrier"], row["key.origin"], row["key.flight"]) == (
            flight["carrier"],
            flight["origin"],
            flight["flight"],
        )
        assert row["event_time"] == pd.Timestamp(flight["scheduled_departure"]).tz_convert("UTC")
        assert (row["feature.visib"], row["feature.temp"]) == (visib, temp)
        assert row["feature.distance"] == flight["distance"] and row["feature.carrier"] == flight["carrier"]
        assert row["lookup_ms"] > 0 and row["status"] == 200
        assert not response.json()["out_of_distribution"]["flag"]  # every feature came from the table
    # The first request's lookup lasted until the test released it; the others waited for it too.
    # (a bound the test sets itself, not a ratio of timings: on a loaded machine the five posts take
    # a while to arrive, so the first lookup may last many times longer than the others)
    assert log["lookup_ms"].min() >= HOLD_S * 1000.0


def test_in_the_worker_thread_a_store_failure_fails_every_waiting_request_with_the_503_message(
    served_project: Project, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = WeatherTable()
    source.fail_on_read = 2  # the shared read of the waiting requests
    app = _app(served_project, source, tmp_path / "log")
    with caplog.at_level(logging.ERROR, logger="noria.serving"):
        responses = _post_all(app, source, FLIGHTS[:4])
    failures = [r for r in caplog.records if r.getMessage().startswith("online feature lookup failed")]
    assert len(failures) == 1 and failures[0].exc_info is not None  # one traceback for the read, not one per request
    assert [r.status_code for r in responses] == [200, 503, 503, 503]
    for r in responses[1:]:
        error = r.json()["error"]
        assert error["message"] == "the online feature store failed: RuntimeError: disk I/O error"
        assert "send every feature inline" in error["fix"]
    assert len(source.reads) == 2  # a broken store is not asked again for each request
    log = read_prediction_log(tmp_path / "log")
    assert sorted(log["status"]) == [200, 503, 503, 503] and len(set(log["request_id"])) == 4


def test_store_failures_are_logged_once_per_interval_with_a_count_of_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from noria.serving.predict import _FailureLog

    failures = _FailureLog(every=3600.0)
    shared = RuntimeError("connection refused")
    with caplog.at_level(logging.ERROR, logger="noria.serving"):
        for _ in range(5):
            failures.report(shared)  # five requests of one failed read
        failures.report(RuntimeError("connection refused"))  # the next read, within the interval
        failures.every = 0.0
        failures.report(RuntimeError("timeout"))
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "online feature lookup failed",
        "online feature lookup failed (5 more failed lookups since the last report)",
    ]


def test_in_the_worker_thread_a_refused_row_fails_only_its_own_request(served_project: Project, tmp_path: Path) -> None:
    source = WeatherTable()
    source.refused_carrier = "DL"
    app = _app(served_project, source, tmp_path / "log")
    flights = [FLIGHTS[0], FLIGHTS[1], FLIGHTS[2], FLIGHTS[3]]  # UA, AA, DL, UA
    responses = _post_all(app, source, flights)
    assert [r.status_code for r in responses] == [200, 200, 422, 200]
    assert responses[2].json()["error"]["message"] == "carrier: DL is not served"
    # The shared read was refused, so each waiting request was read again on its own.
    assert len(source.reads) == 2 + 3 and sorted(len(read) for read in source.reads[2:]) == [1, 1, 1]


def test_in_the_worker_thread_a_request_on_an_idle_service_reads_at_once() -> None:
    source = WeatherTable(hold_first=False)
    batcher = LookupBatcher(source)
    rows = [{"flight": 7, "carrier": "AA", "origin": "LGA", "distance": 733.0}]

    async def scenario() -> LookedUp:
        task = asyncio.ensure_future(batcher.lookup(rows))
        await asyncio.sleep(0)  # the request runs up to its wait for the features
        # Block the event loop: no timer or callback can run now, yet the read has begun.
        assert source.started.wait(10)
        return await task

    try:
        looked = asyncio.run(scenario())
    finally:
        batcher.close()
    assert source.reads == [[7]] and batcher.reads == 1 and batcher.requests == 1
    assert looked.values["visib"].tolist() == [3.0] and looked.values["carrier"].tolist() == ["AA"]


ROWS = [
    {"flight": f["flight"], "carrier": f["carrier"], "origin": f["origin"], "distance": f["distance"]} for f in FLIGHTS
]


def _gather(batcher: LookupBatcher, parts: list[list[dict[str, Any]]]) -> list[LookedUp | BaseException]:
    async def scenario() -> list[LookedUp | BaseException]:
        return await asyncio.gather(*(batcher.lookup(part) for part in parts), return_exceptions=True)

    try:
        return asyncio.run(scenario())
    finally:
        batcher.close()


def test_on_the_loop_requests_of_one_turn_share_a_read_and_get_their_own_rows() -> None:
    source = WeatherTable(hold_first=False, kind="sqlite")
    batcher = LookupBatcher(source, worker_thread=False)
    parts = [ROWS[0:1], ROWS[1:3], ROWS[3:4], ROWS[4:6]]  # one request of two flights, one of one, ...
    results = _gather(batcher, parts)
    assert source.reads == [[r["flight"] for r in ROWS]] and batcher.requests == 4
    for part, looked in zip(parts, results, strict=True):
        assert isinstance(looked, LookedUp)
        assert looked.values["visib"].tolist() == [WEATHER[r["origin"]][0] for r in part]
        assert looked.values["carrier"].tolist() == [r["carrier"] for r in part] and looked.missing == [[]] * len(part)


def test_on_the_loop_a_store_failure_fails_all_and_a_refused_row_only_its_request() -> None:
    broken = WeatherTable(hold_first=False, kind="sqlite")
    broken.fail_on_read = 1
    failed = _gather(LookupBatcher(broken, worker_thread=False), [ROWS[0:1], ROWS[1:2], ROWS[2:3]])
    assert all(isinstance(r, RuntimeError) and str(r) == "disk I/O error" for r in failed) and len(broken.reads) == 1
    picky = WeatherTable(hold_first=False, kind="sqlite")
    picky.refused_carrier = "DL"
    results = _gather(LookupBatcher(picky, worker_thread=False), [ROWS[0:1], ROWS[2:3], ROWS[3:4]])  # UA, DL, UA
    assert isinstance(results[1], ValidationError) and str(results[1].message) == "carrier: DL is not served"
    assert isinstance(results[0], LookedUp) and isinstance(results[2], LookedUp)
    assert results[2].values["origin"].tolist() == ["JFK"] and len(picky.reads) == 1 + 3


def test_the_request_mapping_runs_once_per_shared_read_and_a_refused_request_fails_alone() -> None:
    """``prepare`` (the service passes its request mapping) maps every waiting request in one call; when
    it refuses one, each request is mapped and read on its own, and only that one fails."""
    mapped: list[list[int]] = []

    def prepare(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        mapped.append([int(item["flight"]) for item in items])
        if any(item["origin"] == "XXX" for item in items):
            raise ValidationError("origin: XXX is not an airport", fix="send an airport code")
        return [dict(item) for item in items]

    source = WeatherTable(hold_first=False, kind="sqlite")
    results = _gather(LookupBatcher(source, worker_thread=False, prepare=prepare), [ROWS[0:1], ROWS[1:3], ROWS[3:4]])
    assert mapped == [[r["flight"] for r in ROWS[:4]]] and source.reads == mapped  # one mapping, one read
    assert all(isinstance(r, LookedUp) for r in results)

    mapped.clear()
    source = WeatherTable(hold_first=False, kind="sqlite")
    parts = [ROWS[0:1], [ROWS[1] | {"origin": "XXX"}], ROWS[3:4]]
    results = _gather(LookupBatcher(source, worker_thread=False, prepare=prepare), parts)
    assert isinstance(results[1], ValidationError) and results[1].message == "origin: XXX is not an airport"
    assert isinstance(results[0], LookedUp) and isinstance(results[2], LookedUp)
    assert results[2].values["origin"].tolist() == [ROWS[3]["origin"]]
    assert len(mapped) == 1 + 3 and source.reads == [[ROWS[0]["flight"]], [ROWS[3]["flight"]]]


def test_on_the_loop_a_request_on_an_idle_service_reads_in_the_next_turn() -> None:
    source = WeatherTable(hold_first=False, kind="sqlite")
    batcher = LookupBatcher(source, worker_thread=False)

    async def scenario() -> LookedUp:
        task = asyncio.ensure_future(batcher.lookup(ROWS[2:3]))
        await asyncio.sleep(0)  # the request runs up to its wait for the features
        await asyncio.sleep(0)  # one more turn of the loop, no timer: the read is done
        assert source.reads == [[ROWS[2]["flight"]]]
        return await task

    looked = asyncio.run(scenario())
    assert looked.values["temp"].tolist() == [WEATHER["LGA"][1]]


def test_the_service_reads_sqlite_on_the_loop_and_answers_concurrent_requests_with_their_own_rows(
    served_project: Project, tmp_path: Path
) -> None:
    source = WeatherTable(hold_first=False, kind="sqlite")
    app = _app(served_project, source, tmp_path / "log")
    assert app.state.noria.predictor.batcher.worker_thread is False

    async def scenario() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://noria") as client:
                posts = [
                    client.post("/predict", json=f, headers={"X-Request-ID": f"req-{f['flight']}"}) for f in FLIGHTS
                ]
                return await asyncio.gather(*posts)

    responses = asyncio.run(scenario())
    assert [r.status_code for r in responses] == [200] * len(FLIGHTS)
    assert sorted(n for read in source.reads for n in read) == sorted(f["flight"] for f in FLIGHTS)
    log = read_prediction_log(tmp_path / "log").set_index("request_id")
    for flight in FLIGHTS:
        row = log.loc[f"req-{flight['flight']}"]
        assert (row["feature.visib"], row["feature.temp"]) == WEATHER[flight["origin"]]
        assert row["feature.origin"] == flight["origin"] and row["feature.distance"] == flight["distance"]


def test_finish_runs_once_per_shared_read_with_each_requests_rows_and_its_failure_is_theirs() -> None:
    calls: list[tuple[list[str], list[list[str]]]] = []

    def finish(jobs: Sequence[str], looked: LookedUp, parts: Sequence[slice]) -> list[str]:
        origins = [looked.values["origin"][rows].tolist() for rows in parts]
        calls.append((list(jobs), origins))
        return [f"{job}:{'/'.join(o)}" for job, o in zip(jobs, origins, strict=True)]

    async def scenario(batcher: LookupBatcher, parts: list[list[dict[str, Any]]]) -> list[Any]:
        lookups = (batcher.lookup(part, job) for part, job in zip(parts, "abc", strict=False))
        return await asyncio.gather(*lookups, return_exceptions=True)

    source = WeatherTable(hold_first=False, kind="sqlite")
    results = asyncio.run(scenario(LookupBatcher(source, worker_thread=False, finish=finish), [ROWS[0:1], ROWS[1:3]]))
    assert results == ["a:EWR", "b:JFK/LGA"] and len(source.reads) == 1
    assert calls == [(["a", "b"], [["EWR"], ["JFK", "LGA"]])]  # one call, on the read all requests shared

    calls.clear()
    picky = WeatherTable(hold_first=False, kind="sqlite")
    picky.refused_carrier = "DL"  # the shared read is refused: each request read (and finished) on its own
    parts = [ROWS[0:1], ROWS[2:3], ROWS[3:4]]  # UA, DL, UA
    results = asyncio.run(scenario(LookupBatcher(picky, worker_thread=False, finish=finish), parts))
    assert results[0] == "a:EWR" and isinstance(results[1], ValidationError) and results[2] == "c:JFK"
    assert calls == [(["a"], [["EWR"]]), (["c"], [["JFK"]])]

    def broken(jobs: Sequence[str], looked: LookedUp, parts: Sequence[slice]) -> list[str]:
        raise RuntimeError("scoring broke")

    source = WeatherTable(hold_first=False, kind="sqlite")
    results = asyncio.run(scenario(LookupBatcher(source, worker_thread=False, finish=broken), [ROWS[0:1], ROWS[1:2]]))
    assert all(isinstance(r, RuntimeError) and str(r) == "scoring broke" for r in results)


def _score_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of rows of every ServedModel.score call from now on."""
    calls: list[int] = []
    score = ServedModel.score

    def counted(self: ServedModel, encoded: Any, threshold: float, explain: bool) -> Any:
        calls.append(int(encoded.matrix.shape[0]))
        return score(self, encoded, threshold, explain)

    monkeypatch.setattr(ServedModel, "score", counted)
    return calls


def test_requests_that_share_a_read_are_scored_in_one_call_and_answer_as_they_would_alone(
    served_project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _score_calls(monkeypatch)
    source = WeatherTable(hold_first=False)
    app = _app(served_project, source, tmp_path / "alone")

    async def one_at_a_time() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://noria") as client:
                return [await client.post("/predict", json=f) for f in FLIGHTS]

    alone = asyncio.run(one_at_a_time())
    assert calls == [1] * len(FLIGHTS)
    calls.clear()
    source = WeatherTable()
    together = _post_all(_app(served_project, source, tmp_path / "together"), source, FLIGHTS)
    # The first request was read and scored alone; the five that waited meanwhile, in one call.
    assert calls == [1, len(FLIGHTS) - 1] and len(source.reads) == 2
    for a, b in zip(alone, together, strict=True):
        assert a.status_code == b.status_code == 200
        first, second = a.json(), b.json()
        for answer in (first, second):
            answer.pop("request_id")
        assert first == second  # probability, decision, explanation, out-of-distribution reasons
    log = read_prediction_log(tmp_path / "together").set_index("request_id")
    assert (log["model_ms"] > 0).all() and (log["lookup_ms"] > 0).all()


def test_a_request_whose_inline_features_are_refused_fails_alone_when_scored_with_others(
    served_project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _score_calls(monkeypatch)
    source = WeatherTable()
    app = _app(served_project, source, tmp_path / "log")
    flights = [
        FLIGHTS[0],
        {**FLIGHTS[1], "features": {"no_such_feature": 1.0}},  # refused by the model's encoding
        FLIGHTS[2],
        {**FLIGHTS[3], "features": {"temp": 1.0}},  # an inline value overrides the looked-up one
    ]
    responses = _post_all(app, source, flights)
    assert [r.status_code for r in responses] == [200, 422, 200, 200], [r.text for r in responses]
    assert "no_such_feature" in responses[1].json()["error"]["message"]
    assert len(source.reads) == 2  # the rows were read together; only the scoring went one by one
    assert calls == [1, 1, 1]  # the first alone; then the batch's two good requests on their own
    log = read_prediction_log(tmp_path / "log").set_index("request_id")
    assert log.loc[responses[3].json()["request_id"], "feature.temp"] == 1.0
