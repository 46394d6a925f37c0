"""HalfCheetah: a planar articulated runner with hard (complementarity) ground contact
(PAPER.md §4: like MuJoCo's half cheetah, but with two links per leg).

Body (all links are uniform rods in the x–z plane, x forward, z up; angles counter-clockwise)
    * torso: mass ``torso_mass = 6`` kg, length ``2 torso_half_length = 1`` m, inertia
      ``m (2 L)² / 12 = 0.5`` kg m² about its centre (the root);
    * two legs hanging from hips on the torso axis at ``∓hip_offset = ∓0.4`` m from the root
      (back, front); each leg is a thigh (``thigh_mass = 1.5`` kg, ``thigh_length = 0.3`` m) and a
      shin (``shin_mass = 1`` kg, ``shin_length = 0.3`` m), inertias ``m l² / 12``.  At zero
      joint angles the legs point straight down (perpendicular to the torso).
    Link ``j``'s absolute angle ``φ_j`` is the sum of the coordinates on its path from the root
    (torso ``θ``; back thigh ``θ + q1``; back shin ``θ + q1 + q2``; front thigh ``θ + q3``; front
    shin ``θ + q3 + q4``).  A point fixed on link ``j`` at body offset ``b`` sits at
    ``R(φ_j) b`` from its link's origin; every body point is ``p = (x, z) + Σ_t R(φ_t) b_t`` over
    the links on its path (torso offset to the hip, thigh, part of the shin).
Joints
    four hinges, actuated with gear ratios (N m per unit action) ``gear_back_thigh = 60``,
    ``gear_back_shin = 45``, ``gear_front_thigh = 60``, ``gear_front_shin = 30``; rotor inertia
    ``armature = 0.1`` kg m² and viscous ``damping = 0.5`` N m s/rad at each joint.  Joint ranges
    (rad) are MuJoCo's, sign-flipped because angles here are counter-clockwise (a positive
    joint angle swings the foot forward): back thigh [-1.05, 0.52], back shin [-0.785, 0.785],
    front thigh [-0.7, 1.0], front shin [-0.87, 1.2].  Limits are stiff one-sided springs
    ``τ = -limit_stiffness (q + h q̇⁺ - q_lim)`` (1000 N m/rad), active when a joint is beyond its
    limit at the start of a step and treated implicitly (through ``q̇⁺``), so they are stable at
    any stiffness; their switch is a kink of the dynamics.
State
    ``s = [x, z, θ, q1, q2, q3, q4, ẋ, ż, θ̇, q̇1, q̇2, q̇3, q̇4]`` (14): root (torso centre)
    position (m), torso pitch (rad, counter-clockwise = nose up, never wrapped), joint angles
    (back thigh, back shin, front thigh, front shin), then their velocities.  ``q`` = first
    seven, ``v`` = last seven.
Action
    ``a ∈ [-1, 1]⁴``: joint torques ``τ_m = gear_m a_m``; values outside are clipped (zero
    derivative there).
Dynamics (one step of ``h = dt = 0.01`` s; semi-implicit Euler at the velocity level)
    ``M(q) = Σ_links m Jcᵀ Jc + I Jωᵀ Jω`` with ``Jc`` the 2×7 Jacobian of the link's centre and
    ``Jω`` its 0/1 angle row; bias ``c(q, v) = Σ m Jcᵀ (J̇c v + g e_z)`` (gravity ``g = 9.81``),
    where ``J̇c v = -Σ_t R(φ_t) b_t ω_t²`` is the centripetal acceleration of the centre (the
    Lagrangian's Coriolis/centripetal terms exactly: ``Jω`` is constant).  With the joint terms
    (armature ``A``, damping ``D``, the active limits ``K``) and the contact impulses ``λ``::

        M_eff v⁺ = (M + A) v + h (τ - c - K (q - q_lim)) + W λ,   M_eff = M + A + h D + h² K   (1)
        q⁺ = q + h v⁺                                                                        (2)

Contact (Stewart & Trinkle 1996; Anitescu & Potra 1997)
    Six ground points against ``z = 0``: the back and front feet (shin ends), the torso's
    ends (``±torso_half_length``) and the knees (thigh ends), so that no joint or end of the
    body sinks (points along the links between them can touch the ground unopposed).  Contact ``i`` has gap ``g_i = p_z``, normal row
    ``n_i = ∂p_z/∂q`` and, the world being planar, the two tangent directions ``±t_i``,
    ``t_i = ∂p_x/∂q`` (the 2-D friction "polygon"), with ``W = [n_i, t_i, -t_i]_i``.  The
    unknowns per contact are ``λn`` (normal impulse), ``β±`` (friction impulses) and the slack
    ``γ`` (the sliding speed)::

        0 ≤ λn ⊥ n·v⁺ + g/h + ε λn ≥ 0
        0 ≤ β± ⊥ ±t·v⁺ + γ + ε β± ≥ 0                                                         (3)
        0 ≤ γ  ⊥ μ λn - β⁺ - β⁻ + δ ≥ 0

    with ``μ = friction = 0.9``.  Eliminating ``v⁺ = M_eff⁻¹ (b + W λ)`` gives an LCP in up to 24
    unknowns, solved by :mod:`fastd3pg.physics.lcp` (Lemke).  Only points within
    ``MARGIN = 0.1`` m of the ground enter it; if the solution would carry a point left out
    below the ground (``g + h n·v⁺ < 0``) that point is added and the LCP solved again, so the
    pruning never changes the result (and free flight solves no LCP at all).
    *Friction slack* ``δ = friction_slack = 1e-6`` N s: with ``δ = 0`` the ``γ`` rows have
    ``q = 0`` and the matrix is copositive but not copositive-plus, and Lemke's method
    ray-terminates on solvable problems (~25% of random contact LCPs, and on the cheetah lying on
    its back); ``δ > 0`` puts ``q`` in the interior of the dual cone of the homogeneous problem's
    solutions (the ``γ``-only vectors), the standard sufficient condition for Lemke's method
    on a copositive matrix.  It lets a contact carry a
    friction impulse of at most ``δ`` beyond the cone (1e-4 N over a step, against the body's
    ~110 N weight); 1e-9 still failed 32 times in 100,000 random steps (rounding), 1e-7 and
    1e-6 never.
    *Drift correction*: the gap term ``g/h`` in the normal row is Stewart–Trinkle's linearised
    position-level constraint ``g + h n·v⁺ ≥ 0``: a penetration left by the linearisation
    (``O(h² ω²)``) is removed completely in the next step, and a point above the ground may
    approach at most to the surface in one step (no tunnelling, no ghost forces).  It is one
    smooth expression for any sign of ``g``, so the Jacobian is continuous across ``g = 0``.
    *Regularisation*: ``ε = cfm = 1e-6`` (m/s per N s) is a tiny compliance (ODE's constraint
    force mixing) that makes the active-set system below nonsingular even for redundant
    contacts; its effect on the motion is ~1e-6 m/s.
    *Failure*: if Lemke's method does not return a checked solution (ray termination, pivot
    budget, NaN, or a solution failing the solver's final check, see
    :mod:`fastd3pg.physics.lcp`), the LCP is solved once more with the contacts in reverse
    order (the same problem, permuted: near-degenerate problems, e.g. a foot and a knee on
    the ground at once, can end in a slightly infeasible basis on one pivot path and not on
    another); then both orders again with 100× the compliance ``ε`` (for that step only; the
    Jacobian uses the same ``ε``).  Measured over 200,000 steps (2,000 random starts,
    constant random actions for 100 steps): 2 steps needed the reverse order, 3 the larger
    compliance, none failed.  If all four fail, the next state and the reward are NaN (never a silent wrong state), and
    ``HalfCheetah.contact_info`` reports the status.
Reward
    ``r = ẋ⁺ - 0.1 uᵀu`` with ``ẋ⁺`` the root's forward velocity after the step and ``u`` the
    clipped action.  ``dr/ds = J_s[7]``, ``dr/da = J_a[7] - 0.2 u``.  ``max_reward = 10``: a
    nominal top speed of 10 m/s at zero effort (strong agents on MuJoCo's half cheetah, whose
    reward has the same form, average roughly 10 m/s over an episode).  The reward has no
    hard upper bound (a falling or bouncing body can exceed it for a step), so this is the
    normalised return's scale, not a bound.
Start state
    ``x = 0``, ``z = 0.7 + U(-0.02, 0.02)`` (feet ~0.1 m above the ground), pitch and joint angles
    ``U(-0.1, 0.1)``, velocities ``0.1 N(0, 1)`` (MuJoCo's noise scales); the cheetah drops onto
    its feet in the first steps.
Termination
    never.
Horizon
    1000 steps (10 s).

Jacobians (implicit function theorem at the LCP's active set; Amos & Kolter 2017)
    Let ``A = {k : z_k > 0}`` be the active LCP unknowns.  At a fixed active set the rows of (3)
    whose unknown is active are equalities; with (1) they form a square linear system
    ``K y = r`` in ``y = (v⁺, z_A)``::

        [ M_eff   -W_A ] [v⁺ ]   [ b          ]
        [ W_Aᵀ     C   ] [z_A] = [ -g/h (normal rows), 0 ]

    (``C``: ``ε`` on the diagonal, ``+1`` coupling a friction row to an active ``γ``, ``μ`` and
    ``-1`` in the ``γ`` rows), whose solution is smooth in the data.  Differentiating
    ``F(y, s, a) = K y - r = 0`` gives ``dy = -K⁻¹ ∂F/∂(s, a)`` with ``∂F`` at fixed ``y``:
    * dynamics rows, ``∂/∂q_k``: ``(∂M/∂q_k) (v⁺ - v) + h ∂c/∂q_k + h K e_k - Σ_i (∂J_iᵀ/∂q_k) f_i``
      (``f_i = (β⁺ - β⁻, λn)`` the contact's impulse, ``J_i`` its 2×7 point Jacobian);
      ``∂/∂v = -(M + A) + h ∂c/∂v``;  ``∂/∂a_m = -h gear_m`` in joint ``m``'s row;
    * normal rows: ``(∂n_i/∂q) v⁺ + n_i / h``;  friction rows ``±(∂t_i/∂q) v⁺``; ``γ`` rows 0.
    The kinematic derivatives are closed-form: with ``r_t = R(φ_t) b_t`` and ``S`` the 90°
    rotation, ``∂p/∂q_k = Σ_t [k on t's path] S r_t`` (columns ``x, z``: unit vectors),
    ``(∂J/∂q_k) x = -Σ_t [k on path] r_t ω_t(x)``, ``((∂J/∂q_k)ᵀ y)_l = -Σ_t [k, l on path]
    r_t·y``, ``∂(J̇c v)/∂q_k = -Σ_t [k on path] ω_t² S r_t``, ``∂(J̇c v)/∂v_l = -2 Σ_t [l on
    path] ω_t r_t``; with ``M x = Σ m Jcᵀ (Jc x) + const`` these give ``∂M/∂q_k x`` and
    ``∂c/∂q_k`` by the product rule.  Then ``∂v⁺ = dy[:7]``, ``∂q⁺ = [I 0] + h ∂v⁺``.
    The Jacobian is exact wherever the active set and the set of joints at their limits do not
    change; at a change (contact making or breaking, stick/slip) the map is kinked.
"""

