"""Reference profiles: what drift checks compare a window with, stored with the model version.

A profile is built once, at training time, from the training frame (and the model's scores on
it); drift checks read only the profile, never the training data again. Per feature it keeps:

- numeric: count, missing count, min/max/mean/std, quantile bin edges and bin counts (for PSI),
  and a compressed empirical distribution (ECDF points, for Kolmogorov-Smirnov and Wasserstein);
- categorical: the ``max_categories`` most frequent values with their counts, an ``other``
  count for the rest, and the missing count.

The ECDF keeps every distinct value when there are at most ``ecdf_points`` of them: KS and
Wasserstein are then exactly those of the raw data. Otherwise it keeps the values at
``ecdf_points`` evenly spaced ranks, each with its exact cumulative count; the reference ECDF
is then known exactly at those points and, between two of them, is off by at most the share of
values strictly between them. The largest such share is stored as ``ks_error_bound`` (the
most the KS statistic can be off, at most about ``1 / ecdf_points``), and its integral as
``wasserstein_error_bound`` (in data units). Both are 0 for an exact ECDF.

Profiles are JSON (no pickle), written atomically, with a schema name and version.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from noria import atomic
from noria.errors import DataError, NotFoundError
from noria.monitoring._columns import (
    CategoricalProfile,
    FeatureProfile,
    NumericProfile,
    categorical_profile,
    numeric_profile,
)
from noria.monitoring._frames import column_kinds, numbers_of
from noria.monitoring.config import DriftConfig

SCHEMA = "noria.reference-profile"
SCHEMA_VERSION = 1
SCORE = "score"


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """Profiles of every feature (in frame order), of the model score, and feature importance."""

    features: dict[str, FeatureProfile]
    score: NumericProfile | None = None
    importance: dict[str, float] = field(default_factory=dict)
    rows: int = 0
    settings: dict[str, int] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    created_at: str = ""

    @classmethod
    def build(
        cls,
        frame: pd.DataFrame,
        *,
        scores: npt.ArrayLike | None = None,
        importance: Mapping[str, float] | None = None,
        config: DriftConfig | None = None,
        categorical: Iterable[str] = (),
        bin_edges: Mapping[str, Sequence[float]] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ReferenceProfile:
        """Profile ``frame`` (the training features) and ``scores`` (the model's outputs on it).

        ``scores`` is the one number per row the service logs as ``score``: a binary model's
        probability, a regression model's value. An (n, K) matrix of a multi-class model's class
        probabilities is profiled as each row's largest one, the probability of the predicted class.
        Numeric dtypes are numeric features, everything else (strings, categories, booleans) is
        categorical; ``categorical`` forces numeric columns to be categorical (e.g. codes).
        ``bin_edges`` replaces the quantile edges of a column with given interior edges.
        """
        cfg = config or DriftConfig()
        if frame.shape[0] == 0:
            raise DataError("cannot build a reference profile from an empty frame", fix="pass the training frame")
        kinds = column_kinds(frame, set(categorical))
        edges_given = dict(bin_edges or {})
        unknown = sorted(set(edges_given) - {c for c, k in kinds.items() if k == "numeric"})
        if unknown:
            raise DataError(
                f"bin_edges given for {', '.join(unknown)}, which are not numeric features of the frame",
                fix="give bin edges only for numeric columns of the frame",
            )
        features: dict[str, FeatureProfile] = {}
        for name, kind in kinds.items():
            if kind == "numeric":
                edges = edges_given.get(name)
                given = None if edges is None else np.asarray(edges, dtype=np.float64)
                features[name] = numeric_profile(name, numbers_of(frame[name]), cfg, given)
            else:
                features[name] = categorical_profile(name, frame[name], cfg.max_categories)
        score = None
        if scores is not None:
            values = np.asarray(scores, dtype=np.float64)
            if values.ndim == 2 and values.shape[0] == frame.shape[0] and values.shape[1] > 1:
                values = values.max(axis=1)  # class probabilities: that of the predicted class
            if values.shape != (frame.shape[0],):
                raise DataError(
                    f"scores has shape {values.shape}, expected ({frame.shape[0]},): one score per row",
                    fix="pass the model's scores on the same frame: one per row, or one row of class probabilities",
                )
            score = numeric_profile(SCORE, np.where(np.isfinite(values), values, np.nan), cfg, None)
        return cls(
            features=features,
            score=score,
            importance=_check_importance(importance or {}, features),
            rows=int(frame.shape[0]),
            settings={"bins": cfg.bins, "ecdf_points": cfg.ecdf_points, "max_categories": cfg.max_categories},
            metadata=dict(metadata or {}),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "created_at": self.created_at,
            "rows": self.rows,
            "settings": dict(self.settings),
            "metadata": dict(self.metadata),
            "importance": dict(self.importance),
            "features": [f.to_dict() for f in self.features.values()],
            "score": self.score.to_dict() if self.score is not None else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "profile") -> ReferenceProfile:
        if d.get("schema") != SCHEMA:
            raise DataError(
                f"{source} is not a Noria reference profile (schema {d.get('schema')!r}, expected {SCHEMA!r})",
                fix="pass a profile written by ReferenceProfile.save",
            )
        if d.get("schema_version") != SCHEMA_VERSION:
            raise DataError(
                f"{source} has profile schema version {d.get('schema_version')!r}; "
                f"this Noria reads version {SCHEMA_VERSION}",
                fix="rebuild the profile from the training data with this version of Noria",
            )
        try:
            features: dict[str, FeatureProfile] = {}
            for f in d["features"]:
                features[f["name"]] = (
                    NumericProfile.from_dict(f) if f["kind"] == "numeric" else CategoricalProfile.from_dict(f)
                )
            score = NumericProfile.from_dict(d["score"]) if d.get("score") is not None else None
            return cls(
                features=features,
                score=score,
                importance={str(k): float(v) for k, v in d["importance"].items()},
                rows=int(d["rows"]),
                settings={str(k): int(v) for k, v in d["settings"].items()},
                metadata={str(k): str(v) for k, v in d["metadata"].items()},
                created_at=str(d["created_at"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"{source} is damaged: {type(exc).__name__}: {exc}",
                fix="rebuild the profile from the training data",
            ) from None

    def save(self, path: str | Path) -> Path:
        """Write the profile as JSON, atomically (temp file in the same folder, then rename)."""
        return atomic.write_text(Path(path), json.dumps(self.to_dict(), allow_nan=False, separators=(",", ":")))

    @classmethod
    def load(cls, path: str | Path) -> ReferenceProfile:
        source = Path(path)
        try:
            text = source.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise NotFoundError(
                f"no reference profile at {source}",
                fix="check the path, or build one with ReferenceProfile.build",
            ) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{source} is not valid JSON: {exc}", fix="rebuild the profile") from None
        if not isinstance(data, dict):
            raise DataError(f"{source} is not a Noria reference profile", fix="pass a profile file")
        return cls.from_dict(data, source=str(source))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReferenceProfile) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


def _check_importance(importance: Mapping[str, float], features: Mapping[str, FeatureProfile]) -> dict[str, float]:
    unknown = sorted(set(importance) - set(features))
    if unknown:
        raise DataError(
            f"importance names {', '.join(map(repr, unknown))}, which are not columns of the frame",
            fix="give importance only for the frame's feature columns",
        )
    out = {str(k): float(v) for k, v in importance.items()}
    bad = sorted(k for k, v in out.items() if not (np.isfinite(v) and v >= 0))
    if bad:
        raise DataError(
            f"importance of {', '.join(map(repr, bad))} is negative or not a number",
            fix="pass non-negative importances (e.g. LightGBM gain)",
        )
    return out


__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "CategoricalProfile",
    "FeatureProfile",
    "NumericProfile",
    "ReferenceProfile",
]
