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
      monitor: {schedule: "@daily"}      # drift -> feedback -> monitor run
      features: {schedule: "17 * * * *"}  # features apply -> materialize --until now
      ingest: {schedule: null}            # triggered when data arrives
"""

from __future__ import annotations

import re
from datetime import date
from typing import ClassVar, Literal

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


_TASK_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}")


class LoopDag(_Section):
    """One generated DAG of the loop: its tasks run one after another on a schedule.

    Each task runs ``noria [--project DIR] --profile P ARGS``; in kubernetes mode each is a pod
    that first checks the newest data snapshot out (``orchestrators.pull_data``), as the
    CronJobs of deploy/k8s do.
    """

    # What the DAG does, in its description, and the run conf entries its tasks take as
    # environment variables (None: none): class constants, not settings.
    description: ClassVar[str] = ""
    conf_prefix: ClassVar[str | None] = None

    # Render this DAG.
    enabled: bool = True
    # Its schedule (cron or @daily-style; none: triggered only).
    schedule: str | None = None
    # Task name -> the arguments after ``noria [--project DIR] --profile P``, run in this order.
    tasks: dict[str, list[str]] = {}

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return check_schedule(value)

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        if not value:
            raise ValueError("a DAG needs at least one task, e.g. {run: [monitor, run]}")
        for name, args in value.items():
            if not _TASK_ID.fullmatch(name):
                raise ValueError(f"task name {name!r}: use letters, digits, '_', '.', '-' (an Airflow task id)")
            if not args:
                raise ValueError(f"task {name!r} has no arguments, e.g. [monitor, run]")
        return value


class MonitorSchedule(LoopDag):
    """The monitoring DAG: drift of the newest window, feedback from matured labels, the retraining policy."""

    description: ClassVar[str] = "drift, feedback from matured labels, retraining policy"

    # Its schedule (cron or @daily-style).
    schedule: str | None = "@daily"
    # drift -> feedback -> run, as the noria-monitoring CronJob (``monitor run`` may start a retrain).
    tasks: dict[str, list[str]] = {
        "drift": ["monitor", "drift", "--window", "latest"],
        "feedback": ["monitor", "feedback"],
        "run": ["monitor", "run"],
    }

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: object) -> object:
        if isinstance(data, dict) and "command" in data:
            raise ValueError(
                f"monitor.command was replaced by monitor.tasks (name -> arguments, run in order): "
                f"write tasks: {{run: {data['command']!r}}}, or leave tasks out for drift -> feedback -> run"
            )
        return data


class IngestSchedule(LoopDag):
    """The ingest DAG: ``noria data ingest`` into the data remote, triggered when data arrives.

    A run's conf entries named ``NORIA_DATA__*`` become environment variables of its tasks, e.g.
    ``{"NORIA_DATA__DEFAULT_RANGE__FROM": "2013-07", "NORIA_DATA__DEFAULT_RANGE__TO": "2013-07"}``.
    """

    description: ClassVar[str] = "the data source into a validated snapshot on the data remote"
    conf_prefix: ClassVar[str | None] = "NORIA_DATA__"

    # Its schedule (none: triggered when data arrives, as the suspended noria-ingest CronJob).
    schedule: str | None = None
    tasks: dict[str, list[str]] = {"ingest": ["data", "ingest"]}


class FeaturesSchedule(LoopDag):
    """The feature-store DAG: register the definitions and load the online store, hourly."""

    description: ClassVar[str] = "feature definitions applied, the online store loaded"

    # Its schedule (hourly at :17, as the noria-features CronJob).
    schedule: str | None = "17 * * * *"
    tasks: dict[str, list[str]] = {
        "apply": ["features", "apply"],
        "materialize": ["features", "materialize", "--until", "now"],
    }


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
    # kubernetes mode and Kubeflow: each pod copies the image's project to a writable folder and
    # runs `noria data pull` (the newest snapshot from the S3 DVC remote) before its command.
    pull_data: bool = True
    # The loop's DAGs beside the pipeline's: ingest (triggered), features (hourly), monitoring (daily).
    ingest: IngestSchedule = IngestSchedule()
    features: FeaturesSchedule = FeaturesSchedule()
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

    def loop_dags(self) -> dict[str, LoopDag]:
        """The loop's DAGs by name, in the order data flows: ingest, features, monitor."""
        return {"ingest": self.ingest, "features": self.features, "monitor": self.monitor}

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
