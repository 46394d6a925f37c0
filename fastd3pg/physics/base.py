"""The thin Python shell around a task's compiled kernels.

Every task lives in one file of this package and provides three pure Numba kernels over plain
arrays (the Brax pattern: the step is a function of ``(params, state, action)``):

``reset(p, rng, out)``
    draw a start state into ``out`` from the task's start distribution, using the
    :mod:`fastd3pg.rng` state ``rng``.
``step(p, s, a, out) -> (reward, terminated)``
    the next state into ``out``.
``step_jac(p, s, a, out, J_s, J_a, dr_ds, dr_da) -> (reward, terminated)``
    the same, plus ``J_s = ∂s'/∂s`` (n×n), ``J_a = ∂s'/∂a`` (n×m) and the total reward
    derivatives ``dr_ds``, ``dr_da`` (the paper's eq. 2), all written into the given arrays.

``p`` is the task's float64 parameter vector (physical constants; ``Env.param_names`` names
its entries). Kernels receive the raw action and clip it to [-1, 1] themselves; a clipped
component has zero derivative. Kernels never raise: validation happens here, in Python.

The class below validates input, keeps the Gymnasium-style episode state (step count, time
limit, seeding) and calls the kernels. :mod:`fastd3pg.physics.dispatch` lets compiled code
call any task's kernels through ``Env.kernels`` (their compiled entry points).

Input contract of the shell (``make``'s parameters, ``reset``, ``step``, ``set_state``,
``transition``, ``transition_batch``):

* anything NumPy converts to real float64 is accepted: ints, bools, float32, object arrays of
  real numbers, non-contiguous and read-only arrays;
* non-numeric values (strings, ``None``, ...), complex numbers, a wrong shape, NaN or inf raise
  ``ValueError`` with one line naming the task and the argument;
* finite inputs of any magnitude give a finite result or a ``ValueError`` saying that the
  input is outside the simulator's range: every result is checked with ``np.isfinite``
  before it is returned (or, for ``step``, before the env's state changes), so the shell never
  returns NaN or inf. The compiled kernels themselves never raise: a compiled loop that drives
  a task out of its range gets NaN (e.g. HalfCheetah when its contact solver fails), which the
  training driver reports as divergence.
"""

import numbers

from typing import NamedTuple

import numpy as np

from fastd3pg import rng as _rng
from fastd3pg.physics import dispatch


