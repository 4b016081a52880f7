"""KMC engine: parameters, set-up, chunked advance with exact checkpoint/resume, datasets.

Public API (documented in docs/kmc.md, section "Engine API"):

* ``Species``, ``Phase``, ``KMCParams`` -- plain frozen dataclasses (SI units / eV).
* ``Simulation(params, seed, state=None)`` -- ``advance(max_events)``, ``run(progress)``,
  ``state`` (dict of numpy arrays = checkpoint), ``to_dataset()``.
* ``run_kmc(params, seed, progress=None)`` -> ``xarray.Dataset`` (CAIT run).
* ``run_equilibrium(params, seed, sample_times_s, ...)`` -> ``xarray.Dataset`` (periodic lattice).
"""
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.constants as sc
import xarray as xr

from . import _kernel as K
from .electrostatics import (DRIVES, background_per_layer, coupling_V_per_m, front_counts,
                             potential_from_fields)
from .errors import KMCConfigError, KMCError, KMCStateError
from .lattice import fill_layers, landscape, lattice_spacing_m
from .rates import RATE_MODELS, b_factor
from .rng import seed_state
from .selectors import SELECTORS, tree_size, wide_layout

GEOMETRIES = ("open", "periodic")
BACKS = {"bulk": K.BACK_BULK, "electrode": K.BACK_ELECTRODE}
INITS = ("fermi", "random")
ACCELERATIONS = ("none", "bond-cap")   # docs/acceleration.md
STATE_KEYS = ("occ", "site_ion", "ion_sp", "ion_site", "ion_disp", "free_ids", "cnt", "coll",
              "counters", "rng", "clock", "ist", "r_cnt", "r_E", "r_counters", "r_coll",
              "r_hist", "r_ion", "r_nev", "event_order")
# state keys added later: a checkpoint without them gets their neutral value (``_check_state``)
OPTIONAL_STATE_KEYS = ("nx_active", "r_nxa", "gint", "r_Eavg")


@dataclass(frozen=True)
class Species:
    """One mobile ion species (charge +1). ``species[0]`` of ``KMCParams`` is the native one."""
    name: str
    role: str = "native"          # "native" | "foreign"
    E_DC_eV: float = 0.5          # transport threshold of the trap model [eV]
    nu_Hz: float = 1e13           # attempt frequency [1/s]
    mu_eV: float = 0.0            # foreign: mean site energy; also the front-reservoir site energy
    sigma_eV: float = 0.0         # foreign: standard deviation of the site energies [eV]
    rho: float = 0.0              # foreign: correlation with the native landscape


@dataclass(frozen=True)
class Phase:
    """One beam phase (docs/physics.md §4, docs/kmc.md "Electrostatics and drives").

    ``drive="galvanostatic"``: the beam delivers ``beam_current_A_per_m2`` onto the front
    surface; ``back_field_V_per_m`` only sets the initial surface charge of the first driven
    phase (the sample starts carrying the ohmic field). ``"off"``: no beam, front blocked, the
    surface charge stays. ``"potentiostatic"``: ``voltage_V`` across the sample.
    """
    species: str | None           # active foreign species at the front (None when drive off)
    duration_s: float
    drive: str = "galvanostatic"  # "galvanostatic" | "potentiostatic" | "off"
    back_field_V_per_m: float = 0.0   # galvanostatic: initial ohmic field [V/m]
    voltage_V: float = 0.0
    theta_front: float = 0.5
    beam_current_A_per_m2: float = 0.0  # galvanostatic: beam current density onto the front


@dataclass(frozen=True)
class KMCParams:
    """Everything the engine needs, resolved from the input file by the caller."""
    nx: int
    ny: int
    nz: int
    species: tuple                # of Species; [0] native
    native_sampler: object        # any object with sample(rng, n) -> ndarray (n,), eV
    n_bulk_m3: float = 1.4e28     # native ion density of the bulk [m^-3]
    vacancy_fraction: float = 0.10
    temperature_K: float = 300.0
    eps_r: float = 8.0
    rate_model: str = "trap"      # see kmc.rates.RATE_MODELS
    selector: str = "tree"        # see kmc.selectors.SELECTORS
    geometry: str = "open"        # "open" (reservoirs in x) | "periodic" (equilibrium runs)
    back: str = "bulk"            # "bulk" reservoir | "electrode" (absorbs natives)
    electrostatics: bool = True   # mean-field space charge (False: applied field only)
    phases: tuple = ()            # of Phase (open geometry)
    field_scale: float = 1.0      # multiplies applied fields/voltages (KMC fields are raised)
    output_times_s: tuple = ()    # scheduled sample times [s], ascending
    n_energy_bins: int = 40
    energy_range_eV: tuple = (-0.6, 0.6)
    n_slabs: int = 1              # depth slabs of the occupancy-vs-energy histograms
    record_histograms: bool = True
    record_ions: bool = False     # per-ion unwrapped displacements at every sample time
    init: str = "fermi"           # "fermi" | "random" initial native placement
    composition_x: float = 1.0    # periodic: n_native / (n_native + n_foreign)
    n_ions: int | None = None     # periodic: total ions (default (1 - f_vac) n_sites)
    duration_s: float | None = None   # periodic: end time (default: last sample time)
    periodic_field_V_per_m: float = 0.0  # periodic: uniform applied field along x
    buffer_layers: int = 0        # open: simulate only down to this many layers beyond the
                                  # deepest foreign ion; the rest is frozen fresh bulk (0: off)
    acceleration: str = "none"    # "none" | "bond-cap" (kmc.rates: slow the bonds whose slower
    bond_cap_kT: float = 0.0      # direction's barrier is below E_DC,native - E_F,bulk +
                                  # bond_cap_kT kT; docs/acceleration.md)
    extra: dict = field(default_factory=dict, compare=False)  # free-form notes, not used


