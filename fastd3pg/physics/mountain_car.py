"""MountainCar: Gymnasium's ``MountainCarContinuous-v0`` (Moore 1990) with a dense,
differentiable reward.

An under-powered car in a valley between two hills must reach the flag on top of the right
hill; its engine cannot climb there directly, so it must first back up the left hill and
build momentum. The track's height is ``∝ sin(3x)``.

State
    ``[position, velocity]``: ``position ∈ [-1.2, 0.6]``, ``velocity ∈ [-0.07, 0.07]``
    (Gym's state; Gym casts it to float32 after every step, this task stays float64 and
    matches Gym's float64 arithmetic).
Action
    ``a ∈ [-1, 1]``: the engine force ``u = a`` (Gym's action); values outside are clipped
    (zero derivative there).
Dynamics (Gym's, one step per unit time, in Gym's order of operations)::

    v₁ = v + (u · power - 0.0025 cos(3x))             power = 0.0015             (1)
    v₂ = clip(v₁, -0.07, 0.07)                                                    (2)
    x' = clip(x + v₂, -1.2, 0.6)                                                  (3)
    v' = 0 if x' = -1.2 and v₂ < 0 else v₂      (an inelastic left wall)          (4)

Reward (of the next state and the action)
    ``r = h(x') - 1 - 0.1 u²`` with ``h(x) = (sin(3x) + 1) / 2 ∈ [0, 1]`` the normalised
    height of the track (0 at the valley floor ``x = -π/6``, 1 at the crest ``x = π/6``, just
    past the flag); ``max_reward = 0``, reached only on a final step that ends at the crest
    with no force.
    Gym's reward (+100 on reaching the flag, ``-0.1 a²`` per step) gives a gradient only
    through its action penalty, which pulls the action towards zero, i.e. towards the "do
    nothing" trap the task is known for; the +100 has no gradient at all. Here every step
    costs ``1 - h(x')`` (plus Gym's action penalty): the cost is positive everywhere but at
    the crest, so reaching the flag (which ends the episode and its costs) as early as possible
    is still optimal, and ``∂r/∂x' = 1.5 cos(3x')`` points uphill on either side of the
    valley: climbing the left hill, the swing that builds momentum, is rewarded too.
Start state
    ``position ~ U(-0.6, -0.4)``, ``velocity = 0`` (Gym's).
Termination
    ``x' ≥ 0.45`` and ``v' ≥ 0`` (Gym's goal).
Horizon
    999 steps (Gym's ``MountainCarContinuous-v0`` time limit).

Jacobians. By (1): ``∂v₁/∂x = 0.0075 sin(3x)``, ``∂v₁/∂v = 1``, ``∂v₁/∂u = power``. Each clip
passes the derivative only strictly inside its interval (``k_v``, ``k_x`` ∈ {0, 1}):
``∂v₂ = k_v ∂v₁``, ``∂x' = k_x (e_x + ∂v₂)`` with ``e_x = (1, 0)``, and the wall's reset (4)
has zero derivative. ``dr/ds = 1.5 cos(3x') ∂x'/∂s``,
``dr/da = 1.5 cos(3x') ∂x'/∂u - 0.2 u`` (times the clip's ``du/da``).
"""

import math

from fastd3pg import rng as _rng
from fastd3pg._jit import jit
from fastd3pg.physics.base import Env

# Compiled loops call the kernels through fastd3pg.physics.dispatch (one call per step); the
# helpers below are inlined into the kernels.

# Parameter vector layout.
MIN_POSITION, MAX_POSITION, MAX_SPEED, GOAL_POSITION, GOAL_VELOCITY, POWER = range(6)
RESET_LOW, RESET_HIGH, ACTION_COST = 6, 7, 8


@jit(inline="always")
def reset(p, rng, out):
    out[0] = _rng.uniform_range(rng, p[RESET_LOW], p[RESET_HIGH])
    out[1] = 0.0


@jit(inline="always")
def _height_reward(p, x, u):
    """``h(x) - 1 - c u²`` and ``∂/∂x``."""
    return 0.5 * (math.sin(3.0 * x) + 1.0) - 1.0 - p[ACTION_COST] * u * u, 1.5 * math.cos(3.0 * x)


