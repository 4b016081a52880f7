"""KMC against NPP on one scenario: profiles, metrics, dataset, figures, report (`cait compare`).

Pipeline (docs/comparison.md):

1. KMC CAIT ensemble (``kmc.nc``, from :func:`compare.workflows.run_kmc.run_kmc`) and the equilibrium
   table ``D_eff(species, x)`` (``kmc_equilibrium.nc``, :func:`compare.workflows.run_kmc.run_equilibrium`),
   run or reused.
2. The KMC's own bulk D of the native species (registry :data:`D_BULK_SOURCES`): from the ohmic
   native current through the back of the CAIT run itself (``"current"``) or from the
   equilibrium run at x = 1 (``"equilibrium"``).  NPP needs it because the KMC's time scale is
   set by its rates, not by the input's ``D_cm2_s``.
3. NPP on the KMC's domain (thickness ``nx a``; deeper for a KMC with a moving back, which
   stands for a semi-infinite sample: :func:`solve_semi_infinite`) with D(n) from each source of
   :data:`NPP_D_SOURCES`: ``"sed"`` (paper eqn 2 scaled to the KMC bulk D, foreign D constant at
   the KMC's pure-foreign value) and ``"kmc-table"`` (the equilibrium table, as ``TableD``).
4. :class:`ProfileComparison`: metrics per time (:mod:`compare.workflows.profile_metrics`):
   front position, native plateau, foreign inventory, L2 distance (absolute and in KMC
   standard errors). Figures and the report: :mod:`compare.reports.comparison`.

Everything here works on fractions of n_bulk and depths in nm.
"""
from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from compare import scenario
from compare.errors import ConfigError, InputFileError
from compare.io.outputs import default_output, output_dir
from compare.units import CM2_TO_M2
from compare.workflows.profile_metrics import (FRONT_LEVEL, METRICS, PLATEAU_WINDOW, front_reference,
                                               l2_distance, layer_average, profile_metrics)

REL_SEM_MAX = 0.5  # equilibrium D values with larger relative error are not tabulated


# =============================================================================== D scales
FOREIGN_FREE = 0.02  # galvanostatic bulk field: gaps whose two layers hold less foreign


def _replicas(da):
    """``da`` with a leading ``replica`` dim (length 1 for a single run)."""
    return da if "replica" in da.dims else da.expand_dims(replica=[0])


def bulk_field_kmc(kmc, cfg, foreign_free=FOREIGN_FREE):
    """Time-averaged field [V/m] in the foreign-free bulk of a galvanostatic KMC run, per replica.

    With a fixed beam current the KMC's bulk field is an output (``j / sigma_KMC``). The field
    snapshots are quantised in units of ``c`` (field of one charge per layer) and fluctuate by
    ~1 c per gap; runs that record ``field_avg`` (the exact time average over each output
    interval) use it instead. The mean runs over every output time after t = 0 and every
    interior gap of the simulated depth whose two neighbouring layers hold less than
    ``foreign_free`` foreign fraction.

    Returns
    -------
    ndarray of float, shape (n_replicas,)
    """
    native = cfg.native.name
    conc = _replicas(kmc["concentration"]).transpose("replica", "species", "time", "depth")
    foreign = conc.drop_sel(species=native).sum("species").mean("replica").values  # (t, l)
    # the exact time average over each output interval where the run recorded it (snapshots
    # fluctuate by ~c per gap; the interval means average over every event)
    name = "field_avg" if "field_avg" in kmc else "field"
    field = _replicas(kmc[name]).transpose("replica", "time", "gap_depth").values
    nx = foreign.shape[1]
    g = np.arange(1, nx)
    free = (foreign[:, g - 1] < foreign_free) & (foreign[:, g] < foreign_free)  # (t, g)
    free[0] = False  # t = 0 is the imposed initial field, not a measurement
    if "active_layers" in kmc:
        # a moving back: gaps beyond it lie in frozen bulk (recorded as the back gap's field)
        nxa = _replicas(kmc["active_layers"]).transpose("replica", "time").values
    else:
        nxa = np.full((field.shape[0], field.shape[1]), nx)
    masks = [free & (g[None, :] < n[:, None]) for n in nxa]
    if not all(m.any() for m in masks):
        raise ConfigError("`cait compare`: no foreign-free bulk left in the KMC lattice to "
                          "measure the galvanostatic bulk field; shorten the run or use "
                          "--d-bulk equilibrium")
    return np.array([np.mean(f[:, g][m]) for f, m in zip(field, masks)])


