"""Monitoring report: six monthly windows x 40 features, from frames to HTML, Noria vs Evidently.

Data: a reference of 30,000 rows and six windows of 5,000 (2 of 2,000 with --quick), 40 columns
(34 numeric, 6 categorical) with seasonal drift on a few of them. Both sides go from frames to
HTML files with drift plots:

- Noria: ``compute_drift`` of each window against the stored reference profile, then
  ``render_report`` (heatmap over all windows, alerts timeline, tables) written to one file;
  matplotlib is imported before timing, as Evidently's worker imports Evidently.
- Evidently 0.7.23 (its own virtualenv, see bench_drift.py): per window, Dataset.from_pandas +
  Report([DataDriftPreset()]).run + save_html, through benchmarks/evidently_report_worker.py.

The profile is built once per model version at training time; its build time is on its own row.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from _harness import Result, Target, median, time_call
from bench_drift import ensure_venv
from noria import atomic
from noria.monitoring import ReferenceProfile, compute_drift
from noria.monitoring.report import ReportData, render_report

TITLE = "Monitoring report, 6 windows x 40 features, frames to HTML: Noria vs Evidently"
HERE = Path(__file__).resolve().parent
NUMERIC = [f"num_{i:02d}" for i in range(34)]
CATEGORICAL = [f"cat_{i}" for i in range(6)]
GOAL_S = 5.0


def frame(rows: int, month: int, seed: int) -> pd.DataFrame:
    """40 columns; num_00..num_03 and cat_0 follow the seasons, the rest is stationary."""
    rng = np.random.default_rng(seed)
    season = np.cos((month - 7) / 12 * 2 * np.pi)  # 1 in July, -1 in January
    data: dict[str, Any] = {}
    for i, name in enumerate(NUMERIC):
        shift = 1.5 * season if i < 4 else 0.0
        data[name] = rng.normal(shift + i % 7, 1 + i % 3, rows)
    for i, name in enumerate(CATEGORICAL):
        labels = [f"c{j}" for j in range(4 + 10 * i)]
        p = np.ones(len(labels))
        p[0] += 2 * max(season, 0) if i == 0 else 0
        data[name] = rng.choice(labels, rows, p=p / p.sum())
    return pd.DataFrame(data)


def run(quick: bool) -> Result:
    rows, months, repeat = (2_000, [7, 8], 1) if quick else (5_000, list(range(7, 13)), 3)
    reference = pd.concat([frame(5_000, m, seed=m) for m in range(1, 7)], ignore_index=True)
    windows = {f"2013-{m:02d}": frame(rows, m, seed=100 + m) for m in months}
    build_s = median(time_call(lambda: ReferenceProfile.build(reference), repeat))
    profile = ReferenceProfile.build(reference)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)

        def noria() -> int:
            records = [
                {"window": w, "model_name": "bench", "model_version": 1, **compute_drift(profile, f).to_dict()}
                for w, f in windows.items()
            ]
            html = render_report(ReportData("bench", "bench", drift=records))
            atomic.write_text(folder / "report.html", html, mode=atomic.SHARED)
            return len(html.encode("utf-8"))

        noria_s = median(time_call(noria, repeat))
        noria_bytes = noria()
        evidently = run_evidently(reference, windows, folder, 1)  # ~20 s a window: once is enough
    evid_s = median(evidently["seconds"])
    per_window = f"{len(windows)} windows of {rows:,} rows vs {len(reference):,} reference rows"
    result_rows = [
        {"tool": "Evidently DataDriftPreset", "what": f"report + save_html per window; {per_window}",
         "seconds": evid_s, "HTML MB": sum(evidently["html_bytes"]) / 1e6, "speedup vs Evidently": 1.0},
        {"tool": "Noria", "what": "compute_drift per window + one report (heatmap, timeline, tables)",
         "seconds": noria_s, "HTML MB": noria_bytes / 1e6, "speedup vs Evidently": evid_s / noria_s},
        {"tool": "Noria ReferenceProfile.build", "what": "once per model version, at training time",
         "seconds": build_s, "HTML MB": "", "speedup vs Evidently": ""},
    ]  # fmt: skip
    return Result(
        name="report",
        title=TITLE,
        columns=["tool", "what", "seconds", "HTML MB", "speedup vs Evidently"],
        rows=result_rows,
        targets=[
            Target(f"Noria report of {per_window}", noria_s, f"<= {GOAL_S:g} s", noria_s <= GOAL_S),
            Target("speed-up over Evidently's HTML drift reports", evid_s / noria_s, ">= 1x", evid_s >= noria_s),
        ],
        notes=(
            f"Evidently {evidently['versions']['evidently']} (pandas {evidently['versions']['pandas']}) in its own "
            f"venv, one run ({evidently['seconds'][0]:.1f} s); Noria: median of {repeat} runs. "
            "Evidently writes one HTML file per window (its JavaScript bundle inline in each); Noria writes one "
            "file for all windows with inline SVG plots and no script but a plot counter."
        ),
    )


def run_evidently(reference: pd.DataFrame, windows: dict[str, pd.DataFrame], tmp: Path, repeat: int) -> dict[str, Any]:
    python = ensure_venv()
    reference.to_parquet(tmp / "reference.parquet")
    paths = []
    for name, window in windows.items():
        paths.append(str(tmp / f"{name}.parquet"))
        window.to_parquet(paths[-1])
    (tmp / "html").mkdir()
    spec = {
        "reference": str(tmp / "reference.parquet"),
        "windows": paths,
        "numeric": NUMERIC,
        "categorical": CATEGORICAL,
        "repeat": repeat,
        "html_dir": str(tmp / "html"),
    }
    (tmp / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    out = tmp / "evidently.json"
    worker = HERE / "evidently_report_worker.py"
    subprocess.run([str(python), str(worker), str(tmp / "spec.json"), str(out)], check=True)
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result
