"""The OpenAPI document of a project's service (its schema: :mod:`noria.serving.openapi_schema`),
exported to ``docs/api/openapi.json``.

    python -m noria.serving.openapi            # rewrite docs/api/openapi.json
    python -m noria.serving.openapi --check    # exit 1 if it is out of date (CI, tests)
    python -m noria.serving.openapi --project . --path docs/api/openapi.json   # a project's own
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from noria import atomic

DOC = Path("docs") / "api" / "openapi.json"
REFERENCE = Path(__file__).resolve().parents[3] / "examples" / "flights"


def document(root: Path = REFERENCE) -> dict[str, Any]:
    """The OpenAPI document of a project's service (default: the flights reference project).

    Built without a registry or an online store: the document depends only on the configuration.
    """
    from noria.config import load_project
    from noria.serving.app import _NoSource, create_app
    from noria.serving.config import ServingConfig, serving_config

    project = load_project(root, environ={})
    config = ServingConfig.model_validate(serving_config(project).model_dump() | {"prediction_log": {"enabled": False}})
    app = create_app(project, config=config, model_source=_NoSource(), feature_status="off", environ={})
    return app.openapi()


def render(root: Path = REFERENCE) -> str:
    return json.dumps(document(root), indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"


def export(path: Path = DOC, root: Path = REFERENCE) -> Path:
    return atomic.write_text(path, render(root))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if the file is not up to date")
    parser.add_argument("--path", type=Path, default=DOC)
    parser.add_argument(
        "--project", type=Path, default=REFERENCE, help="the project folder (default: Noria's reference)"
    )
    args = parser.parse_args(argv)
    if args.check:
        current = args.path.read_text(encoding="utf-8") if args.path.is_file() else ""
        if current != render(args.project):
            print(f"{args.path} is out of date: run python -m noria.serving.openapi", file=sys.stderr)
            return 1
        print(f"{args.path} is up to date")
        return 0
    print(f"wrote {export(args.path, args.project)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
