"""CartPole: Gymnasium's ``CartPole-v1`` (Barto, Sutton & Anderson 1983) with a continuous
force and a smooth reward.

A pole is hinged on a cart that moves along a frictionless track; the cart is pushed left or
right to keep the pole upright and the cart on the track.

State
    ``[x, ẋ, θ, θ̇]``: cart position (m), cart velocity (m/s), pole angle from upright (rad,
    positive clockwise, never wrapped) and angular velocity; exactly Gym's internal float64
    state.
Action
    ``a ∈ [-1, 1]``: force ``F = force_mag · a`` on the cart, ``force_mag = 10`` N, so
    ``a = ±1`` is Gym's discrete push (action 1 / 0). Values outside are clipped (zero
    derivative there).
Dynamics (Gym's, one explicit Euler step of ``τ = 0.02`` s; ``l`` is half the pole's length,
``M = m_p + m_c``)::

    temp = (F + m_p l θ̇² sin θ) / M
    θ̈    = (g sin θ - cos θ · temp) / (l (4/3 - m_p cos² θ / M))          (1)
    ẍ    = temp - m_p l θ̈ cos θ / M                                       (2)
    x' = x + τ ẋ,   ẋ' = ẋ + τ ẍ,   θ' = θ + τ θ̇,   θ̇' = θ̇ + τ θ̈             (3)

    with Gym's constants g = 9.8, m_c = 1, m_p = 0.1, l = 0.5, and its order of operations,
    so that a step equals Gym's float64 step to rounding.
Reward (of the next state)
    ``r = 1 - ½ (1 - cos θ') / (1 - cos θ_max) - ½ (x' / x_max)²``  with ``θ_max = 12°``,
    ``x_max = 2.4``: 1 with the pole upright over the centre, falling smoothly to 0 at the
    corner of the alive region where both limits are reached; ``max_reward = 1``.
    Gym's reward (+1 per step alive) has zero gradient, so its ``dr/ds``, ``dr/da`` would teach
    a gradient-fitted critic nothing; this one keeps Gym's scale (≤ 1 per alive step, so
    ``max_reward × horizon`` is Gym's 500) and its incentive to stay alive (the reward is
    positive inside the alive region, so ending an episode early never pays), and adds a
    gradient towards an upright pole (``cos θ'``, normalised by its value at the angle limit)
    and a centred cart.
Start state
    every component uniform in ``[-0.05, 0.05]`` (Gym's).
Termination
    ``|x'| > 2.4`` or ``|θ'| > 12°`` (Gym's rule, on the next state).
Horizon
    500 steps (Gym's ``CartPole-v1`` time limit).

Jacobians. Only (1) and (2) are nonlinear, in ``θ``, ``θ̇`` and ``F``; with
``D = l (4/3 - m_p cos²θ / M)`` and ``N = g sin θ - cos θ · temp`` (so ``θ̈ = N / D``)::

    ∂temp/∂θ = m_p l θ̇² cos θ / M,  ∂temp/∂θ̇ = 2 m_p l θ̇ sin θ / M,  ∂temp/∂F = 1 / M
    ∂N/∂θ = g cos θ + sin θ · temp - cos θ ∂temp/∂θ,   ∂N/∂(θ̇, F) = -cos θ ∂temp/∂(θ̇, F)
    ∂D/∂θ = 2 l m_p cos θ sin θ / M
    ∂θ̈/∂θ = (∂N/∂θ - θ̈ ∂D/∂θ) / D,   ∂θ̈/∂(θ̇, F) = ∂N/∂(θ̇, F) / D       (quotient rule)
    ∂ẍ/∂θ = ∂temp/∂θ - m_p l (∂θ̈/∂θ cos θ - θ̈ sin θ) / M
    ∂ẍ/∂(θ̇, F) = ∂temp/∂(θ̇, F) - m_p l cos θ ∂θ̈/∂(θ̇, F) / M

and by (3) ``J_s = I + τ [[0, 1, 0, 0], [0, 0, ∂ẍ/∂θ, ∂ẍ/∂θ̇], [0, 0, 0, 1],
[0, 0, ∂θ̈/∂θ, ∂θ̈/∂θ̇]]``, ``J_a = τ force_mag [0, ∂ẍ/∂F, 0, ∂θ̈/∂F]ᵀ`` (zero where the
action is clipped). The reward depends on ``s'`` only: ``dr/ds = J_sᵀ ∂r/∂s'``,
``dr/da = J_aᵀ ∂r/∂s'`` with ``∂r/∂x' = -x'/x_max²``, ``∂r/∂θ' = -½ sin θ' / (1 - cos θ_max)``.
"""

import math

from fastd3pg import rng as _rng
from fastd3pg._jit import jit
from fastd3pg.physics.base import Env

# Compiled loops call the kernels through fastd3pg.physics.dispatch (one call per step); the
# helpers below are inlined into the kernels.

# Parameter vector layout.
GRAVITY, MASSCART, MASSPOLE, LENGTH, FORCE_MAG, TAU, THETA_MAX, X_MAX, RESET_HIGH = range(9)


@jit(inline="always")
def reset(p, rng, out):
    for i in range(4):
        out[i] = _rng.uniform_range(rng, -p[RESET_HIGH], p[RESET_HIGH])


@jit(inline="always")
def _accelerations(p, theta, theta_dot, force):
    """Gym's (1) and (2) in Gym's order of operations; also returns the pieces the
    derivatives reuse."""
    total_mass = p[MASSPOLE] + p[MASSCART]
    polemass_length = p[MASSPOLE] * p[LENGTH]
    cos_t = math.cos(theta)
    sin_t = math.sin(theta)
    temp = (force + polemass_length * (theta_dot * theta_dot) * sin_t) / total_mass
    den = p[LENGTH] * (4.0 / 3.0 - p[MASSPOLE] * (cos_t * cos_t) / total_mass)
    theta_acc = (p[GRAVITY] * sin_t - cos_t * temp) / den
    x_acc = temp - polemass_length * theta_acc * cos_t / total_mass
    return x_acc, theta_acc, temp, den, cos_t, sin_t


