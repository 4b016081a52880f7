"""Kinetic Monte Carlo engine: ions hopping on a disordered lattice (site energy landscape)."""
