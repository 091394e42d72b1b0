"""The demo: the whole loop on embedded defaults, in a fresh project folder.

``make demo`` calls :func:`run_demo` with the flights template. It creates the project from a
template on first use (``noria init``) and reuses it afterwards, so a second run shows what is
cached. Nothing here knows a dataset: every chapter reads the project's configuration (its
default ingest range, training periods, replay windows), so ``noria demo --template football``
runs the same loop on another problem.
"""

from __future__ import annotations

import shutil
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.rule import Rule

from noria.config import CONFIG_FILE, Project, load_project

if TYPE_CHECKING:
    from pathlib import Path

CHAPTERS = 6
SAMPLE = 6  # requests shown in chapter 4


def run_demo(folder: Path, console: Console | None = None, until: int = CHAPTERS, template: str = "flights") -> Project:
    """Run chapters 1..``until`` of the demo in ``folder`` (3 leaves a project with a champion)."""
    from noria.replay import ingest_range, replay_windows

    console = console or Console()
    started = time.perf_counter()
    if (folder / CONFIG_FILE).is_file():
        created = f"reusing the demo project in {folder}"
    else:
        from noria.scaffold import init_project

        init_project(folder, template=template)
        created = f"created the demo project in {folder} (noria init --template {template}: git + DVC)"
    project = load_project(folder)
    console.print(Rule(f"[bold]Noria demo: {project.config.description or project.config.project}"))
    console.print(created)
    default = project.config.data.default_range

    _chapter(console, "1. ingest: validate, quarantine, snapshot with DVC")
    ingest_range(console, project, default.start if default else None, default.end if default else None)
    if until <= 1:
        return _done(console, started, project)

    _chapter(console, "2. feature store (Feast): apply, point-in-time training set, online store")
    _features(console, project)
    if until <= 2:
        return _done(console, started, project)

    _chapter(console, "3. training pipeline: tune, train, evaluate, register in MLflow, gate")
    first = _train(console, project)
    if until <= 3:
        return _done(console, started, project)

    windows = replay_windows(project, None, None)
    _chapter(console, f"4. serving: {windows[0]} arrives; real requests through HTTP, with explanations")
    _serve(console, project, windows[0])
    if until <= 4:
        return _done(console, started, project)

    _chapter(console, f"5. the loop: {windows[0]}..{windows[-1]} through the service; drift, labels, retraining")
    from noria.replay import run_replay

    _reset(console, project, first)
    run_replay(project, windows[0], windows[-1], console=console)
    if until <= 5:
        return _done(console, started, project)

    _chapter(console, "6. maturity: the project scored against the 60 MLOps statements")
    _maturity(console, project)
    return _done(console, started, project)


def _done(console: Console, started: float, project: Project) -> Project:
    from noria.console.server import console_url

    console.print(Rule(f"done in {time.perf_counter() - started:.0f} s"))
    console.print(
        f"See the whole loop in the Noria console: noria --project {project.root} ui --insecure-local"
        f"  ->  {console_url()}",
        soft_wrap=True,
    )
    return project


def _chapter(console: Console, title: str) -> None:
    console.print()
    console.print(Rule(title, align="left", style="cyan"))


def _features(console: Console, project: Project) -> None:
    from noria.features import apply, build_training_set, materialize
    from noria.terminal import print_table
    from noria.windows import Windows

    t = time.perf_counter()
    applied = apply(project)
    console.print(
        f"feast apply: {len(applied.feature_views)} feature views, services {', '.join(applied.services)}, "
        f"definition hash {applied.definition_hash[:12]} ({time.perf_counter() - t:.1f} s)"
    )
    train_period, test_period = project.config.training.periods()
    t = time.perf_counter()
    built = build_training_set(project, train_period.start, test_period.end)
    record = built.record
    label = record.label
    console.print(
        f"training set {train_period.start}..{test_period.end}: {record.rows:,} rows "
        f"({record.labeled_rows:,} labelled; {label.get('missing_rows', 0):,} without a label and "
        f"{label.get('immature_rows', 0):,} not mature yet keep their row) in {time.perf_counter() - t:.1f} s"
    )
    print_table(
        [{"feature view": v, "matched rows": m, "no value": record.unmatched[v]} for v, m in record.matched.items()],
        title="point-in-time join (no value from after the prediction time)",
    )
    bounds = Windows.of(project).bounds(test_period.end)
    until = bounds[1] if bounds is not None else built.frame["event_timestamp"].max().to_pydatetime()
    t = time.perf_counter()
    online = materialize(project, until)  # serving starts where training data ends
    console.print(
        f"online store ({online.online_store}) materialized until {online.until:%Y-%m-%d %H:%M} UTC: "
        f"{sum(online.keys.values()):,} entity keys in {time.perf_counter() - t:.1f} s"
    )


def _train(console: Console, project: Project) -> int:
    """Run the training pipeline; return the version it registered."""
    from noria.pipelines import run_project_pipeline
    from noria.registry import format_lineage, lineage_of
    from noria.tasks import task_of
    from noria.terminal import print_table

    task = task_of(project)
    t = time.perf_counter()
    result = run_project_pipeline(project, "training", console=console)
    console.print(
        f"pipeline run {result.run_id}: {result.count('ran')} steps ran, {result.count('cached')} cached "
        f"in {time.perf_counter() - t:.0f} s"
    )
    evaluation = result.load("evaluation")
    decision = result.load("gate")
    shown = _shown_metrics(task.name)
    m = evaluation["metrics"]
    rows = [{"model": "LightGBM (this version)", **{k: m.get(k) for k in shown}}]
    for b in evaluation["baselines"]:
        rows.append({"model": f"baseline: {b['name']}", **{k: b["metrics"].get(k) for k in shown}})
    split = evaluation["split"]["parts"]
    print_table(rows, title=f"holdout {split['test']['window']['label']} ({split['test']['rows']:,} rows)")
    console.print(f"gate: version {decision['version']} -> @{decision['alias'] or 'unchanged'} ({decision['reason']})")
    console.print(format_lineage(lineage_of(project, f"{decision['name']}@champion")))
    return int(decision["version"])


