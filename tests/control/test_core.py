"""The shared core's twin-critic minimum against the critics evaluated one by one."""

import numpy as np
import pytest

from fastd3pg.control import core
from fastd3pg.nn import MLP


@pytest.mark.parametrize("grads", [True, False])
@pytest.mark.parametrize("batch, capacity", [(1, 1), (9, 9), (9, 12), (64, 64)])
def test_twin_min_takes_value_and_input_gradient_of_the_critic_attaining_the_minimum(
        batch, capacity, grads):
    critic = MLP([5, 16, 16, 1], "tanh", "linear", True)
    rng = np.random.default_rng(batch)
    p1 = critic.init(seed=1, out_scale=0.5)
    p2 = critic.init(seed=2, out_scale=0.5)
    X = rng.standard_normal((batch, 5))
    for phi2 in (p2, p1 + 0.05 * rng.standard_normal(p1.size)):
        Qmin, Gmin = np.full(batch, np.nan), np.full((batch, 5), np.nan)
        core.twin_min(critic.spec, p1, phi2, X, critic.workspace(capacity),
                      critic.workspace(capacity), grads, Qmin, Gmin)
        Q1, Q2 = critic.forward(p1, X)[:, 0], critic.forward(phi2, X)[:, 0]
        first = Q1 <= Q2  # critic 1 on ties
        if batch == 64:
            assert 0 < first.sum() < batch  # both critics attain the minimum somewhere
        np.testing.assert_allclose(Qmin, np.where(first, Q1, Q2), rtol=1e-13, atol=1e-15)
        if grads:
            G = np.where(first[:, None], critic.input_grad(p1, X), critic.input_grad(phi2, X))
            # Only the attaining critic's rows are differentiated, in blocks of other rows
            # than the full batch's: equal up to the order of a sum.
            np.testing.assert_allclose(Gmin, G, rtol=1e-12, atol=1e-14)
        else:
            assert np.all(np.isnan(Gmin))
