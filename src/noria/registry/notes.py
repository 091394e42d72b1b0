"""Release notes of a model version: what became ``@champion``, from what, why, by whom, when.

Every change of ``@champion`` made through Noria (the gate, ``noria promote`` with or without
``--force``, the console, ``noria ab report --apply``, ``noria rollback``) writes a short
Markdown note on the version that became champion: the model and version, its training run and
pipeline run, the data snapshot and feature service it was trained on, the code version (git
commit, Noria version), the gate's decision with its numbers (or the forced / rollback reason),
the holdout metrics, the previous champion, who moved it and when.

The note is the version's tag ``noria.release_notes`` and its MLflow description (what the
MLflow UI shows on the version's page). A description a person wrote is kept above the note;
only the part Noria wrote earlier is replaced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from noria.registry.lineage import Lineage
from noria.registry.mlflow_client import error_code, mlflow_errors
from noria.registry.models import RELEASE_NOTES_TAG

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from noria.registry.gate import Check, Evaluation
    from noria.registry.models import ModelVersionInfo

MAX_NOTE_CHARS = 4000
MAX_DESCRIPTION_CHARS = 5000  # what MLflow's stores keep of a model version's description
_UNKNOWN = "(not recorded)"


def compose_note(
    info: ModelVersionInfo,
    *,
    action: str,
    by: str,
    at: str,
    previous: int | None,
    reason: str,
    run_tags: Mapping[str, str] | None,
    checks: Sequence[Check] = (),
    evaluation: Evaluation | None = None,
    via: str = "",
) -> str:
    """The note, as Markdown. ``action`` is ``gate``, ``forced`` or ``rollback``."""
    head = {
        "gate": f"Promoted {info.name} version {info.version} to @champion through the gate",
        "forced": f"Promoted {info.name} version {info.version} to @champion, forced (gate skipped)",
        "rollback": f"Rolled {info.name} @champion back to version {info.version}",
    }[action]
    lines = [f"{head}, by {by or 'unknown'} at {at}" + (f" ({via})" if via and via != reason else "") + "."]
    if action == "gate":
        lines.append(f"- Gate decision: passed: {reason}")
        if checks:
            lines.append("- Checks: " + "; ".join(f"{c.name} {'ok' if c.passed else 'FAILED'}" for c in checks))
    else:
        lines.append(f"- Reason: {reason or _UNKNOWN}")
    if evaluation is not None and evaluation.metrics:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(evaluation.metrics.items()))
        lines.append(f"- Holdout: {shown}" + (f" on {evaluation.holdout_id}" if evaluation.holdout_id else ""))
    lines.append("- Previous champion: " + ("none (first champion)" if previous is None else f"version {previous}"))
    if run_tags is None:
        lines.append(f"- Run: {info.run_id or _UNKNOWN} (not readable: its lineage is unknown)")
    else:
        lin = Lineage.from_tags(dict(run_tags))
        pipeline = f" (pipeline run {lin.pipeline_run_id})" if lin.pipeline_run_id else ""
        lines.append(f"- Run: {info.run_id or _UNKNOWN}{pipeline}")
        features = lin.feature_service or _UNKNOWN
        if lin.feature_definition_hash:
            features += f" (definition {lin.feature_definition_hash})"
        lines.append(f"- Data snapshot: {lin.data_snapshot or _UNKNOWN}; features: {features}")
        dirty = "" if lin.git_dirty is None else (" (uncommitted changes)" if lin.git_dirty else " (clean)")
        image = f"; image {lin.image_version}" if lin.image_version else ""
        lines.append(f"- Code: git {lin.git_commit or _UNKNOWN}{dirty}; noria {lin.noria_version}{image}")
    text = "\n".join(lines) + "\n"
    if len(text) > MAX_NOTE_CHARS:  # a long reason: cut the first bullet, keep the lineage
        over = len(text) - MAX_NOTE_CHARS + 20
        first, rest = lines[1], lines[2:]
        text = "\n".join([lines[0], first[: max(40, len(first) - over)] + " [...]", *rest]) + "\n"
    return text


def _run_tags(client: MlflowClient, run_id: str | None) -> dict[str, str] | None:
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None
    with mlflow_errors(f"read run {run_id}"):
        try:
            return dict(client.get_run(run_id).data.tags)
        except MlflowException as exc:
            if error_code(exc) != "RESOURCE_DOES_NOT_EXIST":
                raise
            return None  # the run was deleted: the note says its lineage is unknown


def write_note(
    client: MlflowClient,
    info: ModelVersionInfo,
    *,
    action: str,
    by: str,
    at: str,
    previous: int | None,
    reason: str,
    checks: Sequence[Check] = (),
    evaluation: Evaluation | None = None,
    via: str = "",
) -> str:
    """Compose the note of ``info`` becoming champion and store it (tag + description); returns it."""
    note = compose_note(
        info,
        action=action,
        by=by,
        at=at,
        previous=previous,
        reason=reason,
        run_tags=_run_tags(client, info.run_id),
        checks=checks,
        evaluation=evaluation,
        via=via,
    )
    with mlflow_errors(f"write the release notes of {info.name}/{info.version}"):
        current = client.get_model_version(info.name, str(info.version))
        description = current.description or ""
        earlier = (current.tags or {}).get(RELEASE_NOTES_TAG, "")
        # Keep what a person wrote: drop only the note Noria wrote last time.
        own = description[: -len(earlier)] if earlier and description.endswith(earlier) else description
        own = own.rstrip()
        client.set_model_version_tag(info.name, str(info.version), RELEASE_NOTES_TAG, note)
        described = (own + "\n\n" if own else "") + note
        if len(described) <= MAX_DESCRIPTION_CHARS:  # else a person's long description stays as it is
            client.update_model_version(info.name, str(info.version), description=described)
    return note
