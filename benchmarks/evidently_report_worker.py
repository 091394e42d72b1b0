"""Runs inside benchmarks/.venvs/evidently: time Evidently's HTML data drift report, one per window.

    python evidently_report_worker.py SPEC.json OUT.json

SPEC names the reference Parquet file, the windows' Parquet files, the numeric and categorical
columns, the number of timed repetitions and a folder for the HTML files. One repetition builds,
for every window, ``Dataset.from_pandas`` (window and reference) + ``Report([DataDriftPreset()])
.run(...)`` + ``save_html``; interpreter start-up, imports and Parquet reading are not timed.
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset


def main(spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    ref = pd.read_parquet(spec["reference"])
    windows = [pd.read_parquet(p) for p in spec["windows"]]
    definition = DataDefinition(numerical_columns=spec["numeric"], categorical_columns=spec["categorical"])
    folder = Path(spec["html_dir"])
    seconds, sizes = [], []
    for _ in range(int(spec["repeat"])):
        start = time.perf_counter()
        for i, cur in enumerate(windows):
            current = Dataset.from_pandas(cur, data_definition=definition)
            reference = Dataset.from_pandas(ref, data_definition=definition)
            snapshot = Report([DataDriftPreset()]).run(current, reference)
            snapshot.save_html(str(folder / f"window-{i}.html"))
        seconds.append(time.perf_counter() - start)
        sizes = [(folder / f"window-{i}.html").stat().st_size for i in range(len(windows))]
    result = {"seconds": seconds, "html_bytes": sizes, "versions": {p: version(p) for p in ("evidently", "pandas")}}
    Path(out_path).write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
