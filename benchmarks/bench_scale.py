"""Scale: the flights project on 1 to N years of data, each step timed as the command a user runs.

The data comes from a deterministic generator (``scale_data.py``: the 2013 flights and weather
replicated into the years 2013 .. 2013 + N - 1, dates calendar-valid, numbers slightly perturbed,
keys unique) written as the project's source files into a ``directory`` source. For each N a new
flights project (``noria init``) reads that folder and runs, each command in its own process:

- ``ingest``: ``noria data ingest --from 2013-01 --to LAST-12`` (every year);
- ``features apply``: ``noria features apply`` (the feature sources computed from the snapshot);
- ``features build (duckdb)``: ``noria features build`` of every month, DuckDB join;
- ``features build (spark)``: the same build with ``--engine spark`` (local[2]), run by the
  Python of a venv holding only pyspark (as ``tests/integration/test_features_spark.py`` does,
  under ``~/.cache/noria``); pyspark is not a project dependency;
- ``training``: ``noria pipeline run training`` (train 2013-01 .. LAST-10, test the last two
  months; ``training.trials`` set by ``NORIA_TRAINING__TRIALS``);
- ``predict``: ``noria predict`` of the last 2N months (N = 1: two months, N = 30: five years),
  the input holding the model's features as ``features build`` wrote them (the scoring path of
  history: point-in-time features from the offline join, not the online store);
- ``drift (window)``: ``noria monitor drift --window LAST-12`` (one month of the prediction log,
  which holds the 2N months ``predict`` logged);
- ``drift (file)``: ``noria monitor drift --profile REF --data TRAINING_SET`` (every row of the
  ``features build`` output against the model's reference profile).

Each step's wall time and peak memory are measured from outside: the resident memory of the
command's whole process tree (the JVM of Spark and the prediction-log writer included) sampled
every 0.2 s, and the largest single process's own high-water mark (``VmHWM``; the higher of the
two is reported). A step that fails or goes over the budget (time per step, memory of its process tree:
the process group is killed) is recorded as the limit at that N; the rest of the run goes on.

Per step, the growth exponents are the least-squares slopes of log(seconds) and log(peak memory)
against log(flight rows) over the N values measured. Goals (scale issue): time exponent <= 1.1 for
every step; the memory of ingest, predict and drift bounded (exponent <= 0.1; ingest under 1 GB);
the Spark build handles N = 30.

    python benchmarks/run.py scale                 # N = 1, 3, 10, 30 (hours on 2 cores)
    python benchmarks/run.py scale --quick         # N = 1, 2 and 2 trials
    python benchmarks/bench_scale.py --ns 1,3 --merge --steps ingest,features_apply

Settings (environment or the arguments of ``bench_scale.py``): ``BENCH_SCALE_NS`` (1,3,10,30),
``BENCH_SCALE_STEPS`` (all), ``BENCH_SCALE_TRIALS`` (3; quick 2), ``BENCH_SCALE_TRAIN_MAX_N``
(train the real periods up to this N; above it the model for predict and drift learns on the last
year only and training is not measured), ``BENCH_SCALE_BUDGET_S`` (2400), ``BENCH_SCALE_BUDGET_MB``
(16000), ``BENCH_SCALE_MERGE`` (1: keep the stored measurements of other N values),
``BENCH_SCALE_KEEP`` (1: keep generated data and projects), ``BENCH_SCALE_PLOTS`` (1 unless quick:
write docs/img/scaling_*.svg).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import scale_data
from _harness import RESULTS, Result, Target

TITLE = "Scale: 1 to 30 years of flights, time and peak memory per step (growth exponents)"
NAME = "scale"
BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"
SPARK_REQUIREMENTS = ROOT / "tests" / "integration" / "features_spark_requirements.txt"
SAMPLE_S = 0.2

# step id -> label; order of the run. Groups say which steps need which.
STEPS = {
    "ingest": "ingest",
    "features_apply": "features apply",
    "build_duckdb": "features build (duckdb)",
    "build_spark": "features build (spark)",
    "training": "training pipeline",
    "predict": "predict (batch scoring)",
    "drift_window": "drift (window)",
    "drift_file": "drift (file)",
}
BOUNDED = ("ingest", "predict", "drift_window", "drift_file")  # memory must not grow with N
TIME_GOAL, MEMORY_GOAL, INGEST_MB_GOAL, SPARK_N_GOAL = 1.1, 0.1, 1024.0, 30


@dataclass
class Settings:
    ns: list[int]
    steps: list[str]
    trials: int
    train_max_n: int
    budget_s: float
    budget_mb: float
    merge: bool
    keep: bool
    plots: bool
    quick: bool

    @classmethod
    def from_env(cls, quick: bool, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(key: str, default: str) -> str:
            return env.get(f"BENCH_SCALE_{key}", default)

        ns = [int(n) for n in get("NS", "1,2" if quick else "1,3,10,30").split(",") if n.strip()]
        steps = [s.strip() for s in get("STEPS", ",".join(STEPS)).split(",") if s.strip()]
        unknown = sorted(set(steps) - set(STEPS))
        if unknown:
            raise SystemExit(f"unknown step(s) {unknown}; known: {', '.join(STEPS)}")
        return cls(
            ns=sorted(set(ns)),
            steps=[s for s in STEPS if s in steps],
            trials=int(get("TRIALS", "2" if quick else "3")),
            train_max_n=int(get("TRAIN_MAX_N", "1000")),
            budget_s=float(get("BUDGET_S", "2400")),
            budget_mb=float(get("BUDGET_MB", "16000")),
            merge=get("MERGE", "0") == "1",
            keep=get("KEEP", "0") == "1",
            plots=get("PLOTS", "0" if quick else "1") == "1",
            quick=quick,
        )


@dataclass
class Measured:
    """One command: wall seconds, peak memory, how it ended."""

    seconds: float
    tree_peak_mb: float  # sampled sum over the process tree
    max_process_mb: float  # the largest single process's own peak (VmHWM)
    returncode: int | None
    status: str  # ok | failed | time budget | memory budget
    stdout: str
    stderr_tail: str
    load_before: float | None = None
    load_after: float | None = None

    @property
    def peak_mb(self) -> float:
        return max(self.tree_peak_mb, self.max_process_mb)


def _tree_rss(root: Any, hwm: dict[int, int]) -> tuple[int, list[Any]]:
    """The summed resident memory of ``root`` and its descendants now; ``hwm`` gets each process's
    high-water mark (VmHWM: its own peak since exec, so short peaks between samples are not missed)."""
    import psutil

    procs = [root]
    with contextlib.suppress(psutil.Error):
        procs += root.children(recursive=True)
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    hwm[proc.pid] = max(hwm.get(proc.pid, 0), int(line.split()[1]) * 1024)
    return total, procs


def measure(argv: list[str], *, cwd: Path, env: dict[str, str], budget_s: float, budget_mb: float) -> Measured:
    """Run ``argv`` in its own process group; sample its tree's memory; kill the group over budget."""
    import psutil

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=True)
        root = psutil.Process(proc.pid)
        seen: dict[int, Any] = {}
        hwm: dict[int, int] = {}
        peak, killed = 0, ""
        while True:
            # Not wait4's ru_maxrss: Linux carries the forking parent's peak across exec, so it would
            # count this benchmark's own memory.
            pid, status = os.waitpid(proc.pid, os.WNOHANG)
            if pid:
                break
            rss, procs = _tree_rss(root, hwm)
            seen.update({p.pid: p for p in procs})
            peak = max(peak, rss)
            elapsed = time.perf_counter() - started
            if not killed and elapsed > budget_s:
                killed = "time budget"
            elif not killed and rss > budget_mb * 1e6:
                killed = "memory budget"
            if killed:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(SAMPLE_S)
        seconds = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        proc.returncode = code  # reaped by waitpid above
        # Whatever the command left running in its group (it started them): stopped, by PID.
        for child_pid, child in seen.items():
            if child_pid == proc.pid:
                continue
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                if child.is_running() and os.getpgid(child_pid) == proc.pid:
                    child.kill()
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    state = killed or ("ok" if code == 0 else "failed")
    return Measured(
        seconds=round(seconds, 2),
        tree_peak_mb=round(peak / 1e6, 1),
        max_process_mb=round(max(hwm.values(), default=0) / 1e6, 1),
        returncode=code,
        status=state,
        stdout=stdout,
        stderr_tail=stderr[-3000:],
    )


