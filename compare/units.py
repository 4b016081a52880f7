"""Units at the boundary: the constants and conversions that `compare` uses between input keys
(`*_nm`, `*_cm2_s`, `n_bulk_cm3`, `*_eV`), the engines' SI parameters and the datasets.

Constants come from :mod:`scipy.constants`. ``kmc`` and ``continuum`` keep their own internal
units (they never import ``compare``); everything that converts an input value lives here.
"""
from __future__ import annotations

import math

from scipy import constants

NM_TO_M = 1e-9          # length: nm -> m
CM2_TO_M2 = 1e-4        # diffusion coefficient: cm^2/s -> m^2/s
PER_CM3_TO_PER_M3 = 1e6  # density: cm^-3 -> m^-3
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # FWHM / sigma of a Gaussian
D_UNITS = "cm^2/s"      # unit string of diffusion coefficients in datasets


def kT_eV(temperature_K: float) -> float:
    """Thermal energy k_B T [eV] at `temperature_K` [K]."""
    return constants.k * float(temperature_K) / constants.e


def fwhm_to_sigma(fwhm_eV: float) -> float:
    """Standard deviation of a Gaussian with full width at half maximum `fwhm_eV`."""
    return float(fwhm_eV) / FWHM_PER_SIGMA


def sigma_to_fwhm(sigma_eV: float) -> float:
    """Full width at half maximum of a Gaussian with standard deviation `sigma_eV`."""
    return float(sigma_eV) * FWHM_PER_SIGMA


def ohmic_conductivity_S_per_m(n_bulk_m3: float, D_m2_s: float, temperature_K: float) -> float:
    """Nernst-Einstein conductivity e^2 n D / kT [S/m] of monovalent ions."""
    return constants.e ** 2 * float(n_bulk_m3) * float(D_m2_s) / (constants.k * float(temperature_K))
