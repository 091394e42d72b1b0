"""Runs inside benchmarks/.venvs/evidently (Evidently needs pandas<3): time the data drift preset.

    python evidently_worker.py SPEC.json OUT.json

SPEC names the reference and current Parquet files, the numeric and categorical columns and
the number of timed repetitions. The worker times ``Dataset.from_pandas`` (both frames) plus
``Report([DataDriftPreset()]).run(...)``; interpreter start-up, imports and Parquet reading are
not timed. It then records what the preset computed per column (method and value) and, for
the value comparison, Evidently's own stattests called one by one on the same cleaned columns
(NaN and inf dropped, as the preset does): K-S, Wasserstein (normed), PSI and Jensen-Shannon for
numeric columns, chi-square, PSI and Jensen-Shannon for categorical ones, and PSI summed over
the cells that hold data (see _psi_cells_with_data). For numeric PSI and
Jensen-Shannon it also writes the cells Evidently used, as interior bin edges, so that Noria can
be given the same cells.
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version
from typing import Any

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.legacy.calculations.stattests import (
    chi_stat_test,
    jensenshannon_stat_test,
    ks_stat_test,
    psi_stat_test,
    wasserstein_stat_test,
)
from evidently.legacy.calculations.stattests.utils import get_binned_data
from evidently.legacy.core import ColumnType
from evidently.presets import DataDriftPreset


def main(spec_path: str, out_path: str) -> None:
    with open(spec_path, encoding="utf-8") as fh:
        spec = json.load(fh)
    ref = pd.read_parquet(spec["reference"])
    cur = pd.read_parquet(spec["current"])
    numeric, categorical = spec["numeric"], spec["categorical"]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    seconds, snapshot = [], None
    for _ in range(int(spec["repeat"])):
        start = time.perf_counter()
        current = Dataset.from_pandas(cur, data_definition=definition)
        reference = Dataset.from_pandas(ref, data_definition=definition)
        snapshot = Report([DataDriftPreset()]).run(current, reference)
        seconds.append(time.perf_counter() - start)
    assert snapshot is not None
    preset: dict[str, dict[str, Any]] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            preset[config["column"]] = {"method": config["method"], "value": float(metric["value"])}
    explicit: dict[str, dict[str, float]] = {}
    edges: dict[str, list[float]] = {}
    for col in numeric + categorical:
        r = ref[col].replace([-np.inf, np.inf], np.nan).dropna()
        c = cur[col].replace([-np.inf, np.inf], np.nan).dropna()
        if col in numeric:
            kind = ColumnType.Numerical
            tests = {"ks": ks_stat_test, "wasserstein": wasserstein_stat_test}
            edges[col] = _cells(r, c)
        else:
            kind = ColumnType.Categorical
            tests = {"chisquare": chi_stat_test}
        tests |= {"psi": psi_stat_test, "jensenshannon": jensenshannon_stat_test}
        explicit[col] = {name: float(test(r, c, kind, None).drift_score) for name, test in tests.items()}
        explicit[col]["psi_cells_with_data"] = _psi_cells_with_data(r, c, kind)
    result = {
        "seconds": seconds,
        "preset": preset,
        "explicit": explicit,
        "edges": edges,
        "versions": {p: version(p) for p in ("evidently", "pandas", "numpy", "scipy")},
    }
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(result, fh)


def _psi_cells_with_data(r: pd.Series, c: pd.Series, kind: ColumnType) -> float:
    """Evidently's PSI terms (its cells, its smoothing) summed over cells holding data on a side.

    Evidently smooths every cell, also those empty on both sides; when the two sides' smoothing
    values differ (a side has a share below 1e-4) such a cell adds a term of its own.
    """
    p, q = get_binned_data(r, c, kind, 30, True)
    p0, q0 = get_binned_data(r, c, kind, 30, False)
    keep = (p0 > 0) | (q0 > 0)
    return float(np.sum(((p - q) * np.log(p / q))[keep]))


def _cells(r: pd.Series, c: pd.Series) -> list[float]:
    """Interior edges giving the cells of Evidently's get_binned_data for a numeric column."""
    if r.nunique() > 20:  # Sturges bins over both samples; np.histogram's last bin is closed
        return [float(e) for e in np.histogram_bin_edges(pd.concat([r, c]).to_numpy(), bins="sturges")[1:-1]]
    values = np.unique(pd.concat([r, c]).to_numpy())  # one cell per value seen on either side
    return [float(v) for v in values[1:]]


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