@dataclass
class StepRun:
    step: str
    n: int
    flight_rows: int
    step_rows: int | None
    seconds: float | None
    peak_mb: float | None
    status: str
    detail: str = ""
    tree_peak_mb: float | None = None
    max_process_mb: float | None = None
    load_before: float | None = None
    load_after: float | None = None
    code: str = ""  # the source the step ran: commit + digest of uncommitted changes under src/
    budget: str = ""  # the step's budget: wall time and memory of its process tree
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {
            "step": STEPS[self.step],
            "N": self.n,
            "flight rows": self.flight_rows,
            "step rows": self.step_rows if self.step_rows is not None else "",
            "seconds": round(self.seconds, 1) if self.seconds is not None else "",
            "peak RSS MB": round(self.peak_mb) if self.peak_mb is not None else "",
            "status": self.status,
            "detail": self.detail,
        } | {"_raw": asdict(self)}


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NORIA_")}
    return env | {"MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1", "PYTHONUNBUFFERED": "1"} | (extra or {})


def spark_python() -> Path | None:
    """The Python of a venv with exactly the pinned pyspark (built under ~/.cache/noria on first use,
    shared with the Spark integration test); None when Java or the venv cannot be had."""
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        return None
    pins = SPARK_REQUIREMENTS.read_text(encoding="utf-8")
    version = next(line.split("==")[1] for line in pins.splitlines() if line.startswith("pyspark=="))
    root = Path(os.environ.get("SPARK_TEST_VENV") or Path.home() / ".cache" / "noria" / f"spark-venv-{version}")
    marker, python = root / ".noria-requirements-sha256", root / "bin" / "python"
    digest = hashlib.sha256(SPARK_REQUIREMENTS.read_bytes()).hexdigest()
    root.parent.mkdir(parents=True, exist_ok=True)
    with (root.parent / f"{root.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and marker.read_text() == digest and python.exists():
            return python
        uv = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
        if not Path(uv).exists():
            return None
        shutil.rmtree(root, ignore_errors=True)
        made = subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(root)], capture_output=True)
        if made.returncode != 0:
            return None
        done = subprocess.run(
            [uv, "pip", "install", "-q", "--python", str(python), "-r", str(SPARK_REQUIREMENTS)], capture_output=True
        )
        if done.returncode != 0:
            return None
        marker.write_text(digest)
    return python


