"""Online lookup of one flight: Noria's ``online_features`` against the bare Feast call.

Same SQLite online store, same five feature views, same entity. Noria's call takes the raw
request (schedule, carrier, tail number, ...), computes the prediction time, request-time
features and join keys with the training code, calls ``get_online_features``, applies TTL and
the no-future-value rule, and computes derived features. The bare call is Feast's
``get_online_features`` with the join keys already computed. Calls are interleaved in rounds
so both see the same machine load; the ratio of medians is reported.

Target (issue: feature store): Noria's lookup within 1.2x of the bare Feast call.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from _harness import Result, Target, median
from bench_features_offline import flights_project, real_snapshot

TITLE = "Online lookup of one flight: Noria online_features vs bare Feast get_online_features (SQLite)"


def run(quick: bool = False) -> Result:
    from noria.features.offline import entity_keys
    from noria.features.online import materialize, online_features, open_online_store
    from noria.features.repo import apply
    from noria.features.transform import prediction_times, request_arrays, request_features

    rounds, calls = (5, 40) if quick else (15, 100)
    with tempfile.TemporaryDirectory(prefix="noria-bench-online-") as tmp:
        project = flights_project(Path(tmp) / "flights")
        snap = real_snapshot(project, [1])
        apply(project, snapshot=snap)
        materialize(project, "2013-01-31T12:00:00Z", snapshot=snap)
        store = open_online_store(project)
        request = {
            "year": 2013,
            "month": 1,
            "day": 31,
            "sched_dep_time": 745,
            "time_hour": "2013-01-31T12:00:00Z",
            "carrier": "UA",
            "tailnum": "N14228",
            "origin": "EWR",
            "dest": "IAH",
            "distance": 1400.0,
        }
        cols = request_arrays(store.defs, [request])
        ts = prediction_times(store.defs, cols)
        keys = entity_keys(store.defs, store.plan, cols, request_features(store.defs, store.plan, cols), ts)
        entity_rows = {k: v.tolist() for k, v in keys.items()}
        vectors = online_features(store, [request])
        assert not set(vectors.missing[0]) & {"temp", "plane_seats", "route_late_rate_7d"}, vectors.missing

        def noria() -> None:
            online_features(store, [request])

        def bare() -> None:
            store.feast.get_online_features(features=store.refs, entity_rows=entity_rows)

        timings: dict[str, tuple[list[float], list[float]]] = {"noria": ([], []), "bare": ([], [])}
        for fn in (noria, bare):
            fn()
        for round_no in range(rounds):
            order = [("noria", noria), ("bare", bare)]
            for name, fn in order if round_no % 2 else order[::-1]:  # alternate who goes first
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(calls):
                    fn()
                timings[name][0].append((time.perf_counter() - wall) / calls * 1000)
                timings[name][1].append((time.process_time() - cpu) / calls * 1000)
        n_refs, n_features = len(store.refs), len(store.plan.features)
    wall_ratio = median(timings["noria"][0]) / median(timings["bare"][0])
    cpu_ratio = median(timings["noria"][1]) / median(timings["bare"][1])
    labels = {
        "noria": "noria online_features (request -> features)",
        "bare": "feast get_online_features (join keys given)",
    }
    rows = [
        {
            "call": labels[name],
            "wall median ms": round(median(wall), 3),
            "wall min ms": round(min(wall), 3),
            "cpu median ms": round(median(cpu), 3),
            "vs bare (wall)": round(median(wall) / median(timings["bare"][0]), 3),
            "vs bare (cpu)": round(median(cpu) / median(timings["bare"][1]), 3),
        }
        for name, (wall, cpu) in timings.items()
    ]
    return Result(
        name="features_online",
        title=TITLE,
        columns=["call", "wall median ms", "wall min ms", "cpu median ms", "vs bare (wall)", "vs bare (cpu)"],
        rows=rows,
        targets=[
            Target("noria / bare feast, wall time", round(wall_ratio, 3), "<= 1.2x", wall_ratio <= 1.2),
            Target("noria / bare feast, CPU time", round(cpu_ratio, 3), "<= 1.2x", cpu_ratio <= 1.2),
        ],
        notes=(
            f"{rounds} rounds of {calls} calls each, alternating which call goes first; {n_refs} features from 5"
            f" views + {n_features - n_refs} request-time/derived features; one entity row. CPU time (this"
            " process only) is shown because on a shared machine wall time also counts other processes."
        ),
    )


if __name__ == "__main__":
    print(run(quick=True).to_markdown())
