"""Settings for reference profiles and drift checks (the ``monitoring.drift`` section).

Every threshold has a default that works on monthly windows of a few thousand rows or more;
``noria.yaml`` overrides them under ``monitoring: drift:``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from noria.names import is_env_name


class DriftConfig(BaseModel):
    """How profiles are built and how drift statistics become verdicts and alerts.

    PSI sets the level (``warn`` from ``psi_warn``, ``drift`` from ``psi_alert``); a level above
    ``ok`` also needs the feature's test (Kolmogorov-Smirnov for numeric features, chi-square for
    categorical ones) to reject "same distribution" at ``p_value``, so that noise in a small
    window does not raise a warning. A rise of the missing rate by ``missing_warn`` /
    ``missing_alert`` (absolute) is drift too. ``alert`` is raised only for drift on features
    whose share of the total feature importance is at least ``min_importance``.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # A feature's PSI from which its verdict is warn ...
    psi_warn: float = Field(default=0.1, ge=0)
    # ... and drift.
    psi_alert: float = Field(default=0.25, ge=0)
    # A level above ok also needs the feature's test (KS or chi-square) to reject at this p-value.
    p_value: float = Field(default=0.05, gt=0, le=1)
    # A rise of the missing rate (absolute) that is a warning ...
    missing_warn: float = Field(default=0.05, ge=0, le=1)
    # ... and drift.
    missing_alert: float = Field(default=0.2, ge=0, le=1)
    # Drift alerts only on features with at least this share of the model's importance.
    min_importance: float = Field(default=0.05, ge=0, le=1)
    # Alert on drift of the score (the model's output) too.
    alert_on_score: bool = True
    # A model version that served fewer rows than this in a window is not judged there (e.g. the
    # old champion's last few requests of a month in which the champion changed).
    min_rows: int = Field(default=200, ge=1)
    # Reference profiles: quantile bins per numeric feature (PSI) ...
    bins: int = Field(default=10, ge=2, le=100)
    # ... points of its stored distribution (KS test) ...
    ecdf_points: int = Field(default=5000, ge=16, le=1_000_000)
    # ... and the most frequent categories kept per categorical feature.
    max_categories: int = Field(default=200, ge=1, le=100_000)
    # A file checked with `noria monitor drift --data` holding more rows is judged on a seeded
    # uniform sample of this many, read batch by batch (memory stays bounded whatever its size).
    max_rows: int = Field(default=500_000, ge=1_000)

    @model_validator(mode="after")
    def _ordered(self) -> DriftConfig:
        if self.psi_warn > self.psi_alert:
            raise ValueError(f"psi_warn ({self.psi_warn}) is greater than psi_alert ({self.psi_alert})")
        if self.missing_warn > self.missing_alert:
            raise ValueError(f"missing_warn ({self.missing_warn}) is greater than missing_alert ({self.missing_alert})")
        return self


