"""Evidence builders and the repository rules several checks read (review rules, CODEOWNERS, environments).

Review rules as code: a branch-protection file (GitHub's JSON, ``.github/settings.yml`` or a
Terraform ``github_branch_protection`` resource) under ``.github/`` or a deploy folder. The git
history says whether changes really went through pull requests: a first-parent commit on the
current branch is a pull request's when its subject is GitHub's merge message or ends in
``(#123)`` (squash and rebase merges); a ``Reviewed-by:`` / ``Approved-by:`` trailer records an
approval given elsewhere. The first commit of a repository (its creation) is not judged.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noria.maturity._context import PLACEHOLDER, Commit, Context, Section, Workflow
from noria.maturity._model import Evidence

PREPROD = re.compile(r"pre-?prod|stag(e|ing)|qa|test|uat|dev", re.I)
PROD = re.compile(r"^prod(uction)?$", re.I)


def file(ctx: Context, path: Path, detail: str = "", anchor: str = "") -> Evidence:
    rel = ctx.rel(path)
    return Evidence("file", f"{rel}#{anchor}" if anchor else rel, detail, rel)


def section(s: Section, detail: str = "") -> Evidence:
    return Evidence("file", s.where, detail, s.doc.rel)


def config(ctx: Context, *keys: str, detail: str = "") -> Evidence:
    where = ctx.where(*keys)
    return Evidence("config", where, detail, where.split(":", 1)[0] if ":" in where else None)


def features(ctx: Context, detail: str = "") -> Evidence:
    """Evidence from the feature definitions (features.yaml, the features/ folder or noria.yaml)."""
    return file(ctx, ctx.features_file, detail)


def record(where: str, detail: str = "", path: str | None = None) -> Evidence:
    return Evidence("record", where, detail, path)


def git(where: str, detail: str = "") -> Evidence:
    return Evidence("git", where, detail)


def workflow(w: Workflow, detail: str = "") -> Evidence:
    return Evidence("workflow", w.rel, detail, w.rel)


# --- review rules ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewRule:
    """A branch's protection as code: pull requests required, with this many approvals."""

    path: Path
    approvals: int
    code_owners: bool


def review_rules(ctx: Context) -> list[ReviewRule]:
    found: list[ReviewRule] = []
    candidates = [
        p for base in ctx.bases() for p in ctx.walk(base / ".github") if p.suffix in {".json", ".yml", ".yaml"}
    ]
    candidates += ctx.deploy_files(".json", ".yml", ".yaml", ".tf")
    for path in dict.fromkeys(p.resolve() for p in candidates):
        text = ctx.text(path)
        if "required_pull_request_reviews" not in text:
            continue
        if path.suffix == ".tf":
            count = re.search(r"required_approving_review_count\s*=\s*(\d+)", text)
            owners = re.search(r"require_code_owner_reviews\s*=\s*true", text)
            found.append(ReviewRule(path, int(count[1]) if count else 1, bool(owners)))
            continue
        try:
            data: Any = json.loads(text) if path.suffix == ".json" else ctx.yaml_docs(path)
        except ValueError:
            continue
        for block in _blocks(data, "required_pull_request_reviews"):
            block = block if isinstance(block, dict) else {}
            found.append(
                ReviewRule(
                    path,
                    int(block.get("required_approving_review_count") or 0),
                    bool(block.get("require_code_owner_reviews")),
                )
            )
    return found


def _blocks(data: Any, key: str) -> list[Any]:
    """Every value stored under ``key`` anywhere in a JSON/YAML tree."""
    out: list[Any] = []
    if isinstance(data, dict):
        for k, v in data.items():
            if k == key:
                out.append(v)
            out.extend(_blocks(v, key))
    elif isinstance(data, list):
        for item in data:
            out.extend(_blocks(item, key))
    return out


@dataclass(frozen=True)
class Owners:
    path: Path
    rules: tuple[tuple[str, tuple[str, ...]], ...]  # (pattern, owners); placeholder owners left out
    placeholders: tuple[str, ...] = ()  # owners still a placeholder (@TODO-owner): not filled in

    def covers(self, rel: str) -> bool:
        """Whether some rule with owners matches a repository path (GitHub's last-match-wins, simplified)."""
        owners: tuple[str, ...] = ()
        for pattern, who in self.rules:
            if _codeowners_match(pattern, rel):
                owners = who
        return bool(owners)


