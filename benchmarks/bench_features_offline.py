"""Training-set build: Noria's DuckDB point-in-time join against Feast's file offline store.

Both engines join the same entity rows (every 2013 flight, 336,776 rows) with the same five
feature views, reading the same Parquet files the flights project's definitions produce; the
result frames must be identical (checked). Feast's time covers ``get_historical_features(...)
.to_df()`` per view on the distinct (keys, timestamp) pairs plus merging back onto all rows
(without this its file store silently drops rows); Noria's covers ``historical_features``:
request-time features, the DuckDB ASOF joins with TTL, derived features and typing - more work.
Feature tables are computed once beforehand (untimed; shared by both).

Target (issue: feature store): Noria >= 3x faster than Feast's file store, identical values.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from _harness import Result, Target, median

TITLE = "Training set (point-in-time join): Noria DuckDB vs Feast file offline store"
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "flights"


def real_snapshot(project: Any, months: list[int] | None = None) -> Any:
    """The real data typed as a Noria snapshot stores it (no ingest: the benchmark is about joins)."""
    sys.path.insert(0, str(ROOT))
    from tests.snapshot_support import DATA, frame_snapshot

    flights = pd.read_csv(DATA / "flights.csv.zip")
    weather = pd.read_csv(DATA / "weather.csv")
    if months is not None:
        flights = flights[flights["month"].isin(months)]
        weather = weather[weather["month"].isin(months)]
    raw = {"flights": flights, "weather": weather, "planes": pd.read_csv(DATA / "planes.csv")}
    return frame_snapshot(project, raw, "bench" + ("".join(f"{m:02d}" for m in months) if months else "all"))


def flights_project(folder: Path) -> Any:
    from noria.config import load_project

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("noria.yaml", "features.yaml", "flights_features.py"):
        shutil.copy(EXAMPLE / name, folder / name)
    return load_project(folder, environ={})


def run(quick: bool = False) -> Result:
    from noria.features.definitions import load_definitions
    from noria.features.offline import historical_features
    from noria.features.repo import apply, open_store
    from noria.features.training_set import entity_rows

    months = [1] if quick else None
    with tempfile.TemporaryDirectory(prefix="noria-bench-features-") as tmp:
        project = flights_project(Path(tmp) / "flights")
        snap = real_snapshot(project, months)
        start = time.perf_counter()
        applied = apply(project, snapshot=snap)
        prepare_s = time.perf_counter() - start
        assert applied.sources is not None
        defs = load_definitions(project)
        plan = defs.service()
        rows = entity_rows(defs, snap, "2013-01", "2013-01" if months else "2013-12")
        paths = applied.sources.paths

        noria_times = []
        ours = None
        for _ in range(1 if quick else 3):
            start = time.perf_counter()
            ours = historical_features(defs, plan, rows, paths)
            noria_times.append(time.perf_counter() - start)
        store = open_store(defs)
        start = time.perf_counter()
        feast = historical_features(defs, plan, rows, paths, engine="feast", feast_store=store)
        feast_s = time.perf_counter() - start
        assert ours is not None
        try:
            pd.testing.assert_frame_equal(ours.frame, feast.frame)
            identical = True
        except AssertionError:
            identical = False
    noria_s = median(noria_times)
    ratio = feast_s / noria_s
    rows_out = [
        {
            "engine": "noria (DuckDB ASOF join)",
            "rows": len(ours.frame),
            "seconds": round(noria_s, 3),
            "matched rows": sum(ours.matched.values()),
            "vs noria": 1.0,
        },
        {
            "engine": "feast (file offline store)",
            "rows": len(feast.frame),
            "seconds": round(feast_s, 3),
            "matched rows": sum(feast.matched.values()),
            "vs noria": round(ratio, 1),
        },
    ]
    return Result(
        name="features_offline",
        title=TITLE,
        columns=["engine", "rows", "seconds", "matched rows", "vs noria"],
        rows=rows_out,
        targets=[
            Target("feast / noria time", round(ratio, 1), ">= 3x", ratio >= 3),
            Target("identical values (1 = yes)", float(identical), "= 1", identical),
        ],
        notes=(
            f"{len(rows):,} entity rows ({'January' if quick else 'all of 2013'}),"
            f" {len(plan.batch_views)} feature views,"
            f" {len(plan.features)} features. Noria: median of {len(noria_times)} runs; Feast: 1 run. Feature tables"
            f" (computed once, shared, untimed): {sum(applied.sources.rows.values()):,} rows in {prepare_s:.1f} s."
        ),
    )


if __name__ == "__main__":
    print(run(quick=True).to_markdown())
