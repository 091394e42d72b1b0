"""The retraining policy: ``noria monitor run`` looks at the newest monitoring results and acts once.

Retrain when (``monitoring.policy`` in noria.yaml):

* drift raised an alert on an important feature (or the score) for the serving model, or
* the live primary metric on delayed labels (the task's: ROC AUC, log loss, RMSE) is worse than
  the model's holdout value by more than ``metric_drop``, or
* the champion's newest training window is more than ``every_windows`` behind the newest window
  with mature labels (the schedule).

A retrain runs the training pipeline on the newest windows of the latest data snapshot (train on
``train_windows`` windows, judge on the ``test_windows`` after them, the last of which is the
newest window whose labels are mature) and goes through the same promotion gate as every
training run: the candidate becomes champion only if it beats the current champion on the same
holdout. Every evaluation is recorded (why retrain, or why not, and what came of it) in the
monitoring store's ``decisions.jsonl`` (maturity item 27).

With ``retrain_via: kubernetes-job`` the retrain is not run here: a Job is created from the
training CronJob with the same periods and trials (:mod:`noria.monitoring.kube_job`), and the
decision records the Job (``started``: its name, namespace and creation time); the Job's own
training run goes through the gate. With ``retrain_via: airflow`` a run of the training DAG is
triggered through Airflow's REST API with the same variables in its ``conf`` (the rendered DAG
gives them to its tasks; :mod:`noria.monitoring.airflow_run`), and ``started`` holds its run id,
logical date and URL.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from noria.monitoring.store import MonitoringStore

if TYPE_CHECKING:
    from rich.console import Console

    from noria.config import Project

HOLDOUT_PREFIX = "test_"  # the training pipeline logs holdout metrics as test_<metric> (noria.training)


@dataclass
class Decision:
    """One evaluation of the policy: the evidence, the action and its outcome."""

    window: str | None
    action: str  # "retrain" | "none" | "disabled"
    reasons: list[str]
    checks: dict[str, Any] = field(default_factory=dict)
    model_name: str = ""
    model_version_before: int | None = None
    train_window: str | None = None
    test_window: str | None = None
    pipeline_run_id: str | None = None
    candidate_version: int | None = None
    promoted: bool | None = None
    gate_reason: str | None = None
    model_version_after: int | None = None
    seconds: float | None = None
    retrain_via: str = "pipeline"
    started: dict[str, Any] | None = None  # what a kubernetes-job or airflow retrain started (Job, DAG run)
    error: str | None = None  # why starting the retrain failed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _champion(project: Project) -> tuple[int | None, dict[str, str], dict[str, float]]:
    """The champion's version, its training run's params and metrics (empty when there is none)."""
    from noria.errors import NotFoundError
    from noria.registry import get_version
    from noria.registry.mlflow_client import get_client

    client = get_client(project)
    try:
        info = get_version(project, f"{project.config.model.name}@champion", client=client)
    except NotFoundError:
        return None, {}, {}
    if not info.run_id:
        return info.version, {}, {}
    run = client.get_run(info.run_id)
    return info.version, dict(run.data.params), dict(run.data.metrics)


def _newest(records: list[dict[str, Any]], version: int | None, window: str | None) -> dict[str, Any] | None:
    """The newest record of ``version`` (at ``window`` if given)."""
    mine = [r for r in records if r.get("model_version") == version and (window is None or r.get("window") == window)]
    return mine[-1] if mine else None


def evaluate_policy(project: Project, window: str | None = None, *, as_of: str | None = None) -> Decision:
    """Decide (without acting) whether to retrain, from the stored drift and performance records.

    ``as_of``: the newest window that counts as "now" (a replay); default the newest in the data.
    """
    from noria.tasks import task_of
    from noria.windows import Windows

    spans = Windows.of(project)
    if window is not None:
        spans.check(window, "window")
    if as_of is not None:
        spans.check(as_of, "as_of")
    policy = project.config.monitoring.policy
    task = task_of(project)
    store = MonitoringStore.of(project)
    name = project.config.model.name
    version, params, metrics = _champion(project)
    drift = _newest(store.records("drift"), version, window)
    performance = _newest(store.records("performance"), version, window)
    window = window or max((r["window"] for r in (drift, performance) if r), default=None)
    decision = Decision(window=window, action="none", reasons=[], model_name=name, model_version_before=version)
    if not policy.enabled:
        decision.action = "disabled"
        decision.reasons.append("the retraining policy is disabled (monitoring.policy.enabled: false)")
        return decision
    if version is None:
        decision.reasons.append(f"no champion of {name} yet: train one first (noria pipeline run training)")
        return decision
    checks: dict[str, Any] = {}
    wanted: list[str] = []
    # 1. drift on important features
    if drift is not None:
        alerts = list(drift.get("alerts") or [])
        checks["drift_window"] = drift["window"]
        checks["drift_alerts"] = alerts
        checks["drift_share"] = drift.get("drift_share")
        if alerts and policy.on_drift:
            wanted.append(f"drift on important features in {drift['window']}: {', '.join(alerts)}")
        elif alerts:
            decision.reasons.append(f"drift alerts ({', '.join(alerts)}) do not retrain (policy.on_drift: false)")
        else:
            decision.reasons.append(f"no drift alert in {drift['window']}")
    else:
        decision.reasons.append(f"no drift record for version {version}" + (f" in {window}" if window else ""))
    # 2. performance on delayed labels: the task's primary metric, live vs holdout
    metric = task.primary_metric
    holdout = metrics.get(HOLDOUT_PREFIX + metric)
    live = None if performance is None else (performance.get("metrics") or {}).get(metric)
    checks.update({"metric": metric, "holdout": holdout, "live": live})
    if performance is None:
        decision.reasons.append(f"no labelled performance record for version {version} yet")
    elif live is None:
        decision.reasons.append(
            f"live {metric} unknown in {performance['window']}: {performance.get('labelled', 0)} labelled"
            " predictions (monitoring.feedback.min_labels not reached)"
        )
    elif holdout is None:
        decision.reasons.append(
            f"the champion's training run logged no {HOLDOUT_PREFIX}{metric}: live {metric} {live:.3f} not compared"
        )
    elif policy.metric_drop is None:
        decision.reasons.append(
            f"live {metric} {live:.3f} vs holdout {holdout:.3f} not judged (monitoring.policy.metric_drop unset)"
        )
    else:
        drop = task.metric_drop(holdout, live)
        checks["metric_drop"] = drop
        worse = "worse" if drop > 0 else "better"
        if drop > policy.metric_drop:
            wanted.append(
                f"live {metric} {live:.3f} in {performance['window']} is {drop:.3f} worse than the holdout "
                f"{holdout:.3f} (threshold {policy.metric_drop})"
            )
        else:
            decision.reasons.append(
                f"live {metric} {live:.3f} in {performance['window']} is {abs(drop):.3f} {worse} than the holdout"
                f" {holdout:.3f}, within {policy.metric_drop}"
            )
    # 3. the schedule, in windows of data
    trained_to = params.get("test_to") or params.get("train_to")
    known, newest = _data_windows(project, as_of)
    checks.update({"champion_trained_to": trained_to, "newest_mature_window": newest})
    if policy.every_windows is not None and trained_to and newest:
        behind = sum(1 for w in known if trained_to < w <= newest)
        checks["windows_behind"] = behind
        if behind > policy.every_windows:
            wanted.append(f"the champion learned from data up to {trained_to}, {behind} windows behind {newest}")
        else:
            decision.reasons.append(
                f"the champion learned from data up to {trained_to}, {behind} window(s) behind {newest}"
                f" (retrains after more than {policy.every_windows})"
            )
    elif policy.every_windows is not None:
        decision.reasons.append(
            "the schedule cannot be checked: "
            + (
                "the champion's training run logged no train_to / test_to"
                if not trained_to
                else "no data snapshot with mature labels"
            )
        )
    # the newest data must hold a window the champion has not seen
    if wanted and trained_to and newest and newest <= trained_to:
        decision.reasons.extend(wanted)
        decision.reasons.append(
            f"but the champion already learned from data up to {newest}: nothing newer with mature labels"
        )
        decision.checks = checks
        return decision
    if wanted:
        decision.action = "retrain"
        decision.reasons = wanted
        usable = [w for w in known if newest is not None and w <= newest]
        need = policy.train_windows + policy.test_windows
        if len(usable) >= policy.test_windows + 1:
            chosen = usable[-need:]
            test, train = chosen[-policy.test_windows :], chosen[: -policy.test_windows]
            decision.train_window = f"{train[0]}..{train[-1]}"
            decision.test_window = f"{test[0]}..{test[-1]}"
        else:
            decision.reasons.append(f"too few windows with mature labels to retrain ({len(usable)})")
    decision.checks = checks
    return decision


def _data_windows(project: Project, as_of: str | None) -> tuple[list[str], str | None]:
    """The windows of the latest snapshot (oldest first) and the newest one with mature labels."""
    from noria.errors import NotFoundError
    from noria.features.definitions import FeatureDefinitionError
    from noria.features.training_set import data_windows, mature_window

    try:
        known, end = data_windows(project)
    except NotFoundError:
        return [], None
    except FeatureDefinitionError:  # no request declared: the snapshot's months are all there is to go by
        from noria.data.snapshots import get_record

        try:
            months = get_record(project, "latest").months
        except NotFoundError:
            return [], None
        newest_month = months[-1] if months else None
        if as_of is not None and newest_month is not None:
            newest_month = min(newest_month, as_of)
        return months, newest_month
    if end is None:
        return known, None
    newest = mature_window(project, end)
    if as_of is not None and newest is not None:
        newest = min(newest, as_of)
    return known, newest


def run_policy(
    project: Project,
    window: str | None = None,
    *,
    act: bool = True,
    console: Console | None = None,
    as_of: str | None = None,
) -> Decision:
    """Evaluate the policy once, retrain when it says so (through the pipeline and gate here, as a
    Job created from the training CronJob, or as a run of the training DAG in Airflow:
    ``monitoring.policy.retrain_via``), record it."""
    import time

    started = time.perf_counter()
    decision = evaluate_policy(project, window, as_of=as_of)
    policy = project.config.monitoring.policy
    decision.retrain_via = policy.retrain_via
    if decision.action == "retrain" and act and decision.train_window and decision.test_window:
        train_from, train_to = decision.train_window.split("..")
        test_from, test_to = decision.test_window.split("..")
        params: dict[str, Any] = {
            "train_from": train_from,
            "train_to": train_to,
            "test_from": test_from,
            "test_to": test_to,
        }
        if policy.trials is not None:
            params["trials"] = policy.trials
        if policy.retrain_via in ("kubernetes-job", "airflow"):
            _start_elsewhere(project, decision, params, started)
            return decision
        from noria.pipelines import run_project_pipeline

        result = run_project_pipeline(project, "training", params=params, console=console, progress=console is not None)
        decision.pipeline_run_id = result.run_id
        registered = result.load("register")
        gate = result.load("gate")
        decision.candidate_version = int(registered["version"])
        decision.promoted = bool(gate["promoted"])
        decision.gate_reason = str(gate["reason"])
        decision.model_version_after = gate["champion"]
    elif decision.action == "retrain":
        decision.reasons.append("not acted on (dry run)")
    decision.seconds = round(time.perf_counter() - started, 2)
    MonitoringStore.of(project).append_decision(decision.to_dict() | {"acted": act})
    return decision


# The training pipeline's periods and trials as the configuration keys a training Job reads.
_JOB_ENV = {
    "train_from": "NORIA_TRAINING__TRAIN__FROM",
    "train_to": "NORIA_TRAINING__TRAIN__TO",
    "test_from": "NORIA_TRAINING__TEST__FROM",
    "test_to": "NORIA_TRAINING__TEST__TO",
    "trials": "NORIA_TRAINING__TRIALS",
}


def _start(project: Project, params: dict[str, Any]) -> dict[str, Any]:
    """Start the retrain elsewhere with the periods and trials as ``NORIA_TRAINING__*`` variables:
    on every container of the training Job (kubernetes-job), or as the ``conf`` of a run of the
    training DAG, whose rendered tasks get them as environment variables (airflow)."""
    policy = project.config.monitoring.policy
    env = {_JOB_ENV[key]: str(value) for key, value in params.items()}
    if policy.retrain_via == "kubernetes-job":
        from noria.monitoring.kube_job import start_training_job

        return start_training_job(policy.training_cronjob, env).to_dict()
    from noria.monitoring.airflow_run import training_dag_id, trigger_training_dag

    if policy.airflow_url is None:  # the config refuses this at load; a policy changed in code may not
        from noria.errors import ConfigError

        raise ConfigError(
            "monitoring.policy.retrain_via: airflow needs monitoring.policy.airflow_url",
            fix="set it to the base URL of Airflow's API server, e.g. http://airflow-api-server:8080",
        )
    run = trigger_training_dag(
        policy.airflow_url,
        policy.airflow_dag_id or training_dag_id(project),
        env,
        username_env=policy.airflow_username_env,
        password_env=policy.airflow_password_env,
        timeout=policy.airflow_timeout,
    )
    return run.to_dict()


def _start_elsewhere(project: Project, decision: Decision, params: dict[str, Any], started: float) -> None:
    """Start the retrain as a Job or a DAG run, record what was started, or the error and re-raise it."""
    import time

    from noria.errors import NoriaError

    store = MonitoringStore.of(project)
    try:
        what = _start(project, params)
    except NoriaError as err:
        decision.error = str(err)
        decision.seconds = round(time.perf_counter() - started, 2)
        store.append_decision(decision.to_dict() | {"acted": False})
        raise
    decision.started = what
    decision.seconds = round(time.perf_counter() - started, 2)
    store.append_decision(decision.to_dict() | {"acted": True})


__all__ = ["Decision", "evaluate_policy", "run_policy"]
