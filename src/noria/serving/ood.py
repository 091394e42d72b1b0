"""Out-of-distribution check: does this input lie outside what the model learned from?

Three reasons, each naming the feature (maturity item 57):

- ``out_of_range``: a number below the training minimum or above the training maximum;
- ``unseen_category``: a category (a store, a product line, a team...) absent from the training data;
- ``missing``: no value (not in the online store, not given inline), for a feature that was
  (almost) always present in training.

The bounds come from the model version's reference profile (monitoring) when it has one,
else from the model itself: LightGBM stores each numeric feature's training range and each
categorical feature's categories in the model text, so a model alone is enough.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from noria.serving._lgbm import BoosterInputs

# A feature missing in at least this share of training rows may be missing in a request too.
MISSING_TOLERATED = 0.01


class NumericBounds(Protocol):
    """What the check needs of a numeric column profile (noria.monitoring's NumericProfile)."""

    minimum: float
    maximum: float

    @property
    def missing_rate(self) -> float: ...


@dataclass(frozen=True)
class Bounds:
    """Training range per numeric feature, categories per categorical one, features that may be missing."""

    ranges: dict[str, tuple[float, float]]
    categories: dict[str, frozenset[str]]
    may_be_missing: frozenset[str] = field(default_factory=frozenset)
    source: str = "model"

    @classmethod
    def from_booster(cls, inputs: BoosterInputs) -> Bounds:
        cats = {name: frozenset(values) for name, values in inputs.categories.items() if values}
        return cls(dict(inputs.ranges), cats, frozenset(), "model")

    @classmethod
    def from_profile(cls, profile: Any, inputs: BoosterInputs) -> Bounds:
        """Ranges and missing rates of a ReferenceProfile; categories from the model (the complete list).

        A profile keeps only the most frequent categories, so the model's own category list
        (every category it was trained with) decides what is unseen.
        """
        base = cls.from_booster(inputs)
        ranges = dict(base.ranges)
        may_be_missing: set[str] = set()
        for name, column in getattr(profile, "features", {}).items():
            if name not in inputs.features:
                continue
            if getattr(column, "missing_rate", 0.0) >= MISSING_TOLERATED:
                may_be_missing.add(name)
            if getattr(column, "kind", "") == "numeric" and name not in inputs.categories:
                low, high = float(column.minimum), float(column.maximum)
                if math.isfinite(low) and math.isfinite(high):
                    ranges[name] = (low, high)
        return cls(ranges, base.categories, frozenset(may_be_missing), "reference profile")


def _number(value: float) -> str:
    return f"{value:.6g}"


def check(
    features: tuple[str, ...],
    values: list[Any],
    unseen: Mapping[int, str],
    bounds: Bounds,
) -> list[dict[str, str]]:
    """Reasons this row is out of distribution (empty when it is not).

    ``values`` are the model inputs as sent (numbers, category strings, None for missing);
    ``unseen`` maps a feature position to the category the model has never seen there.
    """
    reasons: list[dict[str, str]] = []
    ranges, may_be_missing = bounds.ranges, bounds.may_be_missing
    for j, name in enumerate(features):
        value = values[j]
        if j in unseen:
            reasons.append(
                {
                    "feature": name,
                    "kind": "unseen_category",
                    "detail": f"{name} {unseen[j]!r} was not seen in training",
                }
            )
        elif value is None or (isinstance(value, float) and math.isnan(value)):
            if name not in may_be_missing:
                reasons.append({"feature": name, "kind": "missing", "detail": f"{name} has no value"})
        elif name in ranges and not isinstance(value, str):
            low, high = ranges[name]
            number = float(value)
            if number < low:
                detail = f"{name} {_number(number)} is below the training minimum {_number(low)}"
            elif number > high:
                detail = f"{name} {_number(number)} is above the training maximum {_number(high)}"
            else:
                continue
            reasons.append({"feature": name, "kind": "out_of_range", "detail": detail})
    return reasons


__all__ = ["MISSING_TOLERATED", "Bounds", "check"]
