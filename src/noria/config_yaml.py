"""Reading ``noria.yaml`` so that every error can name its place: YAML parsed with the
``file:line`` of every key path, profile and ``NORIA_*`` environment overrides merged with
their own places, and pydantic's report turned into one line per problem naming the key and
where it came from. :mod:`noria.config` validates the result; this module knows no section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError as PydanticValidationError

from noria.errors import ConfigError

# A key path: section, key, ... (list items by index).
Loc = tuple[str | int, ...]


def read_yaml(file: Path) -> tuple[dict[str, Any], dict[Loc, str]]:
    """A YAML file's mapping and the ``file:line`` of every key path in it."""
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {file}: {exc.strerror}", fix="check the file exists and is readable") from None
    return load_yaml_text(text, file.name)


def load_yaml_text(text: str, name: str) -> tuple[dict[str, Any], dict[Loc, str]]:
    """Parse YAML keeping, for every key path, the ``file:line`` it was written on."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}", fix="fix the syntax at that line") from None
    if node is None:
        raise ConfigError(f"{name} is empty", fix="start from `noria init DIR` (a template project's noria.yaml)")
    sources: dict[Loc, str] = {}
    data = _construct(node, (), name, sources)
    if not isinstance(data, dict):
        raise ConfigError(
            f"{name}:1: the top level must be a mapping of sections",
            fix="see `noria config schema` or docs/configuration.md for the sections",
        )
    return data, sources


def _construct(node: yaml.Node, loc: Loc, name: str, sources: dict[Loc, str]) -> Any:
    sources[loc] = f"{name}:{node.start_mark.line + 1}"
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.SafeLoader(stream="").construct_object(key_node, deep=True)
            if key in out:
                raise ConfigError(
                    f"{name}:{key_node.start_mark.line + 1}: key {dotted((*loc, key))!r} is given twice",
                    fix="keep one of the two entries",
                )
            out[key] = _construct(value_node, (*loc, key), name, sources)
            sources[(*loc, key)] = f"{name}:{key_node.start_mark.line + 1}"
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*loc, i), name, sources) for i, item in enumerate(node.value)]
    return yaml.SafeLoader(stream="").construct_object(node, deep=True)


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged into ``base``, mapping by mapping (a new dict; neither is changed)."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def apply_profile(
    data: dict[str, Any], sources: dict[Loc, str], profile: str, file: Path, default: str
) -> tuple[dict[str, Any], dict[Loc, str]]:
    """Merge profile ``profile``'s overrides over ``data`` (an undefined ``default`` profile is no error)."""
    profiles = data.get("profiles") or {}
    if not isinstance(profiles, dict):
        raise ConfigError(f"{sources.get(('profiles',), file.name)}: 'profiles' must be a mapping of name -> overrides")
    if profile not in profiles:
        if profile == default:
            return data, sources
        known = ", ".join(sorted(profiles)) or "none"
        raise ConfigError(
            f"profile {profile!r} is not defined in {file.name} (defined: {known})",
            fix=f"add it under 'profiles:' in {file.name} or choose another with --profile",
        )
    overrides = profiles[profile] or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"{sources.get(('profiles', profile), file.name)}: profile {profile!r} must be a mapping")
    if "profiles" in overrides:
        raise ConfigError(
            f"{sources.get(('profiles', profile, 'profiles'), file.name)}: a profile cannot define profiles"
        )
    merged_sources = dict(sources)
    prefix = ("profiles", profile)
    for loc, where in sources.items():
        if loc[:2] == prefix and len(loc) > 2:
            merged_sources[loc[2:]] = where
    return deep_merge(data, overrides), merged_sources


def apply_env(
    data: dict[str, Any],
    sources: dict[Loc, str],
    environ: dict[str, str],
    sections: set[str],
    reserved: frozenset[str],
) -> tuple[dict[str, Any], dict[Loc, str]]:
    """Merge ``NORIA_<SECTION>__<KEY>`` variables (not the ``reserved`` ones) over ``data``."""
    for var in sorted(environ):
        if not var.startswith("NORIA_") or var in reserved:
            continue
        path = tuple(part.lower() for part in var[len("NORIA_") :].split("__"))
        if not path[0] or path[0] not in sections or any(not p for p in path):
            raise ConfigError(
                f"environment variable {var} does not name a config key",
                fix=f"use NORIA_<SECTION>__<KEY> with a section among {', '.join(sorted(sections))}, or unset it",
            )
        try:
            value = yaml.safe_load(environ[var]) if environ[var] != "" else ""
        except yaml.YAMLError:
            value = environ[var]
        data = deep_merge(data, _nest(path, value))
        sources[path] = f"environment variable {var}"
    return data, sources


def _nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(path):
        out = {part: out}
    return dict(out)


def dotted(loc: Loc) -> str:
    """A key path written with dots (``training.train.from``)."""
    return ".".join(str(p) for p in loc)


def config_error(exc: PydanticValidationError, sources: dict[Loc, str], file: Path) -> ConfigError:
    """Turn pydantic's report into one line per problem, each naming the key and its line."""
    lines = []
    for err in exc.errors():
        loc: Loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        where = next((sources[loc[:i]] for i in range(len(loc), -1, -1) if loc[:i] in sources), file.name)
        key = dotted(loc) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; `noria config schema` lists every key)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif "input" in err and err["type"] not in ("value_error", "assertion_error"):
            msg = f"{msg}, got {err['input']!r}"
        lines.append(f"{where}: {key}: {msg}")
    head = lines[0] if len(lines) == 1 else f"{len(lines)} problems in {file.name}: " + "; ".join(lines)
    return ConfigError(head, fix=f"edit {file.name} (or the variable) at the place named")


__all__ = ["Loc", "apply_env", "apply_profile", "config_error", "deep_merge", "dotted", "load_yaml_text", "read_yaml"]
