"""RollingDie: a 2-D rigid die thrown onto the ground, with impulse-based collisions
(the paper's §5.1 and Figure 3).

The die is a square of half-size ``h`` (side ``2h``), mass ``m`` and moment of inertia
``I = m (2h)² / 6`` about its centre, under gravity ``g`` above a flat ground ``y = 0``.
An internal torque (a reaction wheel, say) changes its angular velocity; it cannot move the
centre except through the bounces, which is what makes the task interesting.

State
    ``[x, y, θ, vx, vy, ω]``: the centre's position (m), the angle (rad, counter-clockwise,
    never wrapped, so that the Jacobians are continuous), the centre's velocity and the
    angular velocity.  Corner ``k`` sits at body offset ``h·(cx_k, cy_k)`` with
    ``(cx, cy) = (1, 1), (-1, 1), (-1, -1), (1, -1)`` (counter-clockwise, so corners
    ``k ± 1`` are the neighbours), at world position ``c + ρ_k(θ)``, ``ρ_k = R(θ) h (cx_k, cy_k)``.
Action
    ``a ∈ [-1, 1]``: torque ``τ = torque_scale · a`` (1 N·m by default), i.e. angular
    acceleration ``α = τ / I``; values outside are clipped and have zero derivative there.
Dynamics (one step of ``dt = 0.02`` s)
    *Flight* is solved in closed form: ``c(t) = c + v t - ½ g t² e_y``, ``θ(t) = θ + ω t + ½ α t²``,
    ``ω(t) = ω + α t`` (exact: no integration error at all).  Corner ``k``'s height
    ``G_k(t) = y(t) + ρ_k,y(θ(t))`` is then an analytic function of time.
    *Impacts* are found at their exact time: for each corner the first root of ``G_k`` in the
    remaining step is bracketed by conservative advancement with the bound
    ``|G_k''| ≤ M = g + √2 h (|α| + max|ω|²)`` (a step never jumps past a root, whatever the
    speed: no tunnelling; checked up to 1000× a typical throw's speed and spin) and polished
    by Newton steps.  At the earliest impact the die
    receives an impulse ``P = (P_t, P_n)`` at the corner (Moore & Wilhelms 1988) with
    Poisson's restitution: the restitution phase's normal impulse is ``e`` times the
    compression phase's.  With the corner's normal and tangential velocities
    ``v_n = vy + ω ρ_x``, ``v_t = vx - ω ρ_y`` and the 2×2 inverse inertia at the corner
    ``K = [[1/m + ρ_y²/I, -ρ_x ρ_y/I], [-ρ_x ρ_y/I, 1/m + ρ_x²/I]]``, every impulse is written
    through the corner's normal velocity ``u`` after it:
      - *sticking* (friction coefficient ``μ > 0``): ``K P = (-v_t, u - v_n)``, so the corner
        stops sliding; compression ends at ``u = 0``, and Poisson's law gives
        ``u = -e w`` with ``w = v_n - K_tn v_t / K_tt``.  It is used if ``|P_t| ≤ μ P_n``.
      - *sliding* (or frictionless, ``μ = 0``): ``P = P_n (±μ, 1)``, the friction saturated in
        the direction sticking asked for, ``P_n = (u - v_n) / (K_nn ± μ K_tn)``; the direction
        is fixed, so Poisson's law is Newton's: ``u = -e v_n`` (the normal velocity reverses and
        scales by ``e``).  Coulomb friction with Newton/Poisson restitution can add energy when
        rotation couples the normal and tangential impulses; the sliding normal impulse is
        therefore capped where the kinetic-energy change ``P_n lin + ½ q P_n²`` is zero
        (``lin = ±μ v_t + v_n``, ``q = (±μ, 1) K (±μ, 1)ᵀ``), never below the impulse that stops
        the approach. Sticking Poisson impacts provably never add energy.
    Then ``v += P/m``, ``ω += (ρ_x P_n - ρ_y P_t)/I``, and the flight continues for the rest of
    the step; several impacts per step are resolved in turn (at most 8; then the step's
    remainder is flown without detection, which happens only in rare ping-pong between two
    corners of a perfectly plastic, high-friction die).
    *Two corners at once* (a face hitting flat, ``|G_j| ≤ 1e-9`` at the neighbour): one
    simultaneous frictionless impulse pair with restitution ``e`` at both corners (a 2×2
    solve; if one impulse comes out negative, the single-corner rule at the first corner).
    *Resting contact rule.*  A bounce that would bring the corner back below the ground
    before the step ends (the Zeno regime of ever smaller bounces) is replaced by holding the
    corner: the target normal velocity is raised to the ``u ≥ -e v_n`` that puts the corner
    exactly on the ground at the end of the step (a scalar Newton solve; only for bounces slower
    than ``2 g T``, so never for a real bounce), i.e. the sustained contact force over the rest
    of the step is applied as one impulse, like a time-stepping scheme.  The corner is above
    the ground in between and exactly on it at the step's end (no sinking), and the next step
    starts with that corner touching.  This approximates a die pivoting on a corner: per step
    it can add up to ~3e-3 J (over a whole throw at most ~7e-3 J were regained, of ~25 J
    thrown).  When both corners of the lowest face are within 2 mm of the ground and both move
    slower than 0.2 m/s (at the start of a step, or at an impact), the die *lies flat*: it is
    put exactly flat (rotated about the contacting corner, by at most 2 mm over the side's
    length, ~2 mrad), ``vy = ω = 0``, and slides with Coulomb friction ``μ g`` until it stops.  A flat die stays
    flat for any action because ``torque_scale ≤ (1 - μ) m g h`` (checked): the torque and the
    sliding friction's moment can never lift a corner.  So a resting die neither jitters, sinks,
    drifts nor gains energy.
Reward
    ``r = δ - sqrt(d² + δ²)`` with ``d = ‖c' - c*‖`` the distance of the next state's centre from
    the target ``c* = (target_x, h)`` (the die lying at ``x = target_x``, 0 by default) and
    ``δ = 0.1`` m: the L2 distance, smoothed at 0 so that it is differentiable everywhere.
    ``max_reward = 0``.  ``∂r/∂c' = -(c' - c*)/sqrt(d² + δ²)``, and
    ``dr/ds = J_sᵀ ∂r/∂s'``, ``dr/da = J_aᵀ ∂r/∂s'``.
Start state (a random throw)
    ``x ~ U(-3, -2)``, ``y ~ U(1.5, 2.5)``, ``θ ~ U(-π, π)``, ``vx ~ U(0.5, 2.5)``,
    ``vy ~ U(0, 2)``, ``ω ~ U(-6, 6)``.
Termination
    none: the die always lands and the episode runs to the horizon.
Horizon
    150 steps (3 s: the flight and two or three bounces, then sliding or rest).

Picture (the paper's Figure 3): ``python -m fastd3pg.render.draw_die --out die.png``.

Parameters (``make("RollingDie", restitution=1.0, friction=0.0)``): ``restitution`` e ∈ [0, 1]
(0.5), ``friction`` μ ∈ [0, 1] (0.5), ``gravity`` (9.81), ``mass`` (1), ``half_size`` (0.5),
``torque_scale`` (1), ``target_x`` (0), ``dt`` (0.02).

Jacobians (Popović et al. 2000)
    Forward mode over 7 seeds (6 state components and the action): ``D = ∂z/∂(s, a)`` (6×7)
    for the current state ``z`` and ``∂t_c/∂(s, a)`` for the current time in the step.
    * Flight over a fixed ``τ``: ``dx += τ dvx``, ``dy += τ dvy``, ``dθ += τ dω + ½τ² dα``,
      ``dω += τ dα``; a change of the duration adds ``ż dτ`` with
      ``ż = (vx, vy, ω, 0, -g, α)`` at the flight's end.
    * Impact time: ``G_k(z(t*)) = 0`` gives (implicit function theorem)
      ``dτ* = -(dy + ρ_x dθ) / Ġ_k`` with ``Ġ_k = v_n`` the approach velocity, and
      ``dt* = dt_c + dτ*``; the last flight lasts ``dt - t_c``, so ``dτ = -dt_c``.  A corner
      that starts a step touching (as after the resting rule) and moving in gets the same
      formula: its impact time is the root of the closed-form ``G_k`` even when that root is
      slightly negative (the corner is a hair inside the ground), so the step is smooth across
      ``G_k(0) = 0``.  (At a contact with zero approach speed the impact time is taken as fixed.)
    * Impulse: ``dρ_x = -ρ_y dθ``, ``dρ_y = ρ_x dθ``, ``dv_t``, ``dv_n``, ``dK`` follow; for
      sticking ``dP = K⁻¹(d rhs - dK P)``, for sliding ``dP_n = (du - dv_n - P_n dDen)/Den``;
      ``du = -e dv_n`` for a sliding bounce, ``du = -e dw`` for a sticking one, and a capped
      bounce differentiates ``P_n = -2 lin / q``.  For a held corner ``u`` solves
      ``F(u) = y + vy⁺ T - ½ g T² + ρ_y(θ + ω⁺ T + ½ α T²) = 0`` (``T = dt - t_c``), so
      ``du = -dF|_u / F_u`` with ``F_u = T (∂vy⁺/∂u + ρ_x(θ_T) ∂ω⁺/∂u)``.
    * Lying flat: ``dx += -ρ_y dθ`` (rotation about the contacting corner), rows ``y, θ, vy, ω``
      become 0; sliding ``x(T) = x + vx T ∓ ½ μ g T²`` (or the stopping point
      ``x + vx|vx|/(2 μ g)``) is differentiated piecewise.
    The Jacobian is exact wherever the sequence of contact events does not change; at a change
    (a grazing contact, two corners touching at the same instant, the flat/not-flat switch)
    the map itself is discontinuous or kinked.
"""

