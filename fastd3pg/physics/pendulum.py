"""Pendulum: Gymnasium's ``Pendulum-v1``, the torque-limited inverted-pendulum swing-up.

A rigid rod of mass ``m = 1`` and length ``l = 1`` hangs from a motorised pivot under gravity
``g = 10``; the motor's torque is too weak to lift the rod straight up, so it must swing.

State
    ``[cos θ, sin θ, θ̇]``: Gym's observation, with ``θ`` the angle from upright (rad) and ``θ̇``
    the angular velocity (|θ̇| ≤ 8 rad/s). The kernel reads ``θ = atan2(sin θ, cos θ)``
    (a pair off the unit circle is projected onto it).
Action
    ``a ∈ [-1, 1]``: torque ``u = max_torque · a`` with ``max_torque = 2`` (Gym's action is
    ``[2 a]``); values outside are clipped (zero derivative there).
Dynamics (Gym's, one semi-implicit Euler step of ``dt = 0.05`` s)::

    θ̇' = clip(θ̇ + (3 g / (2 l) sin θ + 3 / (m l²) u) dt, -8, 8)                    (1)
    θ'  = θ + θ̇' dt                                                              (2)

    in Gym's order of operations, so that a step equals Gym's float64 step to rounding
    (Gym keeps θ unwrapped; cos and sin of it agree).
Reward (Gym's, of the current state and the torque)
    ``r = -(θ² + 0.1 θ̇² + 0.001 u²)`` with ``θ ∈ (-π, π]`` (Gym's ``angle_normalize``; here
    ``atan2`` gives it directly). It is differentiable everywhere except across ``θ = ±π``
    (hanging straight down), where ``∂r/∂θ = -2θ`` jumps from ``-2π`` to ``2π``; the two
    one-sided gradients both point away from the bottom, which is what the task needs, so
    Gym's reward is kept. ``max_reward = 0`` (upright, at rest, no torque).
Start state
    ``θ ~ U(-π, π)``, ``θ̇ ~ U(-1, 1)`` (Gym's).
Termination
    never (Gym's).
Horizon
    200 steps (Gym's ``Pendulum-v1`` time limit).

Jacobians. With ``k = 1`` where (1) is not clipped and ``k = 0`` where it is::

    ∂θ̇'/∂θ = k (3 g / (2 l)) cos θ dt,   ∂θ̇'/∂θ̇ = k,   ∂θ̇'/∂u = k 3 dt / (m l²)
    ∂θ'/∂· = ∂θ/∂· + dt ∂θ̇'/∂·            (by (2), with ∂θ/∂θ = 1, ∂θ/∂θ̇ = ∂θ/∂u = 0)

Output rows ``∂cos θ'/∂· = -sin θ' ∂θ'/∂·``, ``∂sin θ'/∂· = cos θ' ∂θ'/∂·``; input columns of
``cos θ``, ``sin θ`` through ``θ = atan2(s, c)``: ``∂θ/∂c = -s/(c² + s²)``,
``∂θ/∂s = c/(c² + s²)``. The reward depends on ``(s, a)`` directly:
``dr/dθ = -2θ``, ``dr/dθ̇ = -0.2 θ̇``, ``dr/da = -0.002 u · max_torque`` (zero where clipped).
"""

import math

from fastd3pg import rng as _rng
from fastd3pg._jit import jit
from fastd3pg.physics.base import Env

# Compiled loops call the kernels through fastd3pg.physics.dispatch (one call per step); the
# helpers below are inlined into the kernels.

# Parameter vector layout.
MAX_SPEED, MAX_TORQUE, DT, GRAVITY, MASS, LENGTH = range(6)


@jit(inline="always")
def reset(p, rng, out):
    theta = _rng.uniform_range(rng, -math.pi, math.pi)
    out[0] = math.cos(theta)
    out[1] = math.sin(theta)
    out[2] = _rng.uniform_range(rng, -1.0, 1.0)


@jit(inline="always")
def _speed(p, theta, theta_dot, torque):
    """(1) before the clip, in Gym's order of operations."""
    g, m, l = p[GRAVITY], p[MASS], p[LENGTH]
    return theta_dot + (3.0 * g / (2.0 * l) * math.sin(theta) + 3.0 / (m * l * l) * torque) * p[DT]


