"""Generate the feature tables of a page from a project's features.yaml (``--check``: fail if stale).

The tables are what Noria's own loading makes of the definitions
(:func:`noria.features.docs.features_markdown`, also ``noria features list --markdown``), written
between the markers of the ``features-table`` block. By default: the reference project
(examples/flights) into docs/features.md; ``--project DIR --doc FILE`` does the same for any
project and page.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = "features-table"


def render(project_dir: Path, current: str, command: str) -> str:
    from noria.config import load_project
    from noria.features.definitions import load_definitions
    from noria.features.docs import features_markdown, replace_generated

    defs = load_definitions(load_project(project_dir, environ={}))
    return replace_generated(current, BLOCK, features_markdown(defs), command)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--project", type=Path, default=ROOT / "examples" / "flights", help="the project folder")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "features.md", help="the page to update")
    parser.add_argument("--check", action="store_true", help="exit 1 if the page's tables are out of date")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    doc: Path = args.doc.resolve()
    shown = doc.relative_to(ROOT) if doc.is_relative_to(ROOT) else doc
    current = doc.read_text(encoding="utf-8")
    try:
        wanted = render(args.project.resolve(), current, "`make docs` (scripts/features_docs.py)")
    except ValueError as exc:
        print(f"{shown}: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if current != wanted:
            print(f"{shown}: the features table is out of date: run `make docs` and commit it", file=sys.stderr)
            return 1
        return 0
    tmp = doc.with_name(doc.name + ".tmp")
    tmp.write_text(wanted, encoding="utf-8")
    tmp.replace(doc)
    print(f"wrote {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
