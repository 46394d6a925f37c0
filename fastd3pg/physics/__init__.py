"""Differentiable simulators: every task's step returns its Jacobians.

>>> from fastd3pg.physics import make, names
>>> env = make("MassPoint")
>>> state, info = env.reset(seed=0)
>>> tr = env.transition(state, [1.0])   # next_state, reward, terminated, J_s, J_a, dr_ds, dr_da
"""

from fastd3pg.physics.acrobot import Acrobot
from fastd3pg.physics.base import Env, Transition
from fastd3pg.physics.cartpole import CartPole
from fastd3pg.physics.cartpole_swingup import CartPoleSwingUp
from fastd3pg.physics.half_cheetah import HalfCheetah
from fastd3pg.physics.masspoint import MassPoint
from fastd3pg.physics.mountain_car import MountainCar
from fastd3pg.physics.pendulum import Pendulum
from fastd3pg.physics.rolling_die import RollingDie

# Registry: name -> class. The order is the public ``names()`` order; ``task_id`` is fixed per
# class (see fastd3pg.physics.dispatch).
_TASKS = {
    cls.name: cls
    for cls in (
        MassPoint,
        CartPole,
        CartPoleSwingUp,
        Pendulum,
        MountainCar,
        Acrobot,
        RollingDie,
        HalfCheetah,
    )
}


def names() -> list[str]:
    """The names of the tasks built so far."""
    return sorted(_TASKS, key=lambda k: _TASKS[k].task_id)


def make(name: str, **params) -> Env:
    """A new env of task ``name``; ``params`` override its physical constants by name."""
    if not isinstance(name, str) or name not in _TASKS:
        raise ValueError(f"unknown task {name!r}; valid names: {', '.join(names())}")
    return _TASKS[name](**params)


__all__ = ["Env", "Transition", "make", "names"]
