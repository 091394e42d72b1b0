"""A retrain as a Kubernetes Job: ``monitoring.policy.retrain_via: kubernetes-job``.

``noria monitor run`` in a pod (the cluster's monitoring CronJob) creates a Job from the training
CronJob (``monitoring.policy.training_cronjob``, e.g. ``noria-training``) in the pod's own
namespace, through the Kubernetes API with the pod's service-account token, instead of training
in its own process. The Job's body is the one ``kubectl create job --from=cronjob/NAME JOB``
builds (the CronJob's ``jobTemplate``: its labels, its annotations plus
``cronjob.kubernetes.io/instantiate: manual``, an ownerReference to the CronJob, its spec), and
every container of the pod template gets the policy's periods and trials as ``NORIA_TRAINING__*``
variables (what ``kubectl set env`` would add), so the Job learns on the windows the policy chose.

Plain HTTPS (httpx, a core dependency) rather than the ``kubernetes`` client, which only the
airflow and kfp extras install and the pipeline image does not hold. The service account needs
``get`` on the CronJob and ``create`` on Jobs in its namespace: ``deploy/k8s/base/monitoring-rbac.yaml``.
"""

from __future__ import annotations

import copy
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from noria.errors import ConfigError, ExternalToolError, NotFoundError

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
MANUAL_ANNOTATION = "cronjob.kubernetes.io/instantiate"
RBAC_FILE = "deploy/k8s/base/monitoring-rbac.yaml"
_NAME_MAX = 63  # a Job's name becomes the value of its pods' job-name label


@dataclass(frozen=True)
class StartedJob:
    """A Job created from the training CronJob."""

    name: str
    namespace: str
    cronjob: str
    uid: str | None
    created: str  # when the API server created it (its creationTimestamp), UTC ISO 8601

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "kubernetes-job",
            "job": self.name,
            "namespace": self.namespace,
            "cronjob": self.cronjob,
            "uid": self.uid,
            "at": self.created,
        }


def job_name(cronjob: str, now: datetime) -> str:
    """A unique Job name: ``<cronjob>-retrain-<UTC yyyymmddhhmmss>-<4 hex>`` (at most 63 characters)."""
    suffix = f"-retrain-{now.astimezone(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(2)}"
    return cronjob[: _NAME_MAX - len(suffix)].rstrip("-.") + suffix


