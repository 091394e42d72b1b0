"""Sections 5-7, the advanced level: feature store (47-53), explainability (54-57), A/B tests and feedback (58-60).

Feature-store statements are read from the project's feature definitions (``features.yaml``,
``features/*.yaml`` or ``features:`` in ``noria.yaml``), the code they name and the usage records
training leaves (``.noria/features/usage.json``). Explanations and out-of-distribution flags are
the service's (``serving.explanations``, the reference profile stored with the model version);
A/B tests are ``serving.ab`` with the performance records per arm.
"""

from __future__ import annotations

import re
from pathlib import Path

from noria.errors import NoriaError
from noria.maturity import _evidence as ev
from noria.maturity._context import Context, age_days
from noria.maturity._model import Evidence, Finding, Status
from noria.maturity._registry import check
from noria.maturity.checks_documentation import declared_features, filled, judged_by_people
from noria.maturity.checks_infrastructure import through_pull_requests
from noria.maturity.checks_reproducibility import code_refs, module_file

USERS = r"\buser|reader|customer|operator|agent|dispatcher|staff"
AB_DAYS = 90  # an A/B test within this many days counts as "regular"
NO_FEATURES = "declare the model's features in features.yaml (feature views over the project's sources, a service)"


def service_features(ctx: Context) -> dict[str, list[str]]:
    """Each service's model inputs: the features of its views, request views (with passthrough) and derived ones."""
    f = ctx.features
    out: dict[str, list[str]] = {}
    for name, service in f.services.items():
        found: list[str] = []
        for member in service.features:
            view = member.split(":", 1)[0]
            if view in f.feature_views:
                found += list(f.feature_views[view].features)
            elif view in f.request_views:
                found += f.request_views[view].passthrough + list(f.request_views[view].features)
            elif member in f.derived:
                found.append(member)
            else:
                found.append(f"?{member}")  # not declared anywhere
        out[name] = list(dict.fromkeys(found))
    return out


def feature_files(ctx: Context) -> list[Path]:
    files = [ctx.root / "features.yaml", *sorted((ctx.root / "features").glob("*.y*ml"))]
    return [p for p in files if p.is_file()]


@check(47, "Features are precomputed in a feature store and/or shared as code.")
def feature_store(ctx: Context) -> Finding:
    f = ctx.features
    if not f.feature_views and not f.request_views and not f.derived:
        return Finding(Status.NOT_MET, (), NO_FEATURES)
    evidence = [
        ev.features(
            ctx,
            f"{len(f.feature_views)} feature views over {len(f.sources)} sources, "
            f"{len(f.request_views)} request views, {len(f.derived)} derived features; "
            f"services {', '.join(f.services)}",
        ),
        ev.features(ctx, f"online store: {f.online_store.type}"),
    ]
    repo = ctx.project.path(f.repo_dir)
    if repo.is_dir():
        evidence.append(ev.record(ctx.rel(repo), "the generated Feast repository (noria features apply)"))
    if not f.feature_views:
        return Finding(
            Status.PARTIAL,
            tuple(evidence),
            "precompute features in feature views (entities, a source, a TTL) so training and serving share them",
        )
    return Finding(Status.MET, tuple(evidence))


@check(48, "Offline training data and online prediction data go through the same transformation code.")
def same_transformations(ctx: Context) -> Finding:
    refs = code_refs(ctx, "features")
    if not refs:
        return Finding(Status.NOT_MET, (), NO_FEATURES)
    online = ctx.project.config.serving.online_features
    evidence = [
        ev.features(
            ctx,
            f"{len(refs)} transformation functions named once, used by training sets and the online store: "
            + ", ".join(sorted({r for _, r in refs})[:4]),
        ),
        ev.config(ctx, "serving", "online_features", detail=f"online features: {online}"),
    ]
    missing = [r for _, r in refs if not module_file(ctx, r).is_file()]
    if missing:
        return Finding(Status.PARTIAL, tuple(evidence), f"add the modules of {', '.join(missing[:3])} to the project")
    if online == "off":
        return Finding(
            Status.PARTIAL,
            tuple(evidence),
            "serving reads no features (serving.online_features: off): requests must bring values computed elsewhere; "
            "set it to auto",
        )
    return Finding(Status.MET, tuple(evidence))


