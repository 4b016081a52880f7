"""Diffusion coefficient models D(x) for the Nernst-Planck equations.

Every model offers ``D_and_dD(x) -> (D, dD/dx)``, vectorised, with ``x = n_species / n_bulk``
(fraction of the bulk ion density) and ``D`` in m^2/s (SI inside the continuum engine; CSV
tables in cm^2/s are converted when read).  The NPP solver calls it inside Newton, so the
derivative is analytic and consistent with any clipping (zero where ``D`` is clipped).

Models (registry :data:`D_MODELS`):

* ``constant``: :class:`ConstantD`.
* ``sed``: :class:`SEDDiffusivity`, paper eqn (2) referenced to the bulk,
  ``D(x) = D_bulk exp((E_F(theta(x)) - E_F(theta_bulk)) / kT)`` with the site filling
  ``theta = x (1 - f_vac)`` (docs/physics.md section 2).
* ``table``: :class:`TableD`, log-linear interpolation of a measured D(x) (e.g. equilibrium KMC).
"""
from __future__ import annotations

import numpy as np
from numba import njit
from scipy.interpolate import CubicHermiteSpline
from scipy.special import expit, logit, ndtri

from continuum.sed import (SED, GaussianSED, fermi_dirac_table, fermi_level_and_derivative,
                           read_csv_columns)

CM2_S_TO_M2_S = 1e-4  # 1 cm^2/s = 1e-4 m^2/s


class ConstantD:
    """Composition-independent diffusion coefficient.

    Parameters
    ----------
    D_m2_s : float
        Diffusion coefficient [m^2/s], > 0.
    """

    name = "constant"

    def __init__(self, D_m2_s: float):
        if not (np.isfinite(D_m2_s) and D_m2_s > 0.0):
            raise ValueError(f"`D_m2_s` must be > 0, got {D_m2_s}")
        self.D_m2_s = float(D_m2_s)

    def __repr__(self):
        return f"ConstantD(D_m2_s={self.D_m2_s!r})"

    def D_and_dD(self, x):
        """``(D, dD/dx)`` [m^2/s] at fractions ``x`` (any shape); ``dD/dx = 0``."""
        x = np.asarray(x, dtype=np.float64)
        return np.full(x.shape, self.D_m2_s), np.zeros(x.shape)

    def D(self, x):
        """``D(x)`` [m^2/s]."""
        return self.D_and_dD(x)[0]


