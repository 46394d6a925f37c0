import numpy as np
import pytest

from fastd3pg.physics import make
from fastd3pg.testing import central_difference, relative_error, transition_fd_errors


def _gym_env():
    gym = pytest.importorskip("gymnasium")
    return gym.make("Pendulum-v1").unwrapped


def _gym_step(genv, a):
    """Gym's float64 step under torque ``2 a`` (Gym clips it to ±2); its next state as our
    state vector, its reward."""
    _, reward, _, _, _ = genv.step(np.array([2.0 * a], dtype=np.float64))
    th, thdot = genv.state
    return np.array([np.cos(th), np.sin(th), thdot]), reward


def _random_internal_states(rng, count):
    """(θ, θ̇) over several turns (Gym never wraps θ), with speeds at and beyond the clip."""
    th = rng.uniform(-3 * np.pi, 3 * np.pi, count)
    thdot = rng.uniform(-8, 8, count)
    near = rng.random(count) < 0.4
    thdot[near] = rng.choice([-1, 1], near.sum()) * (8 - rng.uniform(0, 1, near.sum()))
    return th, thdot


def _raw_speed(th, thdot, a):
    return thdot + (15.0 * np.sin(th) + 3.0 * 2.0 * np.clip(a, -1, 1)) * 0.05


def test_step_and_reward_match_gymnasium_at_random_states_and_actions():
    genv = _gym_env()
    env = make("Pendulum")
    rng = np.random.default_rng(0)
    th, thdot = _random_internal_states(rng, 1500)
    A = rng.uniform(-1.5, 1.5, 1500)
    clipped = 0
    for t, td, a in zip(th, thdot, A):
        genv.state = np.array([t, td])
        gym_next, gym_reward = _gym_step(genv, a)
        tr = env.transition([np.cos(t), np.sin(t), td], [a])
        np.testing.assert_allclose(tr.next_state, gym_next, rtol=1e-10, atol=1e-10)
        assert tr.reward == pytest.approx(gym_reward, rel=1e-10, abs=1e-10)
        assert not tr.terminated
        clipped += abs(_raw_speed(t, td, a)) > 8
    assert clipped > 100  # the speed clip is exercised


def test_rollout_from_gymnasium_reset_stays_equal():
    genv = _gym_env()
    env = make("Pendulum")
    genv.reset(seed=7)
    th, thdot = genv.state
    env.reset(seed=0)
    env.set_state([np.cos(th), np.sin(th), thdot])
    rng = np.random.default_rng(7)
    for _ in range(200):
        a = rng.uniform(-1, 1)
        gym_next, gym_reward = _gym_step(genv, a)
        s, reward, terminated, _, _ = env.step([a])
        np.testing.assert_allclose(s, gym_next, rtol=1e-10, atol=1e-10)
        assert reward == pytest.approx(gym_reward, rel=1e-10, abs=1e-10)
        assert not terminated


def test_start_state_is_gymnasiums_distribution():
    env = make("Pendulum")
    S = np.array([env.reset(seed=k)[0] for k in range(400)])
    np.testing.assert_allclose(S[:, 0] ** 2 + S[:, 1] ** 2, 1.0, atol=1e-15)
    assert np.all(np.abs(S[:, 2]) <= 1) and S[:, 2].min() < -0.9 and S[:, 2].max() > 0.9
    assert S[:, 0].min() < -0.99 and S[:, 0].max() > 0.99  # θ covers the whole circle


def test_jacobians_match_finite_differences():
    env = make("Pendulum")
    rng = np.random.default_rng(1)
    th, thdot = _random_internal_states(rng, 400)
    checked = clipped = 0
    eps = 1e-6
    for t, td in zip(th, thdot):
        a = rng.uniform(-0.99, 0.99, 1)
        theta = np.arctan2(np.sin(t), np.cos(t))
        raw = _raw_speed(theta, td, a[0])
        # Skip the reward's kink at θ = ±π and the speed clip's corner, within an FD step.
        if np.pi - abs(theta) < 10 * eps or abs(abs(raw) - 8) < 10 * eps:
            continue
        # Off the unit circle too: the state's (cos, sin) entries are read through atan2.
        scale = rng.uniform(0.5, 2.0)
        s = np.array([scale * np.cos(t), scale * np.sin(t), td])
        errors = transition_fd_errors(env, s, a, eps)
        # dr/da = -0.008 a is small beside the reward (up to ~16), whose rounding a central
        # difference with a 1e-6 step divides by 1e-6; the reward is quadratic in a, so a
        # larger step is exact but for rounding.
        tr = env.transition(s, a)
        ra = lambda x: env.transition(s, x).reward  # noqa: E731
        errors["dr_da"] = relative_error(tr.dr_da, central_difference(ra, a, 1e-3))
        assert max(errors.values()) < 1e-6, (s, a, errors)
        checked += 1
        clipped += abs(raw) > 8
    assert checked >= 300 and clipped >= 30


def test_clipped_speed_has_zero_derivative_and_reward_gradient_points_up():
    env = make("Pendulum")
    tr = env.transition([np.cos(1.0), np.sin(1.0), 7.9], [1.0 - 1e-9])  # θ̇' clipped at 8
    assert tr.next_state[2] == 8.0
    np.testing.assert_array_equal(tr.J_s[2], 0.0)
    assert tr.J_a[2, 0] == 0.0
    # Near hanging down, on either side of θ = ±π, the reward's gradient in θ points upward.
    for t in (np.pi - 0.01, -np.pi + 0.01):
        tr = env.transition([np.cos(t), np.sin(t), 0.0], [0.0])
        dr_dtheta = tr.dr_ds[0] * -np.sin(t) + tr.dr_ds[1] * np.cos(t)
        assert np.sign(dr_dtheta) == -np.sign(t)
        assert abs(dr_dtheta) == pytest.approx(2 * (np.pi - 0.01))
