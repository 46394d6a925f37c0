"""Receding-horizon iLQR through the training driver."""

import numpy as np
import pytest

from fastd3pg import train
from fastd3pg.control.d3pg import D3PGAgent, D3PGConfig
from fastd3pg.control.mpc import MPCAgent, MPCConfig
from fastd3pg.physics import make


def test_starts_from_d3pgs_initial_actor_and_first_state():
    env = make("Pendulum")
    mpc = MPCAgent(env, MPCConfig(horizon=5), seed=3)
    d3 = D3PGAgent(env, D3PGConfig(), seed=3, total_steps=10)
    np.testing.assert_array_equal(mpc.theta, d3.nets.theta)
    np.testing.assert_array_equal(mpc.state, d3.stats.state)
    # The first plan is the initial actor's rollout from that state.
    s = mpc.state.copy()
    for t in range(5):
        a = mpc._actor_action(s)
        np.testing.assert_array_equal(mpc.plan[t], a)
        s = env.transition(s, a).next_state


def test_predicted_return_is_recorded_and_actions_stay_in_the_box(tmp_path):
    env = make("Pendulum")
    agent = MPCAgent(env, MPCConfig(horizon=20, iters_per_step=2, first_iters=10), seed=0)
    for _ in range(30):
        agent.train(1)
        assert np.all(np.abs(agent.plan) <= 1.0)
    assert np.isfinite(agent.evaluate())
    assert agent.timesteps == 30


def test_resumed_run_gives_the_numbers_of_an_uninterrupted_one(tmp_path):
    kw = dict(env="Pendulum", algo="mpc", seed=1, horizon=15, iters_per_step=2, first_iters=10)
    full = train.run(steps=1600, out=tmp_path / "full", **kw)
    train.run(steps=800, out=tmp_path / "part", **kw)
    resumed = train.run(steps=1600, out=tmp_path / "part", resume=True, **kw)
    np.testing.assert_array_equal(full["return_raw"], resumed["return_raw"])
    assert full["return_mean"][-1] > 0.0  # plans better than a random controller


def test_acrobot_is_refused():
    with pytest.raises(ValueError, match="differentiable reward"):
        MPCAgent(make("Acrobot"), MPCConfig(), seed=0)


def test_compiled_sum_follows_numpys_order():
    # The compiled loop sums a plan's predicted rewards with numpy_sum so that MPC's numbers
    # are those of the Python loop it replaced: NumPy's pairwise order, reproduced exactly
    # (no fast-math on either side), so the comparison is exact.
    from fastd3pg.control.mpc import numpy_sum

    rng = np.random.default_rng(0)
    for n in [1, 7, 8, 9, 50, 127, 128, 129, 300, 1001]:
        a = rng.standard_normal(n + 3) * 10.0 ** rng.uniform(-3, 3, n + 3)
        assert numpy_sum(a, 2, 2 + n) == a[2:2 + n].sum()