def _describe(value) -> str:
    """A short, one-line ``repr`` for an error message."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 80 else text[:77] + "..."


def _is_real(x) -> bool:
    return isinstance(x, (numbers.Real, np.bool_))


class Transition(NamedTuple):
    """One step of a differentiable simulator (batched: a leading batch axis on each field)."""

    next_state: np.ndarray  # (n,)
    reward: float
    terminated: bool
    J_s: np.ndarray  # (n, n) = ∂s'/∂s
    J_a: np.ndarray  # (n, m) = ∂s'/∂a
    dr_ds: np.ndarray  # (n,) total derivative of r(s, a) w.r.t. s
    dr_da: np.ndarray  # (m,) total derivative of r(s, a) w.r.t. a


class Env:
    """Base class of every task. Subclasses set the class attributes below and the kernels."""

    name: str = ""
    task_id: int = -1  # set by the registry (its position there)
    state_dim: int = 0
    action_dim: int = 0
    horizon: int = 0
    dt: float = 0.0
    max_reward: float = 0.0
    differentiable_reward: bool = True  # False where dr_ds, dr_da carry no signal (Acrobot)
    param_names: tuple = ()
    default_params: tuple = ()
    # Compiled kernels (see the module docstring), set by each task as staticmethods.
    reset_kernel = None
    step_kernel = None
    step_jac_kernel = None

    def __init__(self, **params):
        unknown = sorted(set(params) - set(self.param_names))
        if unknown:
            raise ValueError(
                f"{self.name}: unknown parameter(s) {unknown}; valid: {list(self.param_names)}"
            )
        values = dict(zip(self.param_names, self.default_params))
        for key, value in params.items():
            x = self._real_array(value, f"parameter {key}")
            if x.shape != ():
                raise ValueError(f"{self.name}: parameter {key} must be a number, got {_describe(value)}")
            if not np.isfinite(x):
                raise ValueError(f"{self.name}: parameter {key} must be finite, got {float(x)}")
            values[key] = float(x)
        self.params = np.array([values[k] for k in self.param_names], dtype=np.float64)
        self._rng = _rng.make_rng_from_entropy()
        self._state = None
        self._t = 0

    @property
    def kernels(self) -> dispatch.TaskKernels:
        """This task's compiled kernels as compiled loops call them (compiled on first use)."""
        return dispatch.kernels(type(self))

    def __repr__(self):
        return f"{type(self).__name__}()"

    # -- validation ------------------------------------------------------------------------
    def _real_array(self, value, what):
        """``value`` as a float64 array, or ``ValueError`` if it is not real numbers."""
        try:
            x = np.asarray(value)
        except (TypeError, ValueError):  # ragged nested sequences
            raise ValueError(
                f"{self.name}: {what} must be real numbers, got {_describe(value)}"
            ) from None
        kind = x.dtype.kind
        if kind == "c":
            raise ValueError(f"{self.name}: {what} must be real, got complex {_describe(value)}")
        if kind not in "biufO" or (kind == "O" and not all(_is_real(v) for v in x.flat)):
            raise ValueError(f"{self.name}: {what} must be numeric, got {_describe(value)}")
        try:
            return x.astype(np.float64)
        except (TypeError, ValueError, OverflowError):  # e.g. an int beyond float64's range
            raise ValueError(
                f"{self.name}: {what} must be real numbers in float64's range, "
                f"got {_describe(value)}"
            ) from None

    def _check(self, array, shape, what, batch=False):
        x = self._real_array(array, what)
        if batch:
            if x.ndim != 2 or x.shape[1] != shape:
                raise ValueError(
                    f"{self.name}: {what} must have shape (B, {shape}), got {x.shape}"
                )
        elif x.shape != (shape,):
            if x.size == shape and x.ndim <= 1:
                x = x.reshape(shape)
            else:
                raise ValueError(f"{self.name}: {what} must have shape ({shape},), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{self.name}: {what} contains NaN or inf: {_describe(x)}")
        return np.ascontiguousarray(x)

    def _out_of_range(self, state, action) -> str:
        """Why the step from ``state`` under ``action`` is not finite (a task may say more)."""
        return "its result overflows"

    def _check_result(self, arrays, states, actions, batch=False):
        """``ValueError`` unless every array in ``arrays`` is finite (the step's result)."""
        if batch and len(states) == 0:
            return
        ok = np.ones(len(states) if batch else 1, dtype=bool)
        for x in arrays:
            x = np.asarray(x)
            if batch:
                ok &= np.isfinite(x.reshape(x.shape[0], -1)).all(axis=1)
            else:
                ok &= bool(np.all(np.isfinite(x)))
        if ok.all():
            return
        b = int(np.flatnonzero(~ok)[0])
        s, a = (states[b], actions[b]) if batch else (states, actions)
        where = f"row {b} of the batch: " if batch else ""
        raise ValueError(
            f"{self.name}: {where}state and action outside the simulator's range "
            f"({self._out_of_range(s, a)}): state {_describe(s)}, action {_describe(a)}"
        )

    # -- Gymnasium-style surface -----------------------------------------------------------
    def reset(self, seed=None, options=None):
        """Start an episode; returns ``(state, info)``. ``seed`` makes the draw reproducible."""
        if seed is not None:
            self._rng = _rng.make_rng(seed)
        state = np.empty(self.state_dim)
        self.reset_kernel(self.params, self._rng, state)
        if not np.all(np.isfinite(state)):
            raise ValueError(
                f"{self.name}: parameters outside the simulator's range (the start state "
                f"overflows): {_describe(self.params)}"
            )
        self._state = state
        self._t = 0
        return state.copy(), {}

    def step(self, action):
        """Advance one step; returns ``(state, reward, terminated, truncated, info)``."""
        if self._state is None:
            raise RuntimeError(f"{self.name}: call reset() before step()")
        a = self._check(action, self.action_dim, "action")
        out = np.empty(self.state_dim)
        reward, terminated = self.step_kernel(self.params, self._state, a, out)
        self._check_result((out, reward), self._state, a)
        self._state = out
        self._t += 1
        truncated = self._t >= self.horizon and not terminated
        return out.copy(), float(reward), bool(terminated), bool(truncated), {}

    def set_state(self, state):
        """Place the env in ``state`` (e.g. to replay a trajectory); the step count is kept."""
        self._state = self._check(state, self.state_dim, "state").copy()

    @property
    def state(self):
        return None if self._state is None else self._state.copy()

    # -- pure, differentiable step ---------------------------------------------------------
    def transition(self, state, action) -> Transition:
        """The step from ``state`` under ``action`` with its Jacobians; changes nothing."""
        s = self._check(state, self.state_dim, "state")
        a = self._check(action, self.action_dim, "action")
        n, m = self.state_dim, self.action_dim
        out, J_s, J_a = np.empty(n), np.empty((n, n)), np.empty((n, m))
        dr_ds, dr_da = np.empty(n), np.empty(m)
        reward, terminated = self.step_jac_kernel(self.params, s, a, out, J_s, J_a, dr_ds, dr_da)
        self._check_result((out, reward, J_s, J_a, dr_ds, dr_da), s, a)
        return Transition(out, float(reward), bool(terminated), J_s, J_a, dr_ds, dr_da)

    def transition_batch(self, states, actions) -> Transition:
        """:meth:`transition` over a leading batch axis, in one compiled loop."""
        S = self._check(states, self.state_dim, "states", batch=True)
        A = self._check(actions, self.action_dim, "actions", batch=True)
        if S.shape[0] != A.shape[0]:
            raise ValueError(
                f"{self.name}: states and actions have different batch sizes "
                f"({S.shape[0]} and {A.shape[0]})"
            )
        B, n, m = S.shape[0], self.state_dim, self.action_dim
        out = np.empty((B, n))
        R, T = np.empty(B), np.empty(B, dtype=np.bool_)
        J_s, J_a = np.empty((B, n, n)), np.empty((B, n, m))
        dr_ds, dr_da = np.empty((B, n)), np.empty((B, m))
        dispatch.step_jac_batch(self.kernels, self.params, S, A, out, R, T, J_s, J_a, dr_ds, dr_da)
        self._check_result((out, R, J_s, J_a, dr_ds, dr_da), S, A, batch=True)
        return Transition(out, R, T, J_s, J_a, dr_ds, dr_da)
