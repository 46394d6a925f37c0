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
    derivatives ``dr_ds``, ``dr_da`` (PAPER.md §2), all written into the given arrays.

``p`` is the task's float64 parameter vector (physical constants; ``Env.param_names`` names
its entries). Kernels receive the raw action and clip it to [-1, 1] themselves; a clipped
component has zero derivative. Kernels never raise: validation happens here, in Python.

The class below validates input, keeps the Gymnasium-style episode state (step count, time
limit, seeding) and calls the kernels. :mod:`fastd3pg.physics.dispatch` lets compiled code
call any task's kernels by its integer ``task_id`` (given by :mod:`fastd3pg.physics.registry`).
"""

from typing import NamedTuple

import numpy as np

from fastd3pg import rng as _rng


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
    # dispatch.step_jac_batch, set by the package (fastd3pg.physics) so that this module
    # imports no task.
    step_jac_batch_kernel = None

    def __init__(self, **params):
        unknown = sorted(set(params) - set(self.param_names))
        if unknown:
            raise ValueError(
                f"{self.name}: unknown parameter(s) {unknown}; valid: {list(self.param_names)}"
            )
        values = dict(zip(self.param_names, self.default_params))
        for key, value in params.items():
            value = float(value)
            if not np.isfinite(value):
                raise ValueError(f"{self.name}: parameter {key} must be finite, got {value}")
            values[key] = value
        self.params = np.array([values[k] for k in self.param_names], dtype=np.float64)
        self._rng = _rng.make_rng_from_entropy()
        self._state = None
        self._t = 0

    def __repr__(self):
        return f"{type(self).__name__}()"

    # -- validation ------------------------------------------------------------------------
    def _check(self, array, shape, what, batch=False):
        try:
            x = np.asarray(array, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name}: {what} must be numeric, got {array!r}") from None
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
            raise ValueError(f"{self.name}: {what} contains NaN or inf: {x}")
        return np.ascontiguousarray(x)

    # -- Gymnasium-style surface -----------------------------------------------------------
    def reset(self, seed=None, options=None):
        """Start an episode; returns ``(state, info)``. ``seed`` makes the draw reproducible."""
        if seed is not None:
            self._rng = _rng.make_rng(seed)
        state = np.empty(self.state_dim)
        self.reset_kernel(self.params, self._rng, state)
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
        self.step_jac_batch_kernel(
            self.task_id, self.params, S, A, out, R, T, J_s, J_a, dr_ds, dr_da
        )
        return Transition(out, R, T, J_s, J_a, dr_ds, dr_da)
