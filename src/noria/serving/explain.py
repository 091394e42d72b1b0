"""Explanations a person can read: per-prediction contributions, in probability points.

Two sources of contributions, chosen by ``serving.explanations.method``. ``shap`` is LightGBM's
native ``pred_contrib``: a SHAP value per feature in log-odds plus the bias (the expected raw
score). ``path`` credits each split on the row's path through every tree with the change of
the tree's output there (from LightGBM's own leaf assignment; see ``_lgbm.PathAttribution``):
exact additivity too, at the cost of a prediction instead of milliseconds. Either way the
contributions add up exactly to the raw score ``r``, and the probability is ``p = sigmoid(r)``.
People think in probabilities, so each contribution is converted to *percentage points*.

The conversion is proportional (secant) allocation. With ``b`` the bias, ``S = r - b`` the sum
of the feature contributions and ``p0 = sigmoid(b)`` the baseline probability, feature ``i``
gets ``points_i = 100 * c_i * (p - p0) / S`` (and ``100 * c_i * p0 * (1 - p0)``, the slope at
``b``, when ``S`` is 0). So the points of all features add up exactly to ``100 * (p - p0)``,
each has the sign of its log-odds contribution, and none depends on the order features are
listed in (unlike sequential allocation, which would give the first feature the steep part of
the curve). The ratio ``(p - p0) / S`` is the average slope of the sigmoid between ``b`` and
``r``: finite, at most 0.25.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from noria.serving._lgbm import sigmoid
from noria.serving.config import FeatureText

_UNITS = {
    "miles": "mi",
    "mile": "mi",
    "inches": "in",
    "f": "°F",
    "°f": "°F",
    "c": "°C",
    "%": "%",
    "millibars": "mb",
    "mph": "mph",
    "minutes": "min",
    "years": "years",
    "degrees": "°",
    "feet": "ft",
}
_DESCRIPTION = re.compile(r"^(?P<label>[^()]{1,40}?)\s*\((?P<unit>[^()]{1,20})\)\.?$")


def points(contributions: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(points per feature, baseline probability, probability) from one row of ``pred_contrib``.

    ``contributions`` holds one log-odds value per feature and the bias last.
    """
    bias = float(contributions[-1])
    c = contributions[:-1]
    total = float(c.sum())
    p0 = sigmoid(bias)
    p = sigmoid(bias + total)
    slope = (p - p0) / total if abs(total) > 1e-12 else p0 * (1.0 - p0)
    return c * (100.0 * slope), p0, p


def feature_text(name: str, description: str = "", override: FeatureText | None = None) -> FeatureText:
    """How a feature reads: an override, else ``Label (unit).`` from its description, else its name."""
    if override is not None and override.label:
        return override
    label, unit = name.replace("_", " "), ""
    found = _DESCRIPTION.match(description.strip())
    if found and len(found["label"].split()) <= 4:
        label = found["label"].strip().lower()
        raw_unit = found["unit"].strip()
        unit = _UNITS.get(raw_unit.lower(), raw_unit)
    decimals = override.decimals if override is not None else 1
    unit = override.unit if override is not None and override.unit else unit
    return FeatureText(label=label, unit=unit, decimals=decimals)


def format_value(value: Any, text: FeatureText) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unknown"
    if isinstance(value, str):
        return value
    number = float(value)
    shown = f"{number:.{text.decimals}f}".rstrip("0").rstrip(".") if text.decimals else f"{number:.0f}"
    if shown in ("-0", ""):
        shown = "0"
    if not text.unit:
        return shown
    return f"{shown}{text.unit}" if text.unit in ("%", "°F", "°C", "°") else f"{shown} {text.unit}"


def format_points(value: float) -> str:
    size = abs(value)
    if size >= 0.95:
        n = round(size)
        return f"{n} point" if n == 1 else f"{n} points"
    return f"{size:.1f} points" if size >= 0.05 else "less than 0.1 points"


def sentence(text: FeatureText, value: Any, pts: float) -> str:
    """``visibility 0.5 mi raised the risk by 12 points``."""
    verb = "raised" if pts >= 0 else "lowered"
    return f"{text.label} {format_value(value, text)} {verb} the risk by {format_points(pts)}"


@dataclass(frozen=True)
class Explainer:
    """The wording of every feature of one model, prepared once per model version."""

    features: tuple[str, ...]
    texts: tuple[FeatureText, ...]
    top: int

    @classmethod
    def build(
        cls,
        features: tuple[str, ...],
        descriptions: Mapping[str, str],
        overrides: Mapping[str, FeatureText],
        top: int,
    ) -> Explainer:
        texts = tuple(feature_text(f, descriptions.get(f, ""), overrides.get(f)) for f in features)
        return cls(features, texts, top)

    def explain(self, contributions: np.ndarray, values: list[Any]) -> dict[str, Any]:
        """The response's ``explanation``: baseline probability and the ``top`` largest contributions."""
        pts, p0, _ = points(contributions)
        logit = contributions[:-1]
        k = min(self.top, len(logit))
        order = np.argsort(-np.abs(logit), kind="stable")[:k]
        items = []
        for j in order.tolist():
            c = float(logit[j])
            if c == 0.0:
                break
            items.append(
                {
                    "feature": self.features[j],
                    "value": values[j],
                    "log_odds": round(c, 6),
                    "points": round(float(pts[j]), 3),
                    "text": sentence(self.texts[j], values[j], float(pts[j])),
                }
            )
        return {"baseline_probability": round(p0, 6), "contributions": items}


__all__ = ["Explainer", "feature_text", "format_points", "format_value", "points", "sentence"]
