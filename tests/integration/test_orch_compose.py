"""deploy/compose/compose.yaml: valid for docker-compose, complete, and free of committed secrets.

The configuration is checked by Debian's `docker-compose config` (the Docker CLI here has no
compose plugin); no container starts.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import require_binary

COMPOSE_DIR = Path(__file__).resolve().parents[2] / "deploy" / "compose"
REPO = COMPOSE_DIR.parents[1]
EXPECTED = {
    "postgres", "seaweedfs", "s3-init", "mlflow", "redis", "airflow-init", "airflow-api-server",
    "airflow-scheduler", "airflow-dag-processor", "noria", "prometheus", "alertmanager", "grafana",
}  # fmt: skip
ONE_SHOT = {"s3-init", "airflow-init"}


def binds(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts (docker-compose 1 prints SRC:DST:MODE)."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("/"):
            found[target] = Path(source)
    return found


def compose_config(*args: str) -> subprocess.CompletedProcess[str]:
    docker_compose = require_binary("docker-compose")
    return subprocess.run(
        [docker_compose, "--project-directory", str(COMPOSE_DIR), "-f", str(COMPOSE_DIR / "compose.yaml"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(COMPOSE_DIR)},  # no stray variables fill the ${...}
    )


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    done = compose_config("--env-file", str(COMPOSE_DIR / ".env.example"), "config")
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def test_the_stack_is_valid_and_complete(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert set(services) == EXPECTED
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service["restart"] == "no"
        else:
            assert "healthcheck" in service and service["restart"] == "unless-stopped", name
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond this machine"
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image tag ({image})"
        if "build" in service:
            dockerfile = Path(service["build"]["context"]) / service["build"]["dockerfile"]
            declared = re.findall(r"^ARG (\w+)", dockerfile.read_text(), re.MULTILINE)
            for arg in service["build"].get("args", {}):
                assert arg in declared, f"{name}: {dockerfile.name} has no ARG {arg}"
        for source in binds(service).values():
            assert source.exists(), f"{name} mounts a missing {source}"
    assert services["noria"]["build"]["dockerfile"] == "deploy/docker/serving.Dockerfile"
    assert "airflow" in services["airflow-scheduler"]["build"]["args"]["INSTALL_EXTRAS"].split()
    assert services["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert set(resolved["volumes"]) >= {"postgres-data", "seaweedfs-data", "grafana-data", "prometheus-data"}


def test_secrets_come_only_from_the_env_file(resolved: dict[str, Any]) -> None:
    # Without a .env every secret is missing, and compose refuses to render the stack.
    done = compose_config("config")
    assert done.returncode != 0 and "set POSTGRES_PASSWORD in deploy/compose/.env" in done.stderr
    # The example holds placeholders only, and every resolved secret-looking value is one of them.
    example = dict(
        line.split("=", 1)
        for line in (COMPOSE_DIR / ".env.example").read_text().splitlines()
        if re.match(r"^[A-Z_]+=", line)
    )
    secrets = {k: v for k, v in example.items() if re.search("PASSWORD|SECRET|KEY", k) and k != "S3_ACCESS_KEY_ID"}
    assert secrets and set(secrets.values()) == {"CHANGE_ME"}
    raw = (COMPOSE_DIR / "compose.yaml").read_text()
    literal = re.search(
        r"^\s*(?![A-Z_]*_FILE:)[A-Z_]*(PASSWORD|SECRET|_KEY)[A-Z_]*:\s*(?!\$\{)\S.*$", raw, re.MULTILINE
    )
    assert literal is None, f"a literal secret in compose.yaml: {literal and literal.group(0)}"
    env = resolved["services"]["mlflow"]["environment"]
    assert env["MLFLOW_BACKEND_STORE_URI"] == "postgresql://mlflow:CHANGE_ME@postgres:5432/mlflow"
    assert "CHANGE_ME" not in " ".join(resolved["services"]["mlflow"]["command"])  # not visible in `ps`


def test_prometheus_scrapes_the_noria_service(resolved: dict[str, Any]) -> None:
    mounted = binds(resolved["services"]["prometheus"])
    config = yaml.safe_load(mounted["/etc/prometheus/prometheus.yml"].read_text())
    targets = [t for job in config["scrape_configs"] for c in job["static_configs"] for t in c["targets"]]
    assert "noria:8000" in targets  # the compose service name of the Noria API
    assert list(mounted["/etc/prometheus/rules"].glob("*.yml"))


def test_prometheus_sends_to_the_alertmanager_of_the_repository(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    config = yaml.safe_load(binds(services["prometheus"])["/etc/prometheus/prometheus.yml"].read_text())
    targets = [t for am in config["alerting"]["alertmanagers"] for c in am["static_configs"] for t in c["targets"]]
    assert targets == ["alertmanager:9093"]  # the compose service below, on Alertmanager's port
    alertmanager = services["alertmanager"]
    assert binds(alertmanager)["/etc/alertmanager/alertmanager.yml"] == REPO / "deploy/alertmanager/alertmanager.yml"
    routes = yaml.safe_load((REPO / "deploy/alertmanager/alertmanager.yml").read_text())
    files = {w["url_file"] for r in routes["receivers"] for w in r.get("webhook_configs", [])}
    # the entrypoint writes every file the receivers read, from .env, into the memory-only folder
    script = " ".join(alertmanager["command"])
    assert files and all(f'"$$dir/{Path(f).name}"' in script for f in files), script
    assert all(str(Path(f).parent) in alertmanager["tmpfs"][0] for f in files)
    assert {alertmanager["environment"][k] for k in ("ALERT_WEBHOOK_URL_PLATFORM", "ALERT_WEBHOOK_URL_ML")} == {
        "CHANGE_ME"
    }