def codeowners(ctx: Context) -> Owners | None:
    path = ctx.find(".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS")
    if path is None or not path.is_file():
        return None
    rules = []
    placeholders: list[str] = []
    for line in ctx.text(path).splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 1:
            owners = tuple(o for o in parts[1:] if not PLACEHOLDER.search(o))
            placeholders += [o for o in parts[1:] if PLACEHOLDER.search(o)]
            rules.append((parts[0], owners))
    return Owners(path, tuple(rules), tuple(dict.fromkeys(placeholders)))


def _codeowners_match(pattern: str, rel: str) -> bool:
    anchored = pattern.startswith("/")
    core = pattern.strip("/")
    if core in ("*", "**"):
        return True
    rx = re.escape(core).replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
    prefix = "^" if anchored or "/" in core else r"(^|.*/)"
    return re.match(f"{prefix}{rx}(/.*)?$", rel) is not None


@dataclass(frozen=True)
class ChangeHistory:
    """How the changes to some paths reached the branch."""

    judged: tuple[Commit, ...]  # first-parent commits, the repository's first one left out
    via_pr: tuple[Commit, ...]
    reviewed: tuple[Commit, ...]  # via a pull request or with a review trailer

    @property
    def direct(self) -> list[Commit]:
        return [c for c in self.judged if c not in self.via_pr and not c.review_trailer]


def change_history(ctx: Context, *paths: Path) -> ChangeHistory:
    judged = tuple(c for c in ctx.history(*paths) if c.parents)
    via_pr = tuple(c for c in judged if c.via_pull_request)
    reviewed = tuple(c for c in judged if c.via_pull_request or c.review_trailer)
    return ChangeHistory(judged, via_pr, reviewed)


def history_evidence(ctx: Context, h: ChangeHistory, what: str) -> Evidence:
    branch = ctx.git("rev-parse", "--abbrev-ref", "HEAD") or "HEAD"
    if not h.judged:
        return git(branch, f"no {what} after the repository's first commit yet")
    sample = ", ".join(f"{c.sha[:8]} {c.subject[:50]!r}" for c in h.direct[:3])
    detail = f"{len(h.via_pr)} of the last {len(h.judged)} {what} came through a pull request"
    return git(branch, detail + (f"; not: {sample}" if sample else ""))


# --- environments ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Environment:
    name: str
    path: Path  # its overlay or Terraform folder
    kind: str  # "kustomize overlay" or "terraform"


def environments(ctx: Context) -> list[Environment]:
    """Deployment environments as code: kustomize overlays over a shared base, Terraform env folders."""
    found: list[Environment] = []
    for folder in ctx.deploy_dirs:
        for overlay in sorted(folder.rglob("overlays/*/kustomization.y*ml")):
            found.append(Environment(overlay.parent.name, overlay.parent, "kustomize overlay"))
        for env in sorted(folder.rglob("envs/*/")):
            if env.is_dir() and any(env.glob("*.tf")):
                found.append(Environment(env.name, env, "terraform"))
    return found


def has_prod_and_preprod(envs: list[Environment]) -> bool:
    names = {e.name for e in envs}
    return any(PROD.match(n) for n in names) and any(PREPROD.search(n) and not PROD.match(n) for n in names)


def mentions_project(ctx: Context, paths: list[Path]) -> list[Path]:
    """Of ``paths``, those that name the project (its ``project:`` value or its folder)."""
    names = [re.escape(ctx.name)] + ([re.escape(ctx.project_rel)] if ctx.project_rel else [])
    rx = re.compile(rf"(?<![\w-])({'|'.join(names)})(?![\w-])")
    return [p for p in paths if rx.search(ctx.text(p))]


def deployed_configs(ctx: Context) -> list[tuple[Path, str]]:
    """Copies of a ``noria.yaml`` in the deploy folders, with the project each names."""
    out = []
    for path in ctx.deploy_files("noria.yaml"):
        for doc in ctx.yaml_docs(path):
            if isinstance(doc, dict) and doc.get("project"):
                out.append((path, str(doc["project"])))
    return out


__all__ = [
    "ChangeHistory",
    "Environment",
    "Owners",
    "ReviewRule",
    "change_history",
    "codeowners",
    "config",
    "deployed_configs",
    "environments",
    "features",
    "file",
    "git",
    "has_prod_and_preprod",
    "history_evidence",
    "mentions_project",
    "record",
    "review_rules",
    "section",
    "workflow",
]
