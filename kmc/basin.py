"""Exact exits from a small group of sites (a superbasin): absorbing Markov chain theory.

While the rest of the lattice is frozen, one ion moving inside a group of ``n`` sites is a
continuous-time Markov chain on ``n`` transient states (its site in the group) with ``e``
absorbing exits (a hop out of the group, through a given bond). With the internal rates
``K[i, j]`` (i -> j, i != j) and the exit rates ``R[i, a]``, the sub-generator is

    Q = K - diag(K 1 + R 1),

and for an initial distribution ``p0`` over the group (Novotny's absorbing Markov chains,
the "MCAMC" of M. A. Novotny, Annu. Rev. Comput. Phys. IX, 2001):

* the survival probability is ``S(t) = p0^T exp(Q t) 1``; the exit time has the phase-type
  density ``-dS/dt = p0^T exp(Q t) r`` with ``r = R 1``;
* the probability of leaving through exit ``a`` is ``p0^T (-Q)^-1 R[:, a]``, the mean exit time
  ``p0^T (-Q)^-1 1``;
* given the exit time ``t``, the last site before the exit is ``j`` with probability
  ``p_j(t) r_j / sum_k p_k(t) r_k`` (``p(t) = exp(Q^T t) p0``), and the exit through ``a`` from
  ``j`` has probability ``R[j, a] / r_j``;
* given no exit up to ``t``, the ion is on site ``j`` with probability ``p_j(t) / S(t)`` (used
  when a change of the neighbourhood invalidates the group before its exit).

The hop rates of the engine obey detailed balance with respect to ``w_i = exp(-(E_i + q phi_i)/kT)``
(kmc.rates), so ``K`` is reversible: ``D^1/2 Q D^-1/2`` with ``D = diag(w)`` is symmetric, and the
spectral decomposition ``exp(Q t) = D^-1/2 V exp(Lambda t) V^T D^1/2`` is exact and stable. All
functions here are that decomposition; :func:`sample_exit` draws ``(t, j, a)`` exactly from three
uniforms (the time by bisection on the survival function, to a relative 1e-13).

This module is the mathematics of the planned rattling acceleration (docs/acceleration.md); it
is validated against brute-force simulation of the same chains (tests/unit/kmc/test_basin.py).
"""
from __future__ import annotations

import numpy as np