class FeedbackConfig(BaseModel):
    """How delayed labels are joined to logged predictions and judged (``monitoring.feedback``).

    ``review_band``: a served prediction of a binary model whose probability is within this
    distance of the decision threshold, or of a multi-class model whose two likeliest classes are
    within this distance of each other, is "low certainty" and goes to the review queue, as does every
    out-of-distribution one. ``min_labels``: a day or window with fewer labelled predictions (or,
    binary, without both classes) gets no metric, only counts.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # Low certainty: within this of the threshold (binary), or top two classes this close (multiclass).
    review_band: float = Field(default=0.05, ge=0, le=0.5)
    # Fewer labelled predictions than this in a day or window: counts, no metric.
    min_labels: int = Field(default=100, ge=1)
    # Equal-width probability bins of the reliability table.
    calibration_bins: int = Field(default=10, ge=2, le=100)


# The default variables of monitoring.policy.airflow_username_env / _password_env (noria.config reserves them).
AIRFLOW_CREDENTIAL_ENV = ("NORIA_AIRFLOW_USERNAME", "NORIA_AIRFLOW_PASSWORD")


class RetrainPolicy(BaseModel):
    """When ``noria monitor run`` retrains (``monitoring.policy``); every decision is recorded.

    Retrain when drift on an important feature raised an alert (``on_drift``), when the serving
    model's live primary metric (the task's: ROC AUC, log loss, RMSE) on delayed labels is worse
    than its holdout value by more than ``metric_drop`` (in the metric's own units), or when the
    champion's newest training window is more than ``every_windows`` windows behind the newest
    window with mature labels (the schedule). The retrain learns on the newest ``train_windows``
    windows of ingested data and is judged on the ``test_windows`` after them (the newest of
    them the newest with mature labels), then goes through the same promotion gate as any
    training run. ``trials`` overrides ``training.trials`` for retrains (None: the same).

    ``retrain_via`` says where the retrain runs: ``pipeline`` (in this process),
    ``kubernetes-job`` (a Job created from the CronJob ``training_cronjob`` in the pod's
    namespace, given the same periods and trials) or ``airflow`` (a run of the training DAG
    ``airflow_dag_id`` triggered through the REST API of the Airflow 3 at ``airflow_url``, the
    periods and trials in its ``conf``); with either of the last two, ``noria monitor run``
    records what it started and returns without waiting for it.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # Evaluate the policy at all (decisions are recorded either way).
    enabled: bool = True
    # Retrain when drift alerts on an important feature (or the score).
    on_drift: bool = True
    # Retrain when the live primary metric is worse than the holdout's by more than this (its units).
    metric_drop: float | None = Field(default=None, ge=0)
    # Retrain when the champion learned from data this many windows older than the newest.
    every_windows: int | None = Field(default=None, ge=1, le=10_000)
    # A retrain learns on this many newest windows ...
    train_windows: int = Field(default=5, ge=1, le=10_000)
    # ... and is judged on this many after them.
    test_windows: int = Field(default=1, ge=1, le=1_000)
    # Optuna trials of a retrain (None: training.trials).
    trials: int | None = Field(default=None, ge=0, le=10_000)
    # Where a retrain runs: pipeline (the training pipeline and gate, in this process), kubernetes-job
    # (a Job created from training_cronjob in the pod's namespace, through the Kubernetes API) or airflow
    # (a run of the training DAG, through Airflow's REST API at airflow_url).
    retrain_via: Literal["pipeline", "kubernetes-job", "airflow"] = "pipeline"
    # The CronJob a kubernetes-job retrain starts a Job from, as `kubectl create job --from=cronjob/NAME` does.
    training_cronjob: str = Field(default="noria-training", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=52)
    # airflow: the base URL of Airflow 3's API server (`airflow api-server`), e.g. http://airflow-api-server:8080.
    airflow_url: str | None = Field(default=None, max_length=2000)
    # airflow: the DAG a retrain triggers (None: `<project>_training`, the id `noria airflow render training` writes).
    airflow_dag_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$", max_length=250)
    # airflow: the environment variable holding the Airflow user name (never the name itself in noria.yaml).
    airflow_username_env: str = Field(default="NORIA_AIRFLOW_USERNAME", max_length=200)
    # airflow: the environment variable holding that user's password.
    airflow_password_env: str = Field(default="NORIA_AIRFLOW_PASSWORD", max_length=200)
    # airflow: seconds to wait for each answer of Airflow's API server.
    airflow_timeout: float = Field(default=30.0, gt=0, le=600)

    @field_validator("airflow_url")
    @classmethod
    def _airflow_url(cls, value: str | None) -> str | None:
        if value is not None and not (value.startswith(("http://", "https://")) and len(value) > len("https://")):
            raise ValueError(
                f"airflow_url {value!r} is not an http:// or https:// URL: give the base URL of Airflow's API "
                "server, e.g. http://airflow-api-server:8080"
            )
        return value

    @field_validator("airflow_username_env", "airflow_password_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not is_env_name(value):
            raise ValueError(
                f"{value!r} is not an environment variable name (a letter or '_', then letters, digits and '_'): "
                "name the variable that holds the value, e.g. AIRFLOW_RETRAIN_PASSWORD"
            )
        if value.startswith("NORIA_") and value not in AIRFLOW_CREDENTIAL_ENV:
            raise ValueError(
                f"{value!r} starts with NORIA_, so it would be read as a noria.yaml override: use "
                f"{' or '.join(AIRFLOW_CREDENTIAL_ENV)}, or a name outside NORIA_ (e.g. AIRFLOW_RETRAIN_PASSWORD)"
            )
        return value

    @model_validator(mode="after")
    def _airflow_needs_a_url(self) -> RetrainPolicy:
        if self.retrain_via == "airflow" and self.airflow_url is None:
            raise ValueError(
                "retrain_via: airflow needs airflow_url, the base URL of Airflow's API server: set "
                "monitoring.policy.airflow_url (or NORIA_MONITORING__POLICY__AIRFLOW_URL), e.g. http://airflow-api-server:8080"
            )
        return self


class KpiConfig(BaseModel):
    """The business KPI the delayed labels measure (``monitoring.kpi``), shown in reports and exported.

    ``metric``: a metric of the task (default: recall for binary, the share of positives
    flagged in advance; accuracy for multi-class; MAE for regression); ``name`` says it in
    the business's words; ``target`` is the value agreed on (shown next to the measured one).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # The metric that is the KPI (default: recall, accuracy or MAE by task).
    metric: str | None = None
    # The KPI in the business's words.
    name: str | None = Field(default=None, max_length=120)
    # The value agreed on.
    target: float | None = None


class MonitoringConfig(BaseModel):
    """The ``monitoring`` section: drift thresholds, feedback, the retraining policy, where results live."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # drift reports, performance records, the review queue and retraining decisions, relative to the
    # project. The prediction log monitoring reads is the one serving writes (serving.prediction_log.dir).
    dir: str = ".noria/monitoring"
    # s3://BUCKET/PREFIX: the monitoring folder mirrored in object storage, for pods that start with an
    # empty folder (the cluster's monitoring CronJob). Pulled once per process when the records are
    # first read; every record written is uploaded at once (a failed upload fails the command). None: local only.
    remote: str | None = None
    drift: DriftConfig = DriftConfig()
    feedback: FeedbackConfig = FeedbackConfig()
    policy: RetrainPolicy = RetrainPolicy()
    kpi: KpiConfig = KpiConfig()

    @field_validator("remote")
    @classmethod
    def _remote_is_s3(cls, value: str | None) -> str | None:
        if value is not None and not (value.startswith("s3://") and value.removeprefix("s3://").split("/")[0]):
            raise ValueError(f"{value!r} is not an s3://BUCKET/PREFIX URL (e.g. s3://noria-data/monitoring)")
        return value


__all__ = ["DriftConfig", "FeedbackConfig", "KpiConfig", "MonitoringConfig", "RetrainPolicy"]
