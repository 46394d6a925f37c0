import math

import numpy as np
import pytest

from fastd3pg.physics import make
from fastd3pg.testing import transition_fd_errors


def _reference_step(q, a):
    """The swing-up cart-pole step written out from its definition (hardmaru's
    ``cartpole_swingup``) on the internal state ``(x, ẋ, θ, θ̇)``; returns the next internal
    state and the reward."""
    g, m_c, m_p, l, b, dt = 9.82, 0.5, 0.5, 0.6, 0.1, 0.01
    M = m_c + m_p
    F = 10.0 * min(max(a, -1.0), 1.0)
    x, x_dot, th, th_dot = q
    s, c = math.sin(th), math.cos(th)
    x_acc = (-2 * m_p * l * th_dot**2 * s + 3 * m_p * g * s * c + 4 * F - 4 * b * x_dot) / (
        4 * M - 3 * m_p * c**2
    )
    th_acc = (-3 * m_p * l * th_dot**2 * s * c + 6 * M * g * s + 6 * (F - b * x_dot) * c) / (
        4 * l * M - 3 * m_p * l * c**2
    )
    q = (x + x_dot * dt, x_dot + x_acc * dt, th + th_dot * dt, th_dot + th_acc * dt)
    reward = (math.cos(q[2]) + 1) / 2 * math.cos(q[0] / 2.4 * math.pi / 2)
    return q, reward


def _observe(q):
    return np.array([q[0], q[1], math.cos(q[2]), math.sin(q[2]), q[3]])


def _random_states(rng, count):
    th = rng.uniform(-np.pi, np.pi, count)
    radius = np.where(rng.random(count) < 0.3, rng.uniform(0.5, 2.0, count), 1.0)
    return np.column_stack([
        rng.uniform(-2.4, 2.4, count), rng.uniform(-5, 5, count),
        radius * np.cos(th), radius * np.sin(th), rng.uniform(-15, 15, count),
    ])


def test_rollout_follows_the_definition():
    env = make("CartPoleSwingUp")
    rng = np.random.default_rng(0)
    for episode in range(5):
        s, _ = env.reset(seed=episode)
        q = (s[0], s[1], math.atan2(s[3], s[2]), s[4])
        for _ in range(300):
            a = rng.uniform(-1.3, 1.3)
            q, ref_reward = _reference_step(q, a)
            s, reward, terminated, _, _ = env.step([a])
            np.testing.assert_allclose(s, _observe(q), rtol=1e-10, atol=1e-10)
            assert reward == pytest.approx(ref_reward, rel=1e-10, abs=1e-12)
            assert terminated == (abs(q[0]) > 2.4)
            if terminated:
                break


def test_step_follows_the_definition_at_random_states():
    env = make("CartPoleSwingUp")
    rng = np.random.default_rng(1)
    S = _random_states(rng, 1000)
    for s in S:
        a = rng.uniform(-1.5, 1.5)
        q, ref_reward = _reference_step((s[0], s[1], math.atan2(s[3], s[2]), s[4]), a)
        tr = env.transition(s, [a])
        np.testing.assert_allclose(tr.next_state, _observe(q), rtol=1e-10, atol=1e-10)
        assert tr.reward == pytest.approx(ref_reward, rel=1e-10, abs=1e-12)
        assert tr.terminated == (abs(q[0]) > 2.4)


def test_pole_starts_hanging_and_reward_peaks_upright_at_the_centre():
    env = make("CartPoleSwingUp")
    S = np.array([env.reset(seed=k)[0] for k in range(500)])
    theta = np.arctan2(S[:, 3], S[:, 2])
    down = np.abs(np.mod(theta, 2 * np.pi) - np.pi)
    assert np.mean(down) == pytest.approx(0.2 * np.sqrt(2 / np.pi), rel=0.15)  # E|N(0, 0.2²)|
    for col in (0, 1, 4):
        assert abs(S[:, col].mean()) < 0.03 and S[:, col].std() == pytest.approx(0.2, rel=0.15)
    tr = env.transition([0.0, 0.0, 1.0, 0.0, 0.0], [0.0])
    assert tr.reward == pytest.approx(env.max_reward, abs=1e-15)
    assert env.transition([0.0, 0.0, -1.0, 0.0, 0.0], [0.0]).reward == pytest.approx(0.0, abs=1e-6)


def test_jacobians_match_finite_differences():
    env = make("CartPoleSwingUp")
    rng = np.random.default_rng(2)
    S = _random_states(rng, 250)
    # Across the angle's branch cut at θ = ±π too: the next state does not depend on it.
    S[:20, 2:4] = [[-1.0, 1e-9], [-1.0, -1e-9]] * 10
    for s in S:
        a = rng.uniform(-0.99, 0.99, 1)
        errors = transition_fd_errors(env, s, a)
        assert max(errors.values()) < 1e-6, (s, a, errors)