class SEDDiffusivity:
    """D(x) from the SED Fermi level, paper eqn (2) referenced to the bulk value.

    ``D(x) = D_bulk exp((E_F(theta(x)) - E_F(theta_bulk)) / kT)``, ``theta = x (1 - f_vac)``,
    ``theta_bulk = x_bulk (1 - f_vac)``.

    Limits: as ``x -> 0`` the Fermi level sinks into the lower tail and ``D -> 0`` (for a
    Gaussian SED ``D ~ exp(-sigma sqrt(2 ln(1/theta))/kT)``).  ``x`` is clipped to
    ``[x_floor, x_ceiling]`` with ``x_ceiling = (1 - 1e-12)/(1 - f_vac)`` (theta < 1), so
    ``D`` stays finite and positive for any input, including Newton overshoots to ``x <= 0``;
    the returned derivative is zero where ``x`` is clipped, consistent with the clipped ``D``.
    ``D_min`` (optional) floors ``D`` in the same consistent way.

    Parameters
    ----------
    sed : SED
        The native site energy distribution.
    D_bulk_m2_s : float
        D at ``x = x_bulk`` [m^2/s].
    f_vac : float
        Vacant fraction of sites in the bulk, in [0, 1).
    kT : float
        Thermal energy [eV].
    filling : {"step", "fermi-dirac"}
    x_bulk : float
        Reference fraction (1: the bulk composition).
    D_min_m2_s : float, optional
        Floor on D [m^2/s].
    x_floor : float
        Smallest fraction used (1e-12 by default).
    n_table : int or None
        Fermi-Dirac filling solves an integral equation per call (~0.2 s for 400 cells), too
        slow inside Newton; instead ``E_F`` is tabulated once at ``n_table`` nodes (uniform in
        ``E_F`` for Fermi-Dirac, in ``logit(theta)`` for step) over the clipped range and
        interpolated in ``logit(theta)`` by cubic Hermite splines with the exact slopes
        (error ~1e-10 eV at 801 nodes for the default Gaussian at 300 K).
        The returned derivative is the spline's own, so ``D`` and ``dD/dx`` stay consistent.
        Default: 801 for ``fermi-dirac``, none (direct) for ``step``; 0 disables.
    """

    name = "sed"

    def __init__(self, sed: SED, D_bulk_m2_s: float, f_vac: float, kT: float,
                 filling: str = "step", x_bulk: float = 1.0, D_min_m2_s: float | None = None,
                 x_floor: float = 1e-12, n_table: int | None = None):
        if not (np.isfinite(D_bulk_m2_s) and D_bulk_m2_s > 0.0):
            raise ValueError(f"`D_bulk_m2_s` must be > 0, got {D_bulk_m2_s}")
        if not (0.0 <= f_vac < 1.0):
            raise ValueError(f"`f_vac` must be in [0, 1), got {f_vac}")
        if not (np.isfinite(kT) and kT > 0.0):
            raise ValueError(f"`kT` [eV] must be > 0, got {kT}")
        if D_min_m2_s is not None and not (D_min_m2_s >= 0.0):
            raise ValueError(f"`D_min_m2_s` must be >= 0, got {D_min_m2_s}")
        self.sed = sed
        self.D_bulk_m2_s = float(D_bulk_m2_s)
        self.f_vac = float(f_vac)
        self.kT = float(kT)
        self.filling = filling
        self.D_min_m2_s = D_min_m2_s
        self.x_floor = float(x_floor)
        self.x_ceiling = (1.0 - 1e-12) / (1.0 - self.f_vac)
        if not (self.x_floor < x_bulk < self.x_ceiling):
            raise ValueError(f"`x_bulk` must be in ({self.x_floor}, {self.x_ceiling}) so that "
                             f"the site filling is below 1, got {x_bulk}")
        self.x_bulk = float(x_bulk)
        self.theta_bulk = self.x_bulk * (1.0 - self.f_vac)
        if n_table is None:
            n_table = 801 if filling == "fermi-dirac" else 0
        self._spline = None
        if n_table:
            if n_table < 4:
                raise ValueError(f"`n_table` must be 0 or >= 4, got {n_table}")
            theta_lo = self.x_floor * (1.0 - self.f_vac)
            theta_hi = self.x_ceiling * (1.0 - self.f_vac)
            if filling == "fermi-dirac":
                # E_F-uniform nodes: theta evaluated directly, no root finding per node
                y, e_f, de_dy = fermi_dirac_table(sed, kT, theta_lo, theta_hi, int(n_table))
            else:
                theta = expit(np.linspace(logit(theta_lo), logit(theta_hi), int(n_table)))
                e_f, de = fermi_level_and_derivative(sed, theta, kT, filling)
                y, de_dy = logit(theta), de * theta * (1.0 - theta)
            self._spline = CubicHermiteSpline(y, e_f, de_dy)
            self._dspline = self._spline.derivative()
        self.fermi_level_bulk_eV = float(self._fermi_level_and_slope(np.asarray(self.theta_bulk))[0])
        # parameters of the D_and_dD kernels (layout above _clip_fraction), copied here: set
        # every attribute through the constructor
        self._par = np.array([self.x_floor, self.x_ceiling, 1.0 - self.f_vac, self.D_bulk_m2_s,
                              self.fermi_level_bulk_eV, self.kT,
                              -np.inf if D_min_m2_s is None else D_min_m2_s])
        self._gaussian_step = type(sed) is GaussianSED and filling == "step"
        if self._gaussian_step:
            self._pdf_norm = sed.sigma_eV * np.sqrt(2.0 * np.pi)  # as in GaussianSED.pdf

    def _fermi_level_and_slope(self, theta):
        """``E_F`` and ``dE_F/dtheta`` [eV] (tabulated or direct)."""
        if self._spline is None:
            return fermi_level_and_derivative(self.sed, theta, self.kT, self.filling)
        y = logit(theta)
        return self._spline(y), self._dspline(y) / (theta * (1.0 - theta))

    def __repr__(self):
        return (f"SEDDiffusivity(sed={self.sed!r}, D_bulk_m2_s={self.D_bulk_m2_s!r}, "
                f"f_vac={self.f_vac!r}, kT={self.kT!r}, filling={self.filling!r}, "
                f"x_bulk={self.x_bulk!r})")

    def fermi_level(self, x):
        """``E_F`` [eV] at fractions ``x`` (clipped as in :meth:`D_and_dD`)."""
        xc = np.clip(np.asarray(x, dtype=np.float64), self.x_floor, self.x_ceiling)
        return self._fermi_level_and_slope(xc * (1.0 - self.f_vac))[0]

    def D_and_dD(self, x):
        """``(D, dD/dx)`` [m^2/s] at fractions ``x`` of the bulk density (any shape).

        Called in every Newton iteration, so the work is done by numba kernels in one pass over
        ``x`` (:func:`_sed_D_table` for a tabulated ``E_F``; ``scipy.special.ndtri`` and
        :func:`_sed_D_gaussian_step` for a Gaussian SED with step filling; otherwise the direct
        ``E_F`` and :func:`_sed_D_from_fermi_level`).  Same operations as the plain numpy
        formula; results agree with it to ~1 ulp (libm vs numpy's SIMD ``exp``).

        Raises
        ------
        ValueError
            If ``x`` contains NaN.
        """
        x = np.asarray(x, dtype=np.float64)
        flat = x.ravel()
        if self._spline is not None:
            D, dD = _sed_D_table(flat, self._par, self._spline.x, self._spline.c,
                                 self._dspline.c)
        else:
            theta = _site_filling(flat, self._par)
            if self._gaussian_step:
                D, dD = _sed_D_gaussian_step(flat, ndtri(theta, out=theta), self.sed.center_eV,
                                             self.sed.sigma_eV, self._pdf_norm, self._par)
            else:
                e_f, de_dtheta = self._fermi_level_and_slope(theta)
                D, dD = _sed_D_from_fermi_level(flat, e_f, de_dtheta, self._par)
        return D.reshape(x.shape), dD.reshape(x.shape)

    def D(self, x):
        """``D(x)`` [m^2/s]."""
        return self.D_and_dD(x)[0]


