"""The monitoring page's plots as their own addresses: ``/monitoring/plots/DIGEST.svg``.

The monitoring report draws its plots as inline ``<svg>`` (:mod:`noria.monitoring._report_plots`):
right for a single report file, but on the console's page they were ~600 KB of markup the
browser parsed and laid out on every visit. The console keeps each plot, once drawn, under the
digest of its content and puts an ``<img>`` in the page (the caption as its ``alt`` text, its
size so nothing moves while it loads, ``loading="lazy"`` below the first screen). A plot's
address names its content, so the browser may keep it (``Cache-Control: immutable``, an
``ETag``); a page rebuilt from changed records draws new plots under new addresses.

Plots are kept by the page that drew them: the newest set and the one before (a tab still
showing the older page finds its plots); the page itself is kept by
:class:`~noria.console.cache.PageCache` until a monitoring record changes, so plots are drawn
once per set of records.
"""

from __future__ import annotations

import hashlib
import re
import threading
from html import escape, unescape

SVG_NS = 'xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
PREFIX = "/monitoring/plots/"
_FIGURE = re.compile(r'(<figure class="plot">)(<svg\b.*?</svg>)', re.S)
_ATTR = re.compile(r'\b(width|height|aria-label)="([^"]*)"')
_POINTS = re.compile(r"^([\d.]+)pt$")
EAGER = 1  # plots drawn at once (the first screen); the rest load as they scroll into view


class PlotStore:
    """SVG documents by digest, per page that drew them (the newest set and the previous one)."""

    def __init__(self) -> None:
        self._sets: dict[str, tuple[dict[str, bytes], dict[str, bytes]]] = {}
        self._lock = threading.Lock()

    def keep(self, owner: str, plots: dict[str, bytes]) -> None:
        """``plots`` (digest -> SVG document) are now ``owner``'s; its set before stays one more round."""
        with self._lock:
            current = self._sets.get(owner, ({}, {}))[0]
            self._sets[owner] = (plots, current if current != plots else {})

    def get(self, digest: str) -> bytes | None:
        with self._lock:
            for newest, previous in self._sets.values():
                found = newest.get(digest) or previous.get(digest)
                if found is not None:
                    return found
        return None


def externalize(parts: list[str], store: PlotStore, owner: str) -> list[str]:
    """``parts`` with every ``<figure class="plot"><svg ...>`` replaced by an ``<img>`` of the plot,
    whose SVG document is kept in ``store`` under its digest."""
    plots: dict[str, bytes] = {}

    def swap(m: re.Match[str]) -> str:
        svg = m[2]
        attrs = {k: unescape(v) for k, v in _ATTR.findall(svg[: svg.index(">")])}
        document = standalone(svg)
        digest = hashlib.blake2b(document, digest_size=12).hexdigest()
        plots[digest] = document
        size = "".join(f' {k}="{_pixels(attrs[k])}"' for k in ("width", "height") if _pixels(attrs.get(k)))
        lazy = ' loading="lazy"' if len(plots) > EAGER else ""
        return (
            f'{m[1]}<img src="{PREFIX}{digest}.svg" alt="{escape(attrs.get("aria-label", "plot"))}"{size}'
            f' decoding="async"{lazy}>'
        )

    out = [_FIGURE.sub(swap, part) for part in parts]
    store.keep(owner, plots)
    return out


def standalone(svg: str) -> bytes:
    """An inline ``<svg>`` element as an SVG document of its own (the namespaces inline SVG omits)."""
    head_end = svg.index(">")
    head = svg[:head_end]
    if "xmlns=" not in head:
        head = head.replace("<svg", f"<svg {SVG_NS}", 1)
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + head + svg[head_end:]).encode()


def _pixels(value: str | None) -> str:
    """A size in points ("432pt") as whole CSS pixels ("576"); "" when it is not in points."""
    m = _POINTS.match(value or "")
    return str(round(float(m[1]) * 4 / 3)) if m else ""


__all__ = ["PREFIX", "PlotStore", "externalize", "standalone"]