def job_from_cronjob(cronjob: Mapping[str, Any], name: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The Job ``kubectl create job --from=cronjob/<cronjob> <name>`` creates, plus ``env`` on every container."""
    template = cronjob.get("spec", {}).get("jobTemplate", {})
    meta = template.get("metadata") or {}
    annotations = {MANUAL_ANNOTATION: "manual", **(meta.get("annotations") or {})}
    metadata: dict[str, Any] = {"name": name, "annotations": annotations}
    if meta.get("labels"):
        metadata["labels"] = dict(meta["labels"])
    metadata["ownerReferences"] = [
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "name": cronjob["metadata"]["name"],
            "uid": cronjob["metadata"].get("uid"),
        }
    ]
    if cronjob["metadata"].get("namespace"):
        metadata["namespace"] = cronjob["metadata"]["namespace"]
    spec = copy.deepcopy(template.get("spec") or {})
    if env:
        for container in spec.get("template", {}).get("spec", {}).get("containers", []):
            kept = [e for e in container.get("env") or [] if e.get("name") not in env]
            container["env"] = kept + [{"name": k, "value": v} for k, v in env.items()]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}


class _Api:
    """The Kubernetes API as the pod's service account sees it."""

    def __init__(self, account: Path, environ: Mapping[str, str], timeout: float) -> None:
        host = environ.get("KUBERNETES_SERVICE_HOST")
        port = environ.get("KUBERNETES_SERVICE_PORT", "443")
        token_file, ca_file = account / "token", account / "ca.crt"
        missing = [str(p) for p in (token_file, ca_file, account / "namespace") if not p.is_file()]
        if not host or missing:
            what = "KUBERNETES_SERVICE_HOST is not set" if not host else f"{', '.join(missing)} missing"
            raise ConfigError(
                f"monitoring.policy.retrain_via: kubernetes-job needs the pod's service account ({what}): "
                "it runs only in a Kubernetes pod whose token is mounted",
                fix="run `noria monitor run` in the noria-monitoring CronJob (serviceAccountName: noria-monitoring, "
                "automountServiceAccountToken: true; deploy/k8s/base), or set monitoring.policy.retrain_via: pipeline",
            )
        self.namespace = (account / "namespace").read_text().strip()
        self.base = f"https://{host}:{port}" if ":" not in host else f"https://[{host}]:{port}"
        self.token = token_file.read_text().strip()
        self.ca = str(ca_file)
        self.timeout = timeout

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        import ssl

        import httpx

        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        try:
            with httpx.Client(verify=ssl.create_default_context(cafile=self.ca), timeout=self.timeout) as client:
                response = client.request(method, self.base + path, headers=headers, json=body)
        except httpx.HTTPError as err:
            raise ExternalToolError(
                f"the Kubernetes API server at {self.base} cannot be reached ({method} {path}): {err}",
                fix="check that the pod may reach it: the NetworkPolicy noria-monitoring-apiserver "
                "(deploy/k8s/base/networkpolicy.yaml) allows egress on TCP 443 and 6443",
            ) from err
        try:
            data = response.json()
        except ValueError:
            data = {"message": response.text[:500]}
        return response.status_code, data if isinstance(data, dict) else {"message": str(data)[:500]}


def _refused(status: int, data: dict[str, Any], verb: str, resource: str, namespace: str) -> ExternalToolError:
    message = str(data.get("message") or f"HTTP {status}")
    if status == 401:
        return ExternalToolError(
            f"the Kubernetes API server rejected the service-account token ({verb} {resource}): {message}",
            fix="the pod's token is invalid or expired: start a new pod (the kubelet projects and rotates tokens)",
        )
    if status == 403:
        return ExternalToolError(
            f"the service account may not {verb} {resource} in namespace {namespace}: {message}",
            fix=f"apply the Role and RoleBinding of {RBAC_FILE} (get on cronjobs, get and create on jobs, "
            "group batch) to the pod's service account; check with `kubectl -n "
            f"{namespace} auth can-i {verb} {resource.split('/')[0]} "
            f"--as=system:serviceaccount:{namespace}:noria-monitoring`",
        )
    return ExternalToolError(f"{verb} {resource} in namespace {namespace} failed (HTTP {status}): {message}")


def start_training_job(
    cronjob: str,
    env: Mapping[str, str] | None = None,
    *,
    account: Path | None = None,
    environ: Mapping[str, str] | None = None,
    now: datetime | None = None,
    timeout: float = 30.0,
) -> StartedJob:
    """Create a Job from CronJob ``cronjob`` in the pod's namespace, as ``kubectl create job --from`` does."""
    api = _Api(account or SERVICE_ACCOUNT, os.environ if environ is None else environ, timeout)
    ns = api.namespace
    status, found = api.call("GET", f"/apis/batch/v1/namespaces/{ns}/cronjobs/{cronjob}")
    if status == 404:
        raise NotFoundError(
            f"CronJob {cronjob} not found in namespace {ns} (monitoring.policy.training_cronjob)",
            fix="apply deploy/k8s (pipeline-cronjob.yaml defines noria-training) or set "
            "monitoring.policy.training_cronjob to the training CronJob's name",
        )
    if status != 200:
        raise _refused(status, found, "get", f"cronjobs/{cronjob}", ns)
    name = job_name(cronjob, now or datetime.now(UTC))
    body = job_from_cronjob(found, name, env)
    body["metadata"]["namespace"] = ns
    status, created = api.call("POST", f"/apis/batch/v1/namespaces/{ns}/jobs", body)
    if status not in (200, 201, 202):
        raise _refused(status, created, "create", "jobs", ns)
    meta = created.get("metadata") or {}
    return StartedJob(
        name=str(meta.get("name") or name),
        namespace=ns,
        cronjob=cronjob,
        uid=meta.get("uid"),
        created=str(meta.get("creationTimestamp") or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")),
    )


__all__ = ["SERVICE_ACCOUNT", "StartedJob", "job_from_cronjob", "job_name", "start_training_job"]
