"""Input files: one TOML file describes a CAIT scenario for both engines.

Validation runs in three stages (as in SPPARKS):

1. *parse*: known keys only (with a did-you-mean), types, ranges, choices;
2. *compatibility*: options that do not go together (e.g. a galvanostatic phase without a field);
3. *data*: files named by the input exist and are readable, output times are ordered.

Every error is a :class:`compare.errors.ConfigError` whose message names the key, the value and
what is legal. The schema below is the single source of truth: ``python -m compare.io.config
--markdown`` renders ``docs/inputs.md`` from it (a test checks that the file is current).
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from compare.errors import ConfigError

REQUIRED = object()  # sentinel: the key has no default


# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Key:
    """One input key: its type, default, unit, allowed values and documentation."""

    name: str
    kind: str  # "float", "int", "str", "bool", "floats" (list of float), "table-list"
    default: Any
    doc: str
    unit: str = ""
    choices: tuple = ()
    lo: float | None = None  # lower bound
    lo_open: bool = False  # True: value must be > lo; False: >= lo
    hi: float | None = None
    hi_open: bool = False


def _pos(name, default, doc, unit="", kind="float"):
    return Key(name, kind, default, doc, unit, lo=0.0, lo_open=True)


MATERIAL_KEYS = [
    Key("name", "str", "", "Name of the material, for labels only."),
    _pos("n_bulk_cm3", 1.4e22, "Bulk density of mobile (native) ions, equal to the fixed anionic "
         "network charge density.", "cm^-3"),
    Key("vacancy_fraction", "float", 0.10, "Fraction of ion sites that are vacant in the bulk; "
        "N_s = n_bulk / (1 - vacancy_fraction).", "", lo=0.0, hi=1.0, hi_open=True),
    _pos("temperature_K", 300.0, "Temperature.", "K"),
    _pos("eps_r", 8.0, "Relative permittivity of the glass (Poisson equation, KMC mean field).", ""),
]

SED_KEYS = [
    Key("kind", "str", "gaussian", "Shape of the native site energy distribution.",
        choices=("gaussian", "gaussians", "table")),
    Key("fwhm_eV", "float", 0.250, "Full width at half maximum of the Gaussian SED "
        "(sigma = FWHM / (2 sqrt(2 ln 2))). Used by `kind = \"gaussian\"`. 0: the ordered "
        "lattice (every site at `center_eV`; KMC only, the SED formulas need a width).", "eV",
        lo=0.0),
    Key("center_eV", "float", 0.0, "Centre of the Gaussian SED. Used by `kind = \"gaussian\"`.", "eV"),
    Key("components", "table-list", (), "Sum of Gaussians for `kind = \"gaussians\"`: a list of "
        "inline tables `{weight = 1.0, center_eV = 0.0, fwhm_eV = 0.25}` (weights are normalised)."),
    Key("file", "str", "", "CSV file with columns `energy_eV,density` for `kind = \"table\"` "
        "(path relative to the input file)."),
    Key("filling", "str", "step", "How ions fill the SED to give the Fermi level E_F(n): `step` "
        "(T -> 0, as in the paper) or `fermi-dirac` (finite temperature).",
        choices=("step", "fermi-dirac")),
]

SED_COMPONENT_KEYS = [
    _pos("weight", 1.0, "Relative weight of this Gaussian component."),
    Key("center_eV", "float", 0.0, "Centre of the component.", "eV"),
    _pos("fwhm_eV", REQUIRED, "FWHM of the component.", "eV"),
]

SPECIES_KEYS = [
    Key("role", "str", REQUIRED, "`native` (exactly one species: the glass' own mobile ion) or "
        "`foreign` (ions delivered by the beam).", choices=("native", "foreign")),
    Key("charge", "int", 1, "Charge number z.", lo=1, hi=3),
    Key("D_model", "str", "", "Diffusion coefficient model for the NPP solver: `sed` "
        "(D(n) = D_bulk exp((E_F(n) - E_F(n_bulk))/kT), paper eqn 2), `constant`, or `table` "
        "(D(fraction) from a CSV file). Default: `sed` for the native species, `constant` for "
        "foreign ones.", choices=("", "sed", "constant", "table")),
    Key("D_cm2_s", "float", float("nan"), "Diffusion coefficient: the constant value "
        "(`constant`) or the value at the bulk composition (`sed`). Also the scale of "
        "`table`-model plots. Required by NPP runs, `cait sed` and (native species) the "
        "galvanostatic KMC beam current; equilibrium KMC does not use it.", "cm^2/s", lo=0.0,
        lo_open=True),
    Key("D_table", "str", "", "CSV file with columns `fraction,D_cm2_s` (fraction of n_bulk) for "
        "`D_model = \"table\"`, e.g. written by `cait kmc equilibrium` (path relative to the "
        "input file)."),
    Key("E_DC_eV", "float", 0.5, "KMC: transport threshold energy E_DC of the trap rate model, "
        "on the same scale as the species' site energies.", "eV"),
    _pos("attempt_frequency_Hz", 1.0e13, "KMC: attempt frequency nu of hops.", "Hz"),
    Key("site_mu_eV", "float", 0.0, "KMC, foreign species: mean site energy mu_k of the "
        "species' landscape.", "eV"),
    Key("site_fwhm_eV", "float", -1.0, "KMC, foreign species: FWHM of the species' Gaussian site "
        "energies (negative: the native landscape's width, i.e. a Gaussian with the standard "
        "deviation of the native SED, whatever its kind).", "eV"),
    Key("site_correlation", "float", 1.0, "KMC, foreign species: correlation rho_k of the foreign "
        "with the native landscape (1: same ranking of sites).", "", lo=-1.0, hi=1.0),
]

SAMPLE_KEYS = [
    _pos("thickness_nm", 1000.0, "Depth of the simulated region [0, L] below the front surface. "
         "With `back = \"bulk\"` the rest of the sample is an unperturbed bulk reservoir at x = L.",
         "nm"),
    Key("back", "str", "bulk", "Back boundary: `bulk` (reservoir of native ions at the bulk "
        "composition) or `electrode` (thin sample: grounded electrode absorbing native ions).",
        choices=("bulk", "electrode")),
]

PHASE_KEYS = [
    Key("species", "str", "", "Foreign species delivered by the beam in this phase (empty when "
        "`drive = \"off\"`)."),
    _pos("duration_s", REQUIRED, "Duration of the phase.", "s"),
    Key("drive", "str", "galvanostatic", "`galvanostatic`: the field entering the bulk at x = L "
        "is fixed; `potentiostatic`: the potential drop across [0, L] is fixed; `off`: no beam, no "
        "drive (relaxation; the front is blocked for all species).",
        choices=("galvanostatic", "potentiostatic", "off")),
    Key("back_field_V_per_m", "float", float("nan"), "Galvanostatic drive: electric field at the "
        "back x = L, i.e. the beam current density j divided by the bulk conductivity "
        "e^2 n_bulk D_native/kT (D_native: the native `D_cm2_s`). NPP fixes this field; KMC "
        "fixes the beam current j and starts with this field (docs/kmc.md).", "V/m", lo=0.0),
    Key("voltage_V", "float", float("nan"), "Potentiostatic drive: phi(0) - phi(L).", "V"),
    Key("theta_front", "float", -1.0, "Occupancy of the front reservoir of attached foreign ions "
        "(surface density theta_front * N_s). Negative: 1 - vacancy_fraction.", "", hi=1.0),
]

NPP_KEYS = [
    Key("solver", "str", "full", "`full`: Nernst-Planck-Poisson; `electroneutral`: the "
        "electroneutral limit (field from current continuity).", choices=("full", "electroneutral")),
    Key("flux", "str", "nernst-planck", "Flux convention: `nernst-planck` (paper eqn 1, "
        "J = -D (dn/dx + z n d(e phi/kT)/dx)) or `lattice-gas` (mobility times the gradient of the "
        "lattice-gas electrochemical potential).", choices=("nernst-planck", "lattice-gas")),
    Key("mesh", "str", "adaptive", "`adaptive`: cells placed where the profiles have structure "
        "at any time and refined until the error estimate is within `tol` (docs/npp.md "
        "\"Adaptive mesh\"); `graded`: the fixed graded mesh of `n_cells` and `zone_nm`.",
        choices=("adaptive", "graded")),
    Key("n_cells", "int", 400, "Number of finite-volume cells of the graded mesh (mesh = "
        "\"graded\"; the adaptive mesh chooses its own).", lo=10),
    _pos("h_surface_nm", 0.1, "Width of the first cell at the front surface (the mesh is graded "
         "from there; the adaptive mesh never exceeds it there).", "nm"),
    Key("zone_nm", "float", -1.0, "Depth of the nearly uniform fine-mesh replacement zone of the "
        "graded mesh (mesh = \"graded\"); cells there must stay below ~0.6 x (front width) "
        "(docs/calibration.md). Negative: automatic (the solver's estimate of the replacement "
        "depth).", "nm"),
    _pos("rtol", 1e-4, "Relative tolerance of the adaptive time stepping."),
    _pos("atol", 1e-7, "Absolute tolerance (in fractions of n_bulk) of the time stepping."),
    _pos("dt_initial_s", 1e-6, "First time step of each phase.", "s"),
    Key("max_newton", "int", 12, "Newton iterations per step before the step is retried smaller.",
        lo=1),
    _pos("tol", 1e-2, "Accepted profile error (fraction of n_bulk): every NPP result is compared "
         "with a shadow run on twice the cells with 1/4 of the time tolerances; the adaptive "
         "mesh is refined until the estimate is within it, a larger estimated error sets status "
         "\"inaccurate\" (docs/npp.md \"Error estimate\")."),
    Key("error_estimate", "bool", True, "Run the shadow run and attach `profile_error` and "
        "`error_estimate` to NPP results (costs about two runs more; without it the adaptive "
        "mesh is built once from the pilot run and not checked)."),
    Key("mesh_windows", "int", 8, "Adaptive mesh: the schedule is cut into "
        "this many equal time windows, each with a mesh of its own, fine only where the "
        "profiles have structure during it (the foreign front's stretch of its path); the state "
        "moves between meshes conservatively (docs/npp.md \"Meshes in time windows\"). 1: one "
        "mesh for the whole run.", lo=1, hi=64),
]

KMC_KEYS = [
    Key("nx", "int", 250, "Lattice layers in depth (x).", lo=2),
    Key("ny", "int", 20, "Lattice sites along y (periodic).", lo=1),
    Key("nz", "int", 20, "Lattice sites along z (periodic). Each layer holds "
        "round((1 - vacancy_fraction) ny nz) ions: a layer without a vacancy or without an ion "
        "is refused, and a realised vacancy fraction more than 5 % off the input is noted (one "
        "line, and `filling_note` in kmc.nc).", lo=1),
    Key("buffer_layers", "int", 0, "Moving back reservoir (docs/kmc.md \"Active depth\"): "
        "simulate only down to this many layers beyond the deepest foreign ion; deeper layers "
        "stay frozen fresh bulk and are appended as the front advances (galvanostatic or off "
        "phases, `sample.back = \"bulk\"`). 0: the whole depth is simulated.", lo=0),
    Key("acceleration", "str", "none", "Skip part of the rattling (docs/acceleration.md): "
        "`none` (plain KMC) or `bond-cap`: both directions of a bond whose slower direction has "
        "a barrier below E_cap = E_DC,native - E_F,bulk + bond_cap_kT kT are slowed by the same "
        "factor, to the rate over E_cap. Equilibrium is unchanged; the dynamics are approximate, "
        "with the error set by `bond_cap_kT`.", choices=("none", "bond-cap")),
    Key("bond_cap_kT", "float", 0.0, "`acceleration = \"bond-cap\"`: the cap barrier above the "
        "native bulk activation energy, in kT (0: the hop rate of a native on a site at the bulk "
        "Fermi level; lower is closer to plain KMC; docs/acceleration.md gives the measured error "
        "and speed-up)."),
    Key("rate_model", "str", "trap", "Hop rate model: `trap` (rate set by the origin site and the "
        "species' E_DC, docs/physics.md section 5) or `metropolis`.", choices=("trap", "metropolis")),
    Key("selector", "str", "tree", "Event selection: `tree` (O(log N)) or `linear` (reference).",
        choices=("tree", "linear")),
    Key("seed", "int", 0, "Base random seed; replica r uses a seed derived from (seed, r).", lo=0),
    Key("replicas", "int", 1, "Independent replicas (run in parallel with dask).", lo=1),
    Key("scheduler_timeout_s", "float", 10.0, "How long `--scheduler ADDR` waits for the dask "
        "scheduler before giving up with an error.", "s", lo=0.0, lo_open=True),
    Key("checkpoint_interval_s", "float", 600.0, "Wall-clock time between checkpoints of `cait kmc run` (0: only when interrupted).", "s", lo=0.0),
    Key("chunk_events", "int", 1_000_000, "Events between returns of the KMC kernel to Python (progress bar, checkpoints, interrupt checks).", lo=1),
    Key("eq_size", "int", 10, "`cait kmc equilibrium`: edge L of the fully periodic L^3 lattice.", lo=3),
    Key("eq_blocks", "int", 20, "`cait kmc equilibrium`: independent time blocks per composition and replica (error bars).", lo=2),
    Key("eq_events_per_block", "int", 200_000, "`cait kmc equilibrium`: expected events per block (sets the block length from the equilibrated event rate).", lo=1),
    Key("eq_equilibration_events", "int", 200_000, "`cait kmc equilibrium`: discarded events before measuring.", lo=0),
]

OUTPUT_KEYS = [
    Key("n_times", "int", 41, "Number of output times, evenly spaced over the whole beam "
        "schedule (ignored when `times_s` is given).", lo=2),
    Key("times_s", "floats", (), "Explicit output times (increasing, within the schedule).", "s"),
    Key("plot_times_s", "floats", (), "Times of the profiles drawn in figures (default: the end of "
        "each phase).", "s"),
    Key("n_energy_bins", "int", 40, "Energy bins of the populated-SED records.", lo=2),
    Key("n_slabs", "int", 10, "KMC: depth slabs of the populated-SED records (occupancy by "
        "species vs site energy; capped at the number of layers).", lo=1),
]

FIT_KEYS = [
    Key("parameters", "table-list", (), "Free parameters of `cait fit`: a list of inline tables "
        "`{name = \"species.Li.D_cm2_s\", lower = 1e-14, upper = 1e-12}` with optional `start` "
        "and `log_scale`. Names: `sed.fwhm_eV`, `sed.center_eV`, `species.NAME.D_cm2_s`, "
        "`material.vacancy_fraction` (see docs/fitting.md)."),
    Key("log_scale", "bool", True, "Fit diffusion coefficients as log10(D) (per-parameter "
        "`log_scale` overrides this; other parameters are fitted linearly by default)."),
    Key("n_starts", "int", 4, "Number of least-squares starts: the input's values plus "
        "quasi-random points (Sobol) inside the bounds.", lo=1),
    Key("sampling", "str", "sobol", "Quasi-random design of the extra starts.",
        choices=("sobol", "latin-hypercube")),
    Key("seed", "int", 0, "Seed of the quasi-random start design.", lo=0),
    Key("time_s", "float", -1.0, "Time of the measured profile since the start of the beam "
        "schedule. Negative: the end of the schedule (CSV) or the last time (dataset).", "s"),
    Key("solver", "str", "", "Forward model: `full` or `electroneutral` NPP (empty: "
        "`npp.solver`).", choices=("", "full", "electroneutral")),
    Key("workers", "int", 0, "Worker processes evaluating starts in parallel (0: one per CPU "
        "core, at most `n_starts`).", lo=0),
    Key("max_evaluations", "int", 200, "Forward-model evaluations per start (excluding the "
        "Jacobian's finite differences) before the start is stopped.", lo=1),
    _pos("error_floor", 1e-3, "Smallest standard error (fraction of n_bulk) used as a weight "
         "for profiles read from a dataset, whose replica SEM can be zero."),
    Key("search_n_cells", "int", 0, "Cells of the forward model on which the starts search "
        "(0: `npp.n_cells`). A coarser search model only finds the basin: the best start is "
        "then polished, and the uncertainties computed, on the full model (docs/fitting.md).",
        lo=0),
    Key("search_rtol", "float", 0.0, "Time tolerance of the search model (0: `npp.rtol`).",
        lo=0.0),
]

SECTIONS = {
    "material": MATERIAL_KEYS,
    "sed": SED_KEYS,
    "sample": SAMPLE_KEYS,
    "npp": NPP_KEYS,
    "kmc": KMC_KEYS,
    "output": OUTPUT_KEYS,
    "fit": FIT_KEYS,
}
TABLES = {"species": SPECIES_KEYS}  # [species.NAME] tables
ARRAYS = {"beam": PHASE_KEYS}  # [[beam]] arrays of tables
TOP_LEVEL = list(SECTIONS) + list(TABLES) + list(ARRAYS)

SECTION_DOCS = {
    "material": "The glass.",
    "sed": "The native site energy distribution (SED).",
    "species": "One table per ion species, `[species.Li]`, `[species.K]`, ...",
    "sample": "Geometry and back boundary (docs/physics.md section 4).",
    "beam": "The beam schedule: an array of phases `[[beam]]`, run in order. A phase with "
            "`drive = \"off\"` is a relaxation.",
    "npp": "Continuum solver numerics.",
    "kmc": "Kinetic Monte Carlo lattice and algorithm.",
    "output": "Output times and records.",
    "fit": "Free parameters and options of `cait fit` (docs/fitting.md).",
}


def _section_class(name: str, keys: list[Key], extra: tuple = ()):
    fields = [(k.name, Any, field(default=None)) for k in keys] + list(extra)
    return dataclasses.make_dataclass(name, fields, frozen=True)


Material = _section_class("Material", MATERIAL_KEYS)
SEDConfig = _section_class("SEDConfig", SED_KEYS)
SampleConfig = _section_class("SampleConfig", SAMPLE_KEYS)
NPPConfig = _section_class("NPPConfig", NPP_KEYS)
KMCConfig = _section_class("KMCConfig", KMC_KEYS)
OutputConfig = _section_class("OutputConfig", OUTPUT_KEYS)
FitConfig = _section_class("FitConfig", FIT_KEYS)
Species = _section_class("Species", SPECIES_KEYS, (("name", str, field(default="")),))
Phase = _section_class("Phase", PHASE_KEYS)


@dataclass(frozen=True)
class Config:
    """A validated scenario. Paths are absolute; units as in the key names."""

    material: Any
    sed: Any
    species: tuple  # of Species, native first
    sample: Any
    beam: tuple  # of Phase
    npp: Any
    kmc: Any
    output: Any
    fit: Any = field(default_factory=lambda: FitConfig(**{k.name: k.default for k in FIT_KEYS}))
    text: str = ""  # the input file's full text (provenance)
    path: Path | None = None

    # -- derived quantities used by both engines -------------------------------------------
    @property
    def native(self):
        """The native species (exactly one)."""
        return self.species[0]

    @property
    def foreign(self) -> tuple:
        return self.species[1:]

    @property
    def species_names(self) -> tuple:
        return tuple(s.name for s in self.species)

    @property
    def total_duration_s(self) -> float:
        return float(sum(p.duration_s for p in self.beam))

    @property
    def phase_starts_s(self) -> tuple:
        starts, t = [], 0.0
        for p in self.beam:
            starts.append(t)
            t += p.duration_s
        return tuple(starts)

    @property
    def phase_ends_s(self) -> tuple:
        return tuple(s + p.duration_s for s, p in zip(self.phase_starts_s, self.beam))

    @property
    def output_times_s(self) -> tuple:
        """Output times: `output.times_s`, or `n_times` evenly spaced from 0 to the end."""
        if self.output.times_s:
            return tuple(self.output.times_s)
        n, t_end = self.output.n_times, self.total_duration_s
        return tuple(t_end * i / (n - 1) for i in range(n))

    @property
    def plot_times_s(self) -> tuple:
        return tuple(self.output.plot_times_s) or self.phase_ends_s

    def require(self, what: str, beam=False, foreign=False, D=False, D_native=False):
        """Refuse in one line a run that needs what the input leaves out: a beam schedule, a
        foreign species, the D values of every species (`D`) or of the native one."""
        if foreign and not self.foreign:
            raise ConfigError(f"{what} needs a foreign species: a table [species.NAME] with "
                              f"role = \"foreign\"")
        if beam and not self.beam:
            raise ConfigError(f"{what} needs a beam schedule: at least one phase [[beam]] with "
                              f"species, duration_s and drive")
        for s in (self.species if D else self.species[:1] if D_native else ()):
            if s.D_model != "table" and not (s.D_cm2_s > 0):
                raise ConfigError(f"`species.{s.name}.D_cm2_s` is required by {what}")

    def species_by_name(self, name: str):
        for s in self.species:
            if s.name == name:
                return s
        raise ConfigError(f"unknown species {name!r}; defined: {', '.join(self.species_names)}")


# ---------------------------------------------------------------------------------------------
# Stage 1: parse
# ---------------------------------------------------------------------------------------------
def _did_you_mean(word: str, legal) -> str:
    close = difflib.get_close_matches(word, list(legal), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


def _fmt(value) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _check_value(where: str, key: Key, value):
    """Type, range and choice check of one value; returns the normalised value."""
    kind, raw = key.kind, value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"`{where}` must be a number, got {_fmt(value)}")
        value = float(value)
        if math.isnan(value) or math.isinf(value):
            raise ConfigError(f"`{where}` must be a finite number, got {value}")
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"`{where}` must be an integer, got {_fmt(value)}")
    elif kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"`{where}` must be a string, got {_fmt(value)}")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"`{where}` must be true or false, got {_fmt(value)}")
    elif kind == "floats":
        if not isinstance(value, list) or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) for v in value):
            raise ConfigError(f"`{where}` must be a list of numbers, got {_fmt(value)}")
        return tuple(float(v) for v in value)
    elif kind == "table-list":
        if not isinstance(value, list) or any(not isinstance(v, dict) for v in value):
            raise ConfigError(f"`{where}` must be a list of tables, got {_fmt(value)}")
        return value
    if key.choices and value not in key.choices:
        legal = ", ".join(repr(c) for c in key.choices if c != "")
        raise ConfigError(f"`{where}` must be one of {legal}, got {_fmt(value)}"
                          + (_did_you_mean(value, key.choices) if isinstance(value, str) else ""))
    if key.lo is not None and kind in ("float", "int"):
        if value < key.lo or (key.lo_open and value == key.lo):
            op = ">" if key.lo_open else ">="
            raise ConfigError(f"`{where}` must be {op} {key.lo:g}, got {_fmt(raw)}")
    if key.hi is not None and kind in ("float", "int"):
        if value > key.hi or (key.hi_open and value == key.hi):
            op = "<" if key.hi_open else "<="
            raise ConfigError(f"`{where}` must be {op} {key.hi:g}, got {_fmt(raw)}")
    return value


def _parse_table(where: str, raw, keys: list[Key]) -> dict:
    if not isinstance(raw, dict):
        raise ConfigError(f"`{where}` must be a table, got {_fmt(raw)}")
    by_name = {k.name: k for k in keys}
    for name in raw:
        if name not in by_name:
            raise ConfigError(f"unknown key `{where}.{name}`{_did_you_mean(name, by_name)}; "
                              f"allowed: {', '.join(by_name)}")
    out = {}
    for key in keys:
        if key.name in raw:
            out[key.name] = _check_value(f"{where}.{key.name}", key, raw[key.name])
        elif key.default is REQUIRED:
            raise ConfigError(f"`{where}.{key.name}` is required ({key.doc.split('.')[0]})")
        else:
            out[key.name] = key.default
    return out


def _parse(raw) -> dict:
    """Stage 1: every section, table and phase parsed (known keys, types, ranges, choices)."""
    for name in raw:
        if name not in TOP_LEVEL:
            raise ConfigError(f"unknown section `{name}`{_did_you_mean(name, TOP_LEVEL)}; "
                              f"allowed: {', '.join(TOP_LEVEL)}")
    sections = {name: _parse_table(name, raw.get(name, {}), keys)
                for name, keys in SECTIONS.items()}
    comps = []
    for i, c in enumerate(sections["sed"]["components"]):
        d = _parse_table(f"sed.components[{i}]", c, SED_COMPONENT_KEYS)
        comps.append((d["weight"], d["center_eV"], d["fwhm_eV"]))
    sections["sed"]["components"] = tuple(comps)

    raw_species = raw.get("species", {})
    if not isinstance(raw_species, dict) or not raw_species:
        raise ConfigError("section `species` is required: one table per ion, e.g. "
                          "[species.Li] role = \"native\" ... and [species.K] role = \"foreign\"")
    species = []
    for name, table in raw_species.items():
        d = _parse_table(f"species.{name}", table, SPECIES_KEYS)
        if not d["D_model"]:
            d["D_model"] = "sed" if d["role"] == "native" else "constant"
        species.append(Species(name=name, **d))
    sections["species"] = species

    raw_beam = raw.get("beam", [])
    if not isinstance(raw_beam, list):
        raise ConfigError("`beam` must be an array of phases [[beam]] with species, duration_s "
                          "and drive")
    sections["beam"] = [_parse_table(f"beam[{i}]", p, PHASE_KEYS) for i, p in enumerate(raw_beam)]
    return sections


def _check_species(species) -> list:
    """Stage 2 for ``[species.*]``: exactly one native (first), D tables. Foreign species, the
    beam and D values are checked by the commands that need them (:meth:`Config.require`)."""
    natives = [s for s in species if s.role == "native"]
    if len(natives) != 1:
        raise ConfigError(f"exactly one species must have `role = \"native\"`, got "
                          f"{len(natives)} ({', '.join(s.name for s in natives) or 'none'})")
    foreign = [s for s in species if s.role == "foreign"]
    for s in natives + foreign:
        where = f"species.{s.name}"
        if s.D_model == "table" and not s.D_table:
            raise ConfigError(f"`{where}.D_table` is required when `D_model = \"table\"`")
        if s.D_model != "table" and s.D_table:
            raise ConfigError(f"`{where}.D_table` is only used with `D_model = \"table\"`, "
                              f"got D_model = {s.D_model!r}")
    for s in foreign:
        if s.site_fwhm_eV == 0.0:
            raise ConfigError(f"`species.{s.name}.site_fwhm_eV` must be > 0 (or negative for "
                              f"the native landscape's width), got 0.0")
    return natives + foreign


def _check_phase(i, p, foreign_names, default_theta):
    """Stage 2 for one ``[[beam]]`` phase; resolves its placeholders in place."""
    where = f"beam[{i}]"
    if p["drive"] == "off":
        if p["species"]:
            raise ConfigError(f"`{where}.species` must be empty when `drive = \"off\"` "
                              f"(no beam), got {p['species']!r}")
        p["species"] = None
    elif p["species"] not in foreign_names:
        raise ConfigError(f"`{where}.species` must name a foreign species "
                          f"({', '.join(foreign_names)}), got {_fmt(p['species'])}"
                          + _did_you_mean(p["species"] or "", foreign_names))
    if p["drive"] == "galvanostatic" and math.isnan(p["back_field_V_per_m"]):
        raise ConfigError(f"`{where}.back_field_V_per_m` is required when "
                          f"`drive = \"galvanostatic\"`")
    if p["drive"] == "potentiostatic" and math.isnan(p["voltage_V"]):
        raise ConfigError(f"`{where}.voltage_V` is required when `drive = \"potentiostatic\"`")
    if p["drive"] != "galvanostatic" and not math.isnan(p["back_field_V_per_m"]):
        raise ConfigError(f"`{where}.back_field_V_per_m` only applies to galvanostatic "
                          f"phases, got drive = {p['drive']!r}")
    if p["drive"] != "potentiostatic" and not math.isnan(p["voltage_V"]):
        raise ConfigError(f"`{where}.voltage_V` only applies to potentiostatic phases, got "
                          f"drive = {p['drive']!r}")
    if p["theta_front"] < 0:
        p["theta_front"] = default_theta
    elif p["theta_front"] == 0.0:
        raise ConfigError(f"`{where}.theta_front` must be > 0, got 0.0")
    # placeholders resolved once: a drive value that does not apply is 0 (as the engines
    # take it), so no consumer has to test for NaN
    if p["drive"] != "potentiostatic":
        p["voltage_V"] = 0.0
    if p["drive"] != "galvanostatic":
        p["back_field_V_per_m"] = 0.0
    return Phase(**p)


def _check_sed(sed):
    """Stage 2 for ``[sed]``: the keys its kind needs."""
    if sed["kind"] == "gaussians" and not sed["components"]:
        raise ConfigError("`sed.components` is required when `sed.kind = \"gaussians\"`")
    if sed["kind"] == "table" and not sed["file"]:
        raise ConfigError("`sed.file` is required when `sed.kind = \"table\"`")
    if sed["kind"] != "table" and sed["file"]:
        raise ConfigError(f"`sed.file` is only used with `sed.kind = \"table\"`, got "
                          f"kind = {sed['kind']!r}")


def _resolve_file(where, name, base_dir) -> Path:
    """Stage 3: a file named by the input, relative to the input's folder, must exist."""
    p = Path(name)
    p = p if p.is_absolute() else (base_dir / p)
    if not p.is_file():
        raise ConfigError(f"`{where}` names a file that does not exist: {name!r} "
                          f"(looked for {p})")
    return p.resolve()


