"""The figure kit of the monitoring report's plots: fixed-margin figures, one style, inline SVG.

Figures are built on :class:`Figure` directly, without pyplot, so no GUI backend is ever chosen
and nothing global is touched. :func:`to_svg` turns a figure into one ``<svg>`` element: text is
drawn as paths (no font is needed to view it), the XML prologue and namespace URLs are dropped
(inline SVG in HTML needs neither), and every ``id`` gets a per-plot prefix so that several plots
can share one HTML page.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FloatArray = npt.NDArray[np.float64]

STYLE: dict[str, Any] = {
    "svg.fonttype": "path",
    "svg.hashsalt": "noria-report",  # stable ids, so the same data gives the same file
    "font.size": 8.5,
    "axes.titlesize": 9.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "legend.fontsize": 7.5,
    "legend.frameon": False,
}
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
_NO_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}
_NAMESPACE = re.compile(r'\s+xmlns(:\w+)?="[^"]*"')


def new_figure(
    width: float,
    height: float,
    margins: tuple[float, float, float, float] = (0.7, 0.25, 0.35, 0.5),
    hspace: float = 0.45,
    wspace: float = 0.3,
) -> Figure:
    """A figure with fixed margins (left, right, top, bottom) in inches.

    Fixed margins rather than matplotlib's constrained layout: the layout pass measures every
    text twice and made the report a third slower; these plots have known, simple shapes.
    """
    from matplotlib.figure import Figure

    left, right, top, bottom = margins
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        top=1 - top / height,
        bottom=bottom / height,
        hspace=hspace,
        wspace=wspace,
    )
    return fig


def to_svg(fig: Figure, key: str, label: str) -> str:
    """The figure as one inline ``<svg>`` element whose ids all start with ``key``."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context(rc_style()):
        fig.savefig(buffer, format="svg", metadata=_NO_METADATA)
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    head_end = text.index(">")
    head = _NAMESPACE.sub("", text[:head_end])
    text = f'{head} role="img" aria-label="{_attr(label)}"{text[head_end:]}'
    text = re.sub(r'\bid="([^"]+)"', rf'id="{key}-\1"', text)
    text = re.sub(r'href="#([^"]+)"', rf'href="#{key}-\1"', text)
    return re.sub(r"url\(#([^)]+)\)", rf"url(#{key}-\1)", text)


def rc_style(extra: Mapping[str, Any] | None = None) -> Any:
    """The report's rcParams (typed loosely: matplotlib types the keys as a Literal of every name)."""
    return STYLE | dict(extra or {})


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def color(i: int) -> str:
    return COLORS[i % len(COLORS)]


def number(value: Any) -> float:
    """A record's number as a float: null -> NaN, the string "inf" -> infinity."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


__all__ = ["COLORS", "STYLE", "FloatArray", "color", "new_figure", "number", "rc_style", "to_svg"]