import math

import numpy as np

from fastd3pg import rng as _rng
from fastd3pg._jit import jit
from fastd3pg.linalg import cholesky_solve
from fastd3pg.physics import lcp
from fastd3pg.physics.base import Env

# Parameter vector layout.
(
    DT, GRAVITY, FRICTION, TORSO_MASS, THIGH_MASS, SHIN_MASS, TORSO_HALF, HIP, THIGH_LEN,
    SHIN_LEN, GEAR0, GEAR1, GEAR2, GEAR3, ARMATURE, DAMPING, LIMIT_K, CFM, SLACK,
) = range(19)

NQ = 7  # generalized coordinates
NC = 6  # contact points: feet, torso ends, knees (body points 5..10)
NPT = 11  # body points
NL = 4 * NC  # LCP unknowns: (λn, β⁺, β⁻, γ) per contact
NIN = 2 * NQ + 4  # Jacobian columns: q, v, a
MAX_PIVOTS = 50 * (NL + 1)
JOINT_LO = np.array([-1.05, -0.785, -0.7, -0.87])
JOINT_HI = np.array([0.52, 0.785, 1.0, 1.2])
INFO_SIZE = 3 + NL + NC  # status, pivots, retries, z (NL), gaps (NC)
MARGIN = 0.1  # points closer to the ground than this (m) enter the LCP


