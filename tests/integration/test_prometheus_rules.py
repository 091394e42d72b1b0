"""Prometheus alert rules: syntax (`promtool check rules`) and behaviour (`promtool test rules`).

promtool is Debian's (apt-get install prometheus, done by scripts/system_deps.sh in CI).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import require_binary

PROM = Path(__file__).parents[2] / "deploy" / "prometheus"


def test_rules_are_valid() -> None:
    promtool = require_binary("promtool")
    done = subprocess.run(
        [promtool, "check", "rules", str(PROM / "rules" / "noria.yml")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_rule_has_a_passing_unit_test() -> None:
    promtool = require_binary("promtool")
    done = subprocess.run(
        [promtool, "test", "rules", str(PROM / "tests" / "noria.test.yml")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    import yaml

    rules = yaml.safe_load((PROM / "rules" / "noria.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load((PROM / "tests" / "noria.test.yml").read_text())
    tested = {t["alertname"] for case in tests["tests"] for t in case.get("alert_rule_test", []) if t.get("exp_alerts")}
    assert alerts == tested, f"rules without a firing test: {sorted(alerts - tested)}"


def test_prometheus_config_is_valid(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    done = subprocess.run(
        [promtool, "check", "config", str(PROM / "prometheus.yml")], capture_output=True, text=True, cwd=PROM
    )
    assert done.returncode == 0, done.stdout + done.stderr
