"""``noria ab report``: champion vs challenger on matured labels, the interval and the decision rule.

Real projects of :mod:`tests.unit.monitoring.task_projects` (multi-class games, regression
readings), prediction logs written by the service's own writer with both arms, labels from a
file a partner sends or from the ingested snapshot. Expected figures are computed here with
scikit-learn from the rows logged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, mean_squared_error
from tests.unit.monitoring.task_projects import (
    CLASSES,
    base_row,
    games_project,
    games_table,
    log_rows,
    multiclass_row,
    readings_project,
    readings_table,
    regression_input,
)
from typer.testing import CliRunner

from noria.cli import app
from noria.config import Project
from noria.data.ingest import ingest
from noria.errors import NotFoundError
from noria.monitoring.ab import ab_report
from noria.monitoring.store import MonitoringStore

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"

GAMES = games_table(n=240, seed=0)


def _leaning(games: pd.DataFrame, lean: float, seed: int) -> np.ndarray:
    """Probabilities of H / D / A per game; ``lean`` added to the true result's before normalising."""
    rng = np.random.default_rng(seed)
    raw = rng.dirichlet([2.0, 1.0, 1.5], len(games))
    truth = pd.Series(games["result"]).map({c: i for i, c in enumerate(CLASSES)}).to_numpy()
    known = np.flatnonzero(~pd.isna(truth))
    raw[known, truth[known].astype(int)] += lean
    return raw / raw.sum(axis=1, keepdims=True)


def _serve_games(project: Project, champion_lean: float, challenger_lean: float, *, hours: float = 0.0) -> pd.DataFrame:
    """Every game served, odd ones by the challenger (v2), the others by the champion (v1);
    request ``i`` logged ``i * hours`` hours after the first."""
    champion, challenger = _leaning(GAMES, champion_lean, 1), _leaning(GAMES, challenger_lean, 2)
    arm = np.where(np.arange(len(GAMES)) % 2 == 1, "challenger", "champion")
    rows = []
    for i, game in enumerate(GAMES.itertuples()):
        p = challenger[i] if arm[i] == "challenger" else champion[i]
        version = 2 if arm[i] == "challenger" else 1
        rows.append(
            multiclass_row(i, game.kickoff, game.home, p, version, arm=str(arm[i]))
            | {"timestamp": 1.7e9 + i * hours * 3600.0 + i}
        )
    log_rows(project, rows)
    return GAMES.assign(arm=arm, p=list(np.where(arm[:, None] == "challenger", challenger, champion)))


def _results(path: Path) -> Path:
    GAMES.assign(kickoff=GAMES["kickoff"].map(pd.Timestamp.isoformat))[["kickoff", "home", "result"]].to_csv(
        path, index=False
    )
    return path


@pytest.fixture
def games(tmp_path: Path) -> Project:
    project = games_project(tmp_path / "games", GAMES)
    ab = project.config.serving.ab.decision
    ab.min_samples_per_arm, ab.resamples, ab.max_days = 50, 300, 28.0
    return project


def _expected(served: pd.DataFrame, arm: str) -> tuple[int, float]:
    # the test starts at the challenger's first request (game 1): the champion's game 0 is before it
    mine = served[(served["arm"] == arm) & served["result"].notna() & (served.index >= 1)]
    y = mine["result"].map({c: i for i, c in enumerate(CLASSES)}).to_numpy()
    return len(mine), float(log_loss(y, np.vstack(mine["p"].to_numpy()), labels=[0, 1, 2]))


def test_a_clearly_better_challenger_is_promoted_with_its_numbers(games: Project, tmp_path: Path) -> None:
    served = _serve_games(games, 0.3, 3.0)
    labels = _results(tmp_path / "results.csv")
    report = ab_report(games, labels)
    n_champion, champion = _expected(served, "champion")
    n_challenger, challenger = _expected(served, "challenger")
    assert report.metric == "log_loss" and not report.higher_is_better
    assert (report.arms["champion"].labelled, report.arms["challenger"].labelled) == (n_champion, n_challenger)
    assert (report.arms["champion"].predictions, report.arms["challenger"].predictions) == (119, 120)
    assert (report.arms["champion"].model_version, report.arms["challenger"].model_version) == (1, 2)
    assert report.arms["champion"].metric == pytest.approx(champion)
    assert report.arms["challenger"].metric == pytest.approx(challenger)
    assert report.difference == pytest.approx(challenger - champion) and report.gain == pytest.approx(
        champion - challenger
    )
    assert report.interval is not None
    low, high = report.interval
    assert low < report.difference < high < 0  # lower log loss: better, and the interval says so
    assert report.outcome == "promote_challenger"
    assert f"{challenger:.4f}" in report.reason and f"n={n_challenger}" in report.reason
    assert f"{low:+.4f}" in report.reason
    # the same log and labels give the same interval (fixed seed); nothing was promoted
    assert ab_report(games, labels, record=False).interval == report.interval
    assert report.promotion is None
    decisions = MonitoringStore.of(games).decisions()
    assert len(decisions) == 1
    decision = decisions[0]
    assert decision["kind"] == "ab" and decision["action"] == "promote_challenger" and decision["acted"] is False
    assert decision["reasons"] == [report.reason] and decision["candidate_version"] == 2
    assert decision["checks"]["arms"]["challenger"]["labelled"] == n_challenger


