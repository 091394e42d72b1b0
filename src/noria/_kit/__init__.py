"""The project kit ``noria init`` adds to every template: CI/CD, reviews, tests, docs, deploy.

The files under this package (``*.tmpl``; a leading ``dot-`` in a path part stands for ``.``)
are rendered with :class:`string.Template` (delimiter ``@@``, so that GitHub's ``${{ }}`` and
Prometheus' ``{{ $labels }}`` pass through) for one project: its name, task, model, tables,
feature modules and retraining policy come from its config, so nothing here names a dataset.
A file the template already has (its README, its .gitignore) is kept, never overwritten.

What needs a person stays a placeholder (``TODO``): the goals and KPI target, owners and
CODEOWNERS, risks, explanations' users, the review queue's reviewer, the alert receiver, the
cost figures, the model-choice figures. ``noria maturity`` recognises them as not filled in, so
a new project scores what it really has (docs/maturity.md, "A new project").
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import string
from pathlib import Path
from typing import TYPE_CHECKING

from noria import atomic
from noria.errors import ConfigError

if TYPE_CHECKING:
    from noria.config import Project

KIT = Path(__file__).parent
SUFFIX = ".tmpl"
CI_WORKFLOW = Path(".github/workflows/ci.yml")
MIN_SCORE_MARGIN = 2.0  # the CI floor sits this far below the day-one score (history may differ in CI)
KUBERNETES_VALIDATE = "1.37.0"  # the version Noria's own `make lint` validates its manifests with
GITIGNORE_LINES = ("/.pytest_cache/", "/.ruff_cache/")
_FALLBACK_VERSIONS = {"pytest": "8.3.5", "ruff": "0.11.13", "pre-commit": "4.2.0"}


class KitTemplate(string.Template):
    delimiter = "@@"
    idpattern = r"[a-z][a-z_]*"


def kit_files() -> dict[Path, Path]:
    """Each kit template and where it goes in a project (relative path)."""
    out = {}
    for path in sorted(KIT.rglob(f"*{SUFFIX}")):
        rel = path.relative_to(KIT).with_suffix("")
        out[path] = Path(*("." + p[4:] if p.startswith("dot-") else p for p in rel.parts))
    return out


def variables(project: Project, template: str, min_score: float | None = None) -> dict[str, str]:
    """What the templates are filled with, from the project's config."""
    from noria import __version__
    from noria.features import load_definitions
    from noria.tasks import task_of

    config = project.config
    defs = load_definitions(project)
    data_refs = [c.function for spec in config.data.tables.values() for c in spec.checks if c.function]
    if config.model.target is not None and config.model.target.function:
        data_refs.append(config.model.target.function)
    feature_modules = sorted({ref.split(":", 1)[0] for ref in defs.functions})
    request = config.serving.request
    api_refs = [request.model, request.mapping, request.inverse]
    f = defs.config
    return {
        "project": project.config.project,
        "description": config.description.strip() or "TODO one sentence on what the model predicts and for whom.",
        "template": template,
        "task": config.model.task,
        "model": config.model.name or project.config.project,
        "primary_metric": task_of(project).primary_metric,
        "noria_version": __version__,
        "python_version": "3.11",
        "min_score": _min_score(min_score),
        "kubernetes_validate_version": KUBERNETES_VALIDATE,
        "pytest_version": _version("pytest"),
        "ruff_version": _version("ruff"),
        "pre_commit_version": _version("pre-commit"),
        # Python list literals, double-quoted as ruff format writes them (JSON's strings are Python's).
        "data_modules": json.dumps(sorted({r.split(":", 1)[0] for r in data_refs})),
        "feature_modules": json.dumps(feature_modules),
        "api_modules": json.dumps(sorted({r.split(":", 1)[0] for r in api_refs if r})),
        "modules_line": ", ".join(f"`{m}.py`" for m in feature_modules) or "(no module yet)",
        "tables_line": ", ".join(f"`{t}`" for t in config.data.tables) + f" ({len(config.data.tables)} tables)",
        "features_line": (
            f"{len(f.feature_views)} feature views over {len(f.sources)} sources, {len(f.request_views)} request "
            f"views, {len(f.derived)} derived features; the model's set is service "
            + ", ".join(f"`{s}`" for s in f.services)
        ),
        "kpi_block": _kpi(project),
        "policy_block": _policy(project),
        "source_line": _source(project),
        "tables_block": _tables(project),
    }


