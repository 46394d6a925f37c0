"""GD through the simulator: the episode-return gradient against central finite differences,
step accounting, the plateau rule and the refusal of non-differentiable rewards."""

import dataclasses

import numpy as np
import pytest

from fastd3pg import train
from fastd3pg.control import metrics
from fastd3pg.control.d3pg import D3PGAgent, D3PGConfig
from fastd3pg.control.gd import GDAgent, GDConfig
from fastd3pg.physics import make, names
from fastd3pg.testing import central_difference, relative_error

DIFFERENTIABLE = [t for t in names() if make(t).differentiable_reward]
HORIZON = 12


def short_agent(task, seed=0, **overrides):
    env = make(task)
    env.horizon = HORIZON  # a short episode, so that finite differences stay accurate
    cfg = dataclasses.replace(GDConfig(hidden=(8, 6), activation="tanh", out_init=0.5,
                                       gamma=0.95, norm_steps=50), **overrides)
    cfg.validate()
    return env, GDAgent(env, cfg, seed)


@pytest.mark.parametrize("task", DIFFERENTIABLE)
def test_episode_return_gradient_matches_finite_differences(task):
    env, agent = short_agent(task)
    rng = np.random.default_rng(1)
    theta = agent.nets.theta + rng.normal(0, 0.3, agent.nets.theta.shape)
    for k in range(2):
        s0, _ = env.reset(seed=k)
        R, grad = agent.episode_gradient(s0, theta)
        fd = central_difference(lambda th: agent.episode_gradient(s0, th)[0], theta)
        assert relative_error(grad, fd) < 1e-6, task
        # The adjoint's λ_0 is dR/ds_0 (through the normalizer and every later action).
        agent.episode_gradient(s0, theta)
        lam0 = agent.work.lam.copy()
        fd_s = central_difference(lambda s: agent.episode_gradient(s, theta)[0], s0)
        assert relative_error(lam0, fd_s) < 1e-6, task


def test_gradient_of_the_undiscounted_return_without_normalization():
    env, agent = short_agent(DIFFERENTIABLE[-1], gamma=1.0, normalize_obs=False)
    s0, _ = env.reset(seed=3)
    theta = agent.nets.theta.copy()
    R, grad = agent.episode_gradient(s0, theta)
    states, total = [s0], 0.0
    env.reset(seed=3)
    policy = train.Policy(agent.policy_arrays())
    for _ in range(HORIZON):  # the return by the public env and the NumPy policy
        s, r, term, trunc, _ = env.step(policy(states[-1]))
        states.append(s)
        total += r
        if term or trunc:
            break
    assert R == pytest.approx(total, rel=1e-12, abs=1e-12)
    fd = central_difference(lambda th: agent.episode_gradient(s0, th)[0], theta)
    assert relative_error(grad, fd) < 1e-6


def test_timesteps_count_simulated_steps():
    env, agent = short_agent("MassPoint", norm_steps=30, episodes_per_update=2)
    assert agent.timesteps == 30  # the normalizer's random steps are simulated steps
    agent.train(100)
    # Whole updates of 2 episodes of 12 steps until the budget of 100 is reached.
    assert agent.timesteps == 30 + 3 * 24
    agent.train(100)
    assert agent.stats.budget[0] == 200
    assert 200 <= agent.timesteps < 200 + 24


def test_starts_from_the_same_actor_as_d3pg():
    env = make("MassPoint")
    gd, d3 = GDAgent(env, GDConfig(), 7), D3PGAgent(env, D3PGConfig(), 7)
    np.testing.assert_array_equal(gd.nets.theta, d3.nets.theta)


def test_plateau_rule_stops_after_patience_evaluations():
    env, agent = short_agent("MassPoint", patience=3, plateau_tol=0.05)
    values = iter([0.1, 0.2, 0.22, 0.3, 0.31, 0.32, 0.34])
    agent._normalize = lambda raw: next(values)
    done = []
    for _ in range(7):
        agent.evaluate()
        done.append(agent.done())
    # Improvements over the best by more than 0.05: 0.1 (first), 0.2, 0.3; then 3 without.
    assert done == [False] * 6 + [True]


def test_driver_stops_a_plateaued_run(tmp_path):
    out = train.run(env="MassPoint", algo="gd", steps=20 * 800, out=tmp_path, hidden=(8, 8),
                    patience=2, plateau_tol=10.0)
    assert len(out["timesteps"]) == 3  # the first evaluation improves on -inf, then two do not
    assert (tmp_path / "policy.npz").is_file() and (tmp_path / "checkpoint.npz").is_file()
    assert out["stop_reason"] == "return_mean plateaued"
    # Resumed (as a sweep does when a run died before its last files), it stays stopped.
    again = train.run(env="MassPoint", algo="gd", steps=20 * 800, out=tmp_path, hidden=(8, 8),
                      patience=2, plateau_tol=10.0, resume=True)
    np.testing.assert_array_equal(again["timesteps"], out["timesteps"])
    np.testing.assert_array_equal(again["return_raw"], out["return_raw"])


def test_refuses_a_reward_without_derivatives():
    env = make("MassPoint")
    env.differentiable_reward = False
    with pytest.raises(ValueError, match="differentiable reward"):
        GDAgent(env, GDConfig(), 0)
    if "Acrobot" in names():
        with pytest.raises(ValueError, match="Acrobot"):
            GDAgent(make("Acrobot"), GDConfig(), 0)


def test_learns_masspoint_close_to_the_optimum():
    """MassPoint's optimum is full speed to the goal (0.913 normalized); 8,000 simulated steps
    of GD (seed 0) come within 0.05 of it in normalized return (the initial actor, with
    actions near 0, gets 0.03)."""
    env = make("MassPoint")
    env.reset(seed=0)
    optimum, done = 0.0, False
    while not done:
        _, r, terminated, truncated, _ = env.step([1.0])
        optimum += r
        done = terminated or truncated
    normalize = metrics.normalizer(env)
    agent = GDAgent(env, GDConfig(), 0)
    agent.train(8000)
    assert normalize(agent.evaluate()) > normalize(optimum) - 0.05


def test_resume_gives_the_numbers_of_an_uninterrupted_run(tmp_path):
    quick = dict(hidden=(8, 8), patience=100)
    whole = train.run(env="MassPoint", algo="gd", seed=1, steps=2400, out=tmp_path / "a", **quick)
    train.run(env="MassPoint", algo="gd", seed=1, steps=1600, out=tmp_path / "b", **quick)
    resumed = train.run(env="MassPoint", algo="gd", seed=1, steps=2400, out=tmp_path / "b",
                        resume=True, **quick)
    np.testing.assert_array_equal(resumed["return_raw"], whole["return_raw"])
