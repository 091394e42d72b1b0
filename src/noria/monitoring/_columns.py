"""One column of a reference profile: its summary dataclass and how it is computed.

See :mod:`noria.monitoring.profile` for what is kept and why; the ECDF compression and its
error bounds are computed in :func:`numeric_profile`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from noria.errors import DataError
from noria.monitoring._frames import factorize
from noria.monitoring._kernels import FloatArray, IntArray
from noria.monitoring.config import DriftConfig


class _Column:
    """What the two kinds of column profile share: the missing rate, and equality by their record."""

    count: int
    missing: int

    @property
    def missing_rate(self) -> float:
        total = self.count + self.missing
        return self.missing / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return isinstance(other, type(self)) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class NumericProfile(_Column):
    """One numeric column of the reference data (see the module docstring)."""

    name: str
    count: int
    missing: int
    minimum: float
    maximum: float
    mean: float
    std: float
    edges: FloatArray
    bin_counts: IntArray
    ecdf_values: FloatArray
    ecdf_counts: IntArray
    ks_error_bound: float = 0.0
    wasserstein_error_bound: float = 0.0
    kind: str = field(default="numeric", init=False)

    @property
    def ecdf_exact(self) -> bool:
        return self.ks_error_bound == 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "count": self.count,
            "missing": self.missing,
            "min": _num(self.minimum),
            "max": _num(self.maximum),
            "mean": _num(self.mean),
            "std": _num(self.std),
            "edges": [float(v) for v in self.edges],
            "bin_counts": [int(v) for v in self.bin_counts],
            "ecdf_values": [float(v) for v in self.ecdf_values],
            "ecdf_counts": [int(v) for v in self.ecdf_counts],
            "ks_error_bound": self.ks_error_bound,
            "wasserstein_error_bound": _num(self.wasserstein_error_bound),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NumericProfile:
        return cls(
            name=str(d["name"]),
            count=int(d["count"]),
            missing=int(d["missing"]),
            minimum=_float(d["min"]),
            maximum=_float(d["max"]),
            mean=_float(d["mean"]),
            std=_float(d["std"]),
            edges=np.asarray(d["edges"], dtype=np.float64),
            bin_counts=np.asarray(d["bin_counts"], dtype=np.int64),
            ecdf_values=np.asarray(d["ecdf_values"], dtype=np.float64),
            ecdf_counts=np.asarray(d["ecdf_counts"], dtype=np.int64),
            ks_error_bound=float(d["ks_error_bound"]),
            wasserstein_error_bound=_float(d["wasserstein_error_bound"]),
        )


@dataclass(frozen=True, eq=False)
class CategoricalProfile(_Column):
    """One categorical column: kept categories (most frequent first), their counts, the rest."""

    name: str
    count: int
    missing: int
    categories: tuple[str, ...]
    counts: IntArray
    other: int = 0
    kind: str = field(default="categorical", init=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "count": self.count,
            "missing": self.missing,
            "categories": list(self.categories),
            "counts": [int(v) for v in self.counts],
            "other": self.other,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CategoricalProfile:
        return cls(
            name=str(d["name"]),
            count=int(d["count"]),
            missing=int(d["missing"]),
            categories=tuple(str(c) for c in d["categories"]),
            counts=np.asarray(d["counts"], dtype=np.int64),
            other=int(d["other"]),
        )


FeatureProfile = NumericProfile | CategoricalProfile


def numeric_profile(name: str, values: FloatArray, cfg: DriftConfig, edges: FloatArray | None) -> NumericProfile:
    """Profile one numeric column (``values`` has NaN for missing; ``edges`` overrides quantiles)."""
    x = np.sort(values[~np.isnan(values)])
    n = int(x.shape[0])
    missing = int(values.shape[0] - n)
    if n == 0:
        nan = float("nan")
        empty_f, empty_i = np.empty(0), np.empty(0, dtype=np.int64)
        return NumericProfile(name, 0, missing, nan, nan, nan, nan, empty_f, np.zeros(1, np.int64), empty_f, empty_i)
    if edges is None:
        # observed values as edges: readable, and no interpolation between huge values to overflow
        edges = np.unique(np.quantile(x, np.arange(1, cfg.bins) / cfg.bins, method="inverted_cdf"))
    elif not (np.all(np.isfinite(edges)) and np.all(np.diff(edges) > 0)):
        raise DataError(
            f"bin_edges for {name!r} must be finite and strictly increasing, got {list(edges)!r}",
            fix="give the interior bin edges in increasing order",
        )
    below = np.searchsorted(x, edges, side="left")
    bin_counts = np.diff(np.concatenate([[0], below, [n]])).astype(np.int64)
    uniq, first = np.unique(x, return_index=True)
    cum = np.append(first[1:], n).astype(np.int64)  # values <= each distinct value
    ks_bound, w_bound = 0.0, 0.0
    if uniq.shape[0] > cfg.ecdf_points:
        ranks = np.ceil(np.arange(1, cfg.ecdf_points + 1) * n / cfg.ecdf_points).astype(np.int64) - 1
        keep = np.unique(np.concatenate([[0], np.searchsorted(uniq, x[ranks])]))
        between = cum[keep[1:] - 1] - cum[keep[:-1]]  # values strictly between two kept points
        ks_bound = float(between.max() / n)
        with np.errstate(over="ignore"):
            w_bound = float(np.sum(between / n * np.diff(uniq[keep])))
        uniq, cum = uniq[keep], cum[keep]
    mean, std = _moments(x)
    return NumericProfile(
        name=name,
        count=n,
        missing=missing,
        minimum=float(x[0]),
        maximum=float(x[-1]),
        mean=mean,
        std=std,
        edges=edges.astype(np.float64),
        bin_counts=bin_counts,
        ecdf_values=uniq.astype(np.float64),
        ecdf_counts=cum,
        ks_error_bound=ks_bound,
        wasserstein_error_bound=w_bound,
    )


def categorical_profile(name: str, series: pd.Series[Any], max_categories: int) -> CategoricalProfile:
    """Profile one categorical column: counts per label, most frequent first, then the rest."""
    codes, labels = factorize(series)
    present = codes >= 0
    per_code = np.bincount(codes[present], minlength=len(labels))
    counts: dict[str, int] = {}
    for label, count in zip(labels, per_code.tolist(), strict=True):
        counts[label] = counts.get(label, 0) + count
    # most frequent first; ties broken by the label so that the profile is deterministic
    order = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = order[:max_categories]
    return CategoricalProfile(
        name=name,
        count=int(present.sum()),
        missing=int(codes.shape[0] - present.sum()),
        categories=tuple(c for c, _ in kept),
        counts=np.asarray([c for _, c in kept], dtype=np.int64),
        other=int(sum(c for _, c in order[max_categories:])),
    )


def _moments(x: FloatArray) -> tuple[float, float]:
    """Mean and (population) std; rescaled when values near the float limit overflow the sums."""
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std = float(np.mean(x)), float(np.std(x))
        if not (np.isfinite(mean) and np.isfinite(std)):
            scale = float(np.max(np.abs(x)))
            mean, std = float(np.mean(x / scale)) * scale, float(np.std(x / scale)) * scale
    return mean, std


def _num(v: float) -> float | str | None:
    """A float for JSON: NaN as null, infinities as the strings "inf" / "-inf"."""
    if np.isnan(v):
        return None
    return float(v) if np.isfinite(v) else ("inf" if v > 0 else "-inf")


def _float(v: float | str | None) -> float:
    return float("nan") if v is None else float(v)


__all__ = ["CategoricalProfile", "FeatureProfile", "NumericProfile", "categorical_profile", "numeric_profile"]
