"""What one tuning worker (a process or pod) runs: the split of a training-pipeline run read
back from the project's artifact store, and trials added to the run's shared Optuna study
(:mod:`noria.training.study`) with :func:`noria.training.tuning.tune_rows`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from noria.training.study import default_study_name, resolve_storage, tune_options
from noria.training.tuning import tune_rows

if TYPE_CHECKING:
    import pandas as pd

    from noria.config import Project
    from noria.training.config import TrainingSettings
    from noria.training.rows import TrainRows
    from noria.training.search import TuneResult
    from noria.training.split import Split


@dataclass
class RunSplit:
    """The time-based split of one training-pipeline run, with what tuning needs around it.

    ``rows`` are the train rows as the split step wrote them (read column by column);
    :attr:`split` holds every row in memory as frames, for small data and tests.
    """

    rows: TrainRows
    test: pd.DataFrame
    summary: dict[str, Any]
    features: list[str]
    categorical: list[str]
    settings: TrainingSettings
    context: dict[str, Any]

    @property
    def split(self) -> Split:
        from noria.training.rows import split_of

        train = self.rows.frame(self.features)
        return split_of(train, self.rows.fit_rows, self.test, self.summary, self.rows.task)


def load_run_split(
    project: Project, run_id: str, *, params: Mapping[str, Any] | None = None, pipeline: str = "training"
) -> RunSplit:
    """The split of pipeline run ``run_id``, read from the project's artifact store.

    Upstream steps the run finished are only read back ("resumed"); any it has not run yet
    run here, so give the same ``params`` as the run's other tasks.
    """
    from noria.pipelines import run_project_pipeline
    from noria.training.pipeline_inputs import _columns, _rows, _settings

    loaded: dict[str, Any] = {}
    wanted = {"context", "training_set_info", "train_rows", "test_rows", "split_info"}
    for step_name in ("context", "training_set", "split"):
        result = run_project_pipeline(project, pipeline, step=step_name, run_id=run_id, params=params, progress=False)
        for output in set(result.steps[step_name].outputs) & wanted:
            loaded[output] = result.load(output)
    context, info = loaded["context"], loaded["training_set_info"]
    features, categorical = _columns(info)
    rows = _rows(loaded["train_rows"], context)
    return RunSplit(rows, loaded["test_rows"], loaded["split_info"], features, categorical, _settings(context), context)


def tune_worker(
    project: Project,
    storage_url: str,
    study_name: str | None,
    n_trials: int,
    *,
    run_id: str,
    worker: int = 1,
    params: Mapping[str, Any] | None = None,
    pipeline: str = "training",
) -> TuneResult:
    """Run ``n_trials`` trials of the shared study on the split of pipeline run ``run_id``.

    What one worker pod runs. ``study_name`` None uses :func:`default_study_name`, the name
    the ``tune`` step derives too. Worker 0 is the ``tune`` step itself: number pods from 1.
    """
    run = load_run_split(project, run_id, params=params, pipeline=pipeline)
    return tune_rows(
        run.rows,
        run.features,
        run.categorical,
        trials=n_trials,
        storage=resolve_storage(storage_url, project.root),
        study_name=study_name or default_study_name(run.context),
        worker=worker,
        **tune_options(run.settings, str(run.context.get("task", "binary"))),
    )


__all__ = ["RunSplit", "load_run_split", "tune_worker"]