@check(49, "All model features come from the feature store or external libraries.")
def features_from_store(ctx: Context) -> Finding:
    services = service_features(ctx)
    if not services:
        return Finding(Status.NOT_MET, (), NO_FEATURES)
    undeclared = sorted({n[1:] for feats in services.values() for n in feats if n.startswith("?")})
    evidence = [ev.features(ctx, f"service {name}: {len(feats)} model inputs") for name, feats in services.items()]
    declared = set(declared_features(ctx)) | {n for feats in services.values() for n in feats}
    usage = [u for u in ctx.records.usage if u.model == ctx.model_name]
    strays: set[str] = set()
    if usage:
        strays = set(usage[-1].features) - declared
        evidence.append(
            ev.record(
                ctx.rel(ctx.root / ".noria" / "features" / "usage.json"),
                f"{ctx.model_name} version {usage[-1].version} trained on {len(usage[-1].features)} features of "
                f"service {usage[-1].service}",
            )
        )
    if undeclared or strays:
        names = ", ".join(sorted([*undeclared, *strays])[:5])
        return Finding(Status.PARTIAL, tuple(evidence), f"declare {names} in features.yaml")
    return Finding(Status.MET, tuple(evidence))


@check(50, "A data scientist adds a feature with a pull request.")
def feature_pull_requests(ctx: Context) -> Finding:
    files = feature_files(ctx) or [ctx.root / "noria.yaml"]
    if not code_refs(ctx, "features"):
        return Finding(Status.NOT_MET, (), NO_FEATURES)
    if not ctx.in_git or not all(ctx.tracked(p) for p in files):
        return Finding(Status.NOT_MET, (), "keep the feature definitions in git (git add features.yaml)")
    howto = filled(ctx.sections(r"add(ing)? (a )?(new )?feature"))[0]
    flow = through_pull_requests(ctx, files, "changes to the features")
    evidence = list(flow.evidence) + [ev.section(s, "how to add a feature") for s in howto[:1]]
    if flow.status is Status.MET and not howto:
        return Finding(
            Status.PARTIAL,
            tuple(evidence),
            "write how a feature is added (an 'Adding a feature' section: the config entry, the function, the test)",
        )
    return Finding(flow.status, tuple(evidence), flow.todo)


@check(51, "The feature store manages feature dependencies.")
def feature_dependencies(ctx: Context) -> Finding:
    f = ctx.features
    if not f.services:
        return Finding(Status.NOT_MET, (), NO_FEATURES)
    edges = len(f.feature_views) + sum(len(d.inputs) for d in f.derived.values())
    edges += sum(len(v.inputs) for v in f.request_views.values()) + sum(len(s.features) for s in f.services.values())
    known = set(declared_features(ctx)) | set(f.feature_views) | set(f.request_views) | set(f.derived)
    known |= set(f.request.columns if f.request else []) | {c for v in f.request_views.values() for c in v.passthrough}
    unresolved = sorted({i for d in f.derived.values() for i in d.inputs if i not in known})
    evidence = [
        ev.features(
            ctx,
            f"{edges} declared dependencies (view -> source, derived -> inputs, service -> members), "
            "resolved in order by Noria",
        )
    ]
    if unresolved:
        return Finding(Status.PARTIAL, tuple(evidence), f"declare the inputs {', '.join(unresolved[:5])}")
    return Finding(Status.MET, tuple(evidence))


@check(52, "The feature store tracks which model uses which feature.")
def feature_usage(ctx: Context) -> Finding:
    if not ctx.features.services:
        return Finding(Status.NOT_MET, (), NO_FEATURES)
    usage = ctx.records.usage
    path = ctx.rel(ctx.root / ".noria" / "features" / "usage.json")
    if not usage:
        return Finding(
            Status.PARTIAL,
            (ev.record(path, ctx.records.error("usage") or "no usage record yet"),),
            "train a model (noria pipeline run training): each registered version records the features it used",
        )
    models = sorted({f"{u.model}/{u.version}" for u in usage})
    return Finding(
        Status.MET,
        (ev.record(path, f"{len(usage)} records: {', '.join(models[-4:])} (noria features usage)", path),),
    )


