"""``noria init``: a new project from a template, as a git repository.

Templates are the reference projects (``flights``: binary, ``football``: multi-class,
``glucose``: regression) and ``blank``, a minimal, documented starting point for a project of
one's own. A wheel carries them as ``noria/_templates/<name>`` (pyproject's force-include); a
source checkout reads ``examples/<name>``. The lineage records Noria writes point at git commits,
so a new project starts life as a repository with a first commit (and DVC initialised with a
local remote).

Every template also gets the project kit (:mod:`noria._kit`): CI and CD workflows, a pull-request
template, CODEOWNERS, pre-commit hooks, tests of the project's own functions, docs pages (goals,
owners, risk, architecture with its deployment, data, runbooks, cost), the API document, and
deploy files (an image over Noria's, kustomize base and overlays, alerts, branch protection as
code), rendered for the project's name, task and config; and ``noria.schema.json``, the JSON Schema
its ``noria.yaml``'s first line points editors at. The CI workflow's ``noria maturity
--min`` floor is set from the new project's own score, measured before the first commit is final.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from noria._kit import set_min_score, write_kit
from noria.errors import ConfigError, ExternalToolError

TEMPLATES = ("flights", "football", "glucose", "blank")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".noria", "data", ".dvc", ".git")


def template_dir(name: str = "flights") -> Path:
    """The folder of a template: packaged in the wheel, or ``examples/<name>`` in a source checkout."""
    if name not in TEMPLATES:
        raise ConfigError(f"no template {name!r}", fix=f"choose one of {', '.join(TEMPLATES)}")
    packaged = Path(__file__).parent / "_templates" / name
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "examples" / name


def init_project(target: Path, name: str | None = None, *, template: str = "flights") -> Path:
    """Copy a template into ``target`` (new or empty), ``git init`` it and commit."""
    target = target.resolve()
    if target.exists() and any(target.iterdir()):
        raise ConfigError(f"{target} exists and is not empty", fix="choose a new folder name or empty that folder")
    source = template_dir(template)
    if not (source / "noria.yaml").is_file():
        raise ConfigError(f"the {template} template is missing at {source}", fix="reinstall noria")
    shutil.copytree(source, target, ignore=_IGNORE, dirs_exist_ok=True)
    if name is not None:
        config = target / "noria.yaml"
        text = config.read_text(encoding="utf-8")
        renamed, count = re.subn(r"(?m)^project: .*$", f"project: {name}", text, count=1)
        if not count:
            raise ConfigError(f"the {template} template has no project: line", fix="reinstall noria")
        config.write_text(renamed, encoding="utf-8")
    write_config_schema(target)
    _git(target, "init", "-q", "-b", "main")
    from noria.config import load_project
    from noria.data import versioning

    project = load_project(target)  # validates the copied (and renamed) config
    write_kit(target, project, template)
    write_api_document(target)
    versioning.ensure_repo(target, project.config.storage.dvc_remote)
    _git(target, "add", "-A")
    # A machine without a git identity still gets its first commit.
    identity = [] if _has_identity(target) else ["-c", "user.name=Noria", "-c", "user.email=noria@localhost"]
    _git(target, *identity, "commit", "-q", "-m", f"noria init --template {template}")
    # The CI gate: the score of what was just committed (the first commit is what CI will see).
    from noria.maturity import assess

    set_min_score(target, project, template, assess(load_project(target)).score)
    _git(target, "add", "-A")
    _git(target, *identity, "commit", "-q", "--amend", "--no-edit")
    return target


def write_config_schema(root: Path) -> Path:
    """``noria.schema.json`` beside ``noria.yaml`` (from the installed Noria's config models), and
    ``noria.yaml``'s first line pointing editors at it (the template's line points at the
    repository's copy, which a new project does not have)."""
    from noria.config_schema import SCHEMA_FILE, set_modeline, write_schema

    config = root / "noria.yaml"
    config.write_text(set_modeline(config.read_text(encoding="utf-8"), SCHEMA_FILE), encoding="utf-8")
    return write_schema(root / SCHEMA_FILE)


def write_api_document(root: Path) -> Path:
    """The project's OpenAPI document (docs/api/openapi.json), as its service would serve it."""
    from noria.serving.openapi import export

    return export(root / "docs" / "api" / "openapi.json", root)


def _git(root: Path, *args: str) -> None:
    argv = ["git", "-C", str(root), *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ExternalToolError(f"cannot run git: {exc}", fix="install git (apt-get install git)") from None
    if done.returncode != 0:
        raise ExternalToolError(
            f"`git {' '.join(args)}` failed in {root}: {done.stderr.strip()}", fix="see git's message"
        )


def _has_identity(root: Path) -> bool:
    done = subprocess.run(["git", "-C", str(root), "config", "user.email"], capture_output=True, text=True, check=False)
    return done.returncode == 0 and bool(done.stdout.strip())