@jit(inline="always")
def _on_path(j, k):
    """1 if coordinate ``k`` (2..6) turns link ``j`` (0 torso, 1 back thigh, 2 back shin,
    3 front thigh, 4 front shin), else 0."""
    if k == 2:
        return 1.0
    if k == 3:
        return 1.0 if (j == 1 or j == 2) else 0.0
    if k == 4:
        return 1.0 if j == 2 else 0.0
    if k == 5:
        return 1.0 if (j == 3 or j == 4) else 0.0
    if k == 6:
        return 1.0 if j == 4 else 0.0
    return 0.0


@jit
def _chains(p, links, rx, ry, nterms, q):
    """Body points as chains of link terms ``r_t = R(φ_t) b_t`` (world vectors).

    Points: 0 torso centre, 1 back thigh centre, 2 back shin centre, 3 front thigh centre,
    4 front shin centre, 5 back foot, 6 front foot, 7 torso back end, 8 torso front end,
    9 back knee, 10 front knee."""
    th = q[2]
    phi = (th, th + q[3], th + q[3] + q[4], th + q[5], th + q[5] + q[6])
    L0, hip, l1, l2 = p[TORSO_HALF], p[HIP], p[THIGH_LEN], p[SHIN_LEN]
    # (point, term) -> (link, bx, by)
    for pt in range(NPT):
        nterms[pt] = 0
    _add(links, rx, ry, nterms, 1, 0, -hip, 0.0, phi)
    _add(links, rx, ry, nterms, 1, 1, 0.0, -0.5 * l1, phi)
    _add(links, rx, ry, nterms, 2, 0, -hip, 0.0, phi)
    _add(links, rx, ry, nterms, 2, 1, 0.0, -l1, phi)
    _add(links, rx, ry, nterms, 2, 2, 0.0, -0.5 * l2, phi)
    _add(links, rx, ry, nterms, 3, 0, hip, 0.0, phi)
    _add(links, rx, ry, nterms, 3, 3, 0.0, -0.5 * l1, phi)
    _add(links, rx, ry, nterms, 4, 0, hip, 0.0, phi)
    _add(links, rx, ry, nterms, 4, 3, 0.0, -l1, phi)
    _add(links, rx, ry, nterms, 4, 4, 0.0, -0.5 * l2, phi)
    _add(links, rx, ry, nterms, 5, 0, -hip, 0.0, phi)
    _add(links, rx, ry, nterms, 5, 1, 0.0, -l1, phi)
    _add(links, rx, ry, nterms, 5, 2, 0.0, -l2, phi)
    _add(links, rx, ry, nterms, 6, 0, hip, 0.0, phi)
    _add(links, rx, ry, nterms, 6, 3, 0.0, -l1, phi)
    _add(links, rx, ry, nterms, 6, 4, 0.0, -l2, phi)
    _add(links, rx, ry, nterms, 7, 0, -L0, 0.0, phi)
    _add(links, rx, ry, nterms, 8, 0, L0, 0.0, phi)
    _add(links, rx, ry, nterms, 9, 0, -hip, 0.0, phi)
    _add(links, rx, ry, nterms, 9, 1, 0.0, -l1, phi)
    _add(links, rx, ry, nterms, 10, 0, hip, 0.0, phi)
    _add(links, rx, ry, nterms, 10, 3, 0.0, -l1, phi)


