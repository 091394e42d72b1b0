"""Every check on a project that meets its statement and on one that does not.

The mature project (maturity_support) meets all 60 statements with real evidence; the bare one
(a valid noria.yaml committed in git) meets almost none, and each check must say what is missing.
For the two statements the bare project meets (its only code, noria.yaml, is committed), a copy of
the mature project with an untracked module is the one that does not. Further cases pin the
nuances: placeholders, stale or missing sign-offs, direct pushes, overlays that change the
code, infrastructure of another project, stale API documents, alerts nobody receives.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.unit.maturity.maturity_support import DOCS, SIGNED, copy, git, run, write

from noria.maturity import Status, checks
from noria.maturity.checks_documentation import OPENAPI_HOW

MET, PARTIAL, NOT_MET, PERSON = Status.MET, Status.PARTIAL, Status.NOT_MET, Status.NEEDS_PERSON

# What each check says of the bare project (16 and 17 are MET there: see UNMET_BY_COPY).
BARE = {
    1: PERSON, 2: PERSON, 3: PERSON, 4: NOT_MET, 5: NOT_MET, 6: NOT_MET, 7: PARTIAL, 8: NOT_MET,
    9: NOT_MET, 10: NOT_MET, 11: NOT_MET, 12: NOT_MET, 13: NOT_MET, 14: NOT_MET, 15: NOT_MET,
    18: NOT_MET, 19: NOT_MET, 20: NOT_MET, 21: NOT_MET, 22: PARTIAL, 23: NOT_MET, 24: PARTIAL,
    25: PARTIAL, 26: NOT_MET, 27: NOT_MET, 28: NOT_MET, 29: NOT_MET, 30: NOT_MET, 31: NOT_MET,
    32: NOT_MET, 33: NOT_MET, 34: NOT_MET, 35: NOT_MET, 36: NOT_MET, 37: NOT_MET, 38: NOT_MET,
    39: NOT_MET, 40: NOT_MET, 41: NOT_MET, 42: PARTIAL, 43: NOT_MET, 44: NOT_MET, 45: NOT_MET,
    46: PERSON, 47: NOT_MET, 48: NOT_MET, 49: NOT_MET, 50: NOT_MET, 51: NOT_MET, 52: NOT_MET,
    53: NOT_MET, 54: NOT_MET, 55: NOT_MET, 56: NOT_MET, 57: PARTIAL, 58: NOT_MET, 59: NOT_MET, 60: NOT_MET,
}  # fmt: skip
UNMET_BY_COPY = (16, 17)


def test_one_check_per_statement_numbered_as_the_checklist() -> None:
    found = checks()
    assert [c.statement.number for c in found] == list(range(1, 61))
    checklist = (Path(__file__).parents[3] / "docs" / "maturity.md").read_text(encoding="utf-8")
    for c in found:  # the docs list every statement with the check's rule
        assert re.search(rf"^\| {c.statement.number} \|", checklist, re.M), c.statement.number
    assert {c.statement.number for c in found if c.statement.person} == {1, 2, 3, 30, 34, 46, 55}
    assert set(BARE) | set(UNMET_BY_COPY) == set(range(1, 61))


@pytest.mark.parametrize("number", range(1, 61))
def test_the_mature_project_meets_it(mature: Path, number: int) -> None:
    finding = run(number, mature)
    assert finding.status is MET, f"{number}: {finding}"
    assert finding.evidence, "MET only with evidence"
    assert all(e.where for e in finding.evidence)


@pytest.mark.parametrize("number", sorted(BARE))
def test_the_bare_project_does_not(bare: Path, number: int) -> None:
    finding = run(number, bare)
    assert finding.status is BARE[number], f"{number}: {finding}"
    assert finding.todo  # what would complete it: a command or a file to add


@pytest.mark.parametrize("number", UNMET_BY_COPY)
def test_code_outside_git_is_not_versioned(mature: Path, tmp_path: Path, number: int) -> None:
    root = copy(mature, tmp_path / "shop")
    git(root, "rm", "-q", "--cached", "shop_checks.py")
    finding = run(number, root)
    assert finding.status is PARTIAL and "git add shop_checks.py" in finding.todo
    assert run(number, bare_outside_git(tmp_path)).status is NOT_MET


def bare_outside_git(tmp_path: Path) -> Path:
    from tests.unit.maturity.maturity_support import BARE_CONFIG

    root = tmp_path / "nogit"
    write(root, {"noria.yaml": BARE_CONFIG})
    return root


# --- documentation ------------------------------------------------------------------------------


def test_placeholders_are_not_filled(mature: Path, tmp_path: Path) -> None:
    root = copy(mature, tmp_path / "shop")
    write(root, {"docs/goals.md": "# Goals\n\nTODO the business goal and the KPI.\n"})
    finding = run(1, root)
    assert finding.status is PERSON and "replace every TODO" in finding.todo
    write(root, {"docs/model_choice.md": "# Model choice\n\nTBD\n"})
    finding = run(6, root)
    assert finding.status is NOT_MET  # and it says where the trained champion's figures already are
    assert "docs/model_choice.md: the holdout figures of order-returns" in finding.todo
    assert "model card" in finding.todo and "noria models list" in finding.todo


def test_a_sign_off_is_required_and_expires(mature: Path, tmp_path: Path) -> None:
    root = copy(mature, tmp_path / "shop")
    unsigned = DOCS["docs/risk.md"].replace(SIGNED, "")
    write(root, {"docs/risk.md": unsigned})
    finding = run(3, root)
    assert finding.status is PERSON and "Agreed by NAME (ROLE) on YYYY-MM-DD" in finding.todo
    old = (datetime.now(UTC) - timedelta(days=400)).date().isoformat()
    write(root, {"docs/risk.md": unsigned + f"Agreed by Ana Lima on {old}.\n"})
    finding = run(3, root)
    assert finding.status is PARTIAL and "over a year old" in finding.todo
    write(root, {"docs/risk.md": "# Risks\n\n- Late shipments.\n\n" + SIGNED + "\n"})
    assert run(3, root).status is PARTIAL  # no mitigation


def test_a_goals_page_without_a_kpi_is_partial(mature: Path, tmp_path: Path) -> None:
    root = copy(mature, tmp_path / "shop")
    write(root, {"docs/goals.md": f"# Goals\n\nFewer returns.\n\n{SIGNED}\n"})
    assert run(1, root).status is PARTIAL


def test_an_uncommented_check_and_a_missing_deployment_view(mature: Path, tmp_path: Path) -> None:
    root = copy(mature, tmp_path / "shop")
    text = (root / "noria.yaml").read_text(encoding="utf-8")
    (root / "noria.yaml").write_text(
        text.replace("          reason: an order of nothing is a test order, not a customer's\n", ""), encoding="utf-8"
    )
    finding = run(4, root)
    assert finding.status is PARTIAL and "orders.positive_amount" in finding.todo
    write(root, {"docs/architecture.md": "# Architecture\n\nOrders -> model -> service.\n"})
    finding = run(8, root)
    assert finding.status is PARTIAL and "deployment view" in finding.todo


def test_a_stale_api_document(mature: Path, tmp_path: Path) -> None:
    root = copy(mature, tmp_path / "shop")
    doc = json.loads((root / "docs/api/openapi.json").read_text(encoding="utf-8"))
    doc["info"]["description"] = "an older text"
    write(root, {"docs/api/openapi.json": json.dumps(doc)})
    finding = run(7, root)
    assert finding.status is PARTIAL and "stale" in str(finding.evidence)


# --- traceability ---------------------------------------------------------------------------------


def test_direct_pushes_break_the_pull_request_rule(mature: Path, tmp_path: Path) -> None:
    root = copy(mature, tmp_path / "shop")
    write(root, {"shop_features.py": (root / "shop_features.py").read_text() + "\n# tuned\n"})
    git(root, "commit", "-q", "-am", "quick fix on main")
    finding = run(18, root)
    assert finding.status is PARTIAL and "without a pull request" in finding.todo
    assert run(34, root).status is PARTIAL
    assert run(50, root).status is MET  # features.yaml itself was not touched


def test_reviews_need_a_trace_in_the_history(bare: Path, tmp_path: Path) -> None:
    root = copy(bare, tmp_path / "bare")
    write(
        root,
        {
            "deploy/github/branch-protection.json": '{"required_pull_request_reviews": {"required_approving_review_count": 1}}'
        },
    )
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "Protect main (#1)")
    assert run(18, root).status is MET
    write(root, {"noria.yaml": (root / "noria.yaml").read_text() + "description: returns\n"})
    git(root, "commit", "-q", "-am", "Describe it\n\nReviewed-by: Ana Lima <ana@example.com>")
    assert run(34, root).status is MET
    fresh = copy(bare, tmp_path / "fresh")
    write(
        fresh,
        {
            "deploy/github/branch-protection.json": '{"required_pull_request_reviews": {"required_approving_review_count": 1}}'
        },
    )
    assert run(34, fresh).status is PERSON  # the rule, and nobody reviewed anything yet


def test_infrastructure_of_another_project(mature: Path, tmp_path: Path) -> None:
    root = copy(mature, tmp_path / "repo")
    text = (root / "deploy/k8s/base/project/noria.yaml").read_text(encoding="utf-8")
    write(root, {"deploy/k8s/base/project/noria.yaml": text.replace("project: shop", "project: other")})
    # the project moves into a sub-folder of the repository; the deploy folder stays at the root
    sub = root / "projects" / "shop"
    sub.mkdir(parents=True)
    for name in ("noria.yaml", "features.yaml", "shop_features.py", "shop_checks.py"):
        (root / name).rename(sub / name)
    finding = run(9, sub)
    assert finding.status is PARTIAL and "'other', not 'shop'" in str(finding.evidence)


def test_uncommitted_infrastructure(mature: Path, tmp_path: Path) -> None:
    root = copy(mature, tmp_path / "shop")
    write(root, {"deploy/k8s/base/extra.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"})
    finding = run(10, root)
    assert finding.status is PARTIAL and "deploy/k8s/base/extra.yaml" in finding.todo


def test_an_overlay_that_changes_the_code(mature: Path, tmp_path: Path) -> None:
    root = copy(mature, tmp_path / "shop")
    write(
        root,
        {
            "deploy/k8s/overlays/prod/kustomization.yaml": (
                "resources: [../../base]\npatches:\n  - patch: |-\n      - op: replace\n"
                "        path: /spec/template/spec/containers/0/args\n        value: [serve, --debug]\n"
            )
        },
    )
    finding = run(21, root)
    assert finding.status is PARTIAL and "containers/0/args" in finding.todo


def test_shared_data_needs_saying_how(mature: Path, tmp_path: Path) -> None:
    root = copy(mature, tmp_path / "shop")
    write(root, {"docs/architecture.md": DOCS["docs/architecture.md"].split("## Production data")[0]})
    finding = run(15, root)
    assert finding.status is PARTIAL and "pre-production" in finding.todo


def test_shared_data_with_a_store_per_environment_needs_the_data_remote_wired(mature: Path, tmp_path: Path) -> None:
    """Saying it is not enough when each environment provisions its own object store: a deploy file
    must point the pods' data remote at production's (NORIA_DATA_S3_ENDPOINT_URL)."""
    root = copy(mature, tmp_path / "shop")
    platform = root / "deploy" / "terraform" / "modules" / "platform" / "main.tf"
    write(
        root,
        {
            "deploy/terraform/modules/platform/main.tf": platform.read_text()
            + 'resource "helm_release" "seaweedfs" {}\n'
        },
    )
    finding = run(15, root)
    assert finding.status is PARTIAL and "no deploy file points the data remote" in finding.todo
    assert any("own object store" in e.detail for e in finding.evidence)
    write(root, {"deploy/k8s/base/data-remote.yaml": "env:\n  - name: NORIA_DATA_S3_ENDPOINT_URL\n"})
    finding = run(15, root)
    assert finding.status is MET, finding.todo
    assert any(e.path.endswith("data-remote.yaml") for e in finding.evidence)


def test_a_lost_snapshot_record(mature: Path, tmp_path: Path) -> None:
    root = copy(mature, tmp_path / "shop")
    for snapshot in (root / "data" / "snapshots").glob("*.json"):
        snapshot.unlink()
    finding = run(26, root)
    assert finding.status is PARTIAL and "is not in data/snapshots" in finding.todo


# --- quality and monitoring -----------------------------------------------------------------------


def test_alerts_nobody_receives(mature: Path, tmp_path: Path) -> None:
    root = copy(mature, tmp_path / "shop")
    (root / "deploy/alertmanager/alertmanager.yml").unlink()
    finding = run(40, root)
    assert finding.status is PARTIAL and "receivers" in finding.todo


def test_batch_continuity_needs_late_failed_and_short_alerts_and_the_declared_schedule(
    mature: Path, tmp_path: Path
) -> None:
    import yaml

    root = copy(mature, tmp_path / "shop")
    rules = root / "deploy/prometheus/rules.yml"
    doc = yaml.safe_load(rules.read_text(encoding="utf-8"))
    shop = doc["groups"][0]["rules"]
    batch = {r["alert"]: r for r in shop if r["alert"].startswith("ShopBatch")}
    doc["groups"][0]["rules"] = [r for r in shop if r["alert"] not in ("ShopBatchFailed", "ShopBatchShort")]
    rules.write_text(yaml.safe_dump(doc), encoding="utf-8")
    finding = run(42, root)
    assert finding.status is PARTIAL and "failed or short" in finding.todo

    # Noria's own rule: late against the project's declared schedule, which this project (it batches) lacks
    late = "time() - noria_batch_delivery_last_success_timestamp_seconds > on(project) group_left() "
    late += "noria_batch_delivery_late_after_seconds"
    doc["groups"][0]["rules"] = [
        *(r for r in shop if not r["alert"].startswith("ShopBatch")),
        {"alert": "ShopBatchLate", "expr": late},
        batch["ShopBatchFailed"],
        batch["ShopBatchShort"],
    ]
    rules.write_text(yaml.safe_dump(doc), encoding="utf-8")
    finding = run(42, root)
    assert finding.status is PARTIAL and "serving.batch.late_after_seconds" in finding.todo
    config = yaml.safe_load((root / "noria.yaml").read_text(encoding="utf-8"))
    config["serving"].setdefault("batch", {})["late_after_seconds"] = 93600
    (root / "noria.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    finding = run(42, root)
    assert finding.status is MET, finding
    details = " ".join(f"{e.where} {e.detail}" for e in finding.evidence)
    assert "late after 26 h" in details and "ShopBatchFailed" in details and "1 deliveries" in details


def test_a_tag_without_notes(mature: Path, tmp_path: Path) -> None:
    root = copy(mature, tmp_path / "shop")
    git(root, "tag", "v0.2.0")
    finding = run(38, root)
    assert finding.status is PARTIAL and "v0.2.0" in finding.todo
    git(root, "tag", "-d", "v0.1.0", "v0.2.0")
    assert "no release yet" in run(38, root).todo


def test_releases_need_one_step_that_writes_the_notes(mature: Path, tmp_path: Path) -> None:
    root = copy(mature, tmp_path / "shop")
    met = run(38, root)
    assert any(e.where.startswith("registry: order-returns/2 (@champion)") for e in met.evidence), met
    assert any("release notes: Promoted order-returns version 2 to @champion" in e.detail for e in met.evidence)
    (root / ".github/workflows/release.yml").unlink()
    finding = run(38, root)
    assert finding.status is PARTIAL and "a `release` Makefile target" in finding.todo
    makefile = root / "Makefile"
    makefile.write_text(makefile.read_text() + "\nrelease:\n\tpython scripts/release.py --version $(VERSION)\n")
    finding = run(38, root)
    assert finding.status is MET, finding
    assert any("`make release`: python scripts/release.py" in e.detail for e in finding.evidence)
    git(root, "tag", "-d", "v0.1.0")
    assert "`make release VERSION=X.Y.Z`" in run(38, root).todo


def test_a_champion_without_release_notes(mature: Path, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    root = copy(mature, tmp_path / "shop")
    uri = f"sqlite:///{root / '.noria' / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri, registry_uri=uri).delete_model_version_tag(
        "order-returns", "2", "noria.release_notes"
    )
    finding = run(38, root)
    assert finding.status is PARTIAL
    assert "the champion order-returns/2 has no release notes in the registry" in finding.todo


def test_the_environment_is_the_lock_or_the_installed_packages_the_run_recorded(mature: Path, tmp_path: Path) -> None:
    """A project without a lock file of its own (one made by noria init) still records its exact
    environment: the installed packages' hash, and their list in the run."""
    from mlflow import MlflowClient

    from noria.provenance import packages_sha256

    root = copy(mature, tmp_path / "shop")
    uri = f"sqlite:///{root / '.noria' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run_id = client.get_model_version("order-returns", "2").run_id
    assert run(24, root).status is MET  # uv.lock and the packages
    client.delete_tag(run_id, "noria.env.uv_lock_sha256")
    finding = run(24, root)
    assert finding.status is MET
    assert f"installed packages sha256 {packages_sha256()[:12]} (listed in environment/packages.txt)" in str(
        finding.evidence[0]
    )
    listed = client.download_artifacts(run_id, "environment/packages.txt", str(tmp_path))
    assert Path(listed).read_text(encoding="utf-8").count("==") > 50
    client.delete_tag(run_id, "noria.env.packages_sha256")
    finding = run(24, root)
    assert finding.status is PARTIAL and "runs record the installed packages" in finding.todo


