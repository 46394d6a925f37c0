"""A compiled, checkpointable random number generator (xoshiro256**, Blackman & Vigna 2018).

Compiled loops (episode resets, exploration noise, minibatch sampling) draw from an explicit
state array instead of Numba's hidden global generator, so that a run's randomness can be
saved in a checkpoint and restored exactly, and two runs never share a stream by accident.
The state is a ``uint64`` array of shape ``(4,)``; every draw updates it in place.
"""

import numpy as np

from fastd3pg._jit import jit

_U64 = np.uint64
_TWO_M53 = 1.0 / 9007199254740992.0  # 2**-53


@jit
def _rotl(x, k):
    return (x << _U64(k)) | (x >> _U64(64 - k))


@jit
def _splitmix64(x):
    x = x + _U64(0x9E3779B97F4A7C15)
    z = x
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    return x, z ^ (z >> _U64(31))


@jit
def next_u64(state):
    """The next 64 random bits."""
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    result = _rotl(s1 * _U64(5), 7) * _U64(9)
    t = s1 << _U64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    state[0], state[1], state[2], state[3] = s0, s1, s2, s3
    return result


@jit
def uniform(state):
    """A float64 uniform on [0, 1) with 53 random bits."""
    return float(next_u64(state) >> _U64(11)) * _TWO_M53


@jit
def uniform_range(state, low, high):
    return low + (high - low) * uniform(state)


@jit
def normal(state):
    """A standard normal draw (Box-Muller; one draw per call, nothing cached)."""
    u1 = 1.0 - uniform(state)  # (0, 1]: log is finite
    u2 = uniform(state)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


@jit
def randint(state, n):
    """A uniform integer in [0, n) (n >= 1), by rejection so that it is unbiased."""
    un = _U64(n)
    limit = _U64(0xFFFFFFFFFFFFFFFF) - (_U64(0xFFFFFFFFFFFFFFFF) % un)
    while True:
        x = next_u64(state)
        if x < limit:
            return np.int64(x % un)


@jit
def _seed_state(seed, state):
    x = _U64(seed)
    for i in range(4):
        x, state[i] = _splitmix64(x)


def make_rng(seed: int) -> np.ndarray:
    """A fresh generator state for a non-negative integer ``seed``."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if seed < 0 or seed >= 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    state = np.zeros(4, dtype=np.uint64)
    _seed_state(_U64(seed), state)
    return state


def make_rng_from_entropy() -> np.ndarray:
    return make_rng(int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0]))
