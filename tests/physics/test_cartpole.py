import math

import numpy as np
import pytest

from fastd3pg.physics import make
from fastd3pg.testing import transition_fd_errors

THETA_MAX = 12 * 2 * math.pi / 360


def _gym_env():
    gym = pytest.importorskip("gymnasium")
    return gym.make("CartPole-v1").unwrapped


def _gym_step(genv, action):
    """Gym's float64 step under the continuous force ``10 · clip(a)``: Gym applies
    ``+force_mag`` for its action 1."""
    genv.force_mag = 10.0 * float(np.clip(action, -1.0, 1.0))
    genv.steps_beyond_terminated = None  # stepping on after termination is deliberate here
    _, _, terminated, _, _ = genv.step(1)
    return np.array(genv.state, dtype=np.float64), terminated


def _random_states(rng, count):
    """Typical states, plus states at the termination limits and large velocities."""
    S = np.column_stack([
        rng.uniform(-2.4, 2.4, count), rng.uniform(-3, 3, count),
        rng.uniform(-THETA_MAX, THETA_MAX, count), rng.uniform(-4, 4, count),
    ])
    near = rng.random(count) < 0.4
    S[near, 0] = rng.choice([-1, 1], near.sum()) * (2.4 + rng.uniform(-0.03, 0.03, near.sum()))
    near = rng.random(count) < 0.4
    S[near, 2] = rng.choice([-1, 1], near.sum()) * (
        THETA_MAX + rng.uniform(-0.05, 0.05, near.sum())
    )
    wild = rng.random(count) < 0.1
    S[wild, 2] = rng.uniform(-np.pi, np.pi, wild.sum())
    S[wild, 3] = rng.uniform(-20, 20, wild.sum())
    return S


def test_step_matches_gymnasium_at_random_states_and_actions():
    genv = _gym_env()
    env = make("CartPole")
    rng = np.random.default_rng(0)
    S = _random_states(rng, 1500)
    A = rng.uniform(-1.5, 1.5, (1500, 1))
    terminated_count = 0
    for s, a in zip(S, A):
        genv.state = s.copy()
        gym_next, gym_terminated = _gym_step(genv, a[0])
        tr = env.transition(s, a)
        np.testing.assert_allclose(tr.next_state, gym_next, rtol=1e-10, atol=1e-10)
        assert tr.terminated == gym_terminated
        terminated_count += gym_terminated
    assert 200 < terminated_count < 1300  # both outcomes well represented


def test_rollout_from_gymnasium_reset_stays_equal():
    genv = _gym_env()
    env = make("CartPole")
    genv.reset(seed=5)
    s = np.array(genv.state, dtype=np.float64)
    env.reset(seed=0)
    env.set_state(s)
    rng = np.random.default_rng(5)
    for _ in range(200):
        a = rng.uniform(-1, 1, 1)
        gym_next, gym_terminated = _gym_step(genv, a[0])
        s, _, terminated, _, _ = env.step(a)
        np.testing.assert_allclose(s, gym_next, rtol=1e-10, atol=1e-10)
        assert terminated == gym_terminated


def test_reward_is_smooth_and_largest_upright_at_the_centre():
    env = make("CartPole")
    tr = env.transition([0.0, 0.0, 0.0, 0.0], [0.0])
    assert tr.reward == pytest.approx(env.max_reward, abs=1e-15)
    # By construction 1/2 at the angle limit with the cart centred, and at the track's end
    # with the pole upright.
    s_theta = env.transition([0.0, 0.0, THETA_MAX, 0.0], [0.0]).next_state
    r_theta = env.transition([0.0, 0.0, THETA_MAX, 0.0], [0.0]).reward
    assert r_theta == pytest.approx(
        1 - 0.5 * (1 - np.cos(s_theta[2])) / (1 - np.cos(THETA_MAX)) - 0.5 * (s_theta[0] / 2.4) ** 2
    )
    assert 0.49 < r_theta < 0.51
    rng = np.random.default_rng(3)
    for s in _random_states(rng, 300):
        tr = env.transition(s, rng.uniform(-1, 1, 1))
        assert tr.reward <= env.max_reward
        if not tr.terminated:
            assert tr.reward >= 0.0  # staying alive never costs: ending early never pays


def test_start_state_is_gymnasiums_distribution():
    env = make("CartPole")
    S = np.array([env.reset(seed=k)[0] for k in range(300)])
    assert np.all(np.abs(S) <= 0.05)
    assert np.all(S.min(axis=0) < -0.04) and np.all(S.max(axis=0) > 0.04)


def test_jacobians_match_finite_differences():
    env = make("CartPole")
    rng = np.random.default_rng(1)
    S = _random_states(rng, 250)
    for s in S:
        a = rng.uniform(-0.99, 0.99, 1)
        errors = transition_fd_errors(env, s, a)
        assert max(errors.values()) < 1e-6, (s, a, errors)