# ---------------------------------------------------------------------------------------------
# SEDDiffusivity kernels: flat float64 arrays in, (D, dD/dx) out, in one pass.  Each follows the
# operation order of the numpy formula (np.clip, scipy's logit and PPoly evaluation,
# GaussianSED.ppf/pdf) so that the results agree with it to rounding in exp/log.
# ``par = [x_floor, x_ceiling, 1 - f_vac, D_bulk, E_F(bulk), kT, D_min or -inf]``.
# ---------------------------------------------------------------------------------------------
@njit(cache=True)
def _clip_fraction(xi, par):
    """``x`` clipped to ``[x_floor, x_ceiling]``; NaN raises ValueError."""
    if xi != xi:
        raise ValueError("SEDDiffusivity.D_and_dD: `x` contains NaN")
    if xi < par[0]:
        return par[0]
    if xi > par[1]:
        return par[1]
    return xi


@njit(cache=True, error_model="numpy")
def _finish_D(xi, e_f, de_dtheta, par):
    """``(D, dD/dx)`` at one fraction ``xi`` from ``E_F`` and ``dE_F/dtheta`` at its clipped
    filling: zero derivative where ``D`` underflows, ``x`` is clipped or ``D`` is floored."""
    D = par[3] * np.exp((e_f - par[4]) / par[5])
    # dD/dx = D/kT dE_F/dtheta dtheta/dx; D underflows to 0 where 1/g(E_F) overflows
    dD = D / par[5] * de_dtheta * par[2] if D > 0.0 else 0.0
    if xi < par[0] or xi > par[1]:
        dD = 0.0
    if D < par[6]:
        return par[6], 0.0
    return D, dD