def _check_times(out, t_end):
    """Stage 3: output and plot times increasing and within the schedule."""
    for key in ("times_s", "plot_times_s"):
        ts = out[key]
        if any(b <= a for a, b in zip(ts, ts[1:])):
            raise ConfigError(f"`output.{key}` must be strictly increasing, got {list(ts)}")
        if ts and (ts[0] < 0 or ts[-1] > t_end * (1 + 1e-12)):
            raise ConfigError(f"`output.{key}` must lie within the beam schedule [0, {t_end:g}] s,"
                              f" got {list(ts)}")


def parse_text(text: str, base_dir: Path | None = None, path: Path | None = None) -> Config:
    """Parse and validate the text of an input file (parse, compatibility, data).

    Parameters
    ----------
    text : str
        TOML text.
    base_dir : Path, optional
        Directory against which relative file names in the input are resolved.
    path : Path, optional
        Where the text came from (for provenance only).
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"input is not valid TOML: {exc}") from None
    base_dir = Path(base_dir) if base_dir is not None else Path.cwd()
    sections = _parse(raw)
    # -- Stage 2: compatibility
    species = _check_species(sections["species"])
    foreign_names = [s.name for s in species[1:]]
    default_theta = 1.0 - sections["material"]["vacancy_fraction"]
    beam = tuple(_check_phase(i, p, foreign_names, default_theta)
                 for i, p in enumerate(sections["beam"]))
    sed = sections["sed"]
    _check_sed(sed)
    # -- Stage 3: data
    sed["file"] = _resolve_file("sed.file", sed["file"], base_dir) if sed["file"] else None
    species = [dataclasses.replace(s, D_table=_resolve_file(f"species.{s.name}.D_table",
                                                            s.D_table, base_dir)
                                   if s.D_table else None) for s in species]
    _check_times(sections["output"], sum(p.duration_s for p in beam))
    return Config(
        material=Material(**sections["material"]), sed=SEDConfig(**sed), species=tuple(species),
        sample=SampleConfig(**sections["sample"]), beam=beam, npp=NPPConfig(**sections["npp"]),
        kmc=KMCConfig(**sections["kmc"]), output=OutputConfig(**sections["output"]),
        fit=FitConfig(**sections["fit"]), text=text, path=path)


def load_config(path) -> Config:
    """Read and validate an input file (TOML).

    Raises
    ------
    ConfigError
        If the file cannot be read or any key is unknown, of the wrong type, out of range or
        inconsistent with another; the message names the key, the value and what is legal.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"input file not found: {str(path)!r}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read input file {str(path)!r}: {exc}") from None
    return parse_text(text, base_dir=path.resolve().parent, path=path.resolve())