@check(53, "Feature configuration is separate from code.")
def feature_config_separate(ctx: Context) -> Finding:
    refs = code_refs(ctx, "features")
    if not refs:
        return Finding(Status.NOT_MET, (), NO_FEATURES)
    files = feature_files(ctx)
    modules = sorted({ctx.rel(module_file(ctx, r)) for _, r in refs})
    evidence = [ev.file(ctx, p, "feature configuration (entities, views, TTLs, parameters)") for p in files[:1]]
    evidence.append(ev.features(ctx, f"code in {', '.join(modules)}, named as module:function"))
    if not files:
        return Finding(
            Status.PARTIAL,
            tuple(evidence),
            "move the features: section of noria.yaml to features.yaml (configuration apart from the rest)",
        )
    return Finding(Status.MET, tuple(evidence))


# --- explainability -------------------------------------------------------------------------------


@check(54, "Each output can be explained, with evidence.")
def explained(ctx: Context) -> Finding:
    e = ctx.project.config.serving.explanations
    evidence = (
        ev.config(ctx, "serving", "explanations", detail=f"enabled: {e.enabled}, top {e.top}, method {e.method}"),
    )
    if not e.enabled or e.top == 0:
        return Finding(Status.NOT_MET, evidence, "turn explanations on (serving.explanations: {enabled: true, top: 3})")
    return Finding(Status.MET, evidence)


def worded(ctx: Context) -> tuple[list[str], list[str]]:
    """(model inputs an explanation can say in words, those it can only name)."""
    c = ctx.project.config
    words = {n: d for n, d in declared_features(ctx).items() if d.strip()}
    request_table = c.data.tables.get(ctx.features.request.table) if ctx.features.request else None
    if request_table is not None:
        words |= {n: col.description for n, col in request_table.columns.items() if col.description.strip()}
    words |= {n: t.label for n, t in c.serving.explanations.features.items() if t.label}
    inputs = sorted({n for feats in service_features(ctx).values() for n in feats if not n.startswith("?")})
    return [n for n in inputs if n in words], [n for n in inputs if n not in words]


@check(55, "The explanation is understandable by its user.", person=True)
def understandable(ctx: Context) -> Finding:
    e = ctx.project.config.serving.explanations
    if not e.enabled:
        return Finding(Status.NOT_MET, (), "turn explanations on first (statement 54)")
    said, unsaid = worded(ctx)
    if unsaid:
        return Finding(
            Status.PARTIAL,
            (ev.features(ctx, f"{len(said)} of {len(said) + len(unsaid)} model inputs have words"),),
            f"describe {', '.join(unsaid[:6])} (features.yaml description, or serving.explanations.features)",
        )
    sections = [s for s in ctx.sections(r"explanation") if re.search(USERS, s.text, re.I)]
    finding = judged_by_people(
        ctx,
        sections,
        "an answer's explanation as its users see it, and whether they understood it",
        "docs/explanations.md",
        True,
        "",
        who="users of the explanations (a review with them)",
    )
    extra = ev.features(ctx, f"every one of the {len(said)} model inputs is explained in words")
    return Finding(finding.status, (extra, *finding.evidence), finding.todo)


@check(56, "The system describes how it reached each decision.")
def decision_trail(ctx: Context) -> Finding:
    s = ctx.project.config.serving
    evidence = [
        ev.config(ctx, "serving", "explanations", detail="answers carry the model version and the top contributions"),
        ev.config(
            ctx, "serving", "prediction_log", detail="each answer is logged" if s.prediction_log.enabled else "off"
        ),
    ]
    if ctx.project.config.model.task == "binary":
        evidence.append(ev.config(ctx, "serving", "decision_threshold", detail=f"decision at {s.decision_threshold:g}"))
    todo = []
    if not s.explanations.enabled:
        todo.append("turn explanations on")
    if not s.prediction_log.enabled:
        todo.append("log every answer (serving.prediction_log.enabled)")
    if not todo:
        return Finding(Status.MET, tuple(evidence))
    return Finding(Status.PARTIAL if len(todo) == 1 else Status.NOT_MET, tuple(evidence), "; ".join(todo))


@check(57, "The system knows when an input lies outside what it learned from.")
def out_of_distribution(ctx: Context) -> Finding:
    view = ctx.records.registry
    if view.lineage is None:
        return Finding(
            Status.PARTIAL,
            (ev.record(f"registry: {view.model}", view.error or view.lineage_error or "no model version yet"),),
            "train through Noria: the reference profile serving flags inputs against is stored with each version",
        )
    from noria.monitoring.window import load_profile

    version = view.lineage.model.version
    where = f"registry: {view.subject}, run {view.lineage.run_id[:12]}"
    try:
        profile = load_profile(ctx.project, view.model, version)
    except NoriaError as exc:
        return Finding(Status.NOT_MET, (ev.record(where, exc.message),), exc.fix or "retrain it through Noria")
    return Finding(
        Status.MET,
        (ev.record(where, f"reference profile of {len(profile.features)} features: answers flag inputs outside it"),),
    )


