"""The vectorised kernels against numpy/scipy one column at a time."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from noria.monitoring import _kernels as kern
from noria.monitoring._ks import kstwo_sf

FAST = settings(max_examples=60, deadline=None)
# few distinct values so that ties (the hard case for every ECDF statistic) are common
values = st.lists(st.sampled_from([-3.5, -1.0, 0.0, 0.25, 1.0, 2.0, 7.0]) | st.floats(-50, 50), min_size=1, max_size=40)


@FAST
@given(rows=st.lists(values, min_size=1, max_size=5), queries=st.lists(st.floats(-60, 60), min_size=1, max_size=20))
def test_batched_searchsorted_equals_numpy_per_row(rows: list[list[float]], queries: list[float]) -> None:
    width = max(len(r) for r in rows)
    padded = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        padded[i, : len(r)] = np.sort(r)
    which = np.arange(len(queries)) % len(rows)
    q = np.asarray(queries)
    for side in ("left", "right"):
        got = kern.batched_searchsorted(padded, which, q, side)
        want = [np.searchsorted(np.sort(rows[r]), v, side=side) for r, v in zip(which, q, strict=True)]
        assert got.tolist() == want


@FAST
@given(counts=hnp.arrays(np.int64, st.integers(2, 12), elements=st.integers(0, 50)), split=st.integers(1, 11))
def test_psi_is_never_negative_and_zero_for_identical_shares(counts: np.ndarray, split: int) -> None:
    split = min(split, counts.shape[0] - 1)
    ref, cur = counts[:split].astype(float), counts[split:].astype(float)
    n = min(ref.shape[0], cur.shape[0])
    seg = np.zeros(n, dtype=np.int64)
    psi = kern.psi(ref[:n], cur[:n], seg, 1)[0]
    assert np.isnan(psi) or psi >= 0
    same = kern.psi(ref[:n], 3 * ref[:n], seg, 1)[0]
    assert np.isnan(same) or same == pytest.approx(0.0, abs=1e-12)


def test_psi_smoothing_follows_evidentlys_rule() -> None:
    seg = np.zeros(3, dtype=np.int64)
    shares = kern.smoothed_shares(np.array([0.0, 5.0, 5.0]), seg, np.array([10.0]))
    assert shares.tolist() == [1e-4, 0.5, 0.5]
    tiny = kern.smoothed_shares(np.array([0.0, 1.0, 99_999.0]), seg, np.array([100_000.0]))
    assert tiny[0] == pytest.approx(1e-5 / 1e6)


@pytest.mark.parametrize("n", [1000, 4000, 60_000])
def test_kstwo_sf_matches_scipy_for_large_samples(n: int) -> None:
    x = np.linspace(0.02, 7.5, 120) / np.sqrt(n)
    ours = kstwo_sf(x, np.full_like(x, n))
    # scipy's exact series is slow for large n: compare on a subset there
    pick = slice(None) if n <= 4000 else slice(None, None, 20)
    assert np.max(np.abs(ours[pick] - stats.kstwo.sf(x[pick], n))) < 5e-8


def test_kstwo_sf_edges() -> None:
    got = kstwo_sf(np.array([0.0, 1.0, 1.5, 1e-9]), np.array([5000.0, 5000.0, 5000.0, 5000.0]))
    assert got.tolist() == [1.0, 0.0, 0.0, 1.0]
