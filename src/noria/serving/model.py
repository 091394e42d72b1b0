"""One model version ready to answer: fixed feature order, category codes, scorer, explainer, bounds.

A :class:`ServedModel` is immutable once built. The model holder swaps whole objects, so a
request that picked one keeps using it to the end even if the alias moves meanwhile.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from noria.errors import ValidationError
from noria.serving._lgbm import (
    BoosterInputs,
    FastScorer,
    PathAttribution,
    batch_contributions,
    batch_leaves,
    batch_raw,
    booster_inputs,
    sigmoid,
)
from noria.serving.config import FeatureText
from noria.serving.explain import Explainer
from noria.serving.ood import Bounds, check
from noria.serving.sources import LoadedVersion, LookedUp

MISSING = math.nan


class InlineFeatureError(ValidationError):
    """A feature given inline is unknown to the model or has the wrong type."""


@dataclass
class Encoded:
    """Model inputs of a batch of rows: the float matrix, values as sent, unseen categories per row."""

    matrix: np.ndarray
    values: list[list[Any]]
    unseen: list[dict[int, str]]


@dataclass
class Scored:
    """Everything about one scored row that the response and the log need."""

    probability: float
    raw: float
    late: bool
    explanation: dict[str, Any] | None
    ood: list[dict[str, str]]
    values: list[Any]


_NO_FEATURES: Mapping[str, Any] = {}


def _pylist(array: np.ndarray) -> list[Any]:
    """An array's values as Python objects (numbers, str, None), as ``.item()`` gives them one by one."""
    if array.dtype == object:
        return [v.item() if isinstance(v, np.generic) else v for v in array.tolist()]
    return list(array.tolist())