@jit(inline="always")
def _add(links, rx, ry, nterms, pt, link, bx, by, phi):
    t = nterms[pt]
    c, s = math.cos(phi[link]), math.sin(phi[link])
    links[pt, t] = link
    rx[pt, t] = c * bx - s * by
    ry[pt, t] = s * bx + c * by
    nterms[pt] = t + 1


@jit
def _point_jac(pt, links, rx, ry, nterms, J):
    """``J = ∂p/∂q`` (2×7) of point ``pt``."""
    for k in range(NQ):
        J[0, k] = 0.0
        J[1, k] = 0.0
    J[0, 0] = 1.0
    J[1, 1] = 1.0
    for t in range(nterms[pt]):
        j = links[pt, t]
        for k in range(2, NQ):
            if _on_path(j, k) != 0.0:
                J[0, k] -= ry[pt, t]  # S r = (-r_y, r_x)
                J[1, k] += rx[pt, t]


@jit(inline="always")
def _omega(j, v):
    w = 0.0
    for k in range(2, NQ):
        w += _on_path(j, k) * v[k]
    return w


@jit
def _cholesky(A, L):
    n = A.shape[0]
    for i in range(n):
        for j in range(i + 1):
            acc = A[i, j]
            for k in range(j):
                acc -= L[i, k] * L[j, k]
            if i == j:
                L[i, i] = math.sqrt(max(acc, 1e-300))
            else:
                L[i, j] = acc / L[j, j]
        for j in range(i + 1, n):
            L[i, j] = 0.0


@jit
def _solve_dense(K, G, n, ncols):
    """Gaussian elimination with partial pivoting: ``G[:n, :ncols] ← K[:n, :n]⁻¹ G``; returns
    False if ``K`` is numerically singular."""
    for c in range(n):
        piv = c
        best = abs(K[c, c])
        for i in range(c + 1, n):
            if abs(K[i, c]) > best:
                best = abs(K[i, c])
                piv = i
        if best < 1e-300:
            return False
        if piv != c:
            for j in range(n):
                K[c, j], K[piv, j] = K[piv, j], K[c, j]
            for j in range(ncols):
                G[c, j], G[piv, j] = G[piv, j], G[c, j]
        inv = 1.0 / K[c, c]
        for i in range(c + 1, n):
            f = K[i, c] * inv
            if f != 0.0:
                for j in range(c + 1, n):
                    K[i, j] -= f * K[c, j]
                for j in range(ncols):
                    G[i, j] -= f * G[c, j]
    for i in range(n - 1, -1, -1):
        inv = 1.0 / K[i, i]
        for j in range(ncols):
            acc = G[i, j]
            for k in range(i + 1, n):
                acc -= K[i, k] * G[k, j]
            G[i, j] = acc * inv
    return True


@jit
def reset(p, rng, out):
    out[0] = 0.0
    out[1] = 0.7 + _rng.uniform_range(rng, -0.02, 0.02)
    for k in range(2, NQ):
        out[k] = _rng.uniform_range(rng, -0.1, 0.1)
    for k in range(NQ, 2 * NQ):
        out[k] = 0.1 * _rng.normal(rng)


