"""Event selection, separate from what the events are (SPPARKS ``solve_*``).

Contract (all numba functions on plain arrays, so they run inside the hot loop):

* ``init(tree, P, rates)``      build from a rate vector,
* ``update(tree, P, idx, rate)`` change one rate,
* ``pick(tree, P, n, target)``  -> (index, remainder) with ``target = u * total``,
* ``total(tree, P, n)``         sum of rates; the caller draws ``dt = -ln(u2) / total``.

Two implementations, registered in ``SELECTORS``:

``"tree"``
    Binary sum tree, leaves at ``[P, P + n)`` with ``P`` a power of two, node ``k`` =
    ``2k + 2k+1``. Updates walk to the root and *recompute* every ancestor from its children (never
    add a delta), so no rounding drift accumulates however wide the rate spread (10 decades for a
    250 meV SED at 300 K): the tree is bitwise equal to a fresh build at all times. O(log n).
``"linear"``
    Reference: leaves only, cumulative scan on every pick. O(n). Picks the same event as the tree
    for the same ``target`` up to summation-order rounding (~1e-16 relative).

The engine stores stacks of trees with a trailing class axis, ``tree[t, node, c]`` (tree ``t``;
interleaved per-class trees share cache lines); the functions take that 3-D form, the tree index
``t`` and the class ``c`` (indexing a 3-D array directly avoids creating views in the hot loop).
"""
import numpy as np
from numba import njit

TREE = 0
LINEAR = 1
SELECTORS = {"tree": TREE, "linear": LINEAR}


def selector_code(name):
    """Integer code of a selector name; raises ValueError listing the legal names."""
    try:
        return SELECTORS[name]
    except KeyError:
        raise ValueError(f"unknown selector {name!r}; legal: {sorted(SELECTORS)}") from None


def tree_size(n):
    """Return ``P``, the power of two >= n (at least 1) where leaves start."""
    P = 1
    while P < n:
        P *= 2
    return P


@njit(cache=True)
def init(tree, t, P, rates, c, kind):
    """Fill class ``c`` of tree ``t`` (float64, shape (T, 2P, C)) from ``rates`` (float64, (n,))."""
    n = rates.shape[0]
    for k in range(P, 2 * P):
        tree[t, k, c] = 0.0
    for k in range(n):
        tree[t, P + k, c] = rates[k]
    if kind == TREE:
        for k in range(P - 1, 0, -1):
            tree[t, k, c] = tree[t, 2 * k, c] + tree[t, 2 * k + 1, c]


@njit(cache=True)
def walk_up(tree, t, P, idx, c):
    k = (P + idx) >> 1
    while k >= 1:
        tree[t, k, c] = tree[t, 2 * k, c] + tree[t, 2 * k + 1, c]
        k >>= 1


@njit(cache=True)
def update(tree, t, P, idx, rate, c, kind):
    """Set the rate of event ``idx`` of class ``c``."""
    tree[t, P + idx, c] = rate
    if kind == TREE:
        walk_up(tree, t, P, idx, c)


@njit(cache=True)
def total(tree, t, P, n, c, kind):
    if kind == TREE:
        return tree[t, 1, c]
    s = 0.0
    for k in range(n):
        s += tree[t, P + k, c]
    return s


@njit(cache=True)
def pick(tree, t, P, n, c, target, kind):
    """Index ``k`` with cum[k-1] <= target < cum[k]; returns (k, target - cum[k-1]).

    Rounding guards: a descent never enters a zero-weight subtree, and a linear scan that runs
    past the end returns the last event with a positive rate.
    """
    if kind == TREE:
        k = 1
        while k < P:
            left = tree[t, 2 * k, c]
            if target < left or tree[t, 2 * k + 1, c] <= 0.0:
                k = 2 * k
            else:
                target -= left
                k = 2 * k + 1
        return k - P, target
    last = -1
    for k in range(n):
        r = tree[t, P + k, c]
        if r > 0.0:
            if target < r:
                return k, target
            target -= r
            last = k
    return last, tree[t, P + last, c] if last >= 0 else 0.0
