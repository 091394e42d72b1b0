"""Section 3, code quality (statements 29-38): CI, reviews, pre-commit, tests, load tests, security, docs, releases.

"CI on a pull request" is a GitHub Actions workflow triggered by ``pull_request`` (or a merge
queue); what it runs includes the recipes of the ``make`` targets it calls. Reviews (30, 34)
are people's work: the rule that requires them is read from the branch protection as code, and
their trace from the git history (pull request merges, ``Reviewed-by:`` trailers); with the rule
but no reviewed change yet, a person is needed.
"""

from __future__ import annotations

import re
from pathlib import Path

from noria.maturity import _evidence as ev
from noria.maturity._context import Context
from noria.maturity._model import Evidence, Finding, Status
from noria.maturity._registry import check
from noria.maturity.checks_documentation import filled
from noria.maturity.checks_infrastructure import iac_files
from noria.maturity.checks_reproducibility import code_refs, module_file

VALIDATE_IAC = (
    r"terraform\s+(-chdir=\S+\s+)?(validate|fmt|plan)|kustomize\s+build|kubectl\s+kustomize|kubeconform|kubeval"
    r"|checkov|tflint|promtool|helm\s+lint|check_deploy"
)
RUN_TESTS = r"\bpytest\b|make\s+test\b|\btox\b|\bnox\b|python\s+-m\s+unittest"


@check(29, "CI validates configuration and runs tests when a pull request opens (infrastructure code).")
def ci_validates_infrastructure(ctx: Context) -> Finding:
    if not iac_files(ctx):
        return Finding(Status.NOT_MET, (), "write the infrastructure as code first (statement 9)")
    validating = ctx.workflows_running(VALIDATE_IAC, pull_request=True)
    if not validating:
        return Finding(
            Status.NOT_MET,
            (),
            "validate deploy/ in a pull-request workflow (terraform validate, kustomize build | kubeconform, checkov)",
        )
    rx = re.compile(VALIDATE_IAC, re.I)
    tools = sorted({m[0].split()[0].lower() for w in validating for m in rx.finditer(w.commands)})
    return Finding(Status.MET, tuple(ev.workflow(w, f"on pull requests: {', '.join(tools)}") for w in validating[:3]))


def reviewed(ctx: Context, paths: list[Path], what: str) -> Finding:
    """Approvals are required by a rule, and the history shows changes reviewed (a person's trace)."""
    rules = [r for r in ev.review_rules(ctx) if r.approvals >= 1]
    if not rules:
        return Finding(
            Status.NOT_MET,
            (),
            "require an approval from someone else before merging (deploy/github/branch-protection.json: "
            "required_approving_review_count >= 1) and apply it",
        )
    rule = rules[0]
    evidence = [ev.file(ctx, rule.path, f"{rule.approvals} approval(s) required before a merge")]
    owners = ev.codeowners(ctx)
    uncovered = [p for p in paths if owners is None or not owners.covers(ctx.rel(p))]
    if rule.code_owners and owners is not None:
        evidence.append(ev.file(ctx, owners.path, "code owners must approve their paths"))
    history = ev.change_history(ctx, *paths)
    evidence.append(ev.history_evidence(ctx, history, what))
    if rule.code_owners and uncovered:
        return Finding(
            Status.PARTIAL,
            tuple(evidence),
            f"give {', '.join(ctx.rel(p) for p in uncovered[:3])} an owner in .github/CODEOWNERS",
        )
    if not history.reviewed:
        return Finding(
            Status.NEEDS_PERSON,
            tuple(evidence),
            f"no {what} in the git history shows a review yet: merge them through reviewed pull requests",
        )
    unreviewed = [c for c in history.judged if c not in history.reviewed]
    if unreviewed:
        return Finding(
            Status.PARTIAL,
            tuple(evidence),
            f"{len(unreviewed)} {what} were merged without a review: apply the rule on the hosting platform",
        )
    return Finding(Status.MET, tuple(evidence))


@check(30, "Others review and approve infrastructure changes before merge.", person=True)
def infrastructure_reviews(ctx: Context) -> Finding:
    if not iac_files(ctx):
        return Finding(Status.NOT_MET, (), "write the infrastructure as code first (statement 9)")
    return reviewed(ctx, ctx.deploy_dirs, "changes to the infrastructure")


