"""Alerts reach people: a real Prometheus and a real Alertmanager (Debian's) deliver to a webhook.

deploy/alertmanager/alertmanager.yml is run as it is, but for its receivers' URLs: in production
each receiver reads its webhook URL from a file of a Kubernetes Secret (``url_file``, which
Debian bookworm's Alertmanager 0.25 does not know), so the test renders each ``url_file`` as a
``url`` on a webhook server of its own (one path per receiver). Routes, grouping, timings and
inhibitions are the repository's.

Prometheus loads the repository's rules (deploy/prometheus/rules/noria.yml) and its
``alerting`` section (pointed at the test's Alertmanager), plus one always-firing rule without
a team (the platform route). It scrapes a real exporter (:class:`MonitoringCollector`) over
delivery records written by the batch code's own writer: one model whose newest delivery is
short, one whose only delivery failed. The repository's NoriaBatchDeliveryShort and
NoriaBatchDeliveryFailed fire and must arrive, with their labels, at the ml receiver's webhook;
the Grafana dashboard's batch delivery panels must show data.

Binaries: ``prometheus`` and ``prometheus-alertmanager`` (or upstream's ``alertmanager``), and
``amtool`` for the routing table; scripts/system_deps.sh installs them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, make_wsgi_app
from tests.conftest import free_port, require_binary
from tests.integration.test_prometheus_live import _stop, _wait_http

from noria.monitoring.exporter import Deliveries, MonitoringCollector
from noria.serving.batch_records import DeliveryRecord, write_record

ROOT = Path(__file__).parents[2]
ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
RULES = ROOT / "deploy" / "prometheus" / "rules" / "noria.yml"
K8S_RULES = ROOT / "deploy" / "k8s" / "base" / "servicemonitor.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "noria.json"
CHECK_RULE = {
    "groups": [
        {
            "name": "alert-path-check",
            # `for`: fire once Prometheus has found its Alertmanager (an alert firing before that is
            # only sent again a minute later)
            "rules": [
                {"alert": "NoriaAlertPathCheck", "expr": "vector(1)", "for": "5s", "labels": {"severity": "warning"}}
            ],
        }
    ]
}


def alertmanager_binary() -> str:
    """Upstream's name, else Debian's; neither: skip (fail in CI) naming scripts/system_deps.sh."""
    return shutil.which("alertmanager") or require_binary("prometheus-alertmanager")


def rendered(hook: str) -> dict[str, Any]:
    """The repository's Alertmanager config, each receiver's webhook URL file read as ``hook/<receiver>``."""
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER.read_text(encoding="utf-8"))
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            assert "url" not in webhook, "a webhook URL in the file: it is a secret, read it from url_file"
            assert webhook.pop("url_file").startswith("/etc/alertmanager/secrets/noria-alert-webhooks/")
            webhook["url"] = f"{hook}/{receiver['name']}"
    return config


class _Hook(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, Any]]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _QuietWSGI(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve(server: ThreadingHTTPServer | WSGIServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


def _deliver(folder: Path, model: str, when: datetime, rows: int, status: str = "succeeded") -> None:
    stamp = when.isoformat(timespec="seconds")
    write_record(
        folder,
        DeliveryRecord(
            id=f"{model}-{when:%H%M%S}",
            kind="batch_predict",
            status=status,
            input="requests.parquet",
            output="scored.parquet",
            rows_in=rows,
            rows_out=rows if status == "succeeded" else 0,
            model_name=model,
            model_version=1,
            model_alias="champion",
            run_id=None,
            started_at=stamp,
            finished_at=stamp,
            seconds=1.0,
            error=None if status == "succeeded" else "the target system refused the file",
        ),
    )


@pytest.fixture
def deliveries(tmp_path: Path) -> Deliveries:
    """churn: 1000-1200 rows, then 200 (short); upsell: its one delivery failed."""
    folder = tmp_path / "deliveries"
    now = datetime.now(UTC)
    for hours, rows in ((4, 1000), (3, 1100), (2, 1200), (1, 200)):
        _deliver(folder, "churn", now - timedelta(hours=hours), rows)
    _deliver(folder, "upsell", now - timedelta(minutes=30), 0, status="failed")
    return Deliveries(folder, "shop", late_after_seconds=86400 * 2, short_ratio=0.5)


@pytest.fixture
def stack(tmp_path: Path, deliveries: Deliveries) -> Iterator[tuple[list[tuple[str, dict[str, Any]]], str]]:
    """Exporter, webhook server, Alertmanager and Prometheus; yields what the webhook receives, and Prometheus's URL."""
    prometheus = require_binary("prometheus")
    alertmanager = alertmanager_binary()
    registry = CollectorRegistry()
    registry.register(MonitoringCollector(None, deliveries=deliveries))
    exporter = make_server("127.0.0.1", free_port(), make_wsgi_app(registry), handler_class=_QuietWSGI)
    posts: list[tuple[str, dict[str, Any]]] = []
    hook = ThreadingHTTPServer(("127.0.0.1", free_port()), type("Hook", (_Hook,), {"received": posts}))
    am_port, prom_port = free_port(), free_port()

    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(rendered(f"http://127.0.0.1:{hook.server_port}")))
    (tmp_path / "check.yml").write_text(yaml.safe_dump(CHECK_RULE))
    config = yaml.safe_load(PROMETHEUS.read_text(encoding="utf-8"))
    config["global"] |= {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(RULES), str(tmp_path / "check.yml")]
    config["scrape_configs"][0]["static_configs"][0]["targets"] = [f"127.0.0.1:{exporter.server_port}"]
    [manager] = config["alerting"]["alertmanagers"]
    manager["static_configs"][0]["targets"] = [f"127.0.0.1:{am_port}"]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))

    threads = [_serve(exporter), _serve(hook)]
    started: list[subprocess.Popen[bytes]] = []
    am_log, prom_log = tmp_path / "alertmanager.log", tmp_path / "prometheus.log"
    try:
        with am_log.open("wb") as out:
            args = [
                alertmanager,
                f"--config.file={tmp_path / 'alertmanager.yml'}",
                f"--storage.path={tmp_path / 'am'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
            ]
            started.append(subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT))
        _wait_http(f"http://127.0.0.1:{am_port}/-/ready", started[0], am_log, 30)
        with prom_log.open("wb") as out:
            args = [
                prometheus,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ]
            started.append(subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT))
        _wait_http(f"http://127.0.0.1:{prom_port}/-/ready", started[1], prom_log, 30)
        yield posts, f"http://127.0.0.1:{prom_port}"
    finally:
        for proc in reversed(started):
            _stop(proc)
        for server in (exporter, hook):
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join(timeout=10)


