"""LightGBM scoring without per-call overhead: the C API's single-row fast path, and what a
Booster knows about its inputs (feature order, categorical codes, training ranges).

``Booster.predict`` rebuilds its configuration and validates its input on every call (about
20-400 µs of Python before a 10 µs tree walk). ``LGBM_BoosterPredictForMatSingleRowFast``
prepares that once per model; a request then costs one ctypes call. Batches go through
``Booster.predict`` (the overhead is paid once per batch there).

A model has ``K`` outputs per row: 1 for binary and regression objectives, ``num_class`` for
multi-class ones. LightGBM lays the outputs of one row out class by class: K raw scores,
K blocks of ``n_features + 1`` contributions (the bias last in each block), and one leaf per
tree, where the trees are interleaved by class (tree ``t`` belongs to class ``t % K``).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import lightgbm

PREDICT_RAW = 1  # C_API_PREDICT_RAW_SCORE
PREDICT_LEAF = 2  # C_API_PREDICT_LEAF_INDEX
PREDICT_CONTRIB = 3  # C_API_PREDICT_CONTRIB
_DTYPE_FLOAT64 = 1  # C_API_DTYPE_FLOAT64
DENSE_LIMIT = 4_000_000  # entries (32 MB) of the precomputed (tree, leaf) x feature table
_CATEGORICAL = re.compile(r"^\[categorical_feature: ([0-9,]*)\]$", re.MULTILINE)
_INFOS = re.compile(r"^feature_infos=(.*)$", re.MULTILINE)
_OBJECTIVE = re.compile(r"^objective=(.*)$", re.MULTILINE)
_PER_ITERATION = re.compile(r"^num_tree_per_iteration=(\d+)$", re.MULTILINE)


@dataclass(frozen=True)
class BoosterInputs:
    """The model's features in its column order; categories and training ranges per feature."""

    features: tuple[str, ...]
    categories: dict[str, tuple[str, ...]]  # categorical feature -> categories (code = position)
    ranges: dict[str, tuple[float, float]]  # numeric feature -> (min, max) seen in training
    objective: str = ""  # the model text's objective line, e.g. "binary sigmoid:1", "multiclass num_class:3"
    outputs: int = 1  # raw scores per row (num_tree_per_iteration): K for a multi-class model


# LightGBM objective (as its model text names it) -> (task, link from the raw score to the output)
OBJECTIVES: dict[str, tuple[str, str]] = {
    "binary": ("binary", "sigmoid"),
    "cross_entropy": ("binary", "sigmoid"),
    "multiclass": ("multiclass", "softmax"),
    "multiclassova": ("multiclass", "ova"),
    "regression": ("regression", "identity"),
    "regression_l1": ("regression", "identity"),
    "huber": ("regression", "identity"),
    "fair": ("regression", "identity"),
    "quantile": ("regression", "identity"),
    "mape": ("regression", "identity"),
    "poisson": ("regression", "exp"),
    "gamma": ("regression", "exp"),
    "tweedie": ("regression", "exp"),
}


@dataclass(frozen=True)
class Objective:
    """What a model's objective means for serving: its task, the link to its output, its classes."""

    text: str  # as the model text has it: "binary sigmoid:1", "multiclass num_class:3", "regression sqrt"
    name: str  # the objective's name: "binary", "multiclass", "huber"...
    task: str  # "binary", "multiclass", "regression", or "" when serving cannot use the model
    link: str  # raw score -> output: sigmoid, softmax, ova (a sigmoid per class), identity, exp, square
    num_class: int
    problem: str = ""  # why serving cannot use the model (task "")