MOVING_BACK_NOTE = (
    "the native bulk D cannot be measured from the back current of a run with a moving back "
    "(buffer_layers > 0): its only foreign-free gaps are the buffer next to the front and the "
    "back boundary, where the field is not the ohmic bulk field (plateau input, r ~ 300: "
    "~35x the ohmic field, D 9.5e-16 instead of ~3e-14 cm^2/s); the equilibrium D at x = 1 "
    "is used")


class NoBulkField(ConfigError):
    """The run has no measurable ohmic bulk field (a moving back): message MOVING_BACK_NOTE."""


def d_bulk_from_current(kmc, cfg):
    """Native bulk D_eff [cm^2/s] from the ohmic native current through the back of a KMC run.

    ``D = J kT / (n_bulk e E)``:

    * potentiostatic: over the first recorded interval (the replaced zone is thin),
      ``E = U / ((nx + 1) a)``;
    * galvanostatic (fixed beam current): ``J`` = native current through the back over the
      whole run after the first interval (steady state: the back current equals the beam
      current), ``E`` = the KMC's own time-averaged field in the foreign-free bulk
      (:func:`bulk_field_kmc`). Dividing by the input's ``back_field_V_per_m`` instead would
      only return the input's ``D_cm2_s``, from which the beam current was made.

    Returns
    -------
    (float, float)
        Value and standard error over replicas [cm^2/s] (SEM NaN for one replica).
    """
    if int(kmc.attrs.get("buffer_layers", 0)) > 0:
        raise NoBulkField(MOVING_BACK_NOTE)
    phase = cfg.beam[0]
    if phase.drive == "off":
        raise ConfigError("`cait compare`: the first beam phase must drive a current "
                          "(drive = \"galvanostatic\" or \"potentiostatic\") to measure D_bulk "
                          "from the KMC current; use --d-bulk equilibrium")
    a_m = float(kmc.attrs["a_nm"]) * 1e-9
    nx, ny, nz = (int(kmc.attrs[k]) for k in ("nx", "ny", "nz"))
    native = cfg.native.name
    var = _replicas(kmc["back_net_out"].sel(species=native))
    t = kmc["time"].values
    if t.size < 2 or t[1] <= t[0]:
        raise ConfigError("`cait compare` needs at least two KMC output times")
    area = ny * nz * a_m ** 2
    n_bulk = float(cfg.material.n_bulk_cm3) * 1e6
    if phase.drive == "galvanostatic":
        # the first driven phase only (later phases may carry another current)
        t_end = float(phase.duration_s)
        k2 = int(np.searchsorted(t, t_end * (1 + 1e-12), side="right")) - 1
        k1 = 1 if k2 > 1 else 0
        field = bulk_field_kmc(kmc.isel(time=slice(0, k2 + 1)), cfg)
    else:
        k1, k2 = 0, 1
        field = np.full(var.sizes["replica"], float(phase.voltage_V) / ((nx + 1) * a_m))
    n_out = (var.isel(time=k2) - var.isel(time=k1)).values
    D = n_out / (area * (t[k2] - t[k1])) * scenario.kT_eV(cfg) / (n_bulk * field) / CM2_TO_M2
    D = np.atleast_1d(D)
    sem = float(np.std(D, ddof=1) / np.sqrt(D.size)) if D.size > 1 else math.nan
    return float(np.mean(D)), sem


def kmc_long_block_d(kmc):
    """``(D_native_bulk, sem, D_foreign, sem, source)`` [cm^2/s] that `cait kmc run` measured
    for the run's mobility ratio (long equilibrium blocks, compare.workflows.plateau), or None
    when the dataset does not carry them.

    The short blocks of ``kmc_equilibrium.nc`` inflate the native D by the rattling: 1.45x at
    250 meV, 6.4x at 350 meV (docs/plateau.md); the NPP runs must use the same D as the run's
    ``D_ratio_native_over_foreign``."""
    try:
        vals = [float(kmc.attrs[k]) for k in ("D_native_bulk_cm2_s", "D_native_bulk_sem_cm2_s",
                                               "D_foreign_eff_cm2_s", "D_foreign_eff_sem_cm2_s")]
    except (KeyError, TypeError, ValueError):
        return None
    if not all(np.isfinite(v) and v > 0 for v in (vals[0], vals[2])):
        return None
    return (*vals, str(kmc.attrs.get("D_native_bulk_source", "kmc.nc")))


