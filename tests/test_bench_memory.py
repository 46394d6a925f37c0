"""The memory section's bytes per transition: the replay rows' float64 fields, counted by hand."""

import pytest

from fastd3pg.bench import memory
from fastd3pg.physics import make, names


@pytest.mark.parametrize("name", names())
def test_bytes_per_transition_are_the_rows_of_the_replay_arrays(name):
    env = make(name)
    n, m = env.state_dim, env.action_dim
    plain = 8 * (n + m + 1 + n + 1)  # s, a, r, s', done
    assert memory._bytes_per_transition(n, m, False) == plain
    jacobians = 8 * (n * n + n * m + n + m)  # ∂s'/∂s, ∂s'/∂a, ∂r/∂s, ∂r/∂a
    assert memory._bytes_per_transition(n, m, True) == plain + jacobians
