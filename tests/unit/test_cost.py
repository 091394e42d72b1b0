"""`noria cost`: a small kustomize project rendered by the real kubectl, the repository's prod
overlay, cron schedules, the errors, and the CLI's --json. Nothing is mocked; the test that
kubectl is missing runs with a PATH that holds no kubectl."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import missing
from typer.testing import CliRunner

from noria.cli import app
from noria.config import load_project, parse_config
from noria.cost import HOURS_PER_MONTH, estimate, price, runs_per_month
from noria.errors import ConfigError, ExternalToolError, NotFoundError

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """\
project: shop
data:
  tables:
    t:
      file: t.csv
      primary_key: [k]
      columns:
        k: {type: int}
  source: {kind: directory, path: raw}
cost:
  currency: USD
  prices: {cpu_hour: 0.04, gib_memory_hour: 0.005, gib_storage_month: 0.1, object_storage_gib_month: 0.02}
  job_minutes: {report: 30}
  environments:
    prod: {object_storage_gib: 100}
"""


def _pod(cpu: str | None, memory: str | None, init: tuple[str, str] | None = None) -> dict[str, Any]:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": "x", "resources": {"requests": requests}}]}
    if init:
        spec["initContainers"] = [
            {"name": "init", "image": "x", "resources": {"requests": dict(zip(("cpu", "memory"), init, strict=True))}}
        ]
    return {"metadata": {"labels": {"app": "a"}}, "spec": spec}


def _cron(name: str, schedule: str, job: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {"schedule": schedule, "jobTemplate": {"spec": job}},
    }


def _objects() -> list[dict[str, Any]]:
    api = _pod("250m", "512Mi", init=("1", "256Mi"))
    api["spec"]["containers"].append(
        {"name": "side", "image": "x", "resources": {"requests": {"cpu": "0.25", "memory": "0.5Gi"}}}
    )
    sel = {"matchLabels": {"app": "a"}}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "api"},
            "spec": {"replicas": 2, "selector": sel, "template": api},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"selector": sel, "template": _pod("500m", "1Gi")},
        },
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2,
                "maxReplicas": 5,
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db"},
            "spec": {
                "replicas": 2,
                "serviceName": "db",
                "selector": sel,
                "template": _pod("1", "2Gi"),
                "volumeClaimTemplates": [
                    {"metadata": {"name": "d"}, "spec": {"resources": {"requests": {"storage": "10Gi"}}}}
                ],
            },
        },
        _cron("nightly", "0 2 * * *", {"activeDeadlineSeconds": 3600, "template": _pod("2", "4Gi")}),
        _cron("report", "0 6 * * 1", {"template": _pod("1", "1Gi")}),
        _cron("nodeadline", "*/30 * * * *", {"template": _pod("1", "1Gi")}),
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "migrate"},
            "spec": {"parallelism": 2, "activeDeadlineSeconds": 1800, "template": _pod("500m", "512Mi")},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "noreq"},
            "spec": {"selector": sel, "template": _pod(None, None)},
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "50Gi"}}},
        },
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"}, "spec": {"ports": [{"port": 80}]}},
    ]


def _kubectl() -> None:
    """Skip locally when kubectl is absent (naming its install); in CI (CI=true) fail instead."""
    if shutil.which("kubectl") is None:
        message = "kubectl is not installed: apt-get install kubectl (https://kubernetes.io/docs/tasks/tools/)"
        missing(message)


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A project whose prod overlay sets api's replicas to 3 over a base of the objects above."""
    (tmp_path / "noria.yaml").write_text(CONFIG, encoding="utf-8")
    base = tmp_path / "deploy" / "k8s" / "base"
    prod = tmp_path / "deploy" / "k8s" / "overlays" / "prod"
    base.mkdir(parents=True)
    prod.mkdir(parents=True)
    (base / "all.yaml").write_text(yaml.safe_dump_all(_objects()), encoding="utf-8")
    (base / "kustomization.yaml").write_text("resources: [all.yaml]\n", encoding="utf-8")
    (prod / "kustomization.yaml").write_text(
        "resources: [../../base]\nreplicas:\n  - name: api\n    count: 3\n", encoding="utf-8"
    )
    return tmp_path


