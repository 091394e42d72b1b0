"""Promotion, challengers and rollback on MLflow registry aliases, safe against races.

``@champion`` is what serving loads. A version becomes champion only through
:func:`promote_if_better` (the gate), :func:`promote` with ``force`` and a reason, or
:func:`rollback`. All three run under a per-model file lock, so the read-compare-write
("does it beat the *current* champion?") cannot interleave with another promotion; the
alias is re-read before and after it is moved (compare-and-set), and the alias itself is
single-valued, so there is never more than one champion and never none once there was one.

The champion history (see :mod:`noria.registry.records`) is the stack rollback walks back;
each decision is also tagged on the version and stored as JSON with its run, and the version
that becomes champion gets its release notes (:mod:`noria.registry.notes`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from noria.errors import ExternalToolError, NoriaError, NotFoundError, ValidationError
from noria.registry._names import CHALLENGER, CHAMPION, ModelRef, parse_version, validate_model_name
from noria.registry.config import GateConfig, registry_config
from noria.registry.gate import Check, Evaluation, judge
from noria.registry.mlflow_client import get_client, mlflow_errors
from noria.registry.models import ABANDONED_TAG, ModelVersionInfo, get_registered, resolve
from noria.registry.notes import write_note
from noria.registry.records import (
    champion_history,
    current_actor,
    now,
    push_history,
    record_evaluation,
    recorded_evaluation,
    registry_lock,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from noria.config import Project
    from noria.tasks import Task

_CAS_ATTEMPTS = 3


class NoPreviousChampionError(NotFoundError):
    """A rollback was asked for but there is no earlier champion."""


@dataclass(frozen=True)
class GateDecision:
    name: str
    version: int
    promoted: bool
    alias: str | None  # where the version ended: champion, challenger (or None if unchanged)
    reason: str
    previous_champion: int | None
    champion: int | None  # the champion after the decision
    checks: tuple[Check, ...] = ()
    forced: bool = False
    by: str = ""
    at: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["checks"] = [asdict(c) for c in self.checks]
        return out


@dataclass(frozen=True)
class RollbackResult:
    name: str
    from_version: int
    to_version: int
    reason: str
    by: str
    at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _champion(client: MlflowClient, name: str) -> int | None:
    with mlflow_errors(f"read the aliases of {name!r}"):
        aliases = client.get_registered_model(name).aliases or {}
    return int(aliases[CHAMPION]) if CHAMPION in aliases else None


def _move_champion(client: MlflowClient, name: str, version: int, expected: int | None) -> None:
    """Compare-and-set: move @champion from ``expected`` to ``version``, and check it stuck."""
    if _champion(client, name) != expected:
        raise _ChampionMovedError()
    with mlflow_errors(f"set {name}@champion"):
        client.set_registered_model_alias(name, CHAMPION, str(version))
        aliases = client.get_registered_model(name).aliases or {}
        if aliases.get(CHALLENGER) is not None and int(aliases[CHALLENGER]) == version:
            client.delete_registered_model_alias(name, CHALLENGER)
    if _champion(client, name) != version:
        raise ExternalToolError(
            f"@champion of {name!r} was moved by someone else while version {version} was being promoted",
            fix="promote from one place at a time (docs/registry.md); check `noria models list`, then retry",
        )


class _ChampionMovedError(Exception):
    """@champion changed between the comparison and the write (a promotion elsewhere)."""


def _record_decision(
    client: MlflowClient,
    info: ModelVersionInfo,
    decision: GateDecision,
    *,
    evaluation: Evaluation | None = None,
    via: str = "",
) -> None:
    """Tag the decision on the version, store it as JSON with its run, and write a new champion's notes."""
    tags = {
        "noria.gate.decision": "forced" if decision.forced else (decision.alias or "unchanged"),
        "noria.gate.reason": decision.reason[:5000],
        "noria.gate.compared_to": "" if decision.previous_champion is None else str(decision.previous_champion),
        "noria.gate.by": decision.by,
        "noria.gate.at": decision.at,
    }
    with mlflow_errors(f"record the gate decision for {info.name}/{info.version}"):
        for key, value in tags.items():
            client.set_model_version_tag(info.name, str(info.version), key, value)
        if info.run_id:
            stamp = decision.at.replace(":", "").replace("-", "") + "-" + uuid.uuid4().hex[:6]
            client.log_dict(info.run_id, decision.to_dict(), f"noria/gate/{info.name}-v{info.version}-{stamp}.json")
    if decision.promoted:  # every promotion (gate, forced, console, A/B) passes here
        write_note(
            client,
            info,
            action="forced" if decision.forced else "gate",
            by=decision.by,
            at=decision.at,
            previous=decision.previous_champion,
            reason=decision.reason.removeprefix("forced: ") if decision.forced else decision.reason,
            checks=decision.checks,
            evaluation=evaluation,
            via=via,
        )