def replace(cfg: Config, section: str, **changes) -> Config:
    """A copy of `cfg` with keys of one section changed (values are validated like input)."""
    keys = {k.name: k for k in SECTIONS[section]}
    for name, value in changes.items():
        if name not in keys:
            raise ConfigError(f"unknown key `{section}.{name}`{_did_you_mean(name, keys)}")
        changes[name] = _check_value(f"{section}.{name}", keys[name], value)
    return dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section),
                                                                    **changes)})


# ---------------------------------------------------------------------------------------------
# Documentation
# ---------------------------------------------------------------------------------------------
def _default_text(key: Key) -> str:
    if key.default is REQUIRED:
        return "required"
    d = key.default
    if isinstance(d, float) and math.isnan(d):
        return "—"
    if isinstance(d, str):
        return f'`"{d}"`'
    if isinstance(d, tuple):
        return "`[]`"
    return f"`{d:g}`" if isinstance(d, float) else f"`{d}`"


def _range_text(key: Key) -> str:
    parts = []
    if key.choices:
        parts.append(", ".join(f"`{c}`" for c in key.choices if c != ""))
    if key.lo is not None:
        parts.append(("> " if key.lo_open else ">= ") + f"{key.lo:g}")
    if key.hi is not None:
        parts.append(("< " if key.hi_open else "<= ") + f"{key.hi:g}")
    return "; ".join(parts)


