"""Section 2, traceability and reproducibility: lineage (statements 22-26).

Lineage is read from the registry: the champion's training run (else the newest version's) and
the tags Noria's training records.
"""

from __future__ import annotations

from typing import Any

from noria.maturity import _evidence as ev
from noria.maturity._context import Context
from noria.maturity._model import Finding, Status
from noria.maturity._registry import check
from noria.maturity.checks_infrastructure import iac_files
from noria.registry.lineage import PACKAGES_ARTIFACT

TRAIN = "train a model through Noria (noria pipeline run training), which records it with the run"


def _lineage(ctx: Context, what: str, ready: bool, why_not: str) -> tuple[Any, Finding | None]:
    """The champion's lineage, or the finding to return when there is none to read."""
    view = ctx.records.registry
    if view.lineage is not None:
        return view.lineage, None
    if view.exists and view.versions:
        return None, Finding(
            Status.NOT_MET,
            (ev.record(f"registry: {view.model}", f"the lineage cannot be read: {view.lineage_error}"),),
            "register versions through Noria's training, which records the run",
        )
    evidence = (ev.record(f"registry: {view.model}", view.error or "no model version yet"),)
    if not ready:
        return None, Finding(Status.NOT_MET, evidence, why_not)
    return None, Finding(Status.PARTIAL, evidence, f"no model run to look up {what} for yet: {TRAIN}")


@check(22, "For any model run or deployment, one can look up unambiguously its git commit.")
def lineage_commit(ctx: Context) -> Finding:
    lineage, early = _lineage(ctx, "the commit", ctx.in_git, "put the project in git: runs record the commit they ran")
    if early is not None:
        return early
    lin = lineage.lineage
    where = f"registry: {ctx.records.registry.subject}, run {lineage.run_id[:12]}"
    if not lin.git_commit:
        return Finding(Status.NOT_MET, (ev.record(where, "no commit recorded"),), "train from a git repository")
    exists = ctx.git("cat-file", "-e", f"{lin.git_commit}^{{commit}}") is not None
    evidence = (ev.record(where, f"commit {lin.git_commit[:12]}" + (" (in this repository)" if exists else "")),)
    if lin.git_dirty:
        return Finding(
            Status.PARTIAL, evidence, "the run had uncommitted changes: commit before training, then retrain"
        )
    if not exists:
        return Finding(Status.PARTIAL, evidence, f"push or fetch commit {lin.git_commit[:12]}: it is not in this clone")
    return Finding(Status.MET, evidence)


@check(23, "For any model run or deployment, one can look up unambiguously the training and serving infrastructure.")
def lineage_infrastructure(ctx: Context) -> Finding:
    lineage, early = _lineage(ctx, "the infrastructure", True, "")
    iac = iac_files(ctx)
    tracked = bool(iac) and all(ctx.tracked(p) for p in iac)
    if early is not None:
        if not tracked:
            return Finding(Status.NOT_MET, early.evidence, "keep the infrastructure as code in git (statements 9-10)")
        return early
    lin = lineage.lineage
    where = f"registry: {ctx.records.registry.subject}, run {lineage.run_id[:12]}"
    evidence = [ev.record(where, f"profile {lin.profile}, tracking backend {lin.tracking_backend}")]
    if not lin.profile or not lin.tracking_backend:
        return Finding(Status.NOT_MET, tuple(evidence), f"retrain: {TRAIN}")
    if not tracked:
        return Finding(
            Status.PARTIAL, tuple(evidence), "keep the serving infrastructure as code in git, so the commit pins it"
        )
    evidence.append(ev.git("git ls-files", f"{len(iac)} IaC files pinned by the recorded commit"))
    return Finding(Status.MET, tuple(evidence))


@check(24, "For any model run or deployment, one can look up unambiguously the training and serving environment.")
def lineage_environment(ctx: Context) -> Finding:
    lineage, early = _lineage(ctx, "the environment", True, "")
    if early is not None:
        return early
    lin = lineage.lineage
    where = f"registry: {ctx.records.registry.subject}, run {lineage.run_id[:12]}"
    detail = f"python {lin.python}, {lin.platform}, noria {lin.noria_version}"
    recorded = []
    if lin.uv_lock_sha256:
        recorded.append(f"uv.lock sha256 {lin.uv_lock_sha256[:12]}")
    if lin.packages_sha256:
        recorded.append(f"installed packages sha256 {lin.packages_sha256[:12]} (listed in {PACKAGES_ARTIFACT})")
    if not recorded:
        return Finding(
            Status.PARTIAL,
            (ev.record(where, detail + ", no lock file hash, no list of the installed packages"),),
            "retrain with this Noria: runs record the installed packages (and the uv.lock hash, if there is one)",
        )
    return Finding(Status.MET, (ev.record(where, f"{detail}, {'; '.join(recorded)}"),))


@check(25, "For any model run or deployment, one can look up unambiguously the model artifacts.")
def lineage_artifacts(ctx: Context) -> Finding:
    lineage, early = _lineage(ctx, "the artifacts", True, "")
    if early is not None:
        return early
    where = f"registry: {ctx.records.registry.subject}, run {lineage.run_id[:12]}"
    evidence = [ev.record(where, f"model at {lineage.model.source or lineage.artifact_uri}")]
    if lineage.model_card:
        evidence.append(ev.record(where, f"model card {lineage.model_card}"))
    if not (lineage.model.source or lineage.artifact_uri):
        return Finding(Status.NOT_MET, tuple(evidence), f"retrain: {TRAIN}")
    return Finding(Status.MET, tuple(evidence))


@check(26, "For any model run or deployment, one can look up unambiguously the exact training data.")
def lineage_data(ctx: Context) -> Finding:
    dvc = next((p for p in (ctx.root / ".dvc" / "config", ctx.repo / ".dvc" / "config") if p.is_file()), None)
    lineage, early = _lineage(ctx, "the training data", dvc is not None, "version the data with DVC (noria init does)")
    if early is not None:
        snaps = ctx.records.snapshots
        extra = (
            (ev.record(ctx.rel(ctx.project.data_dir / "snapshots"), f"{len(snaps)} data snapshots"),) if snaps else ()
        )
        return Finding(early.status, early.evidence + extra, early.todo)
    snapshot = lineage.lineage.data_snapshot
    where = f"registry: {ctx.records.registry.subject}, run {lineage.run_id[:12]}"
    if not snapshot:
        return Finding(Status.NOT_MET, (ev.record(where, "no data snapshot recorded"),), f"retrain: {TRAIN}")
    known = [s for s in ctx.records.snapshots if s.id == snapshot]
    evidence = [ev.record(where, f"data snapshot {snapshot[:12]}")]
    if not known:
        return Finding(
            Status.PARTIAL,
            tuple(evidence),
            f"the snapshot's record {snapshot[:12]} is not in {ctx.rel(ctx.project.data_dir / 'snapshots')}: "
            "commit the data/snapshots records with the code",
        )
    path = ctx.project.data_dir / "snapshots" / f"{snapshot}.json"
    evidence.append(
        ev.record(ctx.rel(path), f"its lineage record: {known[0].totals().get('accepted', '?')} rows", ctx.rel(path))
    )
    return Finding(Status.MET, tuple(evidence))
