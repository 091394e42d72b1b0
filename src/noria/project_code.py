"""Import the functions a project names in its config (``module:function``) from its folder.

Feature sources, label functions, windows, baselines, data checks and request mappings are
small Python functions in the project folder, referred to as ``module:function``. A module is
imported under a name unique to its path and re-imported when the file changes (keyed by path,
modification time and size), so two projects' ``features.py`` never collide and an edited file
is picked up by a long-running process. Errors name the config entry that referred to it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from noria.errors import ConfigError

_MODULES: dict[tuple[str, int, int], ModuleType] = {}


def resolve_function(root: Path, ref: str, owner: str, *, error: type[ConfigError] = ConfigError) -> Callable[..., Any]:
    """Import ``module:function`` from the project folder ``root``.

    ``owner`` names the config entry for errors (e.g. ``"windows.function"``); ``error`` is the
    :class:`ConfigError` subclass raised when the module or function is missing or fails to import.
    """
    module_name, _, attr = ref.partition(":")
    module = _import_module(root, module_name, owner, ref, error)
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        public = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise error(
            f"{owner}: function {ref!r} not found: {module_name} has no function {attr!r}"
            f" (it has: {', '.join(public) or 'none'})",
            fix=f"define {attr}() in {module_name}.py or fix the reference in the config",
        )
    return fn  # type: ignore[no-any-return]


def module_file(root: Path, module_name: str) -> Path | None:
    """The file of a project module (``a.b`` -> a/b.py or a/b/__init__.py), None if absent."""
    base = root.joinpath(*module_name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _import_module(root: Path, module_name: str, owner: str, ref: str, error: type[ConfigError]) -> ModuleType:
    path = module_file(root, module_name)
    if path is None:
        raise error(
            f"{owner}: function {ref!r} not found: no module {module_name}.py in {root}",
            fix=f"create {module_name}.py next to noria.yaml or fix the reference",
        )
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key in _MODULES:
        return _MODULES[key]
    unique = "noria_project_" + hashlib.sha256(key[0].encode()).hexdigest()[:12] + "_" + module_name.replace(".", "_")
    spec = importlib.util.spec_from_file_location(unique, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered under its unique name, as importlib's own recipe does: what looks a class's module
    # up by name needs it (pydantic resolving a subclass's postponed annotations such as
    # ``from __future__ import annotations``, pickle, dataclasses).
    sys.modules[unique] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(unique, None)
        raise error(
            f"{owner}: importing {path.name} for {ref!r} failed: {type(exc).__name__}: {exc}",
            fix=f"fix the error in {path}",
        ) from exc
    _MODULES[key] = module
    return module
