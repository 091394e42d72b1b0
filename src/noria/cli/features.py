"""``noria features``: apply the feature definitions, build training sets, fill and query the online store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from noria.cli._state import State

app = typer.Typer(
    help="Feature store (Feast): declare features in config, build point-in-time training sets, serve them online.",
    no_args_is_help=True,
)


def _project(ctx: typer.Context) -> Any:
    state: State = ctx.obj
    return state.load()


def _stepper(bar: Any) -> Any:
    task = bar.add_task("starting", total=None)

    def step(name: str) -> None:
        bar.update(task, description=name)

    return step


@app.command("apply")
def apply_cmd(
    ctx: typer.Context,
    snapshot: Annotated[
        str | None, typer.Option("--snapshot", help="Snapshot id to compute sources from (default: latest).")
    ] = None,
    no_data: Annotated[
        bool, typer.Option("--no-data", help="Register definitions only; compute sources later.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check the feature definitions, generate the Feast repo (.noria/feast/) and register it.

    Example:  noria features apply
    """
    from noria.features.repo import apply
    from noria.terminal import print_json, print_table

    result = apply(_project(ctx), snapshot_id=snapshot, with_data=not no_data)
    payload = {
        "repo": str(result.repo_dir),
        "definition_hash": result.definition_hash,
        "snapshot_id": result.snapshot_id,
        "feature_views": result.feature_views,
        "services": result.services,
        "deleted": result.deleted,
        "source_rows": result.sources.rows if result.sources else {},
        "seconds": round(result.seconds, 2),
    }
    if as_json:
        print_json(payload)
        return
    if result.sources:
        print_table([{"feature view": v, "source rows": n} for v, n in result.sources.rows.items()], title="sources")
    typer.echo(
        f"applied {len(result.feature_views)} feature views, services {', '.join(result.services)}"
        f" -> {result.repo_dir} (definitions {result.definition_hash[:12]}) in {result.seconds:.1f} s"
    )
    if result.deleted:
        typer.echo("removed: " + ", ".join(result.deleted))


@app.command("build")
def build_cmd(
    ctx: typer.Context,
    start: Annotated[str, typer.Option("--from", help="First month, YYYY-MM.")],
    end: Annotated[str, typer.Option("--to", help="Last month, YYYY-MM.")],
    snapshot: Annotated[str | None, typer.Option("--snapshot", help="Snapshot id (default: latest).")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output Parquet (default: .noria/artifacts/training_sets/).")
    ] = None,
    service: Annotated[str | None, typer.Option("--service", help="Feature service (default: the only one).")] = None,
    engine: Annotated[
        str | None,
        typer.Option("--engine", help="Join engine: duckdb or spark (default: features.offline_engine)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the lineage record as JSON.")] = False,
) -> None:
    """Build a point-in-time correct training set (entity rows, label, features) with its lineage record.

    
    Examples:
      noria features build --from 2013-01 --to 2013-06
      noria features build --from 2013-01 --to 2013-06 --engine spark
    """
    from noria.features.training_set import build_training_set
    from noria.terminal import print_json, print_table, progress

    project = _project(ctx)
    with progress() as bar:
        result = build_training_set(
            project, start, end, snapshot_id=snapshot, service=service, out=out, on_step=_stepper(bar), engine=engine
        )
    record = result.record
    if as_json:
        print_json(record.to_dict())
        return
    print_table(
        [
            {
                "feature view": v,
                "matched": m,
                "missing": record.unmatched[v],
                "matched %": round(100 * m / max(record.rows, 1), 1),
            }
            for v, m in record.matched.items()
        ],
        title=f"training set {start}..{end}: {record.rows:,} rows ({record.labeled_rows:,} labeled)",
    )
    typer.echo(f"{record.rows:,} rows x {len(record.features)} features -> {record.path}")
    typer.echo(
        f"snapshot {record.snapshot_id[:8]}, definitions {record.definition_hash[:12]}, engine {record.engine},"
        f" {record.timings['total']:.2f} s (join {record.timings.get('asof_join', 0):.2f} s)"
    )


