"""``noria serve`` and ``noria predict``: the model as an HTTP service, or over a file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on (default: serving.host).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default: serving.port, 8000).")] = None,
    insecure_local: Annotated[
        bool,
        typer.Option(
            "--insecure-local",
            help="Serve without API keys (loopback only): /predict is open, /reload is off. For trying it out.",
        ),
    ] = False,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Server processes (default: serving.workers).")
    ] = None,
) -> None:
    """Serve the registry's @champion over HTTP (FastAPI + uvicorn) until stopped.

    Needs an API key in NORIA_API_KEYS (comma-separated) unless --insecure-local. Endpoints:
    POST /predict, GET /health, /ready, /version, /metrics, POST /reload; docs at /docs.

    
    Example:
      export NORIA_API_KEYS=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')
      noria serve --port 8000
    """
    from noria.serving.server import serve as run

    run(ctx.obj.load(), host=host, port=port, workers=workers, insecure_local=insecure_local)


def predict(
    ctx: typer.Context,
    input: Annotated[
        Path,
        typer.Option("--input", "-i", help="Parquet file of requests to score, or a folder of Parquet files."),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="Where to write input + predictions: a Parquet file (a folder of them on Spark)."
        ),
    ],
    chunk_size: Annotated[
        int | None, typer.Option("--chunk-size", min=1, help="Rows per chunk (default: serving.batch.chunk_size).")
    ] = None,
    explain: Annotated[bool, typer.Option("--explain", help="Add the top contributions as text (slower).")] = False,
    engine: Annotated[
        str | None,
        typer.Option(
            "--engine",
            help="local (stream in chunks here) or spark (a Spark job; needs pyspark and Java 17+)"
            " (default: serving.batch.engine).",
        ),
    ] = None,
) -> None:
    """Score a file of requests with the @champion, streaming in chunks; records the delivery.

    The input holds the request columns as the request table stores them (a snapshot's rows),
    or the fields of the project's own request model. Every row goes to the prediction log.
    With --engine spark the same scoring runs as a Spark job (the session of features.spark) and
    writes a folder of Parquet files; its input must hold every model feature unless the online
    store is off, and its rows do not go to the prediction log.

    
    Examples:
      noria predict --input requests.parquet --output scored.parquet
      noria predict --engine spark --input requests/ --output scored/   # on Spark
    """
    from noria.serving.batch import score_file

    result = score_file(
        ctx.obj.load(), input, output, chunk_size=chunk_size, explain=explain, progress=True, engine=engine
    )
    r = result.record
    typer.echo(
        f"scored {r.rows_out:,} of {r.rows_in:,} rows with {r.model_name} version {r.model_version} "
        f"in {r.seconds:.1f} s ({r.engine}): {r.flagged_rows:,} flagged positive, {r.ood_rows:,} out of distribution"
    )
    typer.echo(f"wrote {result.output}; delivery record {result.record_path}")
