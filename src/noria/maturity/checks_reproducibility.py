"""Section 2, traceability and reproducibility: code and environment (statements 16-21).

The project's code is what its config names as ``module:function`` (data checks, label rule,
feature sources, request model) plus ``noria.yaml`` and ``features.yaml``; the environment is a
lock file the images (and the editor's dev container) are built from; every environment is an
overlay of one base that changes only sizes and host names.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from noria.maturity import _evidence as ev
from noria.maturity._context import Context
from noria.maturity._model import Evidence, Finding, Status
from noria.maturity._registry import check
from noria.maturity.checks_infrastructure import APPLY, delivery_workflows, through_pull_requests

BUILD = r"docker\s+(buildx\s+)?build|docker/build-push-action|buildah\s+bud|kaniko|\bko\s+build"


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
    locks = [p for base in up_to_repo(ctx) for name in LOCK_FILES if (p := base / name).is_file()]
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
    for base in up_to_repo(ctx):
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


def up_to_repo(ctx: Context) -> list[Path]:
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
