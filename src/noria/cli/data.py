"""``noria data``: ingest, list and show versioned data snapshots."""

from __future__ import annotations

from typing import Annotated, Any

import typer

app = typer.Typer(help="Ingest, validate and version data snapshots (DVC-tracked Parquet).", no_args_is_help=True)


@app.command("ingest")
def ingest_cmd(
    ctx: typer.Context,
    start: Annotated[
        str | None, typer.Option("--from", help="First month to ingest, YYYY-MM (default: data.default_range).")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last month to ingest, YYYY-MM.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the lineage record as JSON.")] = False,
) -> None:
    """Read the sources for a month range, validate, quarantine bad rows, write a new snapshot.

    Without --from/--to: the project's data.default_range, or every month when it has none.

    
    Examples:
      noria data ingest
      noria data ingest --from 2013-07 --to 2013-07
    """
    from noria.data.ingest import ingest, summary_rows
    from noria.terminal import print_json, print_table, progress

    project = ctx.obj.load()
    with progress() as bar:
        result = ingest(project, start, end, progress=bar)
    record = result.record
    if as_json:
        print_json(record.to_dict())
        return
    shown = f"{record.range_from or 'the first month'}..{record.range_to or 'the last'}"
    print_table(summary_rows(record), title=f"ingest {shown}")
    totals = record.totals()
    state = "unchanged: identical to existing snapshot" if result.unchanged else "new snapshot"
    typer.echo(
        f"rows read {totals['read']:,} = accepted {totals['accepted']:,} + quarantined {totals['quarantined']:,}"
    )
    typer.echo(
        f"snapshot {record.short_id} ({state}); months {record.months[0]}..{record.months[-1]}"
        if record.months
        else f"snapshot {record.short_id} ({state})"
    )
    _echo_warnings(record)
    if totals["quarantined"]:
        typer.echo(
            "quarantined rows (with the rule each broke): "
            + ", ".join(t.quarantine_file for t in record.tables.values() if t.quarantine_file)
            + f"; see them with: noria data show {record.short_id} --quarantine"
        )


def _echo_warnings(record: Any) -> None:
    for name, table in record.tables.items():
        for warning in table.warnings:
            typer.secho(f"warning: table {name!r}: {warning}", fg=typer.colors.YELLOW, err=True)


@app.command("pull")
def pull_cmd(
    ctx: typer.Context,
    no_checkout: Annotated[
        bool, typer.Option("--no-checkout", help="Copy the records only; leave data/dataset as it is.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Bring the snapshots published on the S3 DVC remote into this folder; check the newest out.

    Every ingest with an s3:// storage.dvc_remote publishes its snapshot record beside the data.
    A folder that has none of them (a pod, a fresh clone) gets them here, and data/dataset becomes
    the newest snapshot, so later commands (features, training, an ingest of later months) use it.

    
    Example:
      noria --profile cluster data pull
    """
    from noria.data.published import pull
    from noria.terminal import print_json

    result = pull(ctx.obj.load(), checkout=not no_checkout)
    if as_json:
        print_json(result.to_dict())
        return
    typer.echo(f"{len(result.pulled)} snapshot record(s) pulled from {result.remote}; {result.known} known here")
    if result.checked_out:
        typer.echo(f"data/dataset is now snapshot {result.checked_out[:8]}")


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the project's data snapshots, oldest first.

    Example:  noria data list --json
    """
    from noria.data.snapshots import list_snapshots
    from noria.terminal import print_json, print_table

    records = list_snapshots(ctx.obj.load())
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    if not records:
        typer.echo("no snapshots yet: run `noria data ingest`")
        return
    rows = [
        {
            "id": r.short_id,
            "created": r.created_at,
            "months": f"{r.months[0]}..{r.months[-1]}" if r.months else "",
            **{k: v for k, v in r.totals().items() if k != "read"},
            "git": (r.git_commit or "-")[:8] + ("+dirty" if r.git_dirty else ""),
            "parent": (r.parent or "")[:8],
        }
        for r in records
    ]
    print_table(rows, title="data snapshots")


@app.command("show")
def show_cmd(
    ctx: typer.Context,
    snapshot: Annotated[str, typer.Argument(help="Snapshot id or a unique prefix of it; 'latest' for the newest.")],
    quarantine: Annotated[
        bool, typer.Option("--quarantine", help="Print the rows its ingest quarantined, with their reasons.")
    ] = False,
    table: Annotated[str | None, typer.Option("--table", help="With --quarantine: only this table.")] = None,
    rule: Annotated[
        str | None,
        typer.Option("--rule", help="With --quarantine: only rows whose reasons contain this text (a rule, a column)."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=0, help="With --quarantine: at most this many rows (0: all).")
    ] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one snapshot's lineage record: source, range, row counts, schema hash, git commit.

    With --quarantine, the rows its ingest quarantined: table, line of the source file, every
    rule the row broke, and the row as the file wrote it.

    Example:  noria data show 3f2a9c1e

    Example:  noria data show latest --quarantine --table orders --limit 5
    """
    from noria.data.ingest import summary_rows
    from noria.data.snapshots import get_record, quarantined_rows
    from noria.terminal import print_json, print_table

    project = ctx.obj.load()
    record = get_record(project, snapshot)
    if quarantine:
        rows = quarantined_rows(project, record, table=table, limit=limit or None, rule=rule)
        if as_json:
            print_json({"snapshot": record.id, "rows": rows})
            return
        total = sum(t.quarantined for n, t in record.tables.items() if table in (None, n))
        if not rows:
            which = f" of {table}" if table else ""
            typer.echo(f"snapshot {record.short_id}: its ingest quarantined no rows{which}")
            return
        shown = [r | {"row": ", ".join(f"{k}={v}" for k, v in r["row"].items())} for r in rows]
        print_table(shown, title=f"quarantined rows of snapshot {record.short_id} ({len(rows):,} of {total:,} shown)")
        return
    if as_json:
        print_json(record.to_dict())
        return
    for key in (
        "id",
        "created_at",
        "source",
        "range_from",
        "range_to",
        "schema_hash",
        "git_commit",
        "git_dirty",
        "parent",
        "ingest_id",
    ):
        typer.echo(f"{key:>12}: {getattr(record, key)}")
    typer.echo(f"{'months':>12}: {', '.join(record.months)}")
    print_table(summary_rows(record), title="tables")
    _echo_warnings(record)
