"""Airflow 3 DAG files rendered from a pipeline's step graph.

``render_airflow`` writes two Python files into a DAG folder:

- ``<project>_<pipeline>.py``: one task per step, edges from the graph, scheduled by
  ``orchestrators.schedule``. ``mode: local`` gives BashOperators running the single-step
  command; ``mode: kubernetes`` gives KubernetesPodOperators running it in the Noria image.
- ``<project>_monitor.py``: one task running ``noria monitor run`` (the retraining policy,
  evaluated once) on ``orchestrators.monitor.schedule``.

The files import only Airflow (and the Kubernetes client), never Noria, so the scheduler
needs no Noria install in kubernetes mode. Parameters become DAG params: a run triggered
with other values passes them to every task (``--param k={{ params["k"] | tojson }}``; a
subscript, so a parameter named like a dict method, e.g. ``items``, still means the parameter).

A run's ``conf`` entries named ``NORIA_TRAINING__*`` become environment variables of every task
of the pipeline's DAG (a ``pre_execute`` hook adds them to the BashOperator's ``env`` or the
pod's ``env_vars``): that is how a retrain triggered by ``noria monitor run`` with
``monitoring.policy.retrain_via: airflow`` passes the periods and trials the policy chose, the
same variables a Kubernetes training Job gets. Other conf entries override DAG params as usual.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from pprint import pformat
from typing import TYPE_CHECKING, Any

from noria import atomic
from noria.pipelines.orchestrators._plan import Plan, build_plan
from noria.pipelines.orchestrators.config import OrchestratorsConfig

if TYPE_CHECKING:
    from noria.config import Project

RUN_ID = "{{ run_id }}"
# The layout of the Noria pipeline image (deploy/docker/pipeline.Dockerfile): a non-root user and
# a read-only root file system, with the project's writable folders on emptyDir volumes.
IMAGE_PROJECT_DIR = "/app/project"
IMAGE_UID = 10001


def render_airflow(
    project: Project,
    ref: str,
    out_dir: Path,
    *,
    params: Mapping[str, Any] | None = None,
    config: OrchestratorsConfig | None = None,
) -> list[Path]:
    """Write the pipeline's DAG (and the monitor DAG unless disabled) into ``out_dir``; return the files.

    Example::

        render_airflow(load_project("examples/flights", profile="cluster"), "training", Path("dags"))
    """
    plan = build_plan(project, ref, params=params, config=config)
    written = [atomic.write_text(out_dir / f"{plan.dag_id}.py", pipeline_dag_source(plan))]
    if plan.config.monitor.enabled:
        written.append(atomic.write_text(out_dir / f"{plan.monitor_dag_id}.py", monitor_dag_source(plan)))
    return written


def _param(name: str) -> str:
    return '{{ params["%s"] | tojson }}' % name  # noqa: UP031 - the braces are Jinja's


def pipeline_dag_source(plan: Plan) -> str:
    """The Python source of the pipeline's DAG."""
    cfg = plan.config
    lines = [
        *_header(plan, f"the Noria pipeline {plan.pipeline.name!r}", plan.dag_id),
        *_conf_env_hook(cfg.mode),
        "with DAG(",
        f"    dag_id={plan.dag_id!r},",
        f"    description={_description(plan)!r},",
        f"    schedule={cfg.schedule!r},",
        *_dag_common(cfg),
        f"    params={_literal(plan.params, 4)},",
        f"    tags=['noria', {plan.project!r}, {plan.pipeline.name!r}],",
        ") as dag:",
        "    tasks = {}",
    ]
    for task in plan.tasks:
        args = plan.step_args(task.step, RUN_ID, _param)
        if cfg.mode == "local":
            lines += _bash_task(task.step, [plan.executable, *args], bool(cfg.env), hook=True)
        else:
            lines += _pod_task(
                task.step, plan.executable, args, task.resources.requests, task.resources.limits, hook=True
            )
    if plan.edges:
        lines.append("")
    lines += [f"    tasks[{up!r}] >> tasks[{down!r}]" for up, down in plan.edges]
    return "\n".join(lines) + "\n"


def monitor_dag_source(plan: Plan) -> str:
    """The Python source of the monitor DAG: the retraining policy evaluated on a schedule."""
    cfg = plan.config
    lines = [
        *_header(plan, f"monitoring of project {plan.project!r}", plan.monitor_dag_id),
        "with DAG(",
        f"    dag_id={plan.monitor_dag_id!r},",
        f"    description={f'Noria monitoring of {plan.project}: drift, performance, retraining policy'!r},",
        f"    schedule={cfg.monitor.schedule!r},",
        *_dag_common(cfg),
        f"    tags=['noria', {plan.project!r}, 'monitor'],",
        ") as dag:",
        "    tasks = {}",
    ]
    if cfg.mode == "local":
        lines += _bash_task("monitor", [plan.executable, *plan.monitor_args()], bool(cfg.env))
    else:
        res = cfg.resources_for("monitor")
        lines += _pod_task("monitor", plan.executable, plan.monitor_args(), res.requests, res.limits)
    return "\n".join(lines) + "\n"


