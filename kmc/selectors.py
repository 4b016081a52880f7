"""Event selection, separate from what the events are (SPPARKS ``solve_*``).

Contract (all numba functions on plain arrays, so they run inside the hot loop):

* ``init(tree, P, rates)``      build from a rate vector,
* ``update(tree, P, idx, rate)`` change one rate,
* ``pick(tree, P, n, target)``  -> (index, remainder) with ``target = u * total``,
* ``total(tree, P, n)``         sum of rates; the caller draws ``dt = -ln(u2) / total``.

Two implementations, registered in ``SELECTORS``:

``"tree"``
    Binary sum tree in the implicit heap layout with ``P = n`` (``tree_size``): leaf ``idx`` is
    node ``P + idx``, node ``k = 2k + 2k+1`` for ``1 <= k < P``, root ``1``. No padding to a
    power of two (160^2 leaves would waste 28 % of the memory); for ``n`` not a power of two the
    leaves sit on two depths and a descent meets them in the order ``s, .., n-1, 0, .., s-1``
    with ``s = 2^ceil(log2 n) - n`` (``first_leaf``). Updates walk to the root and *recompute*
    every ancestor from its children (never add a delta), so no rounding drift accumulates however
    wide the rate spread (10 decades for a 250 meV SED at 300 K): the tree is bitwise equal to a
    fresh build at all times, whatever the order of the updates. O(log n).
``"linear"``
    Reference: leaves only, cumulative scan on every pick, in the descent order above. O(n).
    Picks the same event as the tree for the same ``target`` up to summation-order rounding
    (~1e-16 relative).

The engine stores stacks of trees with a trailing class axis, ``tree[t, node, c]`` (tree ``t``;
interleaved per-class trees share cache lines); the functions take that 3-D form, the tree index
``t`` and the class ``c`` (indexing a 3-D array directly avoids creating views in the hot loop).
Wide trees (the engine's layer trees, ``wide_*``): ``C`` interleaved classes, fan-out ``W = 8``.
Level 0 holds the ``n`` leaves (site rates), level ``h + 1`` the sums of the groups of 8
consecutive entries of level ``h`` (the last group zero-padded), up to one root per class. Storage
is one flat row per tree, group-major and class-major inside a group: entry ``j`` of level ``h``,
class ``c`` sits at ``(goff[h] + j // 8) * 8 C + 8 c + j % 8`` (``wide_layout``), so the 8
children a descent compares are one 64-byte cache line, and a walk that recomputes all classes
reads ``C`` adjacent lines per level. ``log_8`` levels instead of ``log_2``: at 25 600 sites a layer
has 5 levels (binary: 15), and the upper ones stay in cache. A group is always summed as
``((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))``, so every node is bitwise a function of
its children. The descent meets leaves in index order, and the ``"linear"`` reference scans them
in that order. Batched updates (the engine's kernel, written out there): all changed leaves
first, then each walks up to just below its lowest common ancestor with the tree's first
changed leaf (the anchor), and the anchor to the root with the union of the classes; every
stale node is recomputed once, after its children, so the tree stays bitwise equal to a fresh
build.
"""
import numpy as np
from numba import njit

TREE = 0
LINEAR = 1
FANOUT = 8      # children per node of the wide trees (8 float64 = one cache line)
SELECTORS = {"tree": TREE, "linear": LINEAR}


def selector_code(name):
    """Integer code of a selector name; raises ValueError listing the legal names."""
    try:
        return SELECTORS[name]
    except KeyError:
        raise ValueError(f"unknown selector {name!r}; legal: {sorted(SELECTORS)}") from None


def tree_size(n):
    """Return ``P``, the node index of leaf 0 (= n, at least 1); the tree has ``2P`` nodes."""
    return max(int(n), 1)


@njit(cache=True)
def first_leaf(P):
    """Leaf index met first by a descent (``2^ceil(log2 P) - P``)."""
    q = 1
    while q < P:
        q *= 2
    return q - P


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


@njit(cache=True, inline="always")
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


@njit(cache=True, inline="always")
def total(tree, t, P, n, c, kind):
    if kind == TREE:
        return tree[t, 1, c]
    s = 0.0
    for k in range(n):
        s += tree[t, P + k, c]
    return s