@jit(inline="always")
def _euler(p, s, x_acc, theta_acc, out):
    tau = p[TAU]
    out[0] = s[0] + tau * s[1]
    out[1] = s[1] + tau * x_acc
    out[2] = s[2] + tau * s[3]
    out[3] = s[3] + tau * theta_acc


@jit(inline="always")
def _reward_terminated(p, out):
    """The smooth reward of the next state, its partials in ``x'`` and ``θ'``, and Gym's
    termination rule."""
    one_minus_cos_max = 1.0 - math.cos(p[THETA_MAX])
    x_rel = out[0] / p[X_MAX]
    reward = 1.0 - 0.5 * (1.0 - math.cos(out[2])) / one_minus_cos_max - 0.5 * x_rel * x_rel
    dr_dx = -x_rel / p[X_MAX]
    dr_dtheta = -0.5 * math.sin(out[2]) / one_minus_cos_max
    terminated = (
        out[0] < -p[X_MAX] or out[0] > p[X_MAX] or out[2] < -p[THETA_MAX] or out[2] > p[THETA_MAX]
    )
    return reward, dr_dx, dr_dtheta, terminated


@jit(inline="always")
def step(p, s, a, out):
    u = min(max(a[0], -1.0), 1.0)
    x_acc, theta_acc, _, _, _, _ = _accelerations(p, s[2], s[3], p[FORCE_MAG] * u)
    _euler(p, s, x_acc, theta_acc, out)
    reward, _, _, terminated = _reward_terminated(p, out)
    return reward, terminated


@jit(inline="always")
def step_jac(p, s, a, out, J_s, J_a, dr_ds, dr_da):
    u = min(max(a[0], -1.0), 1.0)
    du_da = 1.0 if -1.0 < a[0] < 1.0 else 0.0
    theta_dot = s[3]
    x_acc, theta_acc, temp, den, c, sn = _accelerations(p, s[2], theta_dot, p[FORCE_MAG] * u)
    _euler(p, s, x_acc, theta_acc, out)
    reward, dr_dx, dr_dtheta, terminated = _reward_terminated(p, out)

    M = p[MASSPOLE] + p[MASSCART]
    ml = p[MASSPOLE] * p[LENGTH]
    tau = p[TAU]
    # Partials of temp, of the numerator N of θ̈ and of its denominator D (docstring).
    dtemp_dth = ml * theta_dot * theta_dot * c / M
    dtemp_dthd = 2.0 * ml * theta_dot * sn / M
    dtemp_dF = 1.0 / M
    dN_dth = p[GRAVITY] * c + sn * temp - c * dtemp_dth
    dD_dth = 2.0 * p[LENGTH] * p[MASSPOLE] * c * sn / M
    dthacc_dth = (dN_dth - theta_acc * dD_dth) / den
    dthacc_dthd = -c * dtemp_dthd / den
    dthacc_dF = -c * dtemp_dF / den
    dxacc_dth = dtemp_dth - ml * (dthacc_dth * c - theta_acc * sn) / M
    dxacc_dthd = dtemp_dthd - ml * c * dthacc_dthd / M
    dxacc_dF = dtemp_dF - ml * c * dthacc_dF / M

    # (3): J_s = I + τ ∂(ẋ, ẍ, θ̇, θ̈)/∂s.
    J_s[:, :] = 0.0
    for i in range(4):
        J_s[i, i] = 1.0
    J_s[0, 1] = tau
    J_s[1, 2] = tau * dxacc_dth
    J_s[1, 3] = tau * dxacc_dthd
    J_s[2, 3] = tau
    J_s[3, 2] = tau * dthacc_dth
    J_s[3, 3] = 1.0 + tau * dthacc_dthd
    dF_da = p[FORCE_MAG] * du_da
    J_a[0, 0] = 0.0
    J_a[1, 0] = tau * dxacc_dF * dF_da
    J_a[2, 0] = 0.0
    J_a[3, 0] = tau * dthacc_dF * dF_da

    # The reward depends on x' (row 0) and θ' (row 2) only.
    for j in range(4):
        dr_ds[j] = dr_dx * J_s[0, j] + dr_dtheta * J_s[2, j]
    dr_da[0] = dr_dx * J_a[0, 0] + dr_dtheta * J_a[2, 0]
    return reward, terminated


class CartPole(Env):
    __doc__ = __doc__
    name = "CartPole"
    state_dim = 4
    action_dim = 1
    horizon = 500
    dt = 0.02
    max_reward = 1.0
    param_names = (
        "gravity", "masscart", "masspole", "length", "force_mag", "tau", "theta_threshold",
        "x_threshold", "reset_high",
    )
    default_params = (9.8, 1.0, 0.1, 0.5, 10.0, 0.02, 12 * 2 * math.pi / 360, 2.4, 0.05)
    reset_kernel = staticmethod(reset)
    step_kernel = staticmethod(step)
    step_jac_kernel = staticmethod(step_jac)

    def __init__(self, **params):
        super().__init__(**params)
        for key in ("masscart", "masspole", "length", "tau", "theta_threshold", "x_threshold"):
            value = self.params[self.param_names.index(key)]
            if not value > 0.0:
                raise ValueError(f"{self.name}: {key} must be positive, got {value}")
        self.dt = float(self.params[TAU])

