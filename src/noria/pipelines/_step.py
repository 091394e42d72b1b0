"""The ``@step`` decorator: a typed Python function that becomes a node of a pipeline.

A step's parameters are of two kinds, told apart by name when the pipeline is built: a
parameter named like an output of another step is an *input* (its artifact is loaded from
the store), any other parameter is a *pipeline parameter* (a JSON-able value from the
pipeline's ``params``, the run's overrides or the function's default). A step produces one
output named after the step, or several (``outputs=("train", "holdout")``, returned as a
tuple). The code hash that keys the cache is taken from the function's source, normalised
through its AST so that comments, blank lines and the decorator line do not count.
"""

from __future__ import annotations

import ast
import contextlib
import contextvars
import hashlib
import inspect
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType
from typing import Any, Generic, ParamSpec, TypeVar, overload

from noria.pipelines._errors import PipelineDefinitionError

P = ParamSpec("P")
R = TypeVar("R")

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
_SCRATCH: contextvars.ContextVar[Path | None] = contextvars.ContextVar("noria_step_scratch", default=None)
_RUN_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("noria_step_run_id", default=None)


@dataclass(frozen=True)
class StepParam:
    """One parameter of a step function: its name, annotation and default (if any)."""

    name: str
    annotation: Any
    has_default: bool
    default: Any = None


@dataclass(frozen=True, eq=False)
class Step(Generic[P, R]):
    """A pipeline node; calling it calls the plain function (handy in unit tests)."""

    func: Callable[P, R]
    name: str
    outputs: tuple[str, ...]
    version: str = ""
    cache: bool = True
    parameters: tuple[StepParam, ...] = field(default=(), repr=False)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    @property
    def code_hash(self) -> str:
        """sha256 of the normalised source of the function (decorators, comments ignored)."""
        return code_hash(self.func)

    def split_outputs(self, value: Any) -> dict[str, Any]:
        """Map the function's return value onto the declared output names."""
        if len(self.outputs) == 1:
            return {self.outputs[0]: value}
        if not self.outputs:
            if value is not None:
                raise PipelineDefinitionError(
                    f"step {self.name!r} declares no outputs but returned a {type(value).__name__}",
                    fix=f"return None from {self.name!r}, or declare @step(outputs=(...))",
                )
            return {}
        if not isinstance(value, tuple) or len(value) != len(self.outputs):
            got = f"a tuple of {len(value)}" if isinstance(value, tuple) else f"a {type(value).__name__}"
            raise PipelineDefinitionError(
                f"step {self.name!r} declares outputs {self.outputs} but returned {got}",
                fix=f"return a tuple of {len(self.outputs)} values, in the order of outputs=",
            )
        return dict(zip(self.outputs, value, strict=True))


@overload
def step(func: Callable[P, R], /) -> Step[P, R]: ...


@overload
def step(
    *,
    name: str | None = None,
    outputs: tuple[str, ...] | list[str] | None = None,
    version: str = "",
    cache: bool = True,
) -> Callable[[Callable[P, R]], Step[P, R]]: ...


def step(
    func: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    outputs: tuple[str, ...] | list[str] | None = None,
    version: str = "",
    cache: bool = True,
) -> Step[P, R] | Callable[[Callable[P, R]], Step[P, R]]:
    """Turn a typed function into a pipeline step.

    ``name`` defaults to the function's name and ``outputs`` to ``(name,)``. Bump
    ``version`` to invalidate the cache when code the step calls (not its own body) changed.
    ``cache=False`` runs the step on every run (for side effects such as publishing a model).

    Example::

        @step
        def features(raw: pd.DataFrame, window: int = 7) -> pd.DataFrame: ...
    """

    def wrap(fn: Callable[P, R]) -> Step[P, R]:
        step_name = name or fn.__name__
        outs = (step_name,) if outputs is None else tuple(outputs)
        for label in (step_name, *outs):
            if not NAME.fullmatch(label):
                raise PipelineDefinitionError(
                    f"step name or output {label!r} of {fn.__qualname__} is not a Python identifier",
                    fix="use letters, digits and '_' (inputs are matched to outputs by parameter name)",
                )
        if len(set(outs)) != len(outs):
            raise PipelineDefinitionError(
                f"step {step_name!r} declares the output names {outs} more than once",
                fix="give each output a distinct name",
            )
        return Step(fn, step_name, outs, version, cache, _parameters(fn, step_name))

    return wrap(func) if func is not None else wrap


def _parameters(fn: Callable[..., Any], step_name: str) -> tuple[StepParam, ...]:
    try:
        hints = inspect.get_annotations(fn, eval_str=True)
    except Exception:  # unresolvable forward references: fall back to no type checking
        hints = {}
    params = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            raise PipelineDefinitionError(
                f"step {step_name!r}: parameter {p.name!r} is {p.kind.description}",
                fix="steps take plain named parameters (no *args, **kwargs or positional-only '/')",
            )
        has_default = p.default is not inspect.Parameter.empty
        params.append(StepParam(p.name, hints.get(p.name, Any), has_default, p.default if has_default else None))
    return tuple(params)


def code_hash(func: Callable[..., Any]) -> str:
    """sha256 of a function's source with decorators, comments and layout normalised away."""
    cached: str | None = getattr(func, "__noria_code_hash__", None)
    if cached is not None:
        return cached
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
        node = tree.body[0]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            node.decorator_list = []
        text = ast.dump(node, include_attributes=False)
    except (OSError, TypeError, SyntaxError, IndexError):
        # No source (a REPL, `python -c`): hash the bytecode and its constants instead.
        text = _code_text(func.__code__)
    digest = hashlib.sha256(text.encode()).hexdigest()
    with contextlib.suppress(AttributeError, TypeError):
        func.__noria_code_hash__ = digest  # type: ignore[attr-defined]
    return digest


def _code_text(code: CodeType) -> str:
    consts = [(_code_text(c) if isinstance(c, CodeType) else repr(c)) for c in code.co_consts]
    return f"{code.co_code.hex()}|{code.co_names}|{consts}"


def scratch_dir() -> Path:
    """A fresh empty folder for the running step to write files into (removed after the step).

    Return a path inside it (e.g. a LightGBM model file) and it is copied into the
    artifact store. Example: ``path = scratch_dir() / "model.txt"; booster.save_model(path)``.
    """
    folder = _SCRATCH.get()
    if folder is None:
        raise PipelineDefinitionError(
            "scratch_dir() was called outside a running step",
            fix="call it inside a @step function run by a pipeline (or use tempfile in plain code)",
        )
    return folder


def current_run_id() -> str | None:
    """The id of the pipeline run executing the current step (None outside a step).

    Lineage records use it to point back at the run that produced an artifact.
    """
    return _RUN_ID.get()


def _set_scratch(
    folder: Path | None, run_id: str | None = None
) -> tuple[contextvars.Token[Path | None], contextvars.Token[str | None]]:
    return _SCRATCH.set(folder), _RUN_ID.set(run_id)


def _reset_scratch(tokens: tuple[contextvars.Token[Path | None], contextvars.Token[str | None]]) -> None:
    _SCRATCH.reset(tokens[0])
    _RUN_ID.reset(tokens[1])
