"""The training pipeline's first steps and what later steps read from their outputs.

``context`` resolves the data snapshot and freezes the settings the steps below depend on;
``card_docs`` reads the sections of the project's pages the model card quotes; ``training_set``
builds the point-in-time correct rows. ``_settings``, ``_columns``, ``_windows``, ``_task`` and
``_rows`` turn ``context`` and ``training_set_info`` back into objects for the later steps
(:mod:`noria.training.pipeline`, which composes the pipeline, and :mod:`noria.training.study`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from noria.pipelines import current_project, step


@step(cache=False)
def context(
    snapshot: str = "latest",
    train_from: str = "",
    train_to: str = "",
    test_from: str = "",
    test_to: str = "",
    trials: int = -1,
) -> dict[str, Any]:
    """Resolve the snapshot and freeze the settings that the steps below depend on.

    The periods default to ``training.train`` / ``training.test`` in noria.yaml; retraining
    passes newer ones (``--param train_from=2013-02 ...``). ``trials`` (-1: ``training.trials``)
    overrides the number of Optuna trials, e.g. for a scheduled retrain.
    """
    from noria.data.snapshots import get_record
    from noria.features import load_definitions
    from noria.training.config import TrainingSettings
    from noria.windows import Windows

    project = current_project()
    cfg = project.config
    record = get_record(project, snapshot)
    defs = load_definitions(project)
    target = cfg.model.require_target()
    cfg.training.periods()  # both periods set, or a clear error naming the keys to add
    training = cfg.training.model_dump(mode="json", by_alias=True)
    for key, value in (("train", (train_from, train_to)), ("test", (test_from, test_to))):
        training[key] = {"from": value[0] or training[key]["from"], "to": value[1] or training[key]["to"]}
    if trials >= 0:
        training["trials"] = trials
    settings = TrainingSettings.model_validate(training)  # an impossible split fails here, before any work
    windows = Windows.of(project)
    train, test = settings.periods()
    for name, label in (("train_from", train.start), ("train_to", train.end), ("test_from", test.start)):
        windows.check(label, name)
    windows.check(test.end, "test_to")
    last = record.months[-1] if record.months else ""
    span = windows.span(test.start, test.end)
    if last and span is not None and f"{span[0]:%Y-%m}" > last:
        from noria.errors import DataError

        raise DataError(
            f"the test period starts {test.start} but snapshot {record.short_id} stops at {last}",
            fix="ingest the test months first (`noria data ingest`) or choose an earlier test period",
        )
    return {
        "snapshot_id": record.id,
        "model_name": cfg.model.name,
        "task": cfg.model.task,
        "target": target.model_dump(mode="json") | {"module": _module_digest(project, target.function)},
        "windows": cfg.windows.model_dump(mode="json"),
        "training": training,
        "gate": cfg.registry.gate.model_dump(mode="json"),
        "decision_threshold": cfg.serving.decision_threshold,
        "definition_hash": defs.definition_hash,
    }


def _module_digest(project: Any, ref: str | None) -> str | None:
    """sha256 of the module a function reference names (so editing a label function reruns the steps)."""
    if ref is None:
        return None
    import hashlib

    from noria.project_code import module_file

    path = module_file(project.root, ref.partition(":")[0])
    return hashlib.sha256(path.read_bytes()).hexdigest() if path is not None else None


@step(cache=False)
def card_docs() -> dict[str, Any]:
    """The sections of the project's pages the model card quotes, with their sign-offs.

    Intended use (docs/goals.md), users and decisions (docs/explanations.md), risks and
    mitigations (docs/risk.md): :func:`noria.training.card_docs.read_card_docs`. Only those
    sections and the pages' sign-off lines are in the output, so an edit elsewhere in the
    pages leaves ``evaluate`` cached.
    """
    from noria.training.card_docs import read_card_docs

    return read_card_docs(current_project().root)


@step(outputs=("training_set", "training_set_info"))
def training_set(context: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """Point-in-time correct rows for the train and test periods, from the feature store.

    The output is the training set as the build wrote it (a Parquet file, or a folder of them),
    not a frame: the split step reads only the columns it needs from it.
    """
    from noria.features import build_training_set

    period = context["training"]
    built = build_training_set(
        current_project(), period["train"]["from"], period["test"]["to"], snapshot_id=context["snapshot_id"]
    )
    info = built.record.to_dict()
    del built  # the build's frame, if it kept one: the file is what the steps below read
    # What varies from run to run without the rows changing (wall-clock timings, when, whether
    # the sources were reused) stays out: an identical training set leaves the steps below cached.
    for volatile in ("timings", "created_at", "sources_reused"):
        info.pop(volatile, None)
    return Path(info["path"]), info


def _settings(context: dict[str, Any]) -> Any:
    from noria.training.config import TrainingSettings

    return TrainingSettings.model_validate(context["training"])


def _columns(info: dict[str, Any]) -> tuple[list[str], list[str]]:
    features = list(info["features"])
    categorical = [f for f in features if info["feature_types"].get(f) == "str"]
    return features, categorical


def _windows(context: dict[str, Any]) -> Any:
    from noria.windows import Windows, WindowsConfig

    config = WindowsConfig.model_validate(context["windows"])
    # A window function is the project's code: found in the project folder (others need no folder).
    return Windows(config, root=current_project().root if config.unit == "function" else None)


def _task(context: dict[str, Any]) -> Any:
    from noria.tasks import make_task

    target = context["target"]
    return make_task(
        context["task"], classes=target.get("classes"), name=target.get("name"), unit=target.get("unit", "")
    )


def _rows(train_rows: Path, context: dict[str, Any]) -> Any:
    from noria.training.rows import TrainRows

    return TrainRows.open(train_rows, _task(context))


__all__ = ["card_docs", "context", "training_set"]
