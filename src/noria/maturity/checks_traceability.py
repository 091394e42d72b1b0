"""Section 2, traceability and reproducibility (statements 9-28).

Infrastructure as code is what the deploy folders hold (Terraform, kustomize/Kubernetes
manifests, Helm charts, compose files); for a project in a sub-folder of a repository it must
name the project (a copy of its ``noria.yaml``, or its name) to be the project's own.
Continuous delivery is a GitHub Actions workflow run on a push to the main branch (the local
reusable workflows it calls included). Lineage (22-26) is read from the registry: the
champion's training run (else the newest version's) and the tags Noria's training records.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from noria.maturity import _evidence as ev
from noria.maturity._context import Context, Workflow
from noria.maturity._model import Evidence, Finding, Status
from noria.maturity._registry import check
from noria.maturity.checks_documentation import filled

APPLY = (
    r"terraform\s+(-chdir=\S+\s+)?apply|kubectl\b.*\bapply\b|kustomize\b.*\|\s*kubectl"
    r"|helm\s+(upgrade|install)|pulumi\s+up|cdk\s+deploy"
)
BUILD = r"docker\s+(buildx\s+)?build|docker/build-push-action|buildah\s+bud|kaniko|\bko\s+build"
RUN_TRAINING = r"noria\s+(monitor\s+run|pipeline\s+run)|kubectl\b.*\bcreate\s+job|\bpipeline\b.*\brun\b"
PROTECT = (
    "protect the main branch as code: require pull requests with an approval (deploy/github/branch-protection.json)"
)


def iac_files(ctx: Context) -> list[Path]:
    """Terraform, kustomize/Kubernetes, Helm and compose files under the deploy folders."""
    manifests = {p for p, _ in ctx.manifests}
    out = []
    for path in ctx.deploy_files():
        name = path.name
        if (
            path.suffix == ".tf"
            or name in ("kustomization.yaml", "kustomization.yml", "Chart.yaml")
            or re.match(r"^(docker-)?compose(\.[\w-]+)?\.ya?ml$", name)
            or path in manifests
        ):
            out.append(path)
    return out


def iac_is_the_projects(ctx: Context, files: list[Path]) -> tuple[bool, Evidence | None]:
    """Whether the IaC deploys this project: it sits in the project folder, or names the project."""
    own = [p for p in files if p.resolve().is_relative_to(ctx.root)]
    if own:
        return True, None
    configs = ev.deployed_configs(ctx)
    mine = [p for p, name in configs if name == ctx.name]
    if mine:
        return True, ev.file(ctx, mine[0], f"the deployed noria.yaml is project {ctx.name!r}")
    if configs:
        others = sorted({name for _, name in configs})
        return False, ev.file(ctx, configs[0][0], f"deploys project {', '.join(map(repr, others))}, not {ctx.name!r}")
    named = ev.mentions_project(ctx, files)
    if named:
        return True, ev.file(ctx, named[0], f"names project {ctx.name!r}")
    return False, None


@check(9, "Infrastructure is code (IaC).")
def infrastructure_as_code(ctx: Context) -> Finding:
    files = iac_files(ctx)
    if not files:
        return Finding(
            Status.NOT_MET,
            (),
            "describe the infrastructure under deploy/: Terraform for the services, Kubernetes manifests for the model",
        )
    kinds = {
        "Terraform": sum(p.suffix == ".tf" for p in files),
        "Kubernetes/kustomize": sum(p.suffix in (".yaml", ".yml") and "compose" not in p.name for p in files),
        "compose": sum("compose" in p.name for p in files),
    }
    shown = ", ".join(f"{n} {k}" for k, n in kinds.items() if n)
    evidence = [ev.file(ctx, d, f"infrastructure as code: {shown} files") for d in ctx.deploy_dirs[:1]]
    ours, why = iac_is_the_projects(ctx, files)
    if why is not None:
        evidence.append(why)
    if not ours:
        return Finding(
            Status.PARTIAL,
            tuple(evidence),
            f"deploy this project: put its noria.yaml (project: {ctx.name}) in the deploy folder's config, "
            "or give the project a deploy/ folder of its own",
        )
    return Finding(Status.MET, tuple(evidence))


@check(10, "IaC is in version control.")
def iac_versioned(ctx: Context) -> Finding:
    files = iac_files(ctx)
    if not files:
        return Finding(Status.NOT_MET, (), "write the infrastructure as code first (statement 9), then commit it")
    if not ctx.in_git:
        return Finding(Status.NOT_MET, (), "put the project in git: git init && git add -A && git commit")
    untracked = [p for p in files if not ctx.tracked(p)]
    changed = ctx.uncommitted(*ctx.deploy_dirs)
    evidence = [ev.git("git ls-files", f"{len(files) - len(untracked)} of {len(files)} IaC files tracked")]
    if changed:
        evidence.append(ev.git("git status", f"{len(changed)} uncommitted changes under the deploy folders"))
    if untracked or changed:
        names = ", ".join([ctx.rel(p) for p in untracked][:3] + changed[:3])
        return Finding(Status.PARTIAL, tuple(evidence), f"commit {names}")
    return Finding(Status.MET, tuple(evidence))


def through_pull_requests(ctx: Context, paths: list[Path], what: str) -> Finding:
    """Whether changes to ``paths`` (all, when empty) must and did go through pull requests."""
    if not ctx.in_git:
        return Finding(Status.NOT_MET, (), "put the project in git, then " + PROTECT)
    rules = ev.review_rules(ctx)
    history = ev.change_history(ctx, *paths)
    evidence = [ev.file(ctx, r.path, f"pull requests required, {r.approvals} approval(s)") for r in rules[:1]]
    evidence.append(ev.history_evidence(ctx, history, what))
    if not rules:
        if history.judged and not history.direct:
            return Finding(Status.PARTIAL, tuple(evidence), "nothing enforces it: " + PROTECT)
        return Finding(Status.NOT_MET, tuple(evidence), PROTECT)
    if history.direct:
        return Finding(
            Status.PARTIAL,
            tuple(evidence),
            f"{len(history.direct)} {what} reached the branch without a pull request: apply the rule on the "
            "hosting platform (deploy/github/apply.sh or its settings) and let no one push directly",
        )
    return Finding(Status.MET, tuple(evidence))


@check(11, "IaC changes go through pull requests.")
def iac_pull_requests(ctx: Context) -> Finding:
    if not iac_files(ctx):
        return Finding(Status.NOT_MET, (), "write the infrastructure as code first (statement 9)")
    return through_pull_requests(ctx, ctx.deploy_dirs, "changes to the infrastructure")


def delivery_workflows(ctx: Context, pattern: str) -> tuple[list[Workflow], list[Workflow]]:
    """(workflows run on a push to main whose commands match, the same run only by hand or schedule)."""
    rx = re.compile(pattern, re.I | re.M)
    matching = [w for w in ctx.workflows if rx.search(w.commands) and not w.reusable]
    return [w for w in matching if w.on_push_to_main], [w for w in matching if not w.on_push_to_main]


@check(12, "A merged change is applied to its environment by a CD pipeline.")
def cd_applies(ctx: Context) -> Finding:
    auto, manual = delivery_workflows(ctx, APPLY)
    if auto:
        envs = sorted({e for w in auto for e in w.environments})
        detail = "on every push to main: applies the infrastructure" + (f" to {', '.join(envs)}" if envs else "")
        return Finding(Status.MET, tuple(ev.workflow(w, detail) for w in auto))
    if manual:
        return Finding(
            Status.PARTIAL,
            tuple(ev.workflow(w, "applies the infrastructure, but only when started by hand") for w in manual),
            "run it on every push to main (on: push: branches: [main])",
        )
    return Finding(
        Status.NOT_MET,
        (),
        "add a CD workflow (.github/workflows/cd.yml) that applies deploy/ (terraform apply, kubectl apply -k) on "
        "every push to main",
    )


@check(13, "Only the CD pipeline deploys; individuals cannot.")
def only_cd_deploys(ctx: Context) -> Finding:
    auto, _ = delivery_workflows(ctx, APPLY)
    if not auto:
        return Finding(Status.NOT_MET, (), "deploy through a CD workflow first (statement 12)")
    gated = [w for w in auto if w.environments]
    evidence = [ev.workflow(w, f"deploys through environments {', '.join(sorted(set(w.environments)))}") for w in gated]
    declared = [
        p
        for base in ctx.bases()
        for p in [*ctx.walk(base / ".github"), *ctx.deploy_files(".json", ".yml", ".yaml", ".tf")]
        if "deployment_branch_policy" in ctx.text(p)
    ]
    if declared:
        evidence.append(ev.file(ctx, declared[0], "environments as code: deployments only from protected branches"))
    makefile = ctx.find("Makefile")
    by_hand = []
    if makefile is not None:
        for target in re.findall(r"(?m)^([a-z][\w-]*)\s*:", ctx.text(makefile)):
            if re.search(APPLY, ctx.make_recipe(target), re.I):
                by_hand.append(target)
    if by_hand:
        evidence.append(ev.file(ctx, makefile, f"make {', '.join(by_hand)} deploys from a workstation"))  # type: ignore[arg-type]
    if not gated:
        return Finding(
            Status.PARTIAL,
            tuple(evidence),
            "give the deploy jobs a GitHub environment (environment: production) holding the cluster credentials",
        )
    if not declared or by_hand:
        todo = []
        if not declared:
            todo.append(
                "declare the environments as code with a deployment branch policy (deploy/github/environments.json)"
            )
        if by_hand:
            todo.append(f"remove the deploying make targets ({', '.join(by_hand)})")
        return Finding(Status.PARTIAL, tuple(evidence), "; ".join(todo))
    return Finding(Status.MET, tuple(evidence))


@check(14, "At least two identical environments (preproduction and production).")
def two_environments(ctx: Context) -> Finding:
    envs = ev.environments(ctx)
    if not envs:
        return Finding(
            Status.NOT_MET, (), "define preprod and prod as overlays of one base (deploy/k8s/overlays/{preprod,prod})"
        )
    evidence = [ev.file(ctx, e.path, f"environment {e.name} ({e.kind})") for e in envs]
    if not ev.has_prod_and_preprod(envs):
        return Finding(
            Status.PARTIAL, tuple(evidence), "add the missing one: a production and a pre-production environment"
        )
    return Finding(Status.MET, tuple(evidence))


OBJECT_STORE = r"seaweedfs|minio|aws_s3_bucket|google_storage_bucket|azurerm_storage_account"
SHARED_DATA = r"(production|prod) data|data (in|per|across|for) (each|every|all)? ?environments?|shared data"


@check(15, "All environments see the same production data.")
def same_data(ctx: Context) -> Finding:
    envs = ev.environments(ctx)
    if len({e.name for e in envs}) < 2:
        return Finding(Status.NOT_MET, (), "define two environments first (statement 14)")
    evidence: list[Evidence] = []
    overrides = []
    for e in envs:
        for path in e.path.glob("*"):
            text = ctx.text(path) if path.is_file() else ""
            if re.search(r"NORIA_(DATA|STORAGE)__|dvc_remote|data_dir|data\.source", text):
                overrides.append(path)
    own_stores = [p for p in ctx.deploy_files(".tf") if re.search(OBJECT_STORE, ctx.text(p), re.I)]
    done, _ = filled(ctx.sections(SHARED_DATA))
    evidence += [ev.section(s, "how the environments get production data") for s in done[:1]]
    if overrides:
        evidence += [ev.file(ctx, p, "this environment changes the data settings") for p in overrides[:2]]
        return Finding(Status.PARTIAL, tuple(evidence), "let every environment read the same data remote")
    evidence.append(
        ev.config(ctx, "storage", "dvc_remote", detail="one data remote in the config every environment gets")
    )
    if done:
        return Finding(Status.MET, tuple(evidence))
    if own_stores:
        evidence.append(ev.file(ctx, own_stores[0], "each environment provisions its own object store"))
    return Finding(
        Status.PARTIAL,
        tuple(evidence),
        "say (and make true) how pre-production reads production's data: one shared data remote, or a sync, "
        "in a '## Production data in every environment' section of docs/deployment.md",
    )


def code_refs(ctx: Context, part: str) -> list[tuple[str, str]]:
    """(config key, module:function) the project's config names for one part: data, features or api."""
    c = ctx.project.config
    refs: list[tuple[str, str | None]] = []
    if part == "data":
        refs += [
            (f"data.tables.{t}.checks.{k.name}", k.function) for t, spec in c.data.tables.items() for k in spec.checks
        ]
        refs.append(("model.target.function", c.model.target.function if c.model.target else None))
    elif part == "features":
        f = ctx.features
        refs += [(f"features.sources.{n}", s.function) for n, s in f.sources.items()]
        refs += [(f"features.request_views.{n}", v.function) for n, v in f.request_views.items()]
        refs += [(f"features.derived.{n}", d.function) for n, d in f.derived.items()]
        refs.append(("features.request.timestamp", f.request.timestamp if f.request else None))
    else:
        r = c.serving.request
        refs += [("serving.request.model", r.model), ("serving.request.mapping", r.mapping)]
    return [(k, v) for k, v in refs if v and ":" in v]


