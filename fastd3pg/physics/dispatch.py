"""Call any task's compiled kernels by its integer ``task_id``, from compiled code.

Numba caches a function that takes another compiled function as an argument poorly (it
recompiles it in every process), so compiled loops (``step_jac_batch`` below, the training
loops of :mod:`fastd3pg.control`) name the task by an integer and branch here. Adding a task:
import its module and add one branch to each of the three functions.
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


@jit
def reset(task_id, p, rng, out):
    if task_id == 0:
        masspoint.reset(p, rng, out)
    elif task_id == 1:
        cartpole.reset(p, rng, out)
    elif task_id == 2:
        cartpole_swingup.reset(p, rng, out)
    elif task_id == 3:
        pendulum.reset(p, rng, out)
    elif task_id == 4:
        mountain_car.reset(p, rng, out)
    elif task_id == 5:
        acrobot.reset(p, rng, out)
    elif task_id == 6:
        rolling_die.reset(p, rng, out)
    elif task_id == 7:
        half_cheetah.reset(p, rng, out)
    else:
        out[:] = np.nan


@jit
def step(task_id, p, s, a, out):
    if task_id == 0:
        return masspoint.step(p, s, a, out)
    if task_id == 1:
        return cartpole.step(p, s, a, out)
    if task_id == 2:
        return cartpole_swingup.step(p, s, a, out)
    if task_id == 3:
        return pendulum.step(p, s, a, out)
    if task_id == 4:
        return mountain_car.step(p, s, a, out)
    if task_id == 5:
        return acrobot.step(p, s, a, out)
    if task_id == 6:
        return rolling_die.step(p, s, a, out)
    if task_id == 7:
        return half_cheetah.step(p, s, a, out)
    out[:] = np.nan
    return np.nan, True


@jit
def step_jac(task_id, p, s, a, out, J_s, J_a, dr_ds, dr_da):
    if task_id == 0:
        return masspoint.step_jac(p, s, a, out, J_s, J_a, dr_ds, dr_da)
    if task_id == 1:
        return cartpole.step_jac(p, s, a, out, J_s, J_a, dr_ds, dr_da)
    if task_id == 2:
        return cartpole_swingup.step_jac(p, s, a, out, J_s, J_a, dr_ds, dr_da)
    if task_id == 3:
        return pendulum.step_jac(p, s, a, out, J_s, J_a, dr_ds, dr_da)
    if task_id == 4:
        return mountain_car.step_jac(p, s, a, out, J_s, J_a, dr_ds, dr_da)
    if task_id == 5:
        return acrobot.step_jac(p, s, a, out, J_s, J_a, dr_ds, dr_da)
    if task_id == 6:
        return rolling_die.step_jac(p, s, a, out, J_s, J_a, dr_ds, dr_da)
    if task_id == 7:
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