def _alerts(posts: list[tuple[str, dict[str, Any]]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(webhook path, alertname/model) -> the newest firing alert posted there."""
    found = {}
    for path, body in posts:
        for alert in body["alerts"]:
            if alert["status"] == "firing":
                labels = alert["labels"]
                found[(path, f"{labels['alertname']}/{labels.get('model', '')}")] = {**alert, "payload": body}
    return found


@pytest.mark.integration
def test_batch_delivery_alerts_reach_the_ml_webhook_and_the_rest_the_platform_one(
    stack: tuple[list[tuple[str, dict[str, Any]]], str],
) -> None:
    received, prom = stack
    wanted = {
        ("/noria-ml", "NoriaBatchDeliveryShort/churn"),
        ("/noria-ml", "NoriaBatchDeliveryFailed/upsell"),
        ("/noria-platform", "NoriaAlertPathCheck/"),
    }
    deadline = time.monotonic() + 120  # the route's group_wait is 30 s
    while not wanted <= set(alerts := _alerts(received)):
        assert time.monotonic() < deadline, f"after 120 s the webhook has {sorted(alerts)}"
        time.sleep(0.5)
    assert set(alerts) == wanted, "an alert went to a second receiver, or an unexpected one fired"

    short = alerts[("/noria-ml", "NoriaBatchDeliveryShort/churn")]
    assert short["labels"] == {
        "alertname": "NoriaBatchDeliveryShort",
        "project": "shop",
        "model": "churn",
        "severity": "warning",
        "team": "ml",
    }
    # 200 rows against the median 1100 of the three before
    assert short["annotations"]["summary"] == "The newest batch delivery of churn (shop) holds 18.18% of the usual rows"
    assert short["annotations"]["runbook"] == "docs/runbooks/batch-delivery.md"
    payload = short["payload"]
    assert payload["receiver"] == "noria-ml" and payload["status"] == "firing" and payload["version"] == "4"
    assert payload["groupLabels"] == {"alertname": "NoriaBatchDeliveryShort", "project": "shop", "model": "churn"}

    failed = alerts[("/noria-ml", "NoriaBatchDeliveryFailed/upsell")]
    assert failed["labels"] | {"alertname": ""} == {
        "alertname": "",
        "project": "shop",
        "model": "upsell",
        "severity": "critical",
        "team": "ml",
    }
    assert failed["payload"]["receiver"] == "noria-ml"
    check = alerts[("/noria-platform", "NoriaAlertPathCheck/")]
    assert check["payload"]["receiver"] == "noria-platform" and check["labels"]["severity"] == "warning"

    # the dashboard's batch delivery panels show these series
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", []) if "noria_batch_" in t["expr"]]
    assert len(exprs) >= 4
    for expr in exprs:
        answer = httpx.get(f"{prom}/api/v1/query", params={"query": expr.replace("$job", "noria")}, timeout=10).json()
        assert answer["status"] == "success" and answer["data"]["result"], f"no data from {expr}"


def _rules() -> list[dict[str, Any]]:
    rules = [r for g in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"] for r in g["rules"]]
    for doc in yaml.safe_load_all(K8S_RULES.read_text(encoding="utf-8")):
        if doc["kind"] == "PrometheusRule":
            rules += [r for g in doc["spec"]["groups"] for r in g["rules"]]
    return [r for r in rules if "alert" in r]


def test_every_alert_of_the_repository_routes_to_its_team(tmp_path: Path) -> None:
    """amtool (Alertmanager's own routing code) on the rendered config: ml alerts to ml, the rest to platform."""
    amtool = require_binary("amtool")
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump(rendered("https://hooks.invalid")))
    done = subprocess.run([amtool, "check-config", str(config)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    rules = _rules()
    assert {r["alert"] for r in rules} >= {"NoriaBatchDeliveryLate", "NoriaServingDown", "NoriaServiceDown"}
    for rule in [*rules, {"alert": "Watchdog", "labels": {"severity": "none"}}]:
        labels = [f"alertname={rule['alert']}", *(f"{k}={v}" for k, v in rule.get("labels", {}).items())]
        done = subprocess.run(
            [amtool, "config", "routes", "test", f"--config.file={config}", *labels],
            capture_output=True,
            text=True,
        )
        expected = (
            "silent"
            if rule["alert"] == "Watchdog"
            else "noria-ml"
            if rule.get("labels", {}).get("team") == "ml"
            else "noria-platform"
        )
        assert done.stdout.strip() == expected, f"{rule['alert']}: {done.stdout}{done.stderr}"