import math

import numpy as np

from fastd3pg import rng as _rng
from fastd3pg._jit import jit
from fastd3pg.physics.base import Env
from fastd3pg.physics.rolling_die_contact import (  # noqa: F401 (the layout, re-exported)
    DT, EV_BOUNCE_CAPPED, EV_BOUNCE_SLIDE, EV_BOUNCE_STICK, EV_CAP, EV_FLAT, EV_HOLD_SLIDE,
    EV_HOLD_STICK, EV_TWO, FRICTION, GRAVITY, HALF_SIZE, LOG_SIZE, MASS, MAX_EVENTS, NCOL,
    RESTITUTION, SMOOTH, TARGET_X, TOL_GAP, TOL_SPEED, TORQUE_SCALE, TWO_GAP, corner,
    first_contact, fly, fly_tangent, impulse_single, impulse_two, lie_flat, lower_neighbour,
    resting, shift_time,
)
from fastd3pg.physics.scratch import stack_empty

_TANGENT_SIZE = 7 * NCOL  # the tangent D, on the stack (see fastd3pg.physics.scratch)


@jit
def _action(p, a):
    u = min(max(a[0], -1.0), 1.0)
    du_da = 1.0 if -1.0 < a[0] < 1.0 else 0.0
    inertia = 2.0 / 3.0 * p[MASS] * p[HALF_SIZE] ** 2
    return p[TORQUE_SCALE] * u / inertia, p[TORQUE_SCALE] * du_da / inertia