def d_bulk_from_equilibrium(eq, cfg, kmc=None):
    """Native D_eff [cm^2/s] at x = 1 (value, SEM): the long-block value of `kmc`
    (:func:`kmc_long_block_d`) when it has one, else the x = 1 point of ``kmc_equilibrium.nc``."""
    long = kmc_long_block_d(kmc) if kmc is not None else None
    if long is not None:
        return long[0], long[1]
    native = cfg.native.name
    if 1.0 not in set(np.round(eq.x.values, 12)):
        raise InputFileError("kmc_equilibrium.nc has no composition x = 1: rerun "
                             "`cait kmc equilibrium` with 1 in --x (or use --d-bulk current)")
    d = eq.D_eff.sel(species=native, x=1.0)
    s = eq.D_eff_sem.sel(species=native, x=1.0)
    return float(d), float(s)


D_BULK_SOURCES = {"current": d_bulk_from_current, "equilibrium": d_bulk_from_equilibrium}


def equilibrium_table(eq, species, role):
    """Reliable ``(fraction of n_bulk, D_eff [cm^2/s])`` points of one species.

    Points with non-positive D or relative SEM above :data:`REL_SEM_MAX` are dropped (natives
    deep in their SED barely move in an equilibrium block). Fraction = x for the native, 1 - x
    for the foreign species (the table's ions fill ``1 - f_vac`` of the sites at every x).
    """
    d = eq.D_eff.sel(species=species).values
    s = eq.D_eff_sem.sel(species=species).values
    x = eq.x.values
    frac = x if role == "native" else 1.0 - x
    ok = np.isfinite(d) & (d > 0) & (np.nan_to_num(s / np.where(d > 0, d, 1), nan=0.0) <= REL_SEM_MAX)
    order = np.argsort(frac[ok])
    return frac[ok][order], d[ok][order]


def npp_dmodels(cfg, source, d_bulk_cm2_s, eq=None, d_foreign_cm2_s=None):
    """D models (m^2/s) per species for one NPP D source, on the KMC's scale.

    ``"sed"``: native eqn 2 with ``D_bulk = d_bulk_cm2_s``; foreign constant at the KMC D_eff of
    the first foreign species at x = 0 (`d_foreign_cm2_s` when given: the run's long-block value,
    else the table's; other foreign species: their input ``D_cm2_s`` scaled by the same
    KMC/input ratio). ``"kmc-table"``: ``TableD`` of the equilibrium points, native table
    rescaled so that D(1) = ``d_bulk_cm2_s`` and foreign table so that its pure-foreign point is
    `d_foreign_cm2_s` (one time scale for both NPP runs).
    """
    from continuum import dmodel as dm

    if source not in NPP_D_SOURCES:
        raise ConfigError(f"unknown NPP D source {source!r}; legal: {', '.join(NPP_D_SOURCES)}")
    if eq is None:
        raise ConfigError("the KMC equilibrium table (kmc_equilibrium.nc) is required")
    native = cfg.native
    foreign1 = cfg.species[1]
    fx, fD = equilibrium_table(eq, foreign1.name, "foreign")
    if fD.size == 0:
        raise InputFileError(f"kmc_equilibrium.nc has no reliable D_eff of {foreign1.name}: "
                             f"include small x (e.g. 0) in --x")
    D_foreign = float(fD[np.argmax(fx)])  # closest to pure foreign
    if d_foreign_cm2_s is not None:
        fD = fD * float(d_foreign_cm2_s) / D_foreign
        D_foreign = float(d_foreign_cm2_s)
    scale = D_foreign / float(foreign1.D_cm2_s)
    models = {}
    if source == "sed":
        models[native.name] = scenario.sed_diffusivity(cfg, d_bulk_cm2_s)
        models[foreign1.name] = dm.ConstantD(D_foreign * CM2_TO_M2)
    else:
        nx_, nD = equilibrium_table(eq, native.name, "native")
        if nD.size == 0:
            raise InputFileError(f"kmc_equilibrium.nc has no reliable D_eff of {native.name}")
        nD = nD * d_bulk_cm2_s / float(np.exp(np.interp(1.0, nx_, np.log(nD))))
        models[native.name] = dm.TableD(nx_, nD * CM2_TO_M2, source="kmc_equilibrium.nc")
        models[foreign1.name] = dm.TableD(fx, fD * CM2_TO_M2, source="kmc_equilibrium.nc")
    for s in cfg.species[2:]:
        models[s.name] = dm.ConstantD(float(s.D_cm2_s) * scale * CM2_TO_M2)
    return models


NPP_D_SOURCES = {
    "sed": "native D(n) from the SED formula (eqn 2) at the KMC bulk D; foreign constant",
    "kmc-table": "D_eff(x) of both species from the KMC equilibrium table (TableD)",
}


