"""``noria airflow`` / ``noria kfp`` / ``noria mage``: orchestrator artifacts rendered from a pipeline's graph.

Every task they generate runs ``noria pipeline run PIPELINE --step STEP --run-id RUN_ID``;
``orchestrators:`` in noria.yaml (per profile) says where and how (see docs/orchestrators.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from noria.cli._state import State

airflow_app = typer.Typer(
    help="Airflow 3: render a pipeline as a DAG file (one task per step) plus the loop's DAGs.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
kfp_app = typer.Typer(
    help="Kubeflow Pipelines v2: compile a pipeline to YAML (one container component per step).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
mage_app = typer.Typer(
    help="Mage: export a pipeline as a Mage project whose blocks run the steps.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

PipelineArg = Annotated[str, typer.Argument(help="Pipeline name, or a module:attribute reference.")]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", help="Override a parameter's default, KEY=VALUE (JSON). Repeatable."),
]


def _state(ctx: typer.Context) -> State:
    return ctx.obj if isinstance(ctx.obj, State) else State()


@airflow_app.command("render")
def airflow_render(
    ctx: typer.Context,
    pipeline: PipelineArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="DAG folder to write into.")] = Path("dags"),
    param: ParamOpt = None,
) -> None:
    """Write <project>_<pipeline>.py and the loop's DAGs into a DAG folder.

    The loop's DAGs do what deploy/k8s's CronJobs do: <project>_ingest.py (noria data ingest,
    triggered), <project>_features.py (features apply, materialize --until now; hourly) and
    <project>_monitor.py (monitor drift, feedback, run; daily); orchestrators.ingest, .features
    and .monitor set their schedules and tasks. The active profile decides the operator:
    orchestrators.mode local gives BashOperators, kubernetes gives KubernetesPodOperators in the
    Noria image, each pod checking the newest snapshot out first (noria data pull).

    Example: noria --profile cluster airflow render training --out dags/
    """
    from noria.pipelines import parse_params
    from noria.pipelines.orchestrators import render_airflow

    for path in render_airflow(_state(ctx).load(), pipeline, out, params=parse_params(param or [])):
        typer.echo(f"wrote {path}")


@kfp_app.command("compile")
def kfp_compile(
    ctx: typer.Context,
    pipeline: PipelineArg,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="YAML file (default: <project>_<pipeline>.kfp.yaml).")
    ] = None,
    param: ParamOpt = None,
) -> None:
    """Compile a pipeline to a Kubeflow Pipelines v2 YAML, ready to upload.

    Example: noria --profile cluster kfp compile training --out training.kfp.yaml
    """
    from noria.pipelines import parse_params
    from noria.pipelines.orchestrators import compile_kfp

    path = compile_kfp(_state(ctx).load(), pipeline, out, params=parse_params(param or []))
    typer.echo(f"wrote {path}")


@mage_app.command("export")
def mage_export(
    ctx: typer.Context,
    pipeline: PipelineArg,
    directory: Annotated[Path, typer.Argument(help="Mage project folder to create or update.")],
    param: ParamOpt = None,
) -> None:
    """Export a pipeline as a Mage project; run it with `mage run DIR <project>_<pipeline>`.

    Example: noria mage export training mage/
    """
    from noria.pipelines import parse_params
    from noria.pipelines.orchestrators import export_mage

    path = export_mage(_state(ctx).load(), pipeline, directory, params=parse_params(param or []))
    typer.echo(f"wrote {path}")