def test_a_worse_challenger_keeps_the_champion(games: Project, tmp_path: Path) -> None:
    _serve_games(games, 3.0, 0.0)
    report = ab_report(games, _results(tmp_path / "results.csv"))
    assert report.interval is not None and report.interval[0] > 0  # higher log loss: worse
    assert report.outcome == "keep_champion" and "the challenger is worse" in report.reason


def test_too_few_labels_continue_then_keep_the_champion_after_max_days(games: Project, tmp_path: Path) -> None:
    _serve_games(games, 0.3, 3.0, hours=1.0)  # 240 requests, one an hour: 10 days
    labels = _results(tmp_path / "results.csv")
    games.config.serving.ab.decision.min_samples_per_arm = 1000
    report = ab_report(games, labels)
    assert report.days == pytest.approx(238 * (1 + 1 / 3600) / 24, abs=1e-3)  # the challenger's first to the last
    assert report.outcome == "continue"
    counts = f"champion {report.arms['champion'].labelled}, challenger {report.arms['challenger'].labelled}"
    assert counts in report.reason and "of the 1000 needed" in report.reason
    games.config.serving.ab.decision.max_days = 7.0
    late = ab_report(games, labels)
    assert late.outcome == "keep_champion" and "max_days 7" in late.reason and counts in late.reason
    assert [d["action"] for d in MonitoringStore.of(games).decisions()] == ["continue", "keep_champion"]


def test_no_conclusive_gain_continues_until_max_days(games: Project, tmp_path: Path) -> None:
    _serve_games(games, 0.6, 0.6, hours=1.0)  # the same model quality in both arms
    labels = _results(tmp_path / "results.csv")
    report = ab_report(games, labels)
    assert report.interval is not None and report.interval[0] < 0 < report.interval[1]
    assert report.outcome == "continue" and "not conclusive yet" in report.reason
    games.config.serving.ab.decision.max_days = 5.0
    assert ab_report(games, labels).outcome == "keep_champion"


def test_min_effect_holds_back_a_small_gain(games: Project, tmp_path: Path) -> None:
    _serve_games(games, 0.3, 3.0)
    labels = _results(tmp_path / "results.csv")
    games.config.serving.ab.decision.min_effect = 5.0  # more log loss than any model can save here
    report = ab_report(games, labels)
    assert report.outcome == "keep_champion" and "cannot be better by min_effect 5" in report.reason


def test_a_log_without_a_challenger_says_so(games: Project, tmp_path: Path) -> None:
    rows = [multiclass_row(i, g.kickoff, g.home, np.full(3, 1 / 3), 1) for i, g in enumerate(GAMES.itertuples())]
    log_rows(games, rows)
    with pytest.raises(NotFoundError, match="challenger arm"):
        ab_report(games, _results(tmp_path / "results.csv"))


def test_regression_arms_on_labels_from_the_snapshot(tmp_path: Path) -> None:
    table = readings_table(n=300, seed=1)
    project = readings_project(tmp_path / "readings", table, git=True)
    ingest(project, "2024-03", "2024-04")
    project.config.serving.ab.decision.min_samples_per_arm = 50
    project.config.serving.ab.decision.resamples = 300
    rng = np.random.default_rng(3)
    arm = np.where(np.arange(len(table)) % 3 == 0, "challenger", "champion")
    good = table["later"].fillna(table["level"]) + rng.normal(0, 3, len(table))
    prediction = np.where(arm == "challenger", good, table["level"] + rng.normal(0, 12, len(table)))
    rows: list[dict[str, Any]] = [
        base_row(i, 4 if arm[i] == "challenger" else 3, arm=str(arm[i]))
        | {"model_name": "level-in-30", "input": regression_input(r), "score": float(prediction[i])}
        for i, r in enumerate(table.to_dict("records"))
    ]
    log_rows(project, rows, keyed_by_writer=True)
    report = ab_report(project)
    assert report.metric == "rmse" and report.labels.startswith("snapshot ")
    end = table["at"].max()
    mature = table["later"].notna() & (table["at"] + pd.Timedelta(minutes=30) <= end)
    for name in ("champion", "challenger"):
        mine = (arm == name) & mature.to_numpy()
        assert report.arms[name].labelled == int(mine.sum())
        rmse = float(np.sqrt(mean_squared_error(table["later"][mine], prediction[mine])))
        assert report.arms[name].metric == pytest.approx(rmse)
    assert report.interval is not None and report.interval[1] < 0
    assert report.outcome == "promote_challenger"


