"""HalfCheetah: a planar articulated runner with hard (complementarity) ground contact
(the paper's §5.1: like MuJoCo's half cheetah, but with two links per leg).

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
    compliance, none failed.  If all four fail, the kernels' next state and reward are NaN
    (never a silent wrong state; a compiled training loop stops such a run as diverged) and
    ``HalfCheetah.contact_info`` reports the status; the Python shell (``step``,
    ``transition``, ``transition_batch``) raises ``ValueError`` naming the status instead.
    A mass matrix that is not numerically positive definite (only NaN in the state does
    that) is reported as ``NOT_FINITE`` too.
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

import numpy as np

from fastd3pg import rng as _rng
from fastd3pg._jit import jit
from fastd3pg.physics import lcp
from fastd3pg.physics.base import Env
from fastd3pg.physics.half_cheetah_dynamics import (  # noqa: F401 (the layout, re-exported)
    ARMATURE, CFM, DAMPING, DT, FRICTION, GEAR0, GEAR1, GEAR2, GEAR3, GRAVITY, HIP,
    INFO_SIZE, JOINT_HI, JOINT_LO, LIMIT_K, MARGIN, MAX_PIVOTS, NC, NIN, NL, NPT, NQ, SHIN_LEN,
    SHIN_MASS, SLACK, THIGH_LEN, THIGH_MASS, TORSO_HALF, TORSO_MASS, chains, contact_rows,
    dynamics, solve_contacts, workspace,
)
from fastd3pg.physics.half_cheetah_jacobian import jacobian
from fastd3pg.physics.scratch import stack_empty

NS = 2 * NQ  # state size


@jit
def reset(p, rng, out):
    out[0] = 0.0
    out[1] = 0.7 + _rng.uniform_range(rng, -0.02, 0.02)
    for k in range(2, NQ):
        out[k] = _rng.uniform_range(rng, -0.1, 0.1)
    for k in range(NQ, 2 * NQ):
        out[k] = 0.1 * _rng.normal(rng)


@jit
def simulate(p, s, a, out, jac, J_s, J_a, info):
    """One step into ``out``; with ``jac`` also ``J_s``, ``J_a``.  ``info`` (``INFO_SIZE``, or
    empty): LCP status, pivots, retries, the LCP solution ``z`` and the contact gaps.  Returns
    the status."""
    h, mu = p[DT], p[FRICTION]
    q = s[:NQ]
    v = s[NQ:]
    w = workspace()
    spd = dynamics(p, q, v, a, w)
    contact_rows(q, w)
    if spd:
        status, pivots, retries, cfm = solve_contacts(p, w, h, mu, p[CFM])
    else:
        for r in range(NL):
            w.zl[r] = 0.0
        status, pivots, retries, cfm = lcp.NOT_FINITE, 0, 0, p[CFM]
    if info.shape[0] >= INFO_SIZE:
        info[0] = status
        info[1] = pivots
        info[2] = retries
        for r in range(NL):
            info[3 + r] = w.zl[r]
        for i in range(NC):
            info[3 + NL + i] = w.gaps[i]
    if status != lcp.OK:
        for i in range(2 * NQ):
            out[i] = np.nan
        if jac:
            J_s[:, :] = np.nan
            J_a[:, :] = np.nan
        return status
    for k in range(NQ):
        out[k] = q[k] + h * w.vp[k]
        out[NQ + k] = w.vp[k]
    if jac:
        jacobian(p, v, w, mu, cfm, J_s, J_a)
    return status


@jit(inline="always")
def _reward(out, a):
    """``r = ẋ⁺ - 0.1 uᵀu`` of the step's result ``out``."""
    reward = out[NQ]
    for m in range(4):
        u = min(max(a[m], -1.0), 1.0)
        reward -= 0.1 * u * u
    return reward


@jit
def step(p, s, a, out):
    J = stack_empty(1, np.float64).reshape((1, 1))  # unused without the Jacobian
    simulate(p, s, a, out, False, J, J, out[:0])
    return _reward(out, a), False


@jit
def step_jac(p, s, a, out, J_s, J_a, dr_ds, dr_da):
    simulate(p, s, a, out, True, J_s, J_a, out[:0])
    for k in range(2 * NQ):
        dr_ds[k] = J_s[NQ, k]
    for m in range(4):
        u = min(max(a[m], -1.0), 1.0)
        dr_da[m] = J_a[NQ, m] - (0.2 * u if -1.0 < a[m] < 1.0 else 0.0)
    return _reward(out, a), False


@jit
def contact_info(p, s, a, info):
    out = stack_empty(NS, np.float64)
    J = stack_empty(1, np.float64).reshape((1, 1))
    simulate(p, s, a, out, False, J, J, info)


@jit
def body_points(p, s, pts):
    """World positions of the 11 body points (see :func:`chains`) into ``pts`` (11×2)."""
    links = np.empty((NPT, 3), dtype=np.int64)
    rx = np.empty((NPT, 3))
    ry = np.empty((NPT, 3))
    nterms = np.empty(NPT, dtype=np.int64)
    chains(p, links, rx, ry, nterms, s[:NQ])
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

    def _out_of_range(self, state, action):
        status = self.contact_info(state, action)["status"]
        if status != lcp.OK:
            return f"the contact solver failed: {lcp.STATUS_NAMES[status]}"
        return super()._out_of_range(state, action)

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