def _check(params):
    p = params
    if p.rate_model not in RATE_MODELS:
        raise KMCConfigError(f"unknown `rate_model` {p.rate_model!r}; legal: {sorted(RATE_MODELS)}")
    if p.selector not in SELECTORS:
        raise KMCConfigError(f"unknown `selector` {p.selector!r}; legal: {sorted(SELECTORS)}")
    if p.geometry not in GEOMETRIES:
        raise KMCConfigError(f"unknown `geometry` {p.geometry!r}; legal: {list(GEOMETRIES)}")
    if p.back not in BACKS:
        raise KMCConfigError(f"unknown `back` {p.back!r}; legal: {sorted(BACKS)}")
    if p.init not in INITS:
        raise KMCConfigError(f"unknown `init` {p.init!r}; legal: {list(INITS)}")
    for key in ("ny", "nz"):
        if getattr(p, key) < 3:
            raise KMCConfigError(f"`{key}` must be >= 3 (periodic), got {getattr(p, key)}")
    if p.nx < (3 if p.geometry == "periodic" else 2):
        raise KMCConfigError(f"`nx` must be >= {3 if p.geometry == 'periodic' else 2}, got {p.nx}")
    if not 0.0 <= p.vacancy_fraction < 1.0:
        raise KMCConfigError(f"`vacancy_fraction` must be in [0, 1), got {p.vacancy_fraction}")
    if p.temperature_K <= 0:
        raise KMCConfigError(f"`temperature_K` must be > 0, got {p.temperature_K}")
    if not p.species or p.species[0].role != "native":
        raise KMCConfigError("`species[0]` must be the native species (role 'native')")
    if sum(s.role == "native" for s in p.species) != 1:
        raise KMCConfigError("exactly one species must have role 'native'")
    if len(p.species) > 127:
        raise KMCConfigError(f"at most 127 species, got {len(p.species)}")
    names = [s.name for s in p.species]
    for ph in p.phases:
        if ph.drive not in DRIVES:
            raise KMCConfigError(f"unknown phase `drive` {ph.drive!r}; legal: {sorted(DRIVES)}")
        if ph.drive != "off" and ph.species not in names[1:]:
            raise KMCConfigError(f"phase `species` {ph.species!r} is not a foreign species; legal: {names[1:]}")
        if not 0.0 <= ph.theta_front < 1.0:
            raise KMCConfigError(f"`theta_front` must be in [0, 1), got {ph.theta_front}")
        if ph.duration_s <= 0:
            raise KMCConfigError(f"phase `duration_s` must be > 0, got {ph.duration_s}")
        j = ph.beam_current_A_per_m2
        if not (j >= 0.0 and np.isfinite(j)):
            raise KMCConfigError(f"phase `beam_current_A_per_m2` must be finite and >= 0, got {j}")
        if j > 0.0 and ph.drive != "galvanostatic":
            raise KMCConfigError(f"phase `beam_current_A_per_m2` only applies to galvanostatic "
                                 f"phases, got {j} with drive {ph.drive!r}")
    if p.geometry == "open" and not p.phases:
        raise KMCConfigError("open geometry needs at least one phase in `phases`")
    t = np.asarray(p.output_times_s, dtype=float)
    if t.size and np.any(np.diff(t) < 0):
        raise KMCConfigError("`output_times_s` must be ascending")
    if not 0 < p.n_energy_bins <= 255:
        raise KMCConfigError(f"`n_energy_bins` must be in 1..255, got {p.n_energy_bins}")
    if not 1 <= p.n_slabs <= p.nx:
        raise KMCConfigError(f"`n_slabs` must be in 1..nx, got {p.n_slabs}")
    if p.acceleration not in ACCELERATIONS:
        raise KMCConfigError(f"unknown `acceleration` {p.acceleration!r}; legal: {list(ACCELERATIONS)}")
    if p.acceleration == "bond-cap" and p.rate_model != "trap":
        raise KMCConfigError(f"`acceleration` \"bond-cap\" needs `rate_model` \"trap\" (the cap is "
                             f"set from the trap model's E_DC), got {p.rate_model!r}")
    if not np.isfinite(p.bond_cap_kT):
        raise KMCConfigError(f"`bond_cap_kT` must be finite, got {p.bond_cap_kT}")
    if p.buffer_layers < 0 or p.buffer_layers == 1:
        raise KMCConfigError(f"`buffer_layers` must be 0 (off) or >= 2, got {p.buffer_layers}")
    if p.buffer_layers:
        if p.geometry != "open" or p.back != "bulk":
            raise KMCConfigError("`buffer_layers` > 0 needs the open geometry with a bulk back "
                                 f"(a moving back reservoir), got geometry {p.geometry!r}, back "
                                 f"{p.back!r}; set buffer_layers = 0")
        if any(ph.drive == "potentiostatic" for ph in p.phases):
            raise KMCConfigError("`buffer_layers` > 0 cannot be used with a potentiostatic "
                                 "phase (the voltage drops over the whole sample depth); set "
                                 "buffer_layers = 0")
    if not 0.0 <= p.composition_x <= 1.0:
        raise KMCConfigError(f"`composition_x` must be in [0, 1], got {p.composition_x}")
    m = p.ny * p.nz
    n_ion = background_per_layer(p.vacancy_fraction, p.ny, p.nz)
    if p.geometry == "open" and not 0 < n_ion < m:
        what = "no vacancy" if n_ion >= m else "no ion"
        raise KMCConfigError(
            f"`vacancy_fraction` = {p.vacancy_fraction:g} leaves {what} in a layer of "
            f"ny x nz = {m} sites (round((1 - f_vac) ny nz) = {n_ion} ions): nothing could "
            f"hop; use a larger ny x nz (>= {int(np.ceil(1.0 / max(p.vacancy_fraction, 1e-12)))} "
            f"sites per layer for one vacancy)")


