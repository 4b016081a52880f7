"""1D mean-field electrostatics of the layered lattice (PHYSICS.md §4-5).

Layers ``l = 0..nx-1`` (centres at ``(l + 1/2) a``); gap ``g`` lies between layer ``g-1`` and
``g``: gap 0 faces the front reservoir, gap ``nx`` the back. Layer charge
``Q_l = e (n_l - n_bg)`` with ``n_bg = (1 - f_vac) ny nz`` (the anionic background). Gauss:
``E_g = E_base - c (S_g - BG_g)`` with ``S_g = sum_{l>=g} n_l`` (integers, exact),
``BG_g = (nx - g) n_bg`` and ``c = e / (eps0 eps_r ny nz a^2)`` [V/m per elementary charge].

* galvanostatic / off: ``E_base = E_back`` (the field entering the bulk; 0 when the drive is off),
  so a hop across gap ``g`` changes ``S_g`` only -> only that gap's field changes.
* potentiostatic: ``sum_g E_g a = U`` fixes ``E_base = (U/a + c sum_g (S_g - BG_g)) / (nx + 1)``:
  a hop changes one gap plus a uniform shift.

Fields are recomputed from the integer ``S`` (never accumulated), so the incremental state is
bitwise equal to a full recompute and to a resumed checkpoint.
Potential: ``phi`` of the back reservoir (x = (nx + 1/2) a) is 0, ``phi_{g-1} = phi_g + E_g a``.
"""
import numpy as np
import scipy.constants as sc
from numba import njit

DRIVE_OFF = 0
GALVANOSTATIC = 1
POTENTIOSTATIC = 2
DRIVES = {"off": DRIVE_OFF, "galvanostatic": GALVANOSTATIC, "potentiostatic": POTENTIOSTATIC}


def coupling_V_per_m(ny, nz, a_m, eps_r):
    """Field jump [V/m] across a layer holding one extra elementary charge."""
    return sc.e / (sc.epsilon_0 * eps_r * ny * nz * a_m * a_m)


@njit(inline="always")
def base_field(drive, E_back, U, a, c, S, BG, S_total, nx):
    if drive == POTENTIOSTATIC:
        return (U / a + c * (S_total - BG.sum())) / (nx + 1)
    return E_back


@njit(cache=True)
def all_fields(E, gf, gb, S, BG, drive, E_back, U, a, c, half_beta_qa, S_total, nx):
    """Recompute every gap field ``E`` [V/m] and factor ``gf = exp(q E a/2kT)``, ``gb = 1/gf``."""
    E0 = base_field(drive, E_back, U, a, c, S, BG, S_total, nx)
    for g in range(nx + 1):
        E[g] = E0 - c * (S[g] - BG[g])
        gf[g] = np.exp(half_beta_qa * E[g])
        gb[g] = np.exp(-half_beta_qa * E[g])


def cumulative_counts(n_layer):
    """``S_g = sum_{l >= g} n_l`` for g = 0..nx (int64, shape (nx+1,))."""
    n_layer = np.asarray(n_layer, dtype=np.int64)
    S = np.zeros(n_layer.size + 1, dtype=np.int64)
    S[:-1] = np.cumsum(n_layer[::-1])[::-1]
    return S


def potential_from_fields(E, a_m):
    """Layer-centre potential [V], shape (nx,), from gap fields ``E`` (shape (nx+1,)), back = 0."""
    # phi_{nx} (back reservoir) = 0; phi_{l} = phi_{l+1} + E_{l+1} a
    phi = np.cumsum((np.asarray(E)[1:] * a_m)[::-1])[::-1]
    return phi
