"""Acrobot: Gymnasium's ``Acrobot-v1`` (Sutton 1996; Sutton & Barto's book dynamics), with a
continuous torque.

Two links hang in a chain from a fixed pivot; only the joint between them is motorised. The
free end must be swung above a line one link-length above the pivot.

State
    ``[cos θ1, sin θ1, cos θ2, sin θ2, θ̇1, θ̇2]``: Gym's observation, with ``θ1`` the first
    link's angle from hanging down, ``θ2`` the second link's angle relative to the first (rad),
    and their velocities (|θ̇1| ≤ 4π, |θ̇2| ≤ 9π rad/s). The kernel reads
    ``θi = atan2(sin θi, cos θi)`` (a pair off the unit circle is projected onto it).
Action
    ``a ∈ [-1, 1]``: torque ``τ = a`` (N m) on the middle joint, so ``a ∈ {-1, 0, 1}`` is Gym's
    discrete action ``{0, 1, 2}``; values outside are clipped (zero derivative there).
Dynamics (Gym's book dynamics, ``m1 = m2 = 1``, ``l1 = 1``, ``lc1 = lc2 = 0.5``,
``I1 = I2 = 1``, ``g = 9.8``)::

    d1 = m1 lc1² + m2 (l1² + lc2² + 2 l1 lc2 cos θ2) + I1 + I2
    d2 = m2 (lc2² + l1 lc2 cos θ2) + I2
    φ2 = m2 lc2 g cos(θ1 + θ2 - π/2)
    φ1 = -m2 l1 lc2 θ̇2² sin θ2 - 2 m2 l1 lc2 θ̇2 θ̇1 sin θ2 + (m1 lc1 + m2 l1) g cos(θ1 - π/2) + φ2
    θ̈2 = (τ + d2/d1 φ1 - m2 l1 lc2 θ̇1² sin θ2 - φ2) / (m2 lc2² + I2 - d2²/d1)          (1)
    θ̈1 = -(d2 θ̈2 + φ1) / d1                                                       (2)

    integrated over ``dt = 0.2`` s by one RK4 step of ``(θ1, θ2, θ̇1, θ̇2)`` with ``τ`` held
    (:mod:`fastd3pg.physics.integrators`, Gym's ``rk4``), then Gym's ``wrap`` of both angles
    into ``[-π, π]`` and ``bound`` (clip) of ``θ̇1`` to ``±4π`` and ``θ̇2`` to ``±9π``, all in
    Gym's order of operations, so that a step equals Gym's float64 step to rounding.
Reward
    ``-1`` per step, ``0`` at the step that reaches the goal (Gym's; the paper's Acrobot
    reward). It is piecewise constant: ``dr_ds = dr_da = 0`` and ``differentiable_reward`` is
    False. ``max_reward = 0``.
Start state
    ``θ1, θ2, θ̇1, θ̇2`` each uniform in ``[-0.1, 0.1]`` (Gym's; here in float64, Gym rounds
    them to float32).
Termination
    ``-cos θ1' - cos(θ2' + θ1') > 1`` (Gym's: the free end above the line), on the next state.
Horizon
    500 steps (Gym's ``Acrobot-v1`` time limit).

Jacobians. Of the dynamics ``f = (θ̇1, θ̇2, θ̈1, θ̈2)`` (rows 0, 1 of ``∂f/∂y`` are
``[0 0 1 0]``, ``[0 0 0 1]``), with ``s2 = sin θ2``, ``c2 = cos θ2``, ``μ = m2 l1 lc2``,
``ψ1 = -sin(θ1 - π/2)``, ``ψ2 = -sin(θ1 + θ2 - π/2)``, ``q = d2/d1``, ``D`` and ``N`` the
denominator and numerator of (1)::

    ∂d1/∂θ2 = -2 μ s2,   ∂d2/∂θ2 = -μ s2,   ∂φ2/∂θ1 = ∂φ2/∂θ2 = m2 lc2 g ψ2
    ∂φ1/∂θ1 = (m1 lc1 + m2 l1) g ψ1 + ∂φ2/∂θ1
    ∂φ1/∂θ2 = -μ θ̇2² c2 - 2 μ θ̇2 θ̇1 c2 + ∂φ2/∂θ2
    ∂φ1/∂θ̇1 = -2 μ θ̇2 s2,   ∂φ1/∂θ̇2 = -2 μ θ̇2 s2 - 2 μ θ̇1 s2
    ∂q/∂θ2 = (∂d2/∂θ2 - q ∂d1/∂θ2) / d1,   ∂D/∂θ2 = -(2 q ∂d2/∂θ2 - q² ∂d1/∂θ2)
    ∂N/∂x = ∂q/∂x φ1 + q ∂φ1/∂x - μ ∂(θ̇1² s2)/∂x - ∂φ2/∂x,   ∂N/∂τ = 1
    ∂θ̈2/∂x = (∂N/∂x - θ̈2 ∂D/∂x) / D                                         (quotient rule)
    ∂θ̈1/∂x = -(∂d2/∂x θ̈2 + d2 ∂θ̈2/∂x + ∂φ1/∂x + θ̈1 ∂d1/∂x) / d1     (differentiating d1 θ̈1)

The RK4 map's Jacobian follows stage by stage (integrators, (3)-(5)). ``wrap`` shifts by
multiples of 2π (derivative 1); a clipped velocity has a zero row. Output rows
``∂cos θi'/∂· = -sin θi' ∂θi'/∂·``, ``∂sin θi'/∂· = cos θi' ∂θi'/∂·``; input columns of
``cos θi``, ``sin θi`` through ``θi = atan2(s, c)``: ``∂θi/∂c = -s/(c² + s²)``,
``∂θi/∂s = c/(c² + s²)``; the action column is ``∂/∂τ`` (``∂τ/∂a = 1`` inside ``[-1, 1]``).
"""

