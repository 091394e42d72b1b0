"""Airflow 3 DAG files rendered from a pipeline's step graph and the loop's commands.

``render_airflow`` writes Python files into a DAG folder:

- ``<project>_<pipeline>.py``: one task per step, edges from the graph, scheduled by
  ``orchestrators.schedule``. ``mode: local`` gives BashOperators running the single-step
  command; ``mode: kubernetes`` gives KubernetesPodOperators running it in the Noria image.
- The loop's DAGs, the same work the CronJobs of deploy/k8s do, each a chain of ``noria``
  commands (``orchestrators.ingest``, ``.features``, ``.monitor``):
  ``<project>_ingest.py`` (``data ingest``, triggered when data arrives),
  ``<project>_features.py`` (``features apply`` then ``features materialize --until now``,
  hourly) and ``<project>_monitor.py`` (``monitor drift --window latest``, ``monitor
  feedback``, ``monitor run``: the retraining policy, daily).

In kubernetes mode each task is a pod that starts from the image's project with no data: with
``orchestrators.pull_data`` (default) an init container copies the project to a writable
emptyDir (``/work/project``; the root file system is read-only and DVC writes in its
repository) and runs ``noria data pull`` there (the newest snapshot from the S3 DVC remote),
then the task runs on that copy, as ``noria data pull && ...`` in every CronJob.

The files import only Airflow (and the Kubernetes client), never Noria, so the scheduler
needs no Noria install in kubernetes mode. Parameters become DAG params: a run triggered
with other values passes them to every task (``--param k={{ params["k"] | tojson }}``; a
subscript, so a parameter named like a dict method, e.g. ``items``, still means the parameter).

A run's ``conf`` entries named ``NORIA_TRAINING__*`` become environment variables of every task
of the pipeline's DAG (a ``pre_execute`` hook adds them to the BashOperator's ``env`` or the
pod's ``env_vars``): that is how a retrain triggered by ``noria monitor run`` with
``monitoring.policy.retrain_via: airflow`` passes the periods and trials the policy chose, the
same variables a Kubernetes training Job gets. The ingest DAG takes ``NORIA_DATA__*`` entries
the same way (the months to ingest: ``NORIA_DATA__DEFAULT_RANGE__FROM`` / ``__TO``). Other conf
entries override DAG params as usual.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from pprint import pformat
from typing import TYPE_CHECKING, Any

from noria import atomic
from noria.errors import ConfigError
from noria.pipelines.orchestrators._plan import (
    IMAGE_PROJECT_DIR,
    IMAGE_UID,
    WORK_PROJECT_DIR,
    Plan,
    build_plan,
    pull_data_script,
)
from noria.pipelines.orchestrators.config import OrchestratorsConfig

if TYPE_CHECKING:
    from noria.config import Project

RUN_ID = "{{ run_id }}"
# The conf entries the pipeline DAG's tasks take as environment variables (a loop DAG's: its conf_prefix).
PIPELINE_CONF_PREFIX = "NORIA_TRAINING__"


def render_airflow(
    project: Project,
    ref: str,
    out_dir: Path,
    *,
    params: Mapping[str, Any] | None = None,
    config: OrchestratorsConfig | None = None,
) -> list[Path]:
    """Write the pipeline's DAG and each enabled loop DAG (ingest, features, monitor) into ``out_dir``.

    Example::

        render_airflow(load_project("examples/flights", profile="cluster"), "training", Path("dags"))
    """
    plan = build_plan(project, ref, params=params, config=config)
    sources = {plan.dag_id: pipeline_dag_source(plan)}
    for name, dag in plan.config.loop_dags().items():
        if not dag.enabled:
            continue
        if plan.loop_dag_id(name) == plan.dag_id:
            raise ConfigError(
                f"pipeline {plan.pipeline.name!r} has the id of the {name} DAG ({plan.dag_id})",
                fix=f"set orchestrators.{name}.enabled: false, or render a pipeline of another name",
            )
        sources[plan.loop_dag_id(name)] = loop_dag_source(plan, name)
    return [atomic.write_text(out_dir / f"{dag_id}.py", text) for dag_id, text in sources.items()]


def _param(name: str) -> str:
    return '{{ params["%s"] | tojson }}' % name  # noqa: UP031 - the braces are Jinja's


def pipeline_dag_source(plan: Plan) -> str:
    """The Python source of the pipeline's DAG."""
    cfg = plan.config
    run = _task_plan(plan)
    lines = [
        *_header(plan, f"the Noria pipeline {plan.pipeline.name!r}", plan.dag_id, None),
        *_conf_env_hook(cfg.mode, PIPELINE_CONF_PREFIX),
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
        args = run.step_args(task.step, RUN_ID, _param)
        res = task.resources
        lines += _task(run, task.step, args, res.requests, res.limits, hook=True)
    if plan.edges:
        lines.append("")
    lines += [f"    tasks[{up!r}] >> tasks[{down!r}]" for up, down in plan.edges]
    return "\n".join(lines) + "\n"


def loop_dag_source(plan: Plan, name: str) -> str:
    """The Python source of loop DAG ``name`` (``ingest``, ``features`` or ``monitor``): its tasks in a chain."""
    cfg = plan.config
    dag = cfg.loop_dags()[name]
    run = _task_plan(plan)
    dag_id = plan.loop_dag_id(name)
    prefix = dag.conf_prefix
    lines = [
        *_header(plan, f"{name} of project {plan.project!r}", dag_id, name),
        *(_conf_env_hook(cfg.mode, prefix) if prefix else []),
        "with DAG(",
        f"    dag_id={dag_id!r},",
        f"    description={f'Noria {name} of {plan.project}: {dag.description}'!r},",
        f"    schedule={dag.schedule!r},",
        *_dag_common(cfg),
        f"    tags=['noria', {plan.project!r}, {name!r}],",
        ") as dag:",
        "    tasks = {}",
    ]
    for task, args in dag.tasks.items():
        res = cfg.resources_for(task)
        lines += _task(run, task, run.command_args(args), res.requests, res.limits, hook=prefix is not None)
    names = list(dag.tasks)
    if len(names) > 1:
        lines += ["", "    " + " >> ".join(f"tasks[{n!r}]" for n in names)]
    return "\n".join(lines) + "\n"


def _pulls(cfg: OrchestratorsConfig) -> bool:
    return cfg.mode == "kubernetes" and cfg.pull_data


def _task_plan(plan: Plan) -> Plan:
    """The plan whose arguments tasks run: on the pod's writable copy when pods pull the data first."""
    return replace(plan, project_dir=WORK_PROJECT_DIR) if _pulls(plan.config) else plan


def _task(
    run: Plan, task_id: str, args: list[str], requests: dict[str, str], limits: dict[str, str], *, hook: bool
) -> list[str]:
    if run.config.mode == "local":
        return _bash_task(task_id, [run.executable, *args], bool(run.config.env), hook=hook)
    return _pod_task(task_id, run.executable, args, requests, limits, hook=hook, pull=_pulls(run.config))


def _description(plan: Plan) -> str:
    text = plan.pipeline.description or f"Noria pipeline {plan.pipeline.name} of project {plan.project}"
    return text.splitlines()[0][:200]


def _header(plan: Plan, what: str, dag_id: str, loop: str | None) -> list[str]:
    cfg = plan.config
    kind = "one BashOperator per task" if cfg.mode == "local" else "one KubernetesPodOperator (pod) per task"
    if loop is None:
        runs = [
            f"{kind}, each running `noria pipeline run ... --step STEP --run-id {{{{ run_id }}}}`.",
            "Tasks of one DAG run share its run id and the artifact store, so each reads its inputs",
            "from the steps upstream.",
        ]
    else:
        chain = " -> ".join(f"`noria {' '.join(args)}`" for args in cfg.loop_dags()[loop].tasks.values())
        runs = [f"{kind}, one after another: {chain}."]
    if _pulls(cfg):
        runs.append(
            f"Each pod's init container copies the image's project to {WORK_PROJECT_DIR} (an emptyDir) and runs "
            "`noria data pull` there: the newest snapshot from the S3 DVC remote."
        )
    lines = [
        f'"""Airflow DAG {dag_id}: {what} (generated by Noria; do not edit, re-render).',
        "",
        f"Rendered with `noria --profile {plan.profile} airflow render {plan.ref}`:",
        *runs,
        "Re-render after changing the pipeline or `orchestrators:` in noria.yaml.",
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


def _conf_env_hook(mode: str, prefix: str) -> list[str]:
    """The rendered functions that add a run's conf entries named ``prefix*`` to a task's environment."""
    lines = [
        f"# A run's conf entries named {prefix}* become environment variables of every task",
        "# (docs/orchestrators.md: a retrain's training periods, an ingest's months).",
        f"CONF_ENV_PREFIX = {prefix!r}",
        "CONF_ENV_CHARS = set('ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_')",
        "",
        "",
        "def conf_env(context):",
        f'    """The run\'s conf entries named {prefix}*, as environment variables."""',
        "    conf = getattr(context.get('dag_run'), 'conf', None) or {}",
        "    env = {}",
        "    for key, value in conf.items():",
        "        if not str(key).startswith(CONF_ENV_PREFIX):",
        "            continue",
        "        rest = key[len(CONF_ENV_PREFIX):]",
        "        number_or_text = isinstance(value, (str, int, float)) and not isinstance(value, bool)",
        "        if not rest or not set(rest) <= CONF_ENV_CHARS or not number_or_text:",
        "            raise ValueError(",
        f"                f'dag_run.conf[{{key!r}}] = {{value!r}}: a {prefix} entry needs a name of capitals, '",
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
    secrets = [f"    ({s.env!r}, {s.secret!r}, {s.key!r})," for s in cfg.secrets]
    if _pulls(cfg):
        volumes = [
            "        k8s.V1Volume(name='work', empty_dir=k8s.V1EmptyDirVolumeSource(size_limit='8Gi')),",
            "        k8s.V1Volume(name='tmp', empty_dir=k8s.V1EmptyDirVolumeSource(size_limit='2Gi')),",
        ]
        mounts = [
            "    k8s.V1VolumeMount(name='work', mount_path='/work'),",
            "    k8s.V1VolumeMount(name='tmp', mount_path='/tmp'),",
        ]
    else:
        volumes = [
            "        k8s.V1Volume(name='state', empty_dir=k8s.V1EmptyDirVolumeSource(size_limit='2Gi')),",
            "        k8s.V1Volume(name='data', empty_dir=k8s.V1EmptyDirVolumeSource(size_limit='8Gi')),",
            "        k8s.V1Volume(name='tmp', empty_dir=k8s.V1EmptyDirVolumeSource(size_limit='2Gi')),",
        ]
        mounts = [
            f"    k8s.V1VolumeMount(name='state', mount_path={root + '/.noria'!r}),",
            f"    k8s.V1VolumeMount(name='data', mount_path={root + '/data'!r}),",
            "    k8s.V1VolumeMount(name='tmp', mount_path='/tmp'),",
        ]
    lines = [
        "# What every pod of this DAG shares (orchestrators: in noria.yaml).",
        f"IMAGE = {cfg.image!r}",
        f"ENV = {_literal(cfg.env, 0)}",
        "# (variable, Kubernetes Secret, key)",
        "SECRET_KEYS = [",
        *secrets,
        "]",
        "SECRETS = [Secret('env', env, secret, key) for env, secret, key in SECRET_KEYS]",
        "CONTAINER_SECURITY = k8s.V1SecurityContext(",
        "    allow_privilege_escalation=False, read_only_root_filesystem=True, privileged=False,",
        "    capabilities=k8s.V1Capabilities(drop=['ALL']),",
        ")",
        "MOUNTS = [",
        *mounts,
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
        "    container_security_context=CONTAINER_SECURITY,",
        "    volumes=[",
        *volumes,
        "    ],",
        "    volume_mounts=MOUNTS,",
        "    get_logs=True,",
        "    on_finish_action='delete_pod',",
        ")",
    ]
    if _pulls(cfg):
        script = pull_data_script(plan)
        lines += [
            "",
            "",
            "def pull_data(resources):",
            '    """The init container: the image\'s project copied to a writable folder, the newest snapshot',
            '    checked out there from the S3 DVC remote (its records, then data/dataset), before the task runs."""',
            "    env = [k8s.V1EnvVar(name=name, value=value) for name, value in ENV.items()]",
            "    env += [",
            "        k8s.V1EnvVar(",
            "            name=name,",
            "            value_from=k8s.V1EnvVarSource(secret_key_ref=k8s.V1SecretKeySelector(name=secret, key=key)),",
            "        )",
            "        for name, secret, key in SECRET_KEYS",
            "    ]",
            "    return k8s.V1Container(",
            "        name='pull-data',",
            "        image=IMAGE,",
            f"        image_pull_policy={cfg.image_pull_policy!r},",
            "        command=['/bin/sh', '-c'],",
            f"        args=[{script!r}],",
            "        env=env,",
            "        resources=resources,",
            "        security_context=CONTAINER_SECURITY,",
            "        volume_mounts=MOUNTS,",
            "    )",
        ]
    return lines


def _pod_task(
    task_id: str,
    executable: str,
    args: list[str],
    requests: dict[str, str],
    limits: dict[str, str],
    *,
    hook: bool = False,
    pull: bool = False,
) -> list[str]:
    return [
        "    resources = k8s.V1ResourceRequirements(",
        f"        requests={_literal(requests, 8)},",
        f"        limits={_literal(limits, 8)},",
        "    )",
        f"    tasks[{task_id!r}] = KubernetesPodOperator(",
        f"        task_id={task_id!r},",
        f"        cmds=[{executable!r}],",
        "        arguments=[",
        *(f"            {line}" for line in _arg_lines(args)),
        "        ],",
        "        container_resources=resources,",
        *(["        init_containers=[pull_data(resources)],"] if pull else []),
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
