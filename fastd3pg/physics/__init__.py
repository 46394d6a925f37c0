"""Differentiable simulators: every task's step returns its Jacobians.

>>> from fastd3pg.physics import make, names
>>> env = make("MassPoint")
>>> state, info = env.reset(seed=0)
>>> tr = env.transition(state, [0.5])   # next_state, reward, terminated, J_s, J_a, dr_ds, dr_da

The tasks are listed once, in :mod:`fastd3pg.physics.registry`.
"""

from fastd3pg.physics.base import Env, Transition
from fastd3pg.physics.registry import names, task_class


def make(name: str, **params) -> Env:
    """A new env of task ``name``; ``params`` override its physical constants by name."""
    return task_class(name)(**params)


__all__ = ["Env", "Transition", "make", "names"]
