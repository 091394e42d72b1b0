"""Drift of a window against a reference profile: statistics, verdicts, alerts.

For every feature of the profile, and for the model score when the profile has one:

- numeric: PSI on the profile's quantile bins, the two-sample Kolmogorov-Smirnov statistic and
  p-value, the Wasserstein distance divided by the reference std (Evidently's "normed" variant),
  and the Jensen-Shannon distance on the bins;
- categorical: PSI and Jensen-Shannon distance on the categories, and the chi-square test of
  the window's counts against the reference shares. A value the reference never had gets a
  cell of its own; when the profile kept only the most frequent categories, values outside
  them share its "other" cell.

All columns of a kind are computed together (see :mod:`noria.monitoring._kernels`): one sort of
the window's numeric matrix, one vectorised search, one factorisation of all categorical values.

PSI smoothing: an empty cell (a bin or category with no values on one side) gets the share
1e-4, or a millionth of the smallest non-empty share if that is below 1e-4 (Evidently's rule).
Cells empty on both sides are left out: they say nothing about drift.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from noria.errors import DataError, NotFoundError, SourceError
from noria.monitoring import _kernels as kernels
from noria.monitoring._frames import factorize, numbers_matrix
from noria.monitoring._kernels import IntArray
from noria.monitoring._ks import ks_pvalues
from noria.monitoring.config import DriftConfig
from noria.monitoring.profile import SCORE, CategoricalProfile, NumericProfile, ReferenceProfile

Verdict = Literal["ok", "warn", "drift"]
_LEVEL: dict[Verdict, int] = {"ok": 0, "warn": 1, "drift": 2}


@dataclass(frozen=True)
class FeatureDrift:
    """Drift of one feature (or of the score). NaN marks a statistic that does not apply."""

    name: str
    kind: str
    verdict: Verdict
    alert: bool
    importance: float | None
    rows: int
    missing_reference: float
    missing_current: float
    psi: float
    test: str
    statistic: float
    p_value: float
    wasserstein: float
    jensen_shannon: float
    error_bound: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types: NaN (does not apply) becomes null, infinity the string "inf"."""
        return {k: (_json_float(v) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class DriftReport:
    """Per-feature drift of one window; ``alerts`` are the features someone should look at."""

    features: tuple[FeatureDrift, ...]
    score: FeatureDrift | None
    rows: int
    reference_rows: int
    config: DriftConfig
    sampled_from: int | None = None  # the rows of the file when ``rows`` is a sample of them

    @property
    def drifted(self) -> list[str]:
        return [f.name for f in self.all if f.verdict == "drift"]

    @property
    def alerts(self) -> list[str]:
        return [f.name for f in self.all if f.alert]

    @property
    def all(self) -> list[FeatureDrift]:
        return [*self.features, *([self.score] if self.score is not None else [])]

    @property
    def drift_share(self) -> float:
        """Share of features (not counting the score) whose verdict is drift."""
        return sum(f.verdict == "drift" for f in self.features) / len(self.features) if self.features else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "sampled_from": self.sampled_from,
            "reference_rows": self.reference_rows,
            "drift_share": self.drift_share,
            "drifted": self.drifted,
            "alerts": self.alerts,
            "features": [f.to_dict() for f in self.features],
            "score": self.score.to_dict() if self.score is not None else None,
            "config": self.config.model_dump(),
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per feature (and the score last), in profile order."""
        return pd.DataFrame([asdict(f) for f in self.all]).set_index("name")


def compute_drift(
    profile: ReferenceProfile,
    frame: pd.DataFrame,
    config: DriftConfig | None = None,
    *,
    scores: npt.ArrayLike | None = None,
    score_column: str = SCORE,
) -> DriftReport:
    """Compare ``frame`` (a window of inputs) with ``profile``.

    The score is checked when the profile has one and either ``scores`` is given or ``frame``
    has a ``score_column`` that is not a feature. Extra columns of ``frame`` are ignored.
    """
    cfg = config or DriftConfig()
    absent = [name for name in profile.features if name not in frame.columns]
    if absent:
        raise DataError(
            f"the window lacks {len(absent)} feature(s) of the reference profile: {', '.join(absent[:10])}",
            fix="pass a frame with every feature the profile was built on (or rebuild the profile)",
        )
    numeric = [p for p in profile.features.values() if isinstance(p, NumericProfile)]
    categorical = [p for p in profile.features.values() if isinstance(p, CategoricalProfile)]
    score = _score_values(profile, frame, scores, score_column)
    with_score = score is not None and profile.score is not None
    matrix = numbers_matrix(frame, [p.name for p in numeric], score if with_score else None)
    if with_score:
        assert profile.score is not None
        numeric_stats = _numeric_stats([*numeric, profile.score], matrix)
        score_stats = numeric_stats.pop()
    else:
        numeric_stats, score_stats = _numeric_stats(numeric, matrix), None
    stats = dict(zip([p.name for p in numeric], numeric_stats, strict=True))
    stats.update(zip([p.name for p in categorical], _categorical_stats(categorical, frame), strict=True))
    shares = _importance_shares(profile)
    features = []
    for name, p in profile.features.items():
        share = None if shares is None else shares.get(name, 0.0)
        important = share is None or share >= cfg.min_importance
        features.append(_judge(p, stats[name], cfg, share, important))
    score_result = None
    if score_stats is not None and profile.score is not None:
        score_result = _judge(profile.score, score_stats, cfg, None, cfg.alert_on_score, kind="score")
    return DriftReport(
        features=tuple(features),
        score=score_result,
        rows=int(frame.shape[0]),
        reference_rows=profile.rows,
        config=cfg,
    )


def check_drift(profile_path: str | Path, data_path: str | Path, config: DriftConfig | None = None) -> DriftReport:
    """Load a profile (JSON) and a window (Parquet file or folder) and compare them: what
    ``noria monitor drift`` runs. A window of more than ``config.max_rows`` rows is judged on a
    seeded uniform sample of that many (:func:`read_sample`)."""
    import dataclasses

    cfg = config or DriftConfig()
    profile = ReferenceProfile.load(profile_path)
    path = Path(data_path)
    if not path.exists():
        raise NotFoundError(f"no data file at {path}", fix="pass a Parquet file of the window to check")
    columns = [*profile.features, SCORE]
    try:
        frame, total = read_sample(path, columns, cfg.max_rows)
    except (OSError, ValueError) as exc:  # pyarrow's errors are OSError or ArrowInvalid (a ValueError)
        raise SourceError(f"cannot read {path} as Parquet: {exc}", fix="pass a Parquet file") from None
    report = compute_drift(profile, frame, cfg)
    return dataclasses.replace(report, sampled_from=total) if total > len(frame) else report


def read_sample(
    path: Path, columns: list[str], limit: int, seed: int = 0, batch_rows: int | None = None
) -> tuple[pd.DataFrame, int]:
    """The ``columns`` (those present) of a Parquet file or folder, or a seeded uniform sample of
    ``limit`` of its rows when it holds more; and how many rows it holds.

    Selection sampling, batch by batch: knowing the file's row count, each batch's share of the
    sample is drawn from the hypergeometric distribution (how many of the rows still needed fall
    among its rows, when every set of ``limit`` rows is equally likely), then that many of its rows
    are picked uniformly. Uniform without replacement, in file order, and only the chosen rows are
    kept: at most ``limit`` rows plus one batch in memory whatever the file's size, and no table
    is copied again per batch (a bottom-k sample re-took all kept rows every batch, and the Arrow memory
    it held grew with the number of batches)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    from noria.data.scan import parquet_batches

    data = ds.dataset(str(path), format="parquet")
    present = [c for c in columns if c in data.schema.names]
    total = data.count_rows()
    if total <= limit:
        return data.to_table(columns=present).to_pandas(), total
    rng = np.random.default_rng(seed)
    pool = pa.default_memory_pool()
    pieces: list[pa.Table] = []
    remaining, needed = total, limit
    for batch in parquet_batches(data.files, present, batch_rows or max(limit // 4, 65_536)):
        rows = batch.num_rows
        if needed and rows:
            count = int(rng.hypergeometric(rows, remaining - rows, needed)) if remaining > rows else needed
            if count:
                chosen = np.sort(rng.choice(rows, size=count, replace=False))
                pieces.append(pa.Table.from_batches([batch.take(pa.array(chosen))]))
                needed -= count
        remaining -= rows
        pool.release_unused()  # the batch's buffers go back to the system now, not after the allocator's decay
    frame = pa.concat_tables(pieces).to_pandas()
    del pieces
    pool.release_unused()
    return frame, total


# --- statistics --------------------------------------------------------------------------


def _numeric_stats(profiles: Sequence[NumericProfile], matrix: kernels.FloatArray) -> list[dict[str, float]]:
    """PSI, Jensen-Shannon, KS and Wasserstein of every numeric column, all columns at once.

    One sort of the (columns x rows) matrix, in place (it is the caller's scratch), reduced to each
    column's distinct values with their cumulative counts; every statistic then works on those
    and on the profile's points.
    """
    k = len(profiles)
    if k == 0:
        return []
    matrix.sort(axis=1)  # NaN last
    cur = kernels.Ecdf.from_sorted(matrix)
    ptr = np.concatenate([[0], np.cumsum([p.ecdf_values.shape[0] for p in profiles])]).astype(np.int64)
    ref = kernels.Ecdf.from_points(
        np.concatenate([p.ecdf_values for p in profiles]),
        np.concatenate([p.ecdf_counts for p in profiles]),
        ptr,
        np.array([p.count for p in profiles], dtype=np.int64),
    )
    # PSI and Jensen-Shannon on the profile's bins [e[i-1], e[i]), with -inf/+inf ends
    n_edges = np.array([p.edges.shape[0] for p in profiles], dtype=np.int64)
    width = int(n_edges.max())
    edges = np.full((k, width), np.inf)  # padding edges: +inf, below which lie all n values
    edges[np.arange(width)[None, :] < n_edges[:, None]] = np.concatenate([p.edges for p in profiles])
    rows = np.repeat(np.arange(k, dtype=np.int64), width)
    below = cur.count(rows, edges.ravel(), "left").reshape(k, width)
    bins = np.diff(np.hstack([np.zeros((k, 1), np.int64), below, cur.n[:, None]]), axis=1)
    cur_cells = bins[np.arange(width + 1)[None, :] <= n_edges[:, None]].astype(np.float64)
    seg = np.repeat(np.arange(k, dtype=np.int64), n_edges + 1)
    ref_cells = np.concatenate([p.bin_counts for p in profiles]).astype(np.float64)
    seen = (ref_cells > 0) | (cur_cells > 0)
    psi = kernels.psi(ref_cells[seen], cur_cells[seen], seg[seen], k)
    js = kernels.jensen_shannon(ref_cells[seen], cur_cells[seen], seg[seen], k)
    # KS and Wasserstein on the two ECDFs
    d, p_value = ks_pvalues(kernels.ks_statistic(ref, cur), ref.n, cur.n)
    std = np.array([p.std for p in profiles])
    w = kernels.wasserstein(ref, cur) / np.maximum(std, kernels.STD_FLOOR)
    rows = matrix.shape[1]
    return [
        {
            "rows": float(cur.n[i]),
            "missing": float(rows - cur.n[i]) / rows if rows else 0.0,
            "psi": float(psi[i]),
            "statistic": float(d[i]),
            "p_value": float(p_value[i]),
            "wasserstein": float(w[i]),
            "jensen_shannon": float(js[i]),
            "error_bound": p.ks_error_bound,
        }
        for i, p in enumerate(profiles)
    ]


def _categorical_stats(profiles: Sequence[CategoricalProfile], frame: pd.DataFrame) -> list[dict[str, float]]:
    """Chi-square, PSI and Jensen-Shannon of every categorical column, counted in one pass.

    Each column is factorised on its own (its vocabulary is its own); a lookup from every
    (column, code) to a cell then feeds one ``bincount`` for all columns. Cells: the profile's
    categories, then its "other" cell when the profile dropped rare categories, else one cell
    per value never seen in the reference (as Evidently counts them).
    """
    k, n = len(profiles), frame.shape[0]
    if k == 0:
        return []
    ref_cells = [np.append(p.counts, p.other) for p in profiles]
    cell_ptr = np.concatenate([[0], np.cumsum([c.shape[0] for c in ref_cells])]).astype(np.int64)
    lookups: list[IntArray] = []
    codes: list[IntArray] = []
    extra_seg: list[IntArray] = []
    offset, next_cell = 0, int(cell_ptr[-1])
    for j, p in enumerate(profiles):  # one vectorised factorisation per column
        col_codes, labels = factorize(frame[p.name])
        known = pd.Index(p.categories).get_indexer(pd.Index(labels, dtype=object)) if labels else np.empty(0, int)
        cells = np.where(known >= 0, cell_ptr[j] + known, cell_ptr[j + 1] - 1)
        unseen = np.flatnonzero(known < 0)
        if p.other == 0 and unseen.size:  # a cell per new label (labels printing alike share one)
            group, distinct = pd.factorize(np.asarray(labels, dtype=object)[unseen])
            cells[unseen] = next_cell + group
            next_cell += len(distinct)
            extra_seg.append(np.full(len(distinct), j, dtype=np.int64))
        lookups.append(np.append(cells, -1))  # the last slot takes missing values (code -1)
        codes.append(np.where(col_codes >= 0, col_codes, len(labels)) + offset)
        offset += len(labels) + 1
    lookup = np.concatenate(lookups)
    per_code = np.bincount(np.concatenate(codes), minlength=offset)
    is_missing = lookup < 0
    missing = per_code[is_missing]
    cur_cells = np.bincount(lookup[~is_missing], weights=per_code[~is_missing], minlength=next_cell).astype(np.float64)
    extra = np.concatenate(extra_seg) if extra_seg else np.empty(0, dtype=np.int64)
    ref_all = np.concatenate([*ref_cells, np.zeros(extra.shape[0], dtype=np.int64)]).astype(np.float64)
    seg = np.concatenate([kernels.segment_ids(cell_ptr), extra])
    seen = (ref_all > 0) | (cur_cells > 0)
    ref_s, cur_s, seg_s = ref_all[seen], cur_cells[seen], seg[seen]
    psi = kernels.psi(ref_s, cur_s, seg_s, k)
    js = kernels.jensen_shannon(ref_s, cur_s, seg_s, k)
    chi2, p_value = kernels.chi_square(ref_s, cur_s, seg_s, k)
    return [
        {
            "rows": float(n - missing[i]),
            "missing": float(missing[i]) / n if n else 0.0,
            "psi": float(psi[i]),
            "statistic": float(chi2[i]),
            "p_value": float(p_value[i]),
            "wasserstein": float("nan"),
            "jensen_shannon": float(js[i]),
            "error_bound": 0.0 if p.other == 0 else float("nan"),
        }
        for i, p in enumerate(profiles)
    ]


def _json_float(v: float) -> float | str | None:
    if math.isnan(v):
        return None
    return v if math.isfinite(v) else ("inf" if v > 0 else "-inf")


# --- verdicts ------------------------------------------------------------------------------


def _judge(
    p: NumericProfile | CategoricalProfile,
    s: dict[str, float],
    cfg: DriftConfig,
    share: float | None,
    important: bool,
    kind: str | None = None,
) -> FeatureDrift:
    """The verdict: PSI sets the level if the test agrees; a rise of the missing rate counts too."""
    reasons: list[str] = []
    level: Verdict = "ok"
    if p.count == 0:
        reasons.append("no values in the reference")
    elif s["rows"] == 0:
        reasons.append("no values in the window")
    elif s["psi"] >= cfg.psi_warn:
        wanted: Verdict = "drift" if s["psi"] >= cfg.psi_alert else "warn"
        if s["p_value"] < cfg.p_value:
            level = wanted
            reasons.append(f"PSI {s['psi']:.3g} >= {cfg.psi_alert if wanted == 'drift' else cfg.psi_warn:g}")
        else:
            reasons.append(f"PSI {s['psi']:.3g} but p-value {s['p_value']:.3g} >= {cfg.p_value:g}: not significant")
    rise = s["missing"] - p.missing_rate
    if rise > 0 and rise >= cfg.missing_warn:
        by_missing: Verdict = "drift" if rise >= cfg.missing_alert else "warn"
        reasons.append(f"missing rate {p.missing_rate:.1%} -> {s['missing']:.1%}")
        level = max(level, by_missing, key=_LEVEL.__getitem__)
    return FeatureDrift(
        name=p.name,
        kind=kind or p.kind,
        verdict=level,
        alert=level == "drift" and important,
        importance=share,
        rows=int(s["rows"]),
        missing_reference=p.missing_rate,
        missing_current=s["missing"],
        psi=s["psi"],
        test="ks" if isinstance(p, NumericProfile) else "chi2",
        statistic=s["statistic"],
        p_value=s["p_value"],
        wasserstein=s["wasserstein"],
        jensen_shannon=s["jensen_shannon"],
        error_bound=s["error_bound"],
        reason="; ".join(reasons),
    )


def _importance_shares(profile: ReferenceProfile) -> dict[str, float] | None:
    """Each feature's share of the total importance; None when the profile has none (all count)."""
    total = sum(profile.importance.values())
    if not profile.importance or total <= 0:
        return None
    return {name: value / total for name, value in profile.importance.items()}


def _score_values(
    profile: ReferenceProfile, frame: pd.DataFrame, scores: npt.ArrayLike | None, column: str
) -> kernels.FloatArray | None:
    if profile.score is None:
        return None
    if scores is None:
        if column not in frame.columns or column in profile.features:
            return None
        scores = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
    values = np.array(scores, dtype=np.float64)
    if values.shape != (frame.shape[0],):
        raise DataError(
            f"scores has shape {values.shape}, expected ({frame.shape[0]},): one score per row of the window",
            fix="pass the model's scores for the same rows",
        )
    values[~np.isfinite(values)] = np.nan
    return values


__all__ = ["DriftReport", "FeatureDrift", "Verdict", "check_drift", "compute_drift"]
