"""The drift heatmap's data: drift records (oldest first) arranged as a features x windows matrix.

Rows are the features, most important first, then the model score; columns are the windows and
model versions. :mod:`.report_page` draws it (``drift_matrix`` is re-exported there).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from noria.monitoring._report_svg import FloatArray
from noria.monitoring._report_svg import number as _num

SCORE_ROW = "model score"


@dataclass(frozen=True)
class DriftMatrix:
    """The heatmap's data: PSI and alerts per row (feature, most important first; the score last)."""

    rows: list[str]
    columns: list[str]  # "window\nv<version>", oldest first
    psi: FloatArray  # rows x columns, NaN where a feature has no value
    alerts: npt.NDArray[np.bool_]
    important: list[bool]
    psi_warn: float
    psi_alert: float


def drift_matrix(records: Sequence[Mapping[str, Any]]) -> DriftMatrix:
    """Arrange drift records (oldest first) as a features x windows matrix."""
    config = records[-1].get("config") or {}
    min_importance = float(config.get("min_importance", 0.05))
    importance: dict[str, float] = {}
    for record in records:
        for f in record.get("features") or []:
            imp = _num(f.get("importance"))
            importance[f["name"]] = max(importance.get(f["name"], -1.0), -1.0 if math.isnan(imp) else imp)
    names = sorted(importance, key=lambda n: -importance[n])  # stable: profile order among equals
    has_score = any(r.get("score") for r in records)
    psi = np.full((len(names) + has_score, len(records)), np.nan)
    alerts = np.zeros(psi.shape, dtype=bool)
    index = {n: i for i, n in enumerate(names)}
    for c, record in enumerate(records):
        entries = [(index[f["name"]], f) for f in record.get("features") or []]
        if record.get("score"):
            entries.append((len(names), record["score"]))
        for r, f in entries:
            psi[r, c] = _num(f.get("psi"))
            alerts[r, c] = bool(f.get("alert"))
    return DriftMatrix(
        rows=[*names, *([SCORE_ROW] if has_score else [])],
        columns=[f"{r['window']}\nv{r['model_version']}" for r in records],
        psi=psi,
        alerts=alerts,
        important=[importance[n] >= min_importance for n in names] + ([False] if has_score else []),
        psi_warn=float(config.get("psi_warn", 0.1)),
        psi_alert=float(config.get("psi_alert", 0.25)),
    )


__all__ = ["SCORE_ROW", "DriftMatrix", "drift_matrix"]
