"""Adam and Polyak averaging against their closed forms."""

import numpy as np
import pytest

from fastd3pg.nn import adam_step, polyak


def test_adam_matches_closed_form_for_a_constant_gradient():
    # With m = v = 0 at t = 0 and a constant gradient g: m_t = (1 - β1ᵗ) g, v_t = (1 - β2ᵗ) g²,
    # so step t moves by lr g / (|g| + eps / √(1 - β2ᵗ)).
    lr, b1, b2, eps = 1e-2, 0.9, 0.999, 1e-3
    g = np.array([0.5, -2.0, 1e-4, 0.0])
    theta0 = np.array([1.0, 2.0, 3.0, 4.0])
    theta, m, v = theta0.copy(), np.zeros(4), np.zeros(4)
    expected = theta0.copy()
    for t in range(1, 6):
        adam_step(theta, g, m, v, t, lr, b1, b2, eps)
        expected -= lr * g / (np.abs(g) + eps / np.sqrt(1 - b2**t))
        np.testing.assert_allclose(theta, expected, rtol=1e-14, atol=1e-16)
        np.testing.assert_allclose(m, (1 - b1**t) * g, rtol=1e-14)
        np.testing.assert_allclose(v, (1 - b2**t) * g * g, rtol=1e-12)


def test_adam_matches_its_recurrence_for_changing_gradients():
    rng = np.random.default_rng(0)
    lr, b1, b2, eps = 1e-3, 0.8, 0.99, 1e-8
    theta, m, v = rng.standard_normal(7), np.zeros(7), np.zeros(7)
    ref_theta, ref_m, ref_v = theta.copy(), m.copy(), v.copy()
    for t in range(1, 8):
        g = rng.standard_normal(7)
        adam_step(theta, g, m, v, t, lr, b1, b2, eps)
        ref_m = b1 * ref_m + (1 - b1) * g
        ref_v = b2 * ref_v + (1 - b2) * g * g
        m_hat, v_hat = ref_m / (1 - b1**t), ref_v / (1 - b2**t)
        # Baselines' form: eps outside the root of the *uncorrected* v.
        ref_theta -= lr * m_hat / (np.sqrt(v_hat) + eps / np.sqrt(1 - b2**t))
        np.testing.assert_allclose(theta, ref_theta, rtol=1e-13)


def test_polyak_matches_geometric_closed_form():
    target, source = np.array([1.0, -3.0, 0.5]), np.array([0.0, 2.0, 0.5])
    t0 = target.copy()
    for k in range(1, 6):
        polyak(target, source, 0.1)
        np.testing.assert_allclose(target, source + 0.9**k * (t0 - source), rtol=1e-14)


@pytest.mark.parametrize("tau, expect", [(0.0, "target"), (1.0, "source")])
def test_polyak_extremes(tau, expect):
    target, source = np.array([1.0, 2.0]), np.array([5.0, 6.0])
    ref = {"target": target.copy(), "source": source.copy()}[expect]
    polyak(target, source, tau)
    np.testing.assert_array_equal(target, ref)
