"""A retrain as an Airflow DAG run: ``monitoring.policy.retrain_via: airflow``.

``noria monitor run`` triggers a run of the project's training DAG (the one ``noria airflow render
training`` writes: ``<project>_training``, or ``monitoring.policy.airflow_dag_id``) through the
stable REST API of Airflow 3 at ``monitoring.policy.airflow_url``, instead of training in its own
process, and returns without waiting for it:

1. ``POST /auth/token`` with the user name and password read from the environment variables
   ``monitoring.policy.airflow_username_env`` / ``airflow_password_env`` (never from noria.yaml)
   gives a JWT (the simple auth manager and the FAB auth manager both serve this endpoint);
2. ``POST /api/v2/dags/{dag_id}/dagRuns`` with that token creates the DAG run: a run id of its
   own (``noria-retrain-<UTC time>-<4 hex>``), the logical date (now, to the microsecond: Airflow
   keeps one run per DAG and logical date), a note, and ``conf`` holding the periods and trials
   the policy chose as the variables the kubernetes-job path sets on the Job's containers
   (``NORIA_TRAINING__TRAIN__FROM``, ``__TO``, ``NORIA_TRAINING__TEST__FROM``, ``__TO``,
   ``NORIA_TRAINING__TRIALS``).

The rendered pipeline DAG (:mod:`noria.pipelines.orchestrators._airflow`) gives every task the
run's ``NORIA_TRAINING__*`` conf entries as environment variables (a ``pre_execute`` hook), so
every step of the triggered run learns on the windows the policy chose.

Plain HTTP(S) through httpx (a core dependency): no Airflow client is needed in the image.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from noria.errors import ConfigError, ExternalToolError, NotFoundError

if TYPE_CHECKING:
    from noria.config import Project

TOKEN_PATH = "/auth/token"
RENDER = "noria --profile cluster airflow render training --out DAG_FOLDER"


@dataclass(frozen=True)
class StartedDagRun:
    """A run of the training DAG created through Airflow's REST API."""

    dag_id: str
    run_id: str
    logical_date: str | None
    url: str  # the run in Airflow's UI
    state: str | None
    queued_at: str | None  # when Airflow queued it, UTC ISO 8601
    conf: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "airflow",
            "dag_id": self.dag_id,
            "dag_run_id": self.run_id,
            "logical_date": self.logical_date,
            "url": self.url,
            "state": self.state,
            "conf": dict(self.conf),
            "at": self.queued_at,
        }


def training_dag_id(project: Project) -> str:
    """The training DAG's id as ``noria airflow render training`` names it (``<project>_training``)."""
    return f"{project.config.project}_training"


def dag_run_id(now: datetime) -> str:
    """A unique run id: ``noria-retrain-<UTC yyyymmddThhmmssZ>-<4 hex>`` (Airflow's ``[A-Za-z0-9_.~:+-]+``)."""
    return f"noria-retrain-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def dag_run_body(conf: Mapping[str, Any], now: datetime, run_id: str | None = None) -> dict[str, Any]:
    """The body of ``POST /api/v2/dags/{dag_id}/dagRuns`` (Airflow 3's ``TriggerDAGRunPostBody``)."""
    now = now.astimezone(UTC)
    return {
        "dag_run_id": run_id or dag_run_id(now),
        "logical_date": now.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "conf": dict(conf),
        "note": "started by `noria monitor run`: the retraining policy decided to retrain",
    }


def dag_run_url(base_url: str, dag_id: str, run_id: str) -> str:
    """The DAG run's page in Airflow 3's UI."""
    return f"{base_url.rstrip('/')}/dags/{dag_id}/runs/{run_id}"


def _detail(response: Any) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:500] or f"HTTP {response.status_code}"
    detail = data.get("detail", data) if isinstance(data, dict) else data
    if isinstance(detail, dict):
        detail = detail.get("reason") or detail.get("message") or detail
    return str(detail)[:500]


class _Api:
    """Airflow's REST API as one user sees it."""

    def __init__(self, base_url: str, timeout: float) -> None:
        self.base = base_url.rstrip("/")
        self.timeout = timeout

    def post(self, path: str, body: dict[str, Any], token: str | None = None) -> Any:
        import httpx

        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        try:
            with httpx.Client(timeout=self.timeout) as client:
                return client.post(self.base + path, json=body, headers=headers)
        except httpx.HTTPError as err:
            raise ExternalToolError(
                f"the Airflow API server at {self.base} cannot be reached (POST {path}): {err or type(err).__name__}",
                fix="check monitoring.policy.airflow_url (or NORIA_MONITORING__POLICY__AIRFLOW_URL): the URL of "
                "Airflow's API server (`airflow api-server`, port 8080 by default) as this process reaches it, "
                "and that it is running",
            ) from err


def _credentials(username_env: str, password_env: str, environ: Mapping[str, str]) -> tuple[str, str]:
    missing = [name for name in (username_env, password_env) if not environ.get(name)]
    if missing:
        raise ConfigError(
            f"monitoring.policy.retrain_via: airflow needs Airflow credentials in the environment: "
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set",
            fix=f"set {username_env} and {password_env} to an Airflow user allowed to trigger DAG runs (e.g. from "
            "a Kubernetes Secret); the variables' names are monitoring.policy.airflow_username_env / "
            "airflow_password_env",
        )
    return environ[username_env], environ[password_env]


