"""Drift as PSI against the training window: near zero for the same distribution, large for a shift, never a warning for as-of history state."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from targeting.model.drift import profile, psi


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(size=20_000), "cat_c": rng.integers(0, 5, 20_000).astype(float)})
    reference = profile(ref, rng.random(20_000), ["cat_c"])
    same = pd.DataFrame({"x": rng.normal(size=5000), "cat_c": rng.integers(0, 5, 5000).astype(float)})
    moved = pd.DataFrame({"x": rng.normal(1.0, size=5000), "cat_c": np.full(5000, 7.0)})
    calm = psi(reference, same, rng.random(5000)).set_index("column")["psi"]
    assert (calm < 0.02).all()
    shifted = psi(reference, moved, rng.random(5000) ** 4).set_index("column")
    assert (
        shifted.loc["x", "psi"] > 0.2
        and shifted.loc["cat_c", "psi"] > 0.2
        and shifted.loc["risk_score", "psi"] > 0.2
    )
    assert shifted["warning"].all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_drift_bins_equal_numpys(dtype) -> None:
    from targeting.model._compiled import bin_counts

    rng = np.random.default_rng(3)
    x = rng.normal(size=20_000).round(1).astype(dtype)  # rounded: many values equal an edge
    x[::11], x[5::13], x[7::17] = np.nan, np.inf, -np.inf
    edges = np.array([-1.0, -0.5, -0.5000001, 0.0, 0.5, 1.0])[[0, 2, 1, 3, 4, 5]]
    wide = x.astype(np.float64)
    finite = np.isfinite(wide)
    expected = np.bincount(np.where(finite, 1 + np.searchsorted(edges, wide, side="right"), 0), minlength=8)
    assert (bin_counts(x, edges=edges) == expected).all()
    codes = np.array([0.0, 3.0, -1.0])  # most frequent first, as the reference keeps them
    ints = np.where(finite, rng.integers(-2, 5, len(x)), np.nan).astype(dtype)
    expected = [(~np.isfinite(ints)).sum(), *[(ints == c).sum() for c in codes]]
    expected.append(len(x) - sum(expected))
    assert bin_counts(ints, codes=codes).tolist() == expected
    assert bin_counts(np.zeros(0, dtype), edges=edges).tolist() == [0] * 8
    # a bin is the number of edges at or below the value, whatever their order or repeats
    shuffled = np.array([0.5, -1.0, 1.0, 0.0, 0.5, -0.5])
    expected = np.bincount(np.where(finite, 1 + np.searchsorted(np.sort(shuffled), wide, side="right"), 0),
                           minlength=8)  # fmt: skip
    assert (bin_counts(x, edges=shuffled) == expected).all()
    # a repeated code counts at its first place; an infinite code matches nothing (infinities are missing)
    ints[3::29] = np.inf
    got = bin_counts(ints, codes=np.array([0.0, 3.0, 0.0, np.inf])).tolist()
    zeros, threes = int((ints == 0).sum()), int((ints == 3).sum())
    missing = int((~np.isfinite(ints)).sum())
    assert got == [missing, zeros, threes, 0, 0, len(x) - missing - zeros - threes]


def test_as_of_history_state_moves_with_time_and_is_reported_without_warning() -> None:
    rng = np.random.default_rng(0)
    rates = rng.choice(
        [0.01, 0.021, 0.05], 5000
    )  # a route rate takes few values; new clean outcomes nudge them down
    ref = pd.DataFrame({"consignee_tenure_days": rng.uniform(0, 100, 5000), "origin_hit_rate": rates})
    later = pd.DataFrame(
        {"consignee_tenure_days": rng.uniform(0, 300, 5000), "origin_hit_rate": rates - 0.002}
    )
    out = psi(profile(ref, rng.random(5000), []), later, rng.random(5000)).set_index("column")
    assert out.loc["consignee_tenure_days", "psi"] > 0.2 and out.loc["origin_hit_rate", "psi"] > 0.2
    assert out.loc[["consignee_tenure_days", "origin_hit_rate"], "grows_with_time"].all()
    assert not out["warning"].any()