@app.command("materialize")
def materialize_cmd(
    ctx: typer.Context,
    until: Annotated[
        str, typer.Option("--until", help="Load values known up to this time (ISO 8601, UTC; now: this moment).")
    ],
    snapshot: Annotated[str | None, typer.Option("--snapshot", help="Snapshot id (default: latest).")] = None,
    view: Annotated[list[str] | None, typer.Option("--view", help="Only this feature view (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Fill the online store with each view's latest values as of --until.

    Incremental: when the store already holds this snapshot's values under these definitions up
    to an earlier time (a record kept in the store itself), only later events are loaded; a new
    snapshot or new definitions reload every view.

    \b
    Examples:
      noria features materialize --until 2013-07-01T00:00:00Z
      noria features materialize --until now    # what the hourly CronJob and Airflow DAG run
    """
    from noria.features.online import materialize
    from noria.terminal import print_json, print_table, progress

    project = _project(ctx)
    with progress() as bar:
        bar.add_task("materializing", total=None)
        result = materialize(project, until, snapshot_id=snapshot, views=view)
    if as_json:
        print_json(
            {
                "until": result.until.isoformat(),
                "keys": result.keys,
                "snapshot_id": result.snapshot_id,
                "online_store": result.online_store,
                "seconds": round(result.seconds, 2),
                "since": result.since,
            }
        )
        return
    print_table(
        [
            {"feature view": v, "entity keys": n, "loaded": f"after {s}" if (s := result.since.get(v)) else "all"}
            for v, n in result.keys.items()
        ],
        title=f"online store ({result.online_store}) as of {result.until.isoformat()}",
    )
    typer.echo(f"materialized {len(result.views)} views in {result.seconds:.1f} s")


@app.command(
    "get",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def get_cmd(
    ctx: typer.Context,
    service: Annotated[str | None, typer.Option("--service", help="Feature service (default: the only one).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Look up one request's features online; pass every request column as --COLUMN VALUE.

    \b
    
    Example:
      noria features get --customer-id c007 --ordered-at 2024-09-02T10:00:00Z --amount 120.5 --items 3
    """
    from noria.errors import ConfigError
    from noria.features.online import online_features, open_online_store
    from noria.terminal import print_json, print_table

    args = list(ctx.args)
    request: dict[str, Any] = {}
    while args:
        flag = args.pop(0)
        if not flag.startswith("--") or not args:
            raise ConfigError(f"expected --COLUMN VALUE pairs, got {flag!r}", fix="e.g. --store-id s12 --amount 9.5")
        value: Any = args.pop(0)
        request[flag[2:].replace("-", "_")] = None if value in ("", "null", "None") else value
    store = open_online_store(_project(ctx), service)
    vectors = online_features(store, [request])
    record = vectors.to_records()[0]
    if as_json:
        print_json({"features": record, "missing": vectors.missing[0]})
        return
    print_table(
        [{"feature": k, "value": v, "missing": k in vectors.missing[0]} for k, v in record.items()],
        title=f"features ({store.plan.name})",
    )


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the entities, views and features as Markdown tables.")
    ] = False,
) -> None:
    """List feature views and their features, with types, keys, TTLs and descriptions.

    Example:  noria features list --markdown > features-table.md
    """
    from noria.features.definitions import feature_catalog, load_definitions
    from noria.terminal import print_json, print_table

    defs = load_definitions(_project(ctx))
    if markdown:
        from noria.features.docs import features_markdown

        typer.echo(features_markdown(defs), nl=False)
        return
    rows = feature_catalog(defs)
    if as_json:
        print_json(rows)
        return
    print_table(rows, title="features")


@app.command("usage")
def usage_cmd(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option("--model", help="Only this model.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List which feature service and definition hash each model version was trained with.

    Example:  noria features usage --model my-model
    """
    from dataclasses import asdict

    from noria.features.usage import list_usage
    from noria.terminal import print_json, print_table

    records = list_usage(_project(ctx), model)
    if as_json:
        print_json([asdict(r) for r in records])
        return
    if not records:
        typer.echo("no model has recorded its features yet (training records them)")
        return
    print_table(
        [
            {
                "model": r.model,
                "version": r.version,
                "service": r.service,
                "definitions": r.definition_hash[:12],
                "features": len(r.features),
                "recorded": r.recorded_at,
            }
            for r in records
        ],
        title="feature usage",
    )
