"""One way for a package to export names lazily: the module that defines a name loads on first use.

Each package's ``__init__`` lists its public names and where each lives (``_EXPORTS``), imports
them for type checkers only, and ends with::

    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)

so ``import noria.serving`` stays cheap and ``noria.serving.create_app`` imports FastAPI only
when asked for. A module path in ``_EXPORTS`` is either absolute (``noria.features.online``) or
relative to the package (``online``). A name, once loaded, is kept in the package's namespace.
Standard library only (every package imports it).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from importlib import import_module
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str], names: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The package's module-level ``__getattr__`` and ``__dir__`` for ``exports`` (name -> module)."""
    namespace = sys.modules[package].__dict__

    def attribute(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        path = module if module == "noria" or module.startswith("noria.") else f"{package}.{module}"
        value = getattr(import_module(path), name)
        namespace[name] = value
        return value

    def listing() -> list[str]:
        return list(names)

    return attribute, listing


__all__ = ["lazy_exports"]
