"""Section 2, traceability and reproducibility: the infrastructure and its delivery (statements 9-15).

Infrastructure as code is what the deploy folders hold (Terraform, kustomize/Kubernetes
manifests, Helm charts, compose files); for a project in a sub-folder of a repository it must
name the project (a copy of its ``noria.yaml``, or its name) to be the project's own.
Continuous delivery is a GitHub Actions workflow run on a push to the main branch (the local
reusable workflows it calls included). The rest of the section: :mod:`.checks_reproducibility`
(16-21), :mod:`.checks_lineage` (22-26), :mod:`.checks_retraining` (27-28).
"""

from __future__ import annotations

import re
from pathlib import Path

from noria.maturity import _evidence as ev
from noria.maturity._context import Context, Workflow
from noria.maturity._model import Evidence, Finding, Status
from noria.maturity._registry import check
from noria.maturity.checks_documentation import filled

APPLY = (
    r"terraform\s+(-chdir=\S+\s+)?apply|kubectl\b.*\bapply\b|kustomize\b.*\|\s*kubectl"
    r"|helm\s+(upgrade|install)|pulumi\s+up|cdk\s+deploy"
)
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
SHARED_REMOTE = "NORIA_DATA_S3_ENDPOINT_URL"  # the data remote's own endpoint (noria.s3.DATA_ENDPOINT_VARIABLE)


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
    # each environment has its own store: the data remote must still be production's (noria.s3.DATA_VARIABLES)
    wired = [p for p in ctx.deploy_files(".yaml", ".yml", ".tf") if SHARED_REMOTE in ctx.text(p)]
    if done and (wired or not own_stores):
        evidence += [ev.file(ctx, p, "the pods read the data remote on production's store") for p in wired[:1]]
        return Finding(Status.MET, tuple(evidence))
    if own_stores:
        evidence.append(ev.file(ctx, own_stores[0], "each environment provisions its own object store"))
    if done:
        return Finding(
            Status.PARTIAL,
            tuple(evidence),
            "each environment provisions its own object store and no deploy file points the data remote at "
            f"production's: give the pipeline pods {SHARED_REMOTE} and its read-only keys (docs/deploying.md)",
        )
    return Finding(
        Status.PARTIAL,
        tuple(evidence),
        "say (and make true) how pre-production reads production's data: one shared data remote, or a sync, "
        "in a '## Production data in every environment' section of the deployment docs (e.g. docs/deploying.md)",
    )
