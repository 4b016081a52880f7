"""Regenerate k_cait_synthetic.csv: SYNTHETIC data, not a measurement.

The full NPP solver on an adaptive mesh 10x more accurate than the fit's default (tol 1e-3 of
n_bulk, rtol 1e-4; a tenth of the noise) runs inputs/fit_k_cait.toml at its input values
(D_K = 9e-17 cm^2/s, FWHM = 0.25 eV, D_Li = 1.5e-13 cm^2/s), the profiles at the end of the
beam (1e4 s) are sampled every 4 nm from 2 to 238 nm, and Gaussian noise of standard
deviation 0.01 (fraction of n_bulk; seed 2024) is added; the error columns hold 0.01.

    .venv/bin/python inputs/profiles/make_k_cait_synthetic.py
"""
from pathlib import Path

import numpy as np

from compare.io.config import load_config, replace
from compare.workflows.fit import synthesize_profiles
from compare.io.profiles import write_csv_profiles

HERE = Path(__file__).resolve().parent
SIGMA, SEED = 0.01, 2024


def main():
    cfg = load_config(HERE.parent / "fit_k_cait.toml")
    # The data are made 10x more accurately than the fit's default model (tol 1e-2, rtol 1e-3):
    # pin the numerics, so that regenerating the CSV reproduces it.
    cfg = replace(replace(cfg, "npp", mesh="adaptive", tol=1e-3, rtol=1e-4), "fit",
                  solver="full")
    prof = synthesize_profiles(cfg, np.arange(2.0, 241.0, 4.0), SIGMA,
                               np.random.default_rng(SEED))
    doc = __doc__.split("\n\n    .venv")[0]
    write_csv_profiles(prof, HERE / "k_cait_synthetic.csv", comment=doc)


if __name__ == "__main__":
    main()
