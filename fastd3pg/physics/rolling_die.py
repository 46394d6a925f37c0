"""RollingDie: a 2-D rigid die thrown onto the ground, with impulse-based collisions
(PAPER.md §4, paper §5.1 and Figure 3).

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

Picture (the paper's Figure 3): ``python -m fastd3pg.physics.draw_die --out die.png``.

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

# Parameter vector layout.
RESTITUTION, FRICTION, GRAVITY, MASS, HALF_SIZE, TORQUE_SCALE, TARGET_X, DT = range(8)

NCOL = 7  # tangent columns: ∂/∂(x, y, θ, vx, vy, ω, a)
SMOOTH = 0.1  # δ of the smoothed L2 reward (m)
TOL_GAP = 1e-12  # a corner this close to the ground touches it (m)
TOL_SPEED = 1e-9  # normal speeds below this are zero (m/s)
TWO_GAP = 1e-9  # the neighbour corner this close to the ground hits at the same instant (m)
FLAT_GAP = 2e-3  # both face corners this close to the ground ...
REST_SPEED = 0.2  # ... and slower than this (m/s): the die lies flat
MAX_EVENTS = 8  # impacts resolved per step
MAX_ITERS = 1000  # conservative-advancement iterations per corner and step (~10 typical)
NONE = -1e300  # "no contact" (impact times can be slightly negative, see _polish)
LOG_SIZE = 1 + 5 * (MAX_EVENTS + 1)  # event log: count, then (code, t, x, y, θ) per event

# Event codes of the log (code * 10 + corner index).
EV_BOUNCE_STICK, EV_BOUNCE_SLIDE, EV_HOLD_STICK, EV_HOLD_SLIDE, EV_TWO, EV_FLAT, EV_CAP = (
    1, 2, 3, 4, 5, 6, 7,
)
EV_BOUNCE_CAPPED = 8


@jit
def _corner(k, h, th):
    """``ρ_k(θ) = R(θ) h (cx_k, cy_k)``, the centre-to-corner vector."""
    dx = h * (1.0 - 2.0 * (((k + 1) // 2) % 2))
    dy = h * (1.0 - 2.0 * (k // 2))
    c, s = math.cos(th), math.sin(th)
    return c * dx - s * dy, s * dx + c * dy


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


# -- flight -----------------------------------------------------------------------------------
@jit
def _fly(z, alpha, g, tau):
    z[0] += z[3] * tau
    z[1] += tau * (z[4] - 0.5 * g * tau)
    z[2] += tau * (z[5] + 0.5 * alpha * tau)
    z[4] -= g * tau
    z[5] += alpha * tau


@jit
def _fly_tangent(D, alpha_a, tau):
    """Tangent of a flight of fixed duration ``tau`` (rows: state; column 6: the action)."""
    for j in range(NCOL):
        D[0, j] += tau * D[3, j]
        D[1, j] += tau * D[4, j]
        D[2, j] += tau * D[5, j]
    D[2, 6] += 0.5 * tau * tau * alpha_a
    D[5, 6] += tau * alpha_a


@jit
def _shift_time(D, z, alpha, g, j, dtau):
    """Add ``ż dτ`` to column ``j`` (a flight whose duration moves by ``dτ``)."""
    D[0, j] += z[3] * dtau
    D[1, j] += z[4] * dtau
    D[2, j] += z[5] * dtau
    D[4, j] -= g * dtau
    D[5, j] += alpha * dtau


@jit
def _polish(z, alpha, g, h, k, s, T):
    """Newton on ``G_k(s) = 0`` from a point at (or, at the start of a step, below) the ground
    where the corner moves into it.  A corner that starts the step slightly inside the ground
    gets its impact at the (negative) time it crossed the surface, continuing the closed-form
    flight backwards: the step is then a smooth function of the state across ``G_k(0) = 0``,
    which is exactly where a corner held by the resting rule starts its next step."""
    s0 = s
    for _ in range(8):
        rx, ry = _corner(k, h, z[2] + s * (z[5] + 0.5 * alpha * s))
        G = z[1] + s * (z[4] - 0.5 * g * s) + ry
        G1 = z[4] - g * s + (z[5] + alpha * s) * rx
        if G1 >= 0.0:
            return s0
        ds = G / G1
        s -= ds
        if abs(ds) <= 1e-15 * (1.0 + abs(s)):
            break
    if s > T:
        return NONE
    return s if s >= -0.5 * T else s0


@jit
def _contact_time(z, alpha, g, h, k, T, M):
    """First ``s ∈ [0, T]`` where corner ``k`` reaches the ground while moving into it, or -1.

    Conservative advancement: with ``|G''| ≤ M``, ``G(s + σ) ≥ G + G' σ - ½ M σ²``, so the
    step ``σ`` to that bound's positive root never passes a root; near a transversal root the
    error falls quadratically (``e' ≈ M e² / (2|G'|)``), and a final Newton step polishes it."""
    s = 0.0
    for _ in range(MAX_ITERS):
        ws = z[5] + alpha * s
        rx, ry = _corner(k, h, z[2] + s * (z[5] + 0.5 * alpha * s))
        G = z[1] + s * (z[4] - 0.5 * g * s) + ry
        G1 = z[4] - g * s + ws * rx
        if G <= TOL_GAP:
            if G1 < -TOL_SPEED:
                return _polish(z, alpha, g, h, k, s, T)
            if G1 <= TOL_SPEED and -g + alpha * rx - ws * ws * ry < 0.0:
                return s
            step = max(2.0 * G1 / M, 1e-9 * T)
        else:
            # The bound's positive root, in the form without cancellation for either sign of G'.
            disc = math.sqrt(G1 * G1 + 2.0 * M * G)
            step = 2.0 * G / (disc - G1) if G1 < 0.0 else (G1 + disc) / M
        s += step
        if s > T:
            return NONE
    return NONE


@jit
def _first_contact(z, alpha, g, h, T, held):
    """Earliest impact ``(τ, k)`` within ``T`` over the corners not in bit mask ``held``."""
    y_end = z[1] + T * (z[4] - 0.5 * g * T)
    r = math.sqrt(2.0) * h
    if min(z[1], y_end) - r > TOL_GAP:  # y(t) is concave: its minimum is at an end
        return NONE, -1
    w_max = max(abs(z[5]), abs(z[5] + alpha * T))
    M = g + r * (abs(alpha) + w_max * w_max)
    best, kbest = NONE, -1
    limit = T
    for k in range(4):
        if (held >> k) & 1:
            continue
        rx, ry = _corner(k, h, z[2])
        G1 = z[4] + z[5] * rx
        if z[1] + ry + min(0.0, G1) * limit - 0.5 * M * limit * limit > TOL_GAP:
            continue
        s = _contact_time(z, alpha, g, h, k, limit, M)
        if s != NONE and (kbest < 0 or s < best):
            best, kbest, limit = s, k, s
    return best, kbest


# -- contact geometry helpers -----------------------------------------------------------------
@jit
def _lower_neighbour(z, h, k):
    _, ry1 = _corner((k + 1) % 4, h, z[2])
    _, ry3 = _corner((k + 3) % 4, h, z[2])
    return (k + 1) % 4 if ry1 <= ry3 else (k + 3) % 4


@jit
def _resting(z, h, k, j):
    """Both corners of the face ``(k, j)`` near the ground and slow: the die lies flat."""
    rxk, ryk = _corner(k, h, z[2])
    rxj, ryj = _corner(j, h, z[2])
    return (
        z[1] + ryk <= FLAT_GAP
        and z[1] + ryj <= FLAT_GAP
        and abs(z[4] + z[5] * rxk) <= REST_SPEED
        and abs(z[4] + z[5] * rxj) <= REST_SPEED
    )


@jit
def _lie_flat(p, z, D, jac, k, T):
    """Put the die flat on the face of corner ``k`` (rotating about that corner), stop its
    vertical and angular motion and slide it for ``T`` with Coulomb friction ``μ g``."""
    h, g, mu = p[HALF_SIZE], p[GRAVITY], p[FRICTION]
    quarter = 0.5 * np.pi
    th_f = math.floor(z[2] / quarter + 0.5) * quarter
    rx, ry = _corner(k, h, z[2])
    rx_f, ry_f = _corner(k, h, th_f)
    if jac:
        for j in range(NCOL):
            D[0, j] -= ry * D[2, j]
            D[1, j] = 0.0
            D[2, j] = 0.0
            D[4, j] = 0.0
            D[5, j] = 0.0
    z[0] += rx - rx_f
    z[1] = -ry_f
    z[2] = th_f
    z[4] = 0.0
    z[5] = 0.0
    decel = mu * g
    v = z[3]
    if decel == 0.0 or abs(v) > decel * T:
        sgn = 1.0 if v > 0.0 else -1.0
        z[0] += T * (v - 0.5 * sgn * decel * T)
        z[3] = v - sgn * decel * T
        if jac:
            for j in range(NCOL):
                dT = -D[6, j]
                D[0, j] += T * D[3, j] + z[3] * dT
                D[3, j] -= sgn * decel * dT
    else:
        z[0] += v * abs(v) / (2.0 * decel)
        z[3] = 0.0
        if jac:
            for j in range(NCOL):
                D[0, j] += abs(v) / decel * D[3, j]
                D[3, j] = 0.0


# -- impulses ---------------------------------------------------------------------------------
@jit
def _hold_target(z, alpha, g, T, rx, k, h, A0, A1, B0, B1, u0):
    """The normal velocity ``u ≥ u0`` after the impulse that puts corner ``k`` on the ground
    at the end of the step, or ``u0`` if the bounce ``u0`` already ends above it.  The
    post-impulse ``vy⁺ = A0 + A1 u``, ``ω⁺ = B0 + B1 u``; returns ``(u, held, ρ_x(θ_T))``."""
    if T <= 1e-12 or u0 > 2.0 * g * T:
        # Only the Zeno regime: a bounce faster than 2 g T is a real bounce even if the die's
        # spin swings this corner back down before the step ends (detection handles that).
        return u0, False, rx
    u = u0
    for it in range(30):
        wp = B0 + B1 * u
        rxT, ryT = _corner(k, h, z[2] + T * (wp + 0.5 * alpha * T))
        F = z[1] + (A0 + A1 * u) * T - 0.5 * g * T * T + ryT
        if it == 0 and F >= 0.0:
            return u0, False, rxT
        du = -F / (T * (A1 + B1 * rxT))
        u += du
        if abs(du) <= 1e-15 * (1.0 + abs(u)):
            break
    wp = B0 + B1 * u
    rxT, _ = _corner(k, h, z[2] + T * (wp + 0.5 * alpha * T))
    return u, True, rxT


@jit
def _impulse_single(p, z, D, jac, k, alpha, alpha_a, T):
    """Impulse at corner ``k`` (bounce with restitution, or hold); returns (code, held)."""
    e, mu, g, m, h = p[RESTITUTION], p[FRICTION], p[GRAVITY], p[MASS], p[HALF_SIZE]
    inertia = 2.0 / 3.0 * m * h * h
    rx, ry = _corner(k, h, z[2])
    w = z[5]
    vt = z[3] - w * ry
    vn = z[4] + w * rx
    Ktt = 1.0 / m + ry * ry / inertia
    Ktn = -rx * ry / inertia
    Knn = 1.0 / m + rx * rx / inertia
    det = Ktt * Knn - Ktn * Ktn
    u_imp = -e * vn
    stick = False
    sigma = 0.0
    den = Knn
    Pt1 = Pn1 = Pt = Pn = u = 0.0
    held = False
    capped = False
    lin = q = 0.0
    rxT = rx
    if mu > 0.0:
        # Sticking impulse, affine in the target u: P = P0 + P1 u.
        Pt0, Pt1 = (-Knn * vt + Ktn * vn) / det, -Ktn / det
        Pn0, Pn1 = (Ktn * vt - Ktt * vn) / det, Ktt / det
        A0, A1 = z[4] + Pn0 / m, Pn1 / m
        B0, B1 = w + (rx * Pn0 - ry * Pt0) / inertia, (rx * Pn1 - ry * Pt1) / inertia
        # Poisson: the restitution impulse is e times the compression impulse, which ends when
        # the (sticking) corner stops; that is u = -e w, w = v_n - K_tn v_t / K_tt.
        u_stick = -e * (vn - Ktn * vt / Ktt)
        u, held, rxT = _hold_target(z, alpha, g, T, rx, k, h, A0, A1, B0, B1, u_stick)
        Pt, Pn = Pt0 + Pt1 * u, Pn0 + Pn1 * u
        if abs(Pt) <= mu * Pn:
            stick = True
        else:
            sigma = 1.0 if Pt > 0.0 else -1.0
    if not stick:
        # Sliding (or frictionless, μ = 0): P = Pn (σ μ, 1), Pn = (u - v_n) / Den.
        den = Knn + sigma * mu * Ktn
        Pn1 = 1.0 / den
        Pt1 = sigma * mu * Pn1
        Pn0, Pt0 = -vn * Pn1, -vn * Pt1
        A0, A1 = z[4] + Pn0 / m, Pn1 / m
        B0, B1 = w + (rx * Pn0 - ry * Pt0) / inertia, (rx * Pn1 - ry * Pt1) / inertia
        u, held, rxT = _hold_target(z, alpha, g, T, rx, k, h, A0, A1, B0, B1, u_imp)
        Pt, Pn = Pt0 + Pt1 * u, Pn0 + Pn1 * u
        if not held and mu > 0.0:
            # A sliding bounce changes the kinetic energy by Pn·lin + ½ q Pn² (lin, q below):
            # cap Pn where that is zero, but never below the impulse that stops the approach.
            lin = sigma * mu * vt + vn
            q = mu * mu * Ktt + 2.0 * sigma * mu * Ktn + Knn
            cap = -2.0 * lin / q
            if Pn > cap and cap >= -vn / den:
                capped = True
                Pn = cap
                Pt = sigma * mu * Pn
    if jac:
        # ∂(vx⁺, vy⁺, ω⁺)/∂u
        Cu, Au, Bu = Pt1 / m, Pn1 / m, (rx * Pn1 - ry * Pt1) / inertia
        wp = w + (rx * Pn - ry * Pt) / inertia
        vyp = z[4] + Pn / m
        vnT = vyp - g * T + rxT * (wp + alpha * T)
        Fu = T * (Au + Bu * rxT)
        for j in range(NCOL):
            dth, dvx, dvy, dw = D[2, j], D[3, j], D[4, j], D[5, j]
            dalpha = alpha_a if j == 6 else 0.0
            drx, dry = -ry * dth, rx * dth
            dvt = dvx - dw * ry - w * dry
            dvn = dvy + dw * rx + w * drx
            dKtn = -(drx * ry + rx * dry) / inertia
            dKnn = 2.0 * rx * drx / inertia
            du = 0.0 if held else -e * dvn
            if stick:
                dKtt = 2.0 * ry * dry / inertia
                if not held:
                    du = -e * (dvn - (dKtn * vt + Ktn * dvt) / Ktt + Ktn * vt * dKtt / (Ktt * Ktt))
                b1 = -dvt - dKtt * Pt - dKtn * Pn
                b2 = du - dvn - dKtn * Pt - dKnn * Pn
                dPt = (Knn * b1 - Ktn * b2) / det
                dPn = (-Ktn * b1 + Ktt * b2) / det
            elif capped:
                dKtt = 2.0 * ry * dry / inertia
                dq = mu * mu * dKtt + 2.0 * sigma * mu * dKtn + dKnn
                dPn = -2.0 * (sigma * mu * dvt + dvn) / q + 2.0 * lin * dq / (q * q)
                dPt = sigma * mu * dPn
            else:
                dden = dKnn + sigma * mu * dKtn
                dPn = (du - dvn - Pn * dden) / den
                dPt = sigma * mu * dPn
            dvx_p = dvx + dPt / m
            dvy_p = dvy + dPn / m
            dw_p = dw + (drx * Pn + rx * dPn - dry * Pt - ry * dPt) / inertia
            if held:
                # IFT on F(u) = 0 (module docstring): du = -dF|_u / F_u.
                dT = -D[6, j]
                dF = D[1, j] + T * dvy_p + rxT * (dth + T * dw_p + 0.5 * T * T * dalpha) + vnT * dT
                du = -dF / Fu
                dvx_p += Cu * du
                dvy_p += Au * du
                dw_p += Bu * du
            D[3, j] = dvx_p
            D[4, j] = dvy_p
            D[5, j] = dw_p
    z[3] += Pt / m
    z[4] += Pn / m
    z[5] += (rx * Pn - ry * Pt) / inertia
    if held:
        return (EV_HOLD_STICK if stick else EV_HOLD_SLIDE), True
    if capped:
        return EV_BOUNCE_CAPPED, False
    return (EV_BOUNCE_STICK if stick else EV_BOUNCE_SLIDE), False


@jit
def _impulse_two(p, z, D, jac, k, j2):
    """Simultaneous frictionless impulses at corners ``k`` and ``j2`` (a face hitting flat):
    ``A P = -(1 + e) v_n`` with ``A_il = 1/m + ρ_x,i ρ_x,l / I``.  False if not both push."""
    e, m, h = p[RESTITUTION], p[MASS], p[HALF_SIZE]
    inertia = 2.0 / 3.0 * m * h * h
    r1x, r1y = _corner(k, h, z[2])
    r2x, r2y = _corner(j2, h, z[2])
    w = z[5]
    vn1 = z[4] + w * r1x
    vn2 = z[4] + w * r2x
    A11 = 1.0 / m + r1x * r1x / inertia
    A12 = 1.0 / m + r1x * r2x / inertia
    A22 = 1.0 / m + r2x * r2x / inertia
    det = A11 * A22 - A12 * A12
    if det <= 1e-12 * A11 * A22:
        return False
    b1, b2 = -(1.0 + e) * vn1, -(1.0 + e) * vn2
    P1 = (A22 * b1 - A12 * b2) / det
    P2 = (-A12 * b1 + A11 * b2) / det
    if P1 < 0.0 or P2 < 0.0:
        return False
    if jac:
        for j in range(NCOL):
            dth, dvy, dw = D[2, j], D[4, j], D[5, j]
            d1, d2 = -r1y * dth, -r2y * dth  # dρ_x of each corner
            dvn1 = dvy + dw * r1x + w * d1
            dvn2 = dvy + dw * r2x + w * d2
            dA11 = 2.0 * r1x * d1 / inertia
            dA12 = (d1 * r2x + r1x * d2) / inertia
            dA22 = 2.0 * r2x * d2 / inertia
            c1 = -(1.0 + e) * dvn1 - dA11 * P1 - dA12 * P2
            c2 = -(1.0 + e) * dvn2 - dA12 * P1 - dA22 * P2
            dP1 = (A22 * c1 - A12 * c2) / det
            dP2 = (-A12 * c1 + A11 * c2) / det
            D[4, j] = dvy + (dP1 + dP2) / m
            D[5, j] = dw + (d1 * P1 + r1x * dP1 + d2 * P2 + r2x * dP2) / inertia
    z[4] += (P1 + P2) / m
    z[5] += (r1x * P1 + r2x * P2) / inertia
    return True


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
        _, ry = _corner(k, h, out[2])
        if ry < lowest:
            k0, lowest = k, ry
    j0 = _lower_neighbour(out, h, k0)
    if _resting(out, h, k0, j0):
        _log(log, EV_FLAT * 10 + k0, 0.0, out)
        _lie_flat(p, out, D, jac, k0, dt)
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
        tau, k = _first_contact(out, alpha, g, h, T, held)
        if k < 0:
            break
        _fly(out, alpha, g, tau)
        t += tau
        if jac:
            _fly_tangent(D, alpha_a, tau)
            rx, _ = _corner(k, h, out[2])
            vn = out[4] + out[5] * rx
            for j in range(NCOL):
                dtau = -(D[1, j] + rx * D[2, j]) / vn if vn < -TOL_SPEED else 0.0
                D[6, j] += dtau
                _shift_time(D, out, alpha, g, j, dtau)
        j2 = _lower_neighbour(out, h, k)
        if _resting(out, h, k, j2):
            _log(log, EV_FLAT * 10 + k, t, out)
            _lie_flat(p, out, D, jac, k, dt - t)
            return
        # Corners already held are released if the new impact lifted them off the ground.
        for i in range(4):
            if (held >> i) & 1:
                _, ry = _corner(i, h, out[2])
                if out[1] + ry > TOL_GAP:
                    held &= ~(1 << i)
        rxj, ryj = _corner(j2, h, out[2])
        if (
            abs(out[1] + ryj) <= TWO_GAP
            and out[4] + out[5] * rxj < 0.0
            and _impulse_two(p, out, D, jac, k, j2)
        ):
            _log(log, EV_TWO * 10 + k, t, out)
            continue
        code, is_held = _impulse_single(p, out, D, jac, k, alpha, alpha_a, dt - t)
        _log(log, code * 10 + k, t, out)
        if is_held:
            held |= 1 << k
    tau = dt - t
    _fly(out, alpha, g, tau)
    if jac:
        _fly_tangent(D, alpha_a, tau)
        for j in range(NCOL):
            _shift_time(D, out, alpha, g, j, -D[6, j])
            D[6, j] = 0.0


@jit
def _reward_and_grad(p, z):
    dx = z[0] - p[TARGET_X]
    dy = z[1] - p[HALF_SIZE]
    q = math.sqrt(dx * dx + dy * dy + SMOOTH * SMOOTH)
    return SMOOTH - q, -dx / q, -dy / q


@jit
def step(p, s, a, out):
    D = np.empty((7, NCOL))
    simulate(p, s, a, out, D, False, out[:0])
    reward, _, _ = _reward_and_grad(p, out)
    return reward, False


@jit
def step_jac(p, s, a, out, J_s, J_a, dr_ds, dr_da):
    D = np.empty((7, NCOL))
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
    D = np.empty((7, NCOL))
    simulate(p, s, a, out, D, False, log)


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
        kinds = {
            EV_BOUNCE_STICK: "bounce-stick", EV_BOUNCE_SLIDE: "bounce-slide",
            EV_HOLD_STICK: "hold-stick", EV_HOLD_SLIDE: "hold-slide", EV_TWO: "two",
            EV_FLAT: "flat", EV_CAP: "cap", EV_BOUNCE_CAPPED: "bounce-capped",
        }
        result = []
        for n in range(int(log[0])):
            code, t, x, y, th = log[1 + 5 * n: 6 + 5 * n]
            result.append((kinds[int(code) // 10], int(code) % 10, t, x, y, th))
        return result

    def corners(self, state):
        """World positions of the four corners, shape (4, 2)."""
        s = self._check(state, self.state_dim, "state")
        h = self.params[HALF_SIZE]
        return np.array([[s[0] + c[0], s[1] + c[1]] for c in (_corner(k, h, s[2]) for k in range(4))])