def _shown_metrics(task: str) -> tuple[str, ...]:
    return {
        "binary": ("roc_auc", "pr_auc", "log_loss", "brier"),
        "multiclass": ("log_loss", "accuracy", "macro_f1", "brier"),
        "regression": ("rmse", "mae", "r2", "bias"),
    }[task]


def _serve(console: Console, project: Project, window: str, count: int = SAMPLE) -> None:
    """The window's data arrives; the online store is materialized up to its first request; `noria serve`
    answers the next requests over HTTP with looked-up features and explanations."""
    import httpx

    from noria.data.snapshots import open_snapshot
    from noria.features import materialize
    from noria.features.definitions import load_definitions
    from noria.features.training_set import entity_rows, label_rows
    from noria.replay import arrive, served
    from noria.serving.requests import request_schema
    from noria.tasks import task_of
    from noria.terminal import print_table

    arrive(console, project, window)
    defs = load_definitions(project)
    snapshot = open_snapshot(project)
    rows = entity_rows(defs, snapshot, window, window).sort_values("event_timestamp", kind="stable")
    now = rows["event_timestamp"].iloc[0]
    online = materialize(project, now.to_pydatetime())
    console.print(f"online store materialized until {online.until:%Y-%m-%d %H:%M} UTC (the demo's 'now')")
    sample = rows.head(count).reset_index(drop=True)
    schema = request_schema(project, defs)
    bodies = schema.bodies(sample)
    labels = label_rows(defs, snapshot, sample).values
    task = task_of(project)
    with served(project) as (base, pid, log):
        version = httpx.get(f"{base}/version", timeout=10).json()
        console.print(f"noria serve (pid {pid}) on {base}: {version}")
        answer = httpx.post(f"{base}/predict", json={schema.batch_key: bodies}, timeout=60)
        answer.raise_for_status()
        body = answer.json()
    table = []
    for request, prediction, actual in zip(bodies, body["predictions"], labels, strict=True):
        reasons = prediction["explanation"]["contributions"][:2] if prediction.get("explanation") else []
        table.append(
            {
                "request": _short(request),
                "answer": _answer(prediction),
                "actual": _actual(task, actual),
                "why (top 2)": "; ".join(c["text"] for c in reasons),
                "out of distribution": ", ".join(
                    sorted({r["feature"] for r in prediction["out_of_distribution"]["reasons"]})
                )
                or "-",
            }
        )
    print_table(table, title=f"predictions from model version {body['predictions'][0]['model_version']}")
    console.print(f"request {body['request_id']} logged to the prediction log; server log: {log}")


def _short(request: dict[str, Any], width: int = 48) -> str:
    text = " ".join(str(v) for k, v in request.items() if k != "features" and v is not None)
    return text if len(text) <= width else text[: width - 1] + "…"


def _answer(prediction: dict[str, Any]) -> str:
    if "probabilities" in prediction:
        top = prediction["class"]
        return f"{top} ({prediction['probabilities'][top]:.2f})"
    if "prediction" in prediction:
        return f"{prediction['prediction']:.1f} {prediction.get('unit') or ''}".rstrip()
    decision = next(k for k, v in prediction.items() if isinstance(v, bool))
    return f"P={prediction['probability']:.3f} {decision}={'yes' if prediction[decision] else 'no'}"


def _actual(task: Any, value: float) -> str:
    if value != value:
        return "no label"
    if task.name == "binary":
        return "yes" if value else "no"
    if task.name == "multiclass":
        return str(task.classes[int(value)])
    return f"{value:.1f}"


def _maturity(console: Console, project: Project) -> None:
    """``noria maturity`` on the project the loop just ran: what its files and records prove, and what is left."""
    from noria.maturity import Status, assess, write_html
    from noria.terminal import print_table

    result = assess(project)
    print_table(
        [
            {"section": f"{s.number}. {s.title}", "score": f"{s.score:g} / {s.total}"} | s.counts
            for s in result.sections()
        ],
        title=f"MLOps maturity of {project.config.project}: {result.score:g} of {result.total}",
    )
    print_table(
        [
            {"#": r.statement.number, "status": r.status.value, "to complete": r.finding.todo}
            for r in result.results
            if r.status is not Status.MET
        ],
        title="not MET yet (the page has the evidence of every statement)",
    )
    page = write_html(result, project.root / ".noria" / "maturity.html")
    console.print(f"maturity page: {page}  (noria maturity --html FILE writes it again)")


def _reset(console: Console, project: Project, first_champion: int) -> None:
    """Start the replay from the first champion with an empty prediction log and monitoring store."""
    from noria.monitoring.store import MonitoringStore
    from noria.monitoring.window import prediction_log_dir
    from noria.registry import get_version, promote

    for folder in (prediction_log_dir(project), MonitoringStore.of(project).root):
        if folder.exists():
            shutil.rmtree(folder)
    name = project.config.model.name
    current = get_version(project, f"{name}@champion").version
    if current != first_champion:
        promote(project, name, first_champion, force=True, reason="demo: the replay starts from the first champion")
        console.print(f"demo reset: @champion back from version {current} to version {first_champion}")


__all__ = ["CHAPTERS", "run_demo"]
