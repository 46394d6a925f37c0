import math

import numpy as np
import pytest

from fastd3pg.physics import make
from fastd3pg.testing import transition_fd_errors


class _Float64Numpy:
    """NumPy, except that ``array(..., dtype=float32)`` stays float64.

    Gym's ``MountainCarContinuous-v0`` computes its step in float64 and then stores the state
    as float32; swapping this in for the module's ``np`` removes that final cast only, so the
    test compares against Gym's own float64 arithmetic step after step."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def array(obj, dtype=None, **kwargs):
        return np.array(obj, dtype=np.float64 if dtype is np.float32 else dtype, **kwargs)


@pytest.fixture
def gym_env(monkeypatch):
    pytest.importorskip("gymnasium")
    import gymnasium
    from gymnasium.envs.classic_control import continuous_mountain_car

    genv = gymnasium.make("MountainCarContinuous-v0").unwrapped
    monkeypatch.setattr(continuous_mountain_car, "np", _Float64Numpy())
    return genv


def _gym_step(genv, a):
    _, _, terminated, _, _ = genv.step(np.array([a], dtype=np.float64))
    assert genv.state.dtype == np.float64
    return np.array(genv.state), terminated


def _random_states(rng, count):
    """Typical states, plus positions and speeds at and beyond their clips, at the left wall
    and around the goal."""
    S = np.column_stack([rng.uniform(-1.2, 0.6, count), rng.uniform(-0.07, 0.07, count)])
    k = rng.integers(0, 5, count)
    n = (k == 1).sum()
    S[k == 1, 1] = rng.choice([-1, 1], n) * (0.07 - rng.uniform(0, 0.004, n))  # speed clip
    n = (k == 2).sum()
    S[k == 2] = np.column_stack([-1.2 + rng.uniform(0, 0.05, n), rng.uniform(-0.07, 0.01, n)])
    n = (k == 3).sum()
    S[k == 3] = np.column_stack([0.6 - rng.uniform(0, 0.08, n), rng.uniform(-0.02, 0.07, n)])
    n = (k == 4).sum()
    S[k == 4] = np.column_stack([0.45 + rng.uniform(-0.05, 0.05, n), rng.uniform(-0.01, 0.01, n)])
    return S


def _clip_margins(s, a):
    """Distances of the step's clipped quantities from their clip points: ``(v₁, x + v₂)``."""
    v1 = s[1] + (np.clip(a, -1, 1) * 0.0015 - 0.0025 * math.cos(3 * s[0]))
    v2 = np.clip(v1, -0.07, 0.07)
    x1 = s[0] + v2
    return min(abs(v1 - 0.07), abs(v1 + 0.07)), min(abs(x1 + 1.2), abs(x1 - 0.6))


def test_step_matches_gymnasium_at_random_states_and_actions(gym_env):
    env = make("MountainCar")
    rng = np.random.default_rng(0)
    S = _random_states(rng, 2000)
    A = rng.uniform(-1.5, 1.5, 2000)
    wall = goal = 0
    for s, a in zip(S, A):
        gym_env.state = s.copy()
        gym_next, gym_terminated = _gym_step(gym_env, a)
        tr = env.transition(s, [a])
        np.testing.assert_allclose(tr.next_state, gym_next, rtol=1e-10, atol=1e-12)
        assert tr.terminated == gym_terminated
        wall += gym_next[0] == -1.2
        goal += gym_terminated
    assert wall > 50 and goal > 50  # the wall's reset and the goal are exercised


def test_rollout_from_gymnasium_reset_stays_equal(gym_env):
    env = make("MountainCar")
    s, _ = gym_env.reset(seed=3)
    env.reset(seed=0)
    env.set_state(gym_env.state)
    rng = np.random.default_rng(3)
    for t in range(200):
        a = rng.uniform(-1, 1) + (1.0 if (t // 40) % 2 else -1.0)  # pump, clipped often
        gym_next, gym_terminated = _gym_step(gym_env, a)
        s, _, terminated, _, _ = env.step([a])
        np.testing.assert_allclose(s, gym_next, rtol=1e-10, atol=1e-12)
        assert terminated == gym_terminated


def test_step_matches_gymnasiums_float32_state_to_float32_rounding():
    gym = pytest.importorskip("gymnasium")
    genv = gym.make("MountainCarContinuous-v0").unwrapped
    env = make("MountainCar")
    genv.reset(seed=4)
    rng = np.random.default_rng(4)
    for _ in range(200):
        s = genv.state.astype(np.float64)
        a = rng.uniform(-1, 1)
        genv.step(np.array([a]))
        next_state = env.transition(s, [a]).next_state
        np.testing.assert_allclose(next_state, genv.state, rtol=1e-6, atol=1e-8)


def test_reward_is_the_height_cost_and_the_goal_ends_the_episode():
    env = make("MountainCar")
    rng = np.random.default_rng(5)
    for s in _random_states(rng, 300):
        a = rng.uniform(-1.5, 1.5)
        tr = env.transition(s, [a])
        u = min(max(a, -1.0), 1.0)
        x = tr.next_state[0]
        assert tr.reward == pytest.approx(0.5 * (math.sin(3 * x) + 1) - 1 - 0.1 * u * u, abs=1e-14)
        assert tr.reward <= env.max_reward
        assert tr.terminated == (x >= 0.45 and tr.next_state[1] >= 0)
    assert env.transition([-np.pi / 6, 0.0], [0.0]).reward < -0.99  # the valley floor
    assert env.transition([np.pi / 6, 0.0], [0.0]).reward > -1e-4  # the crest


def test_start_state_is_gymnasiums_distribution():
    env = make("MountainCar")
    S = np.array([env.reset(seed=k)[0] for k in range(300)])
    assert np.all((S[:, 0] >= -0.6) & (S[:, 0] <= -0.4)) and np.all(S[:, 1] == 0.0)
    assert S[:, 0].min() < -0.59 and S[:, 0].max() > -0.41


def test_jacobians_match_finite_differences():
    env = make("MountainCar")
    rng = np.random.default_rng(6)
    S = _random_states(rng, 600)
    eps = 1e-6
    checked = clipped = 0
    for s in S:
        a = rng.uniform(-0.99, 0.99, 1)
        dv, dx = _clip_margins(s, a[0])
        if dv < 3 * eps or dx < 3 * eps:  # within an FD step of a clip point
            continue
        errors = transition_fd_errors(env, s, a, eps)
        assert max(errors.values()) < 1e-6, (s, a, errors)
        tr = env.transition(s, a)
        clipped += tr.J_s[0, 0] == 0.0 or tr.J_s[1, 1] == 0.0
        checked += 1
    assert checked >= 500 and clipped >= 50  # clipped quantities (zero derivative) included
