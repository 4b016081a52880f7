"""How many vacant neighbours do the native ions have, and how much of the native hop rate do
they carry? (docs/acceleration.md, "Why the ions rattle")

    .venv/bin/python scripts/vacancy_neighbours.py [INPUT] [--events N] [--seed S]

Runs the KMC CAIT scenario of INPUT (default: the bundled K CAIT KMC input) for N events and
prints, for k = 0..4 vacant nearest neighbours, the fraction of native ions and their share of
the native hop rate (trap model: every hop out of site i has the rate nu exp((E_i - E_DC)/kT)).
"""
import argparse
from pathlib import Path

import numpy as np

from compare import scenario
from compare.io.config import load_config
from kmc.engine import Simulation

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input", nargs="?", default=str(ROOT / "inputs" / "li3b7o12_kmc_k_cait.toml"))
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    p = scenario.kmc_params(load_config(args.input))
    sim = Simulation(p, args.seed)
    sim.advance(args.events)
    o = sim.state["occ"].reshape(p.nx, p.ny, p.nz)
    vac = o < 0
    n_vac = np.zeros(o.shape, dtype=int)
    for ax in (1, 2):                       # periodic lateral directions
        n_vac += np.roll(vac, 1, axis=ax) + np.roll(vac, -1, axis=ax)
    n_vac[1:] += vac[:-1]                   # depth: open, no neighbour beyond the lattice
    n_vac[:-1] += vac[1:]
    native = o == 0
    E = sim.site_energies()[0].reshape(o.shape)
    rate = np.exp(E / sim.kT_eV) * n_vac    # the common factor nu exp(-E_DC/kT) cancels
    print(f"{p.nx} x {p.ny} x {p.nz}, {sim.n_events} events, t = {sim.time_s:.4g} s")
    for k in range(5):
        sel = native & (n_vac == k)
        print(f"natives with {k} vacant neighbours: {sel.sum() / native.sum():.3f} of the natives,"
              f" {rate[sel].sum() / rate[native].sum():.3f} of the native hop rate")


if __name__ == "__main__":
    main()
