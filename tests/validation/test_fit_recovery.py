"""`cait fit` recovers known parameters from synthetic noisy profiles of the NPP solver itself.

Scenario: the K+ CAIT of inputs/fit_k_cait.toml shrunk so that one solve costs ~0.1-0.15 s CPU
(300 nm sample, 2000 s beam, 50 cells, rtol 1e-3), with both forward models: the electroneutral
solver (adaptive time steps, "noisy" search settings) and the full NPP solver on a frozen time
grid (fit.FrozenGridNPP, "smooth" settings). Truth: D_K = 9e-17 cm^2/s,
FWHM = 0.25 eV, D_Li = 1.5e-13 cm^2/s; profiles of Li and K every 2 nm from 1 to 59 nm plus
Gaussian noise sigma = 0.01 (seeded). The fit starts away from the truth (x3 in the D's, +0.07 eV
in the FWHM) and must land within 3 of its own reported standard errors of the truth. The
agreement of the reported errors with the scatter over noise realisations is checked on an
analytic model in tests/unit/compare/workflows/test_fit.py (24 realisations are too costly here).
The coarse mesh is not converged (docs/fitting.md), but data and fit use the same forward model,
so this checks the optimiser and the uncertainties, not the discretisation.
"""
import math

import numpy as np
import pytest
import xarray as xr

from compare.cli import main
from compare.io.config import parse_text
from compare.workflows.fit import REFREEZE_TOL, synthesize_profiles
from compare.io.profiles import write_csv_profiles

INPUT = """
[material]
n_bulk_cm3 = 1.4e22
vacancy_fraction = 0.10
[sed]
fwhm_eV = 0.25
[species.Li]
role = "native"
D_cm2_s = 1.5e-13
[species.K]
role = "foreign"
D_cm2_s = 9e-17
[sample]
thickness_nm = 300.0
[[beam]]
species = "K"
duration_s = 2000.0
back_field_V_per_m = 2.0e4
[npp]
mesh = "graded"            # a fixed coarse mesh: data and fit share it (see the docstring)
n_cells = 50
h_surface_nm = 0.5
rtol = 1e-3
[fit]
solver = "electroneutral"
n_starts = 2
workers = 2
parameters = [
  {name = "species.K.D_cm2_s", lower = 1e-17, upper = 1e-15, start = 3e-17},
  {name = "sed.fwhm_eV", lower = 0.15, upper = 0.40, start = 0.32},
  {name = "species.Li.D_cm2_s", lower = 1e-14, upper = 1e-12, start = 5e-14},
]
"""
TRUTH_FIT_COORDS = np.array([math.log10(9e-17), 0.25, math.log10(1.5e-13)])
SIGMA = 0.01


@pytest.mark.parametrize("solver", ["electroneutral", "full"])
def test_cli_fit_recovers_truth_within_three_stderr(tmp_path, rng, solver):
    text = INPUT.replace('solver = "electroneutral"', f'solver = "{solver}"')
    cfg = parse_text(text)
    depth = np.arange(1.0, 60.0, 2.0)
    noisy = synthesize_profiles(cfg, depth, SIGMA, rng)
    clean = synthesize_profiles(cfg, depth, SIGMA)
    assert np.ptp(clean.values[1]) > 0.5  # the K front lies inside the sampled depths
    csv = write_csv_profiles(noisy, tmp_path / "synthetic.csv", comment="synthetic, seeded")
    inp = tmp_path / "fit.toml"
    inp.write_text(text)

    assert main(["fit", str(csv), str(inp), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    with xr.open_dataset(tmp_path / "out" / "fit.nc") as ds:
        ds = ds.load()
    best, se = ds["best_fit"].values, ds["stderr"].values
    print(solver, "best", best, "stderr", se, "truth", TRUTH_FIT_COORDS, "chi2",
          float(ds["chi2"]), "evaluations", int(ds["n_evaluations"]), "wall",
          float(ds["wall_time"]), "cpu", float(ds["cpu_time"]))
    assert np.all(np.isfinite(se) & (se > 0))
    assert np.all(np.abs(best - TRUTH_FIT_COORDS) < 3 * se), (best - TRUTH_FIT_COORDS) / se
    # The truth's chi2 is the noise's own; the optimum can only be lower (up to the tolerance).
    chi2_truth = float(np.sum(((noisy.values - clean.values) / SIGMA) ** 2))
    assert float(ds["chi2"]) <= chi2_truth * (1 + 1e-3)
    # With the true model and true errors, chi2/dof scatters around 1 by sqrt(2/dof).
    dof = ds.attrs["dof"]
    assert abs(float(ds["reduced_chi2"]) - 1.0) < 3 * math.sqrt(2.0 / dof)
    assert (tmp_path / "out" / "fit.png").stat().st_size > 10_000
    if solver == "full":
        # the time grid was re-frozen at the optimum and moved the profiles by less than
        # REFREEZE_TOL measurement errors: the optimum does not depend on the frozen grid
        assert ds.attrs["time_grid"] == "frozen" and ds.attrs["n_refreeze"] >= 1
        last_shift = float(ds.attrs["refreeze_shift_sigma"].split(",")[-1])
        assert last_shift <= REFREEZE_TOL
