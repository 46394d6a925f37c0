import numpy as np
import pytest

from fastd3pg.physics import make
from fastd3pg.testing import transition_fd_errors

MAX_VEL = np.array([4 * np.pi, 9 * np.pi])


def _gym_env():
    gym = pytest.importorskip("gymnasium")
    return gym.make("Acrobot-v1").unwrapped


def _observation(internal):
    th1, th2, dth1, dth2 = internal
    return np.array([np.cos(th1), np.sin(th1), np.cos(th2), np.sin(th2), dth1, dth2])


def _gym_step(genv, a):
    """Gym's float64 step under its discrete action ``a + 1``; its next state as our state
    vector, its reward and termination."""
    _, reward, terminated, _, _ = genv.step(int(a) + 1)
    return _observation(genv.state), reward, terminated


def _random_internal_states(rng, count):
    """(θ1, θ2, θ̇1, θ̇2) over the whole state space, 40% of them with a velocity within 0.5 of
    its bound (so that the next velocity is often clipped)."""
    th = rng.uniform(-np.pi, np.pi, (count, 2))
    vel = rng.uniform(-1, 1, (count, 2)) * MAX_VEL
    near = rng.random(count) < 0.4
    which = rng.integers(0, 2, near.sum())
    rows = np.flatnonzero(near)
    sign = rng.choice([-1, 1], near.sum())
    vel[rows, which] = sign * (MAX_VEL[which] - rng.uniform(0, 0.5, near.sum()))
    return np.column_stack([th, vel])


def test_step_matches_gymnasium_at_random_states_and_actions():
    genv = _gym_env()
    env = make("Acrobot")
    rng = np.random.default_rng(0)
    X = _random_internal_states(rng, 1200)
    A = rng.integers(-1, 2, 1200)
    clipped = terminated = 0
    for x, a in zip(X, A):
        genv.state = x.copy()
        gym_next, gym_reward, gym_terminated = _gym_step(genv, a)
        tr = env.transition(_observation(x), [float(a)])
        np.testing.assert_allclose(tr.next_state, gym_next, rtol=1e-10, atol=1e-10)
        assert tr.terminated == gym_terminated
        assert tr.reward == gym_reward
        clipped += np.any(np.abs(tr.next_state[4:]) == MAX_VEL)
        terminated += tr.terminated
    assert clipped > 100 and terminated > 100  # both the bound and the goal are exercised


def test_rollout_from_gymnasium_reset_stays_equal():
    genv = _gym_env()
    env = make("Acrobot")
    genv.reset(seed=3)
    env.reset(seed=0)
    env.set_state(_observation(genv.state.astype(np.float64)))
    rng = np.random.default_rng(3)
    for _ in range(200):
        a = rng.integers(-1, 2)
        gym_next, gym_reward, gym_terminated = _gym_step(genv, a)
        s, reward, terminated, _, _ = env.step([float(a)])
        np.testing.assert_allclose(s, gym_next, rtol=1e-10, atol=1e-10)
        assert reward == gym_reward and terminated == gym_terminated
        if terminated:
            break


def test_start_state_is_gymnasiums_distribution():
    env = make("Acrobot")
    S = np.array([env.reset(seed=k)[0] for k in range(300)])
    internal = np.column_stack([np.arctan2(S[:, 1], S[:, 0]), np.arctan2(S[:, 3], S[:, 2]),
                                S[:, 4], S[:, 5]])
    assert np.all(np.abs(internal) <= 0.1)
    assert np.all(internal.min(axis=0) < -0.09) and np.all(internal.max(axis=0) > 0.09)


def test_jacobians_match_finite_differences():
    env = make("Acrobot")
    unbounded = make("Acrobot", max_vel_1=1e6, max_vel_2=1e6)
    rng = np.random.default_rng(1)
    X = _random_internal_states(rng, 300)
    checked = clipped = 0
    eps = 1e-6
    for x in X:
        a = rng.uniform(-0.99, 0.99, 1)
        # Off the unit circle too: the angles are read through atan2.
        s = _observation(x)
        s[:4] *= np.repeat(rng.uniform(0.5, 2.0, 2), 2)
        raw = unbounded.transition(s, a).next_state[4:]
        # Skip a velocity bound within a finite-difference step (|J| ≲ 100 here).
        if np.any(np.abs(np.abs(raw) - MAX_VEL) < 1e-3):
            continue
        errors = transition_fd_errors(env, s, a, eps)
        assert max(errors.values()) < 1e-6, (s, a, errors)
        tr = env.transition(s, a)
        assert np.all(tr.dr_ds == 0.0) and np.all(tr.dr_da == 0.0)
        at_bound = np.abs(raw) > MAX_VEL
        np.testing.assert_array_equal(tr.J_s[4:][at_bound], 0.0)
        checked += 1
        clipped += at_bound.any()
    assert checked >= 250 and clipped >= 30


def test_reward_is_minus_one_until_the_goal():
    env = make("Acrobot")
    assert env.max_reward == 0.0 and not env.differentiable_reward and env.horizon == 500
    hanging = env.transition(_observation([0.0, 0.0, 0.0, 0.0]), [0.0])
    assert hanging.reward == -1.0 and not hanging.terminated
    upright = env.transition(_observation([np.pi, 0.0, 0.0, 0.0]), [0.0])
    assert upright.reward == 0.0 and upright.terminated
