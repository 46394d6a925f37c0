"""The task registry: the one list of the simulators built so far.

A task's integer id (``Env.task_id``, by which compiled code names it, see
:mod:`fastd3pg.physics.dispatch`) is its position in :data:`TASKS`, and :func:`names` is this
order. Everything else derives from this list: ``make``, the ids, dispatch's constants, the
tests that run over every task. New tasks go at the end, so that existing ids stay.
"""

from fastd3pg.physics.acrobot import Acrobot
from fastd3pg.physics.cartpole import CartPole
from fastd3pg.physics.cartpole_swingup import CartPoleSwingUp
from fastd3pg.physics.half_cheetah import HalfCheetah
from fastd3pg.physics.masspoint import MassPoint
from fastd3pg.physics.mountain_car import MountainCar
from fastd3pg.physics.pendulum import Pendulum
from fastd3pg.physics.rolling_die import RollingDie

TASKS = (
    MassPoint,
    CartPole,
    CartPoleSwingUp,
    Pendulum,
    MountainCar,
    Acrobot,
    RollingDie,
    HalfCheetah,
)

for _task_id, _cls in enumerate(TASKS):
    _cls.task_id = _task_id
del _task_id, _cls

_BY_NAME = {cls.name: cls for cls in TASKS}


def names() -> list[str]:
    """The names of the tasks built so far, in id order."""
    return [cls.name for cls in TASKS]


def task_class(name: str):
    """The ``Env`` subclass registered as ``name``; ``ValueError`` listing the valid names."""
    if not isinstance(name, str) or name not in _BY_NAME:
        raise ValueError(f"unknown task {name!r}; valid names: {', '.join(names())}")
    return _BY_NAME[name]


def task_id(name: str) -> int:
    """The integer id of task ``name``."""
    return task_class(name).task_id
