"""The replay buffer of Algorithm 1: transitions with their Jacobians, in preallocated arrays.

Each slot holds ``(s, a, r, s', done, J_s, J_a, dr_ds, dr_da)`` (Algorithm 1: the buffer also
stores the simulator's derivatives, ``n² + n·m + n + m`` extra floats per transition). A buffer
made with ``with_jacobians=False`` (plain DDPG, SAC) keeps zero-size derivative arrays. The
arrays are a plain tuple so that compiled loops take them directly; ``count`` and ``head`` live
in a small int64 array so that compiled code updates them in place.
"""

from typing import NamedTuple

import numpy as np

from fastd3pg import rng as _rng
from fastd3pg._jit import jit, unit
from fastd3pg.linalg import copy


class Replay(NamedTuple):
    s: np.ndarray  # (cap, n)
    a: np.ndarray  # (cap, m)
    r: np.ndarray  # (cap,)
    s_next: np.ndarray  # (cap, n)
    done: np.ndarray  # (cap,) 1.0 for a true terminal, 0.0 otherwise (time limits are not terminal)
    J_s: np.ndarray  # (cap, n, n) or (0, n, n)
    J_a: np.ndarray  # (cap, n, m) or (0, n, m)
    dr_ds: np.ndarray  # (cap, n) or (0, n)
    dr_da: np.ndarray  # (cap, m) or (0, m)
    pos: np.ndarray  # int64 [count, head]


def make_replay(capacity: int, n: int, m: int, with_jacobians: bool) -> Replay:
    k = capacity if with_jacobians else 0
    return Replay(
        np.zeros((capacity, n)), np.zeros((capacity, m)), np.zeros(capacity),
        np.zeros((capacity, n)), np.zeros(capacity),
        np.zeros((k, n, n)), np.zeros((k, n, m)), np.zeros((k, n)), np.zeros((k, m)),
        np.zeros(2, dtype=np.int64),
    )


@unit
def add(buf, s, a, r, s_next, done, J_s, J_a, dr_ds, dr_da):
    """Store one transition, overwriting the oldest when full."""
    cap = buf.s.shape[0]
    i = buf.pos[1]
    copy(buf.s[i], s)
    copy(buf.a[i], a)
    buf.r[i] = r
    copy(buf.s_next[i], s_next)
    buf.done[i] = 1.0 if done else 0.0
    if buf.J_s.shape[0] > 0:
        copy(buf.J_s[i], J_s)
        copy(buf.J_a[i], J_a)
        copy(buf.dr_ds[i], dr_ds)
        copy(buf.dr_da[i], dr_da)
    buf.pos[1] = (i + 1) % cap
    buf.pos[0] = min(buf.pos[0] + 1, cap)


@jit
def sample_indices(buf, rng, idx):
    """Fill ``idx`` with uniform draws (with replacement) from the stored transitions."""
    count = buf.pos[0]
    for k in range(idx.shape[0]):
        idx[k] = _rng.randint(rng, count)