import math

import numpy as np

from fastd3pg import rng as _rng
from fastd3pg._jit import jit
from fastd3pg.physics import integrators as rk
from fastd3pg.physics.base import Env
from fastd3pg.physics.scratch import stack_empty

# Compiled loops call the kernels through fastd3pg.physics.dispatch. The kernel contract passes no workspace, so the RK4 stages' vectors and
# Jacobians live in scratch arrays on the stack (no allocation per step).

# Parameter vector layout.
M1, M2, L1, LC1, LC2, MOI, GRAVITY, DT, MAX_VEL_1, MAX_VEL_2, RESET_HIGH = range(11)

_TWO_PI = math.pi - (-math.pi)  # Gym's wrap period, M - m
# Scratch sizes: y0, stage point, k1..k4 (6 vectors of 4); K1..K4, Y, J, [F G] (7 of 4×5).
_VECTORS, _MATRICES = 6 * 4, 7 * 4 * 5


@jit(inline="always")
def reset(p, rng, out):
    h = p[RESET_HIGH]
    theta1 = _rng.uniform_range(rng, -h, h)
    theta2 = _rng.uniform_range(rng, -h, h)
    out[4] = _rng.uniform_range(rng, -h, h)
    out[5] = _rng.uniform_range(rng, -h, h)
    out[0] = math.cos(theta1)
    out[1] = math.sin(theta1)
    out[2] = math.cos(theta2)
    out[3] = math.sin(theta2)


@jit(inline="always")
def _accelerations(p, th1, th2, dth1, dth2, torque):
    """(1) and (2) in Gym's order of operations, and the pieces their derivatives reuse."""
    m1, m2, l1, lc1, lc2 = p[M1], p[M2], p[L1], p[LC1], p[LC2]
    I1 = I2 = p[MOI]
    g = p[GRAVITY]
    c2 = math.cos(th2)
    s2 = math.sin(th2)
    d1 = m1 * (lc1 * lc1) + m2 * (l1 * l1 + lc2 * lc2 + 2.0 * l1 * lc2 * c2) + I1 + I2
    d2 = m2 * (lc2 * lc2 + l1 * lc2 * c2) + I2
    phi2 = m2 * lc2 * g * math.cos(th1 + th2 - math.pi / 2.0)
    phi1 = (
        -m2 * l1 * lc2 * (dth2 * dth2) * s2
        - 2.0 * m2 * l1 * lc2 * dth2 * dth1 * s2
        + (m1 * lc1 + m2 * l1) * g * math.cos(th1 - math.pi / 2.0)
        + phi2
    )
    den = m2 * (lc2 * lc2) + I2 - (d2 * d2) / d1
    ddth2 = (torque + d2 / d1 * phi1 - m2 * l1 * lc2 * (dth1 * dth1) * s2 - phi2) / den
    ddth1 = -(d2 * ddth2 + phi1) / d1
    return ddth1, ddth2, c2, s2, d1, d2, phi1, den


