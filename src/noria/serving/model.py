"""One model version ready to answer: fixed feature order, category codes, scorer, explainer, bounds.

A :class:`ServedModel` is immutable once built. The model holder swaps whole objects, so a
request that picked one keeps using it to the end even if the alias moves meanwhile.

It answers in the terms of the project's task (:mod:`noria.tasks`), and refuses to build for a
model trained for another one: a binary model gives a probability and a decision, a
multi-class one K probabilities (softmax of its K raw scores) and the most probable class, a
regression one its prediction (the raw score, or ``exp`` of it for poisson/gamma/tweedie
objectives, ``sign(r) r^2`` with ``reg_sqrt``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np

from noria.errors import ValidationError
from noria.serving._lgbm import (
    BoosterInputs,
    FastScorer,
    Objective,
    PathAttribution,
    batch_contributions,
    batch_leaves,
    batch_raw,
    booster_inputs,
    parse_objective,
    sigmoid,
)
from noria.serving.config import FeatureText
from noria.serving.explain import (
    Explainer,
    batch_class_probabilities,
    class_probabilities,
    link_output,
    ova_contributions,
)
from noria.serving.ood import Bounds, check
from noria.serving.sources import LoadedVersion, LookedUp
from noria.tasks import BinaryTask, Task

MISSING = math.nan


class InlineFeatureError(ValidationError):
    """A feature given inline is unknown to the model or has the wrong type."""


class ModelTaskError(ValidationError):
    """The model was trained for another task (or another set of classes) than the project's."""


def check_objective(objective: Objective, task: Task, model: str) -> None:
    """Refuse a model whose objective does not fit ``task`` (or that serving cannot convert)."""
    wanted = {"binary": "binary", "multiclass": "multiclass num_class:K", "regression": "regression"}
    if not objective.task:
        raise ModelTaskError(
            f"{model} cannot be served: {objective.problem}",
            fix=f"train it for the project's task ({task.name}: objective {wanted.get(task.name, task.name)})",
        )
    if objective.task != task.name:
        raise ModelTaskError(
            f"{model} was trained with objective {objective.text!r}, a {objective.task} model, "
            f"but the project's task is {task.name}",
            fix=f"serve a {task.name} model (objective {wanted.get(task.name, task.name)}), "
            f"or set model.task to {objective.task} in noria.yaml",
        )
    if task.name == "multiclass" and objective.num_class != len(task.classes):
        shown = ", ".join(task.classes) or "none"
        raise ModelTaskError(
            f"{model} has {objective.num_class} classes (objective {objective.text!r}), "
            f"but model.target.classes lists {len(task.classes)} ({shown})",
            fix="list the model's classes, in training order, under model.target.classes, or retrain",
        )


@dataclass
class Encoded:
    """Model inputs of a batch of rows: the float matrix, values as sent, unseen categories per row."""

    matrix: np.ndarray
    values: list[list[Any]]
    unseen: list[dict[int, str]]


