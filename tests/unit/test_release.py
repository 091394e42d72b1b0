"""`make release` (scripts/release.py) in a small git repository made for each test, never this one.

The repository holds copies of this project's pyproject.toml, uv.lock, package ``__init__``,
Makefile and release script, a short changelog and a kustomization, so the release runs the real
target on the real declarations and `uv lock --check` judges the lock file it leaves. The commands
of docs/releasing.md's ```bash run blocks are run as written, against a bare "origin".
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.conftest import missing

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "releasing.md"
BLOCK = re.compile(r"```bash run\n(?P<body>.*?)```", re.S)
CURRENT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "MAKE", "MFLAGS"))},
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@localhost",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@localhost",
    "GIT_CONFIG_NOSYSTEM": "1",
}

CHANGELOG = f"""\
# Changelog

## [Unreleased]

### Added
- `noria release notes` on every promoted version.

### Changed

### Fixed
- A crash on an empty table.

## [{CURRENT}] - 2026-01-01

### Added
- The first release.

[Unreleased]: https://example.com/shop/compare/v{CURRENT}...HEAD
"""

KUSTOMIZATION = f"""\
images:
  - name: noria-serving
    newName: ghcr.io/acme/noria-serving
    newTag: {CURRENT}
  - name: noria-pipeline
    newTag: {CURRENT}
  - name: redis
    newTag: {CURRENT}