# =============================================================================== NPP
def npp_field_scale(cfg, d_bulk_cm2_s):
    """Factor on the NPP galvanostatic back fields so that NPP carries the KMC's beam current.

    The KMC beam current is ``j = e^2 n_bulk D_input E_back / kT`` with the input's native
    ``D_cm2_s`` (:func:`compare.scenario.kmc_phases`); NPP runs with the KMC's measured
    bulk D, so its ohmic back field must be ``E_back D_input / D_bulk`` for the same current.
    """
    return float(cfg.native.D_cm2_s) / float(d_bulk_cm2_s)


# =============================================================================== comparison
def kmc_layers(kmc):
    """KMC profiles: ``(depth [nm], edges [nm], mean, sem, per-replica)``.

    ``mean``/``sem``: DataArray (species, time, depth); ``per-replica``: (replica, species, time,
    depth) (a replica dim of length 1 for a single run; SEM NaN then).
    """
    a = float(kmc.attrs["a_nm"])
    depth = kmc.depth.values
    edges = np.concatenate(([0.0], depth + 0.5 * a))
    if "replica" in kmc.dims:
        rep = kmc["concentration"].transpose("replica", "species", "time", "depth")
        mean = kmc["concentration_mean"]
        sem = kmc["concentration_sem"]
    else:
        rep = kmc["concentration"].expand_dims(replica=[0])
        mean = kmc["concentration"]
        sem = xr.full_like(mean, np.nan)
    return depth, edges, mean, sem, rep


METRIC_NAMES = ("front_position", "plateau", "inventory")