LINTERS = r"ruff|flake8|pylint|black|isort|mypy|pyright|pyflakes|bandit|prettier|eslint"


@check(31, "Pre-commit hooks enforce the code quality rules.")
def pre_commit(ctx: Context) -> Finding:
    path = ctx.find(".pre-commit-config.yaml", ".pre-commit-config.yml")
    if path is None:
        return Finding(
            Status.NOT_MET, (), "add .pre-commit-config.yaml running the linters and formatters (ruff, mypy)"
        )
    hooks = [
        str(h.get("id", ""))
        for doc in ctx.yaml_docs(path)
        if isinstance(doc, dict)
        for repo in doc.get("repos") or []
        if isinstance(repo, dict)
        for h in repo.get("hooks") or []
        if isinstance(h, dict)
    ]
    quality = [h for h in hooks if re.search(LINTERS, h, re.I)]
    evidence = [ev.file(ctx, path, f"{len(hooks)} hooks: {', '.join(hooks[:8])}")]
    ci = ctx.workflows_running(r"pre-commit\s+run|ruff\s+check|make\s+lint", pull_request=True)
    evidence += [ev.workflow(w, "CI runs the same checks on pull requests") for w in ci[:1]]
    if not quality:
        return Finding(Status.PARTIAL, tuple(evidence), "add a linter and a formatter hook (ruff, ruff-format, mypy)")
    return Finding(Status.MET, tuple(evidence))


STEPS = {
    "data processing": r"ingest|validat|quarantine|snapshot|data_checks|checks",
    "training": r"\btrain|pipeline|tune|evaluat|gate",
    "API deployment": r"TestClient|create_app|/predict|serve|httpx",
}


def test_files(ctx: Context) -> list[Path]:
    out: list[Path] = []
    for base in ctx.bases():
        for folder in ("tests", "test"):
            out += [
                p for p in ctx.walk(base / folder, (".py",)) if p.name.startswith("test_") or p.name == "conftest.py"
            ]
    return list(dict.fromkeys(out))


@check(32, "Tests cover every step: data processing, training, API deployment.")
def tests_cover_steps(ctx: Context) -> Finding:
    files = test_files(ctx)
    if not files:
        return Finding(Status.NOT_MET, (), "add tests/ covering ingest and data checks, training, and the API")
    texts = {p: ctx.text(p) for p in files}
    evidence: list[Evidence] = []
    missing = []
    for step, pattern in STEPS.items():
        hits = [p for p, t in texts.items() if re.search(pattern, t)]
        if hits:
            evidence.append(ev.file(ctx, hits[0], f"{step}: {len(hits)} test files"))
        else:
            missing.append(step)
    modules = sorted({r.split(":", 1)[0] for part in ("data", "features", "api") for _, r in code_refs(ctx, part)})
    untested = [m for m in modules if not any(re.search(rf"\b{re.escape(m)}\b", t) for t in texts.values())]
    if modules:
        evidence.append(
            ev.file(
                ctx,
                module_file(ctx, modules[0]).parent,
                f"{len(modules) - len(untested)} of {len(modules)} project modules tested",
            )
        )
    if untested:
        missing.append(f"the project's own code ({', '.join(untested)})")
    if missing:
        return Finding(Status.PARTIAL, tuple(evidence), f"add tests for {'; '.join(missing)}")
    return Finding(Status.MET, tuple(evidence))


@check(33, "CI runs the tests when a pull request opens.")
def ci_runs_tests(ctx: Context) -> Finding:
    running = ctx.workflows_running(RUN_TESTS, pull_request=True)
    if running:
        return Finding(Status.MET, tuple(ev.workflow(w, "runs the tests on every pull request") for w in running[:2]))
    other = ctx.workflows_running(RUN_TESTS)
    if other:
        return Finding(
            Status.PARTIAL,
            tuple(ev.workflow(w, "runs the tests, but not on pull requests") for w in other[:2]),
            "trigger it on pull requests too (on: pull_request)",
        )
    return Finding(Status.NOT_MET, (), "add .github/workflows/ci.yml running the tests on: pull_request")


@check(34, "Others approve code changes before merge.", person=True)
def code_reviews(ctx: Context) -> Finding:
    return reviewed(ctx, [] if ctx.root == ctx.repo else [ctx.root], "changes to the project")


