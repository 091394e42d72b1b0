"""The JSON Schema of ``noria.yaml``, generated from the config models, for editors and checks.

``noria config schema`` prints it; the repository keeps a copy in ``schemas/noria.schema.json``
(``make lint`` fails when it differs from the models) and ``noria init`` writes one into every
new project next to its ``noria.yaml``, whose first line points editors at it::

    # yaml-language-server: $schema=noria.schema.json

A key's ``description`` is the field's own, else the comment written above (or beside) the
field where the model defines it (a section without one: its model's docstring). The models
are documented once, in their source, and ``scripts/config_docs.py`` reads the same comments
for docs/configuration.md. pydantic keeps no comments, hence the small parser below
(``inspect.getsource`` + the lines before each field).

The schema is what an editor can check as one types: types, allowed values, required and
unknown keys. The loader stays the authority: rules across sections (period labels in the
window unit, settings that fit the task) and a project's ``profiles`` are checked only there.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

SCHEMA_FILE = "noria.schema.json"
# Where the repository keeps its copy (relative to the repository's root).
REPO_SCHEMA = Path("schemas") / SCHEMA_FILE
# A name, not an address: the schema is read from a file, never fetched.
SCHEMA_ID = "urn:noria:schema:noria.yaml"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
# The first line of a noria.yaml that tells yaml-language-server (VS Code's YAML extension,
# and other editors using it) where its schema is; relative paths are from the YAML file.
MODELINE = "# yaml-language-server: $schema="
REGENERATE = f"noria config schema --output {REPO_SCHEMA}"
_FIELD = re.compile(r"^\s+(?P<name>[a-z_][a-z0-9_]*)\s*:\s*[^=]+?(=|$)")


def field_comments(model: type) -> dict[str, str]:
    """field -> the comment block above it (or its inline comment), from the model's source."""
    out: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not hasattr(cls, "model_fields") or cls.__module__.startswith("pydantic"):
            continue
        try:
            lines = inspect.getsource(cls).splitlines()
        except (OSError, TypeError):
            continue
        block: list[str] = []
        previous = ""  # the comment of the field above, for a field right under it that it names
        for line in lines:
            stripped = line.strip()
            if stripped.startswith("#"):
                block.append(stripped.lstrip("#").strip())
                continue
            match = _FIELD.match(line)
            if match and not stripped.startswith(("def ", "@", "return", "class ")):
                name = match["name"]
                inline = line.split("  # ", 1)[1].strip() if "  # " in line else ""
                # a comment over several fields names each of them ("# min and max: ...")
                carried = previous if re.search(rf"\b{name}\b", previous) else ""
                text = " ".join(block) or inline or carried
                if text and not text.startswith(("fmt:", "type:", "noqa")):
                    out[name] = text
                previous = " ".join(block) or previous
            else:
                previous = ""
            block = []
    return out


class _Generator(GenerateJsonSchema):
    """pydantic's generator, with each property described by its field's comment."""

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        json_schema = super().model_schema(schema)
        cls = schema["cls"]
        properties = json_schema.get("properties")
        if not isinstance(properties, dict):
            return json_schema
        comments = field_comments(cls)
        for name, field in cls.model_fields.items():
            key = field.alias or name
            text = field.description or comments.get(name) or _section_doc(field.annotation)
            if key in properties and text and "description" not in properties[key]:
                properties[key]["description"] = text
        return json_schema


def _section_doc(annotation: Any) -> str:
    """For a section without a comment: the first paragraph of its model's own docstring."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        own = annotation.__dict__.get("__doc__") or ""
        return inspect.cleandoc(own).split("\n\n")[0].replace("\n", " ") if own else ""
    return next((doc for arg in get_args(annotation) if (doc := _section_doc(arg))), "")


def config_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``noria.yaml``, from :class:`noria.config.NoriaConfig`."""
    from noria.config import NoriaConfig

    schema = NoriaConfig.model_json_schema(schema_generator=_Generator, mode="validation")
    schema["$schema"] = DIALECT
    schema["$id"] = SCHEMA_ID
    schema["title"] = "noria.yaml"
    schema["description"] = (
        "A Noria project's configuration (docs/configuration.md). Generated from noria.config.NoriaConfig "
        "by `noria config schema`; the loader also checks rules across sections."
    )
    return schema


def render() -> str:
    """The schema as text: sorted keys, two-space indent, a final newline (stable across runs)."""
    return json.dumps(config_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schema(path: Path, text: str | None = None) -> Path:
    """Write the schema to ``path`` atomically (:mod:`noria.atomic`: a temporary file beside it, renamed over it)."""
    from noria import atomic

    return atomic.write_text(Path(path), render() if text is None else text)


def set_modeline(text: str, schema: str) -> str:
    """``noria.yaml`` text with its first line pointing editors at ``schema`` (replaced or added)."""
    line = f"{MODELINE}{schema}"
    first, sep, rest = text.partition("\n")
    if first.startswith(MODELINE):
        return line + sep + rest
    return f"{line}\n{text}"


__all__ = [
    "MODELINE",
    "REGENERATE",
    "REPO_SCHEMA",
    "SCHEMA_FILE",
    "SCHEMA_ID",
    "config_schema",
    "field_comments",
    "render",
    "set_modeline",
    "write_schema",
]