@jit
def _masses(p, masses, inertias):
    m0, m1, m2 = p[TORSO_MASS], p[THIGH_MASS], p[SHIN_MASS]
    l0, l1, l2 = 2.0 * p[TORSO_HALF], p[THIGH_LEN], p[SHIN_LEN]
    masses[0], masses[1], masses[2], masses[3], masses[4] = m0, m1, m2, m1, m2
    inertias[0] = m0 * l0 * l0 / 12.0
    inertias[1] = inertias[3] = m1 * l1 * l1 / 12.0
    inertias[2] = inertias[4] = m2 * l2 * l2 / 12.0


@jit
def simulate(p, s, a, out, jac, J_s, J_a, info):
    """One step into ``out``; with ``jac`` also ``J_s``, ``J_a``.  ``info`` (``INFO_SIZE``):
    LCP status, pivots, the LCP solution ``z`` and the contact gaps.  Returns the status."""
    h, g, mu, cfm = p[DT], p[GRAVITY], p[FRICTION], p[CFM]
    q = s[:NQ]
    v = s[NQ:]
    links = np.empty((NPT, 3), dtype=np.int64)
    rx = np.empty((NPT, 3))
    ry = np.empty((NPT, 3))
    nterms = np.empty(NPT, dtype=np.int64)
    _chains(p, links, rx, ry, nterms, q)
    masses = np.empty(5)
    inertias = np.empty(5)
    _masses(p, masses, inertias)
    u = np.empty(4)
    umask = np.empty(4)
    for m in range(4):
        u[m] = min(max(a[m], -1.0), 1.0)
        umask[m] = 1.0 if -1.0 < a[m] < 1.0 else 0.0

    # Mass matrix and bias, (1).
    Jb = np.empty((5, 2, NQ))  # centre Jacobians of the five links
    acc = np.empty((5, 2))  # centripetal accelerations J̇c v
    M = np.zeros((NQ, NQ))
    c = np.zeros(NQ)
    for b in range(5):
        _point_jac(b, links, rx, ry, nterms, Jb[b])
        ax = 0.0
        az = 0.0
        for t in range(nterms[b]):
            w = _omega(links[b, t], v)
            ax -= rx[b, t] * w * w
            az -= ry[b, t] * w * w
        acc[b, 0] = ax
        acc[b, 1] = az
        mb = masses[b]
        for i in range(NQ):
            c[i] += mb * (Jb[b, 0, i] * ax + Jb[b, 1, i] * (az + g))
            for k in range(NQ):
                M[i, k] += mb * (Jb[b, 0, i] * Jb[b, 0, k] + Jb[b, 1, i] * Jb[b, 1, k])
        for i in range(2, NQ):
            for k in range(2, NQ):
                M[i, k] += inertias[b] * _on_path(b, i) * _on_path(b, k)
    limit = np.zeros(4)  # -K (q - q_lim) per joint, and the implicit stiffness flag
    kact = np.zeros(4)
    for m in range(4):
        qj = q[3 + m]
        if qj > JOINT_HI[m]:
            kact[m] = p[LIMIT_K]
            limit[m] = -p[LIMIT_K] * (qj - JOINT_HI[m])
        elif qj < JOINT_LO[m]:
            kact[m] = p[LIMIT_K]
            limit[m] = -p[LIMIT_K] * (qj - JOINT_LO[m])
    gears = (p[GEAR0], p[GEAR1], p[GEAR2], p[GEAR3])
    Meff = M.copy()
    for m in range(4):
        i = 3 + m
        M[i, i] += p[ARMATURE]  # M now holds M + A
        Meff[i, i] += p[ARMATURE] + h * p[DAMPING] + h * h * kact[m]
    rhs = np.empty(NQ)
    for i in range(NQ):
        acc_i = 0.0
        for k in range(NQ):
            acc_i += M[i, k] * v[k]
        tau = 0.0
        if i >= 3:
            tau = gears[i - 3] * u[i - 3] + limit[i - 3]
        rhs[i] = acc_i + h * (tau - c[i])
    L = np.empty((NQ, NQ))
    _cholesky(Meff, L)
    vf = rhs.copy()
    cholesky_solve(L, NQ, vf)

    # Contacts (3): W columns (n, t, -t) per contact, Y = M_eff⁻¹ W.
    Jp = np.empty((NC, 2, NQ))
    gaps = np.empty(NC)
    W = np.empty((NQ, 3 * NC))
    Y = np.empty((NQ, 3 * NC))
    col = np.empty(NQ)
    for i in range(NC):
        pt = 5 + i
        _point_jac(pt, links, rx, ry, nterms, Jp[i])
        z_pt = q[1]
        for t in range(nterms[pt]):
            z_pt += ry[pt, t]
        gaps[i] = z_pt
        for k in range(NQ):
            W[k, 3 * i] = Jp[i, 1, k]
            W[k, 3 * i + 1] = Jp[i, 0, k]
            W[k, 3 * i + 2] = -Jp[i, 0, k]
    for j in range(3 * NC):
        for k in range(NQ):
            col[k] = W[k, j]
        cholesky_solve(L, NQ, col)
        for k in range(NQ):
            Y[k, j] = col[k]
    # Only points near the ground enter the LCP; a point left out whose constraint the
    # solution violates (it would end the step below the ground) is added and the LCP solved
    # again, so the pruning never changes the result.
    inc = np.zeros(NC, dtype=np.int64)
    for i in range(NC):
        if gaps[i] < MARGIN:
            inc[i] = 1
    zl = np.zeros(NL)
    vp = np.empty(NQ)
    status = lcp.OK
    pivots = 0
    attempt = 0
    cfm_base = cfm
    for _ in range(4 * NC + 4):
        ni = 0
        idx = np.empty(NC, dtype=np.int64)
        for i in range(NC):
            # A retry lists the contacts in reverse: the same LCP, permuted, which takes
            # Lemke's pivoting along another path (see the docstring).
            ii = NC - 1 - i if attempt % 2 == 1 else i
            if inc[ii]:
                idx[ni] = ii
                ni += 1
        n_l = 4 * ni
        Ml = np.zeros((n_l, n_l))
        ql = np.zeros(n_l)
        for ii in range(ni):
            i = idx[ii]
            for a_ in range(3):
                r = 4 * ii + a_
                wr = 3 * i + a_
                acc_q = 0.0
                for k in range(NQ):
                    acc_q += W[k, wr] * vf[k]
                ql[r] = acc_q + (gaps[i] / h if a_ == 0 else 0.0)
                for jj in range(ni):
                    j = idx[jj]
                    for b_ in range(3):
                        acc_m = 0.0
                        for k in range(NQ):
                            acc_m += W[k, wr] * Y[k, 3 * j + b_]
                        Ml[r, 4 * jj + b_] = acc_m
                Ml[r, r] += cfm
            Ml[4 * ii + 1, 4 * ii + 3] = 1.0
            Ml[4 * ii + 2, 4 * ii + 3] = 1.0
            Ml[4 * ii + 3, 4 * ii] = mu
            Ml[4 * ii + 3, 4 * ii + 1] = -1.0
            Ml[4 * ii + 3, 4 * ii + 2] = -1.0
            ql[4 * ii + 3] = p[SLACK]
        zs = np.empty(n_l)
        ws = np.empty(n_l)
        T = np.empty((n_l, 2 * n_l + 2))
        basis = np.empty(n_l, dtype=np.int64)
        status, piv = lcp.lemke(Ml, ql, zs, ws, T, basis, MAX_PIVOTS)
        pivots += piv
        if status != lcp.OK:
            if attempt < 3 and status != lcp.NOT_FINITE:
                attempt += 1
                # Attempts 2 and 3: 100× the compliance (still ~1e-4 m/s per N s), which
                # conditions the nearly singular problems; the Jacobian uses the same value.
                cfm = cfm_base * (100.0 if attempt >= 2 else 1.0)
                continue
            break
        for r in range(NL):
            zl[r] = 0.0
        for ii in range(ni):
            for a_ in range(4):
                # The solver's check bounds negatives by ~1e-9; they are rounding: clip them.
                zl[4 * idx[ii] + a_] = max(zs[4 * ii + a_], 0.0)
        for k in range(NQ):
            vp[k] = vf[k]
        for i in range(NC):
            for a_ in range(3):
                zr = zl[4 * i + a_]
                if zr != 0.0:
                    for k in range(NQ):
                        vp[k] += Y[k, 3 * i + a_] * zr
        added = False
        for i in range(NC):
            if not inc[i]:
                nv = 0.0
                for k in range(NQ):
                    nv += W[k, 3 * i] * vp[k]
                if gaps[i] + h * nv < 0.0:
                    inc[i] = 1
                    added = True
        if not added:
            break
    if info.shape[0] >= INFO_SIZE:
        info[0] = status
        info[1] = pivots
        info[2] = attempt
        for r in range(NL):
            info[3 + r] = zl[r]
        for i in range(NC):
            info[3 + NL + i] = gaps[i]
    if status != lcp.OK:
        for i in range(2 * NQ):
            out[i] = np.nan
        if jac:
            J_s[:, :] = np.nan
            J_a[:, :] = np.nan
        return status

    for k in range(NQ):
        out[k] = q[k] + h * vp[k]
        out[NQ + k] = vp[k]
    if not jac:
        return status

    # -- Jacobian: implicit differentiation of the active-set system (see the docstring) --
    act = np.empty(NL, dtype=np.int64)  # LCP index -> position in y (or -1)
    na = 0
    for r in range(NL):
        if zl[r] > 0.0:
            act[r] = NQ + na
            na += 1
        else:
            act[r] = -1
    N = NQ + na
    K = np.zeros((N, N))
    G = np.zeros((N, NIN))
    for i in range(NQ):
        for k in range(NQ):
            K[i, k] = Meff[i, k]
    for i in range(NC):
        for a_ in range(3):
            r = 4 * i + a_
            y = act[r]
            if y < 0:
                continue
            for k in range(NQ):
                K[k, y] = -W[k, 3 * i + a_]
                K[y, k] = W[k, 3 * i + a_]
            K[y, y] = cfm
            if a_ > 0 and act[4 * i + 3] >= 0:
                K[y, act[4 * i + 3]] = 1.0
        yg = act[4 * i + 3]
        if yg >= 0:
            if act[4 * i] >= 0:
                K[yg, act[4 * i]] = mu
            if act[4 * i + 1] >= 0:
                K[yg, act[4 * i + 1]] = -1.0
            if act[4 * i + 2] >= 0:
                K[yg, act[4 * i + 2]] = -1.0

    # ∂F/∂q_k for the dynamics rows.  x = v⁺ - v.
    x = np.empty(NQ)
    for k in range(NQ):
        x[k] = vp[k] - v[k]
    # Link angular velocities of v, x, v⁺.
    wv = np.empty(5)
    wx = np.empty(5)
    for j in range(5):
        wv[j] = _omega(j, v)
        wx[j] = _omega(j, x)
    for b in range(5):
        mb = masses[b]
        # e = Jc x + h (J̇c v + g e_z)
        ex = h * acc[b, 0]
        ez = h * (acc[b, 1] + g)
        for k in range(NQ):
            ex += Jb[b, 0, k] * x[k]
            ez += Jb[b, 1, k] * x[k]
        for t in range(nterms[b]):
            j = links[b, t]
            r_x, r_y = rx[b, t], ry[b, t]
            rdote = r_x * ex + r_y * ez
            # hk = -(r ω(x) + h ω(v)² S r), the derivative of (Jc x + h J̇c v) along q_k.
            hx = -(r_x * wx[j] - h * wv[j] * wv[j] * r_y)
            hz = -(r_y * wx[j] + h * wv[j] * wv[j] * r_x)
            for k in range(2, NQ):
                if _on_path(j, k) == 0.0:
                    continue
                # (∂Jc/∂q_k)ᵀ e: component l = -[l on path] r·e
                for l in range(2, NQ):
                    if _on_path(j, l) != 0.0:
                        G[l, k] -= mb * rdote
                # Jcᵀ hk
                for l in range(NQ):
                    G[l, k] += mb * (Jb[b, 0, l] * hx + Jb[b, 1, l] * hz)
            # ∂F/∂v_l = -(M + A) + h ∂c/∂v: ∂(J̇c v)/∂v_l = -2 [l on path] ω_t r_t
            for l in range(2, NQ):
                if _on_path(j, l) == 0.0:
                    continue
                dax = -2.0 * wv[j] * r_x
                daz = -2.0 * wv[j] * r_y
                for i in range(NQ):
                    G[i, NQ + l] += h * mb * (Jb[b, 0, i] * dax + Jb[b, 1, i] * daz)
    for i in range(NQ):
        for l in range(NQ):
            G[i, NQ + l] -= M[i, l]
    for m in range(4):
        G[3 + m, 3 + m] += h * kact[m]
        G[3 + m, 2 * NQ + m] = -h * gears[m] * umask[m]
    # Contact terms: -(∂J_iᵀ/∂q_k) f_i in the dynamics rows; constraint rows.
    for i in range(NC):
        fx = zl[4 * i + 1] - zl[4 * i + 2]
        fz = zl[4 * i]
        pt = 5 + i
        yn, yp, ym = act[4 * i], act[4 * i + 1], act[4 * i + 2]
        for t in range(nterms[pt]):
            j = links[pt, t]
            r_x, r_y = rx[pt, t], ry[pt, t]
            rdotf = r_x * fx + r_y * fz
            wvp = _omega(j, vp)
            for k in range(2, NQ):
                if _on_path(j, k) == 0.0:
                    continue
                for l in range(2, NQ):
                    if _on_path(j, l) != 0.0:
                        G[l, k] += rdotf
                # (∂J/∂q_k) v⁺ = -r ω(v⁺)
                if yn >= 0:
                    G[yn, k] -= r_y * wvp
                if yp >= 0:
                    G[yp, k] -= r_x * wvp
                if ym >= 0:
                    G[ym, k] += r_x * wvp
        if yn >= 0:
            for k in range(NQ):
                G[yn, k] += Jp[i, 1, k] / h
    ok = _solve_dense(K, G, N, NIN)
    if not ok:
        J_s[:, :] = np.nan
        J_a[:, :] = np.nan
        return status
    for i in range(NQ):
        for k in range(NIN):
            dv = -G[i, k]
            if k < 2 * NQ:
                J_s[NQ + i, k] = dv
                J_s[i, k] = (1.0 if k == i else 0.0) + h * dv
            else:
                J_a[NQ + i, k - 2 * NQ] = dv
                J_a[i, k - 2 * NQ] = h * dv
    return status