@jit(inline="always")
def _forward(p, s, a, out):
    """The reward and (1), (2) into ``out``; returns the reward and the pieces the Jacobian
    reuses: the torque, ``θ``, ``θ̇`` and (1) before its clip."""
    torque = p[MAX_TORQUE] * min(max(a[0], -1.0), 1.0)
    theta, theta_dot = math.atan2(s[1], s[0]), s[2]
    reward = -(theta * theta + 0.1 * theta_dot * theta_dot + 0.001 * (torque * torque))
    raw = _speed(p, theta, theta_dot, torque)
    speed = min(max(raw, -p[MAX_SPEED]), p[MAX_SPEED])
    theta_next = theta + speed * p[DT]
    out[0] = math.cos(theta_next)
    out[1] = math.sin(theta_next)
    out[2] = speed
    return reward, torque, theta, theta_dot, raw


@jit(inline="always")
def step(p, s, a, out):
    reward, _, _, _, _ = _forward(p, s, a, out)
    return reward, False


@jit(inline="always")
def step_jac(p, s, a, out, J_s, J_a, dr_ds, dr_da):
    du_da = p[MAX_TORQUE] if -1.0 < a[0] < 1.0 else 0.0
    reward, torque, theta, theta_dot, raw = _forward(p, s, a, out)
    cn, sn = out[0], out[1]
    rho2 = s[0] * s[0] + s[1] * s[1]
    # atan2 has no derivative at the origin; a zero there keeps the Jacobian finite.
    inv_rho2 = 1.0 / rho2 if rho2 > 0.0 else 0.0
    dth_dc, dth_ds = -s[1] * inv_rho2, s[0] * inv_rho2
    max_speed, dt = p[MAX_SPEED], p[DT]

    k = 1.0 if -max_speed < raw < max_speed else 0.0
    g, m, l = p[GRAVITY], p[MASS], p[LENGTH]
    dsp_dth = k * 3.0 * g / (2.0 * l) * math.cos(theta) * dt
    dsp_dthd = k
    dsp_du = k * 3.0 / (m * l * l) * dt
    dthn_dth = 1.0 + dt * dsp_dth
    dthn_dthd = dt * dsp_dthd
    # Columns (cos θ, sin θ) through atan2, column θ̇ directly; rows cos θ', sin θ', θ̇'.
    J_s[0, 0] = -sn * dthn_dth * dth_dc
    J_s[0, 1] = -sn * dthn_dth * dth_ds
    J_s[0, 2] = -sn * dthn_dthd
    J_s[1, 0] = cn * dthn_dth * dth_dc
    J_s[1, 1] = cn * dthn_dth * dth_ds
    J_s[1, 2] = cn * dthn_dthd
    J_s[2, 0] = dsp_dth * dth_dc
    J_s[2, 1] = dsp_dth * dth_ds
    J_s[2, 2] = dsp_dthd
    dthn_da = dt * dsp_du * du_da
    J_a[0, 0] = -sn * dthn_da
    J_a[1, 0] = cn * dthn_da
    J_a[2, 0] = dsp_du * du_da

    dr_dth = -2.0 * theta
    dr_ds[0] = dr_dth * dth_dc
    dr_ds[1] = dr_dth * dth_ds
    dr_ds[2] = -0.2 * theta_dot
    dr_da[0] = -0.002 * torque * du_da
    return reward, False


class Pendulum(Env):
    __doc__ = __doc__
    name = "Pendulum"
    state_dim = 3
    action_dim = 1
    horizon = 200
    dt = 0.05
    max_reward = 0.0
    param_names = ("max_speed", "max_torque", "dt", "g", "m", "l")
    default_params = (8.0, 2.0, 0.05, 10.0, 1.0, 1.0)
    reset_kernel = staticmethod(reset)
    step_kernel = staticmethod(step)
    step_jac_kernel = staticmethod(step_jac)

    def __init__(self, **params):
        super().__init__(**params)
        for key in ("max_speed", "max_torque", "dt", "m", "l"):
            value = self.params[self.param_names.index(key)]
            if not value > 0.0:
                raise ValueError(f"{self.name}: {key} must be positive, got {value}")
        self.dt = float(self.params[DT])