# --- the three ways @champion moves ------------------------------------------------------------

ChampionEvaluator = Callable[[ModelVersionInfo], Evaluation]


def promote_if_better(
    project: Project,
    name: str,
    version: int | str,
    candidate: Evaluation | None = None,
    champion: ChampionEvaluator | None = None,
    gate: GateConfig | None = None,
    *,
    note: str = "",
    client: MlflowClient | None = None,
    task: Task | None = None,
) -> GateDecision:
    """Make ``version`` the champion if it passes the gate, else tag it ``@challenger``.

    ``candidate`` is its holdout evaluation (recorded with the version; None uses the one
    recorded earlier). ``champion`` evaluates the current champion on the same holdout; it is
    called under the lock, with whichever version is champion at that moment. Without it the
    champion's recorded evaluation is used. The gate's unset settings (primary metric, its
    direction, the prediction range) are ``task``'s, by default the project's (``model.task``).
    """
    from noria.tasks import task_of

    number = parse_version(version, validate_model_name(name))
    client = client or get_client(project)
    info = resolve(client, ModelRef(name, version=number))
    if ABANDONED_TAG in info.tags:  # a killed attempt's version
        raise ValidationError(
            f"model {name} version {number} was abandoned: {info.tags[ABANDONED_TAG]}",
            fix=f"promote the version the re-run registered, or `noria promote {name} {number} --force --reason ...`",
        )
    task = task or task_of(project)
    gate = (gate or registry_config(project).gate).for_task(task)
    if candidate is not None:
        record_evaluation(project, name, number, candidate, client=client)
    else:
        candidate = recorded_evaluation(info)
        if candidate is None:
            raise ValidationError(
                f"model {name} version {number} has no recorded holdout evaluation, so the gate cannot judge it",
                fix=f"evaluate it (training records one), or `noria promote {name} {number} --force --reason ...`",
            )
    with registry_lock(project, name):
        for _ in range(_CAS_ATTEMPTS):
            current = _champion(client, name)
            if current == number:
                return GateDecision(
                    name, number, False, CHAMPION, f"version {number} is already @champion", current, current
                )
            decision = _decide(client, info, candidate, current, champion, gate, task)
            try:
                if decision.promoted:
                    history = champion_history(project, name, client=client)
                    _move_champion(client, name, number, current)
                    history.stack.append(number)
                    event = {
                        "action": "promote",
                        "version": number,
                        "from": current,
                        "by": decision.by,
                        "at": decision.at,
                        "reason": note or decision.reason,
                    }
                    push_history(client, name, history, event)
                elif _champion(client, name) != current:
                    raise _ChampionMovedError()
                else:
                    with mlflow_errors(f"set {name}@challenger"):
                        client.set_registered_model_alias(name, CHALLENGER, str(number))
            except _ChampionMovedError:
                continue
            _record_decision(client, info, decision, evaluation=candidate, via=note)
            return decision
    raise ExternalToolError(
        f"@champion of {name!r} kept moving while version {number} was being judged",
        fix="another machine promotes the same model: promote from one place (docs/registry.md), retry",
    )


def _decide(
    client: MlflowClient,
    info: ModelVersionInfo,
    candidate: Evaluation,
    current: int | None,
    evaluate: ChampionEvaluator | None,
    gate: GateConfig,
    task: Task,
) -> GateDecision:
    by, at = current_actor(), now()
    champion_eval = None
    if current is not None:
        champion_info = resolve(client, ModelRef(info.name, version=current))
        champion_eval = evaluate(champion_info) if evaluate is not None else recorded_evaluation(champion_info)
        if champion_eval is None:
            reason = (
                f"champion version {current} has no recorded holdout evaluation to compare with; "
                "pass an evaluator for the champion or promote with --force and a reason"
            )
            return GateDecision(info.name, info.version, False, CHALLENGER, reason, current, current, by=by, at=at)
    verdict = judge(candidate, champion_eval, gate, task)
    where = "" if current is None else f"vs champion version {current}: "
    return GateDecision(
        name=info.name,
        version=info.version,
        promoted=verdict.passed,
        alias=CHAMPION if verdict.passed else CHALLENGER,
        reason=where + verdict.reason,
        previous_champion=current,
        champion=info.version if verdict.passed else current,
        checks=verdict.checks,
        by=by,
        at=at,
    )


