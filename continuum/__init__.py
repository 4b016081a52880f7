"""Continuum side: site energy distributions, D(n), Nernst-Planck-Poisson solvers, Onsager relations."""