"""

ARCHITECTURE = f"""\
| workload | image |
|---|---|
| `noria-serving` | `noria-serving:{CURRENT}` |
| `redis` | `redis:{CURRENT}` |
"""


def bumped(version: str, part: str) -> str:
    major, minor, patch = (int(p) for p in version.split("."))
    return {"major": f"{major + 1}.0.0", "minor": f"{major}.{minor + 1}.0", "patch": f"{major}.{minor}.{patch + 1}"}[
        part
    ]


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, env=ENV, check=True)
    return done.stdout.strip()


def make(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "release", *args], cwd=root, capture_output=True, text=True, env=ENV
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for rel in ("pyproject.toml", "uv.lock", "Makefile", "scripts/release.py", "src/noria/__init__.py"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, root / rel)
    (root / "CHANGELOG.md").write_text(CHANGELOG, encoding="utf-8")
    (root / "deploy/k8s/base").mkdir(parents=True)
    (root / "deploy/k8s/base/kustomization.yaml").write_text(KUSTOMIZATION, encoding="utf-8")
    (root / "docs").mkdir()
    (root / "docs/architecture.md").write_text(ARCHITECTURE, encoding="utf-8")
    (root / ".gitignore").write_text("dist/\n", encoding="utf-8")
    git(tmp_path, "init", "-q", "-b", "main", str(root))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "Initial")
    return root


def state(root: Path) -> tuple[str, str, str, dict[str, bytes]]:
    """Everything a refused release must leave alone: HEAD, tags, status and the files."""
    files = {
        p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file() and ".git" not in p.parts
    }
    return git(root, "rev-parse", "HEAD"), git(root, "tag"), git(root, "status", "--porcelain"), files


def test_make_release_moves_unreleased_sets_the_version_writes_notes_commits_and_tags(repo: Path) -> None:
    version = bumped(CURRENT, "minor")
    today = datetime.now(UTC).date().isoformat()
    done = make(repo, "PART=minor")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"released {version}" in done.stdout

    changelog = (repo / "CHANGELOG.md").read_text(encoding="utf-8")
    section = f"## [{version}] - {today}\n\n### Added\n- `noria release notes` on every promoted version.\n\n"
    section += "### Fixed\n- A crash on an empty table.\n"
    assert changelog.startswith(f"# Changelog\n\n## [Unreleased]\n\n{section}\n## [{CURRENT}] - 2026-01-01\n")
    assert "### Changed" not in changelog  # the empty heading is not carried into the release
    assert changelog.endswith(
        f"[Unreleased]: https://example.com/shop/compare/v{version}...HEAD\n"
        f"[{version}]: https://example.com/shop/compare/v{CURRENT}...v{version}\n"
    )
    assert tomllib.loads((repo / "pyproject.toml").read_text())["project"]["version"] == version
    assert f'__version__ = "{version}"' in (repo / "src/noria/__init__.py").read_text()
    assert f'name = "noria"\nversion = "{version}"\nsource = {{ editable = "." }}' in (repo / "uv.lock").read_text()
    kustomization = (repo / "deploy/k8s/base/kustomization.yaml").read_text()
    assert kustomization == KUSTOMIZATION.replace(f"newTag: {CURRENT}", f"newTag: {version}", 2)  # not redis
    architecture = (repo / "docs/architecture.md").read_text()
    assert architecture == ARCHITECTURE.replace(f"noria-serving:{CURRENT}", f"noria-serving:{version}")

    notes = (repo / "dist" / f"release-notes-{version}.md").read_text(encoding="utf-8")
    assert notes == section
    assert git(repo, "log", "-1", "--format=%s") == f"Release {version}"
    assert git(repo, "status", "--porcelain") == ""  # everything changed is in the commit
    assert git(repo, "cat-file", "-t", f"v{version}") == "tag"  # annotated
    assert git(repo, "tag", "-l", "--format=%(contents)", f"v{version}") == notes.strip()
    assert git(repo, "rev-parse", f"v{version}^{{commit}}") == git(repo, "rev-parse", "HEAD")
    assert sorted(git(repo, "show", "--name-only", "--format=", "HEAD").splitlines()) == [
        "CHANGELOG.md",
        "deploy/k8s/base/kustomization.yaml",
        "docs/architecture.md",
        "pyproject.toml",
        "src/noria/__init__.py",
        "uv.lock",
    ]
    uv = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    if not Path(uv).exists():
        missing("uv is missing: `python3 -m pip install --target .tools uv` (make does it)")
    check = subprocess.run([uv, "lock", "--check", "--offline"], cwd=repo, capture_output=True, text=True, env=ENV)
    assert check.returncode == 0, check.stderr  # `uv sync --frozen` keeps working on the released tree


@pytest.mark.parametrize(
    ("args", "prepare", "message"),
    [
        (["PART=patch"], "dirty", "the working tree is not clean (CHANGELOG.md)"),
        (["PART=patch"], "untracked", "the working tree is not clean (notes.txt)"),
        ([f"VERSION={CURRENT}"], "", f"version {CURRENT} is not greater than the current version {CURRENT}"),
        (["VERSION=0.0.1"], "", "is not greater than the current version"),
        (["VERSION=1.2"], "", "'1.2' is not a version MAJOR.MINOR.PATCH"),
        (["PART=huge"], "", "PART='huge' is not one of major, minor, patch"),
        ([], "", "say which version to release"),
        (["PART=patch"], "empty", "the Unreleased section of CHANGELOG.md is empty"),
        (["PART=patch"], "tagged", f"the tag v{bumped(CURRENT, 'patch')} already exists"),
    ],
)
def test_a_release_that_cannot_go_ahead_is_refused_and_changes_nothing(
    repo: Path, args: list[str], prepare: str, message: str
) -> None:
    if prepare == "dirty":
        (repo / "CHANGELOG.md").write_text(CHANGELOG + "\n- more\n", encoding="utf-8")
    elif prepare == "untracked":
        (repo / "notes.txt").write_text("draft\n", encoding="utf-8")
    elif prepare == "empty":
        empty = re.sub(r"(?s)## \[Unreleased\]\n.*?(?=## \[\d)", "## [Unreleased]\n\n### Added\n\n", CHANGELOG)
        (repo / "CHANGELOG.md").write_text(empty, encoding="utf-8")
        git(repo, "commit", "-q", "-am", "Empty unreleased")
    elif prepare == "tagged":
        git(repo, "tag", f"v{bumped(CURRENT, 'patch')}")
    before = state(repo)
    done = make(repo, *args)
    assert done.returncode != 0
    assert done.stderr.startswith("release refused: ") and message in done.stderr, done.stderr
    assert "fix: " in done.stderr
    assert state(repo) == before
    assert not (repo / "dist").exists()


def test_dry_run_shows_the_plan_and_changes_nothing(repo: Path) -> None:
    before = state(repo)
    done = make(repo, "PART=major", "DRY_RUN=1")
    assert done.returncode == 0, done.stderr
    version = bumped(CURRENT, "major")
    assert f"release {CURRENT} -> {version}" in done.stdout
    planned = "CHANGELOG.md, pyproject.toml, src/noria/__init__.py, uv.lock, deploy/k8s/base/kustomization.yaml, "
    assert planned + "docs/architecture.md\n" in done.stdout
    assert f"## [{version}] - " in done.stdout and "A crash on an empty table." in done.stdout
    assert f"tag          v{version}" in done.stdout and "dry run: nothing changed" in done.stdout
    assert state(repo) == before


def test_a_failed_commit_puts_every_file_back(repo: Path) -> None:
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'hook says no' >&2\nexit 1\n", encoding="utf-8")
    hook.chmod(0o755)
    before = state(repo)
    done = make(repo, "PART=patch")
    assert done.returncode != 0 and "hook says no" in done.stderr
    head, tags, status, files = state(repo)
    assert (head, tags, status) == before[:3]
    assert {k: v for k, v in files.items() if not k.startswith("dist/")} == before[3]


def test_the_commands_of_the_releasing_page_run(repo: Path, tmp_path: Path) -> None:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "-u", "origin", "main")
    lines = [line for m in BLOCK.finditer(PAGE.read_text(encoding="utf-8")) for line in m["body"].splitlines()]
    assert any(line.startswith("make release") for line in lines) and "git push --follow-tags" in lines
    for line in lines:
        done = subprocess.run(line, shell=True, cwd=repo, env=ENV, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"`{line}` failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    released = git(repo, "describe", "--tags", "--exact-match", "HEAD")
    assert git(origin, "tag") == released  # the tag reached the remote with the commit
    assert git(origin, "rev-parse", "main") == git(repo, "rev-parse", "HEAD")
