"""The ``cluster`` profile on a real stack started here: MLflow server, PostgreSQL, S3.

This module starts, and stops by PID at its end, what deploy/compose runs in containers
(cluster_support.py): PostgreSQL holding MLflow's backend store, SeaweedFS as the S3 server,
and ``mlflow server`` on that database with its artifacts proxied to ``s3://mlflow``.

The reference project (examples/flights, copied by ``noria init``) runs with
``--profile cluster`` exactly as its noria.yaml says; only what differs between this machine
and the stack comes from the environment, as deploy/compose and deploy/k8s pass it: the
MLflow server's address (NORIA_TRACKING__URI), the S3 endpoint and credentials (AWS_*,
MLFLOW_S3_ENDPOINT_URL), and a small data window (two weeks of flights, one tuning trial).
The training pipeline runs through the CLI until a champion exists; ``noria serve`` then
loads that champion from the server with no S3 credentials at all (artifacts are proxied).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cluster_support import SMALL_TRAINING, Stack, clean_env, cluster_stack, small_flights_sources, stop_group
from tests.conftest import free_port

from noria.errors import ConfigError, ExternalToolError

# Noria's data and pipeline modules (pandas, DVC, ...) are imported inside the fixtures, once
# the MLflow server is starting: the two take their time side by side, not one after the other.

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:XDG_RUNTIME_DIR is not set"),  # pgserver's runtime folder, as root
]

MODEL = "flight-delay"
STEPS = (
    "context", "card_docs", "training_set", "split", "tune", "train", "evaluate", "register", "champion_now", "gate"
)  # fmt: skip
UNCACHED = {"context", "card_docs", "champion_now"}  # @step(cache=False) in noria.training.pipeline
DAYS = 7  # the first week of January (train) and of February (test)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with cluster_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@dataclass
class Trained:
    root: Path
    env: dict[str, str]  # NORIA_* overrides of the cluster profile (the server's address, the small window)
    s3_env: dict[str, str]
    run: dict[str, Any]  # `noria pipeline run training --json`

    def output(self, name: str) -> Any:
        """An output of the run, read back from the pipeline store in S3."""
        from noria.pipelines import open_store
        from noria.pipelines._serializers import load_artifact

        step = next(s for s in self.run["steps"].values() if name in s["outputs"])
        with pytest.MonkeyPatch.context() as mp:
            for var, value in self.s3_env.items():
                mp.setenv(var, value)
            store = open_store(self.run["store"], cache_dir=self.root / ".noria" / "test-cache")
            return load_artifact(store.get(step["outputs"][name]))


@pytest.fixture(scope="module")
def trained(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """Ingest (DVC pushes to S3) while the MLflow server starts, then the training pipeline by the CLI."""
    from noria.config import load_project
    from noria.data.ingest import ingest
    from noria.scaffold import init_project

    tmp = tmp_path_factory.mktemp("cluster")
    root = init_project(tmp / "flights")
    raw = small_flights_sources(tmp / "raw", DAYS)
    overrides = SMALL_TRAINING | {
        "NORIA_TRACKING__URI": stack.mlflow_url,
        "NORIA_DATA__SOURCE__KIND": "directory",
        "NORIA_DATA__SOURCE__PATH": str(raw),
    }
    with pytest.MonkeyPatch.context() as mp:  # DVC, boto3 and s3fs read the AWS variables
        for var in [v for v in os.environ if v.startswith(("NORIA_", "AWS_", "MLFLOW_"))]:
            mp.delenv(var)
        for var, value in stack.s3_env().items():
            mp.setenv(var, value)
        project = load_project(root, profile="cluster", environ=overrides)
        assert project.config.storage.dvc_remote == "s3://noria-data/dvc"  # the profile, not an override
        ingest(project, "2013-01", "2013-02")

    stack.wait_for_mlflow()
    # Like a Kubernetes pod: the S3 endpoint only as MLFLOW_S3_ENDPOINT_URL (deploy/k8s sets no other).
    env = clean_env(stack.pycache) | overrides | stack.s3_env() | {"MLFLOW_DISABLE_TELEMETRY": "true"}
    del env["AWS_ENDPOINT_URL"]
    argv = [sys.executable, "-m", "noria", "--project", str(root), "--profile", "cluster"]
    done = subprocess.run(
        [*argv, "pipeline", "run", "training", "--json", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=480,
        check=False,
    )
    assert done.returncode == 0, f"pipeline failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    run = json.loads(done.stdout)  # stdout is the JSON document only (MLflow prints nothing there)
    yield Trained(root=root, env=overrides, s3_env=stack.s3_env(), run=run)


def test_the_pipeline_keeps_steps_data_and_cache_in_the_clusters_s3(stack: Stack, trained: Trained) -> None:
    run = trained.run
    assert run["store"] == "s3://noria-artifacts/pipelines"  # pipelines.store of the cluster profile
    assert {name: step["status"] for name, step in run["steps"].items()} == dict.fromkeys(STEPS, "ran")
    keys = set(stack.s3.keys("noria-artifacts", "pipelines/"))
    for name, step in run["steps"].items():
        assert f"pipelines/runs/training/{run['run_id']}/steps/{name}.json" in keys
        for artifact in step["outputs"].values():
            assert f"pipelines/objects/{artifact[:2]}/{artifact}/meta.json" in keys
        cached = f"pipelines/cache/{step['cache_key'][:2]}/{step['cache_key']}.json" in keys
        assert cached == (name not in UNCACHED), name
    assert not (trained.root / ".noria" / "artifacts" / "objects").exists()  # nothing in the local store
    assert stack.s3.keys("noria-data", "dvc/")  # storage.dvc_remote of the cluster profile
    decision = trained.output("gate")
    assert decision["promoted"] and decision["alias"] == "champion" and decision["version"] == 1


def test_the_mlflow_server_holds_the_run_and_the_champion(stack: Stack, trained: Trained) -> None:
    api = f"{stack.mlflow_url}/api/2.0/mlflow"
    registered = httpx.get(f"{api}/registered-models/get", params={"name": MODEL}).raise_for_status().json()
    aliases = {a["alias"]: a["version"] for a in registered["registered_model"].get("aliases", [])}
    assert aliases == {"champion": "1"}
    version = httpx.get(f"{api}/model-versions/get", params={"name": MODEL, "version": "1"}).json()
    version = version["model_version"]
    registered_run = trained.output("register")
    assert version["run_id"] == registered_run["run_id"] and version["status"] == "READY"
    assert version["source"].startswith("mlflow-artifacts:/")  # the server's proxied S3 artifact root
    run = httpx.get(f"{api}/runs/get", params={"run_id": version["run_id"]}).json()["run"]
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert run["info"]["status"] == "FINISHED"
    assert tags["noria.infra.tracking_backend"] == "http"
    assert tags["noria.pipeline.run_id"] == trained.run["run_id"]
    assert tags["noria.data.snapshot"] == trained.output("context")["snapshot_id"]
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    holdout = trained.output("evaluation")["flat"]  # what the evaluate step measured
    assert metrics["test_roc_auc"] == pytest.approx(holdout["test_roc_auc"]) and 0.5 < metrics["test_roc_auc"] < 1
    experiment = httpx.get(f"{api}/experiments/get", params={"experiment_id": run["info"]["experiment_id"]}).json()
    assert experiment["experiment"]["name"] == "flights"
    assert experiment["experiment"]["artifact_location"].startswith("mlflow-artifacts:/")


def test_postgresql_holds_the_registry_and_the_runs(stack: Stack, trained: Trained) -> None:
    import psycopg2

    run_id = trained.output("register")["run_id"]
    conn = psycopg2.connect(dbname="mlflow", user="postgres", host=stack.pg.url.rpartition("host=")[2])
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT name FROM registered_models")
            assert cur.fetchall() == [(MODEL,)]
            cur.execute("SELECT alias, version FROM registered_model_aliases WHERE name = %s", (MODEL,))
            assert cur.fetchall() == [("champion", 1)]
            cur.execute("SELECT version, run_id FROM model_versions WHERE name = %s", (MODEL,))
            assert cur.fetchall() == [(1, run_id)]
            cur.execute("SELECT status FROM runs WHERE run_uuid = %s", (run_id,))
            assert cur.fetchall() == [("FINISHED",)]
    finally:
        conn.close()


def test_the_model_and_run_artifacts_are_objects_in_the_s3_bucket(stack: Stack, trained: Trained) -> None:
    api = f"{stack.mlflow_url}/api/2.0/mlflow"
    version = httpx.get(f"{api}/model-versions/get", params={"name": MODEL, "version": "1"}).json()["model_version"]
    # mlflow-artifacts:/<experiment>/models/<model id>/artifacts -> s3://mlflow/<same path>
    prefix = version["source"].removeprefix("mlflow-artifacts:/").strip("/") + "/"
    model_files = {key.removeprefix(prefix) for key in stack.s3.keys("mlflow", prefix)}
    assert {"model.lgb", "MLmodel"} <= model_files
    run_files = stack.s3.keys("mlflow", f"{prefix.split('/')[0]}/{version['run_id']}/artifacts/")
    assert any(key.endswith("/model_card.md") for key in run_files)


def test_noria_serve_loads_the_champion_from_the_server(stack: Stack, trained: Trained) -> None:
    import lightgbm as lgb

    from noria.training.model import model_frame

    info = trained.output("training_set_info")
    row = trained.output("test_rows").iloc[[0]]
    features = {name: _json_value(row[name].iloc[0]) for name in info["features"]}
    port = free_port()
    # No S3 variable at all: with --serve-artifacts the model comes through the MLflow server.
    env = clean_env(stack.pycache) | trained.env | {"MLFLOW_DISABLE_TELEMETRY": "true"}
    argv = [sys.executable, "-m", "noria", "--project", str(trained.root), "--profile", "cluster"]
    log = trained.root / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*argv, "serve", "--insecure-local", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"noria serve did not get ready:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        served = httpx.get(f"{url}/version").json()
        assert (served["name"], served["version"], served["alias"]) == (MODEL, 1, "champion")
        assert served["run_id"] == trained.output("register")["run_id"]
        flight = {
            "carrier": features["carrier"],
            "flight": 1545,
            "origin": features["origin"],
            "dest": features["dest"],
            "tailnum": "N14228",
            "scheduled_departure": "2013-02-03T05:15:00-05:00",
            "distance": features["distance"],
            "features": features,
        }
        answer = httpx.post(f"{url}/predict", json=flight, timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["model_name"], body["model_version"], body["arm"]) == (MODEL, 1, "champion")
    finally:
        stop_group(proc)
    # The same model file, read straight from the S3 bucket, gives the same probability.
    api = f"{stack.mlflow_url}/api/2.0/mlflow"
    source = httpx.get(f"{api}/model-versions/get", params={"name": MODEL, "version": "1"}).json()
    key = source["model_version"]["source"].removeprefix("mlflow-artifacts:/").strip("/") + "/model.lgb"
    text = stack.s3.client().get_object(Bucket="mlflow", Key=key)["Body"].read().decode()
    booster = lgb.Booster(model_str=text)
    categorical = [f for f in info["features"] if info["feature_types"][f] == "str"]
    expected = float(booster.predict(model_frame(row, booster.feature_name(), categorical))[0])
    assert body["probability"] == pytest.approx(expected, abs=1e-6)  # the API rounds to 6 decimals


def test_s3_problems_name_the_store_and_the_fix(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from noria.pipelines import open_store

    for var, value in stack.s3_env().items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # the endpoint from MLFLOW_S3_ENDPOINT_URL, as in deploy/k8s
    missing = open_store("s3://no-such-bucket/pipelines", cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="bucket 'no-such-bucket'.*does not exist") as caught:
        missing.read_record("runs/p/r/run.json")  # (SeaweedFS creates a missing bucket on upload)
    assert stack.s3.endpoint in caught.value.message and "mb s3://no-such-bucket" in str(caught.value.fix)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    refused = open_store("s3://noria-artifacts/pipelines", cache_dir=tmp_path)
    with pytest.raises(ExternalToolError, match="S3 refused to read the record runs/p/r/run.json") as denied:
        refused.read_record("runs/p/r/run.json")
    assert "SignatureDoesNotMatch" in denied.value.message and "AWS_SECRET_ACCESS_KEY" in str(denied.value.fix)


def _json_value(value: Any) -> Any:
    """A feature value as the API takes it: numbers as floats, categories as text, missing as null."""
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, str):
        return value
    return float(value)


def test_compose_points_the_cluster_profile_at_the_same_services() -> None:
    import yaml

    from noria.config import load_project

    repo = Path(__file__).resolve().parents[2]
    compose = yaml.safe_load((repo / "deploy" / "compose" / "compose.yaml").read_text(encoding="utf-8"))
    env, services = compose["x-noria-env"], compose["services"]
    profile = load_project(repo / "examples" / "flights", profile="cluster", environ={}).config
    assert env["NORIA_PROFILE"] == "cluster"
    assert env["NORIA_TRACKING__URI"] == profile.tracking.uri == "http://mlflow:5000"
    assert env["NORIA_STORAGE__DVC_REMOTE"] == profile.storage.dvc_remote
    assert env["NORIA_PIPELINES__STORE"] == profile.pipelines.store
    assert env["AWS_ENDPOINT_URL"] == env["MLFLOW_S3_ENDPOINT_URL"] == "http://seaweedfs:8333"
    assert "-s3.port=8333" in " ".join(services["seaweedfs"]["command"])
    mlflow = " ".join(services["mlflow"]["command"]).split()  # one `sh -c` line: it writes the auth config first
    assert {"--port=5000", "--serve-artifacts", "--artifacts-destination=s3://mlflow", "--app-name=basic-auth"} <= set(
        mlflow
    )
    created = " ".join(services["s3-init"]["command"])
    for url in ("s3://mlflow", profile.storage.dvc_remote, str(profile.pipelines.store)):
        assert f'"{url.removeprefix("s3://").split("/")[0]}"' in created, f"s3-init does not create the bucket of {url}"
