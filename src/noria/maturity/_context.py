"""What a check can look at: the project's files and documents, its config, git, CI and deploy files.

A project is its folder (the one holding ``noria.yaml``) inside a repository: the git top level
above it, or the folder itself when it is not in git. Repository-level things (CI workflows,
pre-commit, CODEOWNERS, deploy folders, the changelog) are looked up in the project folder
first, then at the repository's root. Documents are the project's own Markdown (``README.md``,
``docs/**/*.md``) and, for a project in a sub-folder, the repository's pages that name it (its
``project:`` name or its folder), so that a reader can see which page counted.

Everything is read lazily and cached: a check costs a few file reads, and the whole assessment
runs git a dozen times at most. Records (registry, monitoring, logs) are in :mod:`._records`,
CI workflows and the make recipes they run in :mod:`._workflows`.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from noria.maturity._workflows import Workflow, read_workflow
from noria.maturity._workflows import make_recipe as _make_recipe
from noria.project_docs import PLACEHOLDER, SIGN_OFF, Doc, Section, placeholder_lines

if TYPE_CHECKING:
    from noria.config import Project
    from noria.features.config import FeaturesConfig
    from noria.maturity._records import Records

# A page generated from code (a CLI or config reference) documents the tool, not the project.
GENERATED = re.compile(r"(?i)generated from|do not edit by hand")
DEPLOY_DIRS = ("deploy", "infra", "infrastructure", "terraform", "k8s", "kubernetes", "helm", "charts")
_SKIP_DIRS = {
    ".git",
    ".venv",
    "venv",
    "node_modules",
    ".noria",
    "__pycache__",
    ".dvc",
    ".terraform",
    "data",
    ".tools",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    "demo",
}


def _words(names: Iterable[str]) -> re.Pattern[str] | None:
    """A pattern matching any of ``names`` as a whole word (None when there is none)."""
    escaped = [re.escape(n) for n in names if n]
    return re.compile(rf"(?<![\w-])({'|'.join(escaped)})(?![\w-])") if escaped else None


@dataclass(frozen=True)
class Commit:
    sha: str
    parents: tuple[str, ...]
    date: datetime
    subject: str
    body: str

    @property
    def via_pull_request(self) -> bool:
        """A pull request's merge: GitHub's merge commit, or a squash/rebase merge "(#123)"."""
        return bool(re.match(r"^Merge pull request #\d+", self.subject) or re.search(r"\(#\d+\)\s*$", self.subject))

    @property
    def review_trailer(self) -> bool:
        return bool(re.search(r"(?im)^(reviewed-by|approved-by):\s*\S", self.body))


@dataclass
class Context:
    """The project being assessed and lazy, cached views of its repository."""

    project: Project
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    # --- where -------------------------------------------------------------------------------

    @functools.cached_property
    def root(self) -> Path:
        return self.project.root.resolve()

    @functools.cached_property
    def repo(self) -> Path:
        top = self.git("rev-parse", "--show-toplevel", cwd=self.root)
        return Path(top).resolve() if top else self.root

    @property
    def in_git(self) -> bool:
        return self.git("rev-parse", "--git-dir", cwd=self.root) is not None

    @property
    def name(self) -> str:
        return self.project.config.project

    @property
    def model_name(self) -> str:
        return self.project.config.model.name or self.name

    def rel(self, path: Path) -> str:
        """A path as the report shows it: relative to the repository."""
        try:
            return path.resolve().relative_to(self.repo).as_posix()
        except ValueError:
            return str(path)

    @functools.cached_property
    def project_rel(self) -> str:
        """The project folder relative to the repository ("" at its root)."""
        rel = self.rel(self.root)
        return "" if rel == "." else rel

    def bases(self) -> list[Path]:
        """Where repository-level files are looked up: the project folder, then the repository."""
        return [self.root] if self.repo == self.root else [self.root, self.repo]

    def find(self, *candidates: str) -> Path | None:
        """The first existing file (or folder) among ``candidates``, in the project, then the repository."""
        for base in self.bases():
            for candidate in candidates:
                path = base / candidate
                if path.exists():
                    return path
        return None

    def walk(self, folder: Path, suffixes: tuple[str, ...] = ()) -> Iterator[Path]:
        """Files under ``folder`` (sorted; caches, environments and data folders skipped)."""
        if not folder.is_dir():
            return
        found = []
        for top, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.endswith(".egg-info")]
            found += [Path(top) / f for f in files if not suffixes or f.endswith(suffixes)]
        yield from sorted(found)

    # --- reading ------------------------------------------------------------------------------

    def text(self, path: Path) -> str:
        key = f"text:{path}"
        if key not in self._cache:
            try:
                self._cache[key] = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                self._cache[key] = ""
        return str(self._cache[key])

    def yaml_docs(self, path: Path) -> list[Any]:
        """The YAML documents of a file ([] when it is not valid YAML, e.g. a Go template)."""
        key = f"yaml:{path}"
        if key not in self._cache:
            try:
                self._cache[key] = [d for d in yaml.safe_load_all(self.text(path)) if d is not None]
            except yaml.YAMLError:
                self._cache[key] = []
        return list(self._cache[key])

    # --- config -------------------------------------------------------------------------------

    def where(self, *keys: str) -> str:
        """A config key with the file and line it comes from (``noria.yaml:12 monitoring.kpi``)."""
        dotted = ".".join(keys)
        sources = self.project.sources
        for n in range(len(keys), 0, -1):
            found = sources.get(tuple(keys[:n]))
            if found:
                if n == len(keys):
                    return f"{self._config_file(found)} {dotted}"
                return f"{self._config_file(found)} {'.'.join(keys[:n])} ({'.'.join(keys[n:])}: default)"
        return f"{self._config_file('noria.yaml')} {dotted} (default)"

    @functools.cached_property
    def features(self) -> FeaturesConfig:
        """The feature definitions, merged from noria.yaml, features.yaml and features/*.yaml (empty if invalid)."""
        from noria.errors import NoriaError
        from noria.features.config import FeaturesConfig
        from noria.features.definitions import load_features_config

        try:
            return load_features_config(self.project)
        except NoriaError as exc:
            self._cache["features_error"] = exc.message
            return FeaturesConfig()

    @functools.cached_property
    def features_file(self) -> Path:
        """Where the features are declared: features.yaml, the features/ folder, else noria.yaml."""
        for candidate in (self.root / "features.yaml", self.root / "features"):
            if candidate.exists():
                return candidate
        return self.root / "noria.yaml"

    def _config_file(self, source: str) -> str:
        prefix = f"{self.project_rel}/" if self.project_rel else ""
        return prefix + source

    # --- documents ----------------------------------------------------------------------------

    @functools.cached_property
    def docs(self) -> list[Doc]:
        """The project's Markdown, then the repository's pages that name the project."""
        own = [self.root / "README.md", *self.walk(self.root / "docs", (".md",))]
        docs = [Doc(p, self.rel(p), self.text(p)) for p in own if p.is_file()]
        docs = [d for d in docs if not GENERATED.search(d.text[:400])]
        if self.repo != self.root:
            mine = _words([self.name, self.project_rel])
            others = _words(self.other_projects)
            for path in [self.repo / "README.md", *self.walk(self.repo / "docs", (".md",))]:
                if path.is_file() and path.resolve() not in {d.path.resolve() for d in docs}:
                    text = self.text(path)
                    if GENERATED.search(text[:400]):
                        continue
                    if (mine is not None and mine.search(text)) or others is None or not others.search(text):
                        docs.append(Doc(path, self.rel(path), text))
        return docs

    @functools.cached_property
    def other_projects(self) -> list[str]:
        """Names of the repository's other Noria projects (their noria.yaml files)."""
        configs = [self.repo / p for p in self.tracked_files if p == "noria.yaml" or p.endswith("/noria.yaml")]
        names = []
        for path in configs:
            m = re.search(r"(?m)^project:\s*['\"]?([\w.-]+)", self.text(path))
            if m and m[1] != self.name and path.resolve().parent != self.root:
                names.append(m[1])
        return sorted(set(names))

    def sections(self, heading: str, *, within: Iterable[Doc] | None = None) -> list[Section]:
        """Sections whose heading matches ``heading`` (a case-insensitive regex), or whose file name does."""
        pattern = re.compile(heading, re.I)
        out = []
        for doc in within if within is not None else self.docs:
            matched = [s for s in doc.sections if pattern.search(s.heading)]
            if not matched and pattern.search(doc.path.stem.replace("_", " ").replace("-", " ")):
                matched = [Section(doc, doc.path.stem, 1, 1, doc.text)]  # the page named for it, whole
            out.extend(matched)
        return out

    # --- git ----------------------------------------------------------------------------------

    def git(self, *args: str, cwd: Path | None = None, strip: bool = True) -> str | None:
        """git's output (stripped unless ``strip`` is false), or None outside a repository or on failure."""
        try:
            done = subprocess.run(
                ["git", "-C", str(cwd or self.repo), *args], capture_output=True, text=True, timeout=60, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        if done.returncode != 0:
            return None
        return done.stdout.strip() if strip else done.stdout

    @functools.cached_property
    def tracked_files(self) -> frozenset[str]:
        """Every file git tracks, relative to the repository (empty outside git)."""
        out = self.git("ls-files", "-z") if self.in_git else None
        return frozenset(p for p in (out or "").split("\0") if p)

    def tracked(self, path: Path) -> bool:
        return self.rel(path) in self.tracked_files

    def uncommitted(self, *paths: Path) -> list[str]:
        """Of ``paths`` (files or folders), what differs from the last commit or is untracked."""
        if not self.in_git:
            return []
        out = self.git("status", "--porcelain", "--untracked-files=all", "--", *(str(p) for p in paths), strip=False)
        return [line[3:] for line in (out or "").splitlines() if line.strip()]

    def history(self, *paths: Path, limit: int = 500) -> list[Commit]:
        """Commits on the current branch's first-parent line (newest first), touching ``paths`` if given."""
        key = f"history:{limit}:{paths}"
        if key in self._cache:
            return list(self._cache[key])
        fmt = "%H%x1f%P%x1f%aI%x1f%s%x1f%b%x1e"
        spec = ["--", *(str(p) for p in paths)] if paths else []
        out = self.git("log", "--first-parent", f"-n{limit}", f"--format={fmt}", "HEAD", *spec) if self.in_git else None
        commits = []
        for record in (out or "").split("\x1e"):
            parts = record.strip("\n").split("\x1f")
            if len(parts) == 5:
                sha, parents, date, subject, body = parts
                commits.append(Commit(sha, tuple(parents.split()), datetime.fromisoformat(date), subject, body))
        self._cache[key] = commits
        return commits

    def last_change(self, path: Path) -> datetime | None:
        out = self.git("log", "-1", "--format=%aI", "--", str(path)) if self.in_git else None
        return datetime.fromisoformat(out) if out else None

    @functools.cached_property
    def tags(self) -> list[str]:
        out = self.git("tag", "--list") if self.in_git else None
        return [t for t in (out or "").splitlines() if t]

    # --- CI -----------------------------------------------------------------------------------

    @functools.cached_property
    def workflows(self) -> list[Workflow]:
        found: dict[Path, Workflow] = {}
        for base in self.bases():
            for path in self.walk(base / ".github" / "workflows", (".yml", ".yaml")):
                docs = self.yaml_docs(path)
                if docs and isinstance(docs[0], dict):
                    found.setdefault(path.resolve(), read_workflow(self, path, docs[0]))
        return list(found.values())

    def make_recipe(self, target: str, depth: int = 0) -> str:
        """The recipe of a Makefile target (the project's or the repository's), nested make calls resolved."""
        return _make_recipe(self, target, depth)

    def workflows_running(self, pattern: str, *, pull_request: bool = False) -> list[Workflow]:
        """Workflows whose commands match ``pattern`` (a regex), optionally only those run on pull requests."""
        rx = re.compile(pattern, re.I | re.M)
        return [w for w in self.workflows if rx.search(w.commands) and (w.on_pull_request or not pull_request)]

    # --- deploy -------------------------------------------------------------------------------

    @functools.cached_property
    def deploy_dirs(self) -> list[Path]:
        found: list[Path] = []
        for base in self.bases():
            for name in DEPLOY_DIRS:
                path = base / name
                if path.is_dir() and path.resolve() not in {f.resolve() for f in found}:
                    found.append(path)
        return found

    def deploy_files(self, *suffixes: str) -> list[Path]:
        return [p for d in self.deploy_dirs for p in self.walk(d, suffixes)]

    @functools.cached_property
    def manifests(self) -> list[tuple[Path, dict[str, Any]]]:
        """Kubernetes objects (YAML documents with apiVersion and kind) under the deploy folders."""
        out = []
        for path in self.deploy_files(".yaml", ".yml"):
            for doc in self.yaml_docs(path):
                if isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc:
                    out.append((path, doc))
        return out

    def kinds(self, kind: str) -> list[tuple[Path, dict[str, Any]]]:
        return [(p, d) for p, d in self.manifests if d.get("kind") == kind]

    @functools.cached_property
    def records(self) -> Records:
        from noria.maturity._records import Records

        return Records(self.project)


def age_days(moment: datetime, now: datetime) -> float:
    return (now - (moment if moment.tzinfo else moment.replace(tzinfo=UTC))).total_seconds() / 86400


__all__ = [
    "PLACEHOLDER",
    "SIGN_OFF",
    "Commit",
    "Context",
    "Doc",
    "Section",
    "Workflow",
    "age_days",
    "placeholder_lines",
]
