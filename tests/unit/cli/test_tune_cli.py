"""``noria tune``: the sub-app on its own (the root app registers it as ``tune``)."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
from typer.testing import CliRunner

from noria.cli._state import State
from noria.cli.tune import app
from noria.errors import NotFoundError, SnapshotNotFoundError
from noria.training.study import create_study

runner = CliRunner()


def test_show_prints_the_best_trial(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    create_study(url, "s")
    study = optuna.load_study(study_name="s", storage=url)
    dist = optuna.distributions.FloatDistribution(0.02, 0.2, log=True)
    for value, rate, worker in ((0.70, 0.05, 1), (0.72, 0.1, 2)):
        trial = optuna.trial.create_trial(
            params={"learning_rate": rate}, distributions={"learning_rate": dist}, value=value,
            user_attrs={"worker": worker},
        )  # fmt: skip
        study.add_trial(trial)
    text = runner.invoke(app, ["show", "--storage", url, "--study", "s"])
    assert text.exit_code == 0, text.output
    assert "best auc 0.7200" in text.output and "1: 1, 2: 1" in text.output and "learning_rate = 0.1" in text.output
    as_json = runner.invoke(app, ["show", "--study", "s", "--json"], env={"OPTUNA_STORAGE": url})
    assert json.loads(as_json.output)["best_params"] == {"learning_rate": 0.1}
    missing = runner.invoke(app, ["show", "--storage", url, "--study", "nope"])
    assert isinstance(missing.exception, NotFoundError)


def test_worker_needs_the_run_data(small_project: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = ["worker", "--run-id", "r1", "--storage", url, "--trials", "2"]
    result = runner.invoke(app, args, obj=State(project=small_project))
    # No snapshot yet: the run's context step cannot resolve one, and says so.
    assert isinstance(result.exception, SnapshotNotFoundError), result.output
