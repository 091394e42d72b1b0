"""The ``orchestrators:`` section of noria.yaml: how generated DAGs, KFP pipelines and Mage projects run steps.

Example (the ``cluster`` profile of a project)::

    orchestrators:
      mode: kubernetes
      image: ghcr.io/acme/noria-pipeline:1f2e3d4
      namespace: noria
      schedule: "@weekly"
      resources: {requests: {cpu: "1", memory: 4Gi}, limits: {cpu: "2", memory: 8Gi}}
      step_resources: {train: {requests: {cpu: "4", memory: 16Gi}}}
      env: {MLFLOW_TRACKING_URI: http://mlflow:5000}
      secrets:
        - {env: AWS_ACCESS_KEY_ID, secret: noria-secrets, key: s3-access-key-id}
      monitor: {schedule: "@daily"}
"""

from __future__ import annotations

import re
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from noria.names import is_env_name

# Airflow's presets; KFP has no schedule in its YAML and Mage maps them to its own intervals.
SCHEDULE_PRESETS = frozenset({"@once", "@hourly", "@daily", "@weekly", "@monthly", "@yearly"})
_CRON_FIELD = re.compile(r"[0-9A-Za-z*/,\-?LW#]+")
_QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|Pi|M|G|T|P|E|Ei)?")
_K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_RESOURCE_KEYS = frozenset({"cpu", "memory", "ephemeral-storage"})


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def check_schedule(value: str | None) -> str | None:
    """A preset such as ``@daily``, a five-field cron expression, or None (manual runs only)."""
    if value is None or value in SCHEDULE_PRESETS:
        return value
    fields = value.split()
    if len(fields) != 5 or not all(_CRON_FIELD.fullmatch(f) for f in fields):
        raise ValueError(
            f"schedule {value!r} is neither a preset ({', '.join(sorted(SCHEDULE_PRESETS))}) "
            "nor a five-field cron expression like '0 3 * * 1'"
        )
    return value


def _check_quantities(value: dict[str, str]) -> dict[str, str]:
    for key, quantity in value.items():
        if key not in _RESOURCE_KEYS:
            raise ValueError(f"unknown resource {key!r} (use {', '.join(sorted(_RESOURCE_KEYS))})")
        if not _QUANTITY.fullmatch(str(quantity)):
            raise ValueError(f"{key}: {quantity!r} is not a Kubernetes quantity like '500m', '2' or '4Gi'")
    return value


class Resources(_Section):
    """Kubernetes requests and limits of one step's container (``cpu``, ``memory``, ``ephemeral-storage``)."""

    # What a step's container is guaranteed (cpu, memory, ephemeral-storage).
    requests: dict[str, str] = {"cpu": "500m", "memory": "1Gi"}
    # The most it may use.
    limits: dict[str, str] = {"cpu": "2", "memory": "4Gi"}

    @field_validator("requests", "limits")
    @classmethod
    def _quantities(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_quantities(value)


class StepResources(_Section):
    """Per-step overrides, merged key by key over ``orchestrators.resources``."""

    # Requests and limits of this step, over orchestrators.resources.
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}

    @field_validator("requests", "limits")
    @classmethod
    def _quantities(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_quantities(value)


class SecretEnv(_Section):
    """One environment variable of every pod, read from key ``key`` of Kubernetes Secret ``secret``."""

    # The variable's name in the pod.
    env: str
    # The Kubernetes Secret holding it ...
    secret: str
    # ... under this key.
    key: str

    @field_validator("env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not is_env_name(value):
            raise ValueError(f"{value!r} is not an environment variable name")
        return value

    @field_validator("secret")
    @classmethod
    def _secret_name(cls, value: str) -> str:
        if not _K8S_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a Kubernetes Secret name (lower-case letters, digits, '-', '.')")
        return value


class MonitorSchedule(_Section):
    """The second generated DAG: ``noria monitor run`` (the retraining policy, evaluated once) on a schedule."""

    # Render the monitoring DAG.
    enabled: bool = True
    # Its schedule (cron or @daily-style).
    schedule: str | None = "@daily"
    # The arguments after ``noria [--project DIR] --profile P``.
    command: list[str] = ["monitor", "run"]

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return check_schedule(value)

    @field_validator("command")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("the monitor command needs at least one argument, e.g. [monitor, run]")
        return value


class OrchestratorsConfig(_Section):
    """How rendered orchestrator artifacts run each step (see docs/orchestrators.md).

    ``mode: local`` runs ``executable`` on the orchestrator's own machine (Airflow BashOperator,
    a subprocess in Mage); ``mode: kubernetes`` runs one pod per step from ``image``
    (KubernetesPodOperator; Kubeflow always runs containers).
    """

    # local: steps run on the orchestrator's machine; kubernetes: one pod per step.
    mode: Literal["local", "kubernetes"] = "local"
    # local: the noria command (default: the one installed beside the running Python).
    # kubernetes: the container command (the image's entry point is noria).
    executable: str | None = None
    # The project folder as tasks see it; default: this project's folder (local), the image's (kubernetes).
    project_dir: str | None = None
    # The pipeline image each step's pod runs.
    image: str = "noria-pipeline:latest"
    # When the kubelet pulls it.
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    # The Kubernetes namespace of the pods.
    namespace: str = "noria"
    # The pods' service account.
    service_account: str | None = "noria"
    # Pods are started from inside the cluster unless a kubeconfig is given (then in_cluster defaults to false).
    in_cluster: bool | None = None
    kubeconfig: str | None = None
    # Requests and limits of every step's container.
    resources: Resources = Resources()
    # Per step (by name), over those.
    step_resources: dict[str, StepResources] = {}
    # Environment variables of every step.
    env: dict[str, str] = {}
    # Environment variables of every pod read from Kubernetes Secrets.
    secrets: list[SecretEnv] = []
    # The training DAG's schedule (none: triggered only).
    schedule: str | None = None
    # The DAGs' start date.
    start_date: date = date(2024, 1, 1)
    # Attempts after a failed step (retries), and the wait between them (retry_delay_seconds).
    retries: int = Field(default=2, ge=0, le=20)
    retry_delay_seconds: int = Field(default=300, ge=0)
    # The scheduled monitoring DAG (noria monitor run).
    monitor: MonitorSchedule = MonitorSchedule()

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return check_schedule(value)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", value):
            raise ValueError(f"namespace {value!r} is not a Kubernetes namespace name")
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not is_env_name(k)]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))} are not environment variable names")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> OrchestratorsConfig:
        if self.kubeconfig is not None and self.in_cluster:
            raise ValueError("kubeconfig is set but in_cluster is true: drop one of them")
        names = [s.env for s in self.secrets]
        twice = sorted({n for n in names if names.count(n) > 1} | (set(names) & set(self.env)))
        if twice:
            raise ValueError(f"environment variable(s) {', '.join(twice)} set twice (env and/or secrets)")
        return self

    @property
    def pods_in_cluster(self) -> bool:
        return self.in_cluster if self.in_cluster is not None else self.kubeconfig is None

    def resources_for(self, step: str) -> Resources:
        """The step's requests and limits: the defaults with its ``step_resources`` entry merged over them."""
        over = self.step_resources.get(step)
        if over is None:
            return self.resources
        return Resources(
            requests={**self.resources.requests, **over.requests}, limits={**self.resources.limits, **over.limits}
        )