LOAD_TEST = re.compile(r"^(locustfile.*\.py|.*\.k6\.js|bench_serving.*\.py|.*load_?test.*\.py|.*stress.*\.py)$")
LOAD_RUN = r"locust|\bk6\b|bench_serving|benchmarks/run\.py|make\s+bench\b|\bwrk\b|load.?test"
LATENCY_RULE = r"request_duration|latency|histogram_quantile"


@check(35, "Real-time use: regular load and stress tests show the API meets its latency requirement.")
def load_tests(ctx: Context) -> Finding:
    rules = [(p, r) for p, r in alert_rules(ctx) if re.search(LATENCY_RULE, str(r.get("expr", "")), re.I)]
    stated = [s for s in filled(ctx.sections(r"latency|performance|load"))[0] if re.search(r"p9\d|\d+\s*ms", s.body)]
    scripts = [p for base in ctx.bases() for p in ctx.walk(base) if LOAD_TEST.match(p.name)]
    regular = [w for w in ctx.workflows if (w.schedules or w.on_pull_request) and re.search(LOAD_RUN, w.commands, re.I)]
    results = [p for base in ctx.bases() for p in base.glob("benchmarks/results/*serving*.json")]
    evidence = [ev.file(ctx, p, f"latency requirement: alert {r.get('alert')}") for p, r in rules[:1]]
    evidence += [ev.section(s, "latency requirement") for s in stated[:1]]
    evidence += [ev.file(ctx, p, "load test") for p in scripts[:2]]
    evidence += [ev.file(ctx, p, "measured results") for p in results[:1]]
    evidence += [ev.workflow(w, "runs the load test") for w in regular[:1]]
    todo = []
    if not (rules or stated):
        todo.append("state the latency requirement (an alert rule on the request latency, or p99 in ms in the docs)")
    if not scripts:
        todo.append("write a load test of POST /predict (locust, k6)")
    if not regular:
        todo.append("run the load test regularly (a scheduled workflow) and keep its results")
    if not todo:
        return Finding(Status.MET, tuple(evidence))
    return Finding(Status.PARTIAL if evidence else Status.NOT_MET, tuple(evidence), "; ".join(todo))


def alert_rules(ctx: Context) -> list[tuple[Path, dict[str, object]]]:
    """Prometheus alert rules: rule files (groups/rules/alert) and PrometheusRule objects, in the deploy folders."""
    out: list[tuple[Path, dict[str, object]]] = []
    for path in ctx.deploy_files(".yml", ".yaml"):
        for doc in ctx.yaml_docs(path):
            if not isinstance(doc, dict):
                continue
            if doc.get("kind") not in (None, "PrometheusRule"):
                continue
            groups = doc.get("groups") or (doc.get("spec") or {}).get("groups") or []
            for group in groups if isinstance(groups, list) else []:
                rules = group.get("rules") if isinstance(group, dict) else None
                out += [(path, r) for r in rules or [] if isinstance(r, dict) and r.get("alert")]
    return out


@check(36, "Real-time use: authentication and networking follow security guidelines.")
def security(ctx: Context) -> Finding:
    serving = ctx.project.config.serving
    evidence = [
        ev.config(
            ctx,
            "serving",
            "require_key_for_predict",
            detail="POST /predict needs an API key" if serving.require_key_for_predict else "POST /predict is open",
        )
    ]
    todo = []
    if not serving.require_key_for_predict:
        todo.append("require an API key for /predict (serving.require_key_for_predict: true)")
    tls = [(p, d) for p, d in ctx.kinds("Ingress") if (d.get("spec") or {}).get("tls")]
    policies = ctx.kinds("NetworkPolicy")
    non_root = [p for p, d in ctx.manifests if re.search(r"runAsNonRoot['\"]?:\s*True", str(d))]
    evidence += [ev.file(ctx, p, "TLS on the ingress") for p, _ in tls[:1]]
    evidence += [ev.file(ctx, p, "NetworkPolicy: who may reach the pods") for p, _ in policies[:1]]
    evidence += [ev.file(ctx, p, "containers run as non-root") for p in non_root[:1]]
    if not tls:
        todo.append("serve over TLS (an Ingress with tls:)")
    if not policies:
        todo.append("restrict traffic to the pods with a NetworkPolicy")
    if not todo:
        return Finding(Status.MET, tuple(evidence))
    return Finding(
        Status.NOT_MET if not serving.require_key_for_predict else Status.PARTIAL, tuple(evidence), "; ".join(todo)
    )