class Basin:
    """A group of ``n`` sites with internal rates ``K`` (n x n) and exit rates ``R`` (n x e).

    Parameters
    ----------
    K : ndarray of float64, shape (n, n)
        ``K[i, j]`` rate [1/s] of the hop i -> j inside the group (diagonal ignored).
    R : ndarray of float64, shape (n, e)
        ``R[i, a]`` rate [1/s] of the exit ``a`` from site i.
    weights : ndarray of float64, shape (n,)
        Detailed-balance weights ``w`` with ``w_i K[i, j] = w_j K[j, i]`` (checked to 1e-9).
    """

    def __init__(self, K, R, weights):
        K = np.array(K, dtype=float)
        R = np.atleast_2d(np.array(R, dtype=float))
        w = np.asarray(weights, dtype=float)
        n = K.shape[0]
        if K.shape != (n, n) or R.shape[0] != n or w.shape != (n,):
            raise ValueError(f"shapes K {K.shape}, R {R.shape}, weights {w.shape} do not fit")
        if np.any(K < 0) or np.any(R < 0) or np.any(w <= 0):
            raise ValueError("rates must be >= 0 and weights > 0")
        np.fill_diagonal(K, 0.0)
        flux = w[:, None] * K
        if not np.allclose(flux, flux.T, rtol=1e-9, atol=1e-300):
            raise ValueError("internal rates are not reversible with respect to `weights`")
        if not np.all(R.sum(axis=1) >= 0) or R.sum() <= 0:
            raise ValueError("the group needs at least one exit with a positive rate")
        self.K, self.R, self.w = K, R, w
        self.r = R.sum(axis=1)                               # total exit rate per site
        self.Q = K - np.diag(K.sum(axis=1) + self.r)
        s = np.sqrt(w)
        sym = s[:, None] * self.Q / s[None, :]
        sym = 0.5 * (sym + sym.T)                            # symmetric up to round-off
        lam, V = np.linalg.eigh(sym)
        if np.any(lam >= 0):
            raise ValueError("some state of the group cannot reach an exit")
        self.lam = lam                                       # eigenvalues, all < 0 [1/s]
        self._left = V / s[:, None]                          # D^-1/2 V  (p0^T on the left)
        self._right = V.T * s[None, :]                       # V^T D^1/2

    @property
    def n(self) -> int:
        return self.K.shape[0]

    # -- the distribution p(t) over the group (unnormalised: mass lost to the exits) ----------
    def occupation(self, p0, t) -> np.ndarray:
        """``p(t) = exp(Q^T t) p0``: probability to be on each site and not yet out, shape (n,)."""
        c = np.asarray(p0, float) @ self._left               # p0^T D^-1/2 V
        return (c * np.exp(self.lam * float(t))) @ self._right

    def survival(self, p0, t) -> float:
        """``S(t)``: probability that the ion is still in the group at time t."""
        return float(np.sum(self.occupation(p0, t)))

    def conditional_site(self, p0, t) -> np.ndarray:
        """Distribution of the site at time t given no exit yet, shape (n,)."""
        p = np.clip(self.occupation(p0, t), 0.0, None)
        return p / p.sum()

    # -- exits -------------------------------------------------------------------------------
    def exit_probabilities(self, p0) -> np.ndarray:
        """``p0^T (-Q)^-1 R``: probability of leaving through each exit, shape (e,)."""
        return np.linalg.solve(-self.Q.T, np.asarray(p0, float)) @ self.R

    def mean_exit_time(self, p0) -> float:
        """``p0^T (-Q)^-1 1`` [s]."""
        return float(np.sum(np.linalg.solve(-self.Q.T, np.asarray(p0, float))))

    def sample_exit(self, p0, u_time, u_site, u_exit):
        """Exact draw of the exit: time t [s], last site j, exit a, from three uniforms in [0, 1).

        t solves ``S(t) = 1 - u_time`` (bisection on the monotone survival function, bracketed by
        the slowest decay rate); j is drawn with weights ``p_j(t) r_j``; a with ``R[j, a]``.
        """
        p0 = np.asarray(p0, float)
        target = 1.0 - float(u_time)
        if target >= 1.0:
            t = 0.0
        else:
            lo, hi = 0.0, 1.0 / float(-self.lam.max())
            while self.survival(p0, hi) > target:
                lo, hi = hi, 2.0 * hi
            for _ in range(200):
                mid = 0.5 * (lo + hi)
                if self.survival(p0, mid) > target:
                    lo = mid
                else:
                    hi = mid
                if hi - lo <= 1e-13 * hi:
                    break
            t = 0.5 * (lo + hi)
        flux = np.clip(self.occupation(p0, t), 0.0, None) * self.r
        j = _pick(flux, u_site)
        a = _pick(self.R[j], u_exit)
        return t, j, a


def _pick(weights, u) -> int:
    """Index k with cum[k-1] <= u * total < cum[k] over the positive weights."""
    c = np.cumsum(weights)
    k = int(np.searchsorted(c, float(u) * c[-1], side="right"))
    return min(k, len(weights) - 1)


def simulate_exit(K, R, start, rng):
    """Reference: plain KMC of the group from site `start` until it exits; returns (t, j, a).

    The hops inside the group are simulated one by one (what the acceleration skips)."""
    K = np.array(K, float)
    np.fill_diagonal(K, 0.0)
    R = np.atleast_2d(np.asarray(R, float))
    n, e = R.shape
    i, t = int(start), 0.0
    while True:
        rates = np.concatenate((K[i], R[i]))
        tot = rates.sum()
        t += rng.exponential(1.0 / tot)
        k = _pick(rates, rng.random())
        if k >= n:
            return t, i, k - n
        i = k