def markdown() -> str:
    """The reference of all input keys, as Markdown (written to docs/inputs.md)."""
    out = ["# Input file reference", "",
           "Generated from the schema in `compare/io/config.py` by "
           "`python -m compare.io.config --markdown`; do not edit by hand.", "",
           "An input file is TOML. Keys carry their unit in the name. Unknown keys, wrong types "
           "and out-of-range values are errors (exit code 2) whose message names the key. "
           "Relative file names are resolved against the input file's folder. Examples: "
           "`inputs/*.toml`.", ""]
    all_sections = {**SECTIONS, **TABLES, **ARRAYS}
    for name in TOP_LEVEL:
        header = {"species": "[species.NAME]", "beam": "[[beam]]"}.get(name, f"[{name}]")
        out += [f"## `{header}`", "", SECTION_DOCS[name], "",
                "| key | unit | default | allowed | meaning |", "|---|---|---|---|---|"]
        for key in all_sections[name]:
            out.append(f"| `{key.name}` | {key.unit} | {_default_text(key)} | "
                       f"{_range_text(key)} | {key.doc} |")
        if name == "sed":
            out += ["", "Each entry of `components`:", "",
                    "| key | unit | default | allowed | meaning |", "|---|---|---|---|---|"]
            for key in SED_COMPONENT_KEYS:
                out.append(f"| `{key.name}` | {key.unit} | {_default_text(key)} | "
                           f"{_range_text(key)} | {key.doc} |")
        out.append("")
    return "\n".join(out)


def _main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m compare.io.config")
    ap.add_argument("--markdown", action="store_true", help="print the input key reference")
    ap.add_argument("input", nargs="?", help="validate this input file")
    args = ap.parse_args(argv)
    if args.markdown:
        sys.stdout.write(markdown())
    if args.input:
        load_config(args.input)
        print(f"{args.input}: ok")


if __name__ == "__main__":
    _main()
