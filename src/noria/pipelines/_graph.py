"""``Pipeline``: named steps wired into a DAG by matching parameter names to output names."""

from __future__ import annotations

import difflib
import heapq
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from graphlib import CycleError, TopologicalSorter
from typing import Any

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import to_jsonable_python

from noria.pipelines._errors import PipelineDefinitionError
from noria.pipelines._step import Step

PIPELINE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


@dataclass(frozen=True)
class Node:
    """A step placed in a pipeline: which outputs feed it and which parameters it reads."""

    step: Step[..., Any]
    inputs: dict[str, str]  # parameter name (= output name) -> producing step name
    params: tuple[str, ...]  # names of the pipeline parameters the step reads

    @property
    def upstream(self) -> set[str]:
        return set(self.inputs.values())


class Pipeline:
    """A named DAG of steps with default parameter values.

    Example::

        training = Pipeline("training", steps=[load, features, fit], params={"rounds": 100})
    """

    def __init__(
        self,
        name: str,
        steps: Iterable[Step[..., Any]],
        params: Mapping[str, Any] | None = None,
        description: str = "",
    ) -> None:
        if not PIPELINE_NAME.fullmatch(name):
            raise PipelineDefinitionError(
                f"pipeline name {name!r} is not valid",
                fix="use lower-case letters, digits, '-' and '_' (at most 63 characters)",
            )
        self.name = name
        self.description = description
        self.steps: dict[str, Step[..., Any]] = {}
        for s in steps:
            if not isinstance(s, Step):
                raise PipelineDefinitionError(
                    f"pipeline {name!r}: {s!r} is not a step",
                    fix="decorate the function with @step before passing it to Pipeline(steps=[...])",
                )
            if s.name in self.steps:
                raise PipelineDefinitionError(
                    f"pipeline {name!r} has two steps named {s.name!r}",
                    fix="rename one of them with @step(name=...)",
                )
            self.steps[s.name] = s
        if not self.steps:
            raise PipelineDefinitionError(f"pipeline {name!r} has no steps", fix="pass steps=[...]")
        self.params: dict[str, Any] = dict(params or {})
        self.producers = self._producers()
        self.nodes = {s.name: self._node(s) for s in self.steps.values()}
        self.order = self._toposort()

    def _producers(self) -> dict[str, str]:
        producers: dict[str, str] = {}
        for s in self.steps.values():
            for out in s.outputs:
                if out in producers:
                    raise PipelineDefinitionError(
                        f"pipeline {self.name!r}: output {out!r} is produced by both {producers[out]!r} and {s.name!r}",
                        fix="give one of them another name with @step(outputs=(...))",
                    )
                if out in self.params:
                    raise PipelineDefinitionError(
                        f"pipeline {self.name!r}: {out!r} is both a parameter and the output of step {s.name!r}",
                        fix="rename the parameter or the output; a step parameter must mean one thing",
                    )
                producers[out] = s.name
        return producers

    def _node(self, s: Step[..., Any]) -> Node:
        inputs: dict[str, str] = {}
        params: list[str] = []
        for p in s.parameters:
            if p.name in self.producers:
                inputs[p.name] = self.producers[p.name]
            elif p.name in self.params or p.has_default:
                params.append(p.name)
            else:
                known = sorted(self.producers) + sorted(self.params)
                near = difflib.get_close_matches(p.name, known, n=1)
                hint = f"did you mean {near[0]!r}? " if near else ""
                raise PipelineDefinitionError(
                    f"pipeline {self.name!r}: step {s.name!r} needs {p.name!r}, which is neither the output "
                    f"of a step (outputs: {', '.join(sorted(self.producers)) or 'none'}) nor a pipeline "
                    f"parameter (params: {', '.join(sorted(self.params)) or 'none'})",
                    fix=f"{hint}add the step producing it, add it to Pipeline(params={{...}}), or give it a default",
                )
        if s.name in inputs.values():
            raise PipelineDefinitionError(
                f"pipeline {self.name!r}: step {s.name!r} takes its own output as an input",
                fix="a step cannot depend on itself; split it into two steps",
            )
        return Node(s, inputs, tuple(params))

    def _toposort(self) -> list[str]:
        sorter = TopologicalSorter({name: node.upstream for name, node in self.nodes.items()})
        try:
            sorter.prepare()
        except CycleError as exc:
            cycle = " -> ".join(exc.args[1])
            raise PipelineDefinitionError(
                f"pipeline {self.name!r} has a cycle: {cycle}",
                fix="a step cannot (indirectly) need its own output; break the loop",
            ) from None
        # Among the steps whose inputs are ready, always take the one listed first.
        position = {name: i for i, name in enumerate(self.steps)}
        ready: list[tuple[int, str]] = []
        order: list[str] = []
        while sorter.is_active():
            for name in sorter.get_ready():
                heapq.heappush(ready, (position[name], name))
            _, name = heapq.heappop(ready)
            order.append(name)
            sorter.done(name)
        return order

    @cached_property
    def edges(self) -> list[tuple[str, str, str]]:
        """``(upstream step, downstream step, output name)`` for every data dependency."""
        return [(up, name, out) for name in self.order for out, up in self.nodes[name].inputs.items()]

    def downstream(self, names: Iterable[str]) -> set[str]:
        """The given steps and every step that (transitively) consumes their outputs."""
        found = set(names)
        for name in self.order:
            if self.nodes[name].upstream & found:
                found.add(name)
        return found

    def resolve_params(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults merged with ``overrides``; unknown names raise, values must be JSON-able."""
        used = {p for node in self.nodes.values() for p in node.params} | set(self.params)
        unknown = sorted(set(overrides or {}) - used)
        if unknown:
            raise PipelineDefinitionError(
                f"pipeline {self.name!r} has no parameter {', '.join(map(repr, unknown))}",
                fix=f"use one of: {', '.join(sorted(used)) or '(none)'}",
            )
        merged = {**self.params, **(overrides or {})}
        for key, value in merged.items():
            try:
                json.dumps(to_jsonable_python(value))
            except (TypeError, ValueError) as exc:
                raise PipelineDefinitionError(
                    f"pipeline {self.name!r}: parameter {key!r} = {value!r} is not JSON-able ({exc})",
                    fix="parameters are plain values (numbers, strings, booleans, lists, dicts)",
                ) from None
        return merged

    def step_params(self, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """The values step ``name`` receives, validated against its annotations (lax: '5' -> 5)."""
        node = self.nodes[name]
        values: dict[str, Any] = {}
        for p in node.step.parameters:
            if p.name not in node.params:
                continue
            value = params.get(p.name, p.default)
            try:
                values[p.name] = _adapter(p.annotation).validate_python(value)
            except PydanticValidationError as exc:
                problem = exc.errors()[0]["msg"] if exc.errors() else str(exc)
                raise PipelineDefinitionError(
                    f"pipeline {self.name!r}: parameter {p.name!r} of step {name!r} got {value!r}: {problem}",
                    fix=f"pass a value of type {getattr(p.annotation, '__name__', p.annotation)}",
                ) from None
        return values

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary: steps in run order with inputs, parameters, outputs; and edges."""
        return {
            "name": self.name,
            "description": self.description,
            "params": to_jsonable_python(self.params),
            "steps": [
                {
                    "name": name,
                    "inputs": dict(self.nodes[name].inputs),
                    "params": list(self.nodes[name].params),
                    "outputs": list(self.steps[name].outputs),
                    "cache": self.steps[name].cache,
                }
                for name in self.order
            ],
            "edges": [{"from": up, "to": down, "artifact": out} for up, down, out in self.edges],
        }

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, steps={self.order})"


def _adapter(annotation: Any) -> TypeAdapter[Any]:
    try:
        return _cached_adapter(annotation)
    except TypeError:  # an unhashable annotation
        return TypeAdapter(annotation)


@lru_cache(maxsize=256)
def _cached_adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)
