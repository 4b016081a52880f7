"""Onsager transport coefficients and the NPP-effective diffusion coefficients (SI units).

Derivations in ``docs/onsager.md``.  Conventions:

* fluxes ``J_i = - sum_j L_ij grad(mu~_j)`` [1/(m^2 s)], electrochemical potentials
  ``mu~_j = mu_j + z_j e phi`` [J], so ``L`` is in 1/(J m s);
* densities ``n_i`` in 1/m^3, diffusion coefficients in m^2/s, temperatures in K;
* two mobile monovalent species, 1 = native, 2 = foreign, on a common site lattice with
  vacancies; the CAIT constraint is local 1:1 exchange, ``dn_1 = -dn_2`` (paper eqns 4-7).

Main results (``docs/onsager.md``):

* diagonal ``L`` (paper eqns 8-9): ``D_i,eff = kT L_ii / n_i``;
* full symmetric ``L`` under the CAIT constraint, with ``det = L11 L22 - L12^2``:
  ``D_1,eff = Gamma kT det / (n_1 (L22 + L12))``, ``D_2,eff = Gamma kT det / (n_2 (L11 + L12))``,
  which give the same transference number and interdiffusion coefficient
  ``D~ = Gamma kT det (n1 + n2) / ((L11 + 2 L12 + L22) n1 n2)`` as the Onsager fluxes;
  ``Gamma`` is the thermodynamic factor along the exchange path (1 for an ideal lattice gas).

The paper's tracer relation ``D_eff = 2 D*`` is provided as a hypothesis to test
(:func:`tracer_hypothesis_ratio`), not used anywhere as a fact.
"""
from __future__ import annotations

import numpy as np
from scipy import constants


class OnsagerError(ValueError):
    """An Onsager matrix or a conversion violates symmetry, positivity or a sign condition."""


def _kT(temperature_K: float) -> float:
    if not (np.isfinite(temperature_K) and temperature_K > 0.0):
        raise OnsagerError(f"`temperature_K` must be > 0, got {temperature_K}")
    return constants.k * float(temperature_K)