class ProfileComparison:
    """KMC against NPP runs on the KMC's layers, one output time at a time.

    ``ProfileComparison(cfg, kmc, npp_results, d_bulk).run()`` prepares the layer profiles of
    every model (the NPP solutions averaged over the KMC layers), computes per output time the
    front, plateau and inventory of every model (the KMC's with standard errors over replicas)
    and the L2 distances KMC - NPP, and concludes with the ``compare.nc`` dataset in
    :attr:`dataset`.

    Parameters
    ----------
    kmc : xarray.Dataset
        ``kmc.nc`` (single run or merged replicas).
    npp_results : dict
        ``{D source: NPP dataset}`` with output times equal to the KMC times.
    d_bulk : dict
        ``{"current": (value, sem), "equilibrium": (value, sem), "used": name}`` [cm^2/s].
    """

    def __init__(self, cfg, kmc, npp_results, d_bulk):
        self.cfg, self.kmc, self.npp_results, self.d_bulk = cfg, kmc, npp_results, d_bulk
        self.dataset = None

    def run(self):
        self._prepare()
        for k in range(self.times.size):
            self._single_time(k)
        self.dataset = self._conclude()
        return self

    def _prepare(self):
        kmc, cfg = self.kmc, self.cfg
        self.depth, self.edges, mean, sem, rep = kmc_layers(kmc)
        self.times = kmc.time.values
        self.names = list(kmc.species.values)
        self.sources = list(self.npp_results)
        self.models = ["kmc"] + [f"npp-{s}" for s in self.sources]
        n_m, n_s, n_t = len(self.models), len(self.names), self.times.size
        self.profiles = np.full((n_m, n_s, n_t, self.depth.size), np.nan)
        self.profiles[0] = mean.transpose("species", "time", "depth").values
        # NPP profiles on the KMC layers continued to the NPP box's depth: a semi-infinite NPP
        # front may run beyond the KMC lattice; its metrics use the whole box
        a = float(np.diff(self.edges)[-1])
        self.npp_layers = {}
        for m, src in enumerate(self.sources, start=1):
            ds = self.npp_results[src]
            n_more = max(int(np.floor((float(ds.depth.values[-1]) - self.edges[-1]) / a + 1e-9)), 0)
            edges = np.concatenate((self.edges, self.edges[-1] + a * np.arange(1, n_more + 1)))
            depth = np.concatenate((self.depth, self.depth[-1] + a * np.arange(1, n_more + 1)))
            prof = np.array([[layer_average(ds.depth.values,
                                            ds.concentration.sel(species=s).isel(time=k).values,
                                            edges) for k in range(n_t)] for s in self.names])
            self.npp_layers[m] = (depth, edges, prof)
            self.profiles[m] = prof[..., :self.depth.size]
        self.sem_v = sem.transpose("species", "time", "depth").values
        self.rep_v = rep.transpose("replica", "species", "time", "depth").values
        self.i_nat = self.names.index(cfg.native.name)
        self.vals = np.full((len(METRIC_NAMES), n_m, n_t), np.nan)
        self.vals_sem = np.full((len(METRIC_NAMES), n_t), np.nan)
        self.l2 = np.full((len(self.sources), n_s, n_t), np.nan)
        self.l2_sem = np.full_like(self.l2, np.nan)
        self.beyond = set()  # NPP models whose front lies beyond the KMC lattice at some time

    def _active_foreign(self, t):
        """The beam species of the phase at `t` (or of the last phase with a beam before it)."""
        beam = self.cfg.beam
        ends = np.cumsum([p.duration_s for p in beam])
        k = min(int(np.searchsorted(ends, t * (1 - 1e-12))), len(beam) - 1)
        for j in range(k, -1, -1):
            if beam[j].species:
                return beam[j].species
        return self.cfg.species[1].name

    def _single_time(self, k):
        depth, edges, prof, i_nat = self.depth, self.edges, self.profiles, self.i_nat
        i_f = self.names.index(self._active_foreign(self.times[k]))
        # every model's front is read at the KMC's level, except the NPP models' own
        level = FRONT_LEVEL * front_reference(depth, prof[0, i_f, k])
        for m in range(len(self.models)):
            if m == 0:
                mt = profile_metrics(depth, edges, prof[0, i_nat, k], prof[0, i_f, k], level)
            else:
                d_m, e_m, p_m = self.npp_layers[m]
                mt = profile_metrics(d_m, e_m, p_m[i_nat, k], p_m[i_f, k])
                if mt["front_position"] > depth[-1]:
                    self.beyond.add(self.models[m])
            for q, name in enumerate(METRIC_NAMES):
                self.vals[q, m, k] = mt[name]
        if self.rep_v.shape[0] > 1:
            per = np.array([[profile_metrics(depth, edges, r[i_nat, k], r[i_f, k], level)[n]
                             for n in METRIC_NAMES] for r in self.rep_v])
            with warnings.catch_warnings():
                # a metric with fewer than 2 finite replicas (no front yet): SEM NaN, no warning
                warnings.simplefilter("ignore", RuntimeWarning)
                self.vals_sem[:, k] = np.nanstd(per, axis=0, ddof=1) / np.sqrt(per.shape[0])
        for m in range(len(self.sources)):
            for i in range(len(self.names)):
                self.l2[m, i, k] = l2_distance(prof[0, i, k], prof[m + 1, i, k])
                s_ik = self.sem_v[i, k]
                ok = np.isfinite(s_ik) & (s_ik > 0)  # layers never visited have SEM 0
                z = (prof[0, i, k][ok] - prof[m + 1, i, k][ok]) / s_ik[ok]
                self.l2_sem[m, i, k] = float(np.sqrt(np.mean(z * z))) if z.size else math.nan

    def _conclude(self) -> xr.Dataset:
        vals, vals_sem, d_bulk = self.vals, self.vals_sem, self.d_bulk

        def var(dims, data, units, long_name):
            return (dims, data, {"units": units, "long_name": long_name})

        data = {
            "concentration": var(("model", "species", "time", "depth"), self.profiles, "1",
                                 "concentration / n_bulk (layer mean)"),
            "kmc_sem": var(("species", "time", "depth"), self.sem_v, "1",
                           "KMC standard error over replicas"),
        }
        for q, (name, units, what) in enumerate((("front_position", "nm", "front"),
                                                 ("plateau", "1", "plateau"),
                                                 ("inventory", "nm", "inventory"))):
            data[name] = var(("model", "time"), vals[q], units, METRICS[name])
            data[f"{name}_sem"] = var(("time",), vals_sem[q], units,
                                      f"KMC {what} SEM over replicas")
        data["l2"] = var(("source", "species", "time"), self.l2, "1", METRICS["l2"])
        data["l2_sem"] = var(("source", "species", "time"), self.l2_sem, "1", METRICS["l2_sem"])
        coords = {
            "model": ("model", self.models, {"long_name": "engine and D(n) source"}),
            "source": ("source", self.sources, {"long_name": "NPP D(n) source"}),
            "species": ("species", self.names, {"long_name": "ion species"}),
            "time": ("time", self.times, {"units": "s", "long_name": "time"}),
            "depth": ("depth", self.depth, {"units": "nm", "long_name": "depth (KMC layer centre)"}),
        }
        attrs = {
            "engine": "compare",
            "D_bulk_current_cm2_s": d_bulk["current"][0],
            "D_bulk_current_sem_cm2_s": d_bulk["current"][1],
            "D_bulk_equilibrium_cm2_s": d_bulk["equilibrium"][0],
            "D_bulk_equilibrium_sem_cm2_s": d_bulk["equilibrium"][1],
            "D_bulk_source": d_bulk["used"],
            "D_bulk_equilibrium_source": d_bulk.get("equilibrium_source", "kmc_equilibrium.nc, x = 1"),
            "front_definition": METRICS["front_position"],
            "plateau_window": np.asarray(PLATEAU_WINDOW),
            "qEa_over_kT": float(self.kmc.attrs.get("qEa_over_kT", math.nan)),
            "kmc_replicas": int(self.rep_v.shape[0]),
            "kmc_thickness_nm": float(self.edges[-1]),
            "npp_solver": self.cfg.npp.solver,
            "npp_depth_nm": np.asarray([float(ds.attrs.get("npp_depth_nm", self.edges[-1]))
                                        for ds in self.npp_results.values()]),
            "npp_front_beyond_kmc_depth": ", ".join(sorted(m[4:] for m in self.beyond)),
        }
        return xr.Dataset(data, coords=coords, attrs=attrs)


