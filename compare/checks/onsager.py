"""Onsager coefficients measured by equilibrium KMC against the continuum Onsager module.

Three questions (issue 4, item 6; written up in ``docs/findings.md``):

1. Do the KMC ``L_ij`` obey the exact relations of two *identical* species (labels only), and
   does the full-L CAIT transformation of :mod:`continuum.onsager` turn them into the exact
   interdiffusion coefficient of that case?
2. Haven ratios ``H = D* / D_eff`` of the native and foreign ions.
3. Where does the paper's ``D_eff = 2 D*`` hold, where does it fail (scan of the composition x
   and the SED width)?

Exact results for labels (``N`` ions, ``N_A`` of label A, ``N_B = N - N_A``; ``D*`` the tracer
and ``D_c = kT S / n`` the collective D of the one-species system, ``S = L_AA + 2 L_AB + L_BB``,
``n = N / V``). Writing ``<dr_i . dr_j> = c`` for any pair ``i != j`` (the dynamics does not see
labels) gives, *exactly for the finite periodic cell*:

* ``L_AB = N_A N_B / (N (N - 1)) * (S - n D* / kT)``                    (cross term)
* ``kT L_AA / n_A = D* + (N_A - 1)/(N - 1) (D_c - D*)``                  (paper eqns 8-9)
* ``D~ = D_1,eff = D_2,eff = D* - (D_c - D*)/(N - 1)``                   (full-L CAIT transform)

i.e. for ``N -> inf`` the interdiffusion of two isotopes is tracer diffusion, ``D~ = D*``, and
the diagonal formula interpolates between ``D*`` (``x -> 0``) and ``D_c`` (``x -> 1``). For the
ordered lattice gas ``D_c = D0 (1 - c) N / (N - 1)`` exactly (``D0 = nu a^2 exp(-E_DC/kT)``).

All statistics come from independent time blocks (``kmc.equilibrium.measure``): linear
combinations of block quantities get the plain standard error of the mean, non-linear functions
(ratios, the CAIT transformation) a leave-one-out jackknife over the same blocks.

Run ``python -m compare.checks.onsager [-o DIR]`` for the scan of ``docs/findings.md``.
"""
from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import scipy.constants as sc
import xarray as xr

from compare import units
from compare.errors import ConfigError
from compare.units import CM2_TO_M2, D_UNITS
from continuum import onsager
from kmc import analysis
from kmc import equilibrium as eqm
from kmc.engine import KMCParams, Species



# ---------------------------------------------------------------------------------------------
# Lattices of the checks
# ---------------------------------------------------------------------------------------------
class StandardisedGaussian:
    """Gaussian site energies rescaled to exactly the requested mean and std (``sample(rng, n)``).

    With ``rho = 1`` and the same ``mu``, ``sigma`` a foreign landscape is then identical to the
    native one (``kmc.lattice`` standardises the native energies before correlating them).
    """

    def __init__(self, center_eV: float, sigma_eV: float):
        self.center_eV, self.sigma_eV = float(center_eV), float(sigma_eV)

    def sample(self, rng, n):
        z = rng.standard_normal(n)
        if self.sigma_eV == 0.0 or n < 2:
            return np.full(n, self.center_eV)
        return self.center_eV + self.sigma_eV * (z - z.mean()) / z.std()


# Foreign landscapes of the scan: name -> (rho, description). "labels" is the exact case.
FOREIGN_MODELS = {
    "labels": (1.0, "foreign = copy of the native species (same sites, E_DC, nu): labels only"),
    "uncorrelated": (0.0, "foreign with its own Gaussian landscape of the same width, "
                          "uncorrelated with the native one (rho = 0), same E_DC and nu"),
}


