"""Section 1, documentation (statements 1-8): the pages a project keeps about itself.

A page counts when its file name or a heading says what it is about (``docs/goals.md``, a
``## Risks`` section, ...). A section still holding a placeholder (TODO, TBD, FILL IN) is not
filled in. Statements only people can make true (goals agreed, people named, risks judged) are
never MET without their written trace: a sign-off line naming who agreed and the date
(``Agreed by Ana Lima (operations) on 2025-03-01``), not older than a year.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from noria.maturity import _evidence as ev
from noria.maturity._context import Context, Section, age_days
from noria.maturity._model import Evidence, Finding, Status
from noria.maturity._registry import check
from noria.project_docs import sign_offs

SIGN_OFF_DAYS = 365  # a sign-off older than this is not current
STALE_DAYS = 180  # an architecture page this much older than the project's newest change is stale
SIGN_OFF_HOW = "a line 'Agreed by NAME (ROLE) on YYYY-MM-DD'"

GOALS = r"\bgoals?\b|objective|business|\bkpis?\b|success (criteria|metric)"
PEOPLE = r"owner|people|\bteam\b|responsib|\broles?\b|contact|on-call|stakeholder|maintainer"
RISK = r"\brisks?\b"
DATA = r"\bdata\b|clean|ingest|quarantine|gathering|collection|preparation"
MOTIVATION = r"\bwhy\b|because|reason|motivat|so that"
MODEL_CHOICE = r"choice of (the )?model|model choice|model selection|choosing|why .*(model|algorithm|lightgbm)"
ARCHITECTURE = r"architecture"


def filled(sections: list[Section]) -> tuple[list[Section], list[Section]]:
    """(sections without a placeholder, sections still holding one)."""
    done = [s for s in sections if not s.placeholders()]
    return done, [s for s in sections if s.placeholders()]


def placeholder_evidence(sections: list[Section]) -> list[Evidence]:
    return [ev.section(s, f"still a placeholder: {s.placeholders()[0][:80]!r}") for s in sections]


def sign_off(sections: list[Section]) -> tuple[str, datetime] | None:
    """The newest sign-off line in the pages holding ``sections`` (the line and its date)."""
    best: tuple[str, datetime] | None = None
    for doc in dict.fromkeys(s.doc for s in sections):
        for signed in sign_offs(doc.text):
            when = datetime(signed.date.year, signed.date.month, signed.date.day)
            if best is None or when > best[1]:
                best = (signed.line, when)
    return best


def judged_by_people(
    ctx: Context,
    sections: list[Section],
    what: str,
    page: str,
    complete: bool,
    missing: str,
    who: str = "the people responsible",
) -> Finding:
    """The common verdict of a statement a person must make true, from the pages that record it."""
    if not sections:
        return Finding(Status.NEEDS_PERSON, (), f"write {page}: {what}, signed off with {SIGN_OFF_HOW}")
    done, todo = filled(sections)
    if not done:
        return Finding(
            Status.NEEDS_PERSON,
            tuple(placeholder_evidence(todo)),
            f"fill in {todo[0].doc.rel} (replace every TODO) and sign it off with {SIGN_OFF_HOW}",
        )
    evidence = [ev.section(s, "written") for s in done]
    if not complete:
        return Finding(Status.PARTIAL, tuple(evidence), missing)
    signed = sign_off(done)
    if signed is None:
        return Finding(
            Status.NEEDS_PERSON,
            tuple(evidence),
            f"have {who} agree to it and add {SIGN_OFF_HOW} to {done[0].doc.rel}",
        )
    line, when = signed
    evidence.append(ev.section(done[0], f"signed off: {line[:100]!r}"))
    if age_days(when, ctx.now) > SIGN_OFF_DAYS:
        return Finding(
            Status.PARTIAL,
            tuple(evidence),
            f"the sign-off of {when:%Y-%m-%d} is over a year old: review {done[0].doc.rel} and sign it off again",
        )
    return Finding(Status.MET, tuple(evidence))


@check(1, "Business goals and KPIs of the ML project are written down and current.", person=True)
def business_goals(ctx: Context) -> Finding:
    kpi = ctx.project.config.monitoring.kpi
    sections = ctx.sections(GOALS)
    text = "\n".join(s.text for s in sections)
    has_kpi = bool(re.search(r"\bKPIs?\b|key performance|target", text, re.I))
    finding = judged_by_people(
        ctx,
        sections,
        "the business goal and the KPI with its target",
        "docs/goals.md",
        has_kpi,
        "name the KPI and its target value in the goals page (and monitoring.kpi in noria.yaml)",
        who="the business owner and the model's owner",
    )
    if kpi.name or kpi.target is not None:
        shown = f"{kpi.name or kpi.metric or 'the default metric'}" + (
            f", target {kpi.target:g}" if kpi.target is not None else ", no target"
        )
        extra = ev.config(ctx, "monitoring", "kpi", detail=f"KPI measured on delayed labels: {shown}")
        return Finding(finding.status, (*finding.evidence, extra), finding.todo)
    return finding


@check(2, "The people involved and their responsibilities are written down.", person=True)
def people(ctx: Context) -> Finding:
    sections = ctx.sections(PEOPLE)
    owners = ev.codeowners(ctx)
    done, _ = filled(sections)
    named = [s for s in done if _entries(s)]
    finding = judged_by_people(
        ctx,
        sections,
        "who owns the model, the data, the service and on-call, and what each is responsible for",
        "docs/owners.md",
        bool(named),
        "list each person or team with their responsibility (one line or table row each)",
        who="each person named",
    )
    evidence = list(finding.evidence)
    if owners is not None and owners.placeholders:
        shown = ", ".join(owners.placeholders[:3])
        evidence.append(ev.file(ctx, owners.path, f"owners still placeholders: {shown}"))
        if finding.status is Status.MET:
            return Finding(
                Status.PARTIAL, tuple(evidence), f"replace the placeholder owners ({shown}) in {ctx.rel(owners.path)}"
            )
    if owners is not None and any(o for _, o in owners.rules):
        evidence.append(ev.file(ctx, owners.path, f"{sum(1 for _, o in owners.rules if o)} ownership rules"))
    elif finding.status is Status.MET:
        return Finding(
            Status.PARTIAL, tuple(evidence), "add .github/CODEOWNERS so that changes reach the people responsible"
        )
    return Finding(finding.status, tuple(evidence), finding.todo)


def _entries(s: Section) -> list[str]:
    """Bullet items and table rows (not the header or the rule) of a section."""
    out = []
    for line in s.body.splitlines():
        stripped = line.strip()
        bullet = re.match(r"^([-*+]|\d+\.)\s+\S", stripped)
        if bullet or (stripped.startswith("|") and not re.match(r"^\|[\s:|-]+\|?$", stripped)):
            out.append(stripped)
    return out[1:] if out and out[0].startswith("|") else out


@check(3, "A model risk evaluation is written down.", person=True)
def risk_evaluation(ctx: Context) -> Finding:
    sections = ctx.sections(RISK)
    text = "\n".join(s.text for s in sections)
    mitigated = bool(re.search(r"mitigat|safeguard|fallback|in case of|we (will|do)|control", text, re.I))
    return judged_by_people(
        ctx,
        sections,
        "what can go wrong with the model's decisions, how likely and how bad, and each risk's mitigation",
        "docs/risk.md",
        mitigated,
        "give each risk its mitigation (what is done so it does not happen, or what happens when it does)",
        who="the model's owner and risk reviewer",
    )


@check(4, "Data gathering, analysis and cleaning steps are documented, each with its motivation.")
def data_steps(ctx: Context) -> Finding:
    tables = ctx.project.config.data.tables
    undescribed = [t for t, spec in tables.items() if not spec.description.strip()]
    checks = [(t, c) for t, spec in tables.items() for c in spec.checks]
    unreasoned = [f"{t}.{c.name}" for t, c in checks if not (c.reason or "").strip()]
    columns = [(t, c) for t, spec in tables.items() for c, col in spec.columns.items()]
    described_columns = sum(1 for t, c in columns if tables[t].columns[c].description.strip())
    evidence = [
        ev.config(
            ctx,
            "data",
            "tables",
            detail=f"{len(tables) - len(undescribed)} of {len(tables)} tables described, "
            f"{described_columns} of {len(columns)} columns, {len(checks) - len(unreasoned)} of {len(checks)} "
            "cleaning checks with their reason",
        )
    ]
    gates = [t for t, spec in tables.items() if spec.quality.model_dump(exclude_defaults=True)]
    if gates:
        evidence.append(ev.config(ctx, "data", "tables", detail=f"quality gates on {', '.join(gates)}"))
    done, todo = filled(ctx.sections(DATA))
    done = [s for s in done if re.search(MOTIVATION, s.body, re.I)]
    done.sort(key=lambda s: (s.level == 1, -len(re.findall(MOTIVATION, s.body, re.I))))
    evidence += [ev.section(s, "data steps with their motivation") for s in done[:2]] + placeholder_evidence(todo[:1])
    missing = []
    if undescribed:
        missing.append(f"describe tables {', '.join(undescribed)} (data.tables.NAME.description)")
    if unreasoned:
        missing.append(f"give checks {', '.join(unreasoned)} a reason (why the rule exists)")
    if not done:
        missing.append("write docs/data.md: where each table comes from, what is cleaned and why (the motivation)")
    if not missing:
        return Finding(Status.MET, tuple(evidence))
    status = Status.NOT_MET if len(undescribed) == len(tables) and not done else Status.PARTIAL
    return Finding(status, tuple(evidence), "; ".join(missing))


def declared_features(ctx: Context) -> dict[str, str]:
    """Every feature features.yaml declares, with its description."""
    f = ctx.features
    out = {n: spec.description for view in f.feature_views.values() for n, spec in view.features.items()}
    out |= {n: spec.description for view in f.request_views.values() for n, spec in view.features.items()}
    out |= {n: spec.description for n, spec in f.derived.items()}
    return out


@check(5, "Data definition: which features the model uses and what each means.")
def feature_definitions(ctx: Context) -> Finding:
    features = declared_features(ctx)
    services = ctx.features.services
    if not features:
        return Finding(
            Status.NOT_MET,
            (),
            "declare the model's features in features.yaml, each with a description (docs/features.md)",
        )
    bare = sorted(n for n, d in features.items() if not d.strip())
    evidence = [
        ev.features(
            ctx,
            f"{len(features) - len(bare)} of {len(features)} features described; "
            f"the model's set: service {', '.join(services) or '(none)'}",
        )
    ]
    if bare:
        return Finding(Status.PARTIAL, tuple(evidence), f"describe {', '.join(bare[:8])} in features.yaml")
    if not services:
        return Finding(
            Status.PARTIAL, tuple(evidence), "name the model's features in a service (services: in features.yaml)"
        )
    return Finding(Status.MET, tuple(evidence))


@check(6, "The choice of model is documented and justified.")
def model_choice(ctx: Context) -> Finding:
    done, todo = filled(ctx.sections(MODEL_CHOICE))
    if not done:
        where = _figures_at(ctx)
        if todo:
            return Finding(Status.NOT_MET, tuple(placeholder_evidence(todo)), f"fill in {todo[0].doc.rel}{where}")
        return Finding(
            Status.NOT_MET,
            (),
            f"write docs/model_choice.md: the model, the alternatives considered, and the measured comparison{where}",
        )
    text = "\n".join(s.text for s in done)
    alternatives = bool(re.search(r"alternativ|compared|instead of|versus|\bvs\.?\b|baseline", text, re.I))
    measured = bool(re.search(r"\d\.\d{2,}", text))
    evidence = [ev.section(s, "model choice") for s in done[:3]]
    if alternatives and measured:
        return Finding(Status.MET, tuple(evidence))
    missing = [w for w, ok in (("the alternatives considered", alternatives), ("measured figures", measured)) if not ok]
    return Finding(Status.PARTIAL, tuple(evidence), f"add {' and '.join(missing)} to {done[0].doc.rel}")


def _figures_at(ctx: Context) -> str:
    """Where the measured comparison already is, when a model was trained through Noria."""
    view = ctx.records.registry
    if view.lineage is None:
        return ""
    card = f" ({view.lineage.model_card})" if view.lineage.model_card else ""
    return (
        f": the holdout figures of {view.subject} and of the baselines it was compared with are in its "
        f"model card{card} and `noria models list`"
    )


OPENAPI_FILES = ("docs/api/openapi.json", "docs/openapi.json", "openapi.json", "api/openapi.json")
OPENAPI_HOW = "python -m noria.serving.openapi --project . --path docs/api/openapi.json"


@check(7, "Real-time use: the API is documented (request/response structure, types).")
def api_documented(ctx: Context) -> Finding:
    found: list[tuple[Path, dict[str, Any]]] = []
    for base in ctx.bases():
        for rel in OPENAPI_FILES:
            path = base / rel
            if not path.is_file():
                continue
            try:
                doc = json.loads(ctx.text(path))
            except ValueError:
                continue
            title = str((doc.get("info") or {}).get("title", ""))
            if base == ctx.root or re.search(rf"(?<![\w-]){re.escape(ctx.name)}(?![\w-])", title):
                found.append((path, doc))
    if not found:
        return Finding(
            Status.PARTIAL,
            (ev.config(ctx, "serving", "request", detail="the service shows its schema at /docs, only while it runs"),),
            f"keep the API's OpenAPI document in the repository: {OPENAPI_HOW}",
        )
    path, doc = found[0]
    predict = ((doc.get("paths") or {}).get("/predict") or {}).get("post") or {}
    if not predict.get("requestBody") or not predict.get("responses"):
        return Finding(
            Status.PARTIAL,
            (ev.file(ctx, path, "no /predict request and response schema"),),
            f"regenerate it: {OPENAPI_HOW}",
        )
    schemas = len((doc.get("components") or {}).get("schemas") or {})
    evidence = ev.file(
        ctx, path, f"OpenAPI {doc.get('openapi', '')}: /predict request and responses, {schemas} schemas"
    )
    try:
        from noria.serving.openapi import document

        current = json.loads(json.dumps(document(ctx.root), sort_keys=True, default=str))
    except Exception as exc:  # the project's own request model may fail to import: say so, do not stop
        note = ev.file(ctx, path, f"could not build the current document to compare: {exc}")
        return Finding(Status.PARTIAL, (evidence, note), "fix the error above, then compare the document again")
    if current != doc:
        return Finding(
            Status.PARTIAL,
            (evidence, ev.file(ctx, path, "differs from what the service serves now (stale)")),
            f"regenerate it: {OPENAPI_HOW}",
        )
    return Finding(Status.MET, (evidence, ev.file(ctx, path, "identical to what the service serves now")))


@check(8, "The software architecture is documented and current.")
def architecture(ctx: Context) -> Finding:
    done, todo = filled(ctx.sections(ARCHITECTURE))
    if not done:
        return Finding(
            Status.NOT_MET,
            tuple(placeholder_evidence(todo)),
            "write docs/architecture.md: the components, how data and requests flow, and a deployment view",
        )
    docs = list(dict.fromkeys(s.doc for s in done))
    evidence: list[Evidence] = [ev.section(s, "architecture") for s in done[:2]]
    deployment = [s for d in docs for s in d.sections if re.search(r"deploy", s.heading, re.I)]
    missing = []
    if deployment:
        evidence.append(ev.section(deployment[0], "deployment view"))
    else:
        missing.append(f"add a deployment view (a '## Deployment' section: what runs where) to {docs[0].rel}")
    page_changed = ctx.last_change(docs[0].path)
    code_changed = ctx.last_change(ctx.root)
    if page_changed and code_changed:
        lag = (code_changed - page_changed).total_seconds() / 86400
        evidence.append(
            ev.git(docs[0].rel, f"last changed {page_changed:%Y-%m-%d}; the project {code_changed:%Y-%m-%d}")
        )
        if lag > STALE_DAYS:
            missing.append(f"bring {docs[0].rel} up to date (over {STALE_DAYS} days behind the project's code)")
    if missing:
        return Finding(Status.PARTIAL, tuple(evidence), "; ".join(missing))
    return Finding(Status.MET, tuple(evidence))
