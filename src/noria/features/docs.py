"""A project's feature definitions as Markdown tables, for its ``docs/features.md``.

:func:`features_markdown` renders what ``features.yaml`` declares (after Noria's own loading
and checks, :func:`noria.features.definitions.load_definitions`): the entities, the views (kind,
source, entities, TTL) and every feature (view, kind, type, description). ``noria features list
--markdown`` prints it; a page keeps it between two markers (:func:`replace_generated`) so a
check can tell when the page no longer says what the definitions do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from noria.features.definitions import Definitions

# How a feature is computed, in a reader's words (FeatureInfo.kind -> text).
KIND_TEXT = {
    "passthrough": "request column",
    "request": "request view",
    "batch": "feature view",
    "derived": "derived",
}
BEGIN = "<!-- BEGIN GENERATED {name}: do not edit by hand, regenerate with {command} -->"
END = "<!-- END GENERATED {name} -->"


def _cell(text: object) -> str:
    """One table cell: a pipe escaped, line breaks folded (a description may span lines)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def features_markdown(defs: Definitions) -> str:
    """The entities, views and features of checked definitions as three Markdown tables."""
    config = defs.config
    out = ["Entities (what feature views are keyed by):", ""]
    out += _table(
        ["entity", "join key", "type", "description"],
        [[f"`{n}`", f"`{e.key(n)}`", e.type, e.description] for n, e in config.entities.items()]
        or [["(none)", "", "", ""]],
    )
    views: list[list[str]] = []
    for name, rv in config.request_views.items():
        views.append(
            [f"`{name}`", "request view", f"`{rv.function}`" if rv.function else "passthrough", "", "", rv.description]
        )
    for name, fv in config.feature_views.items():
        ttl = str(fv.ttl) if fv.ttl else "forever"
        views.append([f"`{name}`", "feature view", f"`{fv.source}`", ", ".join(fv.entities), ttl, fv.description])
    for name, d in config.derived.items():
        views.append([f"`{name}`", "derived", f"from {', '.join(d.inputs)}", "", "", d.description])
    out += ["", "Views (a derived feature is its own view; TTL: how long a looked-up value stays usable):", ""]
    out += _table(["view", "kind", "computed by", "entities", "ttl", "description"], views)
    rows = [
        [f"`{f.name}`", f"`{f.view}`", KIND_TEXT.get(f.kind, f.kind), f.type, f.description]
        for f in defs.features.values()
    ]
    out += ["", "Features (the columns a model gets):", ""]
    out += _table(["feature", "view", "kind", "type", "description"], rows)
    return "\n".join(out) + "\n"


def replace_generated(text: str, name: str, body: str, command: str) -> str:
    """``text`` with what lies between the markers of ``name`` replaced by ``body``.

    The markers are HTML comments (invisible in rendered Markdown); the begin marker names the
    command that regenerates the block. A page without both markers is an error naming them.
    """
    begin_prefix = f"<!-- BEGIN GENERATED {name}:"
    end = END.format(name=name)
    start = text.find(begin_prefix)
    stop = text.find(end)
    if start < 0 or stop < start:
        raise ValueError(
            f"the page has no generated block {name!r}: add the lines {BEGIN.format(name=name, command=command)!r}"
            f" and {end!r} where the block goes"
        )
    begin = BEGIN.format(name=name, command=command)
    return text[:start] + begin + "\n" + body.rstrip("\n") + "\n" + text[stop:]


__all__ = ["BEGIN", "END", "KIND_TEXT", "features_markdown", "replace_generated"]