def test_untested_project_code_and_tests_only_on_push(mature: Path, tmp_path: Path) -> None:
    root = copy(mature, tmp_path / "shop")
    write(root, {"tests/test_shop.py": "# ingest, train, TestClient\nimport shop_features\n"})
    finding = run(32, root)
    assert finding.status is PARTIAL and "shop_checks" in finding.todo
    ci = (root / ".github/workflows/ci.yml").read_text().replace("  pull_request:\n", "")
    write(root, {".github/workflows/ci.yml": ci})
    assert run(33, root).status is PARTIAL


def test_a_load_test_nobody_runs(mature: Path, tmp_path: Path) -> None:
    root = copy(mature, tmp_path / "shop")
    (root / ".github/workflows/load.yml").unlink()
    finding = run(35, root)
    assert finding.status is PARTIAL and "regularly" in finding.todo


def test_an_old_cost_estimate(mature: Path, tmp_path: Path) -> None:
    root = copy(mature, tmp_path / "shop")
    old = (datetime.now(UTC) - timedelta(days=200)).isoformat()
    write(root, {"docs/cost.md": DOCS["docs/cost.md"] + "\n"})
    git(root, "add", "docs/cost.md")
    git(root, "commit", "-q", f"--date={old}", "-m", "Cost estimate (#9)")
    finding = run(39, root)
    assert finding.status is PARTIAL and "refresh the cost estimate" in finding.todo