@njit(cache=True)
def _site_filling(x, par):
    """Site filling ``theta = clip(x) (1 - f_vac)`` of flat ``x``; NaN raises ValueError."""
    theta = np.empty_like(x)
    for i in range(x.size):
        theta[i] = _clip_fraction(x[i], par) * par[2]
    return theta


@njit(cache=True, error_model="numpy")
def _sed_D_from_fermi_level(x, e_f, de_dtheta, par):
    """``(D, dD/dx)`` from ``E_F`` and ``dE_F/dtheta`` at the clipped fillings of flat ``x``."""
    D = np.empty_like(x)
    dD = np.empty_like(x)
    for i in range(x.size):
        D[i], dD[i] = _finish_D(x[i], e_f[i], de_dtheta[i], par)
    return D, dD


@njit(cache=True, error_model="numpy")
def _sed_D_gaussian_step(x, q, center, sigma, pdf_norm, par):
    """``(D, dD/dx)`` for a Gaussian SED with step filling; ``q = ndtri(theta)``.

    ``E_F = center + sigma q`` and ``dE_F/dtheta = 1/g(E_F)`` with ``g`` evaluated as
    :meth:`GaussianSED.pdf` does (``pdf_norm = sigma sqrt(2 pi)``).
    """
    D = np.empty_like(x)
    dD = np.empty_like(x)
    for i in range(x.size):
        e_f = center + sigma * q[i]
        z = (e_f - center) / sigma
        pdf = np.exp(-0.5 * z * z) / pdf_norm
        D[i], dD[i] = _finish_D(x[i], e_f, 1.0 / pdf, par)
    return D, dD


@njit(cache=True, error_model="numpy")
def _sed_D_table(x, par, knots, c, dc):
    """``(D, dD/dx)`` with ``E_F`` from the cubic Hermite table in ``logit(theta)``.

    Parameters
    ----------
    x : ndarray of float64, shape (m,)
        Fractions (flat); NaN raises ValueError.
    par : ndarray of float64, shape (7,)
        See the section comment.
    knots : ndarray of float64, shape (n,)
        Increasing ``logit(theta)`` breakpoints of the spline.
    c, dc : ndarray of float64, shapes (4, n - 1) and (3, n - 1)
        Local power-basis coefficients (highest power first) of the spline and of its
        derivative (``PPoly.c``); evaluated as ``PPoly.__call__`` does (extrapolating with the
        end polynomials).
    """
    D = np.empty_like(x)
    dD = np.empty_like(x)
    last = knots.size - 2
    for i in range(x.size):
        theta = _clip_fraction(x[i], par) * par[2]
        if theta < 0.3 or theta > 0.65:  # scipy.special.logit
            y = np.log(theta / (1.0 - theta))
        else:
            t = 2.0 * (theta - 0.5)
            y = np.log1p(t) - np.log1p(-t)
        k = min(max(np.searchsorted(knots, y, side="right") - 1, 0), last)
        h = y - knots[k]
        e_f = c[3, k] + c[2, k] * h + c[1, k] * (h * h) + c[0, k] * (h * h * h)
        de_dy = dc[2, k] + dc[1, k] * h + dc[0, k] * (h * h)
        D[i], dD[i] = _finish_D(x[i], e_f, de_dy / (theta * (1.0 - theta)), par)
    return D, dD


