import numpy as np
import pytest

from kmc.selectors import (BLOCK, LINEAR, TREE, init, init_blocked, pick, pick_blocked,
                           selector_code, total, tree_size, update, update_blocked)


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


def test_blocked_tree_and_linear_pick_the_same_site_and_stay_exact():
    rng = np.random.default_rng(3)
    n = 1003                        # not a multiple of BLOCK: the last block is zero-padded
    P = tree_size(-(-n // BLOCK))
    leaves = np.zeros((1, 1, BLOCK * P))
    leaves[0, 0, :n] = _rates(rng, n)
    leaves_lin = leaves.copy()
    t = np.zeros((1, 2 * P, 1))
    lin = np.zeros((1, 2 * P, 1))
    init_blocked(t, leaves, 0, P, 0, TREE)
    init_blocked(lin, leaves_lin, 0, P, 0, LINEAR)
    for step in range(3000):
        k = rng.integers(n)
        new = 0.0 if rng.random() < 0.2 else float(np.exp(rng.normal(0, 4)))
        update_blocked(t, leaves, 0, P, k, new, 0, TREE)
        update_blocked(lin, leaves_lin, 0, P, k, new, 0, LINEAR)
        u = rng.random()
        i1, r1 = pick_blocked(t, leaves, 0, P, 0, u * total(t, 0, P, P, 0, TREE), TREE)
        i2, r2 = pick_blocked(lin, leaves_lin, 0, P, 0, u * total(lin, 0, P, P, 0, LINEAR), LINEAR)
        assert i1 == i2 and i1 < n
        assert leaves[0, 0, i1] > 0.0
        assert abs(r1 - r2) <= 1e-9 * leaves[0, 0, i1] + 1e-12 * t[0, 1, 0]
    fresh = np.zeros_like(t)
    init_blocked(fresh, leaves, 0, P, 0, TREE)
    assert np.array_equal(t, fresh)  # leaves and nodes recomputed from children: no drift
    # picks follow the rates: every site's interval is [cum[k-1], cum[k]) in the scan order
    order = np.concatenate([np.arange(b * BLOCK, (b + 1) * BLOCK) for b in
                            list(range(2 ** int(np.ceil(np.log2(P))) - P, P))
                            + list(range(2 ** int(np.ceil(np.log2(P))) - P))])
    cum = np.cumsum(leaves[0, 0, order])
    for q in rng.integers(0, n, 200):
        # skip rates below the rounding of the cumulative sum (mid would not resolve them)
        if leaves[0, 0, order[q]] > 1e-12 * cum[-1]:
            mid = cum[q] - 0.5 * leaves[0, 0, order[q]]
            assert pick_blocked(t, leaves, 0, P, 0, mid, TREE)[0] == order[q]
