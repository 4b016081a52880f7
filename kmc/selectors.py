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
Blocked trees (the engine's layer trees): leaf ``b`` holds the sum of the rates of the ``BLOCK``
sites ``b BLOCK .. b BLOCK + BLOCK-1`` (always summed in that order, so a leaf is bitwise a
function of its sites), the site rates live in ``leaves[t, c, site]`` (class-major: a block of one class is contiguous) (zero-padded to whole
blocks). ``pick_blocked`` picks the block (tree descent, or linear scan in descent order) and
then scans its sites in index order, so tree and linear still meet the events in the same order.
With ``n`` a multiple of the block size ``bs`` that order is exactly the unblocked tree's (block
``s_b`` starts at site ``s = bs s_b``); the engine uses ``bs = 1`` (= unblocked) otherwise.
Fewer levels and one contiguous block at the bottom: fewer cache misses per event.
Batched updates (several leaves of one tree changed by one event): ``walk_until`` each changed
leaf up to the lowest common ancestor with one *anchor* leaf of the same tree, then ``walk_mask``
the anchor to the root with the union of the classes — every stale node is recomputed once after
its children, so the result is still bitwise equal to a fresh build.
"""
import numpy as np
from numba import njit

TREE = 0
LINEAR = 1
BLOCK = 16      # sites per leaf of the engine's blocked trees (the largest that divides ny nz)
BLOCK_SIZES = (4, 2)


def block_size(n):
    """Sites per block for ``n`` sites: the largest of ``BLOCK_SIZES`` dividing ``n``, else 1
    (blocks must tile ``n`` exactly to keep the unblocked tree's event order)."""
    return next((b for b in BLOCK_SIZES if n % b == 0), 1)
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


@njit(cache=True, inline="always")
def walk_mask(tree, t, node, mask):
    """Recompute the ancestors of ``node`` for the classes in bitmask ``mask`` (3 classes)."""
    k = node >> 1
    if mask == 7:
        while k >= 1:
            a = 2 * k
            tree[t, k, 0] = tree[t, a, 0] + tree[t, a + 1, 0]
            tree[t, k, 1] = tree[t, a, 1] + tree[t, a + 1, 1]
            tree[t, k, 2] = tree[t, a, 2] + tree[t, a + 1, 2]
            k >>= 1
    else:
        while k >= 1:
            a = 2 * k
            for c in range(3):
                if mask & (1 << c):
                    tree[t, k, c] = tree[t, a, c] + tree[t, a + 1, c]
            k >>= 1


@njit(cache=True, inline="always")
def walk_until(tree, t, node, anchor, mask):
    """Recompute the ancestors of ``node`` strictly below its lowest common ancestor with
    ``anchor`` (classes in ``mask``); the anchor's own walk must follow with those classes."""
    k = node >> 1
    a = anchor
    while k != a:
        if k > a:
            for c in range(3):
                if mask & (1 << c):
                    tree[t, k, c] = tree[t, 2 * k, c] + tree[t, 2 * k + 1, c]
            k >>= 1
        else:
            a >>= 1


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


@njit(cache=True, inline="always")
def block_sum(leaves, t, b, c, bs):
    """Leaf ``b`` of a blocked tree (``bs`` sites per block): its sites' rates summed in index
    order."""
    base = b * bs
    s = 0.0
    for q in range(bs):
        s += leaves[t, c, base + q]
    return s


@njit(cache=True)
def init_blocked(tree, leaves, t, P, c, kind, bs=BLOCK):
    """Leaves (block sums) and, for the tree, the inner nodes of class ``c`` of blocked tree
    ``t`` from the site rates ``leaves`` (float64, (T, C, BLOCK P)); ``P`` = number of blocks."""
    for b in range(P):
        tree[t, P + b, c] = block_sum(leaves, t, b, c, bs)
    if kind == TREE:
        for k in range(P - 1, 0, -1):
            tree[t, k, c] = tree[t, 2 * k, c] + tree[t, 2 * k + 1, c]


@njit(cache=True)
def update_blocked(tree, leaves, t, P, idx, rate, c, kind, bs=BLOCK):
    """Set the rate of site ``idx`` of class ``c`` of blocked tree ``t``."""
    leaves[t, c, idx] = rate
    b = idx // bs
    tree[t, P + b, c] = block_sum(leaves, t, b, c, bs)
    if kind == TREE:
        walk_up(tree, t, P, b, c)


@njit(cache=True, inline="always")
def pick_blocked(tree, leaves, t, P, c, target, kind, bs=BLOCK):
    """Site ``k`` of blocked tree ``t`` with cum[k-1] <= target < cum[k] (blocks in descent
    order, sites of a block in index order); returns (k, target - cum[k-1]).

    Rounding guard as in ``pick``: a scan that runs past the block's end returns its last site
    with a positive rate.
    """
    b, target = pick(tree, t, P, P, c, target, kind)
    base = b * bs
    last = -1
    for q in range(bs):
        r = leaves[t, c, base + q]
        if r > 0.0:
            if target < r:
                return base + q, target
            target -= r
            last = base + q
    if last < 0:
        return base, 0.0
    return last, leaves[t, c, last]