class TableD:
    """D(x) interpolated log-linearly between tabulated points.

    ``ln D`` is linear in ``x`` between points; outside the table ``D`` is held at the end values
    (derivative zero there).  At a table point the derivative of the segment to its right is
    returned (the last point: the segment to its left).

    Parameters
    ----------
    x_points : array_like of float, shape (n,), n >= 1
        Strictly increasing fractions of the bulk density.
    D_points_m2_s : array_like of float, shape (n,)
        Positive diffusion coefficients [m^2/s].
    source : str
        Where the table came from, for messages.
    """

    name = "table"

    def __init__(self, x_points, D_points_m2_s, source: str = "table"):
        x = np.asarray(x_points, dtype=np.float64).ravel()
        D = np.asarray(D_points_m2_s, dtype=np.float64).ravel()
        if x.size != D.size or x.size < 1:
            raise ValueError(f"{source}: need equally many (>= 1) fractions and D values, got "
                             f"{x.size} and {D.size}")
        if not (np.isfinite(x).all() and np.isfinite(D).all()):
            raise ValueError(f"{source}: fractions and D values must be finite")
        if (np.diff(x) <= 0).any():
            k = int(np.argmax(np.diff(x) <= 0))
            raise ValueError(f"{source}: fractions must be strictly increasing; row {k + 2} "
                             f"({x[k + 1]}) follows {x[k]}")
        if (D <= 0).any():
            k = int(np.argmax(D <= 0))
            raise ValueError(f"{source}: D must be > 0 (log interpolation); row {k + 1} has {D[k]}")
        self.source = source
        self.x_points = x
        self.D_points_m2_s = D
        self._log_D = np.log(D)
        self._slope = np.diff(self._log_D) / np.diff(x) if x.size > 1 else np.zeros(0)

    def __repr__(self):
        return f"TableD(<{self.x_points.size} points from {self.source}>)"

    @classmethod
    def from_csv(cls, path) -> "TableD":
        """Read a CSV with header ``fraction,D_cm2_s`` (D converted to m^2/s here).

        Raises
        ------
        ValueError
            Naming the file and line for malformed input.
        """
        x, D_cm2_s = read_csv_columns(path, ("fraction", "D_cm2_s"))
        return cls(x, D_cm2_s * CM2_S_TO_M2_S, source=str(path))

    def D_and_dD(self, x):
        """``(D, dD/dx)`` [m^2/s] at fractions ``x`` (any shape)."""
        x = np.asarray(x, dtype=np.float64)
        if self.x_points.size == 1:
            return np.full(x.shape, self.D_points_m2_s[0]), np.zeros(x.shape)
        log_D = np.interp(x, self.x_points, self._log_D)
        D = np.exp(log_D)
        k = np.clip(np.searchsorted(self.x_points, x, side="right") - 1, 0, self._slope.size - 1)
        inside = (x >= self.x_points[0]) & (x <= self.x_points[-1])
        dD = np.where(inside, D * self._slope[k], 0.0)
        return D, dD

    def D(self, x):
        """``D(x)`` [m^2/s]."""
        return self.D_and_dD(x)[0]


D_MODELS = {
    "constant": ConstantD,
    "sed": SEDDiffusivity,
    "table": TableD,
}


def make_dmodel(name: str, *args, **kwargs):
    """Build a D model by registry name (:data:`D_MODELS`); unknown names list the legal ones."""
    try:
        factory = D_MODELS[name]
    except KeyError:
        raise ValueError(f"unknown D model {name!r}; choose one of: {', '.join(D_MODELS)}") from None
    return factory(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# Paper eqn (2) in its original form
# ---------------------------------------------------------------------------------------------
def activation_energy(sed: SED, theta, E_DC_eV: float, kT=None, filling: str = "step"):
    """Concentration-dependent activation energy ``E_act = E_DC - E_F(theta)`` [eV].

    Parameters
    ----------
    theta : array_like of float
        Fraction of all sites occupied, in (0, 1).
    E_DC_eV : float
        Transport threshold energy on the SED's energy scale [eV].
    """
    e_f = fermi_level_and_derivative(sed, theta, kT, filling)[0]
    return E_DC_eV - e_f


def arrhenius_D(D0_m2_s: float, E_act_eV, kT: float):
    """Paper eqn (2): ``D = D0 exp(-E_act / kT)`` [m^2/s]."""
    return D0_m2_s * np.exp(-np.asarray(E_act_eV, dtype=np.float64) / kT)


def D0_from_bulk(D_bulk_m2_s: float, E_act_bulk_eV: float, kT: float) -> float:
    """Prefactor ``D0`` [m^2/s] that makes eqn (2) give ``D_bulk`` at the bulk activation energy."""
    return float(D_bulk_m2_s * np.exp(E_act_bulk_eV / kT))
