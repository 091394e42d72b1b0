"""Shared fixtures. Every test runs with MLflow/DVC telemetry off and a clean NORIA_* environment."""

from __future__ import annotations

import os
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DVC_NO_ANALYTICS"] = "1"

SMALL_CONFIG = textwrap.dedent(
    """\
    project: small
    data:
      source: {kind: directory, path: raw}
      tables:
        flights:
          file: flights.csv
          primary_key: [year, month, day, carrier, flight]
          partition: {year: year, month: month}
          columns:
            year: {type: int}
            month: {type: int, min: 1, max: 12}
            day: {type: int, min: 1, max: 31}
            carrier: {type: str, pattern: "^[A-Z0-9]{2}$"}
            flight: {type: int, min: 1}
            dep_delay: {type: float, nullable: true}
            distance: {type: float, min: 1}
            origin: {type: str, allowed: [EWR, JFK, LGA]}
            time_hour: {type: timestamp}
        planes:
          file: planes.csv
          primary_key: [tailnum]
          columns:
            tailnum: {type: str}
            seats: {type: int, min: 1}
    """
)

FLIGHTS_HEADER = "year,month,day,carrier,flight,dep_delay,distance,origin,time_hour"


def flight_rows(months: list[int], per_month: int = 5) -> list[str]:
    rows = []
    for m in months:
        for i in range(per_month):
            rows.append(f"2013,{m},{i + 1},UA,{100 + i},{i * 7 - 3},{500 + i},EWR,2013-{m:02d}-{i + 1:02d}T10:00:00Z")
    return rows


def write_small_sources(root: Path, flights: list[str] | None = None) -> None:
    raw = root / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    body = flights if flights is not None else flight_rows([1, 2, 3])
    (raw / "flights.csv").write_text("\n".join([FLIGHTS_HEADER, *body]) + "\n", encoding="utf-8")
    (raw / "planes.csv").write_text("tailnum,seats\nN1,100\nN2,150\n", encoding="utf-8")


@pytest.fixture
def small_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A tiny project (git repo, directory source with 3 months of 5 flights, 2 planes)."""
    for var in list(os.environ):
        if var.startswith("NORIA_"):
            monkeypatch.delenv(var)
    root = tmp_path / "proj"
    root.mkdir()
    (root / "noria.yaml").write_text(SMALL_CONFIG, encoding="utf-8")
    write_small_sources(root)
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    yield root


def missing(message: str, *, module_level: bool = False) -> NoReturn:
    """What a test needs is not installed: skip, naming the install command in ``message``;
    in CI (CI=true) fail instead: CI must run the real thing."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message + " -- CI must not skip this test")
    pytest.skip(message, allow_module_level=module_level)


def require_module(name: str) -> Any:
    """A Python module a test needs (a dev or extra dependency); skip locally naming the install
    command if absent, fail in CI (CI=true) like :func:`require_binary`."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        message = f"{name} is not installed: run `make test` (uv sync --all-extras --group dev installs it)"
        missing(message, module_level=True)


def require_distribution(name: str, install: str) -> None:
    """An installed distribution a test reads data from (never imported); skip locally naming
    ``install`` if absent, fail in CI (CI=true)."""
    import importlib.metadata

    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        message = f"{name} is not installed: run `{install}` (make test installs it)"
        missing(message)


def require_binary(name: str) -> str:
    """Path of a system binary a test needs; skip locally (naming the install command) if absent.

    In CI (CI=true) a missing binary fails the test instead: CI must run the real thing.
    """
    import shutil

    path = shutil.which(name)
    if path is None:
        message = (
            f"{name} is not installed: run scripts/system_deps.sh "
            "(apt-get install prometheus prometheus-alertmanager chromium docker-compose wrk openjdk-17-jre-headless)"
        )
        missing(message)
    return path


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, chosen below the kernel's ephemeral range.

    A server started on it binds seconds later (MLflow imports for ~5 s first). Ports the kernel
    hands out itself (``bind(0)``, every outgoing connection) come from the ephemeral range, so a
    port taken from there is soon someone's client port: MLflow then logs "address already in
    use" and exits 0. Choosing at random below that range, never the same port twice in this
    process, leaves only other test processes picking the same one, which a random pick over
    thousands of ports makes rare.
    """
    import random
    import socket

    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    low = max(low, 12000)
    for _ in range(200):
        port = random.randrange(10000, low)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    with socket.socket() as sock:  # every pick was taken: let the kernel choose
        sock.bind(("127.0.0.1", 0))
        chosen: int = sock.getsockname()[1]
        return chosen
