"""Keep deploy/k8s/base/monitoring/ in step with deploy/prometheus/rules and deploy/grafana/dashboards.

    python scripts/sync_k8s_monitoring.py           # write the copies
    python scripts/sync_k8s_monitoring.py --check   # exit 1 naming what differs (`make lint` runs it)

Kustomize reads files only inside its base (its load restrictor), and the Prometheus operator
takes alert rules as a PrometheusRule resource, not as a rules file, so the Kubernetes base
holds generated copies of the two sources the compose stack and the tests use:

- ``model-rules.yaml``: a PrometheusRule whose ``spec`` is deploy/prometheus/rules/noria.yml
  (the model alerts: drift, the live primary metric against the holdout, the KPI, missing labels,
  ...; promtool-tested there);
- ``noria-dashboard.json``: the Grafana dashboard, which kustomization.yaml puts in a
  ConfigMap labelled ``grafana_dashboard: "1"`` for kube-prometheus-stack's Grafana sidecar.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "prometheus" / "rules" / "noria.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "noria.json"
TARGET = ROOT / "deploy" / "k8s" / "base" / "monitoring"
HEADER = """\
# GENERATED from deploy/prometheus/rules/noria.yml by scripts/sync_k8s_monitoring.py -- do not edit.
# The model alerts (drift, performance on delayed labels, ...) as the Prometheus operator takes them.
"""


def expected() -> dict[Path, str]:
    """Each generated file and the text it must hold."""
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    resource = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "noria-model", "labels": {"app.kubernetes.io/name": "noria-serving"}},
        "spec": {"groups": rules["groups"]},
    }
    text = HEADER + yaml.safe_dump(resource, sort_keys=False, width=1000, allow_unicode=True)
    return {
        TARGET / "model-rules.yaml": text,
        TARGET / "noria-dashboard.json": DASHBOARD.read_text(encoding="utf-8"),
    }


def stale() -> list[Path]:
    """The generated files that are missing or differ from their sources."""
    return [path for path, text in expected().items() if not path.is_file() or path.read_text(encoding="utf-8") != text]


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Only check; exit 1 if a copy is stale.")
    args = parser.parse_args(argv)
    if args.check:
        outdated = stale()
        for path in outdated:
            print(f"{_shown(path)} is stale -- fix: python scripts/sync_k8s_monitoring.py", file=sys.stderr)
        return 1 if outdated else 0
    TARGET.mkdir(parents=True, exist_ok=True)
    for path, text in expected().items():
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        print(f"wrote {_shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