def test_a_kpi_without_target_and_no_review_runbook(mature: Path, tmp_path: Path) -> None:
    root = copy(mature, tmp_path / "shop")
    text = (root / "noria.yaml").read_text(encoding="utf-8").replace(", target: 0.4}", "}")
    write(root, {"noria.yaml": text})
    assert run(44, root).status is PARTIAL
    (root / "docs/runbooks/review.md").unlink()
    assert run(46, root).status is PERSON


# --- feature store, explanations, A/B ---------------------------------------------------------------


def test_undescribed_features_and_serving_without_features(mature: Path, tmp_path: Path) -> None:
    root = copy(mature, tmp_path / "shop")
    features = (root / "features.yaml").read_text(encoding="utf-8")
    write(root, {"features.yaml": features.replace(', description: "Orders of the customer in the last 30 days."', "")})
    assert run(5, root).status is PARTIAL
    assert run(55, root).status is PARTIAL  # an input the explanation can only name
    text = (
        (root / "noria.yaml").read_text(encoding="utf-8").replace("serving:\n", "serving:\n  online_features: 'off'\n")
    )
    write(root, {"noria.yaml": text})
    assert run(48, root).status is PARTIAL


def test_no_sticky_key_and_no_recent_ab_test(mature: Path, tmp_path: Path) -> None:
    root = copy(mature, tmp_path / "shop")
    text = (root / "noria.yaml").read_text(encoding="utf-8")
    write(root, {"noria.yaml": text.replace("  ab:\n    sticky_key: customer\n    challenger_fraction: 0.1\n", "")})
    assert run(60, root).status is NOT_MET
    for record in (root / ".noria/monitoring/performance").glob("2024-05*"):
        record.unlink()
    finding = run(59, root)
    assert finding.status is PARTIAL and "run an A/B test" in finding.todo


def test_the_command_it_names_completes_the_api_document(mature: Path, tmp_path: Path) -> None:
    root = copy(mature, tmp_path / "shop")
    (root / "docs/api/openapi.json").unlink()
    finding = run(7, root)
    assert finding.status is PARTIAL and OPENAPI_HOW in finding.todo
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    subprocess.run(OPENAPI_HOW, shell=True, cwd=root, env=env, check=True, capture_output=True)
    assert run(7, root).status is MET
