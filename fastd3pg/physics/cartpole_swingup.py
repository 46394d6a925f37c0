"""CartPoleSwingUp: the cart-pole swing-up of hardmaru's ``cartpole_swingup`` environment
(estool, 2017; itself from the Deep PILCO cart-pole of Gal, McAllister & Rasmussen 2016), the
definition most swing-up benchmarks use.

The pole starts hanging down; the cart must swing it up, balance it upright and stay near the
centre of a bounded track.

State
    ``[x, ẋ, cos θ, sin θ, θ̇]``: cart position (m) and velocity, the pole angle from upright
    (``θ = 0`` up, ``θ = π`` hanging) given by its cosine and sine, and its angular velocity.
    The angle enters as ``(cos θ, sin θ)`` because the pole turns full circles while swinging
    up: the pair is continuous where a wrapped angle jumps by 2π, and a network reads it
    without learning the periodicity (this is also the observation of hardmaru's env).
    The kernel reads ``θ = atan2(sin θ, cos θ)``, so a pair off the unit circle is projected.
Action
    ``a ∈ [-1, 1]``: force ``F = force_mag · a``, ``force_mag = 10`` N; values outside are
    clipped (zero derivative there).
Dynamics (hardmaru's; one explicit Euler step of ``dt = 0.01`` s)
    Cart mass ``m_c = 0.5``, pole mass ``m_p = 0.5``, pole length ``l = 0.6``, ``M = m_c + m_p``,
    cart friction ``b = 0.1``, ``g = 9.82``::

        ẍ = (-2 m_p l θ̇² sin θ + 3 m_p g sin θ cos θ + 4 F - 4 b ẋ) / (4 M - 3 m_p cos² θ)      (1)
        θ̈ = (-3 m_p l θ̇² sin θ cos θ + 6 M g sin θ + 6 (F - b ẋ) cos θ)
             / (4 l M - 3 m_p l cos² θ)                                                   (2)
        x' = x + dt ẋ,   θ' = θ + dt θ̇,   ẋ' = ẋ + dt ẍ,   θ̇' = θ̇ + dt θ̈                    (3)

    and the next state is ``[x', ẋ', cos θ', sin θ', θ̇']``.
Reward (of the next state, hardmaru's)
    ``r = ½ (1 + cos θ') · cos(π x' / (2 x_max))`` with ``x_max = 2.4``: the pole's height
    mapped to [0, 1] times a cart-centre term that is 1 at the centre and 0 at the track's
    ends; smooth everywhere; ``max_reward = 1`` (pole up, cart centred).
Start state
    ``(x, ẋ, θ, θ̇) ~ N((0, 0, π, 0), 0.2² I)`` (hardmaru's): hanging down, slightly perturbed.
Termination
    ``|x'| > 2.4``: the cart leaves the track.
Horizon
    1000 steps (10 s; hardmaru's time limit).

Jacobians. Write (1) as ``ẍ = N₁/D₁``, (2) as ``θ̈ = N₂/D₂``; with ``A = θ̇²``::

    ∂N₁/∂θ = -2 m_p l A cos θ + 3 m_p g (cos²θ - sin²θ),  ∂N₁/∂θ̇ = -4 m_p l θ̇ sin θ,
    ∂N₁/∂ẋ = -4 b,  ∂N₁/∂F = 4,  ∂D₁/∂θ = 6 m_p cos θ sin θ
    ∂N₂/∂θ = -3 m_p l A (cos²θ - sin²θ) + 6 M g cos θ - 6 (F - b ẋ) sin θ,
    ∂N₂/∂θ̇ = -6 m_p l θ̇ sin θ cos θ,  ∂N₂/∂ẋ = -6 b cos θ,  ∂N₂/∂F = 6 cos θ,
    ∂D₂/∂θ = 6 m_p l cos θ sin θ
    ∂(N/D)/∂θ = (∂N/∂θ - (N/D) ∂D/∂θ) / D        (quotient rule; D does not depend on θ̇, ẋ, F)

These give the Jacobian ``G`` of ``q' = (x', ẋ', θ', θ̇')`` in ``q = (x, ẋ, θ, θ̇)`` by (3).
The state-vector Jacobian follows by the chain rule at both ends: the input angle is
``θ = atan2(s, c)`` of the state's entries, ``∂θ/∂c = -s/(c² + s²)``, ``∂θ/∂s = c/(c² + s²)``
(the θ-column of ``G`` spreads over the two columns), and the output rows are
``∂cos θ'/∂· = -sin θ' ∂θ'/∂·``, ``∂sin θ'/∂· = cos θ' ∂θ'/∂·``. The reward depends on
``x'`` and ``θ'``: ``∂r/∂x' = -½ (1 + cos θ') sin(π x'/(2 x_max)) π/(2 x_max)``,
``∂r/∂θ' = -½ sin θ' cos(π x'/(2 x_max))``, and ``dr/ds``, ``dr/da`` chain them through the rows
of ``x'`` and ``θ'``.
"""

