"""``monitoring.policy.retrain_via: kubernetes-job``: the training Job created from the rendered
``noria-training`` CronJob, as ``kubectl create job --from=cronjob/noria-training`` creates it.

Mocked: the Kubernetes API server cannot run here (no cluster, no kind: no privileges for it), so
its two endpoints are served over real HTTPS by tests/unit/monitoring/kube_api_support.py. The
CronJob it serves is the real one: ``kubectl kustomize deploy/k8s/overlays/prod`` with the pinned
kubectl of scripts/check_deploy.py; the Job body posted is checked field by field and by the
Kubernetes schema (kubernetes-validate --strict, pinned too).
"""

from __future__ import annotations

import copy
import json
import re
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.unit.monitoring.kube_api_support import TOKEN, FakeApi, fake_api

from noria.config import load_project
from noria.errors import ConfigError, ExternalToolError, NotFoundError
from noria.monitoring.kube_job import start_training_job

ROOT = Path(__file__).resolve().parents[3]
UID = "5b0c4a1e-3f1d-4c83-9a55-2d7f0b6e9c11"
ENV = {"NORIA_TRAINING__TRAIN__FROM": "2013-09", "NORIA_TRAINING__TRAIN__TO": "2013-11"}


def _tools() -> Path:
    sys.path.insert(0, str(ROOT / "scripts"))
    import check_deploy  # the pinned tools of `make lint` (made on first use, from deploy/requirements-check.txt)

    return Path(check_deploy._deploy_tools())


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    out = subprocess.run(
        [str(_tools() / "kubectl"), "kustomize", str(ROOT / "deploy" / "k8s" / "overlays" / "prod")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="module")
def training(rendered: list[dict[str, Any]]) -> dict[str, Any]:
    """The noria-training CronJob as the API server returns it (with the fields it adds)."""
    found = next(d for d in rendered if d["kind"] == "CronJob" and d["metadata"]["name"] == "noria-training")
    served = copy.deepcopy(found)
    served["metadata"] |= {"uid": UID, "resourceVersion": "4711", "creationTimestamp": "2026-12-01T00:00:00Z"}
    served["status"] = {}
    return served


@pytest.fixture
def api(tmp_path: Path, training: dict[str, Any]) -> Any:
    with fake_api(tmp_path / "api", namespace="noria") as served:
        served.cronjobs["noria-training"] = training
        yield served


def _start(api: FakeApi, cronjob: str = "noria-training", **kwargs: Any) -> Any:
    return start_training_job(cronjob, ENV, account=api.account, environ=api.environ, **kwargs)


def test_the_job_is_kubectls_from_the_cronjob_with_the_policys_periods(
    api: FakeApi, training: dict[str, Any], tmp_path: Path
) -> None:
    job = _start(api, now=datetime(2026, 12, 7, 4, 30, 5, tzinfo=UTC))
    get, post = api.requests
    assert (get["method"], get["path"]) == ("GET", "/apis/batch/v1/namespaces/noria/cronjobs/noria-training")
    assert (post["method"], post["path"]) == ("POST", "/apis/batch/v1/namespaces/noria/jobs")
    assert get["auth"] == post["auth"] == f"Bearer {TOKEN}"
    body = post["body"]
    name = body["metadata"]["name"]
    assert re.fullmatch(r"noria-training-retrain-20261207043005-[0-9a-f]{4}", name) and len(name) <= 63
    # kubectl create job --from=cronjob/noria-training NAME: the template's labels and annotations,
    # instantiate: manual, an ownerReference to the CronJob (no controller flag), the template's spec
    spec = copy.deepcopy(training["spec"]["jobTemplate"]["spec"])
    (container,) = spec["template"]["spec"]["containers"]
    container["env"] = [*container["env"], *({"name": k, "value": v} for k, v in ENV.items())]
    assert body == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": "noria",
            "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
            "labels": training["spec"]["jobTemplate"]["metadata"]["labels"],
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "noria-training", "uid": UID}],
        },
        "spec": spec,
    }
    assert container["command"] == ["/bin/sh", "-c"] and "noria pipeline run training" in container["args"][0]
    created = api.jobs[0]["metadata"]
    assert job.to_dict() == {
        "kind": "kubernetes-job",
        "job": name,
        "namespace": "noria",
        "cronjob": "noria-training",
        "uid": created["uid"],
        "at": created["creationTimestamp"],
    }
    # the body is a valid Job of the Kubernetes API (strict: an unknown field fails)
    posted = tmp_path / "job.yaml"
    posted.write_text(yaml.safe_dump(body))
    out = subprocess.run(
        [str(_tools() / "kubernetes-validate"), "--strict", str(posted)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0 and "INFO" in out.stdout, out.stdout + out.stderr
    # a second retrain gets a name of its own
    again = _start(api, now=datetime(2026, 12, 7, 4, 30, 5, tzinfo=UTC))
    assert again.name != job.name


def test_403_names_the_permission_and_the_rbac_to_apply(api: FakeApi) -> None:
    api.forbid.add("get cronjobs")
    with pytest.raises(ExternalToolError) as caught:
        _start(api)
    err = caught.value
    assert "the service account may not get cronjobs/noria-training in namespace noria" in err.message
    assert 'User "system:serviceaccount:noria:noria-monitoring" cannot get resource "cronjobs"' in err.message
    assert err.fix is not None and "deploy/k8s/base/monitoring-rbac.yaml" in err.fix
    assert "kubectl -n noria auth can-i get cronjobs" in err.fix
    api.forbid = {"create jobs"}
    with pytest.raises(ExternalToolError, match="may not create jobs in namespace noria") as caught:
        _start(api)
    assert caught.value.fix is not None and "auth can-i create jobs" in caught.value.fix
    assert not api.jobs


def test_404_names_the_missing_cronjob_and_the_setting(api: FakeApi) -> None:
    with pytest.raises(NotFoundError) as caught:
        _start(api, cronjob="nightly-training")
    assert caught.value.message == (
        "CronJob nightly-training not found in namespace noria (monitoring.policy.training_cronjob)"
    )
    assert caught.value.fix is not None and "pipeline-cronjob.yaml" in caught.value.fix
    assert [r["method"] for r in api.requests] == ["GET"]


def test_a_rejected_token_and_an_unreachable_server(api: FakeApi, tmp_path: Path) -> None:
    (api.account / "token").write_text("stale")
    with pytest.raises(ExternalToolError, match="rejected the service-account token"):
        _start(api)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    environ = api.environ | {"KUBERNETES_SERVICE_PORT": str(closed)}
    with pytest.raises(ExternalToolError, match=f"API server at https://127.0.0.1:{closed} cannot be reached") as err:
        start_training_job("noria-training", account=api.account, environ=environ, timeout=5)
    assert err.value.fix is not None and "noria-monitoring-apiserver" in err.value.fix


def test_outside_a_pod_says_where_it_runs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="KUBERNETES_SERVICE_HOST is not set") as caught:
        start_training_job("noria-training", account=tmp_path, environ={})
    assert caught.value.fix is not None and "retrain_via: pipeline" in caught.value.fix
    with pytest.raises(ConfigError, match=f"{tmp_path}/token, {tmp_path}/ca.crt, {tmp_path}/namespace missing"):
        start_training_job("noria-training", account=tmp_path, environ={"KUBERNETES_SERVICE_HOST": "10.0.0.1"})


def test_only_the_monitoring_pod_holds_a_token_and_its_role_is_this_narrow(rendered: list[dict[str, Any]]) -> None:
    """The deployed project retrains through the Job, and its account may do just that."""
    project = load_project(ROOT / "examples" / "flights", profile="cluster", environ={})
    policy = project.config.monitoring.policy
    assert (policy.retrain_via, policy.training_cronjob) == ("kubernetes-job", "noria-training")
    assert load_project(ROOT / "examples" / "flights", environ={}).config.monitoring.policy.retrain_via == "pipeline"
    kinds = {(d["kind"], d["metadata"]["name"]): d for d in rendered}
    role = kinds[("Role", "noria-monitoring")]
    assert role["metadata"]["namespace"] == "noria"
    assert role["rules"] == [
        {"apiGroups": ["batch"], "resources": ["cronjobs"], "resourceNames": ["noria-training"], "verbs": ["get"]},
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "create"]},
    ]
    binding = kinds[("RoleBinding", "noria-monitoring")]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "noria-monitoring"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "noria-monitoring", "namespace": "noria"}]
    assert not any(d["kind"] in ("ClusterRole", "ClusterRoleBinding") for d in rendered)
    assert ("CronJob", policy.training_cronjob) in kinds
    for (kind, name), doc in kinds.items():
        if kind not in ("CronJob", "Deployment"):
            continue
        pod = (doc["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else doc["spec"])["template"]["spec"]
        token = (pod["serviceAccountName"], pod["automountServiceAccountToken"])
        assert token == (("noria-monitoring", True) if name == "noria-monitoring" else ("noria", False)), name
    egress = kinds[("NetworkPolicy", "noria-monitoring-apiserver")]["spec"]
    assert egress["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "monitoring"
    assert {p["port"] for rule in egress["egress"] for p in rule["ports"]} == {443, 6443}
    assert json.dumps(kinds[("ServiceAccount", "noria-monitoring")]).count("automountServiceAccountToken") == 1


def test_the_policy_shown_in_docs_monitoring_md_is_valid_config() -> None:
    from noria.monitoring.config import RetrainPolicy

    page = (ROOT / "docs" / "monitoring.md").read_text(encoding="utf-8")
    [block] = [b for b in re.findall(r"```yaml\n(.*?)```", page, re.S) if "retrain_via" in b]
    policy = RetrainPolicy.model_validate(yaml.safe_load(block)["monitoring"]["policy"])
    assert (policy.retrain_via, policy.training_cronjob) == ("pipeline", "noria-training")
    assert (policy.airflow_url, policy.airflow_dag_id, policy.airflow_timeout) == (None, None, 30)
    assert (policy.airflow_username_env, policy.airflow_password_env) == (
        "NORIA_AIRFLOW_USERNAME",
        "NORIA_AIRFLOW_PASSWORD",
    )
    with pytest.raises(ValueError, match="retrain_via"):
        RetrainPolicy.model_validate({"retrain_via": "argo"})
