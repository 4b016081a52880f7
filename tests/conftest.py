"""Shared fixtures: a seeded RNG, the bundled inputs, a non-interactive matplotlib."""
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = Path(__file__).resolve().parents[1]
INPUTS = ROOT / "inputs"


@pytest.fixture
def rng():
    """A seeded numpy Generator: every statistical test is reproducible."""
    return np.random.default_rng(20261127)


@pytest.fixture
def k_input():
    return INPUTS / "li3b7o12_k_cait.toml"