@jit(inline="always")
def _dsdt(p, y, torque, k):
    """``k = f(y)``: Gym's ``_dsdt`` (its 5th component, the held torque's slope 0, dropped)."""
    ddth1, ddth2, _, _, _, _, _, _ = _accelerations(p, y[0], y[1], y[2], y[3], torque)
    k[0] = y[2]
    k[1] = y[3]
    k[2] = ddth1
    k[3] = ddth2


@jit(inline="always")
def _dsdt_jac(p, y, torque, k, F, G):
    """``k = f(y)``, ``F = ∂f/∂y`` (4×4), ``G = ∂f/∂τ`` (4×1); the derivation is in the module
    docstring."""
    th1, th2, dth1, dth2 = y[0], y[1], y[2], y[3]
    ddth1, ddth2, c2, s2, d1, d2, phi1, den = _accelerations(p, th1, th2, dth1, dth2, torque)
    k[0] = dth1
    k[1] = dth2
    k[2] = ddth1
    k[3] = ddth2

    m1, m2, l1, lc1, lc2, g = p[M1], p[M2], p[L1], p[LC1], p[LC2], p[GRAVITY]
    mu = m2 * l1 * lc2
    dd1_2 = -2.0 * mu * s2
    dd2_2 = -mu * s2
    dphi2 = -m2 * lc2 * g * math.sin(th1 + th2 - math.pi / 2.0)  # same in θ1 and θ2
    dphi1_1 = -(m1 * lc1 + m2 * l1) * g * math.sin(th1 - math.pi / 2.0) + dphi2
    dphi1_2 = -mu * dth2 * dth2 * c2 - 2.0 * mu * dth2 * dth1 * c2 + dphi2
    dphi1_3 = -2.0 * mu * dth2 * s2
    dphi1_4 = -2.0 * mu * dth2 * s2 - 2.0 * mu * dth1 * s2
    q = d2 / d1
    dq_2 = (dd2_2 - q * dd1_2) / d1
    dden_2 = -(2.0 * q * dd2_2 - q * q * dd1_2)
    # ∂θ̈2 by the quotient rule on N / D; only θ2 moves d1, d2 and D.
    dN_1 = q * dphi1_1 - dphi2
    dN_2 = dq_2 * phi1 + q * dphi1_2 - mu * dth1 * dth1 * c2 - dphi2
    dN_3 = q * dphi1_3 - 2.0 * mu * dth1 * s2
    dN_4 = q * dphi1_4
    da2_1 = dN_1 / den
    da2_2 = (dN_2 - ddth2 * dden_2) / den
    da2_3 = dN_3 / den
    da2_4 = dN_4 / den
    da2_u = 1.0 / den
    # ∂θ̈1 from d1 θ̈1 = -(d2 θ̈2 + φ1).
    da1_1 = -(d2 * da2_1 + dphi1_1) / d1
    da1_2 = -(dd2_2 * ddth2 + d2 * da2_2 + dphi1_2 + ddth1 * dd1_2) / d1
    da1_3 = -(d2 * da2_3 + dphi1_3) / d1
    da1_4 = -(d2 * da2_4 + dphi1_4) / d1
    da1_u = -d2 * da2_u / d1

    F[0, 0] = 0.0
    F[0, 1] = 0.0
    F[0, 2] = 1.0
    F[0, 3] = 0.0
    F[1, 0] = 0.0
    F[1, 1] = 0.0
    F[1, 2] = 0.0
    F[1, 3] = 1.0
    F[2, 0] = da1_1
    F[2, 1] = da1_2
    F[2, 2] = da1_3
    F[2, 3] = da1_4
    F[3, 0] = da2_1
    F[3, 1] = da2_2
    F[3, 2] = da2_3
    F[3, 3] = da2_4
    G[0, 0] = 0.0
    G[1, 0] = 0.0
    G[2, 0] = da1_u
    G[3, 0] = da2_u