def parse_objective(text: str) -> Objective:
    """Read a model text's ``objective=`` value (``binary sigmoid:1``, ``regression sqrt``...)."""
    words = text.split()
    name = words[0] if words else ""
    options = dict(w.partition(":")[::2] for w in words[1:])
    num_class = int(options.get("num_class", "1") or 1)
    task, link = OBJECTIVES.get(name, ("", ""))
    problem = "" if task else f"serving does not know the objective {name or '(none)'!r}"
    if task and float(options.get("sigmoid", "1") or 1) != 1.0:
        task, problem = "", f"objective {text!r}: serving assumes sigmoid:1 (the default)"
    if task and "sqrt" in words:
        # reg_sqrt: the model learns sign(y) * sqrt(|y|) and predicts sign(raw) * raw^2.
        if link != "identity":
            task, problem = "", f"objective {text!r}: sqrt only goes with the L1/L2-family regressions"
        link = "square"
    return Objective(text, name, task, link if task else "", num_class, problem)


def booster_inputs(booster: lightgbm.Booster) -> BoosterInputs:
    """Read feature names, categorical lists and ranges from the model text (no data needed)."""
    text = booster.model_to_string()
    names = tuple(str(n) for n in booster.feature_name())
    found = _CATEGORICAL.search(text)
    cat_index = [int(i) for i in found.group(1).split(",") if i] if found else []
    pandas_cats: list[list[Any]] = list(getattr(booster, "pandas_categorical", None) or [])
    categories: dict[str, tuple[str, ...]] = {}
    if cat_index and len(pandas_cats) == len(cat_index):
        for index, cats in zip(cat_index, pandas_cats, strict=True):
            categories[names[index]] = tuple(str(c) for c in cats)
    elif cat_index:
        # Integer-coded categoricals (no pandas categories): the codes are the categories.
        for index in cat_index:
            categories[names[index]] = ()
    ranges: dict[str, tuple[float, float]] = {}
    infos = _INFOS.search(text)
    if infos:
        for name, info in zip(names, infos.group(1).split(" "), strict=False):
            if name in categories or not (info.startswith("[") and info.endswith("]")):
                continue
            low, _, high = info[1:-1].partition(":")
            try:
                ranges[name] = (float(low), float(high))
            except ValueError:
                continue
    objective = _OBJECTIVE.search(text)
    per_iteration = _PER_ITERATION.search(text)
    return BoosterInputs(
        names,
        categories,
        ranges,
        objective.group(1).strip() if objective else "",
        int(per_iteration.group(1)) if per_iteration else int(booster.num_model_per_iteration()),
    )