@dataclass(frozen=True)
class CheckLattice:
    """A small periodic lattice for equilibrium checks (SI / eV)."""

    size: int = 6                 # edge of the L^3 periodic cell
    fwhm_eV: float = 0.0          # native SED FWHM (0: ordered lattice gas)
    foreign: str = "labels"       # key of FOREIGN_MODELS
    E_DC_eV: float = 0.3          # transport threshold of both species (trap model)
    nu_Hz: float = 1.0e13
    temperature_K: float = 300.0
    n_bulk_m3: float = 1.4e28
    vacancy_fraction: float = 0.10

    def params(self) -> KMCParams:
        if self.foreign not in FOREIGN_MODELS:
            raise ConfigError(f"unknown foreign model {self.foreign!r}; legal: "
                              f"{', '.join(FOREIGN_MODELS)}")
        sigma = units.fwhm_to_sigma(self.fwhm_eV)
        rho = FOREIGN_MODELS[self.foreign][0]
        sp = (Species("A", "native", E_DC_eV=self.E_DC_eV, nu_Hz=self.nu_Hz),
              Species("B", "foreign", E_DC_eV=self.E_DC_eV, nu_Hz=self.nu_Hz, mu_eV=0.0,
                      sigma_eV=sigma, rho=rho))
        return KMCParams(nx=self.size, ny=self.size, nz=self.size, species=sp,
                         native_sampler=StandardisedGaussian(0.0, sigma),
                         n_bulk_m3=self.n_bulk_m3, vacancy_fraction=self.vacancy_fraction,
                         temperature_K=self.temperature_K)

    @property
    def a_m(self) -> float:
        return (self.n_bulk_m3 / (1.0 - self.vacancy_fraction)) ** (-1.0 / 3.0)

    def D0_cm2_s(self) -> float:
        """``nu a^2 exp(-E_DC/kT)`` [cm^2/s]: the hop D of an ordered lattice (fwhm 0)."""
        kT_eV = units.kT_eV(self.temperature_K)
        return self.nu_Hz * self.a_m ** 2 * math.exp(-self.E_DC_eV / kT_eV) / CM2_TO_M2


@dataclass(frozen=True)
class Measurement:
    """One equilibrium trajectory cut into blocks at two lengths.

    ``onsager``: many short blocks for the collective quantities (L, D_eff), whose per-block
    scatter is large (``|dR|^2`` is chi-square-like, relative SD ~0.8 per block) and needs many
    samples; ``tracer``: few long blocks for D*, whose short-block estimate is biased upwards
    (back-correlated hops) but whose scatter is small. Both are ``kmc.analysis.block_samples``
    datasets of the same trajectory.
    """

    onsager: xr.Dataset
    tracer: xr.Dataset
    x: float
    n_events: int


def measure(lattice: CheckLattice, x: float, seed: int, n_blocks: int = 400,
            events_per_block: int = 5_000, tracer_blocks: int = 10,
            n_equilibration_events: int = 50_000) -> Measurement:
    """Run one composition of ``lattice`` and cut it into L blocks and tracer blocks.

    Parameters
    ----------
    x : float
        n_native / (n_native + n_foreign).
    n_blocks, events_per_block : int
        Short blocks for L (expected events per block; length from the equilibrated rate).
    tracer_blocks : int
        Long blocks for D* (``n_blocks`` must be a multiple; the trajectory is the same).
    """
    if n_blocks % tracer_blocks:
        raise ConfigError(f"`n_blocks` ({n_blocks}) must be a multiple of `tracer_blocks` "
                          f"({tracer_blocks})")
    blocks, _, n_events = _equilibrium_blocks(lattice, x, seed, n_blocks, events_per_block,
                                              n_equilibration_events)

    def cut(nb):
        s = blocks(nb)
        s.attrs.update(x=float(x), seed=int(seed))
        return s

    return Measurement(onsager=cut(n_blocks), tracer=cut(tracer_blocks), x=float(x),
                       n_events=n_events)


# ---------------------------------------------------------------------------------------------
# Statistics on block samples
# ---------------------------------------------------------------------------------------------
def _equilibrium_blocks(lattice, x, seed, n_blocks, events_per_block, n_equilibration_events):
    """Run a periodic fixed-composition `Simulation`, equilibrated, recording `n_blocks` blocks
    of about `events_per_block` events. Returns ``(blocks, names, n_events)``: ``blocks(nb)``
    cuts the trajectory into ``nb`` blocks (``analysis.block_samples``; ``nb`` divides
    `n_blocks`), ``names`` the species."""
    from kmc.engine import Simulation

    opt = eqm.EquilibriumOptions(n_blocks=n_blocks, events_per_block=events_per_block,
                                 n_equilibration_events=n_equilibration_events)
    p = eqm.equilibrium_params(lattice.params(), float(x), opt)
    tau = eqm.block_length_s(p, int(seed), opt)
    times = tau * np.arange(n_blocks + 1)
    p = replace(p, output_times_s=tuple(times), duration_s=float(times[-1]))
    sim = Simulation(p, int(seed))
    if n_equilibration_events:
        sim.equilibrate(n_equilibration_events)
    while not sim.advance(1_000_000):
        pass
    ds = sim.to_dataset()
    species = ds.ion_species.values
    ions = np.flatnonzero(species >= 0)
    names = [str(v) for v in ds.species.values]
    pos_m = ds.ion_displacement.values[:, ions, :] * 1e-9
    volume = sim.n_sites * sim.a_m ** 3

    def blocks(nb):
        return analysis.block_samples(pos_m, ds.time.values, species[ions], names, volume,
                                      sim.params.temperature_K, n_blocks=nb)

    return blocks, names, int(sim.n_events)


