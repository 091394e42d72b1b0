"""`noria init` gives every template the project kit: CI/CD, reviews, tests, docs, deploy files.

Each template is initialised once (a module fixture) and checked the way its users would: the
generated workflows pass actionlint, the generated tests pass with pytest, the manifests render
with kubectl kustomize and validate with kubernetes-validate (the tools of scripts/check_deploy.py),
and `noria maturity` scores the new project at least what was measured when the kit was built
(docs/maturity.md, "A new project"), with what needs a person still NEEDS A PERSON.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import noria
from noria.config import load_project
from noria.maturity import Status, assess
from noria.scaffold import TEMPLATES, init_project

ROOT = Path(__file__).resolve().parents[2]
ACTIONLINT = Path(sys.executable).parent / "actionlint"

# Measured on fresh projects when the kit was built (docs/maturity.md); the kit may only add.
DAY_ONE = {"blank": 37.5, "flights": 42.0, "football": 40.0, "glucose": 40.5}
# What the kit makes true on day one, for every template.
KIT_MET = {7, 9, 10, 11, 12, 13, 14, 15, 18, 19, 21, 29, 31, 32, 33, 36, 37, 41, 50}
# What only people can make true: the kit writes the pages, never the sign-off.
PEOPLE = {1, 2, 3, 34, 46, 55}
# Placeholders the kit leaves for people: recognised as not filled in.
KIT_PARTIAL = {27: "retrain", 30: "CODEOWNERS", 39: "cost estimate", 40: "TODO"}


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("kit")
    return {t: init_project(base / t, f"kit-{t}", template=t) for t in TEMPLATES}


def _env() -> dict[str, str]:
    """The environment of a subprocess: this checkout's noria first, no NORIA_* overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NORIA_")}
    src = str(Path(noria.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return env


@pytest.mark.parametrize("template", TEMPLATES)
def test_the_kit_is_rendered_for_the_project(projects: dict[str, Path], template: str) -> None:
    root = projects[template]
    for rel in (
        ".github/workflows/ci.yml",
        ".github/workflows/cd.yml",
        ".github/pull_request_template.md",
        ".github/CODEOWNERS",
        ".pre-commit-config.yaml",
        "requirements.txt",
        "CHANGELOG.md",
        "tests/test_data.py",
        "tests/test_features.py",
        "tests/test_api.py",
        "tests/test_training.py",
        "docs/goals.md",
        "docs/owners.md",
        "docs/risk.md",
        "docs/architecture.md",
        "docs/cost.md",
        "docs/api/openapi.json",
        "deploy/docker/Dockerfile",
        "deploy/k8s/overlays/prod/kustomization.yaml",
        "deploy/alertmanager/alertmanager.yml",
        "deploy/github/branch-protection.json",
        ".devcontainer/devcontainer.json",
        ".vscode/settings.json",
        ".vscode/extensions.json",
        "ruff.toml",
    ):
        assert (root / rel).is_file(), rel
    files = [p for p in root.rglob("*") if p.is_file() and ".git" not in p.parts and ".dvc" not in p.parts]
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        assert "@@" not in text, f"{path.relative_to(root)} holds an unrendered placeholder"
    name = f"kit-{template}"
    assert f"name: {name}-serving" in (root / "deploy/k8s/base/serving.yaml").read_text(encoding="utf-8")
    assert f"noria=={noria.__version__}" in (root / "requirements.txt").read_text(encoding="utf-8")
    assert "## Deployment" in (root / "docs/architecture.md").read_text(encoding="utf-8")
    # one commit, nothing left over: the CI floor was written into the first commit
    log = subprocess.run(["git", "-C", str(root), "log", "--oneline"], capture_output=True, text=True).stdout
    assert len(log.splitlines()) == 1
    status = subprocess.run(["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True)
    assert status.stdout == ""


def _jsonc(path: Path) -> dict[str, Any]:
    """A rendered JSON-with-comments file: documented at its top, whole-line // comments, then JSON."""
    text = path.read_text(encoding="utf-8")
    assert text.lstrip().startswith("//"), f"{path.name} documents its purpose at its top"
    data = json.loads(re.sub(r"(?m)^\s*//.*$", "", text))
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("template", TEMPLATES)
def test_the_editor_set_up_is_the_projects_pipeline_image(projects: dict[str, Path], template: str) -> None:
    """.devcontainer builds the project's own Dockerfile (target dev, over noria-pipeline); .vscode points at it."""
    root = projects[template]
    spec = _jsonc(root / ".devcontainer" / "devcontainer.json")
    build = spec["build"]
    dockerfile = (root / ".devcontainer" / build["dockerfile"]).resolve()
    assert dockerfile == root / "deploy" / "docker" / "Dockerfile" and dockerfile.is_file()
    assert (root / ".devcontainer" / build["context"]).resolve() == root
    text = dockerfile.read_text(encoding="utf-8")
    stages = re.findall(r"(?m)^FROM\s+\S+\s+AS\s+(\S+)$", text)
    assert build["target"] == "dev" and stages == ["dev", "image"]  # the image stays the default (last) target
    assert build["args"] == {"NORIA_IMAGE": "noria-pipeline", "NORIA_VERSION": noria.__version__}
    assert "COPY requirements.txt" in text and (root / "requirements.txt").is_file()
    assert "USER 10001:10001" in text.split(" AS image")[0] and spec["remoteUser"] == "noria"
    assert spec["workspaceFolder"] == "/app/project" and "target=/app/project" in spec["workspaceMount"]
    assert spec["forwardPorts"] == [8000, 5000, 5001] and spec["postCreateCommand"] == "noria --version"
    settings = _jsonc(root / ".vscode" / "settings.json")
    assert settings["python.defaultInterpreterPath"] == "${workspaceFolder}/.venv/bin/python"
    assert settings["[python]"]["editor.defaultFormatter"] == "charliermarsh.ruff"
    assert settings["python.testing.pytestArgs"] == ["tests"] and (root / "tests").is_dir()
    assert settings["files.exclude"]["**/.noria"] is True
    extensions = {"ms-python.python", "charliermarsh.ruff", "ms-toolsai.jupyter", "redhat.vscode-yaml"}
    assert set(_jsonc(root / ".vscode" / "extensions.json")["recommendations"]) == extensions
    assert set(spec["customizations"]["vscode"]["extensions"]) == extensions
    # statement 20 (the environment as code) finds the dev container and the image it is built from
    by_number = {r.statement.number: r for r in assess(load_project(root, environ={})).results}
    details = [e.detail for e in by_number[20].finding.evidence]
    assert "the editor's dev container is built from deploy/docker/Dockerfile, the same locked versions" in details


@pytest.mark.parametrize("template", TEMPLATES)
def test_the_new_project_passes_its_own_lint(projects: dict[str, Path], template: str) -> None:
    """CI's `ruff check .` and `ruff format --check .` (the editor's formatter too) pass on day one."""
    ruff = Path(sys.executable).parent / "ruff"
    pinned = (projects[template] / "requirements.txt").read_text(encoding="utf-8")
    version = subprocess.run([str(ruff), "--version"], capture_output=True, text=True, check=True).stdout.split()[1]
    assert f"ruff=={version}" in pinned  # the ruff CI installs is this one
    for args in (["check", "--no-cache", "."], ["format", "--no-cache", "--check", "."]):
        done = subprocess.run([str(ruff), *args], cwd=projects[template], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]


def test_statement_20_names_no_dev_container_without_one(tmp_path: Path) -> None:
    root = init_project(tmp_path / "no-dev", template="blank")
    (root / ".devcontainer" / "devcontainer.json").unlink()
    finding = next(r for r in assess(load_project(root, environ={})).results if r.statement.number == 20).finding
    assert not any("dev container" in e.detail for e in finding.evidence)
    (root / ".devcontainer" / "devcontainer.json").write_text(
        '// a dev container\n{"build": {"dockerfile": "../deploy/docker/Dockerfile", /* its image */ "target": "dev"}}',
        encoding="utf-8",
    )
    finding = next(r for r in assess(load_project(root, environ={})).results if r.statement.number == 20).finding
    assert any("dev container" in e.detail for e in finding.evidence)


@pytest.mark.parametrize("template", TEMPLATES)
def test_the_generated_workflows_pass_actionlint(projects: dict[str, Path], template: str) -> None:
    assert ACTIONLINT.is_file(), "actionlint is missing: uv sync --frozen --all-extras --group dev"
    workflows = sorted((projects[template] / ".github" / "workflows").glob("*.yml"))
    done = subprocess.run([str(ACTIONLINT), *map(str, workflows)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    ci = (projects[template] / ".github/workflows/ci.yml").read_text(encoding="utf-8")
    floor = re.search(r"noria maturity --min (\d+)", ci)
    assert floor and 0 < int(floor[1]) <= DAY_ONE[template]


@pytest.mark.parametrize("template", TEMPLATES)
def test_the_generated_tests_pass_on_the_templates_functions(projects: dict[str, Path], template: str) -> None:
    root = projects[template]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=root,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert re.search(r"\d+ passed", done.stdout)


def test_the_generated_tests_catch_a_broken_function(tmp_path: Path) -> None:
    root = init_project(tmp_path / "broken", template="glucose")
    module = root / "glucose_features.py"
    module.write_text(
        module.read_text(encoding="utf-8") + "\n\ndef prediction_time(columns):\n    return columns['time'][:1]\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_features.py"],
        cwd=root,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert done.returncode == 1 and "test_the_prediction_time_is_one_utc_time_per_request" in done.stdout


@pytest.mark.parametrize("template", ["blank", "flights"])
def test_the_manifests_render_and_validate(projects: dict[str, Path], template: str) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from check_deploy import _deploy_tools
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    tools = _deploy_tools()  # kubectl and kubernetes-validate, pinned (deploy/requirements-check.txt)
    rendered = []
    for env in ("preprod", "prod"):
        overlay = projects[template] / "deploy" / "k8s" / "overlays" / env
        done = subprocess.run([str(tools / "kubectl"), "kustomize", str(overlay)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        out = projects[template].parent / f"{template}-{env}.yaml"
        out.write_text(done.stdout, encoding="utf-8")
        rendered.append(str(out))
        assert f"namespace: kit-{template}" in done.stdout and "cost-center: kit-" in done.stdout
    done = subprocess.run(
        [str(tools / "kubernetes-validate"), "--strict", "--quiet", *rendered], capture_output=True, text=True
    )
    unknown = [line for line in done.stdout.splitlines() if line.startswith("WARN") and "find schema" not in line]
    assert done.returncode == 0 and not unknown, done.stdout + done.stderr


@pytest.mark.parametrize("template", TEMPLATES)
def test_a_new_project_starts_at_its_measured_score(projects: dict[str, Path], template: str) -> None:
    assessment = assess(load_project(projects[template], environ={}))
    by_number = {r.statement.number: r for r in assessment.results}
    assert assessment.score >= DAY_ONE[template], assessment.score
    for number in sorted(KIT_MET):
        assert by_number[number].status is Status.MET, (number, by_number[number].finding.todo)
    for number in sorted(PEOPLE):  # never MET without a person's trace
        assert by_number[number].status is Status.NEEDS_PERSON, (number, by_number[number].status)
    for number, words in KIT_PARTIAL.items():
        finding = by_number[number].finding
        assert by_number[number].status is Status.PARTIAL, number
        assert words in finding.todo + json.dumps([e.detail for e in finding.evidence]), (number, finding.todo)


def test_placeholders_count_as_not_filled_in(projects: dict[str, Path], tmp_path: Path) -> None:
    """CODEOWNERS placeholders and a TODO receiver are recognised; filling them in counts."""
    from noria.maturity._context import Context
    from noria.maturity._evidence import codeowners
    from noria.maturity.checks_monitoring import receivers

    root = projects["blank"]
    ctx = Context(load_project(root, environ={}))
    owners = codeowners(ctx)
    assert owners is not None and "@TODO-model-owner" in owners.placeholders
    assert not any(o for _, o in owners.rules)
    assert receivers(ctx) == []
    filled = init_project(tmp_path / "filled", template="blank")
    (filled / ".github" / "CODEOWNERS").write_text("* @acme/ml\n/deploy/ @acme/platform\n", encoding="utf-8")
    alerts = filled / "deploy" / "alertmanager" / "alertmanager.yml"
    alerts.write_text(
        re.sub(r"(?m)^.*TODO.*\n", "", alerts.read_text(encoding="utf-8")).replace(
            "https://TODO.invalid", "https://chat.example.org"
        ),
        encoding="utf-8",
    )
    ctx = Context(load_project(filled, environ={}))
    owners = codeowners(ctx)
    assert owners is not None and not owners.placeholders and owners.covers("deploy/k8s/base/serving.yaml")
    assert receivers(ctx)


def test_sample_rows_follow_the_declared_rules() -> None:
    from noria.testing import raw_text, sample_table, sample_text

    for pattern in (r"^N[A-Z0-9]{1,5}$", r"^[A-Z0-9]{2}$", r"^o[0-9]+$", r"^(ab|cd)-\d{3}$", r"[^x]y"):
        values = [sample_text(pattern, i) for i in range(30)]
        assert all(re.search(pattern, v) for v in values), pattern
    assert len({sample_text(r"^[0-9]+$", i) for i in range(30)}) == 30  # keys stay distinct
    project = load_project(ROOT / "examples" / "flights", environ={})
    frame = sample_table(project, "flights", rows=12)
    spec = project.config.data.tables["flights"]
    for name, col in spec.columns.items():
        present = frame[name].iloc[:-1]
        assert present.notna().all(), name
        if col.min is not None:
            assert (present >= col.min).all(), name
        if col.max is not None:
            assert (present <= col.max).all(), name
        if col.allowed:
            assert set(present) <= set(col.allowed), name
        assert frame[name].iloc[-1:].isna().all() == col.nullable, name
    assert str(frame["time_hour"].dtype) == "datetime64[ns, UTC]"
    text = raw_text(frame)
    assert text.iloc[:-1].map(lambda v: isinstance(v, str)).all().all()
    assert text.iloc[-1].isna().tolist() == [col.nullable for col in spec.columns.values()]
