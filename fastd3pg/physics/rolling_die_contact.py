"""RollingDie's contact mechanics below its step (the equations are in
:mod:`fastd3pg.physics.rolling_die`'s docstring): the parameter layout and tolerances, the
closed-form flight and its tangent, impact detection by conservative advancement, the lying-flat
rule and the impulses with their derivatives.
"""

import math

import numpy as np

from fastd3pg._jit import jit

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
def corner(k, h, th):
    """``ρ_k(θ) = R(θ) h (cx_k, cy_k)``, the centre-to-corner vector."""
    dx = h * (1.0 - 2.0 * (((k + 1) // 2) % 2))
    dy = h * (1.0 - 2.0 * (k // 2))
    c, s = math.cos(th), math.sin(th)
    return c * dx - s * dy, s * dx + c * dy


# -- flight -----------------------------------------------------------------------------------
@jit
def fly(z, alpha, g, tau):
    z[0] += z[3] * tau
    z[1] += tau * (z[4] - 0.5 * g * tau)
    z[2] += tau * (z[5] + 0.5 * alpha * tau)
    z[4] -= g * tau
    z[5] += alpha * tau


@jit
def fly_tangent(D, alpha_a, tau):
    """Tangent of a flight of fixed duration ``tau`` (rows: state; column 6: the action)."""
    for j in range(NCOL):
        D[0, j] += tau * D[3, j]
        D[1, j] += tau * D[4, j]
        D[2, j] += tau * D[5, j]
    D[2, 6] += 0.5 * tau * tau * alpha_a
    D[5, 6] += tau * alpha_a


@jit
def shift_time(D, z, alpha, g, j, dtau):
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
        rx, ry = corner(k, h, z[2] + s * (z[5] + 0.5 * alpha * s))
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
        rx, ry = corner(k, h, z[2] + s * (z[5] + 0.5 * alpha * s))
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
def first_contact(z, alpha, g, h, T, held):
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
        rx, ry = corner(k, h, z[2])
        G1 = z[4] + z[5] * rx
        if z[1] + ry + min(0.0, G1) * limit - 0.5 * M * limit * limit > TOL_GAP:
            continue
        s = _contact_time(z, alpha, g, h, k, limit, M)
        if s != NONE and (kbest < 0 or s < best):
            best, kbest, limit = s, k, s
    return best, kbest


# -- contact geometry helpers -----------------------------------------------------------------
@jit
def lower_neighbour(z, h, k):
    _, ry1 = corner((k + 1) % 4, h, z[2])
    _, ry3 = corner((k + 3) % 4, h, z[2])
    return (k + 1) % 4 if ry1 <= ry3 else (k + 3) % 4


@jit
def resting(z, h, k, j):
    """Both corners of the face ``(k, j)`` near the ground and slow: the die lies flat."""
    rxk, ryk = corner(k, h, z[2])
    rxj, ryj = corner(j, h, z[2])
    return (
        z[1] + ryk <= FLAT_GAP
        and z[1] + ryj <= FLAT_GAP
        and abs(z[4] + z[5] * rxk) <= REST_SPEED
        and abs(z[4] + z[5] * rxj) <= REST_SPEED
    )


@jit
def lie_flat(p, z, D, jac, k, T):
    """Put the die flat on the face of corner ``k`` (rotating about that corner), stop its
    vertical and angular motion and slide it for ``T`` with Coulomb friction ``μ g``."""
    h, g, mu = p[HALF_SIZE], p[GRAVITY], p[FRICTION]
    quarter = 0.5 * np.pi
    th_f = math.floor(z[2] / quarter + 0.5) * quarter
    rx, ry = corner(k, h, z[2])
    rx_f, ry_f = corner(k, h, th_f)
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
        rxT, ryT = corner(k, h, z[2] + T * (wp + 0.5 * alpha * T))
        F = z[1] + (A0 + A1 * u) * T - 0.5 * g * T * T + ryT
        if it == 0 and F >= 0.0:
            return u0, False, rxT
        du = -F / (T * (A1 + B1 * rxT))
        u += du
        if abs(du) <= 1e-15 * (1.0 + abs(u)):
            break
    wp = B0 + B1 * u
    rxT, _ = corner(k, h, z[2] + T * (wp + 0.5 * alpha * T))
    return u, True, rxT


@jit
def impulse_single(p, z, D, jac, k, alpha, alpha_a, T):
    """Impulse at corner ``k`` (bounce with restitution, or hold); returns (code, held)."""
    e, mu, g, m, h = p[RESTITUTION], p[FRICTION], p[GRAVITY], p[MASS], p[HALF_SIZE]
    inertia = 2.0 / 3.0 * m * h * h
    rx, ry = corner(k, h, z[2])
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
def impulse_two(p, z, D, jac, k, j2):
    """Simultaneous frictionless impulses at corners ``k`` and ``j2`` (a face hitting flat):
    ``A P = -(1 + e) v_n`` with ``A_il = 1/m + ρ_x,i ρ_x,l / I``.  False if not both push."""
    e, m, h = p[RESTITUTION], p[MASS], p[HALF_SIZE]
    inertia = 2.0 / 3.0 * m * h * h
    r1x, r1y = corner(k, h, z[2])
    r2x, r2y = corner(j2, h, z[2])
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
