"""Adam and Polyak averaging against their closed forms."""

import numpy as np
import pytest

from fastd3pg.nn import Adam, adam_step, polyak


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


def test_adam_shell_keeps_its_state_and_matches_the_kernel():
    rng = np.random.default_rng(3)
    opt = Adam(5, lr=1e-2, beta1=0.8, beta2=0.9, eps=1e-6)
    params, ref = rng.standard_normal(5), None
    ref = params.copy()
    m, v = np.zeros(5), np.zeros(5)
    for t in range(1, 4):
        g = rng.standard_normal(5)
        opt.step(params, g)
        adam_step(ref, g, m, v, t, 1e-2, 0.8, 0.9, 1e-6)
    assert opt.t == 3
    np.testing.assert_array_equal(params, ref)


def test_adam_shell_rejects_bad_input():
    opt = Adam(3)
    with pytest.raises(ValueError, match=r"grad must have shape \(3,\)"):
        opt.step(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="params must be a contiguous float64"):
        opt.step(np.zeros(4), np.zeros(3))
    with pytest.raises(ValueError, match="params"):
        opt.step([0.0, 0.0, 0.0], np.zeros(3))
    with pytest.raises(ValueError, match="beta1"):
        Adam(3, beta1=1.0)
    with pytest.raises(ValueError, match="num_params"):
        Adam(0)