def compare_profiles(cfg, kmc, npp_results, d_bulk) -> xr.Dataset:
    """The ``compare.nc`` dataset of :class:`ProfileComparison` (same parameters)."""
    return ProfileComparison(cfg, kmc, npp_results, d_bulk).run().dataset


# =============================================================================== NPP depth, status
BACK_FOREIGN = 1e-3   # a semi-infinite NPP box is deep enough when the foreign fraction at its
                      # back stays below this at every output time
DEEPEN_MAX = 3        # at most this many doublings of the KMC depth


def foreign_at_back(ds, names) -> float:
    """Largest foreign fraction (of n_bulk) in the deepest 5 % of an NPP box, over all times."""
    z = ds.depth.values
    deep = z >= 0.95 * z[-1]
    return float(max(ds.concentration.sel(species=s).values[:, deep].max() for s in names))


def solve_semi_infinite(cfg, problem, depth_nm):
    """NPP for a KMC with a moving back (a semi-infinite sample): the box starts at the KMC
    depth and doubles until no foreign ion reaches its back (:data:`BACK_FOREIGN`).

    On the KMC's own depth the back="bulk" boundary drains the foreign ions once their front
    gets there (the NPP front runs deeper than the KMC's when its plateau is higher); the KMC
    back follows the front instead. ``problem(depth_nm)`` builds the NPP problem. The dataset
    gets ``npp_depth_nm``; a box still reached after :data:`DEEPEN_MAX` doublings is
    "inaccurate".
    """
    foreign = [s.name for s in cfg.species if s.role == "foreign"]
    depth = float(depth_nm)
    for k in range(DEEPEN_MAX + 1):
        ds = scenario.solve_npp(cfg, problem(depth))
        reached = foreign_at_back(ds, foreign)
        if reached < BACK_FOREIGN:
            break
        if k < DEEPEN_MAX:
            depth *= 2.0
    ds.attrs["npp_depth_nm"] = depth
    if reached >= BACK_FOREIGN:
        ds.attrs["status"] = "inaccurate"
        msg = (f"foreign ions reach the back of the NPP box ({reached:.2g} of n_bulk at "
               f"{depth:g} nm) after {DEEPEN_MAX} doublings of the KMC depth")
        ds.attrs["message"] = "; ".join(m for m in (ds.attrs.get("message", ""), msg) if m)
    return ds


def npp_status(npp_results, cmp):
    """``(status, notes)`` of ``compare.nc`` from its NPP runs: "ok", or the first non-"ok"
    NPP status; one note line per NPP run's status message and validity note, and one for an
    NPP front beyond the KMC lattice (its metrics come from the deeper NPP box; the profiles in
    ``compare.nc`` stop at the KMC depth)."""
    from continuum.validity import OUTSIDE

    status, lines = "ok", []
    for src, ds in npp_results.items():
        st = ds.attrs.get("status", "ok")
        if st != "ok":
            status = st if status in ("ok", OUTSIDE) else status
        if st not in ("ok", OUTSIDE):         # OUTSIDE: the validity line below says it
            lines.append(f"npp-{src}: {st}: {ds.attrs.get('message', '')}")
        note = ds.attrs.get("validity_note", "")
        if note:
            lines.append(f"npp-{src}: outside validity: {note}")
    beyond = cmp.attrs.get("npp_front_beyond_kmc_depth", "")
    if beyond:
        lines.append(f"npp-{beyond}: the front runs beyond the KMC lattice at some output times "
                     f"(metrics from the deeper NPP box; profiles shown to the KMC depth)")
    return status, lines