def _category(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass
class ServedModel:
    """A loaded version of the model and everything prepared to serve it fast."""

    loaded: LoadedVersion
    inputs: BoosterInputs
    scorer: FastScorer
    explainer: Explainer
    bounds: Bounds
    codes: dict[str, dict[str, float]]
    inputs_set: frozenset[str] = frozenset()
    paths: PathAttribution | None = None  # set when explanations use the decision-path method
    _mappings: tuple[dict[str, float] | None, ...] = ()  # category codes per feature position (None: a number)
    _inline_plan: tuple[tuple[str, dict[str, float] | None, list[Any] | None], ...] = ()  # (name, codes, no column)
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @classmethod
    def build(
        cls,
        loaded: LoadedVersion,
        *,
        descriptions: Mapping[str, str] | None = None,
        texts: Mapping[str, FeatureText] | None = None,
        top: int = 3,
        method: str = "shap",
    ) -> ServedModel:
        inputs = booster_inputs(loaded.booster)
        codes = {
            name: {category: float(code) for code, category in enumerate(cats)}
            for name, cats in inputs.categories.items()
            if cats
        }
        words = {**(descriptions or {}), **loaded.descriptions}
        bounds = Bounds.from_booster(inputs) if loaded.profile is None else Bounds.from_profile(loaded.profile, inputs)
        return cls(
            loaded=loaded,
            inputs=inputs,
            scorer=FastScorer(loaded.booster),
            explainer=Explainer.build(inputs.features, words, dict(texts or {}), top),
            bounds=bounds,
            codes=codes,
            inputs_set=frozenset(inputs.features),
            paths=PathAttribution(loaded.booster) if method == "path" else None,
            _mappings=tuple(codes.get(name) for name in inputs.features),
            _inline_plan=tuple((name, codes.get(name), None) for name in inputs.features),
        )

    # -- identity ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.loaded.ref.name

    @property
    def version(self) -> int:
        return self.loaded.ref.version

    @property
    def features(self) -> tuple[str, ...]:
        return self.inputs.features

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.loaded.alias,
            "run_id": self.loaded.ref.run_id,
            "feature_definition_hash": self.loaded.feature_definition_hash,
            "loaded_at": self.loaded_at,
        }

    # -- inputs -------------------------------------------------------------------------------

    def encode(
        self, inline: list[Mapping[str, Any] | None], looked_up: LookedUp | None, where: list[str] | None = None
    ) -> Encoded:
        """Build the model's input matrix: inline values first, then looked-up values, else missing.

        Categories become the codes the model was trained with; an unseen category is a missing
        value for the model and is reported. ``where`` names each row's inline features in errors.
        """
        n, known = len(inline), self.inputs.features
        plan = self._inline_plan
        if looked_up is not None and looked_up.values:
            # Looked-up arrays as Python lists, one conversion per feature instead of one per value.
            arrays = looked_up.values
            columns = [_pylist(arrays[name]) if name in arrays else None for name in known]
            plan = tuple(zip(known, self._mappings, columns, strict=True))
        floats: list[list[float]] = []
        values: list[list[Any]] = []
        unseen: list[dict[int, str]] = []
        for i in range(n):
            given = inline[i] or _NO_FEATURES
            if given:
                self._check_inline(given, where[i] if where else "features")
            row_floats: list[float] = []
            row_values: list[Any] = []
            row_unseen: dict[int, str] = {}
            for j, (name, mapping, column) in enumerate(plan):
                if name in given:
                    value = given[name]
                elif column is not None:
                    value = column[i]
                else:
                    value = None
                if value is None or (isinstance(value, float) and value != value):
                    row_floats.append(MISSING)
                    row_values.append(None)
                    continue
                if mapping is None:
                    row_floats.append(float(value))
                else:
                    value = _category(value)
                    code = mapping.get(value)
                    if code is None:
                        row_unseen[j] = value
                        row_floats.append(MISSING)
                    else:
                        row_floats.append(code)
                row_values.append(value)
            floats.append(row_floats)
            values.append(row_values)
            unseen.append(row_unseen)
        matrix = np.array(floats, dtype=np.float64).reshape(n, len(known))
        return Encoded(matrix, values, unseen)

    def _check_inline(self, given: Mapping[str, Any], where: str) -> None:
        if given.keys() <= self.inputs_set:  # the usual case: known names, text only for categories
            if not any(issubclass(kind, str) for kind in set(map(type, given.values()))):
                return
            codes = self.codes
            if all(name in codes for name, value in given.items() if isinstance(value, str)):
                return
        for name, value in given.items():
            if name not in self.inputs_set:
                shown = ", ".join(self.inputs.features[:40])
                raise InlineFeatureError(
                    f"{where}.{name}: model {self.name} version {self.version} has no feature {name!r}",
                    fix=f"send only the model's features: {shown}",
                )
            if isinstance(value, str) and name not in self.codes:
                raise InlineFeatureError(
                    f"{where}.{name}: expected a number, got the text {value!r}",
                    fix=f"send {name} as a number (or null when unknown)",
                )

    # -- scoring ------------------------------------------------------------------------------

    def score(self, encoded: Encoded, threshold: float, explain: bool) -> list[Scored]:
        """Probability, decision, explanation and out-of-distribution reasons for every row."""
        n = encoded.matrix.shape[0]
        contribs: np.ndarray | None = None
        raws: np.ndarray | None = None
        paths = self.paths
        if n == 1:
            row = encoded.matrix[0]
            if explain and paths is not None:
                contribs = paths.contributions(self.scorer.leaves(row))[None, :]
            elif explain:
                contribs = self.scorer.contributions(row)[None, :]
            else:
                raws = np.array([self.scorer.raw(row)])
        elif explain and paths is not None:
            leaves = batch_leaves(self.loaded.booster, encoded.matrix)
            contribs = np.stack([paths.contributions(leaves[i]) for i in range(n)]) if n else None
        elif explain:
            contribs = batch_contributions(self.loaded.booster, encoded.matrix)
        else:
            raws = batch_raw(self.loaded.booster, encoded.matrix)
        out: list[Scored] = []
        for i in range(n):
            values = encoded.values[i]
            if contribs is not None:
                raw = float(contribs[i].sum())
                explanation = self.explainer.explain(contribs[i], values)
            else:
                assert raws is not None
                raw, explanation = float(raws[i]), None
            probability = sigmoid(raw)
            reasons = check(self.inputs.features, values, encoded.unseen[i], self.bounds)
            out.append(Scored(probability, raw, probability >= threshold, explanation, reasons, values))
        return out


__all__ = ["Encoded", "InlineFeatureError", "Scored", "ServedModel"]
