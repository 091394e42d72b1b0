"""scripts/deployment_view.py: the deployment view of docs/architecture.md drawn from manifests.

`make lint` (scripts/check_deploy.py, check `deployment-view`) compares the page with the real
prod overlay; these tests pin what the view reads from a small set of manifests.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("deployment_view", ROOT / "scripts" / "deployment_view.py")
assert spec is not None and spec.loader is not None
dv = importlib.util.module_from_spec(spec)
sys.modules["deployment_view"] = dv
spec.loader.exec_module(dv)


def _pod(labels: dict[str, str], args: list[str]) -> dict[str, Any]:
    return {"metadata": {"labels": labels}, "spec": {"containers": [{"image": "reg/x/img:1.0", "args": args}]}}


def manifests(serving_ports: list[int]) -> list[dict[str, Any]]:
    serving = {"app": "serving"}
    job = {"app": "job"}
    return [
        {
            "kind": "Deployment",
            "metadata": {"name": "api"},
            "spec": {"replicas": 2, "template": _pod(serving, ["serve"])},
        },
        {
            "kind": "CronJob",
            "metadata": {"name": "train"},
            "spec": {
                "schedule": "0 3 * * 1",
                "jobTemplate": {"spec": {"template": _pod(job, ["cd x && noria pipeline run training"])}},
            },
        },
        {
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "api"},
            "spec": {"scaleTargetRef": {"name": "api"}, "minReplicas": 2, "maxReplicas": 5},
        },
        {"kind": "Service", "metadata": {"name": "api", "labels": serving}, "spec": {"selector": serving}},
        {
            "kind": "NetworkPolicy",
            "metadata": {"name": "a"},
            "spec": {
                "podSelector": {"matchLabels": serving},
                "egress": [{"ports": [{"port": p} for p in [53, *serving_ports]]}],
            },
        },
        {
            "kind": "NetworkPolicy",
            "metadata": {"name": "b"},
            "spec": {"podSelector": {"matchLabels": job}, "egress": [{"ports": [{"port": 5000}, {"port": 8333}]}]},
        },
    ]


def test_the_view_draws_workloads_their_schedule_scale_and_connections() -> None:
    text = dv.view(manifests([5000, 6379]))
    assert "Deployment api<br/>2-5 replicas (autoscaled)<br/>noria serve" in text
    assert "train<br/>schedule 0 3 * * 1<br/>noria pipeline run training" in text
    assert "svc_api --> api" in text
    assert "api --> mlflow" in text and "api --> redis" in text and "api --> s3" not in text
    assert "train --> s3" in text
    assert (
        "| `api` | Deployment | `noria serve` | 2-5 replicas (autoscaled) | `img:1.0` | MLflow server :5000, Redis :6379 |"
        in text
    )


def test_a_port_no_platform_service_listens_on_fails_the_view() -> None:
    with pytest.raises(SystemExit, match=r"port\(s\) \[9999\]"):
        dv.view(manifests([5000, 9999]))


def test_the_page_holds_the_generated_section() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert dv.BEGIN in text and dv.END in text and "## Deployment" in text
