"""Cut a release: `make release VERSION=X.Y.Z` (or `PART=patch|minor|major`; `DRY_RUN=1` to preview).

From a clean working tree, in the repository that holds CHANGELOG.md (Keep a Changelog) and
pyproject.toml:

1. moves the entries of `## [Unreleased]` under `## [X.Y.Z] - YYYY-MM-DD` (UTC), leaving an
   empty Unreleased section;
2. sets the version wherever the project declares it: pyproject.toml, the package's
   `__version__` (src/*/__init__.py), the project's own entry in uv.lock (so `uv lock --check`
   and `uv sync --frozen` keep passing) and the default tags of the project's images in the
   kustomize files and Terraform variables under deploy/ and where docs/*.md show them
   (`noria-serving:X.Y.Z` in a generated deployment view);
3. writes the release notes (that version's CHANGELOG section) to dist/release-notes-X.Y.Z.md;
4. commits "Release X.Y.Z" and creates the annotated tag vX.Y.Z whose message is the notes.

It refuses, changing nothing, on a dirty tree, a version not greater than the current one, an
empty Unreleased section or an existing tag. Files are written atomically and put back if a
later step fails before the commit. Pushing is left to the person: `git push --follow-tags`
(the release workflow then publishes the notes). Standard library only: runs on plain python3.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

PARTS = ("major", "minor", "patch")
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
UNRELEASED = re.compile(r"(?m)^## \[Unreleased\][^\n]*\n")
NEXT_SECTION = re.compile(r"(?m)^## \[")


class ReleaseError(Exception):
    """Why the release cannot go ahead, and how to fix it."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.message, self.fix = message, fix

    def __str__(self) -> str:
        return f"{self.message}\n  fix: {self.fix}"


@dataclass
class Plan:
    root: Path
    current: str
    version: str
    date: str
    notes: str
    changes: dict[Path, str] = field(default_factory=dict)  # file -> its new text

    @property
    def tag(self) -> str:
        return f"v{self.version}"

    @property
    def notes_path(self) -> Path:
        return self.root / "dist" / f"release-notes-{self.version}.md"


# --- versions --------------------------------------------------------------------------------


def parse(version: str, what: str) -> tuple[int, int, int]:
    m = SEMVER.match(version)
    if m is None:
        raise ReleaseError(
            f"{what} {version!r} is not a version MAJOR.MINOR.PATCH (e.g. 1.4.0)",
            "give VERSION=X.Y.Z with three numbers, no leading zeros or 'v'",
        )
    return int(m[1]), int(m[2]), int(m[3])


