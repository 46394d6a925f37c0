"""The vectorizable tanh and elu against extended precision, and their special values."""

import numba
import numpy as np
import pytest

from fastd3pg.nn import vmath

EXTENDED = np.finfo(np.longdouble).precision > np.finfo(np.float64).precision
needs_extended = pytest.mark.skipif(not EXTENDED, reason="the reference needs an extended-precision "
                                                         "long double")


def elementwise(fn):
    """A compiled loop of ``fn`` over a 1-D array, as the network kernels call it."""

    @numba.njit
    def apply(x):
        y = np.empty_like(x)
        for k in range(x.shape[0]):
            y[k] = fn(x[k])
        return y

    return apply


apply_tanh = elementwise(vmath.tanh)
apply_elu = elementwise(vmath.elu)


def sample(rng, n):
    """Magnitudes from 1e-300 to 30, denser where the formulas change: tanh's switch at 0.625,
    the reduced argument's first steps (k = 0, ±1 near ln 2 / 2) and tanh's saturation near 19."""
    x = np.concatenate([rng.uniform(0.0, 0.7, n), rng.uniform(0.3, 3.0, n), rng.uniform(3.0, 22.0, n),
                        10.0 ** rng.uniform(-300.0, 1.5, n),
                        np.nextafter(0.625, np.array([0.0, 1.0])), [0.625, 19.0, 19.1, 40.0, 1e300]])
    return np.concatenate([x, -x])


def ulp_errors(y, exact):
    return np.abs((y - exact) / np.spacing(np.abs(exact.astype(np.float64)))).astype(np.float64)


@needs_extended
def test_tanh_is_within_two_ulp_of_the_exact_value():
    x = sample(np.random.default_rng(0), 250_000)
    # 2 ulp: one rounded division of rounded polynomials (1.46 ulp measured at 6e7 points).
    err = ulp_errors(apply_tanh(x), np.tanh(x.astype(np.longdouble)))
    assert err.max() <= 2.0, (x[err.argmax()], err.max())


@needs_extended
def test_elu_is_within_two_ulp_of_the_exact_value():
    x = sample(np.random.default_rng(1), 250_000)
    exact = np.where(x > 0, x.astype(np.longdouble), np.expm1(np.minimum(x, 0).astype(np.longdouble)))
    # 2 ulp: a Taylor sum, then one rounded scaling and add (1.17 ulp measured at 3e7 points).
    err = ulp_errors(apply_elu(x), exact)
    assert err.max() <= 2.0, (x[err.argmax()], err.max())


def test_tanh_and_elu_are_close_to_the_c_librarys():
    x = sample(np.random.default_rng(2), 100_000)
    # 2 ulp from the exact value (above) and the C library's 1 at most.
    tol = 3.0 * np.spacing(np.abs(np.tanh(x)))
    np.testing.assert_array_less(np.abs(apply_tanh(x) - np.tanh(x)), tol)
    neg = np.minimum(x, 0.0)
    np.testing.assert_array_less(np.abs(apply_elu(neg) - np.expm1(neg)),
                                 3.0 * np.spacing(np.abs(np.expm1(neg))))
    np.testing.assert_array_equal(apply_elu(np.abs(x)), np.abs(x))


def test_tanh_is_odd_to_the_bit():
    x = sample(np.random.default_rng(3), 50_000)
    np.testing.assert_array_equal(apply_tanh(-x), -apply_tanh(x))


@pytest.mark.parametrize("fn, ref", [(apply_tanh, np.tanh),
                                     (apply_elu, lambda v: np.where(v > 0, v, np.expm1(v)))])
def test_special_values_come_out_as_from_numpy(fn, ref):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 1e-310, -1e-310, 20.0, -20.0, 40.0,
                  -40.0, -60.0, -800.0, 1e308, -1e308])
    with np.errstate(over="ignore"):
        expected = ref(x)
    y = fn(x)
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(np.signbit(y), np.signbit(expected))