# =============================================================================== driver
DEFAULT_XS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


# sections of the input that the KMC runs do not read: a reused KMC dataset may come from an
# input that differs only there (e.g. another [npp] flux convention or tolerance)
NOT_READ_BY_KMC = ("npp", "fit")


def _same_for_kmc(old_text, cfg):
    """True when the input text `old_text` and `cfg` differ at most in ``NOT_READ_BY_KMC``."""
    import dataclasses

    from compare.errors import ConfigError
    from compare.io.config import parse_text

    base = cfg.path.parent if cfg.path is not None else None
    try:
        old = parse_text(old_text, base_dir=base)
    except ConfigError:
        return False
    keep = {name: getattr(cfg, name) for name in NOT_READ_BY_KMC}
    return (dataclasses.replace(old, text="", path=None, **keep)
            == dataclasses.replace(cfg, text="", path=None))


def _reusable(path, cfg, reuse):
    """True when ``path`` exists and ``reuse`` is set; a dataset of an input that differs in what
    the KMC reads is an error."""
    from compare.io.datasets import open_dataset
    import hashlib

    if not (reuse and path.is_file()):
        return False
    ds = open_dataset(path)
    want = hashlib.sha256(cfg.text.encode()).hexdigest()
    if ds.attrs.get("input_sha256", want) != want and not _same_for_kmc(
            str(ds.attrs.get("input_text", "")), cfg):
        raise InputFileError(f"--reuse: {str(path)!r} was made from another input (it differs "
                             f"outside [{'], ['.join(NOT_READ_BY_KMC)}]); delete it or run "
                             f"without --reuse")
    return True


def equilibrium_table_for(path, cfg):
    """The ``kmc_equilibrium.nc`` at `path` for `cfg`'s scenario, checked: it must come from an
    input with the same material, SED and species (any [kmc] settings, e.g. longer blocks).

    Raises
    ------
    InputFileError
        Missing or unreadable file, or a table of another glass or landscape.
    """
    from compare.io.config import parse_text
    from compare.io.datasets import open_dataset

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"--equilibrium: {str(path)!r} does not exist")
    try:
        eq = open_dataset(path)
        old = parse_text(str(eq.attrs["input_text"]),
                         base_dir=cfg.path.parent if cfg.path is not None else None)
    except Exception as exc:  # noqa: BLE001 - any unreadable table is a bad input
        raise InputFileError(f"--equilibrium: cannot use {str(path)!r} ({exc.__class__.__name__}: "
                             f"{exc}); give a kmc_equilibrium.nc written by `cait kmc "
                             f"equilibrium`") from None
    for part in ("material", "sed", "species"):
        if getattr(old, part) != getattr(cfg, part):
            raise InputFileError(f"--equilibrium: {str(path)!r} was made for another [{part}] "
                                 f"than {str(cfg.path or 'the input')!r}; only [kmc] settings "
                                 f"may differ")
    return eq


