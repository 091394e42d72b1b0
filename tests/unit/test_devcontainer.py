"""Noria's own editor set-up: .devcontainer/devcontainer.json and .vscode/ (settings, extensions).

The dev container is the pipeline image's `dev` target (deploy/docker/pipeline.Dockerfile);
`make docker-test` builds it with scripts/devcontainer_build.py's reading of the build section and
runs noria, ruff and pytest in it (this file among them). Here: the files parse as JSON with
comments, name files and stages that exist, forward the ports Noria's commands use, and the
reader turns them into the docker arguments the editor would use.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / ".devcontainer" / "devcontainer.json"
EXTENSIONS = {"ms-python.python", "charliermarsh.ruff", "ms-toolsai.jupyter", "redhat.vscode-yaml"}

sys.path.insert(0, str(ROOT / "scripts"))
try:
    import devcontainer_build
finally:
    sys.path.remove(str(ROOT / "scripts"))


def _jsonc(path: Path) -> dict[str, object]:
    """An independent reading: whole-line // comments dropped (the only kind these files use), then JSON."""
    text = path.read_text(encoding="utf-8")
    assert text.lstrip().startswith("//"), f"{path.name} documents its purpose at its top"
    data = json.loads(re.sub(r"(?m)^\s*//.*$", "", text))
    assert data == devcontainer_build.load(path)
    assert isinstance(data, dict)
    return data


def _stages(dockerfile: Path) -> dict[str, str]:
    """Each named stage of a Dockerfile and the instructions under it."""
    out: dict[str, str] = {}
    name = ""
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        m = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.I)
        if m:
            name = m[1]
            out[name] = ""
        elif name:
            out[name] += line + "\n"
    return out


def test_the_dev_container_is_the_pipeline_images_dev_target() -> None:
    spec = _jsonc(SPEC)
    build = devcontainer_build.build_section(SPEC)
    assert build["dockerfile"] == ROOT / "deploy" / "docker" / "pipeline.Dockerfile"
    assert build["context"] == ROOT
    stages = _stages(build["dockerfile"])
    assert build["target"] == "dev" and "dev" in stages
    assert list(stages)[-1] == "pipeline", "the pipeline image stays the default (last) target"
    dev = stages["dev"]
    # the whole lock with the dev group, copied into the image's runtime; the image's non-root user
    assert "COPY --from=dev-env /app/.venv /app/.venv" in dev and "USER 10001:10001" in dev
    assert "--frozen --all-extras --group dev" in stages["dev-env"]
    assert spec["remoteUser"] == "noria" and "--uid 10001" in stages["runtime"]
    assert "/etc/profile.d/" in dev, "login shells (the editor's) keep /app/.venv/bin first on PATH"
    env = spec["containerEnv"]
    assert isinstance(env, dict) and env["PYTHONPATH"] == f"{spec['workspaceFolder']}/src"
    assert spec["postCreateCommand"] == "noria --version"


def test_the_dev_container_forwards_the_ports_of_noria_s_commands() -> None:
    from typer.main import get_command

    from noria.cli import app

    ui = get_command(app).commands["ui"]  # type: ignore[attr-defined]
    console_port = next(p.default for p in ui.params if p.name == "port")
    ports = _jsonc(SPEC)["forwardPorts"]
    assert ports == [8000, console_port, 5001]
    labels = _jsonc(SPEC)["portsAttributes"]
    assert isinstance(labels, dict)
    assert "noria serve" in labels["8000"]["label"] and "--mlflow --port 5001" in labels["5001"]["label"]


def test_vscode_settings_and_recommended_extensions() -> None:
    settings = _jsonc(ROOT / ".vscode" / "settings.json")
    assert settings["python.defaultInterpreterPath"] == "${workspaceFolder}/.venv/bin/python"
    assert settings["[python]"]["editor.defaultFormatter"] == "charliermarsh.ruff"  # type: ignore[index]
    assert settings["python.testing.pytestEnabled"] is True
    assert settings["python.testing.pytestArgs"] == ["tests"] and (ROOT / "tests").is_dir()
    assert settings["files.exclude"]["**/.noria"] is True  # type: ignore[index]
    assert set(_jsonc(ROOT / ".vscode" / "extensions.json")["recommendations"]) == EXTENSIONS  # type: ignore[arg-type]
    inside = _jsonc(SPEC)["customizations"]["vscode"]  # type: ignore[index]
    assert set(inside["extensions"]) == EXTENSIONS
    assert inside["settings"]["python.defaultInterpreterPath"] == "/app/.venv/bin/python"


def test_the_build_and_run_arguments_are_the_files() -> None:
    argv = devcontainer_build.build_argv(SPEC, "noria-test/dev:latest", {"BASE_IMAGE": "noria-base:bookworm"})
    assert argv == [
        "-f",
        str(ROOT / "deploy" / "docker" / "pipeline.Dockerfile"),
        "--target",
        "dev",
        "--build-arg",
        "BASE_IMAGE=noria-base:bookworm",
        "-t",
        "noria-test/dev:latest",
        str(ROOT),
    ]
    run = devcontainer_build.run_argv(SPEC)
    assert run[:4] == ["-v", f"{ROOT}:/workspaces/noria:ro", "-w", "/workspaces/noria"]
    assert run[4:] == ["-e", "PYTHONPATH=/workspaces/noria/src", "--user", "noria"]
    script = (ROOT / "scripts" / "docker_test.sh").read_text(encoding="utf-8")
    assert "devcontainer_build.py build" in script and "devcontainer_build.py run" in script


def test_the_reader_handles_comments_in_strings_and_refuses_bad_files(tmp_path: Path) -> None:
    text = '// top\n{"a": "http://x//y", /* block */ "b": "/* kept */", "build": {"dockerfile": "D", "args": {"K": 1}}}'
    path = tmp_path / ".devcontainer" / "devcontainer.json"
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    data = devcontainer_build.load(path)
    assert data["a"] == "http://x//y" and data["b"] == "/* kept */"
    assert devcontainer_build.build_argv(path, "t", {})[-5:] == ["--build-arg", "K=1", "-t", "t", str(path.parent)]
    path.write_text('{"build": {"dockerfile": "D",}}', encoding="utf-8")
    with pytest.raises(SystemExit, match="devcontainer.json: not JSON with comments at line 1"):
        devcontainer_build.load(path)
    path.write_text('{"image": "x"}', encoding="utf-8")
    with pytest.raises(SystemExit, match=r"expected build\.dockerfile"):
        devcontainer_build.build_section(path)
