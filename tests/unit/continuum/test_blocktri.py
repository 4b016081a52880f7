import numpy as np
import pytest

from continuum.blocktri import BlockTridiagonal


def _random_system(m, n, rng, pivoting):
    """A block tridiagonal matrix (dense and in band storage with u = 2m) and a rhs; with
    `pivoting`, every diagonal block has a zero leading entry, so rows must be swapped."""
    N, u = m * n, 2 * m
    A = np.zeros((N, N))
    for j in range(n):
        for jj in (j - 1, j, j + 1):
            if 0 <= jj < n:
                A[j * m:(j + 1) * m, jj * m:(jj + 1) * m] = rng.normal(size=(m, m))
        block = A[j * m:(j + 1) * m, j * m:(j + 1) * m]
        block += 4.0 * np.eye(m)[rng.permutation(m)] if pivoting else 4.0 * np.eye(m)
        if pivoting and m > 1:
            block[0, 0] = 0.0
    ab = np.zeros((4 * m + 1, N), order="F")
    for col in range(N):
        for row in range(max(0, col - u), min(N, col + u + 1)):
            ab[u + row - col, col] = A[row, col]
    return A, ab, rng.normal(size=N)


@pytest.mark.parametrize("m", [1, 2, 3, 4])
@pytest.mark.parametrize("pivoting", [False, True])
def test_matches_a_dense_solve(m, pivoting):
    rng = np.random.default_rng(10 * m + pivoting)
    for n in (1, 2, 7, 40):
        A, ab, b = _random_system(m, n, rng, pivoting)
        x = BlockTridiagonal(m, n).solve(ab, 2 * m, b.copy())
        x_ref = np.linalg.solve(A, b)
        assert np.abs(x - x_ref).max() <= 1e-9 * max(1.0, np.abs(x_ref).max())


def test_singular_block_is_reported():
    rng = np.random.default_rng(3)
    A, ab, b = _random_system(3, 5, rng, False)
    ab[:, 6:9] = 0.0           # the columns of node 2: its diagonal block is zero
    assert BlockTridiagonal(3, 5).solve(ab, 6, b.copy()) is None
    ab[6, 0] = np.nan          # a non-finite pivot is reported too
    assert BlockTridiagonal(3, 5).solve(ab, 6, b.copy()) is None
