"""Explanations a person can read: per-prediction contributions, in the task's terms.

Classes are explained in probability points, a regression in the target's unit. Two sources of
contributions, chosen by ``serving.explanations.method``. ``shap`` is LightGBM's native
``pred_contrib``: a SHAP value per feature in log-odds plus the bias (the expected raw score).
``path`` credits each split on the row's path through every tree with the change of the tree's
output there (from LightGBM's own leaf assignment; see ``_lgbm.PathAttribution``): exact
additivity too, at the cost of a prediction instead of milliseconds. Either way the
contributions add up exactly to the raw score ``r`` (one per class for a multi-class model).
For a binary model the probability is ``p = sigmoid(r)``. People think in probabilities, so
each contribution is converted to *percentage points*.

The conversion is proportional (secant) allocation. With ``b`` the bias, ``S = r - b`` the sum
of the feature contributions and ``p0 = sigmoid(b)`` the baseline probability, feature ``i``
gets ``points_i = 100 * c_i * (p - p0) / S`` (and ``100 * c_i * p0 * (1 - p0)``, the slope at
``b``, when ``S`` is 0). So the points of all features add up exactly to ``100 * (p - p0)``,
each has the sign of its log-odds contribution, and none depends on the order features are
listed in (unlike sequential allocation, which would give the first feature the steep part of
the curve). The ratio ``(p - p0) / S`` is the average slope of the sigmoid between ``b`` and
``r``: finite, at most 0.25.

**Multi-class** (``softmax``): per class j the contributions ``c_ij`` add up with the bias
``b_j`` to the raw score ``z_j``, and ``p = softmax(z)``. We explain the predicted class k in
*its log-odds against the other classes*, then convert to points exactly as for a binary
model. Those log-odds are ``logit(p_k) = z_k - LSE_o(z)``, with ``LSE_o`` the log-sum-exp over
the other classes o. Along the straight path from ``b`` to ``z = b + S`` (``S_j = sum_i c_ij``)
the gradient of ``LSE_o`` is ``q``, the softmax over the other classes, so exactly
``logit(p_k) - logit(p0_k) = S_k - w . S_o`` with ``w`` the average of ``q`` along the path,
and feature i's share is ``d_i = c_ik - w . c_io``: what it adds to class k minus the
probability-weighted average of what it adds to the others (``log_odds`` in the response). A
feature that lifts every class alike has ``d_i = 0``. The path average has no closed form; we
take ``w`` = the mean of ``q`` at both ends, corrected along the tilt direction
``q * (S_o - q . S_o)`` (sum 0, so ``w`` still sums to 1 and adding a constant to every class
changes nothing) so that ``w . S_o = LSE_o(z) - LSE_o(b)`` holds exactly. Then
``sum_i d_i = logit(p_k) - logit(p0_k)`` and ``points_i = 100 * d_i * (p_k - p0_k) / sum_i d_i``:
the factor is the average slope of the sigmoid between the two log-odds (positive, at most
0.25), so every feature's points have the sign of ``d_i`` and the points add up to
``100 * (p_k - p0_k)`` (to floating-point rounding), ``p0_k = softmax(b)_k``. With K = 2 this
is the binary method (``d_i = c_i1 - c_i0``). ``multiclassova`` models (``p_j`` = a sigmoid
per class, normalised to sum to 1) first turn each class's contributions into contributions
to ``log sigmoid(z_j)`` (secant allocation again, per class), then go the same way.

**Regression**: the contributions are in the target's unit already when the raw score is the
prediction (L2, L1, huber, quantile... objectives): ``amount_i = c_i``, ``baseline = b``, and
baseline + amounts = prediction. A link ``y = f(r)`` (poisson/gamma/tweedie: ``exp``; the
``reg_sqrt`` option: ``sign(r) r^2``) is converted secant-style like the binary sigmoid:
``amount_i = c_i * (f(r) - f(b)) / S``, ``baseline = f(b)``, still adding up exactly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from noria.serving._lgbm import sigmoid
from noria.serving.config import FeatureText

TINY = 1e-12  # a total change this small is no change: use the slope at the baseline instead

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
    c = contributions[:-1]
    scale, p0, p = _points_scale(float(contributions[-1]), float(c.sum()))
    return c * scale, p0, p


def _points_scale(bias: float, total: float) -> tuple[float, float, float]:
    """(points per log-odds unit, p0, p) of a row with this bias and sum of feature contributions."""
    p0 = sigmoid(bias)
    p = sigmoid(bias + total)
    slope = (p - p0) / total if abs(total) > 1e-12 else p0 * (1.0 - p0)
    return 100.0 * slope, p0, p


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    out: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return out


def _lse(z: np.ndarray) -> float:
    top = float(z.max())
    return top + math.log(float(np.exp(z - top).sum()))


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = -np.logaddexp(0.0, -x)
    return out


def class_probabilities(raw: list[float], ova: bool = False) -> list[float]:
    """The K probabilities of one row from its K raw scores (softmax; ``ova``: sigmoids normalised)."""
    if ova:
        p = [sigmoid(r) for r in raw]
    else:
        top = max(raw)
        p = [math.exp(r - top) for r in raw]
    total = sum(p)
    return [v / total for v in p]


def batch_class_probabilities(raw: np.ndarray, ova: bool = False) -> np.ndarray:
    """``class_probabilities`` of an (n, K) array of raw scores."""
    if ova:
        p = np.exp(_log_sigmoid(raw))
        out: np.ndarray = p / p.sum(axis=1, keepdims=True)
        return out
    return softmax(raw)


def ova_contributions(contributions: np.ndarray) -> np.ndarray:
    """(K, F + 1) contributions to the raw scores -> contributions to ``log sigmoid(z_j)``, bias last.

    Per class, secant allocation: ``c_ij * (log sigmoid(z_j) - log sigmoid(b_j)) / S_j``.
    """
    c, b = contributions[:, :-1], contributions[:, -1]
    s = c.sum(axis=1)
    y0, y1 = _log_sigmoid(b), _log_sigmoid(b + s)
    flat = np.abs(s) <= TINY
    slope = np.where(flat, 1.0 - np.exp(y0), (y1 - y0) / np.where(flat, 1.0, s))  # d/dz log sigmoid = 1 - p
    out = np.empty_like(contributions)
    out[:, :-1] = c * slope[:, None]
    out[:, -1] = y0
    return out


def _softmax_list(z: list[float]) -> list[float]:
    top = max(z)
    e = [math.exp(v - top) for v in z]
    total = sum(e)
    return [v / total for v in e]


def _lse_list(z: list[float]) -> float:
    top = max(z)
    return top + math.log(sum(math.exp(v - top) for v in z))


def class_points(contributions: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(log-odds of class k per feature, points per feature, baseline p0_k, p_k) of one row.

    ``contributions`` is (K, F + 1): per class the features' contributions to its softmax
    input, the bias last (``ova_contributions`` first for a one-vs-all model). See the module
    docstring: the log-odds add up to ``logit(p_k) - logit(p0_k)`` and the points to
    ``100 * (p_k - p0_k)``. The K-long vectors are plain lists (K is small): a request pays
    one matrix-vector product over the features.
    """
    b: list[float] = contributions[:, -1].tolist()
    z: list[float] = contributions.sum(axis=1).tolist()  # the raw scores
    p0_k, p_k = _softmax_list(b)[k], _softmax_list(z)[k]
    b_o, z_o = b[:k] + b[k + 1 :], z[:k] + z[k + 1 :]
    s_o = [zj - bj for zj, bj in zip(z_o, b_o, strict=True)]
    w = [0.5 * (u + v) for u, v in zip(_softmax_list(b_o), _softmax_list(z_o), strict=True)]
    mean = sum(wj * sj for wj, sj in zip(w, s_o, strict=True))
    deviation = [sj - mean for sj in s_o]
    spread = sum(wj * dj * dj for wj, dj in zip(w, deviation, strict=True))
    if spread > TINY:  # tilt w so that w . S_o is the exact change of LSE over the other classes
        tilt = (_lse_list(z_o) - _lse_list(b_o) - mean) / spread
        w = [wj * (1.0 + tilt * dj) for wj, dj in zip(w, deviation, strict=True)]
    weights = np.array([*w[:k], -1.0, *w[k:]])
    d: np.ndarray = -(weights @ contributions[:, :-1])  # c_k - sum_o w_o c_o
    total = float(d.sum())
    change = p_k - p0_k
    slope = change / total if abs(total) > TINY and change * total > 0 else p0_k * (1.0 - p0_k)
    return d, d * (100.0 * slope), p0_k, p_k