def _description(plan: Plan) -> str:
    text = plan.pipeline.description or f"Noria pipeline {plan.pipeline.name} of project {plan.project}"
    return text.splitlines()[0][:200]


def _header(plan: Plan, what: str, dag_id: str) -> list[str]:
    cfg = plan.config
    kind = "one BashOperator per step" if cfg.mode == "local" else "one KubernetesPodOperator (pod) per step"
    lines = [
        f'"""Airflow DAG {dag_id}: {what} (generated by Noria; do not edit, re-render).',
        "",
        f"Rendered with `noria --profile {plan.profile} airflow render {plan.ref}` from the step graph:",
        f"{kind}, each running `noria pipeline run ... --step STEP --run-id {{{{ run_id }}}}`.",
        "Tasks of one DAG run share its run id and the artifact store, so each reads its inputs",
        "from the steps upstream. Re-render after changing the pipeline or `orchestrators:`.",
        '"""',
        "",
        "import datetime",
        "",
    ]
    if cfg.mode == "local":
        lines += ["from airflow.providers.standard.operators.bash import BashOperator", "from airflow.sdk import DAG"]
        if cfg.env:
            lines += ["", f"ENV = {_literal(cfg.env, 0)}"]
    else:
        lines += [
            "from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator",
            "from airflow.providers.cncf.kubernetes.secret import Secret",
            "from airflow.sdk import DAG",
            "from kubernetes.client import models as k8s",
            "",
            *_pod_defaults(plan),
        ]
    return [*lines, "", ""]


def _dag_common(cfg: OrchestratorsConfig) -> list[str]:
    start = cfg.start_date
    return [
        f"    start_date=datetime.datetime({start.year}, {start.month}, {start.day}, tzinfo=datetime.timezone.utc),",
        "    catchup=False,",
        "    max_active_runs=1,",
        "    default_args={",
        "        'owner': 'noria',",
        f"        'retries': {cfg.retries},",
        f"        'retry_delay': datetime.timedelta(seconds={cfg.retry_delay_seconds}),",
        "    },",
        "    doc_md=__doc__,",
    ]


# Conf entries a pipeline DAG's tasks get as environment variables (the training settings a retrain chooses).
CONF_ENV_PREFIX = "NORIA_TRAINING__"


def _conf_env_hook(mode: str) -> list[str]:
    """The rendered functions that add a run's ``NORIA_TRAINING__*`` conf entries to a task's environment."""
    lines = [
        "# A run's conf entries named NORIA_TRAINING__* (what `noria monitor run` sends when",
        "# monitoring.policy.retrain_via is airflow) become environment variables of every task.",
        f"CONF_ENV_PREFIX = {CONF_ENV_PREFIX!r}",
        "CONF_ENV_CHARS = set('ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_')",
        "",
        "",
        "def conf_env(context):",
        '    """The run\'s conf entries named NORIA_TRAINING__*, as environment variables."""',
        "    conf = getattr(context.get('dag_run'), 'conf', None) or {}",
        "    env = {}",
        "    for key, value in conf.items():",
        "        if not str(key).startswith(CONF_ENV_PREFIX):",
        "            continue",
        "        rest = key[len(CONF_ENV_PREFIX):]",
        "        number_or_text = isinstance(value, (str, int, float)) and not isinstance(value, bool)",
        "        if not rest or not set(rest) <= CONF_ENV_CHARS or not number_or_text:",
        "            raise ValueError(",
        "                f'dag_run.conf[{key!r}] = {value!r}: a NORIA_TRAINING__ entry needs a name of capitals, '",
        "                'digits and _ and a string or number value (it becomes an environment variable)'",
        "            )",
        "        env[key] = str(value)",
        "    return env",
        "",
        "",
        "def with_conf_env(context):",
        '    """pre_execute hook: the task\'s environment plus conf_env (a new object: tasks share ENV)."""',
        "    extra = conf_env(context)",
        "    if not extra:",
        "        return",
        "    task = context['task']",
    ]
    if mode == "local":
        lines += [
            "    task.env = {**(task.env or {}), **extra}",
            "    task.append_env = True  # keep the worker's own environment (PATH, AWS_*, ...)",
        ]
    else:
        lines += [
            "    current = task.env_vars or {}",
            "    if isinstance(current, dict):",
            "        task.env_vars = {**current, **extra}",
            "    else:",
            "        kept = [e for e in current if e.name not in extra]",
            "        task.env_vars = kept + [k8s.V1EnvVar(name=k, value=v) for k, v in extra.items()]",
        ]
    return [*lines, "", ""]


