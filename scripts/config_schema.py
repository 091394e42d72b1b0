"""Write schemas/noria.schema.json, the JSON Schema of noria.yaml, from the config models
(``--check``: fail if the committed copy differs from what the models give).

The same text as ``noria config schema`` (noria.config_schema.render); editors read the copy
through the first line of the examples' noria.yaml and .vscode/settings.json's yaml.schemas.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if schemas/noria.schema.json is out of date")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from noria.config_schema import REGENERATE, REPO_SCHEMA, render, write_schema

    target = ROOT / REPO_SCHEMA
    wanted = render()
    if args.check:
        current = target.read_text(encoding="utf-8") if target.is_file() else None
        if current != wanted:
            state = "is missing" if current is None else "differs from the config models"
            print(f"{REPO_SCHEMA} {state}: run `{REGENERATE}` (or `make docs`) and commit it", file=sys.stderr)
            return 1
        return 0
    write_schema(target, wanted)
    print(f"wrote {REPO_SCHEMA}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
