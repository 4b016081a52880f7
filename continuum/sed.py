"""Site energy distributions (SEDs), their filling and the ionic Fermi level.

An SED ``g(E)`` is the probability density of the site energy ``E`` [eV] of one ion site,
normalised to 1 over all sites (occupied and vacant).  Ions fill the SED bottom-up; the fraction
of *all* sites that is occupied is ``theta`` (``theta = x (1 - f_vac)`` for a fraction ``x`` of
the bulk ion density).  Two fillings give the Fermi level ``E_F(theta)`` (docs/physics.md section 2):

* ``step`` (T -> 0, as in the paper): ``E_F = G^-1(theta)`` with ``G`` the cumulative SED;
* ``fermi-dirac``: ``integral g(E) f(E - E_F) dE = theta`` with ``f(x) = 1/(1 + exp(x/kT))``.

Every SED class offers vectorised ``pdf``, ``cdf``, ``sf``, ``ppf``, ``sample(rng, n)``, ``mean``,
``std`` and ``grid``.  ``sample`` is the duck-typed interface the KMC engine uses to draw site
energies without importing :mod:`continuum`.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from scipy import special

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))  # FWHM / sigma of a Gaussian

# Fermi-Dirac quadrature: the logistic kernel f(1-f) is below 2e-22 beyond |u| = 50 (u = x/kT).
_FD_U_MAX = 50.0
_FD_NEWTON_XTOL_EV = 1e-13
_MAX_ITER = 200


# ---------------------------------------------------------------------------------------------
# Small numerical helpers
# ---------------------------------------------------------------------------------------------
def _as_float_array(value, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if np.isnan(arr).any():
        raise ValueError(f"`{name}` contains NaN")
    return arr


def _check_probability(p, name: str = "p") -> np.ndarray:
    """Probabilities strictly inside (0, 1): the inverse CDF is infinite at 0 and 1."""
    p = _as_float_array(p, name)
    bad = ~((p > 0.0) & (p < 1.0))
    if bad.any():
        raise ValueError(f"`{name}` must lie strictly between 0 and 1, got "
                         f"{p[bad].ravel()[:3].tolist()}")
    return p


def _solve_increasing(fun, x0, lo, hi, xtol=_FD_NEWTON_XTOL_EV, what="equation"):
    """Vectorised safeguarded Newton for ``fun(x, idx) = 0`` with ``fun`` increasing in ``x``.

    Parameters
    ----------
    fun : callable ``(x, idx) -> (r, dr_dx)``
        Residual and its derivative at ``x`` for the problems ``idx`` (index array into the
        flattened problem set).
    x0, lo, hi : ndarray of float64, shape (m,)
        Start value and a bracket with ``r(lo) <= 0 <= r(hi)``.
    xtol : float
        Absolute tolerance on ``x``.

    Returns
    -------
    ndarray of float64, shape (m,)
    """
    x, lo, hi = x0.copy(), lo.copy(), hi.copy()
    active = np.arange(x.size)
    for _ in range(_MAX_ITER):
        if active.size == 0:
            return x
        xa = x[active]
        r, dr = fun(xa, active)
        # tighten the bracket with the sign of the residual
        lo[active] = np.where(r <= 0.0, xa, lo[active])
        hi[active] = np.where(r >= 0.0, xa, hi[active])
        with np.errstate(divide="ignore", invalid="ignore"):
            x_new = xa - r / dr
        bisect = ~np.isfinite(x_new) | (x_new <= lo[active]) | (x_new >= hi[active])
        x_new = np.where(bisect, 0.5 * (lo[active] + hi[active]), x_new)
        step = np.abs(x_new - xa)
        x[active] = x_new
        done = (step <= xtol) | (r == 0.0) | (hi[active] - lo[active] <= xtol)
        active = active[~done]
    raise ValueError(f"{what}: no convergence after {_MAX_ITER} iterations for "
                     f"{active.size} value(s)")


def _bracket_increasing(fun, x0, width):
    """Expand ``[x0 - width, x0 + width]`` until ``fun`` changes sign (``fun(x, idx) -> (r, dr)``)."""
    lo, hi = x0 - width, x0 + width
    idx = np.arange(x0.size)
    for _ in range(100):
        r_lo, _ = fun(lo, idx)
        r_hi, _ = fun(hi, idx)
        bad_lo, bad_hi = r_lo > 0.0, r_hi < 0.0
        if not (bad_lo.any() or bad_hi.any()):
            return lo, hi
        width = 2.0 * width
        lo = np.where(bad_lo, lo - width, lo)
        hi = np.where(bad_hi, hi + width, hi)
    raise ValueError("could not bracket the Fermi level; is theta within (1e-250, 1 - 1e-16)?")


def read_csv_columns(path, columns: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    """Read named float columns from a CSV file with a header line.

    Parameters
    ----------
    path : path-like
        The CSV file; lines starting with ``#`` and blank lines are skipped.
    columns : tuple of str
        Header names that must be present (other columns are ignored).

    Returns
    -------
    tuple of ndarray of float64, each shape (n_rows,)

    Raises
    ------
    ValueError
        Missing file, missing header/column, non-numeric or missing value; the message names the
        file and the line number.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    with path.open(newline="") as fh:
        lines = [(i, ln) for i, ln in enumerate(fh, start=1)
                 if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ValueError(f"{path}: empty file; expected a header line `{','.join(columns)}`")
    rows = list(csv.reader([ln for _, ln in lines]))
    header = [h.strip() for h in rows[0]]
    missing = [c for c in columns if c not in header]
    if missing:
        raise ValueError(f"{path}, line {lines[0][0]}: header must contain the columns "
                         f"{', '.join(columns)}; got {', '.join(header)}")
    where = [header.index(c) for c in columns]
    data = [[] for _ in columns]
    for (lineno, _), row in zip(lines[1:], rows[1:]):
        if len(row) != len(header):
            raise ValueError(f"{path}, line {lineno}: expected {len(header)} values, "
                             f"got {len(row)}")
        for k, j in enumerate(where):
            try:
                value = float(row[j])
            except ValueError:
                raise ValueError(f"{path}, line {lineno}: column `{columns[k]}` is not a "
                                 f"number: {row[j].strip()!r}") from None
            if not np.isfinite(value):
                raise ValueError(f"{path}, line {lineno}: column `{columns[k]}` must be "
                                 f"finite, got {row[j].strip()!r}")
            data[k].append(value)
    if not data[0]:
        raise ValueError(f"{path}: no data rows after the header")
    return tuple(np.asarray(d, dtype=np.float64) for d in data)


# ---------------------------------------------------------------------------------------------
# SED classes
# ---------------------------------------------------------------------------------------------
class SED:
    """Base class: a normalised site energy density ``g(E)`` [1/eV], ``E`` in eV.

    Subclasses implement ``pdf``, ``cdf``, ``ppf``, ``mean``, ``std``, ``grid`` and
    ``energy_scale`` (the smallest energy over which ``g`` changes, which sets the
    Fermi-Dirac quadrature step).  ``sf`` defaults to ``1 - cdf``.
    """

    kind = "abstract"

    def pdf(self, energy_eV):  # pragma: no cover - interface
        raise NotImplementedError

    def cdf(self, energy_eV):  # pragma: no cover - interface
        raise NotImplementedError

    def ppf(self, p):  # pragma: no cover - interface
        raise NotImplementedError

    def sf(self, energy_eV):
        """Survival function ``1 - cdf(E)``; subclasses override it for accurate upper tails."""
        return 1.0 - self.cdf(energy_eV)

    @property
    def mean(self) -> float:  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def std(self) -> float:  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def energy_scale(self) -> float:  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def support(self) -> tuple[float, float]:
        """Energies outside which ``g = 0`` (``(-inf, inf)`` for Gaussians)."""
        return (-np.inf, np.inf)

    @property
    def density_jumps(self) -> tuple[np.ndarray, np.ndarray]:
        """Energies [eV] where ``g`` jumps and the jumps ``g(E+) - g(E-)`` [1/eV]."""
        return (np.zeros(0), np.zeros(0))

    def grid(self, n_points: int = 801) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def sample(self, rng, n: int) -> np.ndarray:
        """Draw ``n`` site energies by inverse-transform sampling.

        Parameters
        ----------
        rng : numpy.random.Generator
        n : int

        Returns
        -------
        ndarray of float64, shape (n,), eV
        """
        # rng.random() gives k * 2**-53 in [0, 1); the half-step shift makes it (0, 1), where
        # the inverse CDF is finite.
        u = rng.random(int(n)) + 2.0 ** -54
        return np.asarray(self.ppf(u), dtype=np.float64).reshape(int(n))


class GaussianSED(SED):
    """Gaussian SED given by its centre and full width at half maximum.

    Parameters
    ----------
    center_eV : float
        Mean site energy [eV].
    fwhm_eV : float
        Full width at half maximum [eV]; ``sigma = FWHM / (2 sqrt(2 ln 2))``.
    """

    kind = "gaussian"

    def __init__(self, center_eV: float = 0.0, fwhm_eV: float = 0.25):
        if not np.isfinite(center_eV):
            raise ValueError(f"`center_eV` must be finite, got {center_eV}")
        if not (np.isfinite(fwhm_eV) and fwhm_eV > 0.0):
            raise ValueError(f"`fwhm_eV` must be > 0, got {fwhm_eV}")
        self.center_eV = float(center_eV)
        self.fwhm_eV = float(fwhm_eV)
        self.sigma_eV = self.fwhm_eV / FWHM_PER_SIGMA

    def __repr__(self):
        return f"GaussianSED(center_eV={self.center_eV!r}, fwhm_eV={self.fwhm_eV!r})"

    def _z(self, energy_eV):
        return (np.asarray(energy_eV, dtype=np.float64) - self.center_eV) / self.sigma_eV

    def pdf(self, energy_eV):
        z = self._z(energy_eV)
        return np.exp(-0.5 * z * z) / (self.sigma_eV * np.sqrt(2.0 * np.pi))

    def cdf(self, energy_eV):
        return special.ndtr(self._z(energy_eV))

    def sf(self, energy_eV):
        return special.ndtr(-self._z(energy_eV))

    def ppf(self, p):
        # ndtri keeps full relative precision in the lower tail (p down to 1e-300)
        return self.center_eV + self.sigma_eV * special.ndtri(_check_probability(p))

    @property
    def mean(self) -> float:
        return self.center_eV

    @property
    def std(self) -> float:
        return self.sigma_eV

    @property
    def energy_scale(self) -> float:
        return self.sigma_eV

    def grid(self, n_points: int = 801) -> np.ndarray:
        """``n_points`` energies spanning the centre +- 5 sigma [eV]."""
        return np.linspace(self.center_eV - 5 * self.sigma_eV, self.center_eV + 5 * self.sigma_eV,
                           int(n_points))


class GaussianMixtureSED(SED):
    """Sum of Gaussians.

    Parameters
    ----------
    components : sequence of (weight, center_eV, fwhm_eV)
        Relative weights (> 0, normalised here), centres [eV] and FWHMs [eV].
    """

    kind = "gaussians"

    def __init__(self, components):
        comps = [tuple(float(v) for v in c) for c in components]
        if not comps:
            raise ValueError("`components` must contain at least one (weight, center_eV, fwhm_eV)")
        for i, c in enumerate(comps):
            if len(c) != 3:
                raise ValueError(f"component {i}: expected (weight, center_eV, fwhm_eV), got {c}")
            w, mu, fwhm = c
            if not (np.isfinite(w) and w > 0.0):
                raise ValueError(f"component {i}: weight must be > 0, got {w}")
            if not np.isfinite(mu):
                raise ValueError(f"component {i}: center_eV must be finite, got {mu}")
            if not (np.isfinite(fwhm) and fwhm > 0.0):
                raise ValueError(f"component {i}: fwhm_eV must be > 0, got {fwhm}")
        arr = np.asarray(comps, dtype=np.float64)
        self.weights = arr[:, 0] / arr[:, 0].sum()
        self.centers_eV = arr[:, 1]
        self.fwhms_eV = arr[:, 2]
        self.sigmas_eV = self.fwhms_eV / FWHM_PER_SIGMA
        self._log_w = np.log(self.weights)

    def __repr__(self):
        comps = [(float(w), float(m), float(f))
                 for w, m, f in zip(self.weights, self.centers_eV, self.fwhms_eV)]
        return f"GaussianMixtureSED(components={comps!r})"

    @property
    def components(self) -> tuple:
        """Normalised ``(weight, center_eV, fwhm_eV)`` triples."""
        return tuple((float(w), float(m), float(f))
                     for w, m, f in zip(self.weights, self.centers_eV, self.fwhms_eV))

    def _z(self, energy_eV):
        e = np.asarray(energy_eV, dtype=np.float64)[..., None]
        return (e - self.centers_eV) / self.sigmas_eV

    def pdf(self, energy_eV):
        z = self._z(energy_eV)
        comp = np.exp(-0.5 * z * z) / (self.sigmas_eV * np.sqrt(2.0 * np.pi))
        return comp @ self.weights

    def cdf(self, energy_eV):
        return special.ndtr(self._z(energy_eV)) @ self.weights

    def sf(self, energy_eV):
        return special.ndtr(-self._z(energy_eV)) @ self.weights

    def _log_cdf_sf_pdf(self, energy_eV):
        """log cdf, log sf and log pdf, accurate far in both tails."""
        z = self._z(energy_eV)
        log_pdf_c = -0.5 * z * z - np.log(self.sigmas_eV * np.sqrt(2.0 * np.pi))
        log_cdf = special.logsumexp(self._log_w + special.log_ndtr(z), axis=-1)
        log_sf = special.logsumexp(self._log_w + special.log_ndtr(-z), axis=-1)
        log_pdf = special.logsumexp(self._log_w + log_pdf_c, axis=-1)
        return log_cdf, log_sf, log_pdf

    def ppf(self, p):
        p = _check_probability(p)
        shape = p.shape
        pf = p.ravel()
        # Every component's CDF is <= p below min_i(mu_i + s_i ndtri(p)) and >= p above the max:
        # a guaranteed bracket.
        q = self.centers_eV + self.sigmas_eV * special.ndtri(pf)[:, None]
        lo, hi = q.min(axis=1), q.max(axis=1)
        lower = pf <= 0.5
        log_p, log_1mp = np.log(pf), np.log1p(-pf)

        def fun(e, idx):
            # log-residuals are nearly linear in the tails, where Newton on cdf - p crawls
            log_cdf, log_sf, log_pdf = self._log_cdf_sf_pdf(e)
            low = lower[idx]
            r = np.where(low, log_cdf - log_p[idx], log_1mp[idx] - log_sf)
            dr = np.where(low, np.exp(log_pdf - log_cdf), np.exp(log_pdf - log_sf))
            return r, dr

        x0 = 0.5 * (lo + hi)
        tol = 1e-14 * max(1.0, float(np.max(np.abs(self.centers_eV))) + float(self.sigmas_eV.max()))
        e = _solve_increasing(fun, x0, lo, hi, xtol=tol, what="GaussianMixtureSED.ppf")
        return e.reshape(shape)

    @property
    def mean(self) -> float:
        return float(self.weights @ self.centers_eV)

    @property
    def std(self) -> float:
        second = self.weights @ (self.sigmas_eV ** 2 + self.centers_eV ** 2)
        return float(np.sqrt(max(second - self.mean ** 2, 0.0)))

    @property
    def energy_scale(self) -> float:
        return float(self.sigmas_eV.min())

    def grid(self, n_points: int = 801) -> np.ndarray:
        """``n_points`` energies spanning every component's centre +- 5 sigma [eV]."""
        lo = float(np.min(self.centers_eV - 5 * self.sigmas_eV))
        hi = float(np.max(self.centers_eV + 5 * self.sigmas_eV))
        return np.linspace(lo, hi, int(n_points))


class TabulatedSED(SED):
    """SED tabulated at energy points, linear between them and zero outside.

    Parameters
    ----------
    energy_eV : array_like of float, shape (n,), n >= 2
        Strictly increasing energies [eV].
    density : array_like of float, shape (n,)
        Non-negative density (any normalisation: it is normalised to unit area here).
    source : str, optional
        Where the table came from, for messages.
    """

    kind = "table"

    def __init__(self, energy_eV, density, source: str = "table"):
        e = np.asarray(energy_eV, dtype=np.float64).ravel()
        g = np.asarray(density, dtype=np.float64).ravel()
        if e.size != g.size:
            raise ValueError(f"{source}: energy_eV and density differ in length "
                             f"({e.size} vs {g.size})")
        if e.size < 2:
            raise ValueError(f"{source}: need at least 2 energy points, got {e.size}")
        if not (np.isfinite(e).all() and np.isfinite(g).all()):
            raise ValueError(f"{source}: energies and densities must be finite")
        steps = np.diff(e)
        if (steps <= 0).any():
            k = int(np.argmax(steps <= 0))
            raise ValueError(f"{source}: energies must be strictly increasing; row {k + 2} "
                             f"({e[k + 1]} eV) follows {e[k]} eV")
        if (g < 0).any():
            k = int(np.argmax(g < 0))
            raise ValueError(f"{source}: density must be >= 0; row {k + 1} has {g[k]}")
        seg_area = 0.5 * (g[1:] + g[:-1]) * steps
        area = seg_area.sum()
        if not area > 0.0:
            raise ValueError(f"{source}: the density integrates to zero")
        self.source = source
        self.energy_eV = e
        self.density = g / area  # normalised values at the nodes [1/eV]
        self._slope = np.diff(self.density) / steps
        self._cum = np.concatenate(([0.0], np.cumsum(seg_area / area)))
        self._cum[-1] = 1.0
        # sf at the nodes, summed from the top so the upper tail keeps its relative precision
        self._cum_sf = np.concatenate((np.cumsum((seg_area / area)[::-1])[::-1], [0.0]))

    def __repr__(self):
        return f"TabulatedSED(<{self.energy_eV.size} points from {self.source}>)"

    @classmethod
    def from_csv(cls, path) -> "TabulatedSED":
        """Read a CSV with a header and the columns ``energy_eV,density``.

        Raises
        ------
        ValueError
            Naming the file (and the line) for a missing file, header or malformed row,
            negative densities or energies that are not strictly increasing.
        """
        energy, density = read_csv_columns(path, ("energy_eV", "density"))
        return cls(energy, density, source=str(path))

    @classmethod
    def from_sed(cls, sed: SED, energy_eV) -> "TabulatedSED":
        """Tabulate another SED's ``pdf`` on the given energies."""
        energy_eV = np.asarray(energy_eV, dtype=np.float64)
        return cls(energy_eV, sed.pdf(energy_eV), source=repr(sed))

    def _segment(self, e):
        k = np.searchsorted(self.energy_eV, e, side="right") - 1
        return np.clip(k, 0, self.energy_eV.size - 2)

    def pdf(self, energy_eV):
        e = np.asarray(energy_eV, dtype=np.float64)
        g = np.interp(e, self.energy_eV, self.density, left=0.0, right=0.0)
        return g

    def cdf(self, energy_eV):
        e = np.asarray(energy_eV, dtype=np.float64)
        k = self._segment(e)
        t = np.clip(e - self.energy_eV[k], 0.0, self.energy_eV[k + 1] - self.energy_eV[k])
        c = self._cum[k] + self.density[k] * t + 0.5 * self._slope[k] * t * t
        return np.where(e <= self.energy_eV[0], 0.0, np.where(e >= self.energy_eV[-1], 1.0, c))

    def sf(self, energy_eV):
        e = np.asarray(energy_eV, dtype=np.float64)
        k = self._segment(e)
        t = np.clip(self.energy_eV[k + 1] - e, 0.0, self.energy_eV[k + 1] - self.energy_eV[k])
        # integrate down from the upper node of the segment
        s = self._cum_sf[k + 1] + self.density[k + 1] * t - 0.5 * self._slope[k] * t * t
        return np.where(e <= self.energy_eV[0], 1.0, np.where(e >= self.energy_eV[-1], 0.0, s))

    def ppf(self, p):
        p = _check_probability(p)
        # side="right" skips zero-mass segments (flat CDF) to the first one with mass
        k = np.clip(np.searchsorted(self._cum, p, side="right") - 1, 0, self.energy_eV.size - 2)
        q = p - self._cum[k]
        g0, s = self.density[k], self._slope[k]
        # root of s t^2/2 + g0 t - q = 0 in the cancellation-free form
        disc = np.sqrt(np.maximum(g0 * g0 + 2.0 * s * q, 0.0))
        den = g0 + disc
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(den > 0.0, 2.0 * q / den, 0.0)
        h = self.energy_eV[k + 1] - self.energy_eV[k]
        return self.energy_eV[k] + np.clip(t, 0.0, h)

    def _moment(self, power: int) -> float:
        # g is linear per segment, so Simpson's rule is exact for E^power g with power <= 2
        a, b = self.energy_eV[:-1], self.energy_eV[1:]
        m = 0.5 * (a + b)
        gm = 0.5 * (self.density[:-1] + self.density[1:])
        f = a ** power * self.density[:-1] + 4 * m ** power * gm + b ** power * self.density[1:]
        return float(np.sum((b - a) / 6.0 * f))

    @property
    def mean(self) -> float:
        return self._moment(1)

    @property
    def std(self) -> float:
        return float(np.sqrt(max(self._moment(2) - self.mean ** 2, 0.0)))

    @property
    def energy_scale(self) -> float:
        return float(np.min(np.diff(self.energy_eV)))

    @property
    def support(self) -> tuple[float, float]:
        return (float(self.energy_eV[0]), float(self.energy_eV[-1]))

    @property
    def density_jumps(self) -> tuple[np.ndarray, np.ndarray]:
        e = np.array([self.energy_eV[0], self.energy_eV[-1]])
        j = np.array([self.density[0], -self.density[-1]])
        keep = j != 0.0
        return e[keep], j[keep]

    def grid(self, n_points: int = 801) -> np.ndarray:
        """``n_points`` energies spanning the table [eV]."""
        return np.linspace(self.energy_eV[0], self.energy_eV[-1], int(n_points))


SEDS = {
    "gaussian": GaussianSED,
    "gaussians": GaussianMixtureSED,
    "table": TabulatedSED.from_csv,
}


def make_sed(kind: str, *args, **kwargs) -> SED:
    """Build an SED by registry name (``SEDS``); unknown names list the legal ones."""
    try:
        factory = SEDS[kind]
    except KeyError:
        raise ValueError(f"unknown SED kind {kind!r}; choose one of: {', '.join(SEDS)}") from None
    return factory(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# Filling and Fermi level
# ---------------------------------------------------------------------------------------------
def kT_eV(temperature_K: float) -> float:
    """Thermal energy k_B T in eV."""
    from scipy import constants

    return constants.k * float(temperature_K) / constants.e


def _check_kT(kT):
    if kT is None or not (np.isfinite(kT) and kT > 0.0):
        raise ValueError(f"`kT` [eV] must be > 0 for Fermi-Dirac filling, got {kT}")
    return float(kT)


def _fd_nodes(sed: SED, kT: float):
    """Trapezoid nodes ``u`` and normalised weights ``w ~ h f(1-f)`` of the logistic kernel.

    ``theta(E_F) = integral G(E_F + kT u) f(u)(1-f(u)) du`` (``integral g f dE`` integrated by
    parts).  The kernel is analytic, so the trapezoid rule converges geometrically for smooth
    ``G`` (Gaussians); tables (piecewise-quadratic ``G``) converge algebraically and need a finer
    step relative to their node spacing.
    """
    if sed.kind == "table":
        h = min(0.01, sed.energy_scale / kT / 8.0)
    else:
        h = min(0.1, 0.5 * sed.energy_scale / kT)
    h = max(h, 1e-4)  # kT far above every SED feature: 1e6 nodes at most
    n = int(np.ceil(_FD_U_MAX / h))
    u = np.linspace(-n * h, n * h, 2 * n + 1)
    w = 0.25 / np.cosh(0.5 * u) ** 2  # f(1-f) = 1/(4 cosh^2(u/2))
    return u, w / w.sum()


def _softplus(z):
    """``ln(1 + exp(z))`` without overflow and with relative precision for z << 0."""
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def _fd_occupancy(sed: SED, e_f, kT, u, w, upper):
    """theta (or 1 - theta where ``upper``) and dtheta/dE_F [1/eV] at Fermi levels ``e_f``.

    Jumps ``J_k`` of ``g`` at ``E_k`` (table ends) are kinks of ``G`` that would cut the
    trapezoid rule to O(h^2); they are removed with ramps whose logistic convolution is exact:
    ``integral (E_F + kT u - E_k)_+ f(1-f) du = kT softplus((E_F - E_k)/kT)``.  The ramps vanish
    on the side of the tail being computed, so tails keep their relative precision.
    """
    e = e_f[:, None] + kT * u[None, :]
    e_k, jump = sed.density_jumps
    occ = np.where(upper[:, None], sed.sf(e), sed.cdf(e))
    dens = sed.pdf(e)
    extra_occ = np.zeros(e_f.shape)
    extra_slope = np.zeros(e_f.shape)
    for ek, jk in zip(e_k, jump):
        ramp_lo = np.maximum(e - ek, 0.0)  # used for theta (vanishes below E_k)
        ramp_hi = np.maximum(ek - e, 0.0)  # used for 1 - theta (vanishes above E_k)
        occ = occ - jk * np.where(upper[:, None], -ramp_hi, ramp_lo)
        dens = dens - jk * (e > ek)
        extra_occ += jk * kT * np.where(upper, -_softplus((ek - e_f) / kT),
                                        _softplus((e_f - ek) / kT))
        extra_slope += jk * special.expit((e_f - ek) / kT)
    return occ @ w + extra_occ, dens @ w + extra_slope


def _fermi_level_fd_chunk(sed: SED, theta: np.ndarray, kT: float, u, w) -> np.ndarray:
    upper = theta > 0.5
    log_t = np.where(upper, np.log1p(-theta), np.log(theta))

    def fun(e_f, idx):
        # log form: in the tails theta ~ exp(E_F/kT), so the residual is nearly linear in E_F
        up = upper[idx]
        occ, slope = _fd_occupancy(sed, e_f, kT, u, w, up)
        occ = np.maximum(occ, 1e-300)
        r = np.where(up, log_t[idx] - np.log(occ), np.log(occ) - log_t[idx])
        return r, slope / occ

    x0 = _step_start(sed, theta)
    lo, hi = _bracket_increasing(fun, x0, 2.0 * kT)
    return _solve_increasing(fun, x0, lo, hi, what="Fermi-Dirac Fermi level")


def _fermi_level_fd(sed: SED, theta: np.ndarray, kT: float) -> tuple[np.ndarray, np.ndarray]:
    """Fermi-Dirac Fermi level and dE_F/dtheta for flat ``theta`` (values in (0, 1))."""
    u, w = _fd_nodes(sed, kT)
    out = np.empty_like(theta)
    chunk = max(1, 2_000_000 // u.size)  # bounds the (m, n_nodes) work arrays
    for start in range(0, theta.size, chunk):
        sl = slice(start, start + chunk)
        out[sl] = _fermi_level_fd_chunk(sed, theta[sl], kT, u, w)
    slope = np.empty_like(out)
    for start in range(0, theta.size, chunk):
        sl = slice(start, start + chunk)
        slope[sl] = _fd_occupancy(sed, out[sl], kT, u, w, np.zeros(out[sl].size, bool))[1]
    with np.errstate(divide="ignore"):
        deriv = 1.0 / slope
    return out, deriv


def fermi_dirac_table(sed: SED, kT: float, theta_lo: float, theta_hi: float, n_points: int):
    """Fermi-Dirac ``E_F`` on a grid, for interpolation: no root finding except at the ends.

    ``E_F`` is uniform between the Fermi levels of ``theta_lo`` and ``theta_hi``; ``theta`` and
    ``1 - theta`` are evaluated directly there, so ``logit(theta)`` keeps full precision in both
    tails.

    Returns
    -------
    logit_theta, e_f, de_f_dlogit : ndarray of float64, shape (n_points,)
        ``ln(theta/(1-theta))`` (increasing), ``E_F`` [eV] and ``dE_F/dlogit(theta)`` [eV].
    """
    kT = _check_kT(kT)
    ends = fermi_level(sed, np.array([theta_lo, theta_hi]), kT, "fermi-dirac")
    e_f = np.linspace(ends[0], ends[1], int(n_points))
    u, w = _fd_nodes(sed, kT)
    chunk = max(1, 2_000_000 // u.size)
    occ, emp, slope = (np.empty_like(e_f) for _ in range(3))
    for start in range(0, e_f.size, chunk):
        sl = slice(start, start + chunk)
        m = e_f[sl].size
        occ[sl], slope[sl] = _fd_occupancy(sed, e_f[sl], kT, u, w, np.zeros(m, bool))
        emp[sl] = _fd_occupancy(sed, e_f[sl], kT, u, w, np.ones(m, bool))[0]
    y = np.log(occ) - np.log(emp)
    # dE_F/dy = theta (1 - theta) / (dtheta/dE_F); theta(1-theta) = occ*emp to full precision
    return y, e_f, occ * emp / slope


def _step_start(sed: SED, theta):
    """Step-filling Fermi level as a start value, kept finite inside a bounded support."""
    e = sed.ppf(theta)
    lo, hi = sed.support
    return np.clip(e, lo, hi) if np.isfinite(lo) else e


def _fermi_level_step(sed: SED, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    e_f = sed.ppf(theta)
    with np.errstate(divide="ignore"):
        deriv = 1.0 / sed.pdf(e_f)
    return e_f, deriv


FILLINGS = ("step", "fermi-dirac")


def _check_filling(filling: str):
    if filling not in FILLINGS:
        raise ValueError(f"unknown filling {filling!r}; choose one of: {', '.join(FILLINGS)}")


def fermi_level_and_derivative(sed: SED, theta, kT=None, filling: str = "step"):
    """Fermi level ``E_F(theta)`` [eV] and ``dE_F/dtheta`` [eV] in one pass.

    Parameters
    ----------
    sed : SED
    theta : array_like of float, any shape
        Fraction of *all* sites that is occupied, strictly within (0, 1).
    kT : float, optional
        Thermal energy [eV]; required for ``filling="fermi-dirac"``.
    filling : {"step", "fermi-dirac"}
        ``step``: ``E_F = G^-1(theta)``, ``dE_F/dtheta = 1/g(E_F)``.  ``fermi-dirac``: solves
        ``integral g(E) f(E - E_F) dE = theta`` to ~1e-9 eV, ``dE_F/dtheta =
        1 / integral g f (1-f)/kT dE``.

    Returns
    -------
    e_f, de_f_dtheta : ndarray of float64, shape of ``theta``
    """
    _check_filling(filling)
    theta = _check_probability(theta, "theta")
    shape = theta.shape
    flat = theta.ravel()
    if filling == "step":
        e_f, d = _fermi_level_step(sed, flat)
    else:
        e_f, d = _fermi_level_fd(sed, flat, _check_kT(kT))
    return e_f.reshape(shape), d.reshape(shape)


def fermi_level(sed: SED, theta, kT=None, filling: str = "step"):
    """Fermi level ``E_F(theta)`` [eV]; see :func:`fermi_level_and_derivative`."""
    return fermi_level_and_derivative(sed, theta, kT, filling)[0]


def occupancy(sed: SED, fermi_level_eV, kT=None, filling: str = "step"):
    """Fraction of all sites occupied at a given Fermi level (inverse of :func:`fermi_level`).

    Parameters
    ----------
    fermi_level_eV : array_like of float
    kT : float, optional
        [eV], for ``fermi-dirac``.

    Returns
    -------
    ndarray of float64, shape of ``fermi_level_eV``
    """
    _check_filling(filling)
    e_f = _as_float_array(fermi_level_eV, "fermi_level_eV")
    if filling == "step":
        return sed.cdf(e_f)
    kT = _check_kT(kT)
    u, w = _fd_nodes(sed, kT)
    flat = e_f.ravel()
    occ, _ = _fd_occupancy(sed, flat, kT, u, w, np.zeros(flat.size, dtype=bool))
    return occ.reshape(e_f.shape)


def occupation_probability(energy_eV, fermi_level_eV, kT=None, filling: str = "step"):
    """Probability that a site of energy ``E`` is occupied: step or Fermi-Dirac function."""
    _check_filling(filling)
    e = np.asarray(energy_eV, dtype=np.float64)
    if filling == "step":
        return (e <= fermi_level_eV).astype(np.float64)
    return special.expit(-(e - fermi_level_eV) / _check_kT(kT))


def psed(sed: SED, energy_eV, theta, kT=None, filling: str = "step"):
    """Populated SED ``g(E) p_occ(E)`` [1/eV] at site filling ``theta`` (integrates to theta).

    Parameters
    ----------
    energy_eV : array_like of float, shape (n,)
    theta : float
        Fraction of all sites occupied.

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    e_f = float(fermi_level(sed, theta, kT, filling))
    return sed.pdf(energy_eV) * occupation_probability(energy_eV, e_f, kT, filling)


def _fwhm_on_grid(e, y, right_edge=None):
    """Width between the outermost half-maximum crossings of ``y(e)`` (linear interpolation)."""
    half = 0.5 * y.max()
    above = np.nonzero(y >= half)[0]
    i, j = above[0], above[-1]
    left = e[i] if i == 0 else e[i - 1] + (half - y[i - 1]) * (e[i] - e[i - 1]) / (y[i] - y[i - 1])
    if right_edge is not None and j == y.size - 1:
        right = right_edge
    elif j == y.size - 1:
        right = e[j]
    else:
        right = e[j] + (y[j] - half) * (e[j + 1] - e[j]) / (y[j] - y[j + 1])
    return right - left


def populated_fwhm(sed: SED, theta, kT=None, filling: str = "step", n_points: int = 20001):
    """Full width at half maximum of the populated SED [eV].

    For step filling the PSED is ``g`` cut at ``E_F``; when the cut lies above half maximum the
    right edge is ``E_F`` itself.  Evaluated on a grid of ``n_points`` over the SED's range
    (accuracy ~ range / n_points).

    Parameters
    ----------
    theta : float or array_like of float
        Fraction of all sites occupied.

    Returns
    -------
    float or ndarray of float64 (shape of ``theta``)
    """
    thetas = _check_probability(theta, "theta")
    e_fs = fermi_level(sed, thetas, kT, filling)
    out = np.empty(thetas.shape)
    grid = sed.grid(n_points)
    for k in np.ndindex(thetas.shape):
        e_f = float(e_fs[k])
        if filling == "step":
            e = np.linspace(min(grid[0], e_f - 10 * sed.std), e_f, n_points)
            out[k] = _fwhm_on_grid(e, sed.pdf(e), right_edge=e_f)
        else:
            lo = min(grid[0], e_f - 10 * sed.std)
            hi = max(grid[-1], e_f + 40 * _check_kT(kT))
            e = np.linspace(lo, hi, n_points)
            out[k] = _fwhm_on_grid(e, psed_values(sed, e, e_f, kT, filling))
    return float(out) if out.ndim == 0 else out


def psed_values(sed: SED, energy_eV, fermi_level_eV, kT=None, filling="step"):
    """Populated SED at a given Fermi level (rather than filling) [1/eV]."""
    return sed.pdf(energy_eV) * occupation_probability(energy_eV, fermi_level_eV, kT, filling)
