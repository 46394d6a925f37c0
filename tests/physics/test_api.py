import numpy as np
import pytest

from fastd3pg.physics import Transition, make, names


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="MassPoint"):
        make("NoSuchTask")


def test_unknown_parameter_is_rejected():
    with pytest.raises(ValueError, match="unknown parameter"):
        make("MassPoint", gravity=3.0)


@pytest.mark.parametrize("name", names())
def test_contract_attributes_and_shapes(name):
    env = make(name)
    assert env.state_dim > 0 and env.action_dim > 0 and env.horizon > 0 and env.dt > 0
    s, info = env.reset(seed=1)
    assert s.shape == (env.state_dim,) and s.dtype == np.float64 and isinstance(info, dict)
    s2, _ = env.reset(seed=1)
    np.testing.assert_array_equal(s, s2)
    tr = env.transition(s, np.zeros(env.action_dim))
    assert isinstance(tr, Transition)
    n, m = env.state_dim, env.action_dim
    assert tr.J_s.shape == (n, n) and tr.J_a.shape == (n, m)
    assert tr.dr_ds.shape == (n,) and tr.dr_da.shape == (m,)
    out = env.step(np.zeros(m))
    assert len(out) == 5


@pytest.mark.parametrize("name", names())
def test_episode_truncates_at_the_horizon(name):
    env = make(name)
    env.reset(seed=2)
    truncated = terminated = False
    t = 0
    while not (truncated or terminated):
        _, _, terminated, truncated, _ = env.step(np.zeros(env.action_dim))
        t += 1
    assert terminated or t == env.horizon
