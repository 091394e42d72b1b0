"""Small projects for the maturity checks: a *mature* repository and a *bare* one.

The mature one is a complete, small repository of an online shop's "will this order be returned"
model: signed-off documents, CI and CD workflows, deploy folders with two environments, alert
rules and receivers, pre-commit, CODEOWNERS, branch protection as code, a changelog with a tagged
release, and a git history whose changes came through pull requests. Its records are real: a
data snapshot made by ``noria data ingest`` (DVC), two model versions registered in MLflow with
the lineage Noria's training records (the second promoted over the first), a feature-usage
record, monitoring records written through the monitoring store, a prediction log file and a
batch delivery record. The bare one is a valid ``noria.yaml`` in a git repository, nothing more.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

from noria.config import Project, load_project
from noria.maturity import Finding, check_of
from noria.maturity._context import Context

TODAY = datetime.now(UTC).date().isoformat()
NAME = "shop"
MODEL = "order-returns"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@localhost",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@localhost",
}

CONFIG = f"""\
project: {NAME}
description: Predict whether an order placed in the shop will be returned.
data:
  source: {{kind: directory, path: raw}}
  tables:
    orders:
      file: orders.csv
      description: One row per order placed in the shop.
      primary_key: [order_id]
      partition: {{timestamp: placed_at}}
      columns:
        order_id: {{type: int, description: "The order's number."}}
        placed_at: {{type: timestamp, description: "When the order was placed (UTC)."}}
        customer: {{type: str, description: "The customer's id."}}
        amount: {{type: float, min: 0, description: "Order total in euros."}}
        returned: {{type: int, nullable: true, min: 0, max: 1, description: "1 when the order came back."}}
      checks:
        - name: positive_amount
          function: "shop_checks:positive_amount"
          reason: an order of nothing is a test order, not a customer's
storage:
  dvc_remote: data/dvc-remote
model:
  name: {MODEL}
  task: binary
  target: {{column: returned, threshold: 0, name: returned}}
training:
  train: {{from: 2024-01, to: 2024-02}}
  test: {{from: 2024-03, to: 2024-03}}
serving:
  request:
    example: {{order_id: 1, placed_at: "2024-03-01T10:00:00Z", customer: c1, amount: 20.0}}
  ab:
    sticky_key: customer
    challenger_fraction: 0.1
monitoring:
  policy: {{on_drift: true, metric_drop: 0.03}}
  kpi: {{metric: recall, name: share of returns flagged before shipping, target: 0.4}}
"""

BARE_CONFIG = """\
project: bare
data:
  source: {kind: directory, path: raw}
  tables:
    orders:
      file: orders.csv
      primary_key: [order_id]
      columns:
        order_id: {type: int}
        returned: {type: int, nullable: true}
model:
  task: binary
  target: {column: returned, threshold: 0}
serving:
  require_key_for_predict: false
  prediction_log: {enabled: false}
  explanations: {enabled: false}
monitoring:
  policy: {on_drift: false}
"""

FEATURES = """\
request:
  table: orders
  columns: [order_id, placed_at, customer, amount]
  ids: [order_id]
  timestamp: shop_features:placed_time
entities:
  customer: {description: "The customer's id."}
sources:
  customer_orders:
    description: Orders of each customer placed before the current one.
    function: shop_features:customer_orders
    tables:
      orders: [placed_at, customer, amount]
feature_views:
  customer_history:
    description: What the customer ordered in the last 30 days.
    source: customer_orders
    entities: [customer]
    ttl: 30d
    features:
      orders_30d: {type: int, description: "Orders of the customer in the last 30 days."}
request_views:
  order:
    description: What the order itself says.
    passthrough: [amount]
derived:
  large_order:
    description: The order is larger than 100 euros.
    function: shop_features:large_order
    inputs: [amount]
    type: int
services:
  returns:
    description: Everything the returns model uses.
    features: [order, customer_history, large_order]
"""

MODULES = {
    "shop_features.py": '''\
"""Feature functions of the shop."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd


