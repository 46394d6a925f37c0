"""Long random-action runs of every registered task: nothing may overflow or turn NaN."""

import numpy as np
import pytest

from fastd3pg.physics import make, names

BATCH, ITERATIONS = 200, 500  # 100,000 steps per task


@pytest.mark.parametrize("name", names())
def test_random_action_steps_never_give_nan_or_inf(name):
    env = make(name)
    rng = np.random.default_rng(0)
    S = np.array([env.reset(seed=k)[0] for k in range(BATCH)])
    seeds = iter(range(BATCH, 10**9))
    t = np.zeros(BATCH, dtype=int)
    # Out-of-range actions too; each env holds its action for a random while (10 steps on
    # average), which drives the state further from rest than white noise does.
    A = rng.uniform(-1.5, 1.5, (BATCH, env.action_dim))
    episodes = 0
    for _ in range(ITERATIONS):
        redraw = rng.random(BATCH) < 0.1
        A[redraw] = rng.uniform(-1.5, 1.5, (redraw.sum(), env.action_dim))
        tr = env.transition_batch(S, A)
        for field, value in tr._asdict().items():
            assert np.all(np.isfinite(value)), (name, field)
        t += 1
        S = tr.next_state.copy()
        for b in np.flatnonzero(tr.terminated | (t >= env.horizon)):
            S[b] = env.reset(seed=next(seeds))[0]
            t[b] = 0
            episodes += 1
    assert episodes >= BATCH * (ITERATIONS // env.horizon)  # episodes did restart