def _L_blocks(samples: xr.Dataset):
    """L (n_blocks, 2, 2) [1/(J m s)], counts (2,), V [m^3], kT [J], T [K]."""
    L = samples.L.transpose("block", "species", "species2").values
    T = float(samples.attrs["temperature_K"])
    return L, samples.n_ions.values.astype(float), float(samples.attrs["volume_m3"]), sc.k * T, T


def _tracer(m: Measurement):
    """Per-species D* and its SEM [m^2/s], and the all-ion D* (mean, SEM) [m^2/s]."""
    d = m.tracer.D_star.transpose("block", "species").values * CM2_TO_M2
    counts = m.tracer.n_ions.values.astype(float)
    per_m, per_e = analysis.mean_sem(d)
    w = counts / counts.sum()
    all_m, all_e = analysis.mean_sem(np.nansum(d * w, axis=1))
    return per_m, per_e, float(all_m), float(all_e)


def lag1_autocorrelation(series) -> float:
    """Lag-1 autocorrelation of a block series: ~N(0, 1/n) for independent blocks.

    The standard errors assume independent blocks; for a strongly disordered landscape the
    tracer blocks are not (ions stay in deep traps for many blocks), and this detects it.
    """
    y = np.asarray(series, dtype=float)
    y = y - y.mean()
    den = float(np.sum(y * y))
    return float(np.sum(y[1:] * y[:-1]) / den) if den > 0 else 0.0


def block_independence(m: Measurement) -> dict:
    """Lag-1 autocorrelations of the per-block series behind the label checks (short blocks):
    ``tracer_A_minus_B``, ``tracer`` (all ions), ``L12``, ``S`` (L_AA + 2 L_AB + L_BB)."""
    d = m.onsager.D_star.transpose("block", "species").values
    L = m.onsager.L.transpose("block", "species", "species2").values
    w = m.onsager.n_ions.values.astype(float)
    return {"tracer_A_minus_B": lag1_autocorrelation(d[:, 0] - d[:, 1]),
            "tracer": lag1_autocorrelation(np.nansum(d * w / w.sum(), axis=1)),
            "L12": lag1_autocorrelation(L[:, 0, 1]),
            "S": lag1_autocorrelation(L.sum(axis=(1, 2)))}


def _stat(value, sem, expected=np.nan):
    z = (value - expected) / sem if np.isfinite(expected) and sem > 0 else np.nan
    return {"value": float(value), "sem": float(sem), "expected": float(expected),
            "z": float(z)}


def _cait_D_eff(L_mean, n, temperature_K):
    """Full-L CAIT transformation, NaN (not an exception) where L admits no positive NPP D's."""
    try:
        return onsager.D_eff_from_L(L_mean, n, temperature_K, rtol=1e-8)
    except onsager.OnsagerError:
        return np.full(2, np.nan)


def cait_D_eff(samples: xr.Dataset):
    """``continuum.onsager.D_eff_from_L`` of the block-mean L, with jackknife SEM [cm^2/s].

    Returns
    -------
    value, sem : ndarray of float64, shape (2,)
        NaN where the mean L has a non-positive transference number or det.
    """
    L, counts, vol, _, T = _L_blocks(samples)
    n = counts / vol
    if np.any(n <= 0):
        return np.full(2, np.nan), np.full(2, np.nan)
    v, e = analysis.jackknife(lambda m: _cait_D_eff(m, n, T), L)
    return v / CM2_TO_M2, e / CM2_TO_M2