def promote(
    project: Project,
    name: str,
    version: int | str,
    *,
    force: bool = False,
    reason: str = "",
    client: MlflowClient | None = None,
) -> GateDecision:
    """Manual promotion: through the gate on recorded evaluations, or ``force``d with a reason."""
    number = parse_version(version, validate_model_name(name))
    client = client or get_client(project)
    if not force:
        return promote_if_better(project, name, number, note=reason, client=client)
    if not reason.strip():
        raise ValidationError(
            "a forced promotion needs a reason", fix=f"noria promote {name} {number} --force --reason 'why'"
        )
    info = resolve(client, ModelRef(validate_model_name(name), version=number))
    with registry_lock(project, name):
        current = _champion(client, name)
        if current == number:
            return GateDecision(
                name, number, False, CHAMPION, f"version {number} is already @champion", current, current
            )
        history = champion_history(project, name, client=client)
        decision = GateDecision(
            name,
            number,
            True,
            CHAMPION,
            f"forced: {reason.strip()}",
            current,
            number,
            forced=True,
            by=current_actor(),
            at=now(),
        )
        try:
            _move_champion(client, name, number, current)
        except _ChampionMovedError:
            raise ExternalToolError(
                f"@champion of {name!r} moved during the forced promotion",
                fix="check `noria models list` and retry",
            ) from None
        history.stack.append(number)
        event = {
            "action": "force",
            "version": number,
            "from": current,
            "by": decision.by,
            "at": decision.at,
            "reason": reason.strip(),
        }
        push_history(client, name, history, event)
        _record_decision(client, info, decision, evaluation=recorded_evaluation(info))
    return decision


def rollback(project: Project, name: str, reason: str, *, client: MlflowClient | None = None) -> RollbackResult:
    """Move @champion back to the champion before the current one, recording who and why."""
    validate_model_name(name)
    if not reason.strip():
        raise ValidationError("a rollback needs a reason", fix=f"noria rollback {name} --reason 'why'")
    client = client or get_client(project)
    get_registered(client, name)
    with registry_lock(project, name):
        history = champion_history(project, name, client=client)
        current = _champion(client, name)
        if current is None:
            raise NoPreviousChampionError(
                f"model {name!r} has no @champion to roll back", fix="promote a version first"
            )
        if not history.stack or history.stack[-1] != current:
            raise NoriaError(
                f"@champion of {name!r} (version {current}) was set outside Noria, so its predecessor is unknown",
                fix=f"promote the version you want: noria promote {name} VERSION --force --reason 'why'",
            )
        if len(history.stack) < 2:
            raise NoPreviousChampionError(
                f"model {name!r} has had only one champion (version {current}); there is nothing to roll back to",
                fix=f"promote another version instead: noria promote {name} VERSION",
            )
        target = history.stack[-2]
        target_info = resolve(client, ModelRef(name, version=target))  # still registered?
        try:
            _move_champion(client, name, target, current)
        except _ChampionMovedError:
            raise ExternalToolError(f"@champion of {name!r} moved during the rollback", fix="retry") from None
        history.stack.pop()
        result = RollbackResult(name, current, target, reason.strip(), current_actor(), now())
        event = {
            "action": "rollback",
            "version": target,
            "from": current,
            "by": result.by,
            "at": result.at,
            "reason": result.reason,
        }
        push_history(client, name, history, event)
        with mlflow_errors(f"tag {name}/{current} as rolled back"):
            client.set_model_version_tag(
                name, str(current), "noria.rolled_back", f"{result.at} by {result.by}: {result.reason}"
            )
        write_note(
            client,
            target_info,
            action="rollback",
            by=result.by,
            at=result.at,
            previous=current,
            reason=result.reason,
            evaluation=recorded_evaluation(target_info),
        )
    return result
