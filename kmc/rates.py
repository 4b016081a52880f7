"""Rate models behind one interface (registry ``RATE_MODELS``).

Every site stores, per species ``s``, the float32 factor ``b_s(i) = exp((E_s(i) - E_DC,s) / kT)``.
A hop ``i -> j`` (j vacant, nearest neighbour) of species ``s`` has rate

    Gamma = site_rate(model, nu_s, b_s(i), b_s(j)) * exp(+-q E_gap a / 2kT)

where the gap factor (``+`` along the field) carries the electrostatic energy difference
``q (phi_j - phi_i)`` split symmetrically, so that detailed balance holds with respect to
``E_s + q phi`` for both models:

``"trap"`` (default, docs/physics.md §5, common transport threshold ``E_DC,s``)
    ``nu_s exp(-(E_DC,s - E_s(i))/kT)`` -- depends on the origin only.
``"metropolis"``
    ``nu_s min(1, exp(-(E_s(j) - E_s(i))/kT))`` -- ``E_DC`` is not used. With a field the
    electrostatic part is the symmetric factor above, not inside the ``min``, which keeps the
    rate factorised (site part x gap part) and O(1) to update; detailed balance still holds
    exactly because min(1, e^-x) / min(1, e^x) = e^-x.

Reservoir pseudo-sites (front foreign reservoir, back native bulk) enter with their own
``b`` factor, see ``kmc.engine``.

Bond cap (``[kmc] acceleration = "bond-cap"``, trap rates only, docs/acceleration.md): with
``bcap`` finite, a bond whose *slower* direction is still faster than ``nu_s bcap``
(``bcap = exp(-E_cap/kT)``: both of its barriers lie below ``E_cap``) has both directions
multiplied by the same factor ``bcap / min(b_i, b_j)``. The ratio of the two directions, hence
detailed balance and every equilibrium distribution, is unchanged; only the fast back-and-forth
across shallow bonds (the rattling) is slowed. ``bcap = inf`` is plain KMC.
"""
import numpy as np
from numba import njit

TRAP = 0
METROPOLIS = 1
RATE_MODELS = {"trap": TRAP, "metropolis": METROPOLIS}


@njit(cache=True)
def site_rate(model, nu, bi, bj, bcap=np.inf):
    """Site part of the hop rate [1/s] from factors ``bi`` (origin) and ``bj`` (target), with the
    bond cap ``bcap`` of trap rates (``inf``: off)."""
    if model == TRAP:
        w = nu * bi
        if bcap < np.inf:
            lo = bi if bi < bj else bj       # the slower direction of the bond / nu
            if lo > bcap:
                w *= bcap / lo
        return w
    r = bi / bj
    return nu * (r if r < 1.0 else 1.0)


def b_factor(E_eV, E_DC_eV, kT_eV):
    """``exp((E - E_DC)/kT)`` as float32 (the stored per-site factor); same shape as ``E_eV``."""
    return np.exp((np.asarray(E_eV, dtype=np.float64) - E_DC_eV) / kT_eV).astype(np.float32)