def label_checks(m: Measurement, lattice: CheckLattice | None = None) -> dict:
    """Exact relations of two identical species, measured on one mixture run.

    Parameters
    ----------
    m : Measurement
        A labels mixture (``measure`` with ``foreign = "labels"``, 0 < x < 1).
    lattice : CheckLattice, optional
        With ``fwhm_eV = 0`` the one-species collective D is also checked against the exact
        lattice-gas value ``D0 (1 - c) N / (N - 1)``.

    Returns
    -------
    dict
        name -> ``{"value", "sem", "expected", "z"}``; ``z = (value - expected)/sem`` (D in
        cm^2/s, L in 1/(J m s)). Checks (expected 0): ``cross_L12_residual`` (L_AB minus its
        exact value), ``tracer_A_minus_B``, ``diag_D_eff_A_residual`` (eqns 8-9 minus exact),
        ``cait_D_eff_A_minus_exact``, ``cait_D_eff_B_minus_exact``; (expected 1)
        ``Dc_over_exact_lattice_gas`` (ordered lattice only). Informative: ``L12``, ``D_star``,
        ``D_c``, ``cait_D_eff_A``, ``cait_D_eff_A_over_D_star``, ``diag_D_eff_A``,
        ``diag_minus_cait_D_eff_A``.

    Notes
    -----
    The relations are identities of the block estimators for every block length (they only
    use that the dynamics does not see labels), so L and D* are taken from the *same* blocks
    (``m.onsager``): linear checks get the plain SEM over blocks, the non-linear CAIT
    transformation a jackknife over (L, D*) blocks jointly. Whether the block length reaches
    the long-time limit is a separate question (see :func:`transport_summary`).
    """
    L, counts, vol, kT, T = _L_blocks(m.onsager)
    N_A, N_B = counts
    N = N_A + N_B
    if not (N_A > 1 and N_B > 0):
        raise ConfigError("label_checks needs a mixture with both labels present")
    n = N / vol
    d = m.onsager.D_star.transpose("block", "species").values * CM2_TO_M2
    ds = (N_A * d[:, 0] + N_B * d[:, 1]) / N   # tracer D of all ions per block, m^2/s
    S = L.sum(axis=(1, 2))                    # L_AA + 2 L_AB + L_BB per block
    Dc = kT * S / n                           # one-species collective D per block, m^2/s
    k = N_A * N_B / (N * (N - 1))
    out = {}

    def cm2(v, e, expected=np.nan):
        return _stat(v / CM2_TO_M2, e / CM2_TO_M2, expected)

    out["cross_L12_residual"] = _stat(*analysis.mean_sem(L[:, 0, 1] - k * (S - n * ds / kT)), 0.0)
    out["L12"] = _stat(*analysis.mean_sem(L[:, 0, 1]))
    out["tracer_A_minus_B"] = cm2(*analysis.mean_sem(d[:, 0] - d[:, 1]), 0.0)
    g = (N_A - 1) / (N - 1)
    diag_A = kT * L[:, 0, 0] / (N_A / vol)
    out["diag_D_eff_A"] = cm2(*analysis.mean_sem(diag_A))
    out["diag_D_eff_A_residual"] = cm2(*analysis.mean_sem(diag_A - (ds + g * (Dc - ds))), 0.0)
    out["D_star"] = cm2(*analysis.mean_sem(ds))
    dc_m, dc_e = analysis.mean_sem(Dc)
    out["D_c"] = cm2(dc_m, dc_e)

    n_s = counts / vol
    # exact: D_1,eff = D_2,eff = D* - (D_c - D*)/(N - 1) = (N D* - D_c)/(N - 1)
    v, e = analysis.jackknife(
        lambda Lm, dm: _cait_D_eff(Lm, n_s, T) - (N * dm - kT * Lm.sum() / n) / (N - 1), L, ds)
    for i, lab in enumerate("AB"):
        out[f"cait_D_eff_{lab}_minus_exact"] = cm2(v[i], e[i], 0.0)
    cv, ce = cait_D_eff(m.onsager)
    out["cait_D_eff_A"] = _stat(cv[0], ce[0])
    v, e = analysis.jackknife(lambda Lm, dm: _cait_D_eff(Lm, n_s, T)[0] / dm, L, ds)
    out["cait_D_eff_A_over_D_star"] = _stat(float(v), float(e))
    # eqns 8-9 minus the CAIT transformation, jackknifed together (they share the L noise);
    # exact: N_A (D_c - D*)/(N - 1)
    v, e = analysis.jackknife(lambda Lm: kT * Lm[0, 0] / n_s[0] - _cait_D_eff(Lm, n_s, T)[0], L)
    out["diag_minus_cait_D_eff_A"] = cm2(float(v), float(e))
    if lattice is not None and lattice.fwhm_eV == 0.0:
        N_sites = lattice.size ** 3
        exact = lattice.D0_cm2_s() * CM2_TO_M2 * (1 - N / N_sites) * N_sites / (N_sites - 1)
        out["Dc_over_exact_lattice_gas"] = _stat(dc_m / exact, dc_e / exact, 1.0)
    return out