def placed_time(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    return columns["placed_at"]


def customer_orders(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    orders = tables["orders"].sort_values("placed_at")
    return pd.DataFrame(
        {"customer": orders["customer"], "event_timestamp": orders["placed_at"], "orders_30d": 1}
    )


def large_order(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    return (columns["amount"] > 100).astype(np.int64)
''',
    "shop_checks.py": '''\
"""Data checks of the shop."""

from __future__ import annotations

import pandas as pd


def positive_amount(frame: pd.DataFrame) -> pd.Series:
    return frame["amount"] > 0
''',
}

SIGNED = f"Agreed by Ana Lima (head of customer service) on {TODAY}."

DOCS = {
    "docs/goals.md": f"""\
# Goals

Returns cost the shop 8 % of its margin. The model flags orders likely to come back so that
customer service can call before shipping.

## KPI

The share of returned orders flagged before shipping; target 40 % (monitoring.kpi).

{SIGNED}
""",
    "docs/owners.md": f"""\
# Owners

| who | responsibility |
|---|---|
| Ana Lima | business owner: the KPI and its target |
| Ben Ortiz | model owner: training, promotion, on-call for the service |

{SIGNED}
""",
    "docs/risk.md": f"""\
# Risk evaluation

- A wrongly flagged order delays a shipment: mitigation, a flag only triggers a call, never a hold.
- Drift at sales time: mitigation, drift alerts and the retraining policy.

{SIGNED}
""",
    "docs/data.md": """\
# Data

Orders come from the shop's export every night. Orders of nothing are quarantined because they
are test orders (the reason is in noria.yaml), so that the model learns from customers only.
""",
    "docs/model_choice.md": """\
# Model choice

LightGBM, compared with a logistic regression baseline on the March holdout: ROC AUC 0.7812
against 0.7020. The alternative of a neural network was dropped: no gain on 5 features.
""",
    "docs/architecture.md": """\
# Architecture

Orders -> snapshot -> features -> training -> registry -> service -> monitoring.

## Deployment

The service runs on Kubernetes (deploy/k8s), the platform is provisioned by Terraform.

## Production data in every environment

Preprod and prod read the same data remote (s3://shop-data), read-only in preprod.
""",
    "docs/runbooks/retrain.md": """\
# Retrain

Why: returns follow the seasons, so the model is retrained on drift and on a metric drop.
""",
    "docs/runbooks/rollback.md": "# Rollback\n\nnoria rollback order-returns --reason WHY\n",
    "docs/runbooks/review.md": """\
# Review queue

The model owner (Ben Ortiz) reviews the low-certainty orders every Monday.
""",
    "docs/runbooks/ab-test.md": """\
# A/B test

Decision rule: at least 5,000 labelled orders per arm, a minimum effect of 0.01 ROC AUC, and a
confidence interval that excludes zero; at most four weeks.
""",
    "docs/cost.md": """\
# Cost

Preprod costs about $310 per month, prod $980 per month (requests x list prices).
""",
    "docs/explanations.md": f"""\
# Explanations

Customer service users see the three largest reasons with each flag; five of them read
twenty answers and understood them.

{SIGNED}
""",
    "docs/features.md": """\
# Features

## Adding a feature

A config entry in features.yaml, a function in shop_features.py and its test, in one pull request.
""",
    "docs/performance.md": "# Latency\n\nPOST /predict answers within 50 ms at p99 under 200 requests per second.\n",
}

REPO_FILES = {
    ".github/CODEOWNERS": "* @shop/ml-team\n/deploy/ @shop/platform\n",
    ".pre-commit-config.yaml": textwrap.dedent(
        """\
        repos:
          - repo: local
            hooks:
              - {id: ruff, name: ruff, entry: ruff check, language: system, types: [python]}
              - {id: ruff-format, name: ruff format, entry: ruff format, language: system, types: [python]}
        """
    ),
    "Makefile": "lint:\n\truff check .\n\tpython -m noria.serving.openapi --check\n\ntest:\n\tpytest\n",
    "uv.lock": "version = 1\n",
    "CHANGELOG.md": "# Changelog\n\n## [Unreleased]\n\n## [0.1.0]\n\n- The first model.\n",
    "tests/test_shop.py": textwrap.dedent(
        """\
        # ingest and the data checks (shop_checks), training through the pipeline, the API (TestClient)
        import shop_checks
        import shop_features
        """
    ),
    "benchmarks/locustfile.py": "# POST /predict under load\n",
    ".github/workflows/ci.yml": textwrap.dedent(
        """\
        name: ci
        on:
          pull_request:
          push:
            branches: [main]
        jobs:
          lint:
            runs-on: ubuntu-24.04
            steps:
              - run: make lint
          test:
            runs-on: ubuntu-24.04
            steps:
              - run: make test
          infra:
            runs-on: ubuntu-24.04
            steps:
              - run: terraform -chdir=deploy/terraform/envs/prod validate
              - run: kubectl kustomize deploy/k8s/overlays/prod
        """
    ),
    ".github/workflows/cd.yml": textwrap.dedent(
        """\
        name: cd
        on:
          push:
            branches: [main]
        jobs:
          images:
            runs-on: ubuntu-24.04
            steps:
              - run: docker build -f deploy/docker/serving.Dockerfile -t shop .
          preprod:
            needs: images
            uses: ./.github/workflows/deploy.yml
            with:
              environment: preprod
          prod:
            needs: preprod
            uses: ./.github/workflows/deploy.yml
            with:
              environment: production
        """
    ),
    ".github/workflows/deploy.yml": textwrap.dedent(
        """\
        name: deploy
        on:
          workflow_call:
            inputs:
              environment: {type: string, required: true}
        jobs:
          deploy:
            runs-on: ubuntu-24.04
            environment: ${{ inputs.environment }}
            steps:
              - run: terraform -chdir=deploy/terraform/envs/prod apply -auto-approve
              - run: kubectl apply -k deploy/k8s/overlays/prod
        """
    ),
    ".github/workflows/monitor.yml": textwrap.dedent(
        """\
        name: monitor
        on:
          schedule:
            - cron: "0 6 * * *"
        jobs:
          loop:
            runs-on: ubuntu-24.04
            steps:
              - run: noria monitor run
        """
    ),
    ".github/workflows/load.yml": textwrap.dedent(
        """\
        name: load
        on:
          schedule:
            - cron: "0 2 * * 0"
        jobs:
          locust:
            runs-on: ubuntu-24.04
            steps:
              - run: locust -f benchmarks/locustfile.py --headless -u 200 -t 5m
        """
    ),
    ".github/workflows/release.yml": textwrap.dedent(
        """\
        name: release
        on:
          push:
            tags: ["v*"]
        jobs:
          notes:
            runs-on: ubuntu-24.04
            steps:
              - run: awk '/^## \\[/{n++} n==2' CHANGELOG.md > notes.md
        """
    ),
    "deploy/github/branch-protection.json": json.dumps(
        {"required_pull_request_reviews": {"required_approving_review_count": 1, "require_code_owner_reviews": True}}
    ),
    "deploy/github/environments.json": json.dumps(
        {"production": {"deployment_branch_policy": {"protected_branches": True}}}
    ),
    "deploy/docker/serving.Dockerfile": "FROM python:3.11-slim\nCOPY uv.lock .\nRUN uv sync --frozen\n",
    "deploy/k8s/base/kustomization.yaml": textwrap.dedent(
        """\
        resources: [deployment.yaml, ingress.yaml, networkpolicy.yaml, servicemonitor.yaml]
        labels:
          - pairs: {cost-center: shop-ml}
        configMapGenerator:
          - name: shop-project
            files: [noria.yaml=project/noria.yaml]
        """
    ),
    "deploy/k8s/base/deployment.yaml": textwrap.dedent(
        """\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: shop-serving}
        spec:
          template:
            spec:
              securityContext: {runAsNonRoot: true}
              containers:
                - name: serving
                  image: shop-serving
                  readinessProbe: {httpGet: {path: /ready, port: 8000}}
                  livenessProbe: {httpGet: {path: /health, port: 8000}}
        """
    ),
    "deploy/k8s/base/ingress.yaml": textwrap.dedent(
        """\
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata: {name: shop-serving}
        spec:
          tls: [{hosts: [shop.example.com], secretName: shop-tls}]
          rules: [{host: shop.example.com}]
        """
    ),
    "deploy/k8s/base/networkpolicy.yaml": textwrap.dedent(
        """\
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: shop-serving}
        spec: {podSelector: {}, policyTypes: [Ingress]}
        """
    ),
    "deploy/k8s/base/servicemonitor.yaml": textwrap.dedent(
        """\
        apiVersion: monitoring.coreos.com/v1
        kind: ServiceMonitor
        metadata: {name: shop-serving}
        spec: {endpoints: [{port: http, path: /metrics}]}
        """
    ),
    "deploy/k8s/overlays/preprod/kustomization.yaml": textwrap.dedent(
        """\
        resources: [../../base]
        replicas: [{name: shop-serving, count: 1}]
        patches:
          - target: {kind: Deployment, name: shop-serving}
            patch: |-
              - op: replace
                path: /spec/template/spec/containers/0/resources
                value: {requests: {cpu: 100m}}
        """
    ),
    "deploy/k8s/overlays/prod/kustomization.yaml": "resources: [../../base]\nreplicas: [{name: shop-serving, count: 3}]\n",
    "deploy/terraform/envs/preprod/main.tf": 'module "platform" { source = "../../modules/platform" }\n',
    "deploy/terraform/envs/prod/main.tf": 'module "platform" { source = "../../modules/platform" }\n',
    "deploy/terraform/modules/platform/main.tf": (
        'resource "kubernetes_resource_quota_v1" "shop" {}\nresource "helm_release" "alertmanager" {}\n'
    ),
    "deploy/prometheus/rules.yml": textwrap.dedent(
        """\
        groups:
          - name: shop
            rules:
              - {alert: ShopServiceDown, expr: 'up{job="shop"} == 0'}
              - {alert: ShopLatency, expr: 'histogram_quantile(0.99, rate(noria_http_request_duration_seconds_bucket[5m])) > 0.05'}
              - {alert: ShopErrors, expr: 'rate(noria_http_requests_total{status=~"5.."}[5m]) > 0'}
              - {alert: ShopDrift, expr: 'noria_feature_drift_psi{important="true"} > 0.25'}
              - {alert: ShopMetricDrop, expr: 'noria_model_metric_drop > noria_model_metric_drop_threshold'}
              - {alert: ShopKPI, expr: 'noria_model_kpi_shortfall > 0'}
              - {alert: ShopBatchLate, expr: 'time() - noria_batch_delivery_last_success_timestamp_seconds > 86400'}
              - {alert: ShopBatchFailed, expr: 'noria_batch_delivery_last_failure_timestamp_seconds > noria_batch_delivery_last_success_timestamp_seconds'}
              - {alert: ShopBatchShort, expr: 'noria_batch_delivery_last_success_rows < 0.5 * noria_batch_delivery_typical_rows'}
        """
    ),
    "deploy/alertmanager/alertmanager.yml": textwrap.dedent(
        """\
        route: {receiver: ml-team}
        receivers:
          - name: ml-team
            webhook_configs: [{url: "http://alerts.example.com/hook"}]
        """
    ),
    ".gitignore": ".noria/\n/data/dataset\n/data/dvc-remote\n/data/.staging*\n__pycache__/\n",
}

ORDERS = "order_id,placed_at,customer,amount,returned\n" + "".join(
    f"{i},2024-{1 + i % 3:02d}-{1 + i % 27:02d}T10:00:00Z,c{i % 7},{10 + 13 * i % 150}.0,{int(i % 5 == 0)}\n"
    for i in range(1, 91)
)


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, env=os.environ | GIT_ENV, check=False
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def bare_project(root: Path) -> Path:
    """A valid noria.yaml (no descriptions, no features, nothing else) committed in a new git repository."""
    root.mkdir(parents=True)
    write(root, {"noria.yaml": BARE_CONFIG})
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "noria init")
    return root


def mature_project(root: Path, migrated_db: Path) -> Path:
    """The mature repository with its records (see the module docstring); about 20 s."""
    root.mkdir(parents=True)
    write(root, {"noria.yaml": CONFIG, "features.yaml": FEATURES, **MODULES, **DOCS, **REPO_FILES})
    write(root, {"raw/orders.csv": ORDERS, "deploy/k8s/base/project/noria.yaml": CONFIG})
    from noria.serving.openapi import document

    write(root, {"docs/api/openapi.json": json.dumps(document(root), indent=2, sort_keys=True)})
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "noria init")
    # every later change came through a pull request (squash merges and a merge commit)
    write(root, {"docs/data.md": DOCS["docs/data.md"] + "\nThe export's columns are in noria.yaml.\n"})
    git(root, "commit", "-q", "-am", "Document the export's columns (#1)")
    (root / "deploy/k8s/overlays/prod/kustomization.yaml").write_text(
        REPO_FILES["deploy/k8s/overlays/prod/kustomization.yaml"] + "namespace: shop\n", encoding="utf-8"
    )
    git(root, "checkout", "-q", "-b", "infra")
    git(root, "commit", "-q", "-am", "Prod in its namespace")
    git(root, "checkout", "-q", "main")
    git(root, "merge", "-q", "--no-ff", "infra", "-m", "Merge pull request #2 from shop/infra")
    git(root, "tag", "v0.1.0")
    project = load_project(root, environ={})
    from noria.data.ingest import ingest

    ingest(project, "2024-01", "2024-03")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "Data snapshot of January-March (#3)")
    _records(project, migrated_db)
    return root


def _records(project: Project, migrated_db: Path) -> None:
    """Two registered versions (v2 promoted over v1), usage, monitoring records, a log file, a delivery."""
    import lightgbm as lgb
    import numpy as np
    import pandas as pd

    from noria.data.snapshots import list_snapshots
    from noria.features.usage import record_usage
    from noria.monitoring import ReferenceProfile
    from noria.monitoring.store import MonitoringStore
    from noria.registry import collect_lineage, promote, start_run

    (project.root / ".noria").mkdir(exist_ok=True)
    shutil.copy(migrated_db, project.root / ".noria" / "mlflow.db")
    snapshot = list_snapshots(project)[-1].id
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"amount": rng.uniform(1, 200, 400), "orders_30d": rng.integers(0, 9, 400)})
    label = (frame["amount"] > 120).astype(int)
    for seed in (1, 2):
        params = {"objective": "binary", "verbosity": -1, "num_threads": 1, "seed": seed}
        booster = lgb.train(params, lgb.Dataset(frame, label), num_boost_round=5)
        lineage = collect_lineage(
            project, data_snapshot=snapshot, feature_service="returns", feature_definition_hash="h"
        )
        with start_run(project, "train", lineage) as run:
            run.log_metrics({"roc_auc": 0.78, "pr_auc": 0.51})
            run.log_model_card("# Model card\n")
            run.log_dict(
                ReferenceProfile.build(frame, scores=booster.predict(frame)).to_dict(), "reference_profile.json"
            )
            info = run.log_model(booster, MODEL)
        record_usage(project, MODEL, info.version, "returns", "h", features=["amount", "orders_30d", "large_order"])
    promote(project, MODEL, 1, force=True, reason="first model")
    promote(project, MODEL, 2, force=True, reason="better on March")
    store = MonitoringStore.of(project)
    header = {"rows": 500, "features": [], "alerts": [], "drifted": []}
    store.save("drift", "2024-04", MODEL, 2, header)
    kpi = {"metric": "recall", "name": "share of returns flagged", "value": 0.45, "target": 0.4}
    for arm, version in (("champion", 2), ("challenger", 3)):
        body = {"arm": arm, "metrics": {"roc_auc": 0.77}, "holdout": 0.78, "kpi": kpi, "predictions": 500}
        store.save("performance", "2024-04" if arm == "champion" else "2024-05", MODEL, version, body)
    store.save_review("2024-04", pd.DataFrame({"request_id": ["r1"], "score": [0.51]}))
    log = project.root / ".noria" / "predictions" / "date=2024-04-01"
    log.mkdir(parents=True)
    pd.DataFrame({"request_id": ["r1"], "score": [0.51]}).to_parquet(log / "part-0.parquet")
    deliveries = project.root / ".noria" / "deliveries"
    deliveries.mkdir(parents=True)
    finished = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    (deliveries / "d1.json").write_text(json.dumps({"status": "ok", "finished_at": finished}), encoding="utf-8")


def context(root: Path) -> Context:
    return Context(load_project(root, environ={}))


def run(number: int, root: Path) -> Finding:
    """The finding of statement ``number``'s check on the project at ``root``."""
    return check_of(number).run(context(root))


def copy(root: Path, target: Path) -> Path:
    """A copy of a project repository (its .git and records included) to change in one test."""
    shutil.copytree(root, target, symlinks=True)
    return target