def module_file(ctx: Context, ref: str) -> Path:
    module = ref.split(":", 1)[0]
    path = ctx.root / Path(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def config_files(ctx: Context) -> list[Path]:
    names = [ctx.root / "noria.yaml", ctx.root / "features.yaml"]
    return [p for p in names if p.is_file()] + sorted((ctx.root / "features").glob("*.y*ml"))


def versioned(ctx: Context, files: list[Path], what: str) -> Finding:
    if not ctx.in_git:
        return Finding(Status.NOT_MET, (), "put the project in git: git init && git add -A && git commit")
    files = list(dict.fromkeys(files))
    untracked = [p for p in files if not ctx.tracked(p)]
    changed = ctx.uncommitted(*files)
    names = ", ".join(ctx.rel(p) for p in files)
    evidence = [
        ev.git("git ls-files", f"{what}: {len(files) - len(untracked)} of {len(files)} files tracked ({names})")
    ]
    if untracked:
        return Finding(
            Status.PARTIAL, tuple(evidence), f"git add {' '.join(ctx.rel(p) for p in untracked)} and commit them"
        )
    if changed:
        evidence.append(ev.git("git status", f"uncommitted changes: {', '.join(changed[:4])}"))
        return Finding(Status.PARTIAL, tuple(evidence), f"commit {', '.join(changed[:4])}")
    return Finding(Status.MET, tuple(evidence))


@check(16, "Data gathering/cleaning code is in version control.")
def data_code_versioned(ctx: Context) -> Finding:
    files = [ctx.root / "noria.yaml"] + [module_file(ctx, r) for _, r in code_refs(ctx, "data")]
    return versioned(ctx, [p for p in files if p.is_file()], "the data schema, checks and label code")


@check(17, "Model code is in version control with data-prep and API code.")
def model_code_versioned(ctx: Context) -> Finding:
    refs = [r for part in ("data", "features", "api") for _, r in code_refs(ctx, part)]
    files = config_files(ctx) + [module_file(ctx, r) for r in refs]
    return versioned(ctx, [p for p in files if p.is_file()], "model, feature, data and API code in one repository")


@check(18, "Every code change goes through a pull request.")
def code_pull_requests(ctx: Context) -> Finding:
    return through_pull_requests(ctx, [] if ctx.root == ctx.repo else [ctx.root], "changes to the project")


@check(19, "A merge deploys automatically via CD.")
def merge_deploys(ctx: Context) -> Finding:
    auto, manual = delivery_workflows(ctx, BUILD)
    deploying = [w for w in auto if re.search(APPLY, w.commands, re.I | re.M)]
    if deploying:
        return Finding(
            Status.MET,
            tuple(ev.workflow(w, "on every push to main: builds the images and deploys them") for w in deploying),
        )
    if auto:
        return Finding(
            Status.PARTIAL,
            tuple(ev.workflow(w, "builds the images on a push to main, deploys nothing") for w in auto),
            "deploy the built images in the same workflow (kubectl apply -k deploy/k8s/overlays/preprod)",
        )
    if manual:
        return Finding(
            Status.PARTIAL,
            tuple(ev.workflow(w, "builds images only when started by hand") for w in manual),
            "run it on every push to main",
        )
    return Finding(
        Status.NOT_MET, (), "add .github/workflows/cd.yml: on a push to main, build the images and deploy them"
    )


FROM_LOCK = r"uv\s+sync\s+.*--(frozen|locked)|--require-hashes|uv\.lock|poetry\s+install|requirements"
# The editor's container (VS Code Dev Containers, Codespaces): JSON with // and /* */ comments.
DEV_CONTAINERS = (".devcontainer/devcontainer.json", ".devcontainer.json")
_JSONC_TOKENS = re.compile(r'("(?:\\.|[^"\\])*")|//[^\n]*|/\*.*?\*/', re.S)
LOCK_FILES = ("uv.lock", "poetry.lock", "Pipfile.lock", "conda-lock.yml", "requirements.lock")


@check(20, "The environment is defined as code and reproducible.")
def environment_as_code(ctx: Context) -> Finding:
    locks = [p for base in _up_to_repo(ctx) for name in LOCK_FILES if (p := base / name).is_file()]
    pinned = [
        p
        for base in ctx.bases()
        for p in base.glob("requirements*.txt")
        if "--hash=" in ctx.text(p) or all("==" in line for line in _requirements(ctx.text(p)))
    ]
    dockerfiles = [
        p
        for p in dict.fromkeys([*ctx.deploy_files(), *[f for b in ctx.bases() for f in b.glob("*Dockerfile*")]])
        if p.name == "Dockerfile" or p.name.endswith(".Dockerfile") or p.name.startswith("Dockerfile.")
    ]
    from_lock = [p for p in dockerfiles if re.search(FROM_LOCK, ctx.text(p))]
    evidence = [ev.file(ctx, p, "locked dependency versions") for p in (locks + pinned)[:1]]
    evidence += [ev.file(ctx, p, "image built from the locked versions") for p in from_lock[:2]]
    dev = dev_container(ctx)
    if dev is not None and re.search(FROM_LOCK, ctx.text(dev[1])):
        evidence.append(
            ev.file(
                ctx, dev[0], f"the editor's dev container is built from {ctx.rel(dev[1])}, the same locked versions"
            )
        )
    if (locks or pinned) and from_lock:
        return Finding(Status.MET, tuple(evidence))
    if locks or pinned or dockerfiles:
        todo = (
            "build the images from the lock file (uv sync --frozen in the Dockerfile)"
            if (locks or pinned)
            else ("lock the dependencies (uv lock) and install from the lock in the Dockerfile")
        )
        return Finding(Status.PARTIAL, tuple(evidence), todo)
    return Finding(Status.NOT_MET, (), "lock the environment (uv lock, commit uv.lock) and build an image from it")


def dev_container(ctx: Context) -> tuple[Path, Path] | None:
    """The project's (else the repository's) devcontainer.json and the Dockerfile its build section names.

    None when there is none, it is not JSON with comments, or its Dockerfile is missing.
    """
    for base in _up_to_repo(ctx):
        for name in DEV_CONTAINERS:
            spec = base / name
            if not spec.is_file():
                continue
            try:
                data = json.loads(_JSONC_TOKENS.sub(lambda m: m.group(1) or "", ctx.text(spec)))
            except json.JSONDecodeError:
                continue
            build = data.get("build") if isinstance(data, dict) else None
            dockerfile = build.get("dockerfile") if isinstance(build, dict) else None
            if isinstance(dockerfile, str) and (spec.parent / dockerfile).is_file():
                return spec, (spec.parent / dockerfile).resolve()
    return None


def _up_to_repo(ctx: Context) -> list[Path]:
    out = [ctx.root]
    for parent in ctx.root.parents:
        if not parent.is_relative_to(ctx.repo):
            break
        out.append(parent)
    return out


def _requirements(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith(("#", "-"))]


ALLOWED_PATCH = r"/spec/(replicas|minReplicas|maxReplicas)|/resources|/host|/tls|/metadata/(labels|annotations)"


@check(21, "The model code runs unchanged in every environment; deployment is the same everywhere.")
def same_everywhere(ctx: Context) -> Finding:
    envs = [e for e in ev.environments(ctx) if e.kind == "kustomize overlay"]
    if len(envs) < 2:
        tf = [e for e in ev.environments(ctx) if e.kind == "terraform"]
        if len(tf) >= 2:
            return Finding(
                Status.PARTIAL,
                tuple(ev.file(ctx, e.path, "Terraform environment") for e in tf),
                "deploy the model through one manifest base with an overlay per environment (kustomize)",
            )
        return Finding(Status.NOT_MET, (), "deploy every environment from one base (deploy/k8s/base + overlays)")
    evidence: list[Evidence] = []
    changes: list[str] = []
    for e in envs:
        for doc in ctx.yaml_docs(next(e.path.glob("kustomization.y*ml"))):
            if not isinstance(doc, dict):
                continue
            for key in ("configMapGenerator", "secretGenerator", "components"):
                if doc.get(key):
                    changes.append(f"{e.name}: {key}")
            for patch in doc.get("patches") or doc.get("patchesJson6902") or []:
                text = str(patch.get("patch", "")) if isinstance(patch, dict) else str(patch)
                for path in re.findall(r"path:\s*(\S+)", text):
                    if not re.search(ALLOWED_PATCH, path):
                        changes.append(f"{e.name}: {path}")
                if re.search(r"\b(command|args|env):", text):
                    changes.append(f"{e.name}: command/args/env")
        evidence.append(ev.file(ctx, e.path, f"overlay {e.name} of the shared base"))
    deploy_same = [w for w in ctx.workflows if w.on_push_to_main and len(set(w.environments)) >= 2]
    evidence += [
        ev.workflow(w, f"deploys the same build to {', '.join(sorted(set(w.environments)))}") for w in deploy_same
    ]
    if changes:
        return Finding(
            Status.PARTIAL,
            tuple(evidence),
            f"keep overlays to sizes and host names; they change {', '.join(changes[:4])}",
        )
    return Finding(Status.MET, tuple(evidence))


# --- lineage (22-26) ----------------------------------------------------------------------------

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
    lock = next((p for base in _up_to_repo(ctx) for name in LOCK_FILES if (p := base / name).is_file()), None)
    lineage, early = _lineage(
        ctx, "the environment", lock is not None, "lock the environment (uv lock): runs record its hash"
    )
    if early is not None:
        return early
    lin = lineage.lineage
    where = f"registry: {ctx.records.registry.subject}, run {lineage.run_id[:12]}"
    detail = f"python {lin.python}, {lin.platform}, noria {lin.noria_version}"
    if not lin.uv_lock_sha256:
        return Finding(
            Status.PARTIAL,
            (ev.record(where, detail + ", no lock file hash"),),
            "lock the environment (uv lock) and retrain",
        )
    return Finding(Status.MET, (ev.record(where, detail + f", uv.lock sha256 {lin.uv_lock_sha256[:12]}"),))


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


# --- retraining and rollback ----------------------------------------------------------------------


def scheduled(ctx: Context, pattern: str) -> list[Evidence]:
    """Something that runs ``pattern`` regularly: a scheduled workflow, an active CronJob, a DAG with a schedule."""
    rx = re.compile(pattern, re.I | re.M)
    found = [
        ev.workflow(w, f"scheduled ({', '.join(w.schedules)})")
        for w in ctx.workflows
        if w.schedules and rx.search(w.commands)
    ]
    for path, doc in ctx.kinds("CronJob"):
        spec = doc.get("spec") or {}
        if not spec.get("suspend") and rx.search(str(spec.get("jobTemplate"))):
            found.append(ev.file(ctx, path, f"CronJob {doc.get('metadata', {}).get('name')} ({spec.get('schedule')})"))
    for base in ctx.bases():
        for dag in sorted((base / "dags").glob("*.py")) if (base / "dags").is_dir() else []:
            if rx.search(ctx.text(dag)) and "schedule" in ctx.text(dag):
                found.append(ev.file(ctx, dag, "an Airflow DAG with a schedule"))
    return found


@check(27, "A motivated retraining strategy exists.")
def retraining_strategy(ctx: Context) -> Finding:
    policy = ctx.project.config.monitoring.policy
    triggers = [
        name
        for name, on in (
            ("drift on an important feature", policy.on_drift),
            (f"live metric {policy.metric_drop} below the holdout", policy.metric_drop is not None),
            (f"every {policy.every_windows} windows", policy.every_windows is not None),
        )
        if on
    ]
    if not policy.enabled or not triggers:
        return Finding(
            Status.NOT_MET,
            (ev.config(ctx, "monitoring", "policy", detail="no retraining trigger on"),),
            "set monitoring.policy (on_drift, metric_drop, every_windows) in noria.yaml",
        )
    evidence = [ev.config(ctx, "monitoring", "policy", detail=f"retrain on {'; '.join(triggers)}")]
    done, _ = filled(ctx.sections(r"retrain"))
    evidence += [ev.section(s, "the strategy's motivation") for s in done[:1]]
    runs = scheduled(ctx, RUN_TRAINING)
    evidence += runs[:2]
    decisions = ctx.records.decisions
    if decisions:
        evidence.append(
            ev.record(ctx.rel(ctx.records.monitoring_dir / "decisions.jsonl"), f"{len(decisions)} decisions")
        )
    todo = []
    if not done:
        todo.append("write why and when the model is retrained (docs/runbooks/retrain.md)")
    if not runs:
        todo.append("run `noria monitor run` on a schedule (a scheduled workflow or CronJob)")
    if todo:
        return Finding(Status.PARTIAL, tuple(evidence), "; ".join(todo))
    return Finding(Status.MET, tuple(evidence))


@check(28, "A rollback to the previous model version exists.")
def rollback(ctx: Context) -> Finding:
    done, _ = filled(ctx.sections(r"roll ?back"))
    evidence = [ev.section(s, "rollback runbook") for s in done[:1]]
    view = ctx.records.registry
    previous = [e for e in view.events if e.get("from") is not None or e.get("action") == "rollback"]
    if previous:
        last = previous[-1]
        evidence.append(
            ev.record(
                f"registry: {view.model} champion history",
                f"{last.get('action')} v{last.get('from')} -> v{last.get('version')}",
            )
        )
    todo = []
    if not done:
        todo.append(f"write the rollback runbook (docs/runbooks/rollback.md: noria rollback {view.model} --reason ...)")
    if not previous:
        todo.append("there is no previous champion to return to yet (promote a second version through the gate)")
    if not todo:
        return Finding(Status.MET, tuple(evidence))
    return Finding(Status.PARTIAL if evidence else Status.NOT_MET, tuple(evidence), "; ".join(todo))