def test_cli_json_records_the_decision_and_promotes_nothing(tmp_path: Path) -> None:
    project = games_project(tmp_path / "games", GAMES)
    _serve_games(project, 0.3, 3.0)
    labels = _results(tmp_path / "results.csv")
    runner = CliRunner()
    args = ["--project", str(project.root), "ab", "report", "--labels", str(labels), "--json", "--apply"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    # the default rule needs 1000 labelled requests per arm: the test goes on, nothing is promoted
    assert data["outcome"] == "continue" and "of the 1000 needed" in data["reason"]
    assert data["promotion"] is None and data["method"].startswith("percentile bootstrap")
    assert set(data["arms"]) == {"champion", "challenger"} and data["arms"]["challenger"]["predictions"] == 120
    decisions = MonitoringStore.of(project).decisions()
    assert [(d["kind"], d["action"], d["acted"]) for d in decisions] == [("ab", "continue", True)]
    bad = runner.invoke(app, ["--project", str(project.root), "ab", "report", "--force"])
    assert bad.exit_code != 0 and "--force only goes with --apply" in bad.output


@pytest.mark.parametrize("name", ["binary", "multiclass", "regression"])
def test_the_bootstrap_metric_is_the_task_metric(name: str) -> None:
    """Each resample is scored as task_metrics scores the whole arm (ties in ROC AUC included)."""
    from noria.monitoring.ab import _resampled
    from noria.task_metrics import task_metrics
    from noria.tasks import BinaryTask, MulticlassTask, RegressionTask

    rng = np.random.default_rng(5)
    n = 400
    task: Any
    if name == "binary":
        task, y = BinaryTask(), (rng.random(n) < 0.3).astype(float)
        pred = np.round(np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1), 2)  # a 0.01 grid: ties
    elif name == "multiclass":
        task, y = MulticlassTask(classes=CLASSES), rng.integers(0, 3, n).astype(float)
        pred = rng.dirichlet([1.0, 1.0, 1.0], n)
    else:
        task, y = RegressionTask(), rng.normal(100, 20, n)
        pred = y + rng.normal(0, 5, n)
    picks = rng.integers(0, n, (7, n))
    got = _resampled(task, y, pred, np.vstack([np.arange(n), picks]))
    want = [task_metrics(task, y[p], pred[p])[task.primary_metric] for p in [np.arange(n), *picks]]
    assert got == pytest.approx(want, rel=1e-9)


RUNBOOK = Path(__file__).resolve().parents[3] / "docs" / "runbooks" / "ab-test.md"


def test_the_runbook_commands_parse_and_its_config_is_valid() -> None:
    """Every noria command of docs/runbooks/ab-test.md parses with the CLI's own parser (its
    options exist); its YAML is a valid serving section with the decision rule it describes."""
    import re
    import shlex

    import yaml
    from tests.unit.cli.test_help_examples import _parse

    from noria.serving.config import ServingConfig

    text = RUNBOOK.read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    commands = [line.split(" #", 1)[0].strip() for b in blocks for line in b.splitlines() if line.strip()]
    assert "noria ab report --apply --force" in commands
    parsed = {_parse(shlex.split(c)[1:]) for c in commands if c.startswith("noria ")}
    assert {"ab report", "models list", "rollback"} <= parsed
    (block,) = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    serving = ServingConfig.model_validate(yaml.safe_load(block)["serving"])
    assert serving.ab.decision.model_dump(include={"min_samples_per_arm", "min_effect", "max_days"}) == {
        "min_samples_per_arm": 1000,
        "min_effect": 0.005,
        "max_days": 28.0,
    }


def test_apply_force_promotes_the_challenger_with_the_ab_reason(tmp_path: Path) -> None:
    """--apply --force on promote_challenger: the registry's forced promotion, reason from the report
    (a real MLflow registry in SQLite; two registered versions of a small LightGBM model)."""
    from tests.unit.serving.serving_support import make_migrated_db, train_booster

    from noria.registry import collect_lineage, get_version, start_run
    from noria.registry.mlflow_client import get_client

    project = games_project(tmp_path / "games", GAMES, registry=make_migrated_db(None, tmp_path))
    booster = train_booster(rounds=5)
    for alias in ("champion", "challenger"):
        lineage = collect_lineage(
            project, data_snapshot="snap1", feature_service="main", feature_definition_hash="defhash"
        )
        with start_run(project, "train", lineage) as run:
            info = run.log_model(booster, "games-result")
        get_client(project).set_registered_model_alias("games-result", alias, str(info.version))
    assert get_version(project, "games-result@champion").version == 1
    project.config.serving.ab.decision.min_samples_per_arm = 50
    project.config.serving.ab.decision.resamples = 300
    _serve_games(project, 0.3, 3.0)  # the challenger arm is served by version 2
    report = ab_report(project, _results(tmp_path / "results.csv"), apply=True, force=True)
    assert report.outcome == "promote_challenger" and report.promotion is not None
    assert report.promotion["promoted"] and report.promotion["forced"]
    assert report.promotion["reason"] == f"forced: A/B test: {report.reason}"
    assert get_version(project, "games-result@champion").version == 2
    (decision,) = MonitoringStore.of(project).decisions()
    assert decision["acted"] is True and decision["promoted"] is True