import math

from fastd3pg import rng as _rng
from fastd3pg._jit import jit
from fastd3pg.physics.base import Env

# Compiled loops call the kernels through fastd3pg.physics.dispatch (one call per step); the
# helpers below are inlined into the kernels.

# Parameter vector layout.
GRAVITY, MASSCART, MASSPOLE, LENGTH, FRICTION, FORCE_MAG, DT, X_MAX, RESET_STD = range(9)


@jit(inline="always")
def reset(p, rng, out):
    sd = p[RESET_STD]
    theta = math.pi + sd * _rng.normal(rng)
    out[0] = sd * _rng.normal(rng)
    out[1] = sd * _rng.normal(rng)
    out[2] = math.cos(theta)
    out[3] = math.sin(theta)
    out[4] = sd * _rng.normal(rng)


@jit(inline="always")
def _accelerations(p, x_dot, c, sn, theta_dot, force):
    """(1) and (2) with their numerators and denominators."""
    mp, l, b, g = p[MASSPOLE], p[LENGTH], p[FRICTION], p[GRAVITY]
    M = p[MASSCART] + mp
    A = theta_dot * theta_dot
    N1 = -2.0 * mp * l * A * sn + 3.0 * mp * g * sn * c + 4.0 * force - 4.0 * b * x_dot
    D1 = 4.0 * M - 3.0 * mp * c * c
    N2 = -3.0 * mp * l * A * sn * c + 6.0 * M * g * sn + 6.0 * (force - b * x_dot) * c
    D2 = 4.0 * l * M - 3.0 * mp * l * c * c
    return N1 / D1, N2 / D2, D1, D2


@jit(inline="always")
def _reward(p, x, cos_t):
    """The reward of the next state and its partials in ``x'`` and ``cos θ'``."""
    k = 0.5 * math.pi / p[X_MAX]
    r_theta = 0.5 * (1.0 + cos_t)
    r_x = math.cos(k * x)
    return r_theta * r_x, -r_theta * math.sin(k * x) * k, 0.5 * r_x


@jit(inline="always")
def _forward(p, s, a, out):
    """(1)-(3) into ``out``; returns the reward, its partials in ``x'`` and ``cos θ'``, the
    termination and the pieces the Jacobian reuses."""
    u = min(max(a[0], -1.0), 1.0)
    theta = math.atan2(s[3], s[2])
    c, sn = math.cos(theta), math.sin(theta)
    x_dot, theta_dot = s[1], s[4]
    force = p[FORCE_MAG] * u
    x_acc, theta_acc, D1, D2 = _accelerations(p, x_dot, c, sn, theta_dot, force)
    dt = p[DT]
    theta_next = theta + dt * theta_dot
    out[0] = s[0] + dt * x_dot
    out[1] = x_dot + dt * x_acc
    out[2] = math.cos(theta_next)
    out[3] = math.sin(theta_next)
    out[4] = theta_dot + dt * theta_acc
    reward, dr_dx, dr_dcos = _reward(p, out[0], out[2])
    terminated = out[0] < -p[X_MAX] or out[0] > p[X_MAX]
    return reward, dr_dx, dr_dcos, terminated, c, sn, force, x_acc, theta_acc, D1, D2


@jit(inline="always")
def step(p, s, a, out):
    reward, _, _, terminated, _, _, _, _, _, _, _ = _forward(p, s, a, out)
    return reward, terminated


