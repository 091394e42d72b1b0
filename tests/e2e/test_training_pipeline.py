"""End to end: ingest, features, the training pipeline, registry and gate.

On real data (flights): a small window keeps it fast: train on January 2013, hold out
February, no tuning trials. Then the same pipeline on two tiny synthetic projects (a
directory source, a features.yaml, a small module): a multi-class one whose label is a
function, and a regression one whose label is a column, each with a project baseline.
Real components throughout: DVC, Feast's registry, DuckDB, LightGBM, MLflow on SQLite.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

from noria.config import load_project
from noria.data.ingest import ingest
from noria.features import list_usage
from noria.pipelines import run_project_pipeline
from noria.registry import get_version, lineage_of
from noria.scaffold import init_project

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ENV = {
    "NORIA_TRAINING__TRIALS": "0",
    "NORIA_TRAINING__TRAIN__FROM": "2013-01",
    "NORIA_TRAINING__TRAIN__TO": "2013-01",
    "NORIA_TRAINING__TEST__FROM": "2013-02",
    "NORIA_TRAINING__TEST__TO": "2013-02",
    "NORIA_TRAINING__BASELINES": "[majority_rate]",
}


def test_training_pipeline_registers_a_gated_champion_with_lineage(tmp_path: Path) -> None:
    root = init_project(tmp_path / "flights")
    project = load_project(root, environ=ENV)
    snapshot = ingest(project, "2013-01", "2013-02").record

    first = run_project_pipeline(project, "training", progress=False)
    assert first.count("ran") == 10
    evaluation = first.load("evaluation")
    assert evaluation["metrics"]["roc_auc"] > 0.65  # a real signal on a month we did not train on
    assert evaluation["split"]["parts"]["test"]["rows"] > 20_000
    decision = first.load("gate")
    assert decision["promoted"] and decision["alias"] == "champion"

    champion = get_version(project, "flight-delay@champion")
    assert champion.version == decision["version"] == 1
    report = lineage_of(project, "flight-delay@champion")
    text = str(report.to_dict() if hasattr(report, "to_dict") else report)
    assert snapshot.id in text and first.run_id in text
    usage = list_usage(project, "flight-delay")
    assert usage and usage[0].service == "flight_delay"

    # `context`, `card_docs` and `champion_now` always run; the only change since is the gate's own
    # promotion of this candidate, so its decision is reused, keyed on (candidate, champion, settings)
    again = run_project_pipeline(project, "training", progress=False)
    assert again.count("cached") == 7 and again.count("ran") == 3
    assert again.load("gate") == decision
    warm = run_project_pipeline(project, "training", progress=False)
    assert warm.count("cached") == 7 and warm.count("ran") == 3
    assert warm.load("gate") == decision

    # The same holdout period named explicitly changes nothing.
    same = run_project_pipeline(project, "training", params={"test_from": "2013-02"}, progress=False)
    assert same.count("cached") == 7

    # The card quotes the project's pages: `noria init` leaves them to fill in, so it says so.
    card = (first.load("report") / "model_card.md").read_text(encoding="utf-8")
    assert "docs/risk.md is not filled in yet" in card and "TODO" not in card
    # Filling in the risk page re-renders the card: evaluate and what follows it run again, while
    # the training set, the split, the tuning and the model stay cached.
    (root / "docs" / "risk.md").write_text(RISK_PAGE, encoding="utf-8")
    edited = run_project_pipeline(project, "training", progress=False)
    cached = {name for name, result in edited.steps.items() if result.status == "cached"}
    assert cached == {"training_set", "split", "tune", "train"}
    assert edited.load("evaluation") == first.load("evaluation")  # the same numbers, a new card
    card = (edited.load("report") / "model_card.md").read_text(encoding="utf-8")
    risks = card.split("## Risks and mitigations", 1)[1]
    assert "| a delayed flight is not flagged | medium | low | the dispatcher's own check |" in risks
    assert "Agreed by Ana Lima (operations) on 2026-11-30" in risks
    assert "docs/risk.md is not filled in yet" not in card


RISK_PAGE = """\
# Model risk assessment

## Risks and mitigations

| risk | likelihood | impact | mitigation |
|---|---|---|---|
| a delayed flight is not flagged | medium | low | the dispatcher's own check |

## Sign-off

