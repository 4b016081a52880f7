import numpy as np
import pytest

from kmc.selectors import (LINEAR, TREE, init, pick, selector_code, total, tree_size, update,
                           wide_index, wide_init, wide_layout, wide_pick, wide_total, wide_update)


def _rates(rng, n):
    # 250 meV SED at 300 K: rates spread over ~10 decades; some exact zeros
    r = np.exp(rng.normal(0.0, 0.106 / 0.02585, n))
    r[rng.random(n) < 0.2] = 0.0
    return r


def test_tree_and_linear_pick_the_same_event():
    rng = np.random.default_rng(0)
    n = 1000
    P = tree_size(n)
    rates = _rates(rng, n)
    t = np.zeros((1, 2 * P, 1))
    lin = np.zeros((1, 2 * P, 1))
    init(t, 0, P, rates, 0, TREE)
    init(lin, 0, P, rates, 0, LINEAR)
    for step in range(3000):
        k = rng.integers(n)
        new = 0.0 if rng.random() < 0.2 else float(np.exp(rng.normal(0, 4)))
        update(t, 0, P, k, new, 0, TREE)
        update(lin, 0, P, k, new, 0, LINEAR)
        u = rng.random()
        i1, r1 = pick(t, 0, P, n, 0, u * total(t, 0, P, n, 0, TREE), TREE)
        i2, r2 = pick(lin, 0, P, n, 0, u * total(lin, 0, P, n, 0, LINEAR), LINEAR)
        assert i1 == i2
        assert t[0, P + i1, 0] > 0.0
        assert abs(r1 - r2) <= 1e-9 * t[0, P + i1, 0] + 1e-12 * t[0, 1, 0]


def test_incremental_tree_equals_fresh_build_bitwise():
    rng = np.random.default_rng(1)
    n = 777
    P = tree_size(n)
    rates = _rates(rng, n)
    t = np.zeros((1, 2 * P, 1))
    init(t, 0, P, rates, 0, TREE)
    for _ in range(5000):
        k = rng.integers(n)
        rates[k] = float(np.exp(rng.normal(0, 4)))
        update(t, 0, P, k, rates[k], 0, TREE)
    fresh = np.zeros_like(t)
    init(fresh, 0, P, rates, 0, TREE)
    assert np.array_equal(t, fresh)  # recomputed from children: no drift at all


def test_pick_frequencies_follow_rates():
    rng = np.random.default_rng(2)
    rates = np.array([1e-3, 1.0, 0.0, 3.0, 1e2])
    P = tree_size(rates.size)
    t = np.zeros((1, 2 * P, 1))
    init(t, 0, P, rates, 0, TREE)
    n = 200_000
    u = rng.random(n) * t[0, 1, 0]
    picks = np.array([pick(t, 0, P, rates.size, 0, x, TREE)[0] for x in u[:20000]])
    p = rates / rates.sum()
    counts = np.bincount(picks, minlength=rates.size)
    expected = p * picks.size
    se = np.sqrt(picks.size * p * (1 - p)) + 1e-12
    assert counts[2] == 0
    assert np.all(np.abs(counts - expected) < 5 * se + 1)


def test_unknown_selector_lists_legal_names():
    with pytest.raises(ValueError, match=r"unknown selector 'heap'; legal: \['linear', 'tree'\]"):
        selector_code("heap")


@pytest.mark.parametrize("n", [1, 7, 8, 9, 1003, 4096])
def test_wide_tree_and_linear_pick_the_same_leaf_and_stay_exact(n):
    rng = np.random.default_rng(3)
    C = 3
    goff, H = wide_layout(n)
    w = np.zeros((2, goff[-1] * 8 * C))
    leaf = [wide_index(goff, 0, j, c, C) for c in range(C) for j in range(n)]
    rates = _rates(rng, C * n)
    w[0, leaf] = rates
    w[1, leaf] = rates
    for c in range(C):
        wide_init(w, 0, goff, H, c, C, TREE)
        wide_init(w, 1, goff, H, c, C, LINEAR)
    for step in range(1500):
        j = rng.integers(n)
        c = rng.integers(C)
        new = 0.0 if rng.random() < 0.2 else float(np.exp(rng.normal(0, 4)))
        wide_update(w, 0, goff, H, j, new, c, C, TREE)
        wide_update(w, 1, goff, H, j, new, c, C, LINEAR)
        c = rng.integers(C)
        tot_t = wide_total(w, 0, goff, H, n, c, C, TREE)
        tot_l = wide_total(w, 1, goff, H, n, c, C, LINEAR)
        assert tot_t == pytest.approx(tot_l, rel=1e-12, abs=0)
        if tot_t <= 0.0:
            continue
        u = rng.random()
        i1, r1 = wide_pick(w, 0, goff, H, n, c, C, u * tot_t, TREE)
        i2, r2 = wide_pick(w, 1, goff, H, n, c, C, u * tot_l, LINEAR)
        assert i1 == i2 and 0 <= i1 < n
        x = w[0, wide_index(goff, 0, i1, c, C)]
        assert x > 0.0
        assert abs(r1 - r2) <= 1e-9 * x + 1e-12 * tot_t
    fresh = w[0].copy()
    fresh[np.setdiff1d(np.arange(fresh.size), leaf)] = 0.0
    fresh = fresh[None]
    for c in range(C):
        wide_init(fresh, 0, goff, H, c, C, TREE)
    assert np.array_equal(w[0], fresh[0])  # every node recomputed from its children: no drift
    # picks follow the rates: leaf j's interval is [cum[j-1], cum[j]) in index order
    c = 1
    vals = w[0, [wide_index(goff, 0, j, c, C) for j in range(n)]]
    cum = np.cumsum(vals)
    for j in rng.integers(0, n, 200):
        # skip rates below the rounding of the cumulative sum (mid would not resolve them)
        if vals[j] > 1e-12 * cum[-1]:
            assert wide_pick(w, 0, goff, H, n, c, C, cum[j] - 0.5 * vals[j], TREE)[0] == j
    # a target at (or by rounding above) the total ends on the last positive leaf
    last = np.flatnonzero(vals > 0)[-1]
    for kind, t in ((TREE, 0), (LINEAR, 1)):
        assert wide_pick(w, t, goff, H, n, c, C, cum[-1] * (1 + 1e-15), kind)[0] == last


def test_wide_layout_levels():
    goff, H = wide_layout(25_600)
    assert H == 5 and list(np.diff(goff)) == [3200, 400, 50, 7, 1, 1]
    goff, H = wide_layout(1)
    assert H == 0 and list(goff) == [0, 1]