def run_compare(input_path, out_dir=None, replicas=None, reuse=False, quiet=False,
                d_bulk="current", xs=DEFAULT_XS, sources=tuple(NPP_D_SOURCES),
                equilibrium=None) -> dict:
    """`cait compare`: KMC ensemble + equilibrium table + NPP runs -> compare.nc, figures, report.

    `equilibrium`: path of a ``kmc_equilibrium.nc`` to use instead of running (or reusing) the
    input's own (same material, SED and species; e.g. made with longer blocks,
    :func:`equilibrium_table_for`).

    Returns
    -------
    dict
        Paths of the written files and the wall times [s].
    """
    import time

    from compare.io.config import load_config
    from compare.io.datasets import open_dataset, save_figure, write_dataset
    from compare.reports.comparison import (metrics_figure, profile_figure, report_markdown,
                                            shown_times)
    from compare.workflows.run_kmc import run_equilibrium, run_kmc

    cfg = load_config(input_path)
    if d_bulk not in D_BULK_SOURCES:
        raise ConfigError(f"`--d-bulk` must be one of {', '.join(D_BULK_SOURCES)}, got {d_bulk!r}")
    for s in sources:
        if s not in NPP_D_SOURCES:
            raise ConfigError(f"unknown NPP D source {s!r}; legal: {', '.join(NPP_D_SOURCES)}")
    out = Path(out_dir) if out_dir is not None else default_output(cfg, "_compare")
    eq_given = equilibrium_table_for(equilibrium, cfg) if equilibrium is not None else None
    with output_dir(out):
        timings = {}
        kmc_path, eq_path = out / "kmc.nc", out / "kmc_equilibrium.nc"
        t0 = time.monotonic()
        if not _reusable(kmc_path, cfg, reuse):
            code = run_kmc(input_path, out_dir=out, replicas=replicas, quiet=quiet)
            if code != 0:
                return {"exit_code": code}
            timings["kmc run"] = time.monotonic() - t0
        t0 = time.monotonic()
        if eq_given is None and not _reusable(eq_path, cfg, reuse):
            code = run_equilibrium(input_path, tuple(xs), out_dir=out, replicas=replicas, quiet=quiet)
            if code != 0:
                return {"exit_code": code}
            timings["kmc equilibrium"] = time.monotonic() - t0
        kmc = open_dataset(kmc_path)
        eq = eq_given if eq_given is not None else open_dataset(eq_path)
        try:
            scales = {"current": d_bulk_from_current(kmc, cfg), "used": d_bulk}
        except NoBulkField:
            if not quiet:
                print(f"cait compare: note: {MOVING_BACK_NOTE}", file=sys.stderr, flush=True)
            scales = {"current": (math.nan, math.nan), "used": "equilibrium"}
            d_bulk = "equilibrium"
        long = kmc_long_block_d(kmc)
        scales["equilibrium_source"] = (f"kmc.nc ({long[4]})" if long is not None else
                                        "kmc_equilibrium.nc, x = 1")
        d_foreign = long[2] if long is not None else None
        try:
            scales["equilibrium"] = d_bulk_from_equilibrium(eq, cfg, kmc)
        except InputFileError:
            if d_bulk == "equilibrium":
                raise
            scales["equilibrium"] = (math.nan, math.nan)
        D_b = scales[d_bulk][0]
        if not (np.isfinite(D_b) and D_b > 0):
            raise ConfigError(f"the KMC bulk D from `{d_bulk}` is not positive ({D_b:g} cm^2/s): "
                              f"the run moved no native charge; lengthen it or use the other source")
        thickness = float(kmc.attrs["a_nm"]) * int(kmc.attrs["nx"])
        semi_infinite = int(kmc.attrs.get("buffer_layers", 0)) > 0
        npp_results = {}
        for src in sources:
            t0 = time.monotonic()

            def problem(depth_nm, src=src):
                return scenario.npp_problem(cfg, d_models=npp_dmodels(cfg, src, D_b, eq,
                                                                      d_foreign),
                                            thickness_nm=depth_nm,
                                            output_times_s=tuple(float(t) for t in kmc.time.values),
                                            field_scale=npp_field_scale(cfg, D_b))

            npp_results[src] = (solve_semi_infinite(cfg, problem, thickness) if semi_infinite
                                else scenario.solve_npp(cfg, problem(thickness)))
            timings[f"npp {src}"] = time.monotonic() - t0
        cmp = compare_profiles(cfg, kmc, npp_results, scales)
        cmp.attrs["npp_field_scale"] = npp_field_scale(cfg, D_b)
        cmp.attrs["equilibrium_table"] = (str(Path(equilibrium).resolve()) if equilibrium
                                          is not None else str(eq_path))
        status, notes = npp_status(npp_results, cmp)
        message = "; ".join(notes)
        if not quiet:
            for line in notes:
                print(f"cait compare: warning: {line}", file=sys.stderr, flush=True)
        if cfg.beam[0].drive == "galvanostatic":
            e_bulk = bulk_field_kmc(kmc, cfg)
            cmp.attrs["kmc_bulk_field_V_per_m"] = float(np.mean(e_bulk))
            cmp.attrs["kmc_bulk_field_sem_V_per_m"] = (float(np.std(e_bulk, ddof=1)
                                                             / np.sqrt(e_bulk.size))
                                                      if e_bulk.size > 1 else math.nan)
        figures = {"profiles": save_figure(profile_figure(cmp, shown_times(cmp, cfg), cfg),
                                           out / "compare_profiles.png"),
                   "metrics": save_figure(metrics_figure(cmp, cfg), out / "compare_metrics.png")}
        path = write_dataset(cmp, out / "compare.nc", cfg=cfg, status=status, message=message)
        (out / "compare.md").write_text(report_markdown(cmp, cfg, timings, figures, notes))
        if not quiet:
            print(f"cait compare: -> {path}, {out / 'compare.md'}")
        return {"dataset": path, "report": out / "compare.md", **figures, "timings": timings,
                "exit_code": 0}
