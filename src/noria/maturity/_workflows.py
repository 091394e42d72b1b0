"""CI workflows as a check sees them: a GitHub Actions workflow's triggers and everything its jobs
run, reusable workflows of the repository and the Makefile targets they call resolved.

:class:`~noria.maturity._context.Context` reads them (``ctx.workflows``, ``ctx.make_recipe``);
``Workflow`` is re-exported there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from noria.maturity._context import Context


@dataclass(frozen=True)
class Workflow:
    """A GitHub Actions workflow: its triggers and everything its jobs run (make targets resolved)."""

    path: Path
    rel: str
    name: str
    triggers: dict[str, Any]
    jobs: dict[str, Any]
    commands: str  # every `run:` line, `uses:` reference and the recipes of the make targets they call
    environments: tuple[str, ...] = ()

    @property
    def on_pull_request(self) -> bool:
        return any(t in self.triggers for t in ("pull_request", "pull_request_target", "merge_group"))

    @property
    def on_push_to_main(self) -> bool:
        push = self.triggers.get("push")
        if "push" not in self.triggers:
            return False
        branches = (push or {}).get("branches") if isinstance(push, dict) else None
        return branches is None or bool({"main", "master"} & {str(b) for b in branches})

    @property
    def schedules(self) -> list[str]:
        raw = self.triggers.get("schedule") or []
        return [str(s.get("cron")) for s in raw if isinstance(s, dict) and s.get("cron")]

    @property
    def reusable(self) -> bool:
        return "workflow_call" in self.triggers


def read_workflow(ctx: Context, path: Path, data: dict[Any, Any], depth: int = 0) -> Workflow:
    """The workflow in ``data`` (the parsed YAML of ``path``), its reusable workflows read to ``depth`` 2."""
    raw = data.get("on", data.get(True))  # YAML 1.1 reads a bare `on:` as true
    if isinstance(raw, str):
        triggers: dict[str, Any] = {raw: None}
    elif isinstance(raw, list):
        triggers = {str(t): None for t in raw}
    else:
        triggers = {str(k): v for k, v in (raw or {}).items()}
    jobs = data.get("jobs") or {}
    lines: list[str] = []
    environments: list[str] = []
    for job in jobs.values() if isinstance(jobs, dict) else []:
        if not isinstance(job, dict):
            continue
        env = job.get("environment")
        env_name = env.get("name") if isinstance(env, dict) else env
        if env_name:
            environments.append(str(env_name))
        if job.get("uses"):
            lines.append(f"uses: {job['uses']}")
            if isinstance(job.get("with"), dict) and job["with"].get("environment"):
                environments.append(str(job["with"]["environment"]))
            called = _called(ctx, path, str(job["uses"]), depth)
            if called is not None:  # a reusable workflow of this repository: what it runs counts
                lines.append(called.commands)
        for step in job.get("steps") or []:
            if isinstance(step, dict):
                if step.get("run"):
                    lines.append(str(step["run"]))
                if step.get("uses"):
                    lines.append(f"uses: {step['uses']}")
    commands = "\n".join(lines)
    commands += "".join(f"\n{make_recipe(ctx, t)}" for t in re.findall(r"\bmake\s+([a-z][\w-]*)", commands))
    return Workflow(
        path, ctx.rel(path), str(data.get("name") or path.stem), triggers, jobs, commands, tuple(environments)
    )


def _called(ctx: Context, caller: Path, uses: str, depth: int) -> Workflow | None:
    if not uses.startswith("./") or depth > 2:
        return None
    base = next((b for b in ctx.bases() if (caller.resolve()).is_relative_to(b.resolve())), ctx.repo)
    target = base / uses.split("@", 1)[0]
    docs = ctx.yaml_docs(target) if target.is_file() else []
    return read_workflow(ctx, target, docs[0], depth + 1) if docs and isinstance(docs[0], dict) else None


def make_recipe(ctx: Context, target: str, depth: int = 0) -> str:
    """The recipe of a Makefile target (the project's or the repository's), nested make calls resolved."""
    makefile = ctx.find("Makefile", "makefile", "GNUmakefile")
    if makefile is None or depth > 2:
        return ""
    lines = ctx.text(makefile).splitlines()
    recipe: list[str] = []
    for i, line in enumerate(lines):
        if re.match(rf"^{re.escape(target)}\s*:", line):
            for body in lines[i + 1 :]:
                if not body.startswith("\t"):
                    break
                recipe.append(body.strip())
            break
    text = "\n".join(recipe)
    for inner in re.findall(r"\$\(MAKE\)\s+([a-z][\w-]*)|\bmake\s+([a-z][\w-]*)", text):
        name = inner[0] or inner[1]
        if name != target:
            text += "\n" + make_recipe(ctx, name, depth + 1)
    return text


__all__ = ["Workflow", "make_recipe", "read_workflow"]
