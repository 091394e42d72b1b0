"""The deploy checkers of scripts/_deploy_checks.py catch what they claim to catch.

`make lint` runs them on the real manifests (scripts/check_deploy.py); here each one is fed a
small good and a small broken input. The Terraform and KServe checkers need python-hcl2 and
KServe's classes, which live in .tools/deploy-venv only, so they are exercised by make lint
(and the Terraform checker's rule on secrets here, under that interpreter).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import _deploy_checks as checks

SHA = "11bd71901bbe5b1630ceea73d27597364c9af683"


def _deployment(replicas: int, image: str, host: str) -> list[dict[str, object]]:
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "noria-serving", "labels": {"environment": "x"}},
            "spec": {
                "replicas": replicas,
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "serving", "image": image, "resources": {"limits": {"cpu": str(replicas)}}}
                        ]
                    }
                },
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "api"},
            "spec": {"rules": [{"host": host}]},
        },
    ]


def _write(path: Path, docs: list[dict[str, object]]) -> Path:
    path.write_text(yaml.safe_dump_all(docs))
    return path


def test_environments_may_differ_in_replicas_resources_and_hosts(tmp_path: Path) -> None:
    preprod = _write(tmp_path / "preprod.yaml", _deployment(2, "noria:1", "pre.example.com"))
    prod = _write(tmp_path / "prod.yaml", _deployment(3, "noria:1", "example.com"))
    assert checks.alike([str(preprod), str(prod)]) == 0


def test_environments_differing_in_image_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    preprod = _write(tmp_path / "preprod.yaml", _deployment(2, "noria:1", "a"))
    prod = _write(tmp_path / "prod.yaml", _deployment(2, "noria:2", "a"))
    assert checks.alike([str(preprod), str(prod)]) == 1
    assert "spec.template.spec.containers.0.image" in capsys.readouterr().err


def _github(tmp_path: Path, workflow: dict[str, object], contexts: list[str]) -> Path:
    github = tmp_path / ".github"
    (github / "workflows").mkdir(parents=True)
    (github / "workflows" / "ci.yml").write_text(yaml.safe_dump(workflow))
    (github / "CODEOWNERS").write_text("* @org/team\n")
    (tmp_path / "deploy" / "github").mkdir(parents=True)
    protection = {"required_status_checks": {"contexts": contexts}}
    (tmp_path / "deploy" / "github" / "branch-protection.json").write_text(json.dumps(protection))
    return github


def test_pinned_least_privilege_workflow_passes(tmp_path: Path) -> None:
    workflow = {"permissions": {"contents": "read"}, "jobs": {"lint": {"steps": [{"uses": f"actions/checkout@{SHA}"}]}}}
    assert checks.workflows([str(_github(tmp_path, workflow, ["lint"]))]) == 0


def test_unpinned_action_missing_permissions_and_unknown_check_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workflow = {"jobs": {"lint": {"steps": [{"uses": "actions/checkout@v4"}]}}}
    assert checks.workflows([str(_github(tmp_path, workflow, ["lint", "image"]))]) == 1
    err = capsys.readouterr().err
    assert "not pinned to a commit SHA" in err
    assert "no top-level permissions" in err
    assert "'image' is no job of ci.yml" in err


def test_checkov_skip_without_reason_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / ".github").mkdir()
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "ok.tf").write_text(
        "#checkov:skip=CKV_K8S_43:The image is pinned by digest at deploy time\n"
    )
    assert checks.skips([str(tmp_path)]) == 0
    (tmp_path / "deploy" / "bad.yaml").write_text("    checkov.io/skip1: CKV_K8S_35\n")
    assert checks.skips([str(tmp_path)]) == 1
    assert "bad.yaml:1: skip of CKV_K8S_35 without a reason" in capsys.readouterr().err


def test_k8s_monitoring_copies_are_generated_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Kubernetes base carries the model alerts and the dashboard: generated, and a stale copy is caught."""
    import sync_k8s_monitoring as sync

    monkeypatch.setattr(sync, "TARGET", tmp_path)
    assert len(sync.stale()) == 2 and sync.main(["--check"]) == 1
    assert sync.main([]) == 0 and sync.stale() == []
    rule = yaml.safe_load((tmp_path / "model-rules.yaml").read_text())
    source = yaml.safe_load(sync.RULES.read_text())
    assert rule["kind"] == "PrometheusRule" and rule["spec"]["groups"] == source["groups"]
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert "NoriaImportantFeatureDrift" in alerts
    assert json.loads((tmp_path / "noria-dashboard.json").read_text()) == json.loads(sync.DASHBOARD.read_text())
    (tmp_path / "noria-dashboard.json").write_text("{}")
    assert sync.stale() == [tmp_path / "noria-dashboard.json"]
    monkeypatch.undo()
    assert sync.stale() == []  # the committed copies are current