def link_output(raw: float, link: str) -> float:
    """A regression model's prediction from its raw score."""
    if link == "exp":
        return math.exp(raw)
    if link == "square":
        return raw * abs(raw)
    return raw


def _link_slope(raw: float, link: str) -> float:
    if link == "exp":
        return math.exp(raw)
    if link == "square":
        return 2.0 * abs(raw)
    return 1.0


def amounts(contributions: np.ndarray, link: str = "identity") -> tuple[np.ndarray, float, float]:
    """(amount per feature in the target's unit, baseline, prediction) of one row of a regression model."""
    bias = float(contributions[-1])
    c = contributions[:-1]
    total = float(c.sum())
    if link == "identity":
        return c, bias, bias + total
    y0 = link_output(bias, link)
    y = link_output(bias + total, link)
    slope = (y - y0) / total if abs(total) > TINY else _link_slope(bias, link)
    return c * slope, y0, y


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


def class_sentence(text: FeatureText, value: Any, pts: float, label: str) -> str:
    """``home form 2.1 raised the chance of H by 4 points``."""
    verb = "raised" if pts >= 0 else "lowered"
    return f"{text.label} {format_value(value, text)} {verb} the chance of {label} by {format_points(pts)}"


def amount_decimals(baseline: float) -> int:
    """Decimals for amounts of a target of about this size: 1 from 10 up, more for smaller targets."""
    size = abs(baseline)
    if not math.isfinite(size) or size == 0.0:
        return 1
    return min(max(1, 2 - math.floor(math.log10(size))), 12)


