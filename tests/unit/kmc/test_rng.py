import numpy as np
import pytest

from kmc.rng import raw_u64, seed_state, uniform


def test_xoshiro_reference_vector():
    # reference outputs of xoshiro256** for state {1, 2, 3, 4} (Blackman & Vigna reference C code)
    s = np.array([1, 2, 3, 4], dtype=np.uint64)
    assert raw_u64(s, 4).tolist() == [11520, 0, 1509978240, 1215971899390074240]


def test_same_seed_same_stream_and_state_is_the_checkpoint():
    a, b = seed_state(42), seed_state(42)
    assert np.array_equal(uniform(a, 100), uniform(b, 100))
    c = a.copy()  # the generator state is this array: copying it resumes exactly
    assert np.array_equal(uniform(a, 50), uniform(c, 50))
    assert not np.array_equal(uniform(seed_state(43), 10), uniform(seed_state(42), 10))
    assert not np.array_equal(uniform(seed_state(1, stream=1), 10), uniform(seed_state(1), 10))


def test_uniformity_chi2_and_moments():
    u = uniform(seed_state(7), 200_000)
    assert u.min() >= 0.0 and u.max() < 1.0
    # mean 1/2 with standard error sqrt(1/12/n); within 5 standard errors
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / u.size)
    counts = np.bincount((u * 50).astype(int), minlength=50)
    chi2 = np.sum((counts - u.size / 50) ** 2 / (u.size / 50))
    # chi2 with 49 dof: mean 49, sd ~9.9; 49 + 5 sd
    assert chi2 < 49 + 5 * np.sqrt(2 * 49)
    # lag-1 correlation ~ N(0, 1/n)
    r = np.corrcoef(u[:-1], u[1:])[0, 1]
    assert abs(r) < 5 / np.sqrt(u.size)


def test_negative_seed_rejected():
    with pytest.raises(ValueError, match="`seed` must be >= 0"):
        seed_state(-1)