def hour(cpu: float, gib: float) -> float:
    return cpu * 0.04 + gib * 0.005


def _expected() -> dict[str, tuple[float, float]]:
    report_hours = round(round(52 / 12, 2) * 0.5, 2)  # 2025 has 52 Mondays
    return {
        "api": (3 * HOURS_PER_MONTH * hour(1, 1),) * 2,  # init container's 1 cpu > 0.25 + 0.25
        "web": (2 * HOURS_PER_MONTH * hour(0.5, 1), 5 * HOURS_PER_MONTH * hour(0.5, 1)),
        "db": (2 * (HOURS_PER_MONTH * hour(1, 2) + 10 * 0.1),) * 2,
        "nightly": (round(365 / 12, 2) * 1 * hour(2, 4),) * 2,
        "report": (report_hours * hour(1, 1),) * 2,
        "migrate": (2 * 0.5 * hour(0.5, 0.5),) * 2,
        "data": (50 * 0.1,) * 2,
        "cost.object_storage_gib": (100 * 0.02,) * 2,
        "nodeadline": (0.0, 0.0),
        "noreq": (0.0, 0.0),
    }


def test_a_rendered_kustomize_overlay_is_priced_per_workload(shop: Path) -> None:
    _kubectl()
    est = estimate(load_project(shop), "prod")
    got = {w.name: (w.cost_min, w.cost_max) for w in est.workloads}
    expected = _expected()
    assert set(got) == set(expected)  # the Service and the HPA are not workloads
    for name, (low, high) in expected.items():
        assert got[name][0] == pytest.approx(low, abs=0.006), name
        assert got[name][1] == pytest.approx(high, abs=0.006), name
    by = {w.name: w for w in est.workloads}
    assert (by["api"].replicas_min, by["api"].cpu, by["api"].memory_gib) == (3, 1.0, 1.0)  # the overlay's patch
    assert (by["web"].replicas_min, by["web"].replicas_max) == (2, 5)
    assert by["db"].storage_gib == 20.0 and by["nightly"].hours_month == pytest.approx(30.42)
    assert {(w.kind, w.name) for w in est.unpriced} == {("CronJob", "nodeadline"), ("Deployment", "noreq")}
    assert "cost.job_minutes.nodeadline" in by["nodeadline"].unpriced and "requests no cpu" in by["noreq"].unpriced
    assert est.total_min == pytest.approx(sum(v[0] for v in expected.values()), abs=0.02)
    assert est.total_max - est.total_min == pytest.approx(3 * HOURS_PER_MONTH * 0.025, abs=0.01)
    assert est.currency == "USD" and est.manifests.endswith("deploy/k8s/overlays/prod")


def test_the_repositorys_prod_overlay_is_priced_and_docs_show_the_figure() -> None:
    _kubectl()
    est = estimate(load_project(ROOT / "examples" / "flights"), "prod")
    assert est.manifests == "deploy/k8s/overlays/prod" and not est.unpriced
    by = {w.name: w for w in est.workloads}
    serving = by["noria-serving"]
    assert (serving.kind, serving.replicas_min, serving.replicas_max, serving.cpu, serving.memory_gib) == (
        "Deployment",
        3,
        10,
        0.5,
        2.0,
    )  # the HPA's bounds, the overlay's requests
    assert by["noria-features"].note.startswith("730 runs/month")  # hourly, at most 50 minutes each
    assert 0 < est.total_min < est.total_max
    page = " ".join((ROOT / "docs" / "deploying.md").read_text(encoding="utf-8").split())
    figure = f"{est.total_min:,.2f} {est.currency} to {est.total_max:,.2f} {est.currency} per month"
    assert figure in page, f"docs/deploying.md lacks {figure!r}: update its cost estimate (noria cost --markdown)"


