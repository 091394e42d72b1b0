"""The Noria console: one web app that shows the whole loop of a project (``noria ui``).

Server-rendered pages, no script: the overview draws the loop (data -> features -> training ->
registry -> serving -> monitoring -> retraining) with each stage's state, age and fix
(:func:`loop_status`, what ``noria status`` prints); Data, Features, Models, Monitoring and
Maturity pages show the records the CLI reads, each with a JSON twin (``?format=json``) equal to
the CLI's ``--json`` for the same question. Reading needs an API key (serving's), acting an admin
key. See docs/console.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from noria.console.server import console_app, serve_console
    from noria.console.status import loop_status

from noria._lazy import lazy_exports

_EXPORTS = {
    "console_app": "noria.console.server",
    "serve_console": "noria.console.server",
    "loop_status": "noria.console.status",
}

__all__ = ["console_app", "loop_status", "serve_console"]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