@jit
def reset(p, rng, out):
    out[0] = _rng.uniform_range(rng, -3.0, -2.0)
    out[1] = _rng.uniform_range(rng, 1.5, 2.5)
    out[2] = _rng.uniform_range(rng, -np.pi, np.pi)
    out[3] = _rng.uniform_range(rng, 0.5, 2.5)
    out[4] = _rng.uniform_range(rng, 0.0, 2.0)
    out[5] = _rng.uniform_range(rng, -6.0, 6.0)


# -- the step ---------------------------------------------------------------------------------
@jit
def _log(log, code, t, z):
    if log.shape[0] >= LOG_SIZE:
        n = int(log[0])
        if n <= MAX_EVENTS:
            log[1 + 5 * n] = code
            log[2 + 5 * n] = t
            log[3 + 5 * n] = z[0]
            log[4 + 5 * n] = z[1]
            log[5 + 5 * n] = z[2]
            log[0] = n + 1


@jit
def simulate(p, s, a, out, D, jac, log):
    """One step from ``s`` into ``out``; with ``jac`` the tangent ``D`` (7×7: rows 0-5
    ``∂s'/∂(s, a)``, row 6 the current time's).  ``log`` (length ``LOG_SIZE``, or empty) gets
    the contact events."""
    g, h, dt = p[GRAVITY], p[HALF_SIZE], p[DT]
    alpha, alpha_a = _action(p, a)
    for i in range(6):
        out[i] = s[i]
    if jac:
        for i in range(7):
            for j in range(NCOL):
                D[i, j] = 1.0 if i == j and i < 6 else 0.0
    if log.shape[0] >= LOG_SIZE:
        log[0] = 0.0
    # Lying flat at the start of the step.
    k0, lowest = 0, math.inf
    for k in range(4):
        _, ry = corner(k, h, out[2])
        if ry < lowest:
            k0, lowest = k, ry
    j0 = lower_neighbour(out, h, k0)
    if resting(out, h, k0, j0):
        _log(log, EV_FLAT * 10 + k0, 0.0, out)
        lie_flat(p, out, D, jac, k0, dt)
        return
    t = 0.0
    held = 0
    n_events = 0
    while True:
        if n_events == MAX_EVENTS:
            _log(log, EV_CAP * 10, t, out)
            break
        n_events += 1
        T = dt - t
        tau, k = first_contact(out, alpha, g, h, T, held)
        if k < 0:
            break
        fly(out, alpha, g, tau)
        t += tau
        if jac:
            fly_tangent(D, alpha_a, tau)
            rx, _ = corner(k, h, out[2])
            vn = out[4] + out[5] * rx
            for j in range(NCOL):
                dtau = -(D[1, j] + rx * D[2, j]) / vn if vn < -TOL_SPEED else 0.0
                D[6, j] += dtau
                shift_time(D, out, alpha, g, j, dtau)
        j2 = lower_neighbour(out, h, k)
        if resting(out, h, k, j2):
            _log(log, EV_FLAT * 10 + k, t, out)
            lie_flat(p, out, D, jac, k, dt - t)
            return
        # Corners already held are released if the new impact lifted them off the ground.
        for i in range(4):
            if (held >> i) & 1:
                _, ry = corner(i, h, out[2])
                if out[1] + ry > TOL_GAP:
                    held &= ~(1 << i)
        rxj, ryj = corner(j2, h, out[2])
        if (
            abs(out[1] + ryj) <= TWO_GAP
            and out[4] + out[5] * rxj < 0.0
            and impulse_two(p, out, D, jac, k, j2)
        ):
            _log(log, EV_TWO * 10 + k, t, out)
            continue
        code, is_held = impulse_single(p, out, D, jac, k, alpha, alpha_a, dt - t)
        _log(log, code * 10 + k, t, out)
        if is_held:
            held |= 1 << k
    tau = dt - t
    fly(out, alpha, g, tau)
    if jac:
        fly_tangent(D, alpha_a, tau)
        for j in range(NCOL):
            shift_time(D, out, alpha, g, j, -D[6, j])
            D[6, j] = 0.0


