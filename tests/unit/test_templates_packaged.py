"""`noria init --template NAME` works from an installed wheel: the templates travel inside it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from noria.scaffold import TEMPLATES, init_project, template_dir

ROOT = Path(__file__).resolve().parents[2]


def _uv() -> str:
    found = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    if not Path(found).exists():
        pytest.fail("uv is not installed: run `make test` (it installs uv into .tools/)")
    return found


@pytest.mark.slow
def test_the_wheel_carries_every_template_and_init_uses_them(tmp_path: Path) -> None:
    done = subprocess.run(
        [_uv(), "build", "--wheel", "--out-dir", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    wheel = next((tmp_path / "dist").glob("noria-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in TEMPLATES:
        assert f"noria/_templates/{template}/noria.yaml" in names, template
    assert "noria/_templates/football/football_features.py" in names
    assert "noria/_templates/flights/flights_api.py" in names
    # the project kit every template gets (src/noria/_kit), dot-files spelled dot-
    assert "noria/_kit/dot-github/workflows/ci.yml.tmpl" in names
    assert "noria/_kit/dot-github/workflows/load-test.yml.tmpl" in names
    assert "noria/_kit/dot-github/workflows/release.yml.tmpl" in names
    assert "noria/_kit/tests/load/loadtest.py.tmpl" in names
    assert "noria/_kit/tests/test_features.py.tmpl" in names
    assert "noria/_kit/dot-devcontainer/devcontainer.json.tmpl" in names
    assert "noria/_kit/dot-vscode/settings.json.tmpl" in names
    # The installed package, not this checkout: templates come from noria/_templates.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import sys; from pathlib import Path; from noria.scaffold import init_project, template_dir;"
        "print(template_dir('glucose')); init_project(Path(sys.argv[1]), template='glucose')"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("NORIA_")} | {"PYTHONPATH": str(site)}
    run = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "g")], capture_output=True, text=True, env=env, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().startswith(str(site / "noria" / "_templates" / "glucose"))
    assert (tmp_path / "g" / "glucose_features.py").is_file()
    assert (tmp_path / "g" / ".github" / "workflows" / "ci.yml").is_file()
    assert (tmp_path / "g" / "deploy" / "k8s" / "overlays" / "prod" / "kustomization.yaml").is_file()


def test_every_template_makes_a_valid_project(tmp_path: Path) -> None:
    from noria.config import load_project
    from noria.features import load_definitions

    for template in TEMPLATES:
        root = init_project(tmp_path / template, template=template)
        project = load_project(root, environ={})
        load_definitions(project)  # every function it names exists
        log = subprocess.run(["git", "-C", str(root), "log", "--oneline"], capture_output=True, text=True).stdout
        assert f"noria init --template {template}" in log
    assert template_dir("flights").name == "flights"


def test_an_unknown_template_is_a_clear_error(tmp_path: Path) -> None:
    from noria.errors import ConfigError

    with pytest.raises(ConfigError, match="no template 'shop'") as err:
        init_project(tmp_path / "x", template="shop")
    assert "flights" in (err.value.fix or "")


def test_a_new_project_stays_clean_after_its_first_ingest(tmp_path: Path) -> None:
    """Every template ignores what Noria writes (data, quarantine, .noria): lineage says "clean"."""
    for template in TEMPLATES:
        ignore = (template_dir(template) / ".gitignore").read_text(encoding="utf-8")
        for path in ("/data/dataset/", "/data/quarantine/", "/.noria/", "/data/dvc-remote/"):
            assert path in ignore, (template, path)