@jit
def step(p, s, a, out):
    J = np.empty((0, 0))
    simulate(p, s, a, out, False, J, J, out[:0])
    reward = out[NQ]
    for m in range(4):
        u = min(max(a[m], -1.0), 1.0)
        reward -= 0.1 * u * u
    return reward, False


@jit
def step_jac(p, s, a, out, J_s, J_a, dr_ds, dr_da):
    simulate(p, s, a, out, True, J_s, J_a, out[:0])
    reward = out[NQ]
    for k in range(2 * NQ):
        dr_ds[k] = J_s[NQ, k]
    for m in range(4):
        u = min(max(a[m], -1.0), 1.0)
        reward -= 0.1 * u * u
        dr_da[m] = J_a[NQ, m] - (0.2 * u if -1.0 < a[m] < 1.0 else 0.0)
    return reward, False


@jit
def contact_info(p, s, a, info):
    out = np.empty(2 * NQ)
    J = np.empty((0, 0))
    simulate(p, s, a, out, False, J, J, info)


@jit
def body_points(p, s, pts):
    """World positions of the 11 body points (see :func:`_chains`) into ``pts`` (11×2)."""
    links = np.empty((NPT, 3), dtype=np.int64)
    rx = np.empty((NPT, 3))
    ry = np.empty((NPT, 3))
    nterms = np.empty(NPT, dtype=np.int64)
    _chains(p, links, rx, ry, nterms, s[:NQ])
    for pt in range(NPT):
        pts[pt, 0] = s[0]
        pts[pt, 1] = s[1]
        for t in range(nterms[pt]):
            pts[pt, 0] += rx[pt, t]
            pts[pt, 1] += ry[pt, t]


