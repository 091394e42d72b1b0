"""A Kubeflow Pipelines v2 YAML compiled by ``kfp`` from a pipeline's step graph.

One container component per step, all running the Noria image with the single-step
command; the run id is the KFP job's uuid (``{{$.pipeline_job_uuid}}``), shared by every
task of a run. Pipeline parameters become typed KFP pipeline inputs passed to every task.
Image, resources, env, secrets (through ``kfp-kubernetes``), pull policy, retries and the
pod's user come from ``orchestrators:``. KFP's own cache is off: Noria caches steps itself.
Schedules are not part of the YAML (a KFP recurring run sets them). With
``orchestrators.pull_data`` (default) each step's container first copies the image's project
to an emptyDir (``/work/project``) and runs ``noria data pull`` there, then the step on that copy.
"""

from __future__ import annotations

import inspect
import shlex
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noria import atomic
from noria.errors import MissingExtraError
from noria.pipelines.orchestrators._plan import IMAGE_UID, WORK_PROJECT_DIR, Plan, build_plan, pull_data_script
from noria.pipelines.orchestrators.config import OrchestratorsConfig

if TYPE_CHECKING:
    from noria.config import Project


def compile_kfp(
    project: Project,
    ref: str,
    out: Path | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    config: OrchestratorsConfig | None = None,
) -> Path:
    """Compile the pipeline to a KFP v2 YAML file; return its path.

    ``out`` is a ``.yaml``/``.yml`` file, or a folder that receives ``<project>_<pipeline>.kfp.yaml``
    (default: that file in the current folder).

    Example::

        compile_kfp(load_project("examples/flights", profile="cluster"), "training", Path("training.yaml"))
    """
    try:
        from kfp import compiler
    except ImportError:
        raise MissingExtraError("compiling a Kubeflow pipeline needs kfp", fix="pip install 'noria[kfp]'") from None
    plan = build_plan(project, ref, params=params, config=config, mode="kubernetes")
    name = f"{plan.dag_id}.kfp.yaml"
    target = out if out is not None else Path(name)
    if target.suffix not in (".yaml", ".yml"):  # a folder
        target = target / name
    pipeline_func = kfp_pipeline(plan)
    # kfp writes the file itself: compile next to the target, then rename.
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic.temp_path(target, suffix=".yaml") as tmp:  # kfp insists on .yaml
        compiler.Compiler().compile(pipeline_func, str(tmp))
    return target


def kfp_pipeline(plan: Plan) -> Any:
    """The ``@dsl.pipeline`` object for ``plan`` (compile it with ``kfp.compiler.Compiler``)."""
    from kfp import dsl

    names = list(plan.params)
    types = {name: _kfp_type(value) for name, value in plan.params.items()}
    if plan.config.pull_data:  # each step runs on its pod's copy of the project, with the newest snapshot
        plan = replace(plan, project_dir=WORK_PROJECT_DIR)
    components = {task.step: _component(plan, task.step, names, types) for task in plan.tasks}

    def body(*values: Any) -> None:
        inputs = dict(zip(names, values, strict=True))
        tasks: dict[str, Any] = {}
        for task in plan.tasks:
            op = components[task.step](run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, **inputs)
            op.set_display_name(task.step)
            op.after(*(tasks[up] for up in task.upstream))
            _configure(op, plan, task.step)
            tasks[task.step] = op

    _sign(body, plan.dag_id, [(n, types[n], plan.params[n]) for n in names])
    description = plan.pipeline.description or f"Noria pipeline {plan.pipeline.name} of project {plan.project}"
    return dsl.pipeline(name=plan.dag_id.replace("_", "-"), description=description)(body)


def _component(plan: Plan, step: str, names: list[str], types: dict[str, type]) -> Any:
    from kfp import dsl

    def spec(*values: Any) -> Any:
        run_id, *rest = values
        by_name = dict(zip(names, rest, strict=True))
        # Placeholders print as {{$.inputs.parameters['x']}}; KFP fills them when the pod starts.
        args = plan.step_args(step, str(run_id), lambda name: str(by_name[name]))
        command = [plan.executable]
        if plan.config.pull_data:
            # kfp-kubernetes has no init containers: the pull runs first in the step's own shell, and
            # the step's arguments reach noria as "$@" (never re-parsed by the shell).
            script = f'{pull_data_script(plan)} && exec {shlex.quote(plan.executable)} "$@"'
            command = ["/bin/sh", "-c", script, plan.executable]
        return dsl.ContainerSpec(image=plan.config.image, command=command, args=args)

    no_default = inspect.Parameter.empty
    _sign(spec, f"step_{step}", [("run_id", str, no_default)] + [(n, types[n], no_default) for n in names])
    return dsl.container_component(spec)


def _configure(op: Any, plan: Plan, step: str) -> None:
    from kfp import kubernetes

    cfg = plan.config
    op.set_caching_options(False)
    if cfg.retries:
        op.set_retry(num_retries=cfg.retries, backoff_duration=f"{cfg.retry_delay_seconds}s")
    res = cfg.resources_for(step)
    setters: dict[tuple[str, str], Callable[[str], Any]] = {
        ("requests", "cpu"): op.set_cpu_request,
        ("requests", "memory"): op.set_memory_request,
        ("limits", "cpu"): op.set_cpu_limit,
        ("limits", "memory"): op.set_memory_limit,
    }
    for kind, values in (("requests", res.requests), ("limits", res.limits)):
        for key, quantity in values.items():
            if (kind, key) in setters:  # KFP has no ephemeral-storage setting
                setters[kind, key](quantity)
    for name, value in cfg.env.items():
        op.set_env_variable(name, value)
    for secret in cfg.secrets:
        kubernetes.use_secret_as_env(op, secret_name=secret.secret, secret_key_to_env={secret.key: secret.env})
    if cfg.pull_data:
        kubernetes.empty_dir_mount(op, volume_name="work", mount_path="/work", size_limit="8Gi")
    kubernetes.set_image_pull_policy(op, cfg.image_pull_policy)
    kubernetes.set_security_context(op, run_as_user=IMAGE_UID, run_as_group=IMAGE_UID, run_as_non_root=True)
    kubernetes.add_pod_label(op, "app.kubernetes.io/name", "noria-pipeline")
    kubernetes.add_pod_label(op, "app.kubernetes.io/component", "pipeline-step")


def _kfp_type(value: Any) -> type:
    """The KFP input type for a parameter, from its default value (KFP renders it into the command)."""
    for kind in (bool, int, float, str, dict, list):
        if isinstance(value, kind):
            return kind
    return str  # None: the value arrives as the text 'None'; give such parameters a real default


def _sign(func: Callable[..., Any], name: str, params: list[tuple[str, type, Any]]) -> None:
    """Give ``func`` a signature kfp can read: positional parameters with types and defaults."""
    func.__name__ = func.__qualname__ = name
    func.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=t, default=d) for n, t, d in params]
    )
    func.__annotations__ = {n: t for n, t, _ in params}