class Project:
    """A flights project (``noria init``) reading the generated folder as a ``directory`` source."""

    def __init__(self, root: Path, data: scale_data.Generated, settings: Settings) -> None:
        import yaml

        self.root, self.data, self.settings = root, data, settings
        self.last = data.last_year
        subprocess.run([str(BIN / "noria"), "init", str(root)], check=True, capture_output=True, env=_env())
        (root / "raw").symlink_to(data.path, target_is_directory=True)
        path = root / "noria.yaml"
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
        config["data"]["source"] = {"kind": "directory", "path": "raw"}
        config["data"].pop("default_range", None)
        config["data"]["tables"]["flights"]["file"] = scale_data.FLIGHTS
        config["training"]["train"] = {"from": f"{data.first_year}-01", "to": f"{self.last}-10"}
        config["training"]["test"] = {"from": f"{self.last}-11", "to": f"{self.last}-12"}
        # Local mode: the driver's JVM is also the executor running the joins (it holds no result: each
        # join is written to Parquet); 4 GB lets the window sorts spill less than the 1 GB default.
        config.setdefault("features", {})["spark"] = {"driver_memory": "4g"}
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        self.work = root.parent / f"{root.name}-work"
        self.work.mkdir(exist_ok=True)

    def noria(self, *args: str) -> list[str]:
        return [str(BIN / "noria"), "--project", str(self.root), *args]

    @property
    def training_set(self) -> Path:
        return self.work / "training_set_duckdb.parquet"

    def scored_months(self) -> tuple[str, str]:
        """The first and last month ``predict`` scores: the last 2N months."""
        first = self.last * 12 + 12 - 2 * self.data.years  # year * 12 + month - 1
        return f"{first // 12}-{first % 12 + 1:02d}", f"{self.last}-12"

    def requests(self, source: Path) -> tuple[Path, int]:
        """The last 2N months of a build's rows (features included, label left out)."""
        import pyarrow.compute as pc
        import pyarrow.dataset as ds
        import pyarrow.parquet as pq

        start = self.scored_months()[0]
        first = int(start[:4]) * 12 + int(start[5:]) - 1
        dataset = ds.dataset(source, format="parquet")
        names = [n for n in dataset.schema.names if n != "label"]
        key = pc.add(pc.multiply(ds.field("year"), 12), pc.subtract(ds.field("month"), 1))
        path = self.work / "requests.parquet"
        rows = 0
        with pq.ParquetWriter(path, dataset.schema.remove(dataset.schema.get_field_index("label"))) as writer:
            for batch in dataset.to_batches(columns=names, filter=key >= first, batch_size=65_536):
                writer.write_batch(batch)
                rows += batch.num_rows
        return path, rows

    def pipeline_steps(self) -> tuple[dict[str, float], dict[str, Any]]:
        """Seconds of each finished step of the newest training run, and what ``tune`` found (rounds,
        parameters, validation score), read from the pipeline store's records."""
        runs = sorted((self.root / ".noria" / "artifacts" / "runs" / "training").glob("*/steps"))
        if not runs:
            return {}, {}
        seconds: dict[str, float] = {}
        tuned: dict[str, Any] = {}
        for path in sorted(runs[-1].glob("*.json")):
            with contextlib.suppress(OSError, ValueError):
                step = json.loads(path.read_text(encoding="utf-8"))
                seconds[step["name"]] = round(float(step.get("seconds") or 0), 1)
                if step["name"] == "tune":
                    digest = step["outputs"]["tune"]
                    data = self.root / ".noria" / "artifacts" / "objects" / digest[:2] / digest / "data.json"
                    found = json.loads(data.read_text(encoding="utf-8"))
                    keys = ("best_iteration", "best_params", "best_value", "fit_rows", "n_trials", "sampled")
                    tuned = {k: found.get(k) for k in keys}
        return seconds, tuned

    def profile(self) -> Path | None:
        found = sorted(
            (self.root / ".noria" / "mlartifacts").rglob("reference_profile.json"), key=lambda p: p.stat().st_mtime
        )
        return found[-1] if found else None


