"""1D mean-field electrostatics of the layered lattice (docs/physics.md §4-5, docs/kmc.md).

Layers ``l = 0..nx-1`` (centres at ``(l + 1/2) a``); gap ``g`` lies between layer ``g-1`` and
``g``: gap 0 faces the front reservoir, gap ``nx`` the back. Layer charge ``Q_l = e (n_l - n_bg)``
with the integer background ``n_bg = round((1 - f_vac) ny nz)`` (the anionic network; the
initial fill puts exactly ``n_bg`` ions in every layer, so the lattice starts neutral).

Fields are referenced from the FRONT (Gauss's law integrated from x = 0):

    E_g = E_ext + c (G_g - BG_g),   G_g = F0 + T_g,   BG_g = g n_bg,
    c = e / (eps0 eps_r ny nz a^2)   [V/m per elementary charge],

with ``F0`` the net surface charge at the front [e] (integer, checkpointed), ``T_g`` the ions in
layers ``< g`` and ``G_g`` the (integer) charge in front of gap ``g``. ``E_ext`` is 0 with space
charge (the applied field is carried by ``F0``) and the uniform applied field without it.

* galvanostatic: the BEAM CURRENT is fixed. Beam arrivals (a Poisson event class of rate
  ``j ny nz a^2 / e``) add one charge to ``F0``: every ``G_g`` += 1 (O(nx), one per transported
  ion). Every ion event changes ONE gap only: front insertion moves a charge from the surface
  into layer 0 (``F0`` -= 1, ``T_g`` += 1 for g >= 1: only ``G_0``), a hop across gap g changes
  ``G_g``, a back exchange ``G_nx``. So the field energy change of an event is local and its
  rate sees all of it (detailed balance w.r.t. ``E_s + q phi`` + field energy).
* off: no beam, front blocked; ``F0`` is constant.
* potentiostatic: ``sum_g E_g a = U`` fixes the image charge:
  ``E_g = e0 + c (G_g - BG_g)``, ``e0 = (U/a - c sum_g (G_g - BG_g)) / (nx + 1)``; a hop changes
  one gap plus a uniform shift (``F0`` drops out: the electrodes' charges adjust).

Fields are recomputed from the integers ``G`` (never accumulated), so the incremental state is
bitwise equal to a full recompute and to a resumed checkpoint.
Potential: ``phi`` of the back reservoir (x = (nx + 1/2) a) is 0, ``phi_{g-1} = phi_g + E_g a``.
"""
import numpy as np
import scipy.constants as sc

DRIVE_OFF = 0
GALVANOSTATIC = 1
POTENTIOSTATIC = 2
DRIVES = {"off": DRIVE_OFF, "galvanostatic": GALVANOSTATIC, "potentiostatic": POTENTIOSTATIC}


def coupling_V_per_m(ny, nz, a_m, eps_r):
    """Field jump [V/m] across a layer holding one extra elementary charge."""
    return sc.e / (sc.epsilon_0 * eps_r * ny * nz * a_m * a_m)


def background_per_layer(vacancy_fraction, ny, nz):
    """Integer anionic background per layer [e], ``round((1 - f_vac) ny nz)``.

    The realised vacancy fraction ``1 - n_bg / (ny nz)`` differs from the requested one by at
    most ``0.5 / (ny nz)``; the engine reports it as ``vacancy_fraction_effective``.
    """
    return int(round((1.0 - float(vacancy_fraction)) * ny * nz))


def front_counts(n_layer, F0):
    """Charge in front of each gap, ``G_g = F0 + sum_{l < g} n_l`` for g = 0..nx, plus the sum.

    Parameters
    ----------
    n_layer : array_like of int, shape (nx,)
        Ions per layer.
    F0 : int
        Net surface charge at the front [e].

    Returns
    -------
    G : ndarray of int64, shape (nx + 2,)
        ``G[:nx+1]`` as above, ``G[nx+1] = sum_g G[g]`` (potentiostatic drive).
    """
    n_layer = np.asarray(n_layer, dtype=np.int64)
    G = np.zeros(n_layer.size + 2, dtype=np.int64)
    G[1:-1] = np.cumsum(n_layer)
    G[:-1] += int(F0)
    G[-1] = G[:-1].sum()
    return G


def potential_from_fields(E, a_m):
    """Layer-centre potential [V], shape (nx,), from gap fields ``E`` (shape (nx+1,)), back = 0."""
    # phi_{nx} (back reservoir) = 0; phi_{l} = phi_{l+1} + E_{l+1} a
    phi = np.cumsum((np.asarray(E)[1:] * a_m)[::-1])[::-1]
    return phi