def format_amount(value: float, unit: str = "", decimals: int = 1) -> str:
    """``12 mg/dL``, ``3.4 mg/dL``, ``less than 0.1 mg/dL``: two significant digits, at most ``decimals``."""
    size = abs(value)
    suffix = f" {unit}" if unit else ""
    if size < 0.5 * 10.0**-decimals:
        return f"less than {10.0**-decimals:.{decimals}f}{suffix}"
    digits = min(decimals, max(0, 1 - math.floor(math.log10(size))))
    shown = f"{size:.{digits}f}"
    if digits:
        shown = shown.rstrip("0").rstrip(".")
    return f"{shown}{suffix}"


def amount_sentence(text: FeatureText, value: Any, amount: float, target: str, unit: str, decimals: int = 1) -> str:
    """``latest glucose 180 mg/dL raised the predicted glucose in 30 min by 12 mg/dL``."""
    verb = "raised" if amount >= 0 else "lowered"
    # "decision" is a Task's default name (a binary model's field), "prediction" the regression's default.
    what = "the prediction" if target in ("", "prediction", "decision") else f"the predicted {target}"
    return f"{text.label} {format_value(value, text)} {verb} {what} by {format_amount(amount, unit, decimals)}"


@dataclass(frozen=True)
class Explainer:
    """The wording of every feature of one model, prepared once per model version.

    ``explain`` for a binary model, ``explain_class`` for a multi-class one, ``explain_amount``
    for a regression; ``target`` and ``unit`` word a regression's explanations.
    """

    features: tuple[str, ...]
    texts: tuple[FeatureText, ...]
    top: int
    target: str = ""
    unit: str = ""

    @classmethod
    def build(
        cls,
        features: tuple[str, ...],
        descriptions: Mapping[str, str],
        overrides: Mapping[str, FeatureText],
        top: int,
        *,
        target: str = "",
        unit: str = "",
    ) -> Explainer:
        texts = tuple(feature_text(f, descriptions.get(f, ""), overrides.get(f)) for f in features)
        return cls(features, texts, top, target, unit)

    def _largest(self, weights: np.ndarray) -> list[int]:
        k = min(self.top, len(weights))
        order: list[int] = np.argsort(-np.abs(weights), kind="stable")[:k].tolist()
        return order

    def explain(self, contributions: np.ndarray, values: list[Any]) -> dict[str, Any]:
        """The response's ``explanation``: baseline probability and the ``top`` largest contributions."""
        return self.explain_rows(contributions[None, :], [values])[0]

    def explain_rows(self, contributions: np.ndarray, values: Sequence[list[Any]]) -> list[dict[str, Any]]:
        """``explain`` of every row of (n, F + 1) contributions: the largest of all rows found by one
        sort, their sums by one reduction (a batch's numpy calls are paid once, not once a row)."""
        logits = contributions[:, :-1]
        k = min(self.top, logits.shape[1])
        orders: list[list[int]] = np.argsort(-np.abs(logits), axis=1, kind="stable")[:, :k].tolist()
        totals: list[float] = logits.sum(axis=1).tolist()
        features, texts = self.features, self.texts
        out: list[dict[str, Any]] = []
        for order, numbers, total, row in zip(orders, contributions.tolist(), totals, values, strict=True):
            # points() for the top features only: the same numbers (each is c * scale), no array of them all.
            scale, p0, _ = _points_scale(numbers[-1], total)  # the bias is last
            items = []
            for j in order:
                c = numbers[j]
                if c == 0.0:
                    break
                pts = c * scale
                items.append(
                    {
                        "feature": features[j],
                        "value": row[j],
                        "log_odds": round(c, 6),
                        "points": round(pts, 3),
                        "text": sentence(texts[j], row[j], pts),
                    }
                )
            out.append({"baseline_probability": round(p0, 6), "contributions": items})
        return out

    def explain_class(self, contributions: np.ndarray, values: list[Any], k: int, label: str) -> dict[str, Any]:
        """A multi-class explanation of class ``k`` (named ``label``) from (K, F + 1) contributions."""
        d, pts, p0, _ = class_points(contributions, k)
        items = []
        for j in self._largest(d):
            c = float(d[j])
            if c == 0.0:
                break
            items.append(
                {
                    "feature": self.features[j],
                    "value": values[j],
                    "log_odds": round(c, 6),
                    "points": round(float(pts[j]), 3),
                    "text": class_sentence(self.texts[j], values[j], float(pts[j]), label),
                }
            )
        return {"class": label, "baseline_probability": round(p0, 6), "contributions": items}

    def explain_amount(self, contributions: np.ndarray, values: list[Any], link: str = "identity") -> dict[str, Any]:
        """A regression explanation: the baseline prediction and the largest amounts, in the target's unit."""
        amount, baseline, _ = amounts(contributions, link)
        decimals = amount_decimals(baseline)
        items = []
        for j in self._largest(amount):
            a = float(amount[j])
            if a == 0.0:
                break
            items.append(
                {
                    "feature": self.features[j],
                    "value": values[j],
                    "amount": round(a, 6),
                    "text": amount_sentence(self.texts[j], values[j], a, self.target, self.unit, decimals),
                }
            )
        return {"baseline": round(baseline, 6), "contributions": items}


__all__ = [
    "Explainer",
    "amount_decimals",
    "amount_sentence",
    "amounts",
    "batch_class_probabilities",
    "class_points",
    "class_probabilities",
    "class_sentence",
    "feature_text",
    "format_amount",
    "format_points",
    "format_value",
    "link_output",
    "ova_contributions",
    "points",
    "sentence",
    "softmax",
]