def test_cli_json_for_scripts(shop: Path) -> None:
    _kubectl()
    done = CliRunner().invoke(app, ["--project", str(shop), "cost", "--env", "prod", "--json"])
    assert done.exit_code == 0, done.output
    payload = json.loads(done.stdout)
    assert payload["environment"] == "prod" and payload["currency"] == "USD"
    assert {u["name"] for u in payload["unpriced"]} == {"nodeadline", "noreq"}
    assert payload["total_min"] == pytest.approx(sum(w["cost_min"] for w in payload["workloads"]), abs=0.01)
    assert "unpriced: Deployment noreq" in done.stderr
    table = CliRunner().invoke(app, ["--project", str(shop), "cost", "--markdown"])
    assert table.exit_code == 0 and table.stdout.startswith("## Cost estimate: prod")
    assert f"**{payload['total_min']:,.2f} USD to" in table.stdout


def test_missing_kubectl_and_missing_overlay_say_how_to_fix(shop: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(NotFoundError, match="no manifests for environment 'staging'") as err:
        estimate(load_project(shop), "staging")
    assert "cost.environments.staging.manifests" in str(err.value.fix)
    monkeypatch.setenv("PATH", str(shop))  # a PATH without kubectl
    with pytest.raises(ExternalToolError, match="kubectl is not installed") as missing:
        estimate(load_project(shop), "prod")
    assert "install kubectl" in str(missing.value.fix)


@pytest.mark.parametrize(
    ("schedule", "runs"),
    [
        ("0 3 * * 1", 4.33),  # Mondays of 2025
        ("@daily", 30.42),
        ("*/15 * * * *", 2920.0),
        ("0 0 1 * mon", 5.17),  # day-of-month OR weekday: 12 firsts + 52 Mondays - 2 both
        ("0 9-17/2 * jan-mar mon-fri", 26.67),  # 64 weekdays x 5 hours / 12
        ("0 0 1 1 *", 0.08),
    ],
)
def test_cron_runs_per_month(schedule: str, runs: float) -> None:
    assert runs_per_month(schedule) == pytest.approx(runs)


@pytest.mark.parametrize("schedule", ["0 25 * * *", "* * *", "*/0 * * * *", "0 0 * foo *"])
def test_a_bad_schedule_names_it(schedule: str) -> None:
    with pytest.raises(ConfigError, match="schedule"):
        runs_per_month(schedule, "job")


def test_the_cost_commands_of_docs_deploying_md_run() -> None:
    _kubectl()
    page = (ROOT / "docs" / "deploying.md").read_text(encoding="utf-8")
    lines = [ln for m in re.finditer(r"```bash run\n(.*?)```", page, re.S) for ln in m[1].splitlines()]
    assert any(" cost " in ln for ln in lines)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NORIA_")}
    env |= {"MLFLOW_DISABLE_TELEMETRY": "true", "PATH": f"{Path(sys.executable).parent}:{env['PATH']}"}
    for line in lines:
        done = subprocess.run(line, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"`{line}` failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        assert "EUR" in done.stdout, line


def test_an_environment_overrides_prices_and_a_wrong_price_name_is_named() -> None:
    text = CONFIG.replace("prod: {object_storage_gib: 100}", "preprod: {prices: {cpu_hour: 0.08}}")
    config = parse_config(text).cost
    prod, preprod = price(_objects(), config, "prod", "x"), price(_objects(), config, "preprod", "x")
    api = {e: next(w for w in est.workloads if w.name == "api") for e, est in (("prod", prod), ("preprod", preprod))}
    assert api["prod"].cost_min == pytest.approx(2 * HOURS_PER_MONTH * hour(1, 1), abs=0.01)  # base replicas: 2
    assert api["preprod"].cost_min == pytest.approx(2 * HOURS_PER_MONTH * (0.08 + 0.005), abs=0.01)
    assert preprod.prices["cpu_hour"] == 0.08 and prod.prices["cpu_hour"] == 0.04
    with pytest.raises(ConfigError, match="cost.environments.preprod.prices"):
        parse_config(text.replace("cpu_hour: 0.08", "gpu_hour: 2"))