DOCS_CHECK = r"(docs?|openapi)[\w./-]*\s+--check|mkdocs\s+build|sphinx-build|make\s+docs\b|markdownlint|test_docs"


@check(37, "Documentation as code.")
def docs_as_code(ctx: Context) -> Finding:
    tracked = [d for d in ctx.docs if ctx.tracked(d.path)]
    if not tracked:
        return Finding(Status.NOT_MET, (), "write the docs as Markdown in the repository (docs/*.md) and commit them")
    evidence: list[Evidence] = [ev.git("git ls-files", f"{len(tracked)} Markdown pages about the project in git")]
    checks = ctx.workflows_running(DOCS_CHECK, pull_request=True)
    tests = [p for p in test_files(ctx) if "docs" in p.name or "docs/" in ctx.text(p)]
    evidence += [ev.workflow(w, "CI checks generated docs are current") for w in checks[:1]]
    evidence += [ev.file(ctx, p, "a test runs what the docs show") for p in tests[:1]]
    if not (checks or tests):
        return Finding(
            Status.PARTIAL,
            tuple(evidence),
            "check the docs in CI: generate references from the code and fail when stale, run documented commands",
        )
    return Finding(Status.MET, tuple(evidence))


@check(38, "Release notes for every release.")
def release_notes(ctx: Context) -> Finding:
    """A changelog with a section per tagged release, one command or workflow that cuts or publishes a
    release from it, and release notes on the champion model version (every promotion is a release)."""
    changelog = ctx.find("CHANGELOG.md", "CHANGES.md", "HISTORY.md")
    if changelog is None:
        return Finding(Status.NOT_MET, (), "keep a CHANGELOG.md (Keep a Changelog) and tag each release")
    text = ctx.text(changelog)
    versions = set(re.findall(r"(?m)^#{1,3}\s*\[?v?(\d+\.\d+(?:\.\d+)?[\w.-]*)\]?", text))
    evidence = [ev.file(ctx, changelog, f"{len(versions)} released versions written up")]
    todo: list[str] = []
    release = [
        w for w in ctx.workflows if "CHANGELOG" in w.commands and ("push" in w.triggers or "release" in w.triggers)
    ]
    evidence += [ev.workflow(w, "publishes a release's notes from the changelog") for w in release[:1]]
    makefile = ctx.find("Makefile", "makefile", "GNUmakefile")
    target = ctx.make_recipe("release").strip()
    script = ctx.find("scripts/release.py", "scripts/release.sh", "scripts/release")
    if makefile is not None and target:
        evidence.append(ev.file(ctx, makefile, f"`make release`: {target.splitlines()[0][:100]}"))
    elif script is not None:
        evidence.append(ev.file(ctx, script, "a release script"))
    if not (release or target or script):
        todo.append(
            "make a release one step that writes its notes: a `release` Makefile target (e.g. Noria's "
            "scripts/release.py) or a workflow publishing CHANGELOG.md's section when a tag is pushed"
        )
    tags = [t for t in ctx.tags if re.match(r"^v?\d+\.\d+", t)]
    if not tags:
        how = (
            "`make release VERSION=X.Y.Z` (it moves Unreleased to a version section and tags vX.Y.Z), then push it"
            if target
            else "move Unreleased to a version section in CHANGELOG.md, then git tag vX.Y.Z and push it"
        )
        todo.insert(0, f"no release yet: {how}")
    else:
        evidence.append(ev.git("git tag", f"{len(tags)} release tags"))
        noteless = [t for t in tags if t.lstrip("v") not in versions]
        if noteless:
            todo.insert(0, f"write the notes of {', '.join(noteless[:5])} in {changelog.name}")
    view = ctx.records.registry
    champion = next((v for v in view.versions if v.version == view.champion), None)
    if champion is not None:
        where = f"registry: {view.model}/{champion.version} (@champion)"
        if champion.release_notes:
            evidence.append(ev.record(where, "release notes: " + champion.release_notes.splitlines()[0][:160]))
        else:
            todo.append(
                f"the champion {view.model}/{champion.version} has no release notes in the registry (it was "
                "promoted outside Noria or before notes existed): the next promotion through the gate or "
                "`noria promote` writes them"
            )
    if todo:
        return Finding(Status.PARTIAL, tuple(evidence), "; ".join(todo))
    return Finding(Status.MET, tuple(evidence))
