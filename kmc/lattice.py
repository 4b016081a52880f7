"""Simple cubic lattice, site energy landscape and initial occupancy.

Site index ``i = (x * ny + y) * nz + z`` (x = depth layer, slowest), so layer ``l`` is the
contiguous block ``[l m, (l+1) m)`` with ``m = ny nz``. Neighbours are computed arithmetically
(no neighbour table: 24 bytes/site saved). Lateral directions are periodic; depth is open
(reservoirs) or periodic (equilibrium runs).
"""
import numpy as np

from .errors import KMCConfigError


def lattice_spacing_m(n_sites_m3):
    """Lattice spacing ``a = N_s^(-1/3)`` [m] from the site density [m^-3]."""
    return float(n_sites_m3) ** (-1.0 / 3.0)


def landscape(n_sites, native_sampler, foreign, rng):
    """Per-species site energies.

    Parameters
    ----------
    n_sites : int
    native_sampler : object with ``sample(rng, n) -> ndarray of float64, shape (n,), eV``
    foreign : sequence of (mu_eV, sigma_eV, rho)
        ``E_k(i) = mu_k + sigma_k (rho_k z_i + sqrt(1 - rho_k^2) z'_i)``, ``z_i`` the native
        energy standardised with its realised mean and standard deviation.
    rng : numpy.random.Generator

    Returns
    -------
    E : ndarray of float64, shape (1 + len(foreign), n_sites), eV (row 0 = native)
    """
    E0 = np.asarray(native_sampler.sample(rng, n_sites), dtype=np.float64)
    if E0.shape != (n_sites,):
        raise KMCConfigError(f"native sampler returned shape {E0.shape}, expected ({n_sites},)")
    sd = E0.std()
    z = (E0 - E0.mean()) / sd if sd > 0 else np.zeros(n_sites)
    rows = [E0]
    for mu, sigma, rho in foreign:
        if not -1.0 <= rho <= 1.0:
            raise KMCConfigError(f"`site_correlation` must be in [-1, 1], got {rho}")
        zp = rng.standard_normal(n_sites)
        rows.append(mu + sigma * (rho * z + np.sqrt(1.0 - rho * rho) * zp))
    return np.vstack(rows)


def fill_layers(E_native, nx, m, n_per_layer, kT_eV, rng, mode):
    """Initial native occupancy: exactly ``n_per_layer`` ions in every layer.

    ``mode="fermi"``: the ``n`` sites of largest ``-E/kT + logistic noise`` (a Fermi-Dirac-like
    filling, close to equilibrium so the bulk does not relax at t = 0); ``"random"``: uniform.
    Returns a bool mask, shape (nx*m,).
    """
    occ = np.zeros(nx * m, dtype=bool)
    for l in range(nx):
        sl = slice(l * m, (l + 1) * m)
        if mode == "fermi":
            u = rng.random(m)
            key = -E_native[sl] / kT_eV + np.log(u / (1.0 - u + 1e-300) + 1e-300)
        elif mode == "random":
            key = rng.random(m)
        else:
            raise KMCConfigError(f"unknown `init` {mode!r}; legal: ['fermi', 'random']")
        idx = np.argsort(-key, kind="stable")[:n_per_layer]
        occ[l * m + idx] = True
    return occ


class Gaussian:
    """Gaussian site-energy sampler (``sample(rng, n)``), for tests and benchmarks.

    The production SEDs come from ``continuum.sed`` through the same duck-typed interface.
    """

    def __init__(self, center_eV=0.0, sigma_eV=0.1):
        self.center_eV = float(center_eV)
        self.sigma_eV = float(sigma_eV)

    @classmethod
    def from_fwhm(cls, fwhm_eV, center_eV=0.0):
        return cls(center_eV, fwhm_eV / (2.0 * np.sqrt(2.0 * np.log(2.0))))

    def sample(self, rng, n):
        return self.center_eV + self.sigma_eV * rng.standard_normal(n)