class FastScorer:
    """Raw scores, SHAP contributions and leaves of one row through LightGBM's C single-row fast path.

    One FastConfig per prediction type, freed with the scorer. Calls are serialised by a lock
    (LightGBM's fast config holds a per-config buffer); requests run on one event loop thread,
    so the lock is never contended in practice.
    """

    def __init__(self, booster: lightgbm.Booster) -> None:
        from lightgbm import basic

        self._lib: Any = basic._LIB  # type: ignore[attr-defined]
        self._booster = booster  # keeps the handle alive as long as the scorer
        self.n_features = int(booster.num_feature())
        self.n_trees = int(booster.num_trees())
        self.outputs = int(booster.num_model_per_iteration())  # K
        self._contrib_size = self.outputs * (self.n_features + 1)
        self._lock = threading.Lock()
        self._row = np.zeros(self.n_features, dtype=np.float64)
        # One buffer for every kind of output: K raw scores, K * (n_features + 1) contributions, a leaf per tree.
        self._out = np.zeros(max(self._contrib_size, self.n_trees, self.outputs), dtype=np.float64)
        self._row_ptr = self._row.ctypes.data_as(ctypes.c_void_p)
        self._out_ptr = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._out_len = ctypes.c_int64(0)
        self._out_len_ref = ctypes.byref(self._out_len)
        self._fast = self._lib.LGBM_BoosterPredictForMatSingleRowFast
        # The same function called without letting go of the GIL, for the microsecond-long raw-score and
        # leaf predictions: releasing and re-taking the GIL costs more than the call, and while a worker
        # thread runs Python (an online lookup) every release can leave the event loop waiting for it.
        # SHAP contributions take milliseconds: those calls release the GIL.
        try:
            self._fast_holding_gil = ctypes.PyDLL(self._lib._name).LGBM_BoosterPredictForMatSingleRowFast
        except (OSError, AttributeError, TypeError):  # the library cannot be opened again by name
            self._fast_holding_gil = self._fast
        self._handles: dict[int, ctypes.c_void_p] = {}
        for kind in (PREDICT_RAW, PREDICT_LEAF, PREDICT_CONTRIB):
            self._handles[kind] = self._init(kind)

    def _init(self, kind: int) -> ctypes.c_void_p:
        handle = ctypes.c_void_p()
        self._check(
            self._lib.LGBM_BoosterPredictForMatSingleRowFastInit(
                self._booster._handle,
                ctypes.c_int(kind),
                ctypes.c_int(0),
                ctypes.c_int(-1),
                ctypes.c_int(_DTYPE_FLOAT64),
                ctypes.c_int32(self.n_features),
                ctypes.c_char_p(b"num_threads=1"),
                ctypes.byref(handle),
            )
        )
        return handle

    def _check(self, code: int) -> None:
        if code != 0:
            message = self._lib.LGBM_GetLastError().decode("utf-8", "replace")
            raise RuntimeError(f"LightGBM prediction failed: {message}")

    def _run(self, kind: int, row: np.ndarray) -> None:
        self._row[:] = row
        fast = self._fast if kind == PREDICT_CONTRIB else self._fast_holding_gil
        code = fast(self._handles[kind], self._row_ptr, self._out_len_ref, self._out_ptr)
        if code != 0:
            self._check(code)

    def raw(self, row: np.ndarray) -> float:
        """The raw score of one row (a one-output model: binary log-odds, a regression's raw value)."""
        with self._lock:
            self._run(PREDICT_RAW, row)
            return float(self._out[0])

    def raw_scores(self, row: np.ndarray) -> list[float]:
        """The K raw scores of one row, in class order."""
        with self._lock:
            self._run(PREDICT_RAW, row)
            scores: list[float] = self._out[: self.outputs].tolist()
            return scores

    def contributions(self, row: np.ndarray) -> np.ndarray:
        """Per-feature SHAP values of one row, the bias (expected value) last; they sum to the raw score.

        A K-output model gives K such blocks, class by class: ``K * (n_features + 1)`` values.
        """
        with self._lock:
            self._run(PREDICT_CONTRIB, row)
            return self._out[: self._contrib_size].copy()

    def leaves(self, row: np.ndarray) -> np.ndarray:
        """The leaf one row reaches in every tree (LightGBM's own routing: missing values, categories)."""
        with self._lock:
            self._run(PREDICT_LEAF, row)
            return self._out[: self.n_trees].astype(np.int64)

    def close(self) -> None:
        handles, self._handles = self._handles, {}
        for handle in handles.values():
            self._lib.LGBM_FastConfigFree(handle)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter shutdown the library may be gone
            self.close()


