"""Block-tridiagonal linear solve for the NPP Newton steps (docs/npp.md "Time stepping").

The Jacobian of the full NPP solver couples the unknowns of node ``j`` (``m`` of them, interleaved:
index ``j m + i``) only with those of nodes ``j - 1``, ``j`` and ``j + 1``. It is kept in the
banded storage of ``scipy.linalg.solve_banded`` (``ab[u + r - c, c] = A[r, c]``, ``u >= 2 m - 1``)
and solved here by block Gaussian elimination (the block Thomas algorithm):

    forward:  D_0 = A_00;  D_j = A_jj - A_j,j-1 G_j-1,   G_j = D_j^-1 A_j,j+1,
              y_j = D_j^-1 (b_j - A_j,j-1 y_j-1)
    backward: x_n-1 = y_n-1;  x_j = y_j - G_j x_j+1

with partial pivoting inside each ``m x m`` diagonal block. It costs ~``n m^3`` operations against
LAPACK ``dgbsv``'s ~``n (2 m)^2 x 3`` with its pivoting over the whole band: measured 0.15-0.19 ms
against 1.0 ms per solve at m = 3, 2205 nodes (docs/npp.md "Time stepping"). Pivoting only
inside the blocks is what makes it cheaper. Without pivoting across blocks the elimination is
guaranteed stable only for block-diagonally dominant systems. On NPP Jacobians it is tested
against LAPACK's banded solve with full band pivoting (tests/unit/continuum/test_npp.py), and
whole runs agreed with the LAPACK version to 3e-12 (measured when it replaced it). A singular or non-finite
pivot is reported (the Newton step is then rejected and the time step cut), never used.
"""
from __future__ import annotations

import functools

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _lu_solve(D, piv, rdiag, x, m):
    """x <- D^-1 x for D's LU factors (unit L below, U on and above the diagonal with the
    reciprocals of its diagonal in `rdiag`) and the row swaps `piv`."""
    for col in range(m):
        p = piv[col]
        if p != col:
            x[col], x[p] = x[p], x[col]
        xc = x[col]
        for a in range(col + 1, m):
            x[a] -= D[a, col] * xc
    for a in range(m - 1, -1, -1):
        acc = x[a]
        for q in range(a + 1, m):
            acc -= D[a, q] * x[q]
        x[a] = acc * rdiag[a]


@functools.lru_cache(maxsize=None)
def block_tridiagonal_solver(m):
    """The solver for ``m`` unknowns per node, compiled with ``m`` a constant (the small loops
    unroll: measured 2x faster than with ``m`` known only at run time; cached on disk per ``m``):
    ``solve(ab, u, b, G, y, D, piv, v) -> info``, solving ``A x = b`` in place (``b`` becomes
    ``x``); ``info`` is 0, or ``j + 1`` when the diagonal block of node ``j`` is singular (or
    not finite) after elimination.

    ab : ndarray (>= u + 2 m, m n)
        Banded storage, ``ab[u + r - c, c] = A[r, c]``; entries outside the block tridiagonal
        pattern are ignored (the caller guarantees they are zero).
    u : int
        Upper bandwidth of the storage (``>= 2 m - 1``).
    b : ndarray (m n,)
        Right-hand side, overwritten by the solution.
    G, y, D, piv, v
        Work arrays of shapes (n, m, m), (n, m), (m, m) float64, (m,) int64 and (m,) float64.
    """
    m = int(m)

    @njit(cache=True)
    def solve(ab, u, b, G, y, D, piv, v):
        n = b.shape[0] // m
        for j in range(n):
            base = j * m
            for a in range(m):
                r = base + a
                for q in range(m):
                    D[a, q] = ab[u + a - q, base + q]
                y[j, a] = b[r]
            if j > 0:
                # D -= L G[j-1], y -= L y[j-1] with L = A[j, j-1]
                prev = base - m
                for a in range(m):
                    r = base + a
                    for p in range(m):
                        lv = ab[u + r - (prev + p), prev + p]
                        if lv != 0.0:
                            for q in range(m):
                                D[a, q] -= lv * G[j - 1, p, q]
                            y[j, a] -= lv * y[j - 1, p]
            # LU of D with partial pivoting (row swaps recorded in piv)
            for col in range(m):
                best = col
                big = abs(D[col, col])
                for a in range(col + 1, m):
                    if abs(D[a, col]) > big:
                        big = abs(D[a, col])
                        best = a
                if not (big > 0.0) or not np.isfinite(big):
                    return j + 1
                piv[col] = best
                if best != col:   # the active part only: _lu_solve swaps as it eliminates
                    for q in range(col, m):
                        D[col, q], D[best, q] = D[best, q], D[col, q]
                inv = 1.0 / D[col, col]
                for a in range(col + 1, m):
                    f = D[a, col] * inv
                    D[a, col] = f
                    if f != 0.0:
                        for q in range(col + 1, m):
                            D[a, q] -= f * D[col, q]
            for a in range(m):
                v[a] = 1.0 / D[a, a]          # reciprocals of U's diagonal
            # right-hand sides: y[j], then the columns of U = A[j, j+1] -> G[j]
            _lu_solve(D, piv, v, y[j], m)
            if j < n - 1:
                nxt = base + m
                for q in range(m):
                    for a in range(m):
                        G[j, a, q] = ab[u + a - m - q, nxt + q]
                    _lu_solve(D, piv, v, G[j, :, q], m)
        # back substitution
        for a in range(m):
            b[(n - 1) * m + a] = y[n - 1, a]
        for j in range(n - 2, -1, -1):
            for a in range(m):
                acc = y[j, a]
                for q in range(m):
                    acc -= G[j, a, q] * b[(j + 1) * m + q]
                b[j * m + a] = acc
        return 0

    return solve


class BlockTridiagonal:
    """Work arrays for repeated solves of one size: ``solve(ab, u, b)`` (b overwritten)."""

    def __init__(self, m, n):
        self.m = int(m)
        self._solve = block_tridiagonal_solver(self.m)
        self.G = np.zeros((n, m, m))
        self.y = np.zeros((n, m))
        self.D = np.zeros((m, m))
        self.piv = np.zeros(m, np.int64)
        self.v = np.zeros(m)

    def solve(self, ab, u, b):
        """``x`` with ``A x = b`` (in `b`'s memory), or None when a pivot block is singular."""
        info = self._solve(ab, u, b, self.G, self.y, self.D, self.piv, self.v)
        return None if info else b
