"""``noria tune``: workers of a shared Optuna study, and what the study found so far.

One worker per pod at scale: each reads the split of a training-pipeline run from the
artifact store and adds trials to one study in PostgreSQL. The pipeline's ``tune`` step
(``--param study_storage=URL --param study_trials=0``) then collects the best parameters.
"""

from __future__ import annotations

from typing import Annotated

import typer

from noria.cli._state import State

app = typer.Typer(
    help="Shared hyper-parameter search: tuning workers (one pod each) and the study's best trial.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _state(ctx: typer.Context) -> State:
    return ctx.obj if isinstance(ctx.obj, State) else State()


StorageOption = Annotated[
    str,
    typer.Option(
        "--storage",
        envvar="OPTUNA_STORAGE",
        help="Optuna storage URL, e.g. postgresql+psycopg2://optuna@postgres/optuna (password: PGPASSWORD).",
    ),
]


@app.command("worker")
def worker(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Option("--run-id", help="The training-pipeline run whose split to tune on.")],
    storage: StorageOption,
    trials: Annotated[int, typer.Option("--trials", "-n", min=1, help="Trials this worker runs.")],
    worker_id: Annotated[int, typer.Option("--worker", min=1, help="This worker's number (1, 2, ...).")] = 1,
    study: Annotated[
        str | None, typer.Option("--study", help="Study name (default: derived from model, snapshot, settings).")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="The run's pipeline parameters, KEY=VALUE. Repeatable.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print this worker's trials as JSON.")] = False,
) -> None:
    """Run trials of a shared study on the split of one training-pipeline run.

    
    Example:
      noria tune worker --run-id 2024-07-01 --storage postgresql+psycopg2://optuna@db/optuna --trials 10 --worker 2
    """
    from noria.pipelines import parse_params
    from noria.terminal import print_json
    from noria.training.tune_worker import tune_worker

    result = tune_worker(
        _state(ctx).load(),
        storage,
        study,
        trials,
        run_id=run_id,
        worker=worker_id,
        params=parse_params(param or []),
    )
    if as_json:
        print_json(result.to_dict())
        return
    done = sum(1 for t in result.trials if t.state == "complete")
    typer.echo(
        f"worker {worker_id}: {len(result.trials)} trials ({done} complete) in {result.seconds:.1f}s; "
        f"best {result.metric} of the study so far {result.best_value:.4f}"
    )


@app.command("show")
def show(
    storage: StorageOption,
    study: Annotated[str, typer.Option("--study", help="Study name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the best parameters and every trial as JSON.")] = False,
) -> None:
    """Show the best trial of a shared study and how many trials each worker ran.

    Example: noria tune show --storage sqlite:///.noria/optuna.db --study my-model-0123abcd-5f2e9a1b7c
    """
    from collections import Counter

    from noria.terminal import print_json
    from noria.training.study import study_result

    result = study_result(storage, study)
    if as_json:
        print_json(result.to_dict())
        return
    per_worker = Counter(t.worker for t in result.trials)
    typer.echo(f"study {study}: {result.n_trials} trials; best {result.metric} {result.best_value:.4f}")
    typer.echo("trials per worker: " + ", ".join(f"{w}: {n}" for w, n in sorted(per_worker.items())))
    for key, value in sorted(result.best_params.items()):
        typer.echo(f"  {key} = {value:.6g}" if isinstance(value, float) else f"  {key} = {value}")