@dataclass
class Scored:
    """Everything about one scored row that the response and the log need, in the task's terms.

    ``score`` is the one number per row: a binary model's probability of the positive class, a
    multi-class model's probability of its predicted class, a regression model's prediction.
    """

    score: float
    probability: float | None  # binary: P(positive); multiclass: P(predicted class)
    raw: float | None  # the raw score (binary log-odds, regression value); None for multiclass
    decision: bool | None  # binary: probability >= threshold
    label: str | None  # multiclass: the predicted class
    probabilities: list[float] | None  # multiclass: one per class, in the order of model.target.classes
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
    task: Task = field(default_factory=BinaryTask)
    link: str = "sigmoid"  # raw score -> output (see _lgbm.OBJECTIVES)
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
        task: Task | None = None,
        descriptions: Mapping[str, str] | None = None,
        texts: Mapping[str, FeatureText] | None = None,
        top: int = 3,
        method: str = "shap",
    ) -> ServedModel:
        """Prepare ``loaded`` to serve ``task`` (default binary); a model of another task is refused."""
        task = task if task is not None else BinaryTask()
        inputs = booster_inputs(loaded.booster)
        objective = parse_objective(inputs.objective)
        check_objective(objective, task, f"model {loaded.ref.name} version {loaded.ref.version}")
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
            explainer=Explainer.build(
                inputs.features, words, dict(texts or {}), top, target=task.label_name, unit=task.unit
            ),
            bounds=bounds,
            codes=codes,
            task=task,
            link=objective.link,
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
        """Score, explanation and out-of-distribution reasons for every row, in the task's terms.

        ``threshold`` makes a binary model's decision (the other tasks ignore it).
        """
        if self.link != "sigmoid":
            if self.task.name == "multiclass":
                return self._score_classes(encoded, explain)
            return self._score_values(encoded, explain)
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
            contribs = paths.contributions_rows(batch_leaves(self.loaded.booster, encoded.matrix, self.scorer))
        elif explain:
            contribs = batch_contributions(self.loaded.booster, encoded.matrix, self.scorer)
        else:
            raws = batch_raw(self.loaded.booster, encoded.matrix, self.scorer)
        out: list[Scored] = []
        # The raw scores as Python floats, all at once: the contributions' row sums (or LightGBM's).
        totals: list[float] = (contribs.sum(axis=1) if contribs is not None else cast(np.ndarray, raws)).tolist()
        explanations = self.explainer.explain_rows(contribs, encoded.values) if contribs is not None else None
        for i in range(n):
            values = encoded.values[i]
            raw = totals[i]
            explanation = explanations[i] if explanations is not None else None
            probability = sigmoid(raw)
            reasons = check(self.inputs.features, values, encoded.unseen[i], self.bounds)
            out.append(
                Scored(
                    probability, probability, raw, probability >= threshold, None, None, explanation, reasons, values
                )
            )
        return out

    def _contributions(self, matrix: np.ndarray) -> np.ndarray:
        """(n, K * (F + 1)) contributions of the rows, by the configured method."""
        n = matrix.shape[0]
        paths = self.paths
        if paths is None:
            if n == 1:
                return self.scorer.contributions(matrix[0])[None, :]
            return batch_contributions(self.loaded.booster, matrix, self.scorer)
        if n == 1:
            return paths.contributions(self.scorer.leaves(matrix[0]))[None, :]
        return paths.contributions_rows(batch_leaves(self.loaded.booster, matrix, self.scorer))

    def _score_classes(self, encoded: Encoded, explain: bool) -> list[Scored]:
        """Multi-class: K probabilities (class order), the most probable class, its probability."""
        n = encoded.matrix.shape[0]
        classes, ova, k = self.task.classes, self.link == "ova", self.scorer.outputs
        features, bounds, explainer = self.inputs.features, self.bounds, self.explainer
        blocks: np.ndarray | None = None
        probabilities: list[list[float]]
        if explain:
            blocks = self._contributions(encoded.matrix).reshape(n, k, self.scorer.n_features + 1)
            if ova and n:  # contributions to log sigmoid(z_j), whose softmax is the normalised sigmoids
                blocks = np.stack([ova_contributions(blocks[i]) for i in range(n)])
            if n == 1:  # plain floats: cheaper than numpy for K values
                probabilities = [class_probabilities(blocks[0].sum(axis=1).tolist())]
            else:
                probabilities = batch_class_probabilities(blocks.sum(axis=2)).tolist()
        elif n == 1:
            probabilities = [class_probabilities(self.scorer.raw_scores(encoded.matrix[0]), ova)]
        else:
            probabilities = batch_class_probabilities(
                batch_raw(self.loaded.booster, encoded.matrix, self.scorer), ova
            ).tolist()
        out: list[Scored] = []
        for i in range(n):
            values, p = encoded.values[i], probabilities[i]
            best = max(range(k), key=p.__getitem__)
            label = classes[best]
            explanation = explainer.explain_class(blocks[i], values, best, label) if blocks is not None else None
            reasons = check(features, values, encoded.unseen[i], bounds)
            out.append(Scored(p[best], p[best], None, None, label, p, explanation, reasons, values))
        return out

    def _score_values(self, encoded: Encoded, explain: bool) -> list[Scored]:
        """Regression: the prediction (``raw`` keeps the raw score: the same number unless a link applies)."""
        n = encoded.matrix.shape[0]
        link, features, bounds, explainer = self.link, self.inputs.features, self.bounds, self.explainer
        out: list[Scored] = []
        if explain:
            contribs = self._contributions(encoded.matrix)
            for i in range(n):
                values = encoded.values[i]
                raw = float(contribs[i].sum())
                explanation = explainer.explain_amount(contribs[i], values, link)
                reasons = check(features, values, encoded.unseen[i], bounds)
                out.append(Scored(link_output(raw, link), None, raw, None, None, None, explanation, reasons, values))
            return out
        if n == 1:
            raws = [self.scorer.raw(encoded.matrix[0])]
        else:
            raws = batch_raw(self.loaded.booster, encoded.matrix, self.scorer).tolist()
        for i in range(n):
            values, raw = encoded.values[i], raws[i]
            reasons = check(features, values, encoded.unseen[i], bounds)
            out.append(Scored(link_output(raw, link), None, raw, None, None, None, None, reasons, values))
        return out


__all__ = ["Encoded", "InlineFeatureError", "ModelTaskError", "Scored", "ServedModel", "check_objective"]