@jit(inline="always")
def _wrap(x):
    """Gym's ``wrap(x, -π, π)``: shift by its period until inside. A value too large for a few
    shifts is first reduced modulo 2π (Gym would loop for ever on it; a valid state never
    gets there), exactly (``%``, by ``fmod``) where that reduction's rounding leaves it
    large (beyond ~1e16), so the kernel always ends, and soon."""
    if not abs(x) <= 64.0 * math.pi:
        x = x - _TWO_PI * math.floor(x / _TWO_PI)
        if not abs(x) <= 64.0 * math.pi:
            x = x % _TWO_PI
    while x > math.pi:
        x = x - _TWO_PI
    while x < -math.pi:
        x = x + _TWO_PI
    return x


@jit(inline="always")
def _read_state(s, y0):
    """The internal state ``(θ1, θ2, θ̇1, θ̇2)`` of the state vector, into ``y0``."""
    y0[0] = math.atan2(s[1], s[0])
    y0[1] = math.atan2(s[3], s[2])
    y0[2] = s[4]
    y0[3] = s[5]


@jit(inline="always")
def _finish(p, ns, out):
    """Gym's wrap and bound of the RK4 result ``ns``, the state vector into ``out``, the reward
    and the termination rule."""
    th1 = _wrap(ns[0])
    th2 = _wrap(ns[1])
    out[0] = math.cos(th1)
    out[1] = math.sin(th1)
    out[2] = math.cos(th2)
    out[3] = math.sin(th2)
    out[4] = min(max(ns[2], -p[MAX_VEL_1]), p[MAX_VEL_1])
    out[5] = min(max(ns[3], -p[MAX_VEL_2]), p[MAX_VEL_2])
    terminated = -math.cos(th1) - math.cos(th2 + th1) > 1.0
    return (0.0 if terminated else -1.0), terminated


@jit(inline="always")
def step(p, s, a, out):
    torque = min(max(a[0], -1.0), 1.0)
    h = p[DT]
    V = stack_empty(_VECTORS, np.float64).reshape((6, 4))  # y0, stage point, k1..k4
    y0, y, k1, k2, k3, k4 = V[0], V[1], V[2], V[3], V[4], V[5]
    _read_state(s, y0)
    _dsdt(p, y0, torque, k1)
    rk.stage_point(y0, k1, h / 2.0, y)
    _dsdt(p, y, torque, k2)
    rk.stage_point(y0, k2, h / 2.0, y)
    _dsdt(p, y, torque, k3)
    rk.stage_point(y0, k3, h, y)
    _dsdt(p, y, torque, k4)
    rk.combine(y0, k1, k2, k3, k4, h, y)
    return _finish(p, y, out)