def _positive(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if not (np.isfinite(arr).all() and (arr > 0.0).all()):
        raise OnsagerError(f"`{name}` must be finite and > 0, got {arr.tolist()}")
    return arr


def check_onsager_matrix(L, rtol: float = 1e-10, atol: float = 0.0) -> np.ndarray:
    """Validate an Onsager matrix: square, finite, symmetric and positive semi-definite.

    Parameters
    ----------
    L : array_like of float, shape (m, m)
        Onsager coefficients [1/(J m s)].
    rtol, atol : float
        Tolerances relative to ``max |L|`` for the symmetry and the smallest eigenvalue
        (statistical estimates of ``L`` from KMC need a looser ``rtol``).

    Returns
    -------
    ndarray of float64, shape (m, m)
        The symmetrised matrix ``(L + L^T)/2``.

    Raises
    ------
    OnsagerError
        With the offending entry or eigenvalue.
    """
    L = np.asarray(L, dtype=np.float64)
    if L.ndim != 2 or L.shape[0] != L.shape[1] or L.shape[0] == 0:
        raise OnsagerError(f"Onsager matrix must be square (m, m), got shape {L.shape}")
    if not np.isfinite(L).all():
        raise OnsagerError("Onsager matrix contains non-finite entries")
    scale = float(np.max(np.abs(L)))
    tol = atol + rtol * scale
    asym = np.abs(L - L.T)
    if asym.max() > tol:
        i, j = np.unravel_index(np.argmax(asym), L.shape)
        raise OnsagerError(f"Onsager matrix is not symmetric (reciprocal relations): "
                           f"L[{i},{j}] = {L[i, j]:.6g} but L[{j},{i}] = {L[j, i]:.6g}")
    sym = 0.5 * (L + L.T)
    if (np.diag(sym) < -tol).any():
        i = int(np.argmin(np.diag(sym)))
        raise OnsagerError(f"Onsager matrix has a negative diagonal entry L[{i},{i}] = "
                           f"{sym[i, i]:.6g} (entropy production must be >= 0)")
    eig = np.linalg.eigvalsh(sym)
    if eig[0] < -tol:
        raise OnsagerError(f"Onsager matrix is not positive semi-definite: smallest eigenvalue "
                           f"{eig[0]:.6g} (entropy production must be >= 0)")
    return sym


def _check_2x2(L, rtol):
    L = check_onsager_matrix(L, rtol=rtol)
    if L.shape != (2, 2):
        raise OnsagerError(f"the CAIT transformation needs a 2x2 Onsager matrix, got {L.shape}")
    return L


# ---------------------------------------------------------------------------------------------
# Paper eqns (8)-(9): diagonal L
# ---------------------------------------------------------------------------------------------
def L_diagonal_from_D_eff(D_eff_m2_s, n_m3, temperature_K: float) -> np.ndarray:
    """Paper eqns (8)-(9), ``L_ii = D_i,eff n_i / kT`` (off-diagonals zero).

    Parameters
    ----------
    D_eff_m2_s, n_m3 : array_like of float, shape (m,)
        Effective diffusion coefficients [m^2/s] and densities [1/m^3].

    Returns
    -------
    ndarray of float64, shape (m, m), 1/(J m s)
    """
    D = _positive(D_eff_m2_s, "D_eff_m2_s")
    n = _positive(n_m3, "n_m3")
    return np.diag(D * n / _kT(temperature_K))


def D_eff_diagonal(L, n_m3, temperature_K: float) -> np.ndarray:
    """``kT L_ii / n_i`` [m^2/s]: eqns (8)-(9) read backwards, ignoring off-diagonal terms.

    This is also the "sigma" (collective) diffusion coefficient of each species.
    """
    L = np.asarray(L, dtype=np.float64)
    n = _positive(n_m3, "n_m3")
    return _kT(temperature_K) * np.diag(L) / n


# ---------------------------------------------------------------------------------------------
# Full 2x2 L under the CAIT constraint dn1 = -dn2
# ---------------------------------------------------------------------------------------------
def transference_numbers(L, rtol: float = 1e-10) -> np.ndarray:
    """Fractions of the ionic current carried by each species at uniform composition.

    ``t_1 = (L11 + L12) / S``, ``t_2 = (L22 + L12) / S``, ``S = L11 + 2 L12 + L22``.

    Returns
    -------
    ndarray of float64, shape (2,)
    """
    L = _check_2x2(L, rtol)
    row = L.sum(axis=1)
    total = row.sum()
    if not total > 0.0:
        raise OnsagerError("L11 + 2 L12 + L22 must be > 0 (the pair carries no current)")
    return row / total


def interdiffusion_coefficient(L, n_m3, temperature_K: float, thermodynamic_factor=1.0,
                               rtol: float = 1e-10) -> float:
    """Interdiffusion coefficient of the 1:1 exchange under local electroneutrality [m^2/s].

    ``J_1 = t_1 j - D~ grad n_1`` with ``D~ = Gamma kT det(L) (n1 + n2) / (S n1 n2)``,
    ``S = L11 + 2 L12 + L22`` (``j`` the ion-number current density).

    Parameters
    ----------
    L : array_like, shape (2, 2)
        Symmetric PSD Onsager matrix [1/(J m s)].
    n_m3 : array_like, shape (2,)
        Densities of species 1 and 2 [1/m^3].
    thermodynamic_factor : float
        ``Gamma = n1 n2 / (kT (n1 + n2)) d(mu1 - mu2)/dn1`` along ``n1 + n2 = const``;
        1 for an ideal lattice gas (see :func:`exchange_thermodynamic_factor`).
    """
    L = _check_2x2(L, rtol)
    n1, n2 = _positive(n_m3, "n_m3")
    gamma = float(_positive(thermodynamic_factor, "thermodynamic_factor"))
    total = L.sum()
    if not total > 0.0:
        raise OnsagerError("L11 + 2 L12 + L22 must be > 0 (the pair carries no current)")
    det = L[0, 0] * L[1, 1] - L[0, 1] ** 2
    return float(gamma * _kT(temperature_K) * det * (n1 + n2) / (total * n1 * n2))


def D_eff_from_L(L, n_m3, temperature_K: float, thermodynamic_factor=1.0,
                 rtol: float = 1e-10) -> np.ndarray:
    """NPP-effective diffusion coefficients equivalent to a full 2x2 ``L`` under dn1 = -dn2.

    ``D_1,eff = Gamma kT det / (n_1 (L22 + L12))``, ``D_2,eff = Gamma kT det / (n_2 (L11 + L12))``
    (``docs/onsager.md``): the Nernst-Planck fluxes with these constant-composition D's have the
    same transference numbers and interdiffusion coefficient as the Onsager fluxes, so they give
    identical fluxes for any current and any exchange gradient.  With ``L12 = 0`` and
    ``Gamma = 1`` this is ``kT L_ii / n_i`` (paper eqns 8-9).

    Parameters
    ----------
    L : array_like, shape (2, 2)
        Symmetric PSD Onsager matrix [1/(J m s)].
    n_m3 : array_like, shape (2,)
        [1/m^3].

    Returns
    -------
    ndarray of float64, shape (2,), m^2/s

    Raises
    ------
    OnsagerError
        If ``L`` is not symmetric PSD, or a row sum ``L_ii + L12`` is <= 0 (a transference
        number outside (0, 1): no pair of positive NPP D's can represent it), or ``det = 0``.
    """
    L = _check_2x2(L, rtol)
    n = _positive(n_m3, "n_m3")
    gamma = float(_positive(thermodynamic_factor, "thermodynamic_factor"))
    row = L.sum(axis=1)
    if (row <= 0.0).any():
        i = int(np.argmin(row))
        raise OnsagerError(f"L{i + 1}{i + 1} + L12 = {row[i]:.6g} <= 0: transference number of "
                           f"species {i + 1} is not positive, no positive NPP D's reproduce it")
    det = L[0, 0] * L[1, 1] - L[0, 1] ** 2
    if not det > 0.0:
        raise OnsagerError(f"det(L) = {det:.6g} <= 0: the exchange does not diffuse "
                           f"(singular Onsager matrix)")
    kT = _kT(temperature_K)
    return gamma * kT * det / (n * row[::-1])


def L_from_D_eff(D_eff_m2_s, n_m3, temperature_K: float, L12: float = 0.0,
                 thermodynamic_factor=1.0) -> np.ndarray:
    """Inverse of :func:`D_eff_from_L` for a given off-diagonal ``L12``.

    Two NPP D's fix two combinations of ``L``; the third (``L12``) must be given.  With
    ``p = D_1 n_1 / (Gamma kT)`` and ``r = D_2 n_2 / (Gamma kT)``:
    ``L11 = p (1 + L12 / r)``, ``L22 = r (1 + L12 / p)``.

    Returns
    -------
    ndarray of float64, shape (2, 2), 1/(J m s)

    Raises
    ------
    OnsagerError
        If the result is not positive semi-definite (``L12`` too negative).
    """
    D = _positive(D_eff_m2_s, "D_eff_m2_s")
    n = _positive(n_m3, "n_m3")
    if D.shape != (2,) or n.shape != (2,):
        raise OnsagerError("L_from_D_eff needs two species")
    gamma = float(_positive(thermodynamic_factor, "thermodynamic_factor"))
    p, r = D * n / (gamma * _kT(temperature_K))
    L12 = float(L12)
    L = np.array([[p * (1.0 + L12 / r), L12], [L12, r * (1.0 + L12 / p)]])
    return check_onsager_matrix(L)


def cait_fluxes(L, n_m3, grad_n1_m4, temperature_K: float, current_density_A_m2: float = 0.0,
                thermodynamic_factor=1.0, rtol: float = 1e-10) -> np.ndarray:
    """Fluxes ``(J_1, J_2)`` [1/(m^2 s)] of the exchange at given gradient and current.

    ``J_1 = t_1 j - D~ grad n_1``, ``J_2 = t_2 j + D~ grad n_1``, ``j = I / e``: the field has
    been eliminated with ``J_1 + J_2 = j`` (electroneutral 1:1 exchange, monovalent ions).
    """
    t = transference_numbers(L, rtol)
    d = interdiffusion_coefficient(L, n_m3, temperature_K, thermodynamic_factor, rtol)
    j = float(current_density_A_m2) / constants.e
    return np.array([t[0] * j - d * grad_n1_m4, t[1] * j + d * grad_n1_m4])


def nernst_planck_interdiffusion(D1_m2_s, D2_m2_s, n1_m3, n2_m3):
    """Ion-exchange interdiffusion coefficient of two monovalent Nernst-Planck ions [m^2/s].

    ``D_12 = D1 D2 (n1 + n2) / (n1 D1 + n2 D2)`` (Helfferich & Plesset, J. Chem. Phys. 28, 418
    (1958); the Nernst-Planck limit of ion exchange with electroneutrality and no current).
    """
    D1, D2 = np.asarray(D1_m2_s, float), np.asarray(D2_m2_s, float)
    n1, n2 = np.asarray(n1_m3, float), np.asarray(n2_m3, float)
    return D1 * D2 * (n1 + n2) / (n1 * D1 + n2 * D2)


# ---------------------------------------------------------------------------------------------
# Thermodynamic factors
# ---------------------------------------------------------------------------------------------
def lattice_gas_chemical_potentials(c1, c2, temperature_K: float):
    """Ideal two-species lattice gas with site exclusion: ``mu_s = kT ln(c_s / (1 - c1 - c2))``.

    Parameters
    ----------
    c1, c2 : array_like of float
        Site fractions of species 1 and 2 (``c1 + c2 < 1``).

    Returns
    -------
    mu1, mu2 : ndarray of float64 [J]
    """
    c1, c2 = np.asarray(c1, float), np.asarray(c2, float)
    cv = 1.0 - c1 - c2
    if (c1 <= 0).any() or (c2 <= 0).any() or (cv <= 0).any():
        raise OnsagerError("site fractions must satisfy c1 > 0, c2 > 0, c1 + c2 < 1")
    kT = _kT(temperature_K)
    return kT * np.log(c1 / cv), kT * np.log(c2 / cv)


def exchange_thermodynamic_factor(mu, n1_m3: float, n2_m3: float, temperature_K: float,
                                  rel_step: float = 1e-5) -> float:
    """``Gamma = n1 n2 / (kT (n1 + n2)) d(mu1 - mu2)/dn1`` along ``n1 + n2 = const``.

    Central differences of a user chemical potential ``mu(n1, n2) -> (mu1, mu2)`` [J].  For the
    ideal lattice gas the vacancy terms cancel along the exchange path and ``Gamma = 1``.
    """
    kT = _kT(temperature_K)
    n1, n2 = float(n1_m3), float(n2_m3)
    h = rel_step * min(n1, n2)
    mu1_p, mu2_p = mu(n1 + h, n2 - h)
    mu1_m, mu2_m = mu(n1 - h, n2 + h)
    deriv = ((mu1_p - mu2_p) - (mu1_m - mu2_m)) / (2.0 * h)
    return float(n1 * n2 / (kT * (n1 + n2)) * deriv)


# ---------------------------------------------------------------------------------------------
# Tracer quantities
# ---------------------------------------------------------------------------------------------
def haven_ratio(D_tracer_m2_s, D_sigma_m2_s):
    """Haven ratio ``H_R = D* / D_sigma`` (dimensionless)."""
    return np.asarray(D_tracer_m2_s, float) / np.asarray(D_sigma_m2_s, float)


def D_eff_paper_from_tracer(D_tracer_m2_s):
    """The paper's claim ``D_eff = 2 D*`` (eqns 8-9) -- a hypothesis to test, not a law."""
    return 2.0 * np.asarray(D_tracer_m2_s, float)


def tracer_hypothesis_ratio(D_eff_m2_s, D_tracer_m2_s):
    """``D_eff / (2 D*)``: 1 if the paper's relation holds, ``1 / (2 H_R)`` if D_eff = D_sigma."""
    return np.asarray(D_eff_m2_s, float) / (2.0 * np.asarray(D_tracer_m2_s, float))
