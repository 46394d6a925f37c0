import numpy as np
import pytest

from fastd3pg.physics import make
from fastd3pg.testing import transition_fd_errors


def test_dynamics_reward_and_termination_follow_the_paper():
    env = make("MassPoint")
    s, _ = env.reset(seed=3)
    assert s.tolist() == [-0.5]
    tr = env.transition(s, [0.7])
    assert tr.next_state[0] == pytest.approx(-0.5 + 0.7 * 0.01, abs=1e-15)
    assert tr.reward == pytest.approx(1 / (tr.next_state[0] ** 2 + 1) - 1, abs=1e-15)
    assert env.transition([0.005], [0.0]).terminated
    assert not env.transition([0.02], [0.0]).terminated
    assert env.transition([0.2], [3.0]).next_state[0] == pytest.approx(0.21)  # a clipped speed


def test_jacobians_match_finite_differences():
    env = make("MassPoint")
    rng = np.random.default_rng(0)
    for _ in range(200):
        # Outside the goal zone (where episodes end): there dr/da is ~1e-4 at least, well above
        # the reward's round-off left in a central difference (~5e-11).
        s = rng.choice([-1, 1]) * rng.uniform(0.02, 2, size=1)
        a = rng.uniform(-0.99, 0.99, size=1)
        errors = transition_fd_errors(env, s, a)
        assert max(errors.values()) < 1e-6, errors