def check_params(params):
    """Check engine parameters without building anything (raises :class:`KMCConfigError`)."""
    _check(params)


def fermi_level(E, n, kT):
    """Chemical potential [eV] at which ``sum 1/(1+exp((E-mu)/kT)) = n`` (bisection)."""
    E = np.asarray(E, dtype=float)
    lo, hi = E.min() - 50 * kT, E.max() + 50 * kT
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        x = np.clip((E - mid) / kT, -700, 700)
        if np.sum(1.0 / (1.0 + np.exp(x))) < n:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _draw_landscape(params, rng):
    """Site energies of every species, drawn from `rng` (the engine's draw order)."""
    n_sites = params.nx * params.ny * params.nz
    return landscape(n_sites, params.native_sampler,
                     [(s.mu_eV, s.sigma_eV, s.rho) for s in params.species[1:]], rng)


def build_landscape(params, seed):
    """The site energies that ``Simulation(params, seed)`` draws, without building the rest.

    Returns
    -------
    ndarray of float64, shape (n_species, nx * ny * nz), eV
        Row 0 native; site order of :mod:`kmc.lattice` (depth layer slowest). Bit-identical to
        ``Simulation(params, seed).site_energies()``.
    """
    return _draw_landscape(params, np.random.default_rng(int(seed)))