def render(source: Path, values: dict[str, str]) -> str:
    try:
        return KitTemplate(source.read_text(encoding="utf-8")).substitute(values)
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"the kit template {source.name} is broken: {exc}", fix="reinstall noria") from None


def write_kit(root: Path, project: Project, template: str, min_score: float | None = None) -> list[Path]:
    """Render the kit into the project folder ``root``; files the template has are kept. Returns what was written."""
    values = variables(project, template, min_score)
    written = []
    for source, rel in kit_files().items():
        target = root / rel
        if target.exists():
            continue
        _write(target, render(source, values))
        written.append(target)
    if (root / "deploy" / "github" / "apply.sh").is_file():
        (root / "deploy" / "github" / "apply.sh").chmod(0o755)
    ignore = root / ".gitignore"
    text = ignore.read_text(encoding="utf-8") if ignore.is_file() else ""
    missing = [line for line in GITIGNORE_LINES if line not in text.splitlines()]
    if missing:
        block = "# Test and lint caches.\n" + "\n".join(missing) + "\n"
        _write(ignore, text + ("\n" if text and not text.endswith("\n") else "") + block)
    return written


def set_min_score(root: Path, project: Project, template: str, score: float) -> None:
    """Write the CI workflow again with ``noria maturity --min`` just below ``score``."""
    source = next(s for s, rel in kit_files().items() if rel == CI_WORKFLOW)
    _write(root / CI_WORKFLOW, render(source, variables(project, template, score)))


def _min_score(score: float | None) -> str:
    if score is None:
        return "0"
    return f"{max(0.0, math.floor(score - MIN_SCORE_MARGIN)):g}"


def _write(path: Path, text: str) -> None:
    atomic.write_text(path, text)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return _FALLBACK_VERSIONS[dist]


def _kpi(project: Project) -> str:
    kpi = project.config.monitoring.kpi
    if not (kpi.name or kpi.metric):
        return "The config names no KPI yet (`monitoring.kpi` in noria.yaml)."
    target = f"target {kpi.target:g}" if kpi.target is not None else "no target set yet"
    return f"The config measures `{kpi.metric or 'the primary metric'}` as the KPI ({kpi.name or 'unnamed'}), {target}."


def _policy(project: Project) -> str:
    policy = project.config.monitoring.policy
    lines = []
    if policy.on_drift:
        lines.append("- drift on a feature that matters to the model (`monitoring.policy.on_drift`)")
    if policy.metric_drop is not None:
        lines.append(
            f"- the live primary metric worse than the holdout by more than {policy.metric_drop:g} "
            "(`monitoring.policy.metric_drop`)"
        )
    if policy.every_windows is not None:
        lines.append(f"- every {policy.every_windows} windows (`monitoring.policy.every_windows`)")
    if not policy.enabled or not lines:
        return "- no trigger is on yet: set `monitoring.policy` in noria.yaml"
    return "\n".join(lines)


def _source(project: Project) -> str:
    source = project.config.data.source
    if source.kind == "package":
        return f"The files of the installed package `{source.package}` (`{source.path}`)."
    if source.kind == "s3":
        return f"One object per table under `{source.path}` (copied to `.noria/source-s3/` before each ingest)."
    return f"One file per table in the folder `{source.path}` (kept out of git; DVC versions what is ingested)."


def _tables(project: Project) -> str:
    blocks = []
    for name, spec in project.config.data.tables.items():
        lines = [f"### {name}", "", spec.description.strip() or "TODO what one row is and where it comes from.", ""]
        lines.append(f"From `{spec.file}`; key: {', '.join(spec.primary_key)}; {len(spec.columns)} columns.")
        ruled = [
            c
            for c, col in spec.columns.items()
            if col.min is not None or col.max is not None or col.allowed or col.pattern
        ]
        if ruled:
            lines.append(
                f"Values outside their declared range, set or pattern ({', '.join(ruled)}) are quarantined: "
                "why: a value the column cannot hold is a recording error, not a fact to learn from."
            )
        lines += [
            f"- `{c.name}`: why: {c.reason.strip() if c.reason else 'TODO the reason for this rule'}"
            for c in spec.checks
        ]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