class HalfCheetah(Env):
    __doc__ = __doc__
    name = "HalfCheetah"
    state_dim = 14
    action_dim = 4
    horizon = 1000
    dt = 0.01
    max_reward = 10.0
    param_names = (
        "dt", "gravity", "friction", "torso_mass", "thigh_mass", "shin_mass",
        "torso_half_length", "hip_offset", "thigh_length", "shin_length", "gear_back_thigh",
        "gear_back_shin", "gear_front_thigh", "gear_front_shin", "armature", "damping",
        "limit_stiffness", "cfm", "friction_slack",
    )
    default_params = (
        0.01, 9.81, 0.9, 6.0, 1.5, 1.0, 0.5, 0.4, 0.3, 0.3, 60.0, 45.0, 60.0, 30.0, 0.1, 0.5,
        1000.0, 1e-6, 1e-6,
    )
    reset_kernel = staticmethod(reset)
    step_kernel = staticmethod(step)
    step_jac_kernel = staticmethod(step_jac)

    def __init__(self, **params):
        super().__init__(**params)
        for key in self.param_names:
            value = self.params[self.param_names.index(key)]
            if key in ("friction", "armature", "damping", "limit_stiffness") + tuple(
                k for k in self.param_names if k.startswith("gear")
            ):
                if not value >= 0.0:
                    raise ValueError(f"{self.name}: {key} must be non-negative, got {value}")
            elif not value > 0.0:
                raise ValueError(f"{self.name}: {key} must be positive, got {value}")
        if not self.params[HIP] <= self.params[TORSO_HALF]:
            raise ValueError(f"{self.name}: hip_offset must not exceed torso_half_length")
        self.dt = float(self.params[DT])

    def contact_info(self, state, action):
        """The step's LCP: a dict with ``status`` (see :mod:`fastd3pg.physics.lcp`),
        ``pivots``, ``retries`` (0: solved at once; 1: in reverse order; 2, 3: with 100× the
        compliance), ``z`` (6×4: per contact λn, β⁺, β⁻, γ; contacts: back foot, front foot,
        torso back end, torso front end, back knee, front knee) and ``gaps`` (6, m, at the
        start of the step)."""
        s = self._check(state, self.state_dim, "state")
        a = self._check(action, self.action_dim, "action")
        info = np.zeros(INFO_SIZE)
        contact_info(self.params, s, a, info)
        return {
            "status": int(info[0]),
            "pivots": int(info[1]),
            "retries": int(info[2]),
            "z": info[3:3 + NL].reshape(NC, 4).copy(),
            "gaps": info[3 + NL:].copy(),
        }

    def points(self, state):
        """World positions (11×2) of: torso centre, back thigh/shin centres, front thigh/shin
        centres, back foot, front foot, torso back end, torso front end, back knee, front knee
        (the last six are the contact points)."""
        s = self._check(state, self.state_dim, "state")
        pts = np.empty((NPT, 2))
        body_points(self.params, s, pts)
        return pts