def transport_summary(m: Measurement) -> dict:
    """Per species: D*, diagonal D_eff (eqns 8-9), full-L CAIT D_eff, Haven ratio D*/D_eff,
    the paper's ratio D_eff/(2 D*), and L_12 (values and SEMs; D in cm^2/s).

    Ratios combine D* (long blocks) and D_eff (short blocks) with relative errors in quadrature.

    Returns
    -------
    dict of ndarray of float64, shape (2,) (``L12``, ``L12_sem``, ``L12_rel`` scalars)
    """
    L, counts, vol, kT, _ = _L_blocks(m.onsager)
    ds_m, ds_e, _, _ = _tracer(m)
    out = {"D_star": ds_m / CM2_TO_M2, "D_star_sem": ds_e / CM2_TO_M2}
    present = counts > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        diag = kT * np.diagonal(L, axis1=1, axis2=2) / (counts / vol)
        diag[:, ~present] = np.nan
        dm, de = analysis.mean_sem(diag)
        out["D_eff"], out["D_eff_sem"] = dm / CM2_TO_M2, de / CM2_TO_M2
        rel = np.hypot(ds_e / ds_m, de / dm)
        out["haven"] = ds_m / dm
        out["haven_sem"] = out["haven"] * rel
        out["ratio_2Dstar"] = dm / (2.0 * ds_m)
        out["ratio_2Dstar_sem"] = out["ratio_2Dstar"] * rel
    # the same from the long tracer blocks: a convergence indicator (few blocks, larger SEM)
    Lt = m.tracer.L.transpose("block", "species", "species2").values
    with np.errstate(invalid="ignore", divide="ignore"):
        diag_t = kT * np.diagonal(Lt, axis1=1, axis2=2) / (counts / vol)
        diag_t[:, ~present] = np.nan
        tm, te = analysis.mean_sem(diag_t)
    out["D_eff_long"], out["D_eff_long_sem"] = tm / CM2_TO_M2, te / CM2_TO_M2
    cv, ce = cait_D_eff(m.onsager) if np.all(present) else (np.full(2, np.nan),) * 2
    out["D_eff_cait"], out["D_eff_cait_sem"] = cv, ce
    lm, le = analysis.mean_sem(L[:, 0, 1])
    out["L12"], out["L12_sem"] = float(lm), float(le)
    # L12 relative to sqrt(L11 L22): the size of the off-diagonal coupling
    out["L12_rel"] = float(lm / math.sqrt(L[:, 0, 0].mean() * L[:, 1, 1].mean())) \
        if np.all(present) else float("nan")
    return out