class PathAttribution:
    """Per-prediction contributions along each tree's decision path (Saabas), from LightGBM's leaves.

    Every node of a LightGBM tree stores the value the model would output there
    (``internal_value``). Walking from the root to the leaf a row reaches, each split moves the
    output from the node's value to the child's; that change is credited to the split's
    feature. Per tree the changes add up to ``leaf value - root value``, so over all trees the
    contributions plus the bias (the sum of root values) equal the raw score exactly, like SHAP
    values. Unlike SHAP they depend only on the path taken, which makes them cheap: the paths
    are precomputed per leaf, and a prediction costs one native leaf-index call and a gather.

    A K-class model has K trees per iteration, interleaved (tree ``t`` belongs to class
    ``t % K``): class k's contributions and bias come from its own trees only, and add up to
    its raw score. A random forest (``average_output``) averages its trees, and so do these.
    """

    def __init__(self, booster: lightgbm.Booster) -> None:
        dump = booster.dump_model()
        self.n_features = int(booster.num_feature())
        self.outputs = k = int(dump.get("num_tree_per_iteration", booster.num_model_per_iteration()))
        trees = dump["tree_info"]
        # A random forest's output is the average of its iterations, not the sum.
        scale = 1.0 / max(len(trees) // k, 1) if dump.get("average_output") else 1.0
        width = max(int(t["num_leaves"]) for t in trees) if trees else 1
        self.start = np.zeros((len(trees), width), dtype=np.int64)
        self.length = np.zeros((len(trees), width), dtype=np.int64)
        features: list[int] = []
        deltas: list[float] = []
        bias = np.zeros(k, dtype=np.float64)
        for t, tree in enumerate(trees):
            root = tree["tree_structure"]
            bias[t % k] += scale * float(root.get("internal_value", root.get("leaf_value", 0.0)))
            stack: list[tuple[dict[str, Any], list[tuple[int, float]]]] = [(root, [])]
            while stack:
                node, path = stack.pop()
                if "leaf_index" in node or "split_feature" not in node:
                    leaf = int(node.get("leaf_index", 0))
                    self.start[t, leaf] = len(features)
                    self.length[t, leaf] = len(path)
                    features.extend(f for f, _ in path)
                    deltas.extend(d for _, d in path)
                    continue
                value = float(node["internal_value"])
                feature = int(node["split_feature"])
                for side in ("left_child", "right_child"):
                    child = node[side]
                    child_value = float(child["internal_value"] if "internal_value" in child else child["leaf_value"])
                    stack.append((child, [*path, (feature, scale * (child_value - value))]))
        self.bias: float | np.ndarray = float(bias[0]) if k == 1 else bias  # one per class
        self.features = np.asarray(features, dtype=np.int64)
        self.deltas = np.asarray(deltas, dtype=np.float64)
        self._trees = np.arange(len(trees))
        self._width = width
        self._iterations = len(trees) // k
        self._classes = self._trees % k  # the class of every tree
        self._first_rows = self._trees * width  # each tree's first row in the dense table
        # Small enough (the usual case): one dense row of contributions per (tree, leaf), summed by a gather.
        self.dense: np.ndarray | None = None
        if len(trees) * width * (self.n_features + 1) <= DENSE_LIMIT:
            dense = np.zeros((len(trees) * width, self.n_features + 1), dtype=np.float64)
            for t in range(len(trees)):
                for leaf in range(width):
                    a, n = self.start[t, leaf], self.length[t, leaf]
                    np.add.at(dense[t * width + leaf], self.features[a : a + n], self.deltas[a : a + n])
            self.dense = dense

    def contributions(self, leaves: np.ndarray) -> np.ndarray:
        """One row's contributions per feature, the bias last; they sum to the raw score.

        Laid out as LightGBM's ``pred_contrib``: a K-class model gives K blocks of
        ``n_features + 1`` values, class by class.
        """
        k, width = self.outputs, self.n_features + 1
        if self.dense is not None:
            # np.take of precomputed row numbers: the same rows as fancy indexing, gathered faster.
            rows = np.take(self.dense, self._first_rows + leaves, axis=0)
            if k == 1:
                out: np.ndarray = rows.sum(axis=0)
                out[-1] = self.bias
                return out
            blocks: np.ndarray = rows.reshape(self._iterations, k, width).sum(axis=0)
            blocks[:, -1] = self.bias
            return blocks.reshape(-1)
        return self._sparse(leaves)

    def contributions_rows(self, leaves: np.ndarray) -> np.ndarray:
        """Contributions of several rows, shape (n, K * (n_features + 1)), from their leaves (n, trees):
        one gather and one sum for all of them (a service's batch) instead of one per row."""
        n, k, width = len(leaves), self.outputs, self.n_features + 1
        if self.dense is None or not n:
            return np.stack([self.contributions(row) for row in leaves]) if n else np.zeros((0, k * width))
        rows = np.take(self.dense, self._first_rows + leaves, axis=0)  # (n, trees, width)
        if k == 1:
            out: np.ndarray = rows.sum(axis=1)
            out[:, -1] = self.bias
            return out
        blocks: np.ndarray = rows.reshape(n, self._iterations, k, width).sum(axis=1)
        blocks[:, :, -1] = self.bias
        return blocks.reshape(n, -1)

    def _sparse(self, leaves: np.ndarray) -> np.ndarray:
        """One row's contributions without the dense table (a model too large for it)."""
        k, width = self.outputs, self.n_features + 1
        starts = self.start[self._trees, leaves]
        lengths = self.length[self._trees, leaves]
        offsets = np.cumsum(lengths) - lengths
        positions = np.arange(int(lengths.sum())) - np.repeat(offsets - starts, lengths)
        slots = self.features[positions]
        if k > 1:
            slots = slots + np.repeat(self._classes, lengths) * width
        out = np.bincount(slots, weights=self.deltas[positions], minlength=k * width)
        out[width - 1 :: width] = self.bias
        return out


FAST_ROWS = 8  # up to this many rows, one FastScorer call per row beats Booster.predict's fixed cost


def _few(matrix: np.ndarray, fast: FastScorer | None) -> FastScorer | None:
    """``fast``, when ``matrix`` is few rows (a service's batch) to score row by row with it.

    ``Booster.predict`` converts and checks its input and builds a predictor on every call: for
    a handful of rows that costs several times the trees' work (docs/serving.md, Speed);
    large matrices amortise it.
    """
    return fast if fast is not None and 0 < len(matrix) <= FAST_ROWS else None


def batch_leaves(booster: lightgbm.Booster, matrix: np.ndarray, fast: FastScorer | None = None) -> np.ndarray:
    """The leaf of every row in every tree, shape (n, num_trees)."""
    if (scorer := _few(matrix, fast)) is not None:
        return np.stack([scorer.leaves(row) for row in matrix])
    if not len(matrix):  # LightGBM refuses an empty matrix
        return np.zeros((0, int(booster.num_trees())), dtype=np.int64)
    return np.asarray(booster.predict(matrix, pred_leaf=True, num_threads=1), dtype=np.int64).reshape(len(matrix), -1)


def batch_raw(booster: lightgbm.Booster, matrix: np.ndarray, fast: FastScorer | None = None) -> np.ndarray:
    """Raw scores: shape (n,) for a one-output model, (n, K) for a K-class one."""
    k = int(booster.num_model_per_iteration())
    if (scorer := _few(matrix, fast)) is not None:
        scores = scorer.raw if k == 1 else scorer.raw_scores
        return np.array([scores(row) for row in matrix], dtype=np.float64)
    if not len(matrix):
        return np.zeros(0 if k == 1 else (0, k), dtype=np.float64)
    raw = np.asarray(booster.predict(matrix, raw_score=True, num_threads=1), dtype=np.float64)
    return raw.reshape(len(matrix)) if k == 1 else raw.reshape(len(matrix), k)


def batch_contributions(booster: lightgbm.Booster, matrix: np.ndarray, fast: FastScorer | None = None) -> np.ndarray:
    """SHAP contributions, shape (n, K * (n_features + 1)): per class the features' values, then the bias."""
    if (scorer := _few(matrix, fast)) is not None:
        return np.stack([scorer.contributions(row) for row in matrix])
    if not len(matrix):
        width = int(booster.num_model_per_iteration()) * (int(booster.num_feature()) + 1)
        return np.zeros((0, width), dtype=np.float64)
    contribs = np.asarray(booster.predict(matrix, pred_contrib=True, num_threads=1), dtype=np.float64)
    return contribs.reshape(len(matrix), -1)


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)
