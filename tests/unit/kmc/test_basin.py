"""kmc.basin: exact exits from a group of sites against the group simulated hop by hop.

Statistical checks assert within 4 standard errors (binomial SE of a frequency, SE of a mean),
on 20 000 independent exits of random reversible trap-model groups.
"""
import numpy as np
import pytest
from scipy.linalg import expm

from kmc.basin import Basin, simulate_exit

KT = 0.025
N_SAMPLES = 20_000


def _se(p, n):
    """Binomial standard error of a frequency with probability p (round-off clipped)."""
    return np.sqrt(max(p * (1.0 - p), 0.0) / n)


def _group(rng, n, n_exit, exit_scale=0.3):
    """Random trap-model group: hop rate from site i is exp(E_i/kT) to every bonded site."""
    E = rng.normal(0.0, 0.06, n)
    bond = np.triu(rng.random((n, n)) < 0.7, 1)
    bond[np.arange(n - 1), np.arange(1, n)] = True          # connected: a chain plus extras
    bond = bond | bond.T
    out = np.exp(E / KT)
    K = bond * out[:, None]
    R = (rng.random((n, n_exit)) < 0.6) * out[:, None] * exit_scale
    R[-1, 0] = out[-1] * exit_scale                          # at least one exit
    return K, R, np.exp(-E / KT)


@pytest.fixture(params=[(2, 1, 1), (3, 2, 2), (5, 3, 3)], ids=["pair", "three", "five"])
def case(request):
    n, n_exit, seed = request.param
    rng = np.random.default_rng(100 + seed)
    K, R, w = _group(rng, n, n_exit)
    return Basin(K, R, w), K, R


def test_occupation_is_the_matrix_exponential(case):
    b, _, _ = case
    for start in range(b.n):
        p0 = np.eye(b.n)[start]
        for t in (0.0, 0.3 * b.mean_exit_time(p0), 3.0 * b.mean_exit_time(p0)):
            exact = p0 @ expm(b.Q * t)
            np.testing.assert_allclose(b.occupation(p0, t), exact, rtol=1e-10, atol=1e-14)


def test_exit_probabilities_and_mean_time_against_hop_by_hop(case, rng):
    b, K, R = case
    p0 = np.eye(b.n)[0]
    runs = [simulate_exit(K, R, 0, rng) for _ in range(N_SAMPLES)]
    t = np.array([x[0] for x in runs])
    a = np.array([x[2] for x in runs])
    p_exact = b.exit_probabilities(p0)
    assert p_exact.sum() == pytest.approx(1.0, abs=1e-12)
    for k, p in enumerate(p_exact):
        f = np.mean(a == k)
        assert abs(f - p) < 4.0 * _se(p, N_SAMPLES) + 1e-12, (k, f, p)
    se = t.std(ddof=1) / np.sqrt(t.size)
    assert abs(t.mean() - b.mean_exit_time(p0)) < 4.0 * se


def test_sampled_exits_follow_the_exact_joint_distribution(case, rng):
    """(time, last site, exit) from sample_exit: survival at the quartiles, joint (j, a)."""
    b, _, _ = case
    p0 = np.full(b.n, 1.0 / b.n)
    draws = [b.sample_exit(p0, *rng.random(3)) for _ in range(N_SAMPLES)]
    t = np.array([d[0] for d in draws])
    j = np.array([d[1] for d in draws])
    a = np.array([d[2] for d in draws])
    for q in (0.25, 0.5, 0.75):
        tq = float(np.quantile(t, q))
        s_exact = b.survival(p0, tq)
        f = np.mean(t > tq)
        assert abs(f - s_exact) < 4.0 * _se(s_exact, N_SAMPLES)
    visits = np.linalg.solve(-b.Q.T, p0)           # expected time on each site before the exit
    joint = visits[:, None] * b.R                    # probability of (last site j, exit a)
    assert joint.sum() == pytest.approx(1.0, abs=1e-12)
    for jj in range(b.n):
        for aa in range(b.R.shape[1]):
            p = joint[jj, aa]
            f = np.mean((j == jj) & (a == aa))
            assert abs(f - p) < 4.0 * _se(p, N_SAMPLES) + 1e-12, (jj, aa, f, p)


def test_site_at_a_time_given_no_exit(case, rng):
    """Where the ion is at time t when it has not left yet (the placement on invalidation)."""
    b, K, R = case
    Kd = np.array(K, float)
    np.fill_diagonal(Kd, 0.0)
    t_obs = 0.5 * b.mean_exit_time(np.eye(b.n)[0])
    found = []
    while len(found) < N_SAMPLES // 2:
        i, t = 0, 0.0
        while True:
            rates = np.concatenate((Kd[i], R[i]))
            dt = rng.exponential(1.0 / rates.sum())
            if t + dt > t_obs:
                found.append(i)
                break
            t += dt
            k = int(np.searchsorted(np.cumsum(rates), rng.random() * rates.sum(), side="right"))
            if k >= b.n:
                break
            i = k
    found = np.array(found)
    p_exact = b.conditional_site(np.eye(b.n)[0], t_obs)
    for k, p in enumerate(p_exact):
        f = np.mean(found == k)
        assert abs(f - p) < 4.0 * _se(p, found.size) + 1e-12, (k, f, p)


def test_bad_groups_are_refused():
    w = np.array([1.0, 2.0])
    with pytest.raises(ValueError, match="not reversible"):
        Basin([[0, 1.0], [1.0, 0]], [[0.1], [0.1]], w)
    with pytest.raises(ValueError, match="at least one exit"):
        Basin([[0, 2.0], [1.0, 0]], [[0.0], [0.0]], w)
    with pytest.raises(ValueError, match="cannot reach an exit"):
        Basin(np.zeros((3, 3)), [[1.0], [0.0], [0.0]], np.ones(3))
