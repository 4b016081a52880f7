"""The Bernoulli function of Scharfetter-Gummel fluxes, shared by both NPP solvers.

``B(t) = t / (exp(t) - 1)``: a Scharfetter-Gummel flux between nodes L and R with potential
step ``t`` (in kT/e) is ``(D/h) (B(-t) c_L - B(t) c_R)``.
"""
import numpy as np
from numba import njit, vectorize


@njit(cache=True)
def bernoulli_and_derivative(t):
    """B(t) = t / (exp(t) - 1) and dB/dt for one float, stable for all t."""
    if abs(t) < 1e-3:  # series: the closed forms cancel catastrophically near 0
        t2 = t * t
        return 1.0 - 0.5 * t + t2 / 12.0 - t2 * t2 / 720.0, -0.5 + t / 6.0 - t2 * t / 180.0
    b = t / np.expm1(t)
    return b, b * (1.0 - b) / t - b


@njit(cache=True)
def bernoulli_pair(t):
    """``(B(t), B'(t), B(-t), B'(-t))`` from one exponential: ``B(-t) = B(t) + t`` and
    ``B'(-t) = -1 - B'(t)``, evaluated from the side where the addition cannot cancel
    (``B(|t|)`` is the small one)."""
    b, db = bernoulli_and_derivative(abs(t))
    if t >= 0.0:
        return b, db, b + t, -1.0 - db
    return b - t, -1.0 - db, b, db


@vectorize(["float64(float64)"], cache=True)
def bernoulli(t):
    """B(t), element-wise over arrays (ufunc)."""
    return bernoulli_and_derivative(t)[0]


@vectorize(["float64(float64)"], cache=True)
def bernoulli_derivative(t):
    """dB/dt, element-wise over arrays (ufunc)."""
    return bernoulli_and_derivative(t)[1]