@njit(cache=True, inline="always")
def pick(tree, t, P, n, c, target, kind):
    """Index ``k`` with cum[k-1] <= target < cum[k] (cumulated in descent order); returns
    (k, target - cum[k-1]).

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
    s = first_leaf(P)
    for q in range(P):          # leaves >= n are zero
        k = s + q
        if k >= P:
            k -= P
        r = tree[t, P + k, c]
        if r > 0.0:
            if target < r:
                return k, target
            target -= r
            last = k
    return last, tree[t, P + last, c] if last >= 0 else 0.0


def wide_layout(n):
    """Group offsets of a wide tree over ``n`` leaves: returns ``(goff, H)``, ``goff`` int64
    ``(H + 2,)`` (level ``h`` occupies groups ``goff[h] .. goff[h+1]-1``; ``goff[H+1]`` = number
    of groups), ``H`` = levels above the leaves (the root level)."""
    sizes = [max(int(n), 1)]
    while sizes[-1] > 1:
        sizes.append(-(-sizes[-1] // FANOUT))
    H = len(sizes) - 1
    goff = np.zeros(H + 2, dtype=np.int64)
    for h in range(H + 1):
        goff[h + 1] = goff[h] + -(-sizes[h] // FANOUT)
    return goff, H


@njit(cache=True, inline="always")
def wide_index(goff, h, j, c, C):
    """Flat index of entry ``j`` of level ``h``, class ``c`` (``C`` classes)."""
    return (goff[h] + (j >> 3)) * (8 * C) + 8 * c + (j & 7)


@njit(cache=True, inline="always")
def group_sum(w, t, b):
    """Sum of the 8 entries ``w[t, b .. b+7]`` in the fixed pairwise order."""
    return (((w[t, b] + w[t, b + 1]) + (w[t, b + 2] + w[t, b + 3]))
            + ((w[t, b + 4] + w[t, b + 5]) + (w[t, b + 6] + w[t, b + 7])))


@njit(cache=True)
def wide_init(w, t, goff, H, c, C, kind):
    """Inner levels of class ``c`` of wide tree ``t`` from its leaves (level 0, already set)."""
    if kind != TREE:
        return
    for h in range(H):
        for g in range(goff[h + 1] - goff[h]):
            w[t, wide_index(goff, h + 1, g, c, C)] = group_sum(w, t, (goff[h] + g) * 8 * C + 8 * c)


@njit(cache=True)
def wide_update(w, t, goff, H, j, rate, c, C, kind):
    """Set leaf ``j`` of class ``c`` of wide tree ``t`` and recompute its ancestors."""
    w[t, wide_index(goff, 0, j, c, C)] = rate
    if kind == TREE:
        for h in range(H):
            g = j >> 3
            w[t, wide_index(goff, h + 1, g, c, C)] = group_sum(w, t, (goff[h] + g) * 8 * C + 8 * c)
            j = g


@njit(cache=True, inline="always")
def wide_total(w, t, goff, H, n, c, C, kind):
    """Sum of the leaves of class ``c``: the root (tree) or a scan in index order (linear)."""
    if kind == TREE:
        return w[t, wide_index(goff, H, 0, c, C)]
    s = 0.0
    for j in range(n):
        s += w[t, wide_index(goff, 0, j, c, C)]
    return s


@njit(cache=True, inline="always")
def wide_pick(w, t, goff, H, n, c, C, target, kind):
    """Leaf ``j`` with cum[j-1] <= target < cum[j] (index order); returns (j, target - cum[j-1]).

    Rounding guard: zero-weight children are never entered; a scan that runs past the last
    child (target >= the sum by rounding) takes the last positive child with its full weight as
    the remainder, so the descent ends on that subtree's last positive leaf (the linear scan's
    guard).
    """
    if kind == TREE:
        j = 0
        for h in range(H, 0, -1):
            b = (goff[h - 1] + j) * 8 * C + 8 * c
            q = 0
            last = 0
            while q < 8:
                x = w[t, b + q]
                if x > 0.0:
                    if target < x:
                        break
                    target -= x
                    last = q
                q += 1
            if q == 8:
                q = last
                target = w[t, b + q]
            j = 8 * j + q
        return j, target
    last = -1
    for j in range(n):
        x = w[t, wide_index(goff, 0, j, c, C)]
        if x > 0.0:
            if target < x:
                return j, target
            target -= x
            last = j
    if last < 0:
        return 0, 0.0
    return last, w[t, wide_index(goff, 0, last, c, C)]