@jit(inline="always")
def step_jac(p, s, a, out, J_s, J_a, dr_ds, dr_da):
    du_da = 1.0 if -1.0 < a[0] < 1.0 else 0.0
    reward, dr_dx, dr_dcos, terminated, c, sn, force, x_acc, theta_acc, D1, D2 = _forward(
        p, s, a, out
    )
    rho2 = s[2] * s[2] + s[3] * s[3]
    # atan2 has no derivative at the origin; a zero there keeps the Jacobian finite.
    inv_rho2 = 1.0 / rho2 if rho2 > 0.0 else 0.0
    dth_dc, dth_ds = -s[3] * inv_rho2, s[2] * inv_rho2
    x_dot, theta_dot = s[1], s[4]
    dt = p[DT]
    cn, sn_next = out[2], out[3]

    mp, l, b, g = p[MASSPOLE], p[LENGTH], p[FRICTION], p[GRAVITY]
    M = p[MASSCART] + mp
    A = theta_dot * theta_dot
    c2s2 = c * c - sn * sn
    # Partials of ẍ = N₁/D₁ and θ̈ = N₂/D₂ in (ẋ, θ, θ̇, F) (docstring).
    dxa_dxd = -4.0 * b / D1
    dxa_dth = (-2.0 * mp * l * A * c + 3.0 * mp * g * c2s2 - x_acc * 6.0 * mp * c * sn) / D1
    dxa_dthd = -4.0 * mp * l * theta_dot * sn / D1
    dxa_dF = 4.0 / D1
    dta_dxd = -6.0 * b * c / D2
    dta_dth = (
        -3.0 * mp * l * A * c2s2 + 6.0 * M * g * c - 6.0 * (force - b * x_dot) * sn
        - theta_acc * 6.0 * mp * l * c * sn
    ) / D2
    dta_dthd = -6.0 * mp * l * theta_dot * sn * c / D2
    dta_dF = 6.0 * c / D2

    # Rows of (3) in q = (x, ẋ, θ, θ̇), then θ spread over the (cos, sin) columns 2 and 3.
    J_s[0, 0], J_s[0, 1], J_s[0, 2], J_s[0, 3], J_s[0, 4] = 1.0, dt, 0.0, 0.0, 0.0
    J_s[1, 0] = 0.0
    J_s[1, 1] = 1.0 + dt * dxa_dxd
    J_s[1, 2] = dt * dxa_dth * dth_dc
    J_s[1, 3] = dt * dxa_dth * dth_ds
    J_s[1, 4] = dt * dxa_dthd
    # θ' = θ + dt θ̇: ∂θ'/∂θ = 1, ∂θ'/∂θ̇ = dt; rows of cos θ' and sin θ'.
    J_s[2, 0], J_s[2, 1], J_s[2, 2], J_s[2, 3], J_s[2, 4] = (
        0.0, 0.0, -sn_next * dth_dc, -sn_next * dth_ds, -sn_next * dt,
    )
    J_s[3, 0], J_s[3, 1], J_s[3, 2], J_s[3, 3], J_s[3, 4] = (
        0.0, 0.0, cn * dth_dc, cn * dth_ds, cn * dt,
    )
    J_s[4, 0] = 0.0
    J_s[4, 1] = dt * dta_dxd
    J_s[4, 2] = dt * dta_dth * dth_dc
    J_s[4, 3] = dt * dta_dth * dth_ds
    J_s[4, 4] = 1.0 + dt * dta_dthd
    dF_da = p[FORCE_MAG] * du_da
    J_a[0, 0] = 0.0
    J_a[1, 0] = dt * dxa_dF * dF_da
    J_a[2, 0] = 0.0
    J_a[3, 0] = 0.0
    J_a[4, 0] = dt * dta_dF * dF_da

    # r depends on x' (row 0) and cos θ' (row 2).
    for j in range(5):
        dr_ds[j] = dr_dx * J_s[0, j] + dr_dcos * J_s[2, j]
    dr_da[0] = 0.0
    return reward, terminated


class CartPoleSwingUp(Env):
    __doc__ = __doc__
    name = "CartPoleSwingUp"
    state_dim = 5
    action_dim = 1
    horizon = 1000
    dt = 0.01
    max_reward = 1.0
    param_names = (
        "gravity", "masscart", "masspole", "length", "friction", "force_mag", "dt",
        "x_threshold", "reset_std",
    )
    default_params = (9.82, 0.5, 0.5, 0.6, 0.1, 10.0, 0.01, 2.4, 0.2)
    reset_kernel = staticmethod(reset)
    step_kernel = staticmethod(step)
    step_jac_kernel = staticmethod(step_jac)

    def __init__(self, **params):
        super().__init__(**params)
        for key in ("masscart", "masspole", "length", "dt", "x_threshold"):
            value = self.params[self.param_names.index(key)]
            if not value > 0.0:
                raise ValueError(f"{self.name}: {key} must be positive, got {value}")
        if self.params[FRICTION] < 0.0 or self.params[RESET_STD] < 0.0:
            raise ValueError(f"{self.name}: friction and reset_std must be non-negative")
        self.dt = float(self.params[DT])