def block_length_scan(lattice: CheckLattice, x: float, seed: int, n_records: int = 3200,
                      events_per_record: int = 5_000, n_blocks=(3200, 640, 160, 40, 10),
                      n_equilibration_events: int = 200_000) -> xr.Dataset:
    """D* and D_eff = kT L/n against the block length, from one trajectory.

    The run is recorded every ``events_per_record`` events (expected) and cut into
    ``n_blocks[k]`` blocks for each k: a transport coefficient is meaningful only where it no
    longer depends on the block length (long-time limit), and the block SEM only where blocks
    are independent (lag-1 autocorrelation ``ac1`` ~ 0).

    Returns
    -------
    xarray.Dataset
        dims ``block_events`` (expected events per block), ``species``: ``D_star``, ``D_eff``
        and their ``_sem`` [cm^2/s], ``haven``, ``ac1_D_star`` [1]; attrs with the lattice.
    """
    if any(n_records % nb for nb in n_blocks):
        raise ConfigError(f"`n_records` ({n_records}) must be a multiple of every n_blocks "
                          f"{tuple(n_blocks)}")
    blocks, names, n_events = _equilibrium_blocks(lattice, x, seed, n_records, events_per_record,
                                                  n_equilibration_events)
    rows = []
    for nb in n_blocks:
        b = blocks(nb)
        summ = analysis.summarize(b)
        ac = [lag1_autocorrelation(b.D_star.sel(species=s).values)
              if np.isfinite(b.D_star.sel(species=s).values).all() else np.nan for s in names]
        rows.append((summ, ac))
    be = np.array([n_records // nb * events_per_record for nb in n_blocks], dtype=float)
    out = {}
    for v in ("D_star", "D_star_sem", "D_eff", "D_eff_sem", "haven", "haven_sem"):
        out[v] = (("block_events", "species"), np.stack([r[0][v].values for r in rows]),
                  {"units": "1" if v.startswith("haven") else D_UNITS})
    out["ac1_D_star"] = (("block_events", "species"), np.array([r[1] for r in rows]),
                         {"units": "1", "long_name": "lag-1 autocorrelation of block D*"})
    return xr.Dataset(out, coords={"block_events": be, "species": names,
                                   "n_blocks": ("block_events", np.asarray(n_blocks))},
                      attrs={"x": float(x), "fwhm_eV": lattice.fwhm_eV, "size": lattice.size,
                             "n_events": n_events, "seed": int(seed)})


def plot_block_length(scans):
    """D* and D_eff against block length (log-log) for several block-length scans."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for k, s in enumerate(scans):
        lab = f"FWHM {1e3 * s.attrs['fwhm_eV']:.0f} meV"
        n = s.sel(species=s.species.values[0])
        ax.errorbar(s.block_events, n.D_eff, yerr=n.D_eff_sem, fmt="o-", color=f"C{k}",
                    capsize=2, label=f"D_eff = kT L/n, {lab}")
        ax.errorbar(s.block_events, n.D_star, yerr=n.D_star_sem, fmt="^--", color=f"C{k}",
                    mfc="none", capsize=2, label=f"D*, {lab}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"events per block ({scans[0].attrs['size']}^3 cell, "
                  f"{int(0.9 * scans[0].attrs['size'] ** 3)} ions)")
    ax.set_ylabel("D [cm^2/s]")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# The scan of docs/findings.md
# ---------------------------------------------------------------------------------------------
SCAN_VARS = ("D_star", "D_eff", "D_eff_long", "D_eff_cait", "haven", "ratio_2Dstar")


def scan(cases, xs, size=6, seed=1, n_blocks=400, events_per_block=5_000, tracer_blocks=10,
         n_equilibration_events=100_000, log=print) -> xr.Dataset:
    """Transport summary over ``cases`` (pairs ``(fwhm_eV, foreign)``) and compositions ``xs``.

    Returns
    -------
    xarray.Dataset
        dims ``case``, ``x``, ``species``: ``D_star``, ``D_eff`` (kT L_ss/n_s), ``D_eff_cait``
        (full-L transformation) [cm^2/s], ``haven``, ``ratio_2Dstar`` = D_eff/(2 D*) [1], each
        with ``_sem``; ``L12``, ``L12_sem`` [1/(J m s)], ``L12_rel`` [1] over (case, x);
        coords ``fwhm_eV(case)``, ``foreign(case)``; attrs with the lattice and run lengths.
    """
    xs = [float(x) for x in xs]
    shape = (len(cases), len(xs), 2)
    data = {v: np.full(shape, np.nan) for v in SCAN_VARS}
    data.update({f"{v}_sem": np.full(shape, np.nan) for v in SCAN_VARS})
    l12 = {k: np.full(shape[:2], np.nan) for k in ("L12", "L12_sem", "L12_rel")}
    wall = np.zeros(shape[:2])
    for i, (fwhm, foreign) in enumerate(cases):
        lat = CheckLattice(size=size, fwhm_eV=float(fwhm), foreign=foreign)
        for j, x in enumerate(xs):
            t0 = time.monotonic()
            s = measure(lat, x, seed, n_blocks, events_per_block, tracer_blocks,
                        n_equilibration_events)
            summ = transport_summary(s)
            wall[i, j] = time.monotonic() - t0
            for v in SCAN_VARS:
                data[v][i, j] = summ[v]
                data[f"{v}_sem"][i, j] = summ[f"{v}_sem"]
            for k in l12:
                l12[k][i, j] = summ[k]
            log(f"fwhm {fwhm:.3f} eV, {foreign:12s} x = {x:.2f}: D* = {summ['D_star']}, "
                f"D_eff = {summ['D_eff']}, D_eff/2D* = {summ['ratio_2Dstar']} "
                f"+- {summ['ratio_2Dstar_sem']}, H = {summ['haven']}, L12_rel = "
                f"{summ['L12_rel']:.3f}  ({wall[i, j]:.0f} s)")
    units = {"D_star": D_UNITS, "D_eff": D_UNITS, "D_eff_long": D_UNITS,
             "D_eff_cait": D_UNITS, "haven": "1",
             "ratio_2Dstar": "1"}
    long = {"D_star": "tracer diffusion coefficient (long blocks)",
            "D_eff": "kT L_ss/n_s (paper eqns 8-9, short blocks)",
            "D_eff_long": "kT L_ss/n_s from the long (tracer) blocks",
            "D_eff_cait": "NPP-effective D from the full-L CAIT transformation",
            "haven": "Haven ratio D*/D_eff", "ratio_2Dstar": "D_eff / (2 D*) (1 if the paper's "
                                                               "relation held)"}
    dv = {}
    for v in SCAN_VARS:
        dv[v] = (("case", "x", "species"), data[v], {"units": units[v], "long_name": long[v]})
        dv[f"{v}_sem"] = (("case", "x", "species"), data[f"{v}_sem"],
                          {"units": units[v], "long_name": f"standard error of {v}"})
    dv["L12"] = (("case", "x"), l12["L12"], {"units": "1/(J m s)", "long_name": "Onsager L_12"})
    dv["L12_sem"] = (("case", "x"), l12["L12_sem"], {"units": "1/(J m s)",
                                                     "long_name": "standard error of L12"})
    dv["L12_rel"] = (("case", "x"), l12["L12_rel"], {"units": "1",
                                                     "long_name": "L_12 / sqrt(L_11 L_22)"})
    dv["wall_time"] = (("case", "x"), wall, {"units": "s", "long_name": "wall time"})
    return xr.Dataset(
        dv, coords={"case": np.arange(len(cases)),
                    "fwhm_eV": ("case", np.array([float(c[0]) for c in cases]), {"units": "eV"}),
                    "foreign": ("case", np.array([str(c[1]) for c in cases], dtype=str)),
                    "x": ("x", np.array(xs), {"units": "1",
                                              "long_name": "n_native/(n_native+n_foreign)"}),
                    "species": np.array(["native", "foreign"])},
        attrs={"size": int(size), "seed": int(seed), "n_blocks": int(n_blocks),
               "tracer_blocks": int(tracer_blocks),
               "events_per_block": int(events_per_block),
               "n_equilibration_events": int(n_equilibration_events),
               "E_DC_eV": CheckLattice().E_DC_eV, "temperature_K": CheckLattice().temperature_K,
               "error_source": "blocks of one replica (L: n_blocks short blocks, D*: tracer_blocks "
                               "long blocks); jackknife for the CAIT transformation, relative "
                               "errors in quadrature for D*/D_eff ratios"})


def merge_scans(datasets) -> xr.Dataset:
    """Concatenate scans (possibly on different x) along ``case``; missing x are NaN."""
    parts = [d.drop_vars("case") for d in datasets]
    ds = xr.concat(parts, dim="case", join="outer", data_vars="all", coords="different",
                   compat="equals", combine_attrs="drop_conflicts")
    return ds.assign_coords(case=np.arange(ds.sizes["case"]))


def plot_scan(ds: xr.Dataset):
    """D_eff/(2 D*) and the Haven ratio against x for every case (two panels)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    markers = {"native": "o", "foreign": "s"}
    for c in ds.case.values:
        sub = ds.sel(case=c)
        label = f"{1e3 * float(sub.fwhm_eV):.0f} meV, {str(sub.foreign.values)}"
        for k, sp in enumerate(ds.species.values):
            for ax, v in zip(axes, ("ratio_2Dstar", "haven")):
                y = sub[v].sel(species=sp).values
                if not np.isfinite(y).any():
                    continue
                ax.errorbar(ds.x.values + 0.008 * (c - 1), y,
                            yerr=sub[f"{v}_sem"].sel(species=sp).values, fmt=markers[sp] + "-",
                            ms=4, capsize=2, color=f"C{c}", alpha=1.0 if k == 0 else 0.6,
                            label=f"{label}, {sp}")
    axes[0].axhline(1.0, color="k", lw=1, ls="--")
    axes[0].set_ylabel("D_eff / (2 D*)")
    axes[1].set_ylabel("Haven ratio D*/D_eff")
    for ax in axes:
        ax.set_xlabel("x = n_native/(n_native+n_foreign)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6)
    fig.suptitle(f"equilibrium KMC, {ds.attrs['size']}^3 periodic cell, 90 % filling, "
                 f"{ds.attrs['temperature_K']:.0f} K", fontsize=9)
    fig.tight_layout()
    return fig


def plot_labels(ds: xr.Dataset):
    """Labels cases: the diagonal D_eff (eqns 8-9), the full-L CAIT D_eff and 2 D* vs x."""
    import matplotlib.pyplot as plt

    cases = [c for c in ds.case.values if str(ds.foreign.values[c]) == "labels"]
    fig, axes = plt.subplots(1, max(len(cases), 1), figsize=(5 * max(len(cases), 1), 3.8),
                             squeeze=False)
    for ax, c in zip(axes[0], cases):
        sub = ds.sel(case=c, species="native")
        for v, fmt, lab in (("D_eff", "o-", "kT L_11/n_1 (eqns 8-9)"),
                            ("D_eff_cait", "s-", "full-L CAIT D_1,eff"),
                            ("D_star", "^--", "D* (tracer)")):
            ax.errorbar(ds.x, sub[v], yerr=sub[f"{v}_sem"], fmt=fmt, capsize=2, ms=4, label=lab)
        ax.errorbar(ds.x, 2 * sub.D_star, yerr=2 * sub.D_star_sem, fmt="v:", capsize=2, ms=4,
                    label="2 D*")
        ax.set_title(f"identical species (labels), SED FWHM {1e3 * float(sub.fwhm_eV):.0f} meV",
                     fontsize=9)
        ax.set_xlabel("x = n_native/(n_native+n_foreign)")
        ax.set_ylabel("native D [cm^2/s]")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def markdown_table(ds: xr.Dataset) -> str:
    """The scan as a Markdown table (native and foreign per row)."""
    def pm(v, e, fmt):
        return "–" if not np.isfinite(v) else f"{v:{fmt}} ± {e:{fmt}}"

    rows = ["| SED FWHM | foreign | x | D*_nat [cm²/s] | D_eff/(2D*) nat | D_eff/(2D*) for | "
            "H nat | H for | CAIT D_eff,nat/D*_nat | L12/sqrt(L11 L22) |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for c in ds.case.values:
        for x in ds.x.values:
            s = ds.sel(case=c, x=x)
            n, f = s.sel(species="native"), s.sel(species="foreign")
            if not np.isfinite(float(n.D_star)):
                continue  # composition not run for this case (merged scans)
            cait = float(n.D_eff_cait / n.D_star)
            rows.append(
                f"| {1e3 * float(s.fwhm_eV):.0f} meV | {str(s.foreign.values)} | {x:.2f} | "
                f"{pm(float(n.D_star), float(n.D_star_sem), '.3g')} | "
                f"{pm(float(n.ratio_2Dstar), float(n.ratio_2Dstar_sem), '.3f')} | "
                f"{pm(float(f.ratio_2Dstar), float(f.ratio_2Dstar_sem), '.3f')} | "
                f"{pm(float(n.haven), float(n.haven_sem), '.3f')} | "
                f"{pm(float(f.haven), float(f.haven_sem), '.3f')} | "
                f"{'–' if not np.isfinite(cait) else f'{cait:.3f}'} | "
                f"{'–' if not np.isfinite(float(s.L12_rel)) else f'{float(s.L12_rel):+.3f}'} |")
    return "\n".join(rows)


def add_arguments(ap) -> None:
    """Options of the scan (shared by `cait check onsager` and ``python -m``)."""
    ap.add_argument("-o", "--output", default="outputs/onsager_checks",
                    help="output folder (default: outputs/onsager_checks)")
    ap.add_argument("--size", type=int, default=6, help="edge L of the periodic L^3 lattice")
    ap.add_argument("--blocks", type=int, default=400, help="time blocks per composition")
    ap.add_argument("--tracer-blocks", type=int, default=10,
                    help="longer blocks for the tracer D* (the blocks are merged)")
    ap.add_argument("--events-per-block", type=int, default=5_000)
    ap.add_argument("--equilibration-events", type=int, default=100_000)
    ap.add_argument("--x", default="0.2,0.5,0.8,1.0", help="compositions, comma-separated")
    ap.add_argument("--cases", default="0:labels,0.25:labels,0.25:uncorrelated",
                    help="comma-separated FWHM_eV:foreign")
    ap.add_argument("--figures", default=None, help="also copy the figures to this folder")


def run(args) -> int:
    """The scan of docs/findings.md: dataset, figures and the Markdown table (printed)."""
    from compare.io.datasets import save_figure, write_dataset
    from compare.io.outputs import output_dir

    try:
        cases = [(float(c.split(":")[0]), c.split(":")[1]) for c in args.cases.split(",")]
        xs = [float(v) for v in args.x.split(",")]
    except (ValueError, IndexError):
        raise ConfigError(f"`--cases` must be FWHM_eV:foreign pairs and `--x` numbers, got "
                          f"{args.cases!r} and {args.x!r}") from None
    with output_dir(args.output) as out:
        ds = scan(cases, xs, size=args.size, n_blocks=args.blocks,
                  events_per_block=args.events_per_block, tracer_blocks=args.tracer_blocks,
                  n_equilibration_events=args.equilibration_events)
        write_dataset(ds, out / "onsager_scan.nc")
        for folder in [out] + ([Path(args.figures)] if args.figures else []):
            save_figure(plot_scan(ds), folder / "onsager_scan.png", dpi=90)
            save_figure(plot_labels(ds), folder / "onsager_labels.png", dpi=90)
    print(markdown_table(ds))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m compare.checks.onsager",
                                 description="KMC Onsager scan for docs/findings.md")
    add_arguments(ap)
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
