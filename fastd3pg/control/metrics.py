"""The paper's metrics (its §5.2).

``return_mean``: the return of one episode of the current deterministic actor, evaluated every
800 timesteps; for MPC, the predicted cumulative return of its one episode, recorded at every
returned action (:mod:`fastd3pg.control.mpc`). ``return_history``: the average of the latest
100 ``return_mean`` values. Both are rescaled linearly so that a random controller's average return maps to 0 and
``max_reward × horizon`` maps to 1.

The random controller draws actions uniformly from [-1, 1]^m at every step. Its average return
is estimated once per task (and per horizon and physical-parameter vector) from ``RANDOM_EPISODES``
episodes with the fixed seed ``RANDOM_SEED``; the estimate is deterministic, so every run,
method and machine normalises with the same number (every run's ``config.json``
records it as ``random_return``).
"""

from collections import deque

import numpy as np

from fastd3pg import rng as _rng
from fastd3pg._jit import jit
from fastd3pg.linalg import copy
from fastd3pg.physics import dispatch

EVAL_EVERY = 800
HISTORY = 100
RANDOM_EPISODES = 100
RANDOM_SEED = 20200101

_random_cache: dict = {}


@jit
def _random_returns(kernels, p, n, m, horizon, episodes, rng):
    returns = np.zeros(episodes)
    s = np.empty(n)
    s_next = np.empty(n)
    a = np.empty(m)
    for e in range(episodes):
        dispatch.reset(kernels, p, rng, s)
        total = 0.0
        for _ in range(horizon):
            for j in range(m):
                a[j] = 2.0 * _rng.uniform(rng) - 1.0
            r, done = dispatch.step(kernels, p, s, a, s_next)
            total += r
            copy(s, s_next)
            if done:
                break
        returns[e] = total
    return returns


def random_return(env) -> float:
    """The random controller's average episode return on ``env`` (cached per process)."""
    key = (env.name, int(env.horizon), env.params.tobytes())
    if key not in _random_cache:
        rng = _rng.make_rng(RANDOM_SEED)
        returns = _random_returns(
            env.kernels, env.params, env.state_dim, env.action_dim, env.horizon,
            RANDOM_EPISODES, rng,
        )
        _random_cache[key] = float(np.mean(returns))
    return _random_cache[key]


def scale(env) -> tuple:
    """``(low, span)`` of the normalized return on ``env``: ``normalized = (raw - low) / span``
    with ``low`` the random return and ``span = max_reward × horizon - low``."""
    low = random_return(env)
    high = env.max_reward * env.horizon
    span = high - low
    if not span > 0:
        raise ValueError(
            f"{env.name}: max_reward × horizon ({high}) must exceed the random return ({low})"
        )
    return low, span


def normalizer(env):
    """``raw_return -> normalized_return`` for ``env`` (random ↦ 0, max_reward × horizon ↦ 1)."""
    low, span = scale(env)
    return lambda raw: (raw - low) / span


class History:
    """Running ``return_history``: the mean of the latest ``HISTORY`` ``return_mean`` values."""

    def __init__(self, values=()):
        self._values = deque(values, maxlen=HISTORY)

    def add(self, value: float) -> float:
        self._values.append(value)
        return float(np.mean(self._values))