@jit
def _reward_and_grad(p, z):
    dx = z[0] - p[TARGET_X]
    dy = z[1] - p[HALF_SIZE]
    q = math.sqrt(dx * dx + dy * dy + SMOOTH * SMOOTH)
    return SMOOTH - q, -dx / q, -dy / q


@jit
def step(p, s, a, out):
    D = stack_empty(_TANGENT_SIZE, np.float64).reshape((7, NCOL))
    simulate(p, s, a, out, D, False, out[:0])
    reward, _, _ = _reward_and_grad(p, out)
    return reward, False


@jit
def step_jac(p, s, a, out, J_s, J_a, dr_ds, dr_da):
    D = stack_empty(_TANGENT_SIZE, np.float64).reshape((7, NCOL))
    simulate(p, s, a, out, D, True, out[:0])
    for i in range(6):
        for j in range(6):
            J_s[i, j] = D[i, j]
        J_a[i, 0] = D[i, 6]
    reward, rx, ry = _reward_and_grad(p, out)
    for j in range(6):
        dr_ds[j] = rx * D[0, j] + ry * D[1, j]
    dr_da[0] = rx * D[0, 6] + ry * D[1, 6]
    return reward, False


@jit
def events(p, s, a, log):
    """The contact events of the step from ``s`` under ``a`` into ``log`` (see ``LOG_SIZE``)."""
    out = np.empty(6)
    D = stack_empty(_TANGENT_SIZE, np.float64).reshape((7, NCOL))
    simulate(p, s, a, out, D, False, log)