class Simulation:
    """A KMC run: lattice, landscape, state arrays and the compiled kernel.

    Parameters
    ----------
    params : KMCParams
    seed : int
        Seeds the landscape (numpy Generator) and the event stream (xoshiro256**).
    state : dict of ndarray, optional
        A checkpoint from ``Simulation.state`` (same params and seed): resumes exactly.
    """

    def __init__(self, params, seed, state=None):
        _check(params)
        self.params = p = params
        self.seed = int(seed)
        self.kT_eV = sc.k * p.temperature_K / sc.e
        self.n_sites_m3 = p.n_bulk_m3 / (1.0 - p.vacancy_fraction)
        self.a_m = lattice_spacing_m(self.n_sites_m3)
        nx, ny, nz = p.nx, p.ny, p.nz
        self.m = m = ny * nz
        self.n_sites = N = nx * m
        self.n_species = nsp = len(p.species)
        # integer background per layer [e], equal to the initial fill: the lattice starts neutral
        self.n_bg = background_per_layer(p.vacancy_fraction, ny, nz)
        self.vacancy_fraction_effective = 1.0 - self.n_bg / m
        self.c_V_per_m = (coupling_V_per_m(ny, nz, self.a_m, p.eps_r)
                          if p.electrostatics and not (p.geometry == "periodic") else 0.0)
        self.periodic = p.geometry == "periodic"
        rng = np.random.default_rng(self.seed)
        E = _draw_landscape(p, rng)  # first draws of the stream: build_landscape repeats them
        self.bfac = np.vstack([b_factor(E[k], s.E_DC_eV, self.kT_eV) for k, s in enumerate(p.species)])
        e0, e1 = p.energy_range_eV
        self.energy_edges_eV = np.linspace(e0, e1, p.n_energy_bins + 1)
        self.ebin = np.clip(np.searchsorted(self.energy_edges_eV, E, side="right") - 1,
                            0, p.n_energy_bins - 1).astype(np.uint8)
        self.layers_per_slab = -(-nx // p.n_slabs)
        self.n_slabs = -(-nx // self.layers_per_slab)
        slab = (np.arange(N) // m) // self.layers_per_slab
        self.site_hist = np.zeros((self.n_slabs, p.n_energy_bins, nsp), dtype=np.int64)
        for k in range(nsp):
            np.add.at(self.site_hist[:, :, k], (slab, self.ebin[k]), 1)
        self.nu = np.array([s.nu_Hz for s in p.species], dtype=np.float64)
        # back reservoir: natives at the lattice's neutral filling n_bg / m, with the Fermi level
        # of the realised landscape
        self.theta_back = self.n_bg / m
        self.mu_back_eV = fermi_level(E[0], self.theta_back * N, self.kT_eV)
        th = min(max(self.theta_back, 1e-12), 1 - 1e-12)
        self.E_res_back_eV = self.mu_back_eV - self.kT_eV * np.log(th / (1.0 - th))
        # bond cap (acceleration "bond-cap"): the native bulk activation energy E_DC - E_F,bulk
        # (a site at the bulk Fermi level), shifted by bond_cap_kT kT
        self.bond_cap_eV = p.species[0].E_DC_eV - self.mu_back_eV + p.bond_cap_kT * self.kT_eV
        # phases and outputs
        self.phase_end_s = np.cumsum([ph.duration_s for ph in p.phases]) if p.phases else np.zeros(0)
        self.out_times = np.ascontiguousarray(p.output_times_s, dtype=np.float64)
        if self.periodic:
            self.t_end = p.duration_s if p.duration_s is not None else (
                self.out_times[-1] if self.out_times.size else 0.0)
        else:
            self.t_end = float(self.phase_end_s[-1])
        self._energies_cache = None
        if state is None:
            self.state = self._initial_state(E, rng)
            if not self.periodic:
                self.state["ist"][K.S_F0] = self._front_charge_on_entry(0)
        else:
            self.state = self._check_state(state)
        del E
        # derived structures (never checkpointed: rebuilt bitwise-identically from the state)
        self.P = tree_size(m)
        # layer trees: wide (fan-out 8) sum trees over the target rates of the 3 classes
        self.goff, self.H = wide_layout(m)
        self.wt = np.zeros((nx, 24 * int(self.goff[-1])))
        self.orate = np.zeros(N)     # nu_s b_s(i) of the ion on site i (0 if vacant): trap rates
        self.ex = np.zeros((2, 2 * self.P, 1))   # exit trees (front, back)
        self._size_active()
        self.ip = np.zeros(K.N_IPAR, dtype=np.int64)
        self.fp = np.zeros(K.N_FPAR, dtype=np.float64)
        self.status = "ok"
        self.evlog = np.zeros((0, 3), dtype=np.int64)   # event log off (see log_events)
        self._enter_phase(int(self.state["ist"][K.S_PHASE]))

    # ------------------------------------------------------------------ set-up
    @property
    def nx_active(self):
        """Layers simulated now (the whole depth unless ``buffer_layers`` moves the back)."""
        return int(self.state["nx_active"][0])

    def _size_active(self):
        """The arrays sized by the active depth: top tree over the ``nxa + 3`` event groups, the
        gap counts, fields and factors (all derived from the state, never checkpointed)."""
        nxa = self.nx_active
        self.goff_t, self.Ht = wide_layout(nxa + 3)     # top tree over the event groups
        self.top = np.zeros((1, 8 * int(self.goff_t[-1])))
        self.dirty = np.zeros(nxa + 3, dtype=np.bool_)
        self.dlist = np.zeros(nxa + 3, dtype=np.int64)
        self.G = np.zeros(nxa + 2, dtype=np.int64)   # front-referenced charge counts (electrostatics)
        self.BG = self.n_bg * np.arange(nxa + 1, dtype=np.float64)
        self.E = np.zeros(nxa + 1)
        self.gf = np.ones(nxa + 1)
        self.gb = np.ones(nxa + 1)

    def _grow_threshold(self):
        """First layer a foreign ion may not enter without the back moving (``ip[I_GROW]``)."""
        b, nxa, nx = self.params.buffer_layers, self.nx_active, self.params.nx
        return nxa - b if b and nxa < nx else nx + 1

    def _grow(self):
        """Move the back reservoir: ``buffer_layers`` layers beyond the deepest foreign ion (the
        appended layers hold their initial fresh-bulk fill, neutral), then rebuild."""
        cnt = self.state["cnt"]
        foreign = np.flatnonzero(cnt[1:, : self.nx_active].sum(axis=0) > 0)
        deepest = int(foreign[-1]) if foreign.size else -1
        nxa = min(self.params.nx, max(self.nx_active, deepest + 1 + self.params.buffer_layers))
        self._extend_field_integrals(self.nx_active, nxa)
        self.state["nx_active"][0] = nxa
        self._size_active()
        self.ip[K.I_NX] = nxa
        self.ip[K.I_HT] = self.Ht
        self.ip[K.I_GROW] = self._grow_threshold()
        self._sync_S()
        self.rebuild()

    def _extend_field_integrals(self, old, new):
        """Gaps old+1..new become active: until now they lay in the neutral frozen bulk, where
        ``G_g - BG_g`` is the back gap's (their recorded field is the back gap's), so their
        integrals since the last output time are the back gap's shifted by ``n_bg (g - old)``;
        the sum slot (last column) stays the integral of the sum over the old gaps plus those."""
        gint, t = self.state["gint"], self.time_s
        if new <= old:
            return
        gint[0, old] += self.G[old] * (t - gint[1, old])
        gint[1, old] = t
        s = gint.shape[1] - 1
        gint[0, s] += self.G[old + 1] * (t - gint[1, s])
        gint[1, s] = t
        k = int(self.state["ist"][K.S_OUTK])
        t0 = self.out_times[k - 1] if k > 0 else 0.0
        for g in range(old + 1, new + 1):
            gint[0, g] = gint[0, old] + self.n_bg * (g - old) * (t - t0)
            gint[1, g] = t
            gint[0, s] += gint[0, g]

    def _initial_state(self, E, rng):
        p = self.params
        N, nsp, m = self.n_sites, self.n_species, self.m
        occ = np.full(N, -1, dtype=np.int8)
        if self.periodic:
            n_ion = int(round((1.0 - p.vacancy_fraction) * N)) if p.n_ions is None else int(p.n_ions)
            if not 0 <= n_ion <= N:
                raise KMCConfigError(f"`n_ions` must be in 0..{N}, got {n_ion}")
            n_nat = int(round(p.composition_x * n_ion))
            sites = rng.permutation(N)[:n_ion]
            occ[sites[:n_nat]] = 0
            if n_ion > n_nat:
                if nsp < 2:
                    raise KMCConfigError("`composition_x` < 1 needs a foreign species")
                occ[sites[n_nat:]] = 1
        else:
            occ[fill_layers(E[0], p.nx, m, self.n_bg, self.kT_eV, rng, p.init)] = 0
        occupied = np.flatnonzero(occ >= 0)
        n_ion = occupied.size
        # ion identities only when per-ion displacements are recorded (the kernel skips them
        # otherwise: 25 bytes per site and ~4 cache misses per event on a large lattice)
        Ni = N if p.record_ions else 0
        site_ion = np.full(Ni, -1, dtype=np.int32)
        ion_site = np.full(Ni, -1, dtype=np.int32)
        ion_sp = np.full(Ni, -1, dtype=np.int8)
        free_ids = np.zeros(Ni, dtype=np.int32)
        if Ni:
            site_ion[occupied] = np.arange(n_ion, dtype=np.int32)
            ion_site[:n_ion] = occupied
            ion_sp[:n_ion] = occ[occupied]
            # free ids as a stack: the next id popped is the lowest unused one
            free_ids[: N - n_ion] = np.arange(N - 1, n_ion - 1, -1, dtype=np.int32)
        cnt = np.zeros((nsp, p.nx), dtype=np.int32)
        np.add.at(cnt, (occ[occupied].astype(np.int64), occupied // m), 1)
        n_out = self.out_times.size
        n_ion_rec = n_out if p.record_ions else 0
        ist = np.zeros(K.N_IST, dtype=np.int64)
        ist[K.S_NFREE] = N - n_ion
        return {
            "occ": occ, "site_ion": site_ion, "ion_sp": ion_sp, "ion_site": ion_site,
            "ion_disp": np.zeros((Ni, 3), dtype=np.int32), "free_ids": free_ids, "cnt": cnt,
            "coll": np.zeros((nsp, 3), dtype=np.int64),
            "counters": np.zeros((nsp, K.N_COUNTERS), dtype=np.int64),
            "rng": seed_state(self.seed), "clock": np.zeros(1), "ist": ist,
            "r_cnt": np.zeros((n_out, nsp, p.nx), dtype=np.int32),
            "r_E": np.zeros((n_out, p.nx + 1)),
            "r_counters": np.zeros((n_out, nsp, K.N_COUNTERS), dtype=np.int64),
            "r_coll": np.zeros((n_out, nsp, 3), dtype=np.int64),
            "r_hist": np.zeros((n_out if p.record_histograms else 0, self.n_slabs,
                                p.n_energy_bins, nsp), dtype=np.int32),
            "r_ion": np.zeros((n_ion_rec, N if n_ion_rec else 0, 3), dtype=np.int32),
            "r_nev": np.zeros(n_out, dtype=np.int64),
            "event_order": np.array([K.EVENT_ORDER], dtype=np.int64),
            "nx_active": np.array([min(p.nx, max(p.buffer_layers, 2)) if p.buffer_layers
                                   else p.nx], dtype=np.int64),
            "r_nxa": np.zeros(n_out, dtype=np.int64),
            "gint": np.zeros((2, p.nx + 2)),
            "r_Eavg": np.zeros((n_out, p.nx + 1)),
        }

    def _check_state(self, state):
        order = int(np.asarray(state["event_order"]).ravel()[0]) if "event_order" in state else 1
        if order != K.EVENT_ORDER:
            raise KMCStateError(
                f"checkpoint written by a KMC engine with event order {order}, this engine has "
                f"{K.EVENT_ORDER}: a resumed run would not equal an uninterrupted one; restart the "
                "run (or resume it with the cait version that wrote the checkpoint)")
        missing = [k for k in STATE_KEYS if k not in state]
        if missing:
            raise KMCStateError(f"checkpoint lacks arrays {missing}")
        if state["occ"].shape != (self.n_sites,):
            raise KMCStateError(f"checkpoint has {state['occ'].shape[0]} sites, params give {self.n_sites}")
        if state["site_ion"].shape[0] != (self.n_sites if self.params.record_ions else 0):
            raise KMCStateError("checkpoint and params disagree on `record_ions` (per-ion arrays "
                                "are kept only when recorded): resume with the run's own params")
        if state["ist"].shape != (K.N_IST,) or state["counters"].shape[1:] != (K.N_COUNTERS,):
            raise KMCStateError("checkpoint written by an older engine version (no front surface "
                                "charge / beam counter): restart the run")
        out = {k: np.array(state[k]) for k in STATE_KEYS}
        p = self.params
        out["nx_active"] = np.array(state["nx_active"] if "nx_active" in state else [p.nx],
                                    dtype=np.int64).reshape(1)
        if p.buffer_layers == 0 and out["nx_active"][0] != p.nx:
            raise KMCStateError("checkpoint was written with a moving back (`buffer_layers` > 0): "
                                "resume with the run's own params")
        out["r_nxa"] = (np.array(state["r_nxa"], dtype=np.int64) if "r_nxa" in state
                        else np.full(self.out_times.size, p.nx, dtype=np.int64))
        # older checkpoints: the field averages restart at the resume time (the interval then
        # under way averages over its remainder only)
        if "gint" in state:
            out["gint"] = np.array(state["gint"], dtype=np.float64)
        else:
            out["gint"] = np.zeros((2, p.nx + 2))
            out["gint"][1] = float(np.asarray(state["clock"]).ravel()[0])
        out["r_Eavg"] = (np.array(state["r_Eavg"], dtype=np.float64) if "r_Eavg" in state
                         else np.array(state["r_E"], dtype=np.float64))
        return out

    def _enter_phase(self, k):
        """Resolve phase k into the integer/float parameter vectors and rebuild everything."""
        p, ip, fp = self.params, self.ip, self.fp
        ip[K.I_MODEL] = RATE_MODELS[p.rate_model]
        ip[K.I_SEL] = SELECTORS[p.selector]
        ip[K.I_PERIODIC] = int(self.periodic)
        ip[K.I_BACKKIND] = BACKS[p.back]
        ip[K.I_NX], ip[K.I_NY], ip[K.I_NZ] = self.nx_active, p.ny, p.nz
        ip[K.I_GROW] = self._grow_threshold()
        ip[K.I_P], ip[K.I_HT], ip[K.I_H] = self.P, self.Ht, self.H
        ip[K.I_HIST] = int(p.record_histograms)
        ip[K.I_IONS] = int(p.record_ions)
        ip[K.I_LPS] = self.layers_per_slab
        ip[K.I_NBINS] = p.n_energy_bins
        ip[K.I_BACKOPEN] = int(not self.periodic)
        ip[K.I_FIELD] = int(p.electrostatics and not self.periodic)
        kT = self.kT_eV
        fp[K.F_BETA] = 1.0 / kT
        fp[K.F_A] = self.a_m
        fp[K.F_C] = self.c_V_per_m
        fp[K.F_HBQA] = 0.5 * self.a_m / kT          # q = +1: (q E a / 2kT) per V/m
        fp[K.F_BCAP] = np.exp(-self.bond_cap_eV / kT) if p.acceleration == "bond-cap" else np.inf
        fp[K.F_THB] = self.theta_back if p.back == "bulk" else 0.0
        if p.back == "bulk":
            fp[K.F_BRESB] = np.exp((self.E_res_back_eV - p.species[0].E_DC_eV) / kT)
        else:
            fp[K.F_BRESB] = 1e-30      # electrode: Metropolis removal runs at nu (downhill)
        if self.periodic:
            ip[K.I_DRIVE], ip[K.I_ACTIVE], ip[K.I_FRONTOPEN] = 0, -1, 0
            fp[K.F_EBACK] = p.periodic_field_V_per_m * p.field_scale
            fp[K.F_TSTOP] = self.t_end
            fp[K.F_THF] = 0.0
            fp[K.F_BRESF] = 1.0
            fp[K.F_RBEAM] = 0.0
        else:
            ph = p.phases[k]
            ip[K.I_DRIVE] = DRIVES[ph.drive]
            on = ph.drive != "off"
            act = [s.name for s in p.species].index(ph.species) if on else -1
            ip[K.I_ACTIVE] = act
            ip[K.I_FRONTOPEN] = int(on)
            fp[K.F_U] = ph.voltage_V * p.field_scale if on else 0.0
            # with space charge the applied field is carried by the front charge F0 (E_ext = 0);
            # without, the applied field is uniform and there are no beam events
            fp[K.F_EBACK] = 0.0
            if not ip[K.I_FIELD]:
                if ph.drive == "galvanostatic":
                    fp[K.F_EBACK] = ph.back_field_V_per_m * p.field_scale
                elif ph.drive == "potentiostatic":
                    fp[K.F_EBACK] = (fp[K.F_U] / fp[K.F_A]) / (p.nx + 1)
            fp[K.F_RBEAM] = (self.beam_rate_Hz(ph) if ip[K.I_FIELD] and ph.drive == "galvanostatic"
                             else 0.0)
            fp[K.F_THF] = ph.theta_front if on else 0.0
            sa = p.species[act] if on else p.species[0]
            fp[K.F_BRESF] = np.exp((sa.mu_eV - sa.E_DC_eV) / kT)   # reservoir site energy = mu_k
            fp[K.F_TSTOP] = self.phase_end_s[k]
        self.state["ist"][K.S_PHASE] = k
        self._sync_S()
        self.rebuild()

    def _sync_S(self):
        """Front-referenced counts ``G`` from the layer counts and the front charge ``F0``."""
        self.G[:] = front_counts(self.state["cnt"][:, : self.nx_active].sum(axis=0),
                                 self.state["ist"][K.S_F0])

    def beam_rate_Hz(self, phase):
        """Beam arrivals per second on the lattice's cross-section, ``j ny nz a^2 / e``."""
        p = self.params
        area = p.ny * p.nz * self.a_m ** 2
        return phase.beam_current_A_per_m2 * p.field_scale * area / sc.e

    def _front_charge_on_entry(self, k):
        """Front surface charge ``F0`` [e] at the start of phase ``k`` (carried over otherwise).

        * the first driven phase, if galvanostatic: ``round(E_back / c)`` -- the sample starts
          carrying the ohmic field, as in the NPP solver;
        * after a potentiostatic phase: ``round(E_0 / c)``, the front charge the electrode held.
        """
        p, c = self.params, self.c_V_per_m
        F0 = int(self.state["ist"][K.S_F0])
        if c <= 0.0:
            return F0
        ph = p.phases[k]
        if k > 0 and p.phases[k - 1].drive == "potentiostatic" and ph.drive != "potentiostatic":
            F0 = int(round(self.E[0] / c))
        if ph.drive == "galvanostatic" and all(q.drive == "off" for q in p.phases[:k]):
            F0 = int(round(ph.back_field_V_per_m * p.field_scale / c))
        return F0

    def rebuild(self):
        """Full recompute of all rates, trees and fields from the state (O(N))."""
        K.rebuild(*self._groups())

    # ------------------------------------------------------------------ running
    @property
    def time_s(self):
        return float(self.state["clock"][0])

    @property
    def n_events(self):
        return int(self.state["ist"][K.S_NEV])

    @property
    def done(self):
        return self.time_s >= self.t_end and (
            self.periodic or int(self.state["ist"][K.S_PHASE]) >= len(self.params.phases) - 1)

    def _groups(self, out_times=None):
        """The kernel's arrays in its named groups (kmc._kernel ``Lattice`` ... ``Records``)."""
        st = self.state
        return (K.Lattice(st["occ"], self.bfac, self.nu, self.orate, self.ebin),
                K.Trees(self.wt, self.goff, self.ex, self.top, self.goff_t, self.dirty, self.dlist),
                K.Ions(st["site_ion"], st["ion_sp"], st["ion_site"], st["ion_disp"], st["free_ids"]),
                K.Field(self.G, self.BG, self.E, self.gf, self.gb, st["gint"]),
                K.Tally(st["cnt"], st["coll"], st["counters"]),
                K.Clock(st["rng"], st["clock"], st["ist"]),
                K.Setup(self.ip, self.fp, self.out_times if out_times is None else out_times,
                        self.evlog),
                K.Records(st["r_cnt"], st["r_E"], st["r_counters"], st["r_coll"], st["r_hist"],
                          st["r_ion"], st["r_nev"], st["r_nxa"], st["r_Eavg"]))

    def _kernel(self, ev_stop, out_times=None):
        return K.advance(*self._groups(out_times), ev_stop)

    def _check_status(self, status):
        """Raise KMCError for the kernel's non-finite stop (status 3)."""
        if status == 3:
            raise KMCError(
                f"total event rate or clock became non-finite at t = {self.time_s:.6g} s after "
                f"{self.n_events} events (gap fields |E| up to {np.max(np.abs(self.E)):.3g} V/m): "
                "the gap factors overflowed; likely cause: beam current larger than the lattice "
                "can carry (field runaway) or applied field / voltage too large")

    def advance(self, max_events=1_000_000):
        """Run at most ``max_events`` events (crossing phase ends as needed).

        Returns True when the schedule is finished. Chunking never changes the trajectory.
        """
        ev_stop = self.n_events + int(max_events)
        while not self.done:
            status = self._kernel(ev_stop)
            if status == 4:
                self._grow()
                continue
            if status == 0:
                return self.done
            self._check_status(status)
            k = int(self.state["ist"][K.S_PHASE])
            if not self.periodic and k + 1 < len(self.params.phases):
                self.state["ist"][K.S_F0] = self._front_charge_on_entry(k + 1)
                self._enter_phase(k + 1)
        return True

    def run(self, progress=None, chunk_events=1_000_000):
        """Advance to the end; ``progress(sim)`` is called between chunks (bar, checkpoint, SIGINT)."""
        while not self.advance(chunk_events):
            if progress is not None:
                progress(self)
        if progress is not None:
            progress(self)
        return self

    def equilibrate(self, n_events):
        """Run ``n_events`` without sampling, then reset clock, displacements and counters."""
        st = self.state
        t_stop = self.fp[K.F_TSTOP]
        self.fp[K.F_TSTOP] = np.inf
        status = self._kernel(self.n_events + int(n_events), out_times=np.zeros(0))
        while status == 4:   # not in periodic runs (buffer_layers needs the open geometry)
            self._grow()
            status = self._kernel(self.n_events + int(n_events), out_times=np.zeros(0))
        self.fp[K.F_TSTOP] = t_stop
        self._check_status(status)
        st["clock"][0] = 0.0
        st["gint"][:] = 0.0          # the field integrals restart with the clock
        st["ion_disp"][:] = 0
        st["coll"][:] = 0
        st["counters"][:] = 0
        st["ist"][K.S_NEV] = 0

    def log_events(self, n_events):
        """Run ``n_events`` events and return their log, int64 (n, 3): origin site (-1 for an
        insertion or the beam), target site (-1 for an exit or the beam), class (0 from behind,
        1 from ahead, 2 lateral; -1 otherwise). Diagnostics (scripts/rattle_census.py); the
        trajectory is the one ``advance`` runs."""
        n = int(n_events)
        self.evlog = np.zeros((max(n, 1), 3), dtype=np.int64)
        ev0 = self.n_events
        try:
            self.advance(n)
        finally:
            log, self.evlog = self.evlog, np.zeros((0, 3), dtype=np.int64)
        done = self.n_events - ev0
        return np.roll(log, -(ev0 % log.shape[0]), axis=0)[:done]

    def checkpoint(self):
        """Copy of the state arrays (``np.savez(path, **sim.checkpoint())`` writes a checkpoint)."""
        return {k: v.copy() for k, v in self.state.items()}

    # ------------------------------------------------------------------ diagnostics
    def site_energies(self):
        """Site energies [eV], float64 shape (n_species, n_sites), regenerated from the seed."""
        if self._energies_cache is None:
            self._energies_cache = build_landscape(self.params, self.seed)
        return self._energies_cache

    def class_totals(self):
        """Per layer, the summed site parts of the hops into its vacancies, float64 (nx, 3):
        from behind (+x, gap l; front insertion in layer 0), from ahead (-x, gap l + 1; back
        insertion in layer nx-1), lateral. Gap factors not applied."""
        p = self.params
        return np.array([[K.wide_total(self.wt, l, self.goff, self.H, self.m, c, 3, self.ip[K.I_SEL])
                          for c in range(3)] for l in range(self.nx_active)])

    def exit_totals(self):
        """Summed site parts of the exits to the front and back reservoirs (gap factors not
        applied), float64 (2,)."""
        return np.array([K.total(self.ex, s, self.P, self.m, 0, self.ip[K.I_SEL]) for s in range(2)])

    def total_rate(self):
        """Sum of all event rates [1/s]."""
        return float(K.wide_total(self.top, 0, self.goff_t, self.Ht, self.nx_active + 3, 0, 1,
                                  self.ip[K.I_SEL]))

    def nbytes_per_site(self):
        """Bytes per site of everything the run keeps (state, landscape factors, trees),
        excluding the recorded-output buffers."""
        arrs = [v for k, v in self.state.items() if not k.startswith("r_")]
        arrs += [self.bfac, self.orate, self.ebin, self.wt, self.ex, self.top, self.G, self.BG, self.E,
                 self.gf, self.gb]
        return sum(a.nbytes for a in arrs) / self.n_sites

    def field_parameter(self):
        """Largest applied ``q E a / kT`` over the phases (report it: linear response needs << 1)."""
        p = self.params
        if self.periodic:
            return abs(p.periodic_field_V_per_m * p.field_scale) * self.a_m / self.kT_eV
        vals = [0.0]
        for ph in p.phases:
            if ph.drive == "galvanostatic":
                vals.append(abs(ph.back_field_V_per_m))
            elif ph.drive == "potentiostatic":
                vals.append(abs(ph.voltage_V) / (self.a_m * (p.nx + 1)))
        return max(vals) * p.field_scale * self.a_m / self.kT_eV

    # ------------------------------------------------------------------ output
    def to_dataset(self):
        """Recorded observables as an ``xarray.Dataset`` (docs/architecture.md output contract)."""
        p, st = self.params, self.state
        n_rec = int(st["ist"][K.S_OUTK])
        a_nm = self.a_m * 1e9
        names = [s.name for s in p.species]
        t = self.out_times[:n_rec]
        depth = (np.arange(p.nx) + 0.5) * a_nm
        gap = np.arange(p.nx + 1) * a_nm
        r_E = st["r_E"][:n_rec]
        pot = np.array([potential_from_fields(e, self.a_m) for e in r_E]).reshape(n_rec, p.nx)
        conc = st["r_cnt"][:n_rec].transpose(1, 0, 2) / self.n_bg
        ctr = st["r_counters"][:n_rec]
        ds = xr.Dataset(
            {
                "concentration": (("species", "time", "depth"), conc,
                                  {"units": "1", "long_name": "concentration / n_bulk"}),
                "potential": (("time", "depth"), pot,
                              {"units": "V", "long_name": "mean-field potential (back = 0)"}),
                "field": (("time", "gap_depth"), r_E,
                          {"units": "V/m", "long_name": "electric field in the gap between layers"}),
                "field_avg": (("time", "gap_depth"), st["r_Eavg"][:n_rec],
                               {"units": "V/m", "long_name": "field in the gap averaged over the "
                                "interval since the previous output time (exact time average)"}),
                "event_counts": (("time", "species", "event"), ctr,
                                 {"units": "1", "long_name": "cumulative events by kind"}),
                "front_net_in": (("time", "species"), ctr[:, :, K.C_FRONT_IN] - ctr[:, :, K.C_FRONT_OUT],
                                 {"units": "1", "long_name": "net ions entered through the front"}),
                "back_net_out": (("time", "species"), ctr[:, :, K.C_BACK_OUT] - ctr[:, :, K.C_BACK_IN],
                                 {"units": "1", "long_name": "net ions left through the back"}),
                "collective_displacement": (("time", "species", "direction"),
                                            st["r_coll"][:n_rec] * a_nm,
                                            {"units": "nm", "long_name": "sum of ion displacements"}),
                "n_events": (("time",), st["r_nev"][:n_rec], {"units": "1", "long_name": "events so far"}),
                "active_layers": (("time",), st["r_nxa"][:n_rec],
                                  {"units": "1", "long_name": "layers simulated (the rest: frozen "
                                   "fresh bulk beyond the moving back reservoir)"}),
                "front_charge": (("time",), r_E[:, 0] / self.c_V_per_m if self.c_V_per_m > 0
                                 else np.zeros(n_rec),
                                 {"units": "e", "long_name": "net surface charge at the front (E_0 / c)"}),
                "site_count": (("slab", "energy", "species"), self.site_hist,
                               {"units": "1", "long_name": "sites per slab and own-species energy bin"}),
            },
            coords={
                "time": ("time", t, {"units": "s", "long_name": "time"}),
                "depth": ("depth", depth, {"units": "nm", "long_name": "depth (layer centre)"}),
                "gap_depth": ("gap_depth", gap, {"units": "nm", "long_name": "depth of the gap"}),
                "species": ("species", names, {"long_name": "ion species"}),
                "event": ("event", list(K.COUNTER_NAMES), {"long_name": "event kind"}),
                "direction": ("direction", ["x", "y", "z"], {"long_name": "direction"}),
                "energy": ("energy", 0.5 * (self.energy_edges_eV[1:] + self.energy_edges_eV[:-1]),
                           {"units": "eV", "long_name": "site energy (bin centre, own species)"}),
                "slab": ("slab", (np.arange(self.n_slabs) + 0.5) * self.layers_per_slab * a_nm,
                         {"units": "nm", "long_name": "depth of slab centre"}),
            },
            attrs={
                "engine": "kmc", "flux_convention": "kmc-microscopic", "seed": self.seed,
                "status": self.status, "message": "", "n_events": self.n_events,
                "rate_model": p.rate_model, "selector": p.selector, "geometry": p.geometry,
                "back": p.back, "nx": p.nx, "ny": p.ny, "nz": p.nz, "a_nm": a_nm,
                "kT_eV": self.kT_eV, "qEa_over_kT": self.field_parameter(),
                "field_scale": p.field_scale, "mu_back_eV": self.mu_back_eV,
                "simulated_time_s": self.time_s,
                "vacancy_fraction_effective": self.vacancy_fraction_effective,
                "n_bg": self.n_bg, "coupling_V_per_m": self.c_V_per_m,
                "buffer_layers": p.buffer_layers,
                "acceleration": p.acceleration,
                "bond_cap_kT": p.bond_cap_kT if p.acceleration == "bond-cap" else 0.0,
                "bond_cap_eV": self.bond_cap_eV if p.acceleration == "bond-cap" else 0.0,
            },
        )
        if p.phases:
            ds.attrs["beam_rate_Hz"] = np.array([self.beam_rate_Hz(ph) for ph in p.phases])
        if p.record_histograms:
            ds["occupancy_count"] = (("time", "slab", "energy", "species"), st["r_hist"][:n_rec],
                                     {"units": "1", "long_name": "occupied sites per energy bin"})
        if p.record_ions:
            ds["ion_displacement"] = (("time", "ion", "direction"), st["r_ion"][:n_rec] * a_nm,
                                      {"units": "nm", "long_name": "unwrapped ion displacement"})
            ds["ion_species"] = (("ion",), st["ion_sp"].astype(np.int16),
                                 {"units": "1", "long_name": "species index of ion (-1: none)"})
        return ds


def run_kmc(params, seed, progress=None, chunk_events=1_000_000):
    """Run a CAIT schedule (open geometry) and return its dataset."""
    return Simulation(params, seed).run(progress, chunk_events).to_dataset()


def run_equilibrium(params, seed, sample_times_s, n_equilibration_events=0, progress=None,
                    chunk_events=1_000_000):
    """Equilibrium primitive on a fully periodic lattice (no field, fixed composition).

    Returns the dataset of ``Simulation.to_dataset`` with ``ion_displacement(time, ion,
    direction)`` [nm], ``ion_species(ion)``, ``collective_displacement(time, species,
    direction)`` [nm] at ``sample_times_s`` (time origin after equilibration).
    """
    params = replace(params, geometry="periodic", output_times_s=tuple(sample_times_s),
                     record_ions=True, duration_s=float(sample_times_s[-1]))
    sim = Simulation(params, seed)
    if n_equilibration_events:
        sim.equilibrate(n_equilibration_events)
    return sim.run(progress, chunk_events).to_dataset()