# --- A/B tests and feedback -----------------------------------------------------------------------


@check(58, "Model inputs and outputs are stored automatically.")
def inputs_outputs_stored(ctx: Context) -> Finding:
    log = ctx.project.config.serving.prediction_log
    evidence: list[Evidence] = [
        ev.config(ctx, "serving", "prediction_log", detail=f"enabled: {log.enabled}, {log.dir}")
    ]
    if not log.enabled:
        return Finding(Status.NOT_MET, tuple(evidence), "log every request (serving.prediction_log.enabled: true)")
    files = ctx.records.prediction_log_files
    if not files:
        return Finding(Status.PARTIAL, tuple(evidence), "serve predictions (noria serve): nothing is logged yet")
    evidence.append(ev.record(ctx.rel(files[-1].parent), f"{len(files)} Parquet files of requests and answers"))
    return Finding(Status.MET, tuple(evidence))


@check(59, "A/B tests are run regularly.")
def ab_tests(ctx: Context) -> Finding:
    ab = ctx.project.config.serving.ab
    evidence: list[Evidence] = [
        ev.config(
            ctx,
            "serving",
            "ab",
            detail=f"challenger share {ab.challenger_fraction:g}, shadow {ab.shadow}, experiment {ab.experiment!r}",
        )
    ]
    procedure = filled(ctx.sections(r"a/b|ab[ -]test|experiment"))[0]
    evidence += [ev.section(s, "A/B procedure and decision rule") for s in procedure[:1]]
    arms = [r for r in ctx.records.performance if r.get("arm") == "challenger"]
    recent = [r for r in arms if _age(ctx, r) <= AB_DAYS]
    if arms:
        evidence.append(
            ev.record(
                ctx.rel(ctx.records.monitoring_dir / "performance"), f"{len(arms)} windows judged on the challenger arm"
            )
        )
    todo = []
    if not procedure:
        todo.append("write the A/B procedure and its decision rule (docs/runbooks/ab-test.md)")
    if not recent:
        todo.append(
            f"run an A/B test (serving.ab.challenger_fraction > 0) and judge it: none in the last {AB_DAYS} days"
        )
    if not todo:
        return Finding(Status.MET, tuple(evidence))
    configured = ab.uses_challenger or ab.sticky_key is not None
    return Finding(
        Status.PARTIAL if configured or procedure or arms else Status.NOT_MET, tuple(evidence), "; ".join(todo)
    )


def _age(ctx: Context, record: dict[str, object]) -> float:
    from datetime import datetime

    try:
        return age_days(datetime.fromisoformat(str(record.get("computed_at"))), ctx.now)
    except ValueError:
        return float("inf")


@check(60, "During an A/B test each customer always gets the same model version.")
def sticky_arms(ctx: Context) -> Finding:
    ab = ctx.project.config.serving.ab
    if ab.sticky_key is None:
        return Finding(
            Status.NOT_MET,
            (
                ev.config(
                    ctx, "serving", "ab", detail="no sticky key: an A/B split could not keep a customer on one arm"
                ),
            ),
            "set serving.ab.sticky_key to the request field that identifies the customer (or header:<Name>)",
        )
    request = ctx.features.request
    fields = set(request.columns if request else [])
    evidence = (
        ev.config(
            ctx, "serving", "ab", "sticky_key", detail=f"arms by a hash of {ab.sticky_key!r} salted with the experiment"
        ),
    )
    if not ab.sticky_key.startswith("header:") and fields and ab.sticky_key not in fields and not _public_field(ctx):
        return Finding(
            Status.PARTIAL, evidence, f"{ab.sticky_key!r} is not a request field: name one of {sorted(fields)[:6]}"
        )
    return Finding(Status.MET, evidence)


def _public_field(ctx: Context) -> bool:
    """A project with its own public request model: its fields are not the request table's (trust the config)."""
    return ctx.project.config.serving.request.model is not None


__all__ = ["service_features", "worded"]
