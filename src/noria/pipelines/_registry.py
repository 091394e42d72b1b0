"""Finding a pipeline by name: registered in code, named in config, shipped, or ``module:attribute``.

A name is looked up, first match wins, in: :func:`register_pipeline` calls made in this
process; the project's ``pipelines.registry`` mapping (name -> ``module:attribute``);
Noria's own pipelines (:data:`BUILTIN`); the ``noria.pipelines`` entry-point group of
installed packages. A reference containing ``:`` is imported directly
(``mypkg.flows:training``). The attribute may be a :class:`Pipeline` or a function
without arguments returning one.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from noria.pipelines._errors import PipelineNotFoundError
from noria.pipelines._graph import Pipeline

PipelineFactory = Callable[[], Pipeline]

ENTRY_POINT_GROUP = "noria.pipelines"
# Pipelines Noria itself ships, imported only when asked for by name.
BUILTIN: dict[str, str] = {"training": "noria.training.pipeline:training_pipeline"}
_REGISTERED: dict[str, Pipeline | PipelineFactory] = {}


def register_pipeline(name: str, factory: Pipeline | PipelineFactory) -> None:
    """Make ``noria pipeline run NAME`` find a pipeline (or a function building it lazily)."""
    _REGISTERED[name] = factory


def pipeline_sources(config_registry: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every known pipeline name and where it comes from (first match wins, as in lookup)."""
    found: dict[str, str] = {}
    for name in _REGISTERED:
        found.setdefault(name, "registered in code")
    for name, ref in (config_registry or {}).items():
        found.setdefault(name, f"{ref} (noria.yaml)")
    for name, ref in BUILTIN.items():
        found.setdefault(name, f"{ref} (built in)")
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, f"{ep.value} (entry point of {ep.dist.name if ep.dist else '?'})")
    return dict(sorted(found.items()))


def load_pipeline(
    ref: str, *, config_registry: Mapping[str, str] | None = None, search_path: Path | None = None
) -> Pipeline:
    """The pipeline named ``ref`` (see the module docstring for the lookup order).

    ``search_path`` (the project folder) is put on ``sys.path`` so project modules import.
    """
    if search_path is not None and str(search_path) not in sys.path:
        sys.path.insert(0, str(search_path))
    if ref in _REGISTERED:
        return _build(_REGISTERED[ref], ref)
    target = (config_registry or {}).get(ref) or BUILTIN.get(ref)
    if target is None:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=ref):
            return _build(ep.load(), ref)
    if target is None and ":" in ref:
        target = ref
    if target is None:
        known = ", ".join(pipeline_sources(config_registry)) or "none"
        raise PipelineNotFoundError(
            f"no pipeline named {ref!r} (known: {known})",
            fix="register it under pipelines.registry in noria.yaml, or pass a reference like mypkg.flows:training",
        )
    return _build(_import(target), ref)


def _import(target: str) -> object:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise PipelineNotFoundError(
            f"pipeline reference {target!r} is not of the form module:attribute",
            fix="write it like mypkg.flows:training",
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise  # the module exists but one of its own imports is missing: show that
        raise PipelineNotFoundError(
            f"cannot import module {module_name!r} for pipeline {target!r}",
            fix="check the spelling and that the module is importable from the project folder",
        ) from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise PipelineNotFoundError(
            f"module {module_name!r} has no attribute {attr!r}", fix=f"define {attr} in {module_name}"
        ) from None


def _build(obj: object, ref: str) -> Pipeline:
    if isinstance(obj, Pipeline):
        return obj
    if callable(obj):
        try:
            inspect.signature(obj).bind()
        except (TypeError, ValueError):
            pass  # it needs arguments (or has no signature): not a factory
        else:
            built = obj()
            if isinstance(built, Pipeline):
                return built
            obj = built
    raise PipelineNotFoundError(
        f"{ref!r} refers to a {type(obj).__name__}, not a Pipeline",
        fix="point it at a Pipeline object or a function without arguments returning one",
    )