Agreed by Ana Lima (operations) on 2026-11-30.
"""


def test_impossible_split_fails_before_any_work(tmp_path: Path) -> None:
    from noria.errors import NoriaError

    root = init_project(tmp_path / "flights")
    project = load_project(root, environ=ENV)
    ingest(project, "2013-01", "2013-01")
    with pytest.raises(NoriaError, match="test"):
        run_project_pipeline(project, "training", params={"test_from": "2012-12", "test_to": "2012-12"}, progress=False)
    with pytest.raises(NoriaError, match="ingest the test months first"):
        run_project_pipeline(project, "training", progress=False)


# --- tiny multi-class and regression projects -------------------------------------------------

TINY_MODULE = textwrap.dedent(
    '''\
    """Feature, label and baseline functions of the tiny test projects."""

    import numpy as np
    import pandas as pd


    def when(columns):
        return columns["ts"]


    def team_history(tables):
        """Each team's mean outcome over its events so far, known one hour after each event."""
        events = tables["events"].sort_values("ts", kind="mergesort")
        mean = events.groupby("team")["outcome"].transform(lambda s: s.expanding().mean())
        return pd.DataFrame(
            {
                "team": events["team"].to_numpy(),
                "event_timestamp": pd.to_datetime(events["ts"], utc=True) + pd.Timedelta(hours=1),
                "team_mean_outcome": mean.to_numpy(),
            }
        )


    def result(tables, cut=1.0):
        """low / mid / high outcome, known an hour after the event."""
        events = tables["events"]
        y = events["outcome"].to_numpy(dtype=float)
        label = np.where(y < -cut, "low", np.where(y > cut, "high", "mid")).astype(object)
        known = pd.to_datetime(events["ts"], utc=True) + pd.Timedelta(hours=1)
        return pd.DataFrame({"id": events["id"].to_numpy(), "label": label, "label_time": known})


    def twice_x(frame):
        """Regression baseline: the outcome is about 2 x."""
        return 2.0 * frame["x"].to_numpy(dtype=float)


    def by_sign(frame):
        """Multi-class baseline: high when x > 0.5, low when x < -0.5."""
        x = frame["x"].to_numpy(dtype=float)[:, None]
        return np.where(x > 0.5, [0.1, 0.3, 0.6], np.where(x < -0.5, [0.6, 0.3, 0.1], [0.25, 0.5, 0.25]))
    '''
)
TINY_FEATURES = textwrap.dedent(
    """\
    request:
      table: events
      columns: [id, ts, team, x]
      timestamp: tiny:when
      ids: [id]
    entities:
      team: {}
    sources:
      team_history:
        function: tiny:team_history
        tables: {events: [ts, team, outcome]}
    feature_views:
      team_form:
        source: team_history
        entities: [team]
        ttl: 60d
        features:
          team_mean_outcome: {}
    request_views:
      event:
        passthrough: [x, team]
    services:
      tiny:
        features: [event, team_form]
    """
)
TINY_MODELS = {
    "multiclass": (
        """\
        model:
          name: tiny-mc
          task: multiclass
          target:
            function: tiny:result
            tables: {events: [id, ts, outcome]}
            classes: [low, mid, high]
            mature_after: 1h
        """,
        "[class_prior, logistic_regression, {name: by_sign, function: 'tiny:by_sign'}]",
    ),
    "regression": (
        """\
        model:
          name: tiny-reg
          task: regression
          target: {column: outcome, name: outcome, unit: points}
        """,
        "[mean, linear_regression, {name: twice_x, function: 'tiny:twice_x'}]",
    ),
}
TINY_CONFIG = """\
project: tiny
data:
  source: {{kind: directory, path: raw}}
  tables:
    events:
      file: events.csv
      primary_key: [id]
      partition: {{timestamp: ts}}
      columns:
        id: {{type: int}}
        ts: {{type: timestamp}}
        team: {{type: str}}
        x: {{type: float}}
        outcome: {{type: float}}
{model}
training:
  train: {{from: 2020-01, to: 2020-04}}
  test: {{from: 2020-05, to: 2020-06}}
  trials: 2
  max_boost_rounds: 60
  early_stopping_rounds: 10
  profile_sample_rows: 100  # the reference profile summarises a sample of the training rows
  slices: [team]
  min_slice_rows: 20
  baselines: {baselines}
tracking: {{uri: "sqlite:///.noria/mlflow.db"}}
"""


def tiny_events(rows: int = 720, seed: int = 0) -> str:
    """Events over January-June 2020: outcome = 2 x + a team effect + noise."""
    rng = np.random.default_rng(seed)
    hours = np.sort(rng.choice(182 * 24, size=rows, replace=False)).astype("timedelta64[h]")
    ts = np.datetime64("2020-01-01T00:00") + hours
    team = rng.choice(["red", "blue", "green"], size=rows)
    x = rng.normal(size=rows)
    outcome = 2.0 * x + np.select([team == "red", team == "blue"], [0.8, -0.5], 0.0) + rng.normal(scale=0.7, size=rows)
    lines = ["id,ts,team,x,outcome"]
    lines += [
        f"{i + 1},{t}:00Z,{g},{a:.4f},{o:.4f}" for i, (t, g, a, o) in enumerate(zip(ts, team, x, outcome, strict=True))
    ]
    return "\n".join(lines) + "\n"


def tiny_project(root: Path, task: str) -> Path:
    model, baselines = TINY_MODELS[task]
    (root / "raw").mkdir(parents=True)
    (root / "noria.yaml").write_text(TINY_CONFIG.format(model=textwrap.dedent(model).rstrip(), baselines=baselines))
    (root / "features.yaml").write_text(TINY_FEATURES)
    (root / "tiny.py").write_text(TINY_MODULE)
    (root / "raw" / "events.csv").write_text(tiny_events())
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    return root


@pytest.mark.parametrize(
    ("task", "primary", "objective"),
    [("multiclass", "log_loss", "objective=multiclass num_class:3"), ("regression", "rmse", "objective=regression")],
)
def test_training_pipeline_for_a_multiclass_and_a_regression_project(
    tmp_path: Path, task: str, primary: str, objective: str
) -> None:
    from noria.registry import load_model
    from noria.registry.mlflow_client import get_client

    project = load_project(tiny_project(tmp_path / task, task), environ={})
    ingest(project, "2020-01", "2020-06")
    first = run_project_pipeline(project, "training", progress=False)
    assert first.count("ran") == 10
    card = (first.load("report") / "model_card.md").read_text(encoding="utf-8")
    assert "docs/goals.md is not written yet: the default below applies." in card  # no docs folder here
    evaluation = first.load("evaluation")
    assert evaluation["task"] == task and evaluation["primary_metric"] == primary
    flat = evaluation["flat"]
    name = project.config.model.name
    if task == "multiclass":
        assert evaluation["classes"] == ["low", "mid", "high"] and evaluation["confusion"]["classes"] == [
            "low",
            "mid",
            "high",
        ]
        # the classes are learnable: far better than the training class shares
        assert flat["test_log_loss"] < flat["test_baseline_class_prior_log_loss"] - 0.3
        assert {"test_accuracy", "test_baseline_by_sign_log_loss", "test_slice_team_red_log_loss"} <= set(flat)
    else:
        assert evaluation["unit"] == "points" and len(evaluation["residuals"]["by_label_decile"]) == 10
        assert flat["test_rmse"] < flat["test_baseline_mean_rmse"] / 1.5
        assert {"test_r2", "test_baseline_twice_x_rmse", "test_slice_team_red_rmse"} <= set(flat)
    assert "test_roc_auc" not in flat

    report = first.load("report")
    scores = np.asarray(json.loads((report / "test_scores.json").read_text()))
    rows = evaluation["split"]["parts"]["test"]["rows"]
    assert scores.shape == ((rows, 3) if task == "multiclass" else (rows,))
    profile = json.loads((report / "reference_profile.json").read_text())
    trained_on = evaluation["split"]["parts"]["train"]["rows"]
    assert profile["metadata"]["profiled_rows"] == "100" and profile["metadata"]["training_rows"] == str(trained_on)
    if task == "multiclass":  # the predicted class's probability, as the service logs `score`
        assert profile["score"]["min"] >= 1 / 3 and profile["score"]["max"] <= 1.0
    card = (report / "model_card.md").read_text()
    assert ("## Confusion matrix" in card) == (task == "multiclass") and ("## Residuals" in card) == (
        task == "regression"
    )

    decision = first.load("gate")
    assert decision["promoted"] and f"no champion yet; {primary}" in decision["reason"]
    champion = load_model(project, f"{name}@champion")
    assert objective in champion.booster.model_to_string()  # what serving checks against model.task
    version = get_client(project).get_model_version(name, "1")
    assert version.tags["noria.task"] == task
    run = get_client(project).get_run(version.run_id)
    assert run.data.metrics[f"test_{primary}"] == pytest.approx(flat[f"test_{primary}"])

    # A retrain without tuning: a new version, judged against the champion re-evaluated on the same holdout.
    second = run_project_pipeline(project, "training", params={"trials": 0}, progress=False)
    decision = second.load("gate")
    assert decision["version"] == 2 and "vs champion version 1" in decision["reason"]
    checks = {c["name"]: c for c in decision["checks"]}
    assert (
        f"{primary} " in checks["beats_champion"]["detail"] and "lower is better" in checks["beats_champion"]["detail"]
    )
    assert checks["same_holdout"]["passed"] and checks["prediction_range"]["passed"]

    # Nothing moved: the gate's decision is reused. Moving @champion by hand makes it judge again.
    from noria.registry import promote

    warm = run_project_pipeline(project, "training", params={"trials": 0}, progress=False)
    assert warm.steps["gate"].status == "cached" and warm.load("gate") == decision
    other = 1 if decision["promoted"] else 2
    promote(project, name, other, force=True, reason="test: move the champion by hand")
    moved = run_project_pipeline(project, "training", params={"trials": 0}, progress=False)
    assert moved.steps["gate"].status == "ran"
    judged = moved.load("gate")
    if other == 2:  # the candidate itself was made champion by hand
        assert "already @champion" in judged["reason"]
    else:  # version 1 is champion again: version 2 is judged against it anew
        assert judged["version"] == 2 and "vs champion version 1" in judged["reason"]
