"""``noria ab``: A/B tests between @champion and @challenger, judged on matured labels."""

from __future__ import annotations

from typing import Annotated

import typer

from noria.cli._options import LabelsOption, WindowsOption

app = typer.Typer(
    help="A/B tests: champion vs challenger on delayed labels, and the declared decision rule.", no_args_is_help=True
)


@app.callback()
def _group() -> None:
    """A/B tests: champion vs challenger on delayed labels, and the declared decision rule."""


@app.command("report")
def report_cmd(
    ctx: typer.Context,
    labels: LabelsOption = None,
    window: WindowsOption = None,
    apply: Annotated[
        bool,
        typer.Option("--apply", help="Promote the challenger when the outcome is promote_challenger (gated)."),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="With --apply: a forced promotion (the A/B reason), not the gate.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Both arms' primary metric on matured labels, the difference with its interval, and the decision.

    Labels join the logged requests of each arm as in `noria monitor feedback`. The decision
    (keep_champion, promote_challenger or continue) follows serving.ab.decision and is appended
    to <monitoring.dir>/decisions.jsonl; nothing is promoted without --apply.

    \b
    Examples:
      noria ab report
      noria ab report --window 2024-W12 --json
      noria ab report --labels outcomes.csv --apply
    """
    from noria.monitoring.ab import ab_report
    from noria.terminal import print_json, print_table

    if force and not apply:
        raise typer.BadParameter("--force only goes with --apply")
    report = ab_report(ctx.obj.load(), labels, windows=window or None, apply=apply, force=force)
    if as_json:
        print_json(report.to_dict())
        return
    print_table(
        [
            {"arm": a.arm, "version": a.model_version, "predictions": a.predictions, "labelled": a.labelled}
            | {report.metric: a.metric}
            for a in report.arms.values()
        ],
        title=f"A/B test of {report.model_name} since {report.started} ({report.days:.1f} days),"
        f" labels: {report.labels}",
    )
    if report.difference is not None:
        interval = "" if report.interval is None else f" [{report.interval[0]:+.4f}, {report.interval[1]:+.4f}]"
        typer.echo(f"difference (challenger - champion): {report.difference:+.4f}{interval}; {report.method}")
    typer.echo(f"decision: {report.outcome}: {report.reason}")
    if report.promotion is not None:
        typer.echo(f"promotion: {report.promotion['reason']}")
    elif apply:
        typer.echo("nothing promoted: the outcome is not promote_challenger")
