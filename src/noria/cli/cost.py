"""``noria cost``: the monthly cost of an environment's deployed resources, from its manifests."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from noria.cost import Estimate, Workload


def cost(
    ctx: typer.Context,
    env: Annotated[
        str, typer.Option("--env", help="The environment (its kustomize overlay: deploy/k8s/overlays/ENV).")
    ] = "prod",
    as_json: Annotated[bool, typer.Option("--json", help="Print the estimate as JSON (for scripts).")] = False,
    as_markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the estimate as a Markdown '## Cost estimate' section.")
    ] = False,
) -> None:
    """Estimate the monthly cost of an environment from its manifests' resource requests.

    Renders the environment's kustomize folder with `kubectl kustomize` and prices every
    Deployment and StatefulSet (replicas, or an autoscaler's min and max, for 730 hours), CronJob
    and Job (runs per month from the schedule x cost.job_minutes or activeDeadlineSeconds),
    volume claim and the declared object storage with the `cost` price table of noria.yaml.
    Workloads without cpu and memory requests are listed as unpriced.

    \b
    Examples:
      noria --project my-project cost
      noria --project my-project cost --env preprod --json
      noria cost --markdown > docs/cost.md
    """
    from noria.cost import estimate

    est = estimate(ctx.obj.load(), env)
    if as_json:
        from noria.terminal import print_json

        print_json(est.to_dict())
    elif as_markdown:
        typer.echo(markdown(est), nl=False)
    else:
        _print(est)
    for w in est.unpriced:
        typer.echo(
            f"unpriced: {w.kind} {w.name}: {w.unpriced} -- fix: add resources.requests (cpu, memory) to its containers",
            err=True,
        )


def _print(est: Estimate) -> None:
    from noria.terminal import print_table

    rows = [
        {
            "kind": w.kind,
            "name": w.name,
            "replicas": str(w.replicas_min)
            if w.replicas_min == w.replicas_max
            else f"{w.replicas_min}-{w.replicas_max}",
            "cpu": w.cpu,
            "memory GiB": w.memory_gib,
            "hours/month": w.hours_month,
            "storage GiB": w.storage_gib,
            "cost/month": "unpriced" if w.unpriced else _money(est, w.cost_min, w.cost_max),
            "how": w.unpriced or w.note,
        }
        for w in est.workloads
    ]
    print_table(rows, title=f"monthly cost of {est.environment} ({est.manifests})")
    typer.echo(f"total: {_total(est)}; {len(est.unpriced)} unpriced")


def _money(est: Estimate, low: float, high: float) -> str:
    text = f"{low:,.2f} {est.currency}"
    return text if low == high else f"{text} to {high:,.2f} {est.currency}"


def _total(est: Estimate) -> str:
    more = "" if est.total_min == est.total_max else " (autoscalers at min to max replicas)"
    return f"{_money(est, est.total_min, est.total_max)} per month{more}"


def markdown(est: Estimate) -> str:
    """The estimate as a Markdown section: a '## Cost estimate' heading and the amounts with their currency."""
    lines = [
        f"## Cost estimate: {est.environment}",
        "",
        f"`noria cost --env {est.environment}` from `{est.manifests}` on {date.today().isoformat()}: "
        f"**{_total(est)}**.",
        "",
        "| kind | name | replicas | cpu | memory GiB | hours/month | cost/month |",
        "|---|---|---|---|---|---|---|",
    ]
    for w in est.workloads:
        cost = "unpriced" if w.unpriced else _money(est, w.cost_min, w.cost_max)
        lines.append(
            f"| {w.kind} | {w.name} | {_replicas(w)} | {w.cpu:g} | {w.memory_gib:g} | {w.hours_month:g} | {cost} |"
        )
    lines += [f"\nUnpriced: {w.kind} {w.name}: {w.unpriced}." for w in est.unpriced]
    return "\n".join(lines) + "\n"


def _replicas(w: Workload) -> str:
    return str(w.replicas_min) if w.replicas_min == w.replicas_max else f"{w.replicas_min}-{w.replicas_max}"
