"""Call any task's compiled kernels by its integer ``task_id``, from compiled code.

Numba caches a function that takes another compiled function as an argument poorly (it
recompiles it in every process), so compiled loops (the batch loops below, the training loops
of :mod:`fastd3pg.control`) name the task by an integer and branch here. The ids are module
constants taken from :mod:`fastd3pg.physics.registry`; Numba freezes them at compile time, so
each branch compares ``task_id`` with a literal. An id no branch covers gives NaN (a test
calls every function here for every registered id and compares with the task's own kernels).

Adding a task: import its module and add one branch to each of ``reset``, ``step`` and
``step_jac``, comparing with a constant defined from the registry as below.
"""

import numpy as np

from fastd3pg._jit import jit
from fastd3pg.physics import (
    acrobot,
    cartpole,
    cartpole_swingup,
    half_cheetah,
    masspoint,
    mountain_car,
    pendulum,
    rolling_die,
)
from fastd3pg.physics.registry import task_id as _id

MASSPOINT = _id("MassPoint")
CARTPOLE = _id("CartPole")
CARTPOLE_SWINGUP = _id("CartPoleSwingUp")
PENDULUM = _id("Pendulum")
MOUNTAIN_CAR = _id("MountainCar")
ACROBOT = _id("Acrobot")
ROLLING_DIE = _id("RollingDie")
HALF_CHEETAH = _id("HalfCheetah")


@jit
def reset(task_id, p, rng, out):
    if task_id == MASSPOINT:
        masspoint.reset(p, rng, out)
    elif task_id == CARTPOLE:
        cartpole.reset(p, rng, out)
    elif task_id == CARTPOLE_SWINGUP:
        cartpole_swingup.reset(p, rng, out)
    elif task_id == PENDULUM:
        pendulum.reset(p, rng, out)
    elif task_id == MOUNTAIN_CAR:
        mountain_car.reset(p, rng, out)
    elif task_id == ACROBOT:
        acrobot.reset(p, rng, out)
    elif task_id == ROLLING_DIE:
        rolling_die.reset(p, rng, out)
    elif task_id == HALF_CHEETAH:
        half_cheetah.reset(p, rng, out)
    else:
        out[:] = np.nan


@jit
def step(task_id, p, s, a, out):
    if task_id == MASSPOINT:
        return masspoint.step(p, s, a, out)
    if task_id == CARTPOLE:
        return cartpole.step(p, s, a, out)
    if task_id == CARTPOLE_SWINGUP:
        return cartpole_swingup.step(p, s, a, out)
    if task_id == PENDULUM:
        return pendulum.step(p, s, a, out)
    if task_id == MOUNTAIN_CAR:
        return mountain_car.step(p, s, a, out)
    if task_id == ACROBOT:
        return acrobot.step(p, s, a, out)
    if task_id == ROLLING_DIE:
        return rolling_die.step(p, s, a, out)
    if task_id == HALF_CHEETAH:
        return half_cheetah.step(p, s, a, out)
    out[:] = np.nan
    return np.nan, True


@jit
def step_jac(task_id, p, s, a, out, J_s, J_a, dr_ds, dr_da):
    if task_id == MASSPOINT:
        return masspoint.step_jac(p, s, a, out, J_s, J_a, dr_ds, dr_da)
    if task_id == CARTPOLE:
        return cartpole.step_jac(p, s, a, out, J_s, J_a, dr_ds, dr_da)
    if task_id == CARTPOLE_SWINGUP:
        return cartpole_swingup.step_jac(p, s, a, out, J_s, J_a, dr_ds, dr_da)
    if task_id == PENDULUM:
        return pendulum.step_jac(p, s, a, out, J_s, J_a, dr_ds, dr_da)
    if task_id == MOUNTAIN_CAR:
        return mountain_car.step_jac(p, s, a, out, J_s, J_a, dr_ds, dr_da)
    if task_id == ACROBOT:
        return acrobot.step_jac(p, s, a, out, J_s, J_a, dr_ds, dr_da)
    if task_id == ROLLING_DIE:
        return rolling_die.step_jac(p, s, a, out, J_s, J_a, dr_ds, dr_da)
    if task_id == HALF_CHEETAH:
        return half_cheetah.step_jac(p, s, a, out, J_s, J_a, dr_ds, dr_da)
    out[:] = np.nan
    return np.nan, True


@jit
def step_batch(task_id, p, S, A, out, R, T):
    for b in range(S.shape[0]):
        R[b], T[b] = step(task_id, p, S[b], A[b], out[b])


@jit
def step_jac_batch(task_id, p, S, A, out, R, T, J_s, J_a, dr_ds, dr_da):
    for b in range(S.shape[0]):
        R[b], T[b] = step_jac(task_id, p, S[b], A[b], out[b], J_s[b], J_a[b], dr_ds[b], dr_da[b])
