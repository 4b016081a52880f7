"""The one Bernoulli function of both NPP solvers: values, derivative, symmetry, ufunc form."""
import numpy as np

from continuum.scharfetter_gummel import (bernoulli, bernoulli_and_derivative,
                                          bernoulli_derivative)

_bernoulli = bernoulli_and_derivative


def test_bernoulli_values_and_derivative():
    for t in [-800.0, -30.0, -1.0, -1.001e-3, -0.999e-3, 0.0, 1e-8, 0.999e-3, 1.001e-3, 2.0,
              50.0, 800.0]:
        b, db = _bernoulli(t)
        if t == 0:
            exact = 1.0
        elif t > 0:  # t e^-t / (1 - e^-t): no overflow
            exact = t * np.exp(-t) / -np.expm1(-t)
        else:
            exact = t / np.expm1(t)
        assert abs(b - exact) <= 1e-14 * max(1.0, abs(exact))
        e = 1e-6 * max(1.0, abs(t))
        fd = (_bernoulli(t + e)[0] - _bernoulli(t - e)[0]) / (2 * e)
        assert abs(db - fd) <= 1e-7 * max(1.0, abs(db)) + 1e-300
    # B(t) - B(-t) = -t exactly (drift limit of the SG flux)
    for t in [1e-5, 0.3, 7.0, 300.0]:
        assert abs(_bernoulli(t)[0] - _bernoulli(-t)[0] + t) < 1e-12 * max(1, t)


def test_bernoulli_values_and_symmetry():
    s = np.array([-700.0, -5.0, -1e-9, 0.0, 1e-9, 5.0, 700.0])
    b = bernoulli(s)
    np.testing.assert_allclose(b[[1, 5]], [-5.0 / np.expm1(-5.0), 5.0 / np.expm1(5.0)],
                               rtol=1e-14)
    assert b[3] == 1.0
    np.testing.assert_allclose(bernoulli(-s) - bernoulli(s), s, rtol=1e-13, atol=1e-15)


def test_ufuncs_equal_the_scalar_kernel():
    t = np.array([-700.0, -3.0, -1e-4, 0.0, 2e-3, 40.0, 700.0])
    pairs = np.array([_bernoulli(v) for v in t])
    np.testing.assert_array_equal(bernoulli(t), pairs[:, 0])
    np.testing.assert_array_equal(bernoulli_derivative(t), pairs[:, 1])


def test_pair_equals_two_evaluations():
    """bernoulli_pair (one exponential, used by the full solver's kernel) against the two
    direct evaluations: relative 1e-13, also far out where one of the two is tiny."""
    from continuum.scharfetter_gummel import bernoulli_pair

    for t in [-700.0, -40.0, -3.0, -1.001e-3, -1e-4, 0.0, 1e-9, 5e-4, 2e-3, 0.7, 40.0, 700.0]:
        got = bernoulli_pair(t)
        want = (*_bernoulli(t), *_bernoulli(-t))
        for g, w in zip(got, want):
            assert abs(g - w) <= 1e-13 * max(abs(w), 1e-300) + 1e-300, (t, got, want)