EVENT_KINDS = {
    EV_BOUNCE_STICK: "bounce-stick", EV_BOUNCE_SLIDE: "bounce-slide",
    EV_HOLD_STICK: "hold-stick", EV_HOLD_SLIDE: "hold-slide", EV_TWO: "two",
    EV_FLAT: "flat", EV_CAP: "cap", EV_BOUNCE_CAPPED: "bounce-capped",
}  #: the name of each event code of the log


def read_log(log):
    """The events of one step's ``log`` (filled by :func:`simulate`) as
    :meth:`RollingDie.events` returns them."""
    result = []
    for n in range(int(log[0])):
        code, t, x, y, th = log[1 + 5 * n: 6 + 5 * n]
        result.append((EVENT_KINDS[int(code) // 10], int(code) % 10, t, x, y, th))
    return result


class RollingDie(Env):
    __doc__ = __doc__
    name = "RollingDie"
    state_dim = 6
    action_dim = 1
    horizon = 150
    dt = 0.02
    max_reward = 0.0
    param_names = (
        "restitution", "friction", "gravity", "mass", "half_size", "torque_scale", "target_x", "dt",
    )
    default_params = (0.5, 0.5, 9.81, 1.0, 0.5, 1.0, 0.0, 0.02)
    reset_kernel = staticmethod(reset)
    step_kernel = staticmethod(step)
    step_jac_kernel = staticmethod(step_jac)

    def __init__(self, **params):
        super().__init__(**params)
        p = self.params
        e, mu, g, m, h, tau, dt = (
            p[RESTITUTION], p[FRICTION], p[GRAVITY], p[MASS], p[HALF_SIZE], p[TORQUE_SCALE], p[DT]
        )
        if not 0.0 <= e <= 1.0:
            raise ValueError(f"{self.name}: restitution must be in [0, 1], got {e}")
        if not 0.0 <= mu <= 1.0:
            raise ValueError(f"{self.name}: friction must be in [0, 1], got {mu}")
        for key, value in (("gravity", g), ("mass", m), ("half_size", h), ("dt", dt)):
            if not value > 0.0:
                raise ValueError(f"{self.name}: {key} must be positive, got {value}")
        if not 0.0 <= tau <= (1.0 - mu) * m * g * h:
            raise ValueError(
                f"{self.name}: torque_scale must be in [0, (1 - friction)·mass·gravity·half_size"
                f" = {(1.0 - mu) * m * g * h:.4g}] so that a die lying flat cannot be tipped "
                f"over by its own torque, got {tau}"
            )
        self.dt = float(dt)

    def events(self, state, action):
        """The contact events of one step: a list of ``(kind, corner, t, x, y, θ)`` with kind
        one of ``bounce-stick``, ``bounce-slide``, ``hold-stick``, ``hold-slide``, ``two``,
        ``flat``, ``cap`` and ``(x, y, θ)`` the pose at the event's time ``t`` in the step."""
        s = self._check(state, self.state_dim, "state")
        a = self._check(action, self.action_dim, "action")
        log = np.zeros(LOG_SIZE)
        events(self.params, s, a, log)
        return read_log(log)

    def corners(self, state):
        """World positions of the four corners, shape (4, 2)."""
        s = self._check(state, self.state_dim, "state")
        h = self.params[HALF_SIZE]
        return np.array([[s[0] + c[0], s[1] + c[1]] for c in (corner(k, h, s[2]) for k in range(4))])

