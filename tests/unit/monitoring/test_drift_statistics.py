"""compute_drift against a slow, one-column-at-a-time implementation with numpy and scipy."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial import distance

from noria.monitoring import DriftConfig, ReferenceProfile, compute_drift

EXACT = DriftConfig(ecdf_points=1_000_000, max_categories=100_000)
FAST = settings(max_examples=40, deadline=None)


# --- the slow reference implementation -------------------------------------------------------


def _smooth(shares: list[float]) -> list[float]:
    smallest = min(s for s in shares if s > 0)
    eps = smallest / 1e6 if smallest <= 1e-4 else 1e-4
    return [eps if s == 0 else s for s in shares]


def _psi(ref: list[float], cur: list[float]) -> float:
    cells = [(r, c) for r, c in zip(ref, cur, strict=True) if r > 0 or c > 0]
    p = _smooth([r / sum(ref) for r, _ in cells])
    q = _smooth([c / sum(cur) for _, c in cells])
    return sum((a - b) * math.log(a / b) for a, b in zip(p, q, strict=True))


def slow_numeric(ref: np.ndarray, cur: np.ndarray, edges: np.ndarray) -> dict[str, float]:
    r, c = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    ks = stats.ks_2samp(r, c)
    bins_r = [0] * (len(edges) + 1)
    bins_c = [0] * (len(edges) + 1)
    for values, bins in ((r, bins_r), (c, bins_c)):
        for v in values:
            bins[sum(v >= e for e in edges)] += 1
    return {
        "statistic": float(ks.statistic),
        "p_value": float(ks.pvalue),
        "wasserstein": stats.wasserstein_distance(r, c) / max(float(np.std(r)), 1e-3),
        "psi": _psi(bins_r, bins_c),
    }


def slow_categorical(ref: list[str | None], cur: list[str | None]) -> dict[str, float]:
    r = Counter(v for v in ref if v is not None)
    c = Counter(v for v in cur if v is not None)
    keys = sorted(set(r) | set(c))  # Evidently's cells: one per value seen on either side
    f_obs = [c[k] for k in keys]
    f_exp = [r[k] * (sum(c.values()) / sum(r.values())) for k in keys]
    with np.errstate(divide="ignore"):
        chi = stats.chisquare(f_obs, f_exp) if len(keys) > 1 else None
    return {
        "psi": _psi([r[k] for k in keys], [c[k] for k in keys]),
        "statistic": float(chi.statistic) if chi else 0.0,
        "p_value": float(chi.pvalue) if chi else 1.0,
        "jensen_shannon": float(distance.jensenshannon([r[k] for k in keys], [c[k] for k in keys])),
    }


# --- strategies ----------------------------------------------------------------------------

numbers = st.lists(
    st.sampled_from([0.0, 1.0, 2.5, -4.0, 10.0, float("nan")]) | st.floats(-100, 100), min_size=2, max_size=60
)
labels = st.lists(st.sampled_from(["a", "b", "c", "d", None]), min_size=2, max_size=60)


def _has_values(xs: list[float]) -> bool:
    return any(not math.isnan(x) for x in xs)


@pytest.mark.filterwarnings("ignore:ks_2samp")
@FAST
@given(ref=numbers.filter(_has_values), cur=numbers.filter(_has_values), other=numbers.filter(_has_values))
def test_numeric_statistics_equal_the_slow_reference(ref: list[float], cur: list[float], other: list[float]) -> None:
    n = min(len(ref), len(other))
    ref_frame = pd.DataFrame({"x": ref[:n], "y": other[:n]})
    cur_frame = pd.DataFrame({"x": cur, "y": cur[::-1]})
    if ref_frame.notna().sum().min() == 0:
        return
    profile = ReferenceProfile.build(ref_frame, config=EXACT)
    report = compute_drift(profile, cur_frame, EXACT).to_frame()
    for col in ("x", "y"):
        want = slow_numeric(ref_frame[col].to_numpy(), cur_frame[col].to_numpy(), profile.features[col].edges)
        got = report.loc[col]
        assert got["statistic"] == want["statistic"]  # same floats, same operations: bit for bit
        assert got["p_value"] == pytest.approx(want["p_value"], abs=1e-12)
        assert got["wasserstein"] == pytest.approx(want["wasserstein"], rel=1e-9, abs=1e-12)
        assert got["psi"] == pytest.approx(want["psi"], rel=1e-9, abs=1e-12)


@FAST
@given(ref=labels, cur=labels)
def test_categorical_statistics_equal_the_slow_reference(ref: list[str | None], cur: list[str | None]) -> None:
    if all(v is None for v in ref) or all(v is None for v in cur):
        return
    profile = ReferenceProfile.build(pd.DataFrame({"c": ref}), config=EXACT)
    got = compute_drift(profile, pd.DataFrame({"c": cur}), EXACT).to_frame().loc["c"]
    want = slow_categorical(ref, cur)
    for key in ("psi", "statistic", "p_value", "jensen_shannon"):
        assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12), key


@pytest.mark.filterwarnings("ignore:ks_2samp")  # scipy's own fallback notice, in the reference call
@FAST
@given(
    ref=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=80),
    cur=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=80),
)
def test_ks_equals_scipy_ks_2samp_on_the_raw_data(ref: list[float], cur: list[float]) -> None:
    profile = ReferenceProfile.build(pd.DataFrame({"v": ref}), config=EXACT)
    got = compute_drift(profile, pd.DataFrame({"v": cur}), EXACT).features[0]
    want = stats.ks_2samp(ref, cur)
    assert got.statistic == float(want.statistic)
    assert got.p_value == pytest.approx(float(want.pvalue), abs=1e-12)


def test_ks_equals_scipy_on_large_samples_with_ties() -> None:
    rng = np.random.default_rng(7)
    ref = np.round(rng.normal(0, 3, 30_000), 1)
    cur = np.round(rng.normal(0.03, 3, 20_000), 1)
    profile = ReferenceProfile.build(pd.DataFrame({"v": ref}), config=EXACT)
    got = compute_drift(profile, pd.DataFrame({"v": cur}), EXACT).features[0]
    want = stats.ks_2samp(ref, cur)
    assert got.statistic == float(want.statistic)
    assert got.p_value == pytest.approx(float(want.pvalue), abs=5e-8)
    assert got.wasserstein == pytest.approx(stats.wasserstein_distance(ref, cur) / np.std(ref), rel=1e-9)


@FAST
@given(
    ref=st.lists(st.floats(-1e3, 1e3), min_size=40, max_size=300, unique=True),
    cur=st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=100),
)
def test_compressed_ecdf_stays_within_its_error_bounds(ref: list[float], cur: list[float]) -> None:
    small = DriftConfig(ecdf_points=16)
    approx = ReferenceProfile.build(pd.DataFrame({"v": ref}), config=small)
    exact = ReferenceProfile.build(pd.DataFrame({"v": ref}), config=EXACT)
    feature = approx.features["v"]
    assert feature.ecdf_values.shape[0] <= 17 and not feature.ecdf_exact
    frame = pd.DataFrame({"v": cur})
    a, e = compute_drift(approx, frame, small).features[0], compute_drift(exact, frame, EXACT).features[0]
    assert abs(a.statistic - e.statistic) <= feature.ks_error_bound + 1e-12
    assert feature.ks_error_bound <= 2 / 16
    std = max(exact.features["v"].std, 1e-3)
    assert abs(a.wasserstein - e.wasserstein) * std <= feature.wasserstein_error_bound + 1e-9
    assert a.error_bound == feature.ks_error_bound


@FAST
@given(
    num=st.lists(st.floats(-1e3, 1e3) | st.just(float("nan")), min_size=3, max_size=50),
    cat=st.lists(st.sampled_from(["x", "y", "z", None]), min_size=50, max_size=50),
)
def test_a_window_identical_to_the_reference_does_not_drift(num: list[float], cat: list[str | None]) -> None:
    frame = pd.DataFrame({"num": num, "cat": cat[: len(num)]})
    profile = ReferenceProfile.build(frame, config=EXACT)
    report = compute_drift(profile, frame, EXACT)
    for f in report.features:
        assert f.verdict == "ok" and not f.alert
        if f.rows:
            assert f.psi == pytest.approx(0.0, abs=1e-12)
            assert f.jensen_shannon == pytest.approx(0.0, abs=1e-7)
            assert f.statistic == pytest.approx(0.0, abs=1e-12)
            assert f.p_value == pytest.approx(1.0)


def test_a_truncated_profile_counts_values_outside_its_categories_as_other() -> None:
    ref = pd.DataFrame({"c": list("aaaabbbcd")})
    cur = pd.DataFrame({"c": list("aabxyyd")})
    profile = ReferenceProfile.build(ref, config=DriftConfig(max_categories=2))  # keeps a, b; other = 2
    got = compute_drift(profile, cur).features[0]
    want = slow_categorical(list("aaaabbboo"), list("aaboooo"))  # c, d, x, y -> the "other" cell o
    assert got.psi == pytest.approx(want["psi"], rel=1e-9)
    assert got.p_value == pytest.approx(want["p_value"], rel=1e-9) and math.isnan(got.error_bound)


def test_given_bin_edges_reproduce_numpy_histogram_psi() -> None:
    rng = np.random.default_rng(3)
    ref, cur = rng.normal(size=5000), rng.normal(0.2, 1.1, size=4000)
    edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
    profile = ReferenceProfile.build(pd.DataFrame({"v": ref}), bin_edges={"v": edges[1:-1]})
    got = compute_drift(profile, pd.DataFrame({"v": cur})).features[0].psi
    p = np.histogram(ref, edges)[0] / ref.size
    q = np.histogram(cur, edges)[0] / cur.size
    seen = (p > 0) | (q > 0)
    p, q = np.array(_smooth(list(p[seen]))), np.array(_smooth(list(q[seen])))
    assert got == pytest.approx(float(np.sum((p - q) * np.log(p / q))), rel=1e-12)


def test_wasserstein_in_column_groups_equals_all_columns_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bounded memory: wide windows are merged a few columns at a time; the distances are the same."""
    from noria.monitoring import _kernels

    rng = np.random.default_rng(3)
    ref = pd.DataFrame({f"c{i}": rng.normal(i, 1 + i, 400).round(i % 3) for i in range(6)})
    cur = pd.DataFrame({f"c{i}": rng.normal(i + 0.3, 1 + i, 900 + 37 * i).round(i % 3)[:900] for i in range(6)})
    cur.iloc[::7, 2] = np.nan
    profile = ReferenceProfile.build(ref, config=EXACT)
    whole = compute_drift(profile, cur, EXACT).to_frame()["wasserstein"]
    monkeypatch.setattr(_kernels, "WASSERSTEIN_CELLS", 1)  # one column per pass
    grouped = compute_drift(profile, cur, EXACT).to_frame()["wasserstein"]
    assert np.array_equal(whole.to_numpy(), grouped.to_numpy())
    for col in ref.columns:
        want = stats.wasserstein_distance(ref[col], cur[col].dropna()) / float(np.std(ref[col]))
        assert whole[col] == pytest.approx(want, rel=1e-9)