def _token(api: _Api, user: str, password: str, username_env: str, password_env: str) -> str:
    response = api.post(TOKEN_PATH, {"username": user, "password": password})
    if response.status_code in (401, 403):
        raise ExternalToolError(
            f"Airflow at {api.base} rejected the credentials of user {user!r} (from {username_env} and "
            f"{password_env}): {_detail(response)}",
            fix=f"set {username_env} and {password_env} to a user of Airflow's auth manager (the simple auth "
            "manager: [core] simple_auth_manager_users and its passwords file; FAB: `airflow users create`)",
        )
    if response.status_code == 404:
        raise ExternalToolError(
            f"{api.base}{TOKEN_PATH} does not exist (HTTP 404): {api.base} is not the API server of Airflow 3",
            fix="set monitoring.policy.airflow_url to Airflow 3's API server (the address of `airflow api-server`, "
            "with the path prefix of [api] base_url if it has one)",
        )
    if response.status_code not in (200, 201):
        raise ExternalToolError(
            f"POST {api.base}{TOKEN_PATH} failed (HTTP {response.status_code}): {_detail(response)}"
        )
    try:
        return str(response.json()["access_token"])
    except (ValueError, KeyError, TypeError) as err:
        raise ExternalToolError(
            f"POST {api.base}{TOKEN_PATH} answered without an access_token: {response.text[:300]}",
            fix="check that monitoring.policy.airflow_url is Airflow 3's API server",
        ) from err


def _refused(response: Any, api: _Api, dag_id: str, body: dict[str, Any], user: str, username_env: str) -> Exception:
    status, detail = response.status_code, _detail(response)
    if status in (401, 403):
        return ExternalToolError(
            f"Airflow at {api.base} does not let user {user!r} (from {username_env}) trigger DAG {dag_id} "
            f"(HTTP {status}): {detail}",
            fix=f"give the user of {username_env} the right to create DAG runs of {dag_id} (the simple auth "
            "manager: role op or admin in [core] simple_auth_manager_users; FAB: a role with 'can create' on "
            "DAG Runs), or set the variable to such a user",
        )
    if status == 404:
        return NotFoundError(
            f"DAG {dag_id} not found at Airflow {api.base} (monitoring.policy.airflow_dag_id): {detail}",
            fix=f"render it with `{RENDER}` into the DAG folder of that Airflow (git-sync, a volume, an image "
            "layer) and wait for its DAG processor to parse it, or set monitoring.policy.airflow_dag_id "
            "to the training DAG's id",
        )
    if status == 409:
        return ExternalToolError(
            f"Airflow at {api.base} already has a run of DAG {dag_id} with run id {body['dag_run_id']} or "
            f"logical date {body['logical_date']} (HTTP 409): {detail}",
            fix="another retrain was triggered at the same moment: look at it in Airflow's UI, or run "
            "`noria monitor run` again (it makes a new run id and logical date)",
        )
    return ExternalToolError(f"triggering DAG {dag_id} at Airflow {api.base} failed (HTTP {status}): {detail}")


def trigger_training_dag(
    base_url: str,
    dag_id: str,
    conf: Mapping[str, Any],
    *,
    username_env: str = "NORIA_AIRFLOW_USERNAME",
    password_env: str = "NORIA_AIRFLOW_PASSWORD",
    environ: Mapping[str, str] | None = None,
    now: datetime | None = None,
    timeout: float = 30.0,
) -> StartedDagRun:
    """Trigger a run of DAG ``dag_id`` with ``conf`` at the Airflow 3 API server ``base_url``.

    Example::

        trigger_training_dag("http://airflow:8080", "flights_training", {"train_from": "2013-07"})
    """
    user, password = _credentials(username_env, password_env, os.environ if environ is None else environ)
    api = _Api(base_url, timeout)
    token = _token(api, user, password, username_env, password_env)
    body = dag_run_body(conf, now or datetime.now(UTC))
    path = f"/api/v2/dags/{dag_id}/dagRuns"
    response = api.post(path, body, token)
    if response.status_code not in (200, 201):
        raise _refused(response, api, dag_id, body, user, username_env)
    try:
        run = response.json()
        run_id = str(run.get("dag_run_id") or body["dag_run_id"])
    except (ValueError, AttributeError) as err:
        raise ExternalToolError(f"POST {api.base}{path} answered with no DAG run: {response.text[:300]}") from err
    return StartedDagRun(
        dag_id=dag_id,
        run_id=run_id,
        logical_date=run.get("logical_date", body["logical_date"]),
        url=dag_run_url(api.base, dag_id, run_id),
        state=run.get("state"),
        queued_at=run.get("queued_at"),
        conf=dict(run.get("conf") or body["conf"]),
    )


__all__ = ["StartedDagRun", "dag_run_body", "dag_run_id", "dag_run_url", "training_dag_id", "trigger_training_dag"]