def bump(current: str, part: str) -> str:
    if part not in PARTS:
        raise ReleaseError(f"PART={part!r} is not one of {', '.join(PARTS)}", "PART=patch, PART=minor or PART=major")
    major, minor, patch = parse(current, "the current version")
    if part == "major":
        return f"{major + 1}.0.0"
    if part == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def project_version(root: Path) -> tuple[str, str]:
    """The project's name and version from pyproject.toml."""
    path = root / "pyproject.toml"
    if not path.is_file():
        raise ReleaseError(f"no pyproject.toml in {root}", "run from the repository's root (make release does)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ReleaseError(f"pyproject.toml is not valid TOML: {exc}", "fix the file, then retry") from None
    project = data.get("project") or {}
    if "version" not in project:
        raise ReleaseError(
            "pyproject.toml has no [project] version (a dynamic version cannot be released by this script)",
            'declare it: version = "X.Y.Z" under [project]',
        )
    return str(project.get("name", "")), str(project["version"])


# --- the changelog ---------------------------------------------------------------------------


def cut_changelog(text: str, version: str, date: str) -> tuple[str, str]:
    """The changelog with Unreleased moved under ``version``, and that version's notes."""
    head = UNRELEASED.search(text)
    if head is None:
        raise ReleaseError(
            "CHANGELOG.md has no '## [Unreleased]' section",
            "add '## [Unreleased]' above the newest version and list the changes under it (keepachangelog.com)",
        )
    following = NEXT_SECTION.search(text, head.end())
    end = following.start() if following else len(text)
    body = _drop_empty_headings(text[head.end() : end]).strip("\n")
    if not re.search(r"(?m)^(?!\s*$)(?!#)", body):
        raise ReleaseError(
            "the Unreleased section of CHANGELOG.md is empty: there is nothing to release",
            "list the changes under '## [Unreleased]' (### Added / Changed / Fixed ...), commit, then retry",
        )
    if re.search(rf"(?m)^## \[v?{re.escape(version)}\]", text):
        raise ReleaseError(
            f"CHANGELOG.md already has a section for {version}", "pick the next version (VERSION=... or PART=...)"
        )
    section = f"## [{version}] - {date}\n\n{body}\n"
    new = text[: head.start()] + "## [Unreleased]\n\n" + section + ("\n" if following else "") + text[end:]
    return _update_links(new, version), section


def _drop_empty_headings(body: str) -> str:
    """Remove `### Heading` lines with no entry under them."""
    out: list[str] = []
    pending: list[str] = []
    for line in body.splitlines():
        if line.startswith("#"):
            pending = [line]
        elif pending and not line.strip():
            pending.append(line)
        else:
            out += pending
            pending = []
            out.append(line)
    return "\n".join(out)


def _update_links(text: str, version: str) -> str:
    """Keep a Changelog's link references: `[Unreleased]: .../compare/vA...HEAD` moves on to the new tag."""
    m = re.search(r"(?m)^\[Unreleased\]:[ \t]*(\S*?)/compare/(v?)([\w.-]+?)\.\.\.HEAD[ \t]*$", text)
    if m is None:
        return text
    base, prefix, previous = m[1], m[2], m[3]
    lines = (
        f"[Unreleased]: {base}/compare/{prefix}{version}...HEAD\n"
        f"[{version}]: {base}/compare/{prefix}{previous}...{prefix}{version}"
    )
    return text[: m.start()] + lines + text[m.end() :]


# --- where the version is declared -----------------------------------------------------------


def version_changes(root: Path, name: str, current: str, version: str) -> dict[Path, str]:
    """Every file that declares the current version, with the version replaced."""
    changes: dict[Path, str] = {}
    old = re.escape(current)
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    section = re.search(r"(?ms)^\[project\]\n(.*?)(?=^\[|\Z)", text)
    assert section is not None  # project_version read it
    block, n = re.subn(rf'(?m)^(version\s*=\s*["\']){old}(["\'])', rf"\g<1>{version}\g<2>", section[1], count=1)
    if n != 1:
        raise ReleaseError(
            f'pyproject.toml\'s [project] version {current!r} is not written as version = "{current}"',
            'write it on one line: version = "X.Y.Z"',
        )
    changes[pyproject] = text[: section.start(1)] + block + text[section.end(1) :]

    package = name.replace("-", "_").lower()
    for init in sorted((root / "src").glob("*/__init__.py")) + sorted(root.glob(f"{package}/__init__.py")):
        if init.parent.name.lower() != package:
            continue
        new = re.sub(rf'(?m)^(__version__\s*=\s*["\']){old}(["\'])', rf"\g<1>{version}\g<2>", _read(init))
        if new != _read(init):
            changes[init] = new

    lock = root / "uv.lock"
    if lock.is_file():
        text = _read(lock)
        entry = rf'(?m)^(\[\[package\]\]\nname = "{re.escape(name)}"\nversion = ")'
        own = entry + old + r'("\nsource = \{ (?:editable|virtual) = "\." \})'
        new = re.sub(own, rf"\g<1>{version}\g<2>", text)
        if new != text:
            changes[lock] = new

    images = rf"(?:\S*/)?{re.escape(name)}-[\w-]+"
    deploy = root / "deploy"
    for path in sorted(deploy.rglob("kustomization.yaml")) if deploy.is_dir() else []:
        text = _read(path)
        new = re.sub(
            rf"(?m)^(\s*- name: {images}\n(?:\s+newName: \S+\n)?\s+newTag: ){old}[ \t]*$", rf"\g<1>{version}", text
        )
        if new != text:
            changes[path] = new
    for path in sorted(deploy.rglob("*.tfvars")) if deploy.is_dir() else []:
        text = _read(path)
        new = re.sub(rf'("{images}:){old}"', rf'\g<1>{version}"', text)
        if new != text:
            changes[path] = new
    # Pages that show the images as the manifests name them (e.g. a deployment view generated from the
    # overlays): the same replacement keeps them equal to what their generator now renders.
    docs = root / "docs"
    for path in sorted(docs.rglob("*.md")) if docs.is_dir() else []:
        text = _read(path)
        new = re.sub(rf"(`{images}:){old}`", rf"\g<1>{version}`", text)
        if new != text:
            changes[path] = new
    return changes


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


# --- git ---------------------------------------------------------------------------------------


def git(root: Path, *args: str, check: bool = True) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise ReleaseError(
            f"`git {' '.join(args)}` failed: {(done.stderr or done.stdout).strip()}", "fix the repository, then retry"
        )
    return done.stdout


def check_repository(root: Path, tag: str) -> None:
    if subprocess.run(["git", "-C", str(root), "rev-parse", "--git-dir"], capture_output=True).returncode != 0:
        raise ReleaseError(f"{root} is not a git repository", "run `make release` in the project's git checkout")
    dirty = git(root, "status", "--porcelain", "--untracked-files=normal").splitlines()
    if dirty:
        shown = ", ".join(line[3:] for line in dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise ReleaseError(
            f"the working tree is not clean ({shown}): a release must be exactly what is committed",
            "commit or stash the changes (or add generated files to .gitignore), then retry",
        )
    if git(root, "rev-parse", "-q", "--verify", f"refs/tags/{tag}", check=False).strip():
        raise ReleaseError(f"the tag {tag} already exists", "release the next version (VERSION=... or PART=...)")


# --- the release -------------------------------------------------------------------------------


def plan(root: Path, version: str | None, part: str | None, date: str | None = None) -> Plan:
    if (version is None) == (part is None):
        raise ReleaseError(
            "say which version to release", "make release VERSION=X.Y.Z, or make release PART=patch|minor|major"
        )
    name, current = project_version(root)
    target = version.removeprefix("v") if version is not None else bump(current, str(part))
    if parse(target, "VERSION") <= parse(current, "the current version"):
        raise ReleaseError(
            f"version {target} is not greater than the current version {current} (pyproject.toml)",
            f"pick a later version, e.g. `make release PART=patch` gives {bump(current, 'patch')}",
        )
    check_repository(root, f"v{target}")
    changelog = root / "CHANGELOG.md"
    if not changelog.is_file():
        raise ReleaseError(f"no CHANGELOG.md in {root}", "keep one (keepachangelog.com) with an Unreleased section")
    day = date or datetime.now(UTC).date().isoformat()
    new_changelog, notes = cut_changelog(_read(changelog), target, day)
    out = Plan(root, current, target, day, notes)
    out.changes[changelog] = new_changelog
    out.changes.update(version_changes(root, name, current, target))
    return out


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        if path.exists():
            Path(tmp).chmod(path.stat().st_mode & 0o7777)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def describe(p: Plan) -> str:
    rel = [path.relative_to(p.root).as_posix() for path in p.changes]
    return "\n".join(
        [
            f"release {p.current} -> {p.version} ({p.date})",
            f"  update       {', '.join(rel)}",
            f"  notes        {p.notes_path.relative_to(p.root).as_posix()} ({len(p.notes.splitlines())} lines)",
            f"  commit       Release {p.version}",
            f"  tag          {p.tag} (annotated, message = the notes)",
        ]
    )


def apply(p: Plan) -> None:
    originals = {path: path.read_bytes() for path in p.changes}
    committed = False
    try:
        for path, text in p.changes.items():
            write_atomic(path, text)
        write_atomic(p.notes_path, p.notes)
        git(p.root, "add", "--", *(str(path) for path in p.changes))
        git(p.root, "commit", "-q", "-m", f"Release {p.version}", "--", *(str(path) for path in p.changes))
        committed = True
        git(p.root, "tag", "-a", p.tag, "--cleanup=verbatim", "-F", str(p.notes_path))
    except BaseException:
        if not committed:  # put the files back as they were: the tree is clean again
            for path, data in originals.items():
                path.write_bytes(data)
            git(p.root, "reset", "-q", "--", *(str(path) for path in p.changes), check=False)
        else:
            tag = f"git tag -a {p.tag} --cleanup=verbatim -F {p.notes_path}"
            print(f"the release commit is made but the tag is not: {tag}", file=sys.stderr)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", help="the version to release, X.Y.Z")
    parser.add_argument("--part", help="or bump this part of the current version: patch, minor or major")
    parser.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository (default: here)")
    parser.add_argument("--date", help="the release date, YYYY-MM-DD (default: today, UTC)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        if args.date is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", args.date):
            raise ReleaseError(f"--date {args.date!r} is not YYYY-MM-DD", "e.g. --date 2026-12-07")
        # Empty make variables arrive as "": treat them as not given.
        p = plan(root, args.version or None, args.part or None, args.date)
        print(describe(p))
        if args.dry_run:
            print("\n--- release notes ---\n" + p.notes + "--- dry run: nothing changed ---")
            return 0
        apply(p)
    except ReleaseError as exc:
        print(f"release refused: {exc}", file=sys.stderr)
        return 2
    print(f"released {p.version}: push it with `git push --follow-tags` (the release workflow publishes the notes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
