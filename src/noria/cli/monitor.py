"""``noria monitor``: drift of a window of inputs against a model's reference profile."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from noria.cli._state import State

if TYPE_CHECKING:
    from noria.monitoring import DriftConfig, DriftReport

app = typer.Typer(
    help="Monitoring: drift of inputs and scores against the reference profile stored with a model.",
    no_args_is_help=True,
)

_COLUMNS = ["feature", "kind", "verdict", "alert", "importance", "psi", "test", "p_value", "distance", "missing", "why"]


@app.command("drift")
def drift_cmd(
    ctx: typer.Context,
    profile: Annotated[Path, typer.Option("--profile", help="Reference profile (JSON) built at training time.")],
    data: Annotated[Path, typer.Option("--data", help="The window to check: a Parquet file of model inputs.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
) -> None:
    """Compare a window of inputs with a reference profile: PSI, KS / chi-square, verdicts, alerts.

    Thresholds come from the project's noria.yaml (monitoring section) when run inside a
    project, otherwise from the defaults.

    Example:  noria monitor drift --profile profile.json --data window-2013-07.parquet
    """
    from noria.cli._output import print_json, print_table
    from noria.monitoring import check_drift

    report = check_drift(profile, data, _drift_config(ctx.obj))
    if as_json:
        print_json(report.to_dict())
        return
    print_table(_rows(report), title=f"drift of {data.name} against {profile.name}", columns=_COLUMNS)
    drifted = report.drifted
    typer.echo(
        f"{report.rows:,} rows vs {report.reference_rows:,} reference rows; "
        f"drift in {len(drifted)} of {len(report.all)}" + (f": {', '.join(drifted)}" if drifted else "")
    )
    typer.echo(f"ALERT: drift on important features: {', '.join(report.alerts)}" if report.alerts else "no alerts")


def _drift_config(state: State | None) -> DriftConfig:
    """The project's drift settings; the defaults when not inside a project."""
    from noria.errors import ProjectNotFoundError
    from noria.monitoring import DriftConfig

    if state is None:
        return DriftConfig()
    try:
        return state.load().config.monitoring.drift
    except ProjectNotFoundError:
        return DriftConfig()


def _rows(report: DriftReport) -> list[dict[str, Any]]:
    rows = []
    for f in report.all:
        distance = f.wasserstein if f.kind != "categorical" else f.jensen_shannon
        rows.append(
            {
                "feature": f.name,
                "kind": f.kind,
                "verdict": f.verdict,
                "alert": f.alert,
                "importance": f.importance,
                "psi": f.psi,
                "test": f.test,
                "p_value": f.p_value,
                "distance": f"{'W' if f.kind != 'categorical' else 'JS'} {distance:.3g}",
                "missing": f"{f.missing_reference:.1%} -> {f.missing_current:.1%}",
                "why": f.reason,
            }
        )
    return rows
