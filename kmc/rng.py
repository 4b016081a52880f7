"""Counter-free, checkpointable random numbers for the hot loop: xoshiro256** in numba.

The whole generator state is a ``uint64`` array of length 4, so a checkpoint is just a copy of
that array and a resumed run draws exactly the same numbers. Seeding: splitmix64 from an integer
seed (the recommendation of the xoshiro authors).
"""
import numpy as np
from numba import njit

_MASK = (1 << 64) - 1


def _splitmix64(x):
    """One splitmix64 step on Python ints; returns (new_state, output)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return x, z ^ (z >> 31)


def seed_state(seed, stream=0):
    """Initial xoshiro256** state from an integer seed.

    Parameters
    ----------
    seed : int
        Any non-negative integer.
    stream : int
        Independent sub-stream label (mixed into the seed), e.g. replica number.

    Returns
    -------
    state : ndarray of uint64, shape (4,)
    """
    if int(seed) < 0:
        raise ValueError(f"`seed` must be >= 0, got {seed}")
    x = (int(seed) ^ ((int(stream) * 0xD1B54A32D192ED03) & _MASK)) & _MASK
    out = []
    for _ in range(4):
        x, z = _splitmix64(x)
        out.append(z)
    if not any(out):  # the all-zero state is the one fixed point of xoshiro
        out[0] = 1
    return np.array(out, dtype=np.uint64)


@njit(cache=True)
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(cache=True)
def next_u64(s):
    """Next 64-bit output of xoshiro256**; advances ``s`` (uint64, shape (4,)) in place."""
    result = _rotl(s[1] * np.uint64(5), 7) * np.uint64(9)
    t = s[1] << np.uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return result


@njit(cache=True)
def next_double(s):
    """Uniform double in [0, 1) with 53 random bits."""
    return np.float64(next_u64(s) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def uniform(s, n):
    """``n`` uniform doubles in [0, 1); advances ``s``. Returns ndarray of float64, shape (n,)."""
    out = np.empty(n)
    for k in range(n):
        out[k] = next_double(s)
    return out


@njit(cache=True)
def raw_u64(s, n):
    """``n`` raw 64-bit outputs (for reference-vector tests). Returns ndarray of uint64, shape (n,)."""
    out = np.empty(n, dtype=np.uint64)
    for k in range(n):
        out[k] = next_u64(s)
    return out
