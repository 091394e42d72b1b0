"""Drift statistics for many columns at once, on numpy arrays.

Nothing here loops over rows, and nothing loops over columns either. Columns of different
lengths use one of two layouts: *cells* (bins or categories of every column end to end, with
``seg`` giving each cell's column, so per-column sums are ``np.bincount`` with weights), or
*rows* of a 2-D array padded to a common width (:class:`Ecdf`, one column's distribution per
row). The one search the numeric statistics need is :func:`batched_searchsorted`, a binary
search that advances every query of every column in the same vectorised step.

Conventions, shared with :mod:`noria.monitoring.profile`:

- numeric values are float64 with NaN for missing (``inf`` is treated as missing, as Evidently does);
- a bin with interior edges ``e`` is ``[e[i - 1], e[i])``, with ``-inf`` and ``+inf`` ends;
- a reference ECDF is a list of points ``v`` with ``F(v)`` (cumulative share, right-continuous).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import special, stats

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# Evidently's rule for empty bins in PSI: 1e-4, or a millionth of the smallest non-empty share.
PSI_EPSILON = 1e-4
# Wasserstein distance is divided by the reference std, floored like Evidently's "normed" variant.
STD_FLOOR = 1e-3


def batched_searchsorted(
    sorted_rows: FloatArray, rows: IntArray, queries: FloatArray, side: Literal["left", "right"]
) -> IntArray:
    """``np.searchsorted(sorted_rows[rows[i]], queries[i], side)`` for every ``i`` at once.

    Each row is ascending with NaN last (the order of ``np.sort``); NaN counts as larger than any
    query. A branchless binary search: ``log2(width)`` vectorised steps over all queries.
    """
    width = sorted_rows.shape[1]
    pos = np.zeros(queries.shape[0], dtype=np.int64)
    if width == 0 or queries.shape[0] == 0:
        return pos
    flat = sorted_rows.ravel()
    base = rows.astype(np.int64) * width
    step = 1 << (width.bit_length() - 1)
    while step:
        probe = pos + (step - 1)
        value = flat[base + np.minimum(probe, width - 1)]
        advance = (value < queries) if side == "left" else (value <= queries)
        advance &= probe < width
        pos += step * advance
        step >>= 1
    return pos


def segment_ids(ptr: IntArray) -> IntArray:
    """The column of every position of a flat array laid out by ``ptr``."""
    return np.repeat(np.arange(ptr.shape[0] - 1, dtype=np.int64), np.diff(ptr))


def _segment_sum(values: FloatArray, seg: IntArray, k: int) -> FloatArray:
    return np.bincount(seg, weights=values, minlength=k).astype(np.float64)


def smoothed_shares(counts: FloatArray, seg: IntArray, totals: FloatArray) -> FloatArray:
    """Shares per column with empty cells replaced as Evidently does (see :data:`PSI_EPSILON`)."""
    k = totals.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = counts / totals[seg]
    smallest = np.full(k, np.inf)
    nonzero = shares > 0
    np.minimum.at(smallest, seg[nonzero], shares[nonzero])
    eps = np.where(smallest <= PSI_EPSILON, smallest / 1e6, PSI_EPSILON)
    return np.where(shares == 0, eps[seg], shares)


def psi(ref_counts: FloatArray, cur_counts: FloatArray, seg: IntArray, k: int) -> FloatArray:
    """Population stability index per column over the cells of ``seg``.

    ``sum((ref - cur) * ln(ref / cur))`` over shares, empty cells smoothed first; NaN for a
    column with no reference or no current values.
    """
    ref_tot = _segment_sum(ref_counts, seg, k)
    cur_tot = _segment_sum(cur_counts, seg, k)
    p = smoothed_shares(ref_counts, seg, ref_tot)
    q = smoothed_shares(cur_counts, seg, cur_tot)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = _segment_sum((p - q) * np.log(p / q), seg, k)
    out[(ref_tot == 0) | (cur_tot == 0)] = np.nan
    return out


def jensen_shannon(ref_counts: FloatArray, cur_counts: FloatArray, seg: IntArray, k: int) -> FloatArray:
    """Jensen-Shannon distance per column (natural log, as ``scipy.spatial.distance.jensenshannon``)."""
    ref_tot = _segment_sum(ref_counts, seg, k)
    cur_tot = _segment_sum(cur_counts, seg, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = ref_counts / ref_tot[seg]
        q = cur_counts / cur_tot[seg]
        p = p / _segment_sum(p, seg, k)[seg]
        q = q / _segment_sum(q, seg, k)[seg]
    m = (p + q) / 2.0
    divergence = _segment_sum(special.rel_entr(p, m) + special.rel_entr(q, m), seg, k)
    out = np.sqrt(divergence / 2.0)
    out[(ref_tot == 0) | (cur_tot == 0)] = np.nan
    return out


def chi_square(ref_counts: FloatArray, cur_counts: FloatArray, seg: IntArray, k: int) -> tuple[FloatArray, FloatArray]:
    """Chi-square goodness of fit of current counts against reference shares, per column.

    The expected count of a cell is ``ref_count * n_current / n_reference`` (as Evidently's
    chi-square test); only cells seen on either side count. A category absent from the
    reference but present now has expectation 0: statistic ``inf``, p-value 0.
    Returns ``(statistic, p_value)``; a column with a single category has p-value 1.
    """
    ref_tot = _segment_sum(ref_counts, seg, k)
    cur_tot = _segment_sum(cur_counts, seg, k)
    seen = (ref_counts > 0) | (cur_counts > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = ref_counts * (cur_tot / ref_tot)[seg]
        terms = np.where(seen, (cur_counts - expected) ** 2 / expected, 0.0)
    stat = _segment_sum(terms, seg, k)
    dof = np.bincount(seg[seen], minlength=k) - 1
    with np.errstate(invalid="ignore"):
        p_value = np.where(dof > 0, stats.chi2.sf(stat, np.maximum(dof, 1)), 1.0)
    empty = (ref_tot == 0) | (cur_tot == 0)
    stat[empty] = np.nan
    p_value[empty] = np.nan
    return stat, np.clip(p_value, 0.0, 1.0)


@dataclass(frozen=True)
class Ecdf:
    """Empirical distributions of many columns, one per row, padded to a common width.

    ``values[j, :size[j]]`` are the distinct values of column ``j`` in ascending order (NaN after);
    ``counts[j, i]`` is how many of its ``n[j]`` values are at most ``values[j, i - 1]``, so
    ``counts[:, 0]`` is 0 and padding repeats ``n``.
    """

    values: FloatArray
    counts: IntArray
    size: IntArray
    n: IntArray

    @classmethod
    def from_sorted(cls, sorted_rows: FloatArray) -> Ecdf:
        """From rows sorted by ``np.sort`` (NaN last): keep the last of each run of equal values.

        Column by column: the temporaries are one row long, not (columns x rows) (on 500,000
        distinct values in 30 columns, the all-at-once masks and indices peaked at 4x the matrix).
        """
        k = sorted_rows.shape[0]
        n = np.count_nonzero(~np.isnan(sorted_rows), axis=1).astype(np.int64)
        values: list[FloatArray] = []
        counts: list[IntArray] = []
        for j in range(k):
            row = sorted_rows[j, : n[j]]
            last = np.empty(row.shape[0], dtype=bool)
            last[:-1] = row[1:] != row[:-1]
            last[-1:] = True
            at = np.flatnonzero(last)
            values.append(row[at])
            counts.append(at + 1)
        size = np.array([v.shape[0] for v in values], dtype=np.int64)
        width = int(size.max()) if k else 0
        padded = np.full((k, width), np.nan)
        cum = np.repeat(n[:, None], width + 1, axis=1)
        cum[:, 0] = 0
        for j in range(k):
            padded[j, : size[j]] = values[j]
            cum[j, 1 : size[j] + 1] = counts[j]
        return cls(padded, cum, size, n)

    @classmethod
    def from_points(cls, values: FloatArray, counts: IntArray, ptr: IntArray, n: IntArray) -> Ecdf:
        """From flat reference points (``counts`` cumulative) laid out by ``ptr``."""
        return cls._padded(values, counts, segment_ids(ptr), n, ptr.shape[0] - 1)

    @classmethod
    def _padded(cls, values: FloatArray, counts: IntArray, rows: IntArray, n: IntArray, k: int) -> Ecdf:
        size = np.bincount(rows, minlength=k).astype(np.int64)
        width = int(size.max()) if k and size.size else 0
        real = np.arange(width)[None, :] < size[:, None]
        padded = np.full((k, width), np.nan)
        padded[real] = values
        cum = np.repeat(n.astype(np.int64)[:, None], width + 1, axis=1)
        cum[:, 0] = 0
        cum[:, 1:][real] = counts
        return cls(padded, cum, size, n.astype(np.int64))

    def part(self, start: int, stop: int) -> Ecdf:
        """Columns ``start:stop`` (views), trimmed to their own widest column."""
        size = self.size[start:stop]
        width = int(size.max()) if size.size else 0
        return Ecdf(self.values[start:stop, :width], self.counts[start:stop, : width + 1], size, self.n[start:stop])

    @property
    def real(self) -> BoolArray:
        return np.arange(self.values.shape[1])[None, :] < self.size[:, None]

    def count(self, rows: IntArray, queries: FloatArray, side: Literal["left", "right"]) -> IntArray:
        """How many values of column ``rows[i]`` are below (``left``) or at most (``right``) ``queries[i]``."""
        at = batched_searchsorted(self.values, rows, queries, side)
        out: IntArray = self.counts.ravel()[rows * self.counts.shape[1] + at]
        return out


def ks_statistic(ref: Ecdf, cur: Ecdf) -> FloatArray:
    """Two-sample KS statistic ``sup |F_ref - F_cur|`` per column.

    ``F_ref`` is a step function through the reference points, so the supremum is reached at a
    point ``v`` or just below it: it needs only ``F_cur(v)`` and ``F_cur(v-)``. With every distinct
    reference value stored this equals ``scipy.stats.ks_2samp`` bit for bit; with a compressed
    ECDF it is off by at most the profile's ``ks_error_bound``.
    """
    real = ref.real
    rows = np.nonzero(real)[0].astype(np.int64)
    points = ref.values[real]
    below = np.zeros(ref.values.shape, dtype=np.int64)
    at_or_below = np.zeros(ref.values.shape, dtype=np.int64)
    below[real] = cur.count(rows, points, "left")
    at_or_below[real] = cur.count(rows, points, "right")
    with np.errstate(divide="ignore", invalid="ignore"):
        n_ref, n_cur = ref.n[:, None], cur.n[:, None]
        gap = np.maximum(
            np.abs(ref.counts[:, 1:] / n_ref - at_or_below / n_cur),
            np.abs(ref.counts[:, :-1] / n_ref - below / n_cur),
        )
        out: FloatArray = np.max(gap, axis=1, where=real, initial=0.0)
    out[(ref.size == 0) | (cur.n == 0)] = np.nan
    return out


WASSERSTEIN_CELLS = 1_000_000  # merged (column x point) cells per pass: 8 MB per temporary (a dozen)


def wasserstein(ref: Ecdf, cur: Ecdf) -> FloatArray:
    """First Wasserstein distance ``integral |F_ref - F_cur| dx`` per column.

    The two distributions are merged without sorting, one row per column: reference point ``j``
    lands at slot ``j + (current values below it)``, the current values fill the other slots in
    order, padding goes last. The integral is then a sum over consecutive slots, as in
    ``scipy.stats.wasserstein_distance``. Columns go in groups of at most ``WASSERSTEIN_CELLS``
    merged cells, so the dozen temporaries stay bounded whatever the number of columns.
    """
    k = ref.values.shape[0]
    per = max(1, WASSERSTEIN_CELLS // max(ref.values.shape[1] + cur.values.shape[1], 1))
    if k <= per:
        return _wasserstein(ref, cur)
    return np.concatenate([_wasserstein(ref.part(a, a + per), cur.part(a, a + per)) for a in range(0, k, per)])


def _wasserstein(ref: Ecdf, cur: Ecdf) -> FloatArray:
    k, wr = ref.values.shape
    wc = cur.values.shape[1]
    real = ref.real
    rows = np.nonzero(real)[0].astype(np.int64)
    slot = np.broadcast_to(cur.size[:, None], (k, wr)).copy()  # padding points go after the values
    slot[real] = batched_searchsorted(cur.values, rows, ref.values[real], "left")
    slot += np.arange(wr)[None, :]
    is_ref = np.zeros((k, wr + wc), dtype=bool)
    np.put_along_axis(is_ref, slot, True, axis=1)
    values = np.empty((k, wr + wc))
    values[is_ref] = ref.values.ravel()
    values[~is_ref] = cur.values.ravel()
    refs_so_far = np.cumsum(is_ref, axis=1, dtype=np.int64)
    curs_so_far = np.arange(1, wr + wc + 1)[None, :] - refs_so_far
    base = np.arange(k, dtype=np.int64)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        f_ref = ref.counts.ravel()[refs_so_far + base * (wr + 1)] / ref.n[:, None]
        f_cur = cur.counts.ravel()[curs_so_far + base * (wc + 1)] / cur.n[:, None]
    with np.errstate(invalid="ignore", over="ignore"):  # padding is NaN and summed out below
        step = np.diff(values, axis=1) * np.abs(f_ref - f_cur)[:, :-1]
    inside = np.arange(wr + wc - 1)[None, :] < (ref.size + cur.size - 1)[:, None]
    out: FloatArray = np.sum(step, axis=1, where=inside)
    out[(ref.size == 0) | (cur.n == 0)] = np.nan
    return out


__all__ = [
    "Ecdf",
    "batched_searchsorted",
    "chi_square",
    "jensen_shannon",
    "ks_statistic",
    "psi",
    "segment_ids",
    "smoothed_shares",
    "wasserstein",
]