def test_a_terraform_secret_comes_from_the_deploy_workflow_never_from_tfvars(tmp_path: Path) -> None:
    """Sensitive variables (the alert webhooks) are passed by deploy.yml as TF_VAR_..., not committed.

    Runs the checker under the tools' interpreter (python-hcl2), made as `make lint` makes it.
    """
    import shutil
    import subprocess

    import check_deploy

    repo = Path(__file__).resolve().parents[2]
    python = check_deploy._deploy_tools() / "python"
    shutil.copytree(repo / "deploy" / "terraform", tmp_path / "deploy" / "terraform")
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    deploy = tmp_path / ".github" / "workflows" / "deploy.yml"
    shutil.copy(repo / ".github" / "workflows" / "deploy.yml", deploy)

    def check() -> subprocess.CompletedProcess[str]:
        command = [python, repo / "scripts" / "check_deploy.py", "_terraform", tmp_path / "deploy" / "terraform"]
        return subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=120)

    assert check().returncode == 0, check().stderr
    deploy.write_text(deploy.read_text().replace("TF_VAR_alert_webhook_urls:", "ALERT_URLS:"))
    tfvars = tmp_path / "deploy" / "terraform" / "envs" / "prod" / "terraform.tfvars"
    tfvars.write_text(tfvars.read_text() + 'alert_webhook_urls = { platform = "https://chat/hook" }\n')
    done = check()
    assert done.returncode == 1
    assert "envs/prod/terraform.tfvars: alert_webhook_urls is a secret, it must not be committed" in done.stderr
    assert "envs/preprod: secret alert_webhook_urls is not passed by .github/workflows/deploy.yml" in done.stderr


def _ingress(*paths: tuple[str, str]) -> dict[str, object]:
    backend = {"service": {"name": "noria-serving", "port": {"name": "http"}}}
    entries = [{"path": p, "pathType": kind, "backend": backend} for p, kind in paths]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "noria-serving"},
        "spec": {"rules": [{"host": "noria.example.com", "http": {"paths": entries}}]},
    }


def test_the_public_ingress_routes_only_the_api(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _write(tmp_path / "good.yaml", [_ingress(("/predict", "Exact"), ("/health", "Exact"), ("/ready", "Exact"))])
    assert checks.public_paths([str(good)]) == 0
    # The whole service under "/" (what the base had) exposes /metrics, /docs, /version and /reload.
    bad = _write(tmp_path / "bad.yaml", [_ingress(("/", "Prefix")), _ingress(("/metrics", "Exact"))])
    assert checks.public_paths([str(bad)]) == 1
    err = capsys.readouterr().err
    assert "path / (Prefix) is public" in err and "path /metrics (Exact) is public" in err


def test_every_platform_service_has_a_network_policy_naming_its_clients(tmp_path: Path) -> None:
    """Runs the checker under the tools' interpreter (python-hcl2) on the real platform module and
    the rendered prod overlay, then on copies missing Redis's policy and admitting any pod to MLflow."""
    import shutil
    import subprocess

    import check_deploy

    repo = Path(__file__).resolve().parents[2]
    python = check_deploy._deploy_tools() / "python"
    rendered = tmp_path / "prod.yaml"
    rendered.write_text(subprocess.run(
        [str(check_deploy._deploy_tools() / "kubectl"), "kustomize", str(repo / "deploy/k8s/overlays/prod")],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout)  # fmt: skip
    module = tmp_path / "platform"
    shutil.copytree(repo / "deploy" / "terraform" / "modules" / "platform", module)

    def check() -> subprocess.CompletedProcess[str]:
        command = [python, repo / "scripts" / "check_deploy.py", "_platform_policies", module, rendered]
        return subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=120)

    assert check().returncode == 0, check().stderr
    policies = module / "networkpolicy.tf"
    text = policies.read_text()
    start = text.index("    redis = {")
    end = text.index("    seaweedfs-s3 = {")
    broken = text[:start] + text[end:]
    broken = broken.replace(
        "clients = { serving = local.noria_serving, pipeline = local.noria_pipeline }\n    }\n    postgresql",
        'clients = { serving = local.noria_serving, anyone = { "app.kubernetes.io/name" = "debug" } }\n'
        "    }\n    postgresql",
    )
    policies.write_text(broken)
    done = check()
    assert done.returncode == 1
    assert "redis has no NetworkPolicy" in done.stderr
    assert (
        "mlflow admits ['debug', 'noria-serving'], expected exactly ['noria-pipeline', 'noria-serving']" in done.stderr
    )
    assert "mlflow admits ['debug'], which no pod of deploy/k8s is labelled" in done.stderr
