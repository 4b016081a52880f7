"""Checks and benchmarks: `cait bench`, `cait check` (speed figures and physics studies)."""