def _bash_task(task_id: str, argv: list[str], with_env: bool, *, hook: bool = False) -> list[str]:
    lines = [
        f"    tasks[{task_id!r}] = BashOperator(",
        f"        task_id={task_id!r},",
        f"        bash_command={shlex.join(argv)!r},",
    ]
    # With an env, BashOperator would otherwise drop the worker's own environment (PATH, AWS_*, ...).
    env = ["        env=ENV,", "        append_env=True,"] if with_env else []
    pre = ["        pre_execute=with_conf_env,"] if hook else []
    return [*lines, *env, *pre, "    )"]


def _pod_defaults(plan: Plan) -> list[str]:
    cfg = plan.config
    root = plan.project_dir or IMAGE_PROJECT_DIR
    secrets = [f"    Secret('env', {s.env!r}, {s.secret!r}, {s.key!r})," for s in cfg.secrets]
    return [
        "# What every pod of this DAG shares (orchestrators: in noria.yaml).",
        f"IMAGE = {cfg.image!r}",
        f"ENV = {_literal(cfg.env, 0)}",
        "SECRETS = [",
        *secrets,
        "]",
        "POD = dict(",
        f"    namespace={cfg.namespace!r},",
        "    image=IMAGE,",
        f"    image_pull_policy={cfg.image_pull_policy!r},",
        f"    service_account_name={cfg.service_account!r},",
        "    automount_service_account_token=False,",
        f"    in_cluster={cfg.pods_in_cluster!r},",
        f"    config_file={cfg.kubeconfig!r},",
        "    env_vars=ENV,",
        "    secrets=SECRETS,",
        "    labels={",
        "        'app.kubernetes.io/name': 'noria-pipeline',",
        "        'app.kubernetes.io/component': 'pipeline-step',",
        "        'app.kubernetes.io/part-of': 'noria',",
        "    },",
        "    security_context=k8s.V1PodSecurityContext(",
        f"        run_as_non_root=True, run_as_user={IMAGE_UID}, run_as_group={IMAGE_UID}, fs_group={IMAGE_UID},",
        "        seccomp_profile=k8s.V1SeccompProfile(type='RuntimeDefault'),",
        "    ),",
        "    container_security_context=k8s.V1SecurityContext(",
        "        allow_privilege_escalation=False, read_only_root_filesystem=True, privileged=False,",
        "        capabilities=k8s.V1Capabilities(drop=['ALL']),",
        "    ),",
        "    volumes=[",
        "        k8s.V1Volume(name='state', empty_dir=k8s.V1EmptyDirVolumeSource(size_limit='2Gi')),",
        "        k8s.V1Volume(name='data', empty_dir=k8s.V1EmptyDirVolumeSource(size_limit='8Gi')),",
        "        k8s.V1Volume(name='tmp', empty_dir=k8s.V1EmptyDirVolumeSource(size_limit='2Gi')),",
        "    ],",
        "    volume_mounts=[",
        f"        k8s.V1VolumeMount(name='state', mount_path={root + '/.noria'!r}),",
        f"        k8s.V1VolumeMount(name='data', mount_path={root + '/data'!r}),",
        "        k8s.V1VolumeMount(name='tmp', mount_path='/tmp'),",
        "    ],",
        "    get_logs=True,",
        "    on_finish_action='delete_pod',",
        ")",
    ]


def _pod_task(
    task_id: str,
    executable: str,
    args: list[str],
    requests: dict[str, str],
    limits: dict[str, str],
    *,
    hook: bool = False,
) -> list[str]:
    return [
        f"    tasks[{task_id!r}] = KubernetesPodOperator(",
        f"        task_id={task_id!r},",
        f"        cmds=[{executable!r}],",
        "        arguments=[",
        *(f"            {line}" for line in _arg_lines(args)),
        "        ],",
        "        container_resources=k8s.V1ResourceRequirements(",
        f"            requests={_literal(requests, 12)},",
        f"            limits={_literal(limits, 12)},",
        "        ),",
        *(["        pre_execute=with_conf_env,"] if hook else []),
        "        **POD,",
        "    )",
    ]


def _arg_lines(args: list[str]) -> list[str]:
    """Arguments grouped one option (with its values) per line, e.g. ``'--param', 'rows=...',``."""
    groups: list[list[str]] = []
    for arg in args:
        if arg.startswith("-") or not groups:
            groups.append([])
        groups[-1].append(repr(arg))
    return [", ".join(group) + "," for group in groups]


def _literal(value: Any, indent: int) -> str:
    """A Python literal for ``value``, wrapped and indented to sit at column ``indent``."""
    text = pformat(value, width=110 - indent, sort_dicts=False)
    return text.replace("\n", "\n" + " " * indent)
