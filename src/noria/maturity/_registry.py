"""The registry of checks: one small function per statement, registered with :func:`check`.

A check takes the :class:`~noria.maturity._context.Context` of a project and returns a
:class:`~noria.maturity._model.Finding`. The modules that define them (one per section of the
checklist; section 2 in four: infrastructure, reproducibility, lineage, retraining) are imported by
:func:`checks`, so the registry is complete whenever it is read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING

from noria.maturity._model import Finding, Statement

if TYPE_CHECKING:
    from noria.maturity._context import Context

CheckFunction = Callable[["Context"], Finding]

_MODULES = (
    "noria.maturity.checks_documentation",
    "noria.maturity.checks_infrastructure",
    "noria.maturity.checks_reproducibility",
    "noria.maturity.checks_lineage",
    "noria.maturity.checks_retraining",
    "noria.maturity.checks_quality",
    "noria.maturity.checks_monitoring",
    "noria.maturity.checks_advanced",
)


@dataclass(frozen=True)
class Check:
    statement: Statement
    run: CheckFunction


_CHECKS: dict[int, Check] = {}


def check(number: int, text: str, *, person: bool = False) -> Callable[[CheckFunction], CheckFunction]:
    """Register ``function`` as the check of statement ``number`` (``person``: only people can meet it)."""

    def register(function: CheckFunction) -> CheckFunction:
        if number in _CHECKS:
            raise ValueError(f"statement {number} has two checks: {_CHECKS[number].run.__name__}, {function.__name__}")
        _CHECKS[number] = Check(Statement(number, text, person), function)
        return function

    return register


def checks() -> list[Check]:
    """Every registered check, by statement number."""
    for module in _MODULES:
        import_module(module)
    return [_CHECKS[n] for n in sorted(_CHECKS)]


def check_of(number: int) -> Check:
    """The check of one statement."""
    checks()
    return _CHECKS[number]


__all__ = ["Check", "CheckFunction", "check", "check_of", "checks"]