@jit(inline="always")
def step_jac(p, s, a, out, J_s, J_a, dr_ds, dr_da):
    torque = min(max(a[0], -1.0), 1.0)
    du_da = 1.0 if -1.0 < a[0] < 1.0 else 0.0
    h = p[DT]
    V = stack_empty(_VECTORS, np.float64).reshape((6, 4))  # y0, stage point, k1..k4
    y0, y, k1, k2, k3, k4 = V[0], V[1], V[2], V[3], V[4], V[5]
    M = stack_empty(_MATRICES, np.float64).reshape((7, 4, 5))  # K1..K4, Y, J, [F G]
    K1, K2, K3, K4, Y, J = M[0], M[1], M[2], M[3], M[4], M[5]
    F, G = M[6, :, :4], M[6, :, 4:]
    _read_state(s, y0)
    # RK4 stage by stage with the chain rule (integrators (1), (3), (4)).
    rk.start_tangent(Y)
    _dsdt_jac(p, y0, torque, k1, F, G)
    rk.stage_jacobian(F, G, Y, K1)
    rk.stage_point(y0, k1, h / 2.0, y)
    rk.stage_tangent(K1, h / 2.0, Y)
    _dsdt_jac(p, y, torque, k2, F, G)
    rk.stage_jacobian(F, G, Y, K2)
    rk.stage_point(y0, k2, h / 2.0, y)
    rk.stage_tangent(K2, h / 2.0, Y)
    _dsdt_jac(p, y, torque, k3, F, G)
    rk.stage_jacobian(F, G, Y, K3)
    rk.stage_point(y0, k3, h, y)
    rk.stage_tangent(K3, h, Y)
    _dsdt_jac(p, y, torque, k4, F, G)
    rk.stage_jacobian(F, G, Y, K4)
    rk.combine(y0, k1, k2, k3, k4, h, y)
    rk.combine_jacobian(K1, K2, K3, K4, h, J)
    reward, terminated = _finish(p, y, out)

    # Output rows: cos/sin of the wrapped angles (wrap has derivative 1), clipped velocities.
    row = (-out[1], out[0], -out[3], out[2],
           1.0 if -p[MAX_VEL_1] < y[2] < p[MAX_VEL_1] else 0.0,
           1.0 if -p[MAX_VEL_2] < y[3] < p[MAX_VEL_2] else 0.0)
    # Input columns: (cos θi, sin θi) through atan2; a zero at the origin keeps J finite.
    r1 = s[0] * s[0] + s[1] * s[1]
    r2 = s[2] * s[2] + s[3] * s[3]
    inv1 = 1.0 / r1 if r1 > 0.0 else 0.0
    inv2 = 1.0 / r2 if r2 > 0.0 else 0.0
    col = (-s[1] * inv1, s[0] * inv1, -s[3] * inv2, s[2] * inv2)
    for i in range(6):
        ji = i // 2 if i < 4 else i - 2  # the internal row behind output row i
        w = row[i]
        J_s[i, 0] = w * J[ji, 0] * col[0]
        J_s[i, 1] = w * J[ji, 0] * col[1]
        J_s[i, 2] = w * J[ji, 1] * col[2]
        J_s[i, 3] = w * J[ji, 1] * col[3]
        J_s[i, 4] = w * J[ji, 2]
        J_s[i, 5] = w * J[ji, 3]
        J_a[i, 0] = w * J[ji, 4] * du_da
        dr_ds[i] = 0.0
    dr_da[0] = 0.0
    return reward, terminated


class Acrobot(Env):
    __doc__ = __doc__
    name = "Acrobot"
    state_dim = 6
    action_dim = 1
    horizon = 500
    dt = 0.2
    max_reward = 0.0
    differentiable_reward = False
    param_names = (
        "link_mass_1", "link_mass_2", "link_length_1", "link_com_pos_1", "link_com_pos_2",
        "link_moi", "g", "dt", "max_vel_1", "max_vel_2", "reset_high",
    )
    default_params = (1.0, 1.0, 1.0, 0.5, 0.5, 1.0, 9.8, 0.2, 4 * math.pi, 9 * math.pi, 0.1)
    reset_kernel = staticmethod(reset)
    step_kernel = staticmethod(step)
    step_jac_kernel = staticmethod(step_jac)

    def __init__(self, **params):
        super().__init__(**params)
        for key in ("link_mass_1", "link_mass_2", "link_length_1", "link_com_pos_1",
                    "link_com_pos_2", "link_moi", "dt", "max_vel_1", "max_vel_2"):
            value = self.params[self.param_names.index(key)]
            if not value > 0.0:
                raise ValueError(f"{self.name}: {key} must be positive, got {value}")
        if self.params[RESET_HIGH] < 0.0:
            raise ValueError(f"{self.name}: reset_high must be >= 0, got {self.params[RESET_HIGH]}")
        self.dt = float(self.params[DT])