def _fit(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of log(y) against log(x); None with fewer than two distinct x."""
    pts = [(math.log(x), math.log(y)) for x, y in points if x > 0 and y > 0]
    if len({x for x, _ in pts}) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sxx


def _json_tail(text: str) -> Any:
    """The JSON document a ``--json`` command printed (the last one, if several lines)."""
    text = text.strip()
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0:
        return None
    try:
        return json.loads(text[start:])
    except ValueError:
        return None


def code_state() -> str:
    """``<commit>`` or ``<commit>+<digest of the uncommitted diff of src/>`` (read-only git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        diff = subprocess.run(["git", "diff", "HEAD", "--", "src"], cwd=ROOT, capture_output=True)
        new = subprocess.run(
            ["git", "ls-files", "--others", "--exclude-standard", "--", "src"], cwd=ROOT, capture_output=True
        )
    except OSError:
        return "unknown"
    dirty = diff.stdout + new.stdout
    for name in new.stdout.decode().split():
        with contextlib.suppress(OSError):
            dirty += (ROOT / name).read_bytes()
    commit = head.stdout.strip() or "unknown"
    return f"{commit}+{hashlib.sha256(dirty).hexdigest()[:8]}" if dirty else commit


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def run_n(n: int, settings: Settings, workdir: Path, log: Any) -> list[StepRun]:
    """Every selected step at N years; a step whose input is missing is recorded as skipped."""
    data = scale_data.cached(n)
    flights = data.rows["flights"]
    log(f"N={n}: {flights:,} flights, {sum(data.files.values()) / 1e6:.0f} MB of CSV (generated in {data.seconds} s)")
    project = Project(workdir / f"flights-{n}y", data, settings)
    env = _env({"NORIA_TRAINING__TRIALS": str(settings.trials)})
    runs: list[StepRun] = []
    done: set[str] = set()
    first, last = f"{data.first_year}-01", f"{data.last_year}-12"

    def record(step: str, m: Measured | None, *, rows: int | None = None, detail: str = "", **extra: Any) -> StepRun:
        if m is None:
            run = StepRun(step, n, flights, rows, None, None, "skipped", detail)
        else:
            if m.status == "memory budget":
                detail = f"killed at {settings.budget_mb / 1000:.0f} GB" + (f"; {detail}" if detail else "")
            elif m.status == "time budget":
                detail = f"killed at {settings.budget_s / 60:.0f} min" + (f"; {detail}" if detail else "")
            elif m.status != "ok":
                tail = [x for x in m.stderr_tail.strip().splitlines() if x.strip() and " WARN " not in x]
                detail = (detail + "; " if detail else "") + (tail[-1][:300] if tail else f"exit {m.returncode}")
            run = StepRun(
                step,
                n,
                flights,
                rows,
                m.seconds,
                m.peak_mb,
                m.status,
                detail,
                tree_peak_mb=m.tree_peak_mb,
                max_process_mb=m.max_process_mb,
                extra=extra,
            )
            if m.status == "ok":
                done.add(step)
        run.code = code_state()
        run.budget = f"{settings.budget_s / 60:.0f} min, {settings.budget_mb / 1000:.0f} GB"
        runs.append(run)
        log(f"  {STEPS[step]:<26} {run.status:<13} {run.seconds or '':>8} s {run.peak_mb or '':>8} MB  {run.detail}")
        return run

    def go(step: str, argv: list[str], step_env: dict[str, str] | None = None) -> tuple[Measured, Any]:
        before = _load()
        m = measure(
            argv, cwd=project.root, env=step_env or env, budget_s=settings.budget_s, budget_mb=settings.budget_mb
        )
        m.load_before, m.load_after = before, _load()
        return m, _json_tail(m.stdout) if m.status == "ok" else None

    def needs(*steps: str) -> str | None:
        missing = [s for s in steps if s not in done]
        return f"needs {', '.join(STEPS[s] for s in missing)}" if missing else None

    wanted = settings.steps
    # Steps not asked for but needed by those asked for run as set-up (not recorded).
    setup = set()
    if any(
        s in wanted
        for s in ("features_apply", "build_duckdb", "build_spark", "training", "predict", "drift_window", "drift_file")
    ):
        setup.add("ingest")
    if any(s in wanted for s in ("build_duckdb", "build_spark", "training", "predict", "drift_window", "drift_file")):
        setup.add("features_apply")
    if any(s in wanted for s in ("predict", "drift_window", "drift_file")):
        setup |= {"build_duckdb", "training"}
    if "drift_window" in wanted:
        setup.add("predict")

    def active(step: str) -> bool:
        return step in wanted or step in setup

    try:
        if active("ingest"):
            m, out = go("ingest", project.noria("data", "ingest", "--from", first, "--to", last, "--json"))
            tables = (out or {}).get("tables", {})
            read = sum(int(t.get("read") or 0) for t in tables.values()) or None
            quarantined = sum(int(t.get("quarantined") or 0) for t in tables.values())
            run = record("ingest", m, rows=read, detail=f"{quarantined:,} quarantined" if out else "")
            _attach(run, m)
        if active("features_apply"):
            reason = needs("ingest")
            if reason:
                record("features_apply", None, detail=reason)
            else:
                m, out = go("features_apply", project.noria("features", "apply", "--json"))
                rows = sum((out or {}).get("source_rows", {}).values()) or None
                _attach(record("features_apply", m, rows=rows, source_rows=(out or {}).get("source_rows")), m)
        for step, engine in (("build_duckdb", "duckdb"), ("build_spark", "spark")):
            if not active(step):
                continue
            reason = needs("features_apply")
            argv = ["features", "build", "--from", first, "--to", last, "--engine", engine, "--json"]
            out_path = project.training_set if engine == "duckdb" else project.work / "training_set_spark.parquet"
            argv += ["--out", str(out_path)]
            step_env = env
            if engine == "spark" and not reason:
                python = spark_python()
                if python is None:
                    reason = "no Java 17+ or no pyspark venv"
                else:
                    path = os.pathsep.join([str(ROOT / "src"), sysconfig.get_paths()["purelib"]])
                    step_env = env | {"PYTHONPATH": path, "SPARK_LOCAL_IP": "127.0.0.1"}
                    argv = [str(python), "-m", "noria", "--project", str(project.root), *argv]
            if reason:
                record(step, None, detail=reason)
                continue
            if engine == "duckdb":
                argv = project.noria(*argv)
            m, out = go(step, argv, step_env)
            timings = (out or {}).get("timings", {})
            detail = ", ".join(
                f"{k} {v:.0f} s"
                for k, v in timings.items()
                if k in ("sources", "asof_join", "entity_rows", "spark_session")
            )
            _attach(record(step, m, rows=(out or {}).get("rows"), detail=detail, timings=timings), m)
        if active("training"):
            reason = needs("features_apply")
            if reason:
                record("training", None, detail=reason)
            else:
                measured_here = n <= settings.train_max_n and "training" in wanted
                argv = project.noria("pipeline", "run", "training", "--json", "-q")
                if measured_here:
                    m, _ = go("training", argv)
                    seconds, tuned = project.pipeline_steps()  # the run's records: also when it was stopped
                    detail = ", ".join(
                        f"{k} {seconds[k]:.0f} s" for k in ("training_set", "tune", "train", "evaluate") if k in seconds
                    )
                    if tuned:
                        detail += f"; {tuned.get('best_iteration')} rounds, "
                        detail += f"{(tuned.get('best_params') or {}).get('num_leaves')} leaves, "
                        detail += f"valid AUC {float(tuned.get('best_value') or 0):.3f}"
                    _attach(record("training", m, detail=detail, step_seconds=seconds, tune=tuned), m)
                elif "training" in wanted:
                    record("training", None, detail=f"not measured above N={settings.train_max_n} (budget)")
                if "training" not in done and any(s in wanted for s in ("predict", "drift_window", "drift_file")):
                    # A model for predict and drift only (not measured): learn on the last year.
                    last_year = {
                        "NORIA_TRAINING__TRAIN__FROM": f"{project.last}-01",
                        "NORIA_TRAINING__TRAIN__TO": f"{project.last}-10",
                    }
                    m, _ = go("training", argv, env | last_year)
                    log(f"  (model for scoring, trained on the last year, not measured: {m.status}, {m.seconds} s)")
                    if m.status == "ok":
                        done.add("training")
        if active("predict"):
            reason = needs("features_apply", "training")
            source = project.training_set
            if not reason and "build_duckdb" not in done:
                # The full build failed (or was not run): build just the months scored (not measured).
                source = project.work / "training_set_scored_months.parquet"
                start, end = project.scored_months()
                argv = ["features", "build", "--from", start, "--to", end, "--out", str(source), "--json"]
                m, _ = go("predict", project.noria(*argv))
                log(f"  (features of {start}..{end} for predict, not measured: {m.status}, {m.seconds} s)")
                reason = None if m.status == "ok" else f"the build of {start}..{end} failed"
            if reason:
                record("predict", None, detail=reason)
            else:
                path, rows = project.requests(source)
                scored = project.work / "scored.parquet"
                m, _ = go("predict", project.noria("predict", "--input", str(path), "--output", str(scored)))
                said = (m.stdout + "\n" + m.stderr_tail).splitlines()
                line = next((x.strip() for x in said if x.strip().startswith("scored ")), "")
                match = re.search(r" in ([\d.]+) s .*?([\d,]+) out of distribution", line)
                said_s = f"scoring {match.group(1)} s, {match.group(2)} OOD" if match else line[:80]
                _attach(record("predict", m, rows=rows, detail=f"last {2 * n} months; {said_s}"), m)
        if active("drift_window"):
            reason = needs("predict")
            if reason:
                record("drift_window", None, detail=reason)
            else:
                m, out = go("drift_window", project.noria("monitor", "drift", "--window", last, "--json"))
                reports = out if isinstance(out, list) else []
                rows = sum(int(r.get("rows") or 0) for r in reports) or None
                _attach(record("drift_window", m, rows=rows, detail=f"window {last}"), m)
        if active("drift_file"):
            reason = needs("build_duckdb", "training")
            profile = project.profile() if not reason else None
            if reason or profile is None:
                record("drift_file", None, detail=reason or "no reference profile")
            else:
                argv = project.noria(
                    "monitor", "drift", "--profile", str(profile), "--data", str(project.training_set), "--json"
                )
                m, out = go("drift_file", argv)
                _attach(
                    record(
                        "drift_file",
                        m,
                        rows=(out or {}).get("rows"),
                        detail="the build's rows (a sample of monitoring.drift.max_rows beyond it)",
                    ),
                    m,
                )
    finally:
        if not settings.keep:
            shutil.rmtree(project.root, ignore_errors=True)
            shutil.rmtree(project.work, ignore_errors=True)
            scale_data.remove(data)
    return [r for r in runs if r.step in wanted]


def _attach(run: StepRun, m: Measured) -> None:
    run.load_before, run.load_after = m.load_before, m.load_after


def _exponents(overall: float | None, top: float | None) -> str:
    if overall is None:
        return ""
    return f"{overall:.2f}" + (f" ({top:.2f})" if top is not None else "")


def summarize(runs: list[StepRun]) -> tuple[list[dict[str, Any]], list[Target]]:
    """Per step: exponents, largest N handled, goals."""
    summary, targets = [], []
    for step in STEPS:
        mine = sorted((r for r in runs if r.step == step), key=lambda r: r.n)
        if not mine:
            continue
        ok = [r for r in mine if r.status == "ok" and r.seconds and r.peak_mb]
        t_exp = _fit([(r.flight_rows, float(r.seconds or 0)) for r in ok])
        m_exp = _fit([(r.flight_rows, float(r.peak_mb or 0)) for r in ok])
        t_top = _fit([(r.flight_rows, float(r.seconds or 0)) for r in ok[-2:]])
        m_top = _fit([(r.flight_rows, float(r.peak_mb or 0)) for r in ok[-2:]])
        limit = [r for r in mine if r.status not in ("ok", "skipped")]
        top = ok[-1] if ok else None
        summary.append(
            {
                "step": STEPS[step],
                "N measured": ",".join(str(r.n) for r in ok),
                "time exponent": _exponents(t_exp, t_top),
                "memory exponent": _exponents(m_exp, m_top),
                "KB per flight row at largest N": round(float(top.peak_mb or 0) * 1000 / top.flight_rows, 2)
                if top
                else "",
                "largest N handled": top.n if top else "",
                "limit": "; ".join(f"N={r.n}: {r.status}" for r in limit),
            }
        )
        if t_exp is not None:
            targets.append(
                Target(f"{STEPS[step]}: time exponent", round(t_exp, 2), f"<= {TIME_GOAL}", t_exp <= TIME_GOAL)
            )
        if step in BOUNDED and m_exp is not None:
            targets.append(
                Target(
                    f"{STEPS[step]}: memory exponent",
                    round(m_exp, 2),
                    f"<= {MEMORY_GOAL} (bounded)",
                    m_exp <= MEMORY_GOAL,
                )
            )
        if step == "ingest" and ok:
            top = ok[-1]
            targets.append(
                Target(
                    f"ingest peak MB at N={top.n}",
                    float(top.peak_mb or 0),
                    f"< {INGEST_MB_GOAL:.0f}",
                    float(top.peak_mb or 0) < INGEST_MB_GOAL,
                )
            )
        if step == "build_spark":
            largest = max((r.n for r in ok), default=0)
            targets.append(
                Target("spark build: largest N handled", largest, f">= {SPARK_N_GOAL}", largest >= SPARK_N_GOAL)
            )
    return summary, targets


def _markdown_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def plot(runs: list[StepRun], folder: Path = IMG) -> list[Path]:
    """Log-log curves per step: seconds and peak memory against flight rows (deterministic SVG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator

    plt.rcParams["svg.hashsalt"] = "noria-scale"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    ticks = sorted({(r.flight_rows, r.n) for r in runs if r.status == "ok"})
    for key, label, name in (
        ("seconds", "wall time (s)", "scaling_time.svg"),
        ("peak_mb", "peak RSS of the process tree (MB)", "scaling_memory.svg"),
    ):
        fig, ax = plt.subplots(figsize=(9.0, 5.0))
        for step in STEPS:
            pts = sorted(
                (r.flight_rows, float(getattr(r, key)))
                for r in runs
                if r.step == step and r.status == "ok" and getattr(r, key)
            )
            if not pts:
                continue
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=STEPS[step])
            over = [r for r in runs if r.step == step and r.status not in ("ok", "skipped") and getattr(r, key)]
            for r in over:  # a failed or killed step: where it stopped
                ax.plot([r.flight_rows], [float(getattr(r, key))], marker="x", color="red", markersize=9)
        if len(ticks) > 1:
            lo, hi = ticks[0][0], ticks[-1][0]
            y0 = min(float(getattr(r, key)) for r in runs if r.status == "ok" and getattr(r, key)) / 2
            ax.plot([lo, hi], [y0, y0 * hi / lo], ls="--", color="grey", lw=1, label="slope 1 (linear)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks([x for x, _ in ticks], [f"{x / 1e6:.2g}M\nN={n}" for x, n in ticks])
        ax.minorticks_off()
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
        ax.set_xlabel("flight rows in the data (N years of ~337,000 flights)")
        ax.set_ylabel(label)
        ax.set_title(f"Noria steps against data size: {label}, log-log")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
        fig.tight_layout()
        path = folder / name
        fig.savefig(path, format="svg", metadata={"Date": None})
        plt.close(fig)
        written.append(path)
    return written


def _stored_runs() -> list[StepRun]:
    path = RESULTS / f"{NAME}.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    return [StepRun(**row["_raw"]) for row in data.get("rows", []) if "_raw" in row]


def run(quick: bool = False, settings: Settings | None = None) -> Result:
    settings = settings or Settings.from_env(quick)

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = datetime.now(UTC)
    loads = {"start": _load()}
    runs: list[StepRun] = []
    tmp = Path(tempfile.mkdtemp(prefix="noria-bench-scale-"))
    try:
        for n in settings.ns:
            runs += run_n(n, settings, tmp, log)
    finally:
        if settings.keep:
            log(f"   kept the projects in {tmp} and the data in {scale_data.cache_root()}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    loads["end"] = _load()
    if settings.merge:  # this run's measurements replace the stored ones; a step it skipped does not
        stored = {(r.step, r.n): r for r in _stored_runs()}
        for r in runs:
            if r.status != "skipped" or (r.step, r.n) not in stored:
                stored[(r.step, r.n)] = r
        runs = list(stored.values())
    runs.sort(key=lambda r: (list(STEPS).index(r.step), r.n))
    summary, targets = summarize(runs)
    if settings.plots:
        for path in plot(runs):
            log(f"   -> {path.relative_to(ROOT)}")
    ns = sorted({r.n for r in runs})
    by_budget: dict[str, list[int]] = {}
    for r in runs:
        by_budget.setdefault(r.budget or "40 min, 16 GB", []).append(r.n)
    budgets = "; ".join(f"{b} (N = {', '.join(map(str, sorted(set(n))))})" for b, n in by_budget.items())
    notes = "\n".join(
        [
            "### Growth per step",
            "",
            _markdown_table(summary),
            "",
            f"N measured: {', '.join(map(str, ns))} years (2013 .. 2013 + N - 1; N = 1 is 336,776 flights)."
            f" Budget per step: {budgets} of wall time and resident memory of its process tree (over it, the"
            " process group is killed and that N is the step's limit; memory kept below the machine's 24 GB, which"
            " other sessions share)."
            " Exponents: least-squares slope of log(seconds) or log(peak RSS) against log(flight rows) over every N"
            " measured, and (in brackets) the slope between the two largest N, where fixed start-up costs weigh"
            f" least. Training: {settings.trials} Optuna trials (`NORIA_TRAINING__TRIALS`), tuning on"
            " `training.tune_sample_rows` (400,000 by default), the final model on every training row, 1 thread."
            " Peak RSS: the larger of the sampled sum over the command's process tree (Python, Spark's JVM, the"
            " prediction-log writer) and the largest single process's own high-water mark (`VmHWM`).",
            "",
            f"This run: {started:%Y-%m-%d %H:%M} UTC, {'quick' if settings.quick else 'full'}; load average"
            f" (1 min) {loads['start']} at the start, {loads['end']} at the end, per step in the JSON"
            " (`load_before`, `load_after`); other sessions share the 2 cores.",
        ]
    )
    columns = ["step", "N", "flight rows", "step rows", "seconds", "peak RSS MB", "status", "detail"]
    return Result(name=NAME, title=TITLE, columns=columns, rows=[r.row() for r in runs], targets=targets, notes=notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--ns", help="N values, e.g. 1,3,10 (BENCH_SCALE_NS)")
    parser.add_argument("--steps", help=f"steps to measure, of {','.join(STEPS)} (BENCH_SCALE_STEPS)")
    parser.add_argument("--trials", type=int)
    parser.add_argument("--train-max-n", type=int)
    parser.add_argument("--merge", action="store_true", help="keep stored measurements of other N values")
    parser.add_argument("--keep", action="store_true", help="keep generated data and projects")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--plots-only", action="store_true", help="redraw the plots from the stored results")
    args = parser.parse_args(argv)
    if args.plots_only:
        for path in plot(_stored_runs()):
            print(path)
        return 0
    env = dict(os.environ)
    for key, value in (
        ("NS", args.ns),
        ("STEPS", args.steps),
        ("TRIALS", args.trials),
        ("TRAIN_MAX_N", args.train_max_n),
    ):
        if value is not None:
            env[f"BENCH_SCALE_{key}"] = str(value)
    env |= {"BENCH_SCALE_MERGE": "1"} if args.merge else {}
    env |= {"BENCH_SCALE_KEEP": "1"} if args.keep else {}
    env |= {"BENCH_SCALE_PLOTS": "0"} if args.no_plots else {}
    result = run(args.quick, Settings.from_env(args.quick, env))
    js, md = result.save()
    print(result.to_markdown())
    print(f"   -> {js.relative_to(ROOT)}, {md.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