@jit(inline="always")
def _forward(p, s, a, out):
    """(1)-(4) into ``out``; returns the clipped action, ``v₁``, ``x + v₂`` (before the clip
    (3)) and whether the wall (4) stopped the car."""
    u = min(max(a[0], -1.0), 1.0)
    x, v = s[0], s[1]
    v1 = v + (u * p[POWER] - 0.0025 * math.cos(3.0 * x))  # (1)
    v2 = min(max(v1, -p[MAX_SPEED]), p[MAX_SPEED])  # (2)
    x1 = x + v2
    x2 = min(max(x1, p[MIN_POSITION]), p[MAX_POSITION])  # (3)
    wall = x2 == p[MIN_POSITION] and v2 < 0.0
    if wall:  # (4)
        v2 = 0.0
    out[0] = x2
    out[1] = v2
    return u, v1, x1, wall


@jit(inline="always")
def _terminated(p, out):
    return out[0] >= p[GOAL_POSITION] and out[1] >= p[GOAL_VELOCITY]


@jit(inline="always")
def step(p, s, a, out):
    u, _, _, _ = _forward(p, s, a, out)
    reward, _ = _height_reward(p, out[0], u)
    return reward, _terminated(p, out)


@jit(inline="always")
def step_jac(p, s, a, out, J_s, J_a, dr_ds, dr_da):
    du_da = 1.0 if -1.0 < a[0] < 1.0 else 0.0
    u, v1, x1, wall = _forward(p, s, a, out)
    # Partials of (1) in (x, v, u), through the clip (2).
    dv_dx, dv_dv, dv_du = 0.0075 * math.sin(3.0 * s[0]), 1.0, p[POWER]
    max_speed = p[MAX_SPEED]
    if not -max_speed < v1 < max_speed:
        dv_dx, dv_dv, dv_du = 0.0, 0.0, 0.0
    # (3): x' = x + v₂, through its clip.
    dx_dx, dx_dv, dx_du = 1.0 + dv_dx, dv_dv, dv_du
    if not p[MIN_POSITION] < x1 < p[MAX_POSITION]:
        dx_dx, dx_dv, dx_du = 0.0, 0.0, 0.0
    if wall:  # (4)
        dv_dx, dv_dv, dv_du = 0.0, 0.0, 0.0
    J_s[0, 0], J_s[0, 1] = dx_dx, dx_dv
    J_s[1, 0], J_s[1, 1] = dv_dx, dv_dv
    J_a[0, 0] = dx_du * du_da
    J_a[1, 0] = dv_du * du_da
    reward, dr_dx = _height_reward(p, out[0], u)
    dr_ds[0] = dr_dx * dx_dx
    dr_ds[1] = dr_dx * dx_dv
    dr_da[0] = (dr_dx * dx_du - 2.0 * p[ACTION_COST] * u) * du_da
    return reward, _terminated(p, out)


class MountainCar(Env):
    __doc__ = __doc__
    name = "MountainCar"
    state_dim = 2
    action_dim = 1
    horizon = 999
    dt = 1.0
    max_reward = 0.0
    param_names = (
        "min_position", "max_position", "max_speed", "goal_position", "goal_velocity", "power",
        "reset_low", "reset_high", "action_cost",
    )
    default_params = (-1.2, 0.6, 0.07, 0.45, 0.0, 0.0015, -0.6, -0.4, 0.1)
    reset_kernel = staticmethod(reset)
    step_kernel = staticmethod(step)
    step_jac_kernel = staticmethod(step_jac)

    def __init__(self, **params):
        super().__init__(**params)
        p = self.params
        if not p[MIN_POSITION] < p[MAX_POSITION]:
            raise ValueError(f"{self.name}: min_position must be below max_position")
        if not p[MAX_SPEED] > 0.0:
            raise ValueError(f"{self.name}: max_speed must be positive, got {p[MAX_SPEED]}")
        if not p[MIN_POSITION] <= p[RESET_LOW] <= p[RESET_HIGH] <= p[MAX_POSITION]:
            raise ValueError(
                f"{self.name}: need min_position <= reset_low <= reset_high <= max_position"
            )
        if p[ACTION_COST] < 0.0:
            raise ValueError(f"{self.name}: action_cost must be non-negative, got {p[ACTION_COST]}")
