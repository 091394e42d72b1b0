"""The `docker build` and `docker run` arguments a dev container's devcontainer.json declares.

    python3 scripts/devcontainer_build.py build .devcontainer/devcontainer.json TAG [KEY=VALUE ...]
    python3 scripts/devcontainer_build.py run .devcontainer/devcontainer.json

`build` prints, one per line, the arguments of `docker build` for the file's build section
(dockerfile and context relative to the devcontainer.json's folder, as the editor resolves them;
target; args), tagged TAG; each KEY=VALUE replaces or adds a build argument (a machine without a
registry substitutes its base image, as `make docker-test` does for every image). `run` prints the
arguments of `docker run` that give the container what the editor gives it: the workspace mount
(read-only here), the working folder, containerEnv and remoteUser. `make docker-test`
(scripts/docker_test.sh) builds and runs Noria's own dev container with them; the tests read
devcontainer.json files (Noria's and every template's) with :func:`load`.

devcontainer.json is JSON with comments (JSONC): ``//`` and ``/* */`` comments outside strings
are dropped, then the rest must be plain JSON. Plain Python (no dependencies): it runs with the
machine's python3 before any environment exists.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

_TOKENS = re.compile(r'("(?:\\.|[^"\\])*")|//[^\n]*|/\*.*?\*/', re.S)
_VARIABLE = re.compile(r"\$\{(localWorkspaceFolder|containerWorkspaceFolder|localWorkspaceFolderBasename)\}")


def strip_comments(text: str) -> str:
    """JSONC to JSON: comments outside strings removed (strings kept as they are)."""
    return _TOKENS.sub(lambda m: m.group(1) or "", text)


def load(path: Path) -> dict[str, Any]:
    """A devcontainer.json as a dict; a clear error naming the file and line when it is not JSONC."""
    try:
        data = json.loads(strip_comments(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{path}: not JSON with comments at line {exc.lineno}: {exc.msg} -- fix the file") from None
    if not isinstance(data, dict):
        raise SystemExit(f"{path}: expected a JSON object at the top")
    return data


def build_section(path: Path) -> dict[str, Any]:
    """The build section with dockerfile and context resolved against the file's folder."""
    build = load(path).get("build")
    if not isinstance(build, dict) or not isinstance(build.get("dockerfile"), str):
        raise SystemExit(f"{path}: expected build.dockerfile (a path relative to the file) -- add a build section")
    here = path.parent
    args = build.get("args") or {}
    if not isinstance(args, dict):
        raise SystemExit(f"{path}: build.args must be an object of strings")
    return {
        "dockerfile": (here / build["dockerfile"]).resolve(),
        "context": (here / build.get("context", ".")).resolve(),
        "target": build.get("target"),
        "args": {str(k): str(v) for k, v in args.items()},
    }


def build_argv(path: Path, tag: str, overrides: dict[str, str]) -> list[str]:
    section = build_section(path)
    argv = ["-f", str(section["dockerfile"])]
    if section["target"]:
        argv += ["--target", str(section["target"])]
    for key, value in (section["args"] | overrides).items():
        argv += ["--build-arg", f"{key}={value}"]
    return [*argv, "-t", tag, str(section["context"])]


def run_argv(path: Path) -> list[str]:
    data = load(path)
    workspace = path.parent.parent.resolve()  # the folder holding .devcontainer/
    folder = str(data.get("workspaceFolder") or f"/workspaces/{workspace.name}")

    def expand(value: str) -> str:
        names = {
            "localWorkspaceFolder": str(workspace),
            "containerWorkspaceFolder": folder,
            "localWorkspaceFolderBasename": workspace.name,
        }
        return _VARIABLE.sub(lambda m: names[m.group(1)], value)

    mount = dict(
        part.split("=", 1)
        for part in expand(str(data.get("workspaceMount") or f"source={workspace},target={folder},type=bind")).split(
            ","
        )
    )
    argv = ["-v", f"{mount['source']}:{mount['target']}:ro", "-w", expand(folder)]
    for key, value in (data.get("containerEnv") or {}).items():
        argv += ["-e", f"{key}={expand(str(value))}"]
    if data.get("remoteUser"):
        argv += ["--user", str(data["remoteUser"])]
    return argv


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("build", "run") or (argv[0] == "build" and len(argv) < 3):
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(argv[1])
    if argv[0] == "run":
        print("\n".join(run_argv(path)))
        return 0
    overrides = {}
    for item in argv[3:]:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"{item!r}: expected KEY=VALUE (a build argument)")
        overrides[key] = value
    print("\n".join(build_argv(path, argv[2], overrides)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
