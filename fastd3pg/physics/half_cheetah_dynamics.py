"""HalfCheetah's model below its kernels (see :mod:`fastd3pg.physics.half_cheetah` for the
equations): the parameter layout, the body's kinematic chains, the step's scratch arrays, the
contact-free dynamics (1) and the contact LCP (3) with its pruning and retries.
"""

import math
from typing import NamedTuple

import numpy as np

from fastd3pg._jit import jit
from fastd3pg.linalg import cholesky, cholesky_solve
from fastd3pg.physics import lcp
from fastd3pg.physics.scratch import stack_empty

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
def on_path(j, k):
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
def chains(p, links, rx, ry, nterms, q):
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
def point_jac(pt, links, rx, ry, nterms, J):
    """``J = ∂p/∂q`` (2×7) of point ``pt``."""
    for k in range(NQ):
        J[0, k] = 0.0
        J[1, k] = 0.0
    J[0, 0] = 1.0
    J[1, 1] = 1.0
    for t in range(nterms[pt]):
        j = links[pt, t]
        for k in range(2, NQ):
            if on_path(j, k) != 0.0:
                J[0, k] -= ry[pt, t]  # S r = (-r_y, r_x)
                J[1, k] += rx[pt, t]


@jit(inline="always")
def omega(j, v):
    w = 0.0
    for k in range(2, NQ):
        w += on_path(j, k) * v[k]
    return w


class Work(NamedTuple):
    """The step's scratch arrays (see :func:`workspace`); the LCP's and the active-set
    system's are flat buffers whose prefixes are shaped per step."""

    links: np.ndarray  # (NPT, 3) int: link of each term of each body point's chain
    rx: np.ndarray  # (NPT, 3): the terms r_t = R(φ_t) b_t
    ry: np.ndarray
    nterms: np.ndarray  # (NPT,) int
    masses: np.ndarray  # (5,)
    inertias: np.ndarray  # (5,)
    u: np.ndarray  # (4,) clipped action
    umask: np.ndarray  # (4,) 1 where the action is not clipped
    Jb: np.ndarray  # (5, 2, NQ) centre Jacobians of the five links
    acc: np.ndarray  # (5, 2) centripetal accelerations J̇c v
    M: np.ndarray  # (NQ, NQ) M + A
    Meff: np.ndarray  # (NQ, NQ)
    L: np.ndarray  # (NQ, NQ) Cholesky factor of M_eff
    c: np.ndarray  # (NQ,) bias
    limit: np.ndarray  # (4,) -K (q - q_lim) per joint
    kact: np.ndarray  # (4,) the active limits' stiffness
    rhs: np.ndarray  # (NQ,) the right side b of (1)
    vf: np.ndarray  # (NQ,) M_eff⁻¹ b, the contact-free v⁺
    Jp: np.ndarray  # (NC, 2, NQ) contact point Jacobians
    gaps: np.ndarray  # (NC,)
    W: np.ndarray  # (NQ, 3 NC) columns (n, t, -t) per contact
    Y: np.ndarray  # (NQ, 3 NC) M_eff⁻¹ W
    col: np.ndarray  # (NQ,)
    inc: np.ndarray  # (NC,) int: 1 if the contact enters the LCP
    idx: np.ndarray  # (NC,) int: the LCP's contacts in order
    zl: np.ndarray  # (NL,) the LCP solution per contact (λn, β⁺, β⁻, γ)
    vp: np.ndarray  # (NQ,) v⁺
    Ml: np.ndarray  # flat (NL²,): the LCP matrix
    ql: np.ndarray  # (NL,)
    zs: np.ndarray  # (NL,)
    ws: np.ndarray  # (NL,)
    T: np.ndarray  # flat (NL (2 NL + 2),): Lemke's tableau
    basis: np.ndarray  # (NL,) int
    act: np.ndarray  # (NL,) int: LCP index -> position in y (or -1)
    K: np.ndarray  # flat ((NQ + NL)²,): the active-set matrix
    G: np.ndarray  # flat ((NQ + NL) NIN,): ∂F/∂(s, a), then dy
    x: np.ndarray  # (NQ,) v⁺ - v
    wv: np.ndarray  # (5,) link angular velocities of v
    wx: np.ndarray  # (5,) ... of v⁺ - v


# Scratch sizes (compile-time constants, see fastd3pg.physics.scratch).
_S_CHAIN = NPT * 3
_S_JB = 5 * 2 * NQ
_S_MAT = NQ * NQ
_S_JP = NC * 2 * NQ
_S_W = NQ * 3 * NC
_S_ML = NL * NL
_S_T = NL * (2 * NL + 2)
_S_K = (NQ + NL) * (NQ + NL)
_S_G = (NQ + NL) * NIN


@jit(inline="always")
def workspace():
    """The step's scratch arrays, on the stack of the kernel that calls this (no allocation)."""
    f8, i8 = np.float64, np.int64
    return Work(
        stack_empty(_S_CHAIN, i8).reshape((NPT, 3)),
        stack_empty(_S_CHAIN, f8).reshape((NPT, 3)),
        stack_empty(_S_CHAIN, f8).reshape((NPT, 3)),
        stack_empty(NPT, i8),
        stack_empty(5, f8),
        stack_empty(5, f8),
        stack_empty(4, f8),
        stack_empty(4, f8),
        stack_empty(_S_JB, f8).reshape((5, 2, NQ)),
        stack_empty(10, f8).reshape((5, 2)),
        stack_empty(_S_MAT, f8).reshape((NQ, NQ)),
        stack_empty(_S_MAT, f8).reshape((NQ, NQ)),
        stack_empty(_S_MAT, f8).reshape((NQ, NQ)),
        stack_empty(NQ, f8),
        stack_empty(4, f8),
        stack_empty(4, f8),
        stack_empty(NQ, f8),
        stack_empty(NQ, f8),
        stack_empty(_S_JP, f8).reshape((NC, 2, NQ)),
        stack_empty(NC, f8),
        stack_empty(_S_W, f8).reshape((NQ, 3 * NC)),
        stack_empty(_S_W, f8).reshape((NQ, 3 * NC)),
        stack_empty(NQ, f8),
        stack_empty(NC, i8),
        stack_empty(NC, i8),
        stack_empty(NL, f8),
        stack_empty(NQ, f8),
        stack_empty(_S_ML, f8),
        stack_empty(NL, f8),
        stack_empty(NL, f8),
        stack_empty(NL, f8),
        stack_empty(_S_T, f8),
        stack_empty(NL, i8),
        stack_empty(NL, i8),
        stack_empty(_S_K, f8),
        stack_empty(_S_G, f8),
        stack_empty(NQ, f8),
        stack_empty(5, f8),
        stack_empty(5, f8),
    )


@jit
def link_masses(p, masses, inertias):
    m0, m1, m2 = p[TORSO_MASS], p[THIGH_MASS], p[SHIN_MASS]
    l0, l1, l2 = 2.0 * p[TORSO_HALF], p[THIGH_LEN], p[SHIN_LEN]
    masses[0], masses[1], masses[2], masses[3], masses[4] = m0, m1, m2, m1, m2
    inertias[0] = m0 * l0 * l0 / 12.0
    inertias[1] = inertias[3] = m1 * l1 * l1 / 12.0
    inertias[2] = inertias[4] = m2 * l2 * l2 / 12.0


# -- dynamics (1) without the contact impulses ------------------------------------------------
@jit
def dynamics(p, q, v, a, w):
    """The link chains, ``M + A`` (into ``w.M``), the bias, the active joint limits, ``M_eff``
    with its Cholesky factor and the contact-free ``v_f = M_eff⁻¹ b`` (``b`` the right side of
    (1) without ``W λ``). False if ``M_eff`` is not numerically positive definite (which only
    NaN in the state can cause)."""
    h, g = p[DT], p[GRAVITY]
    links, rx, ry, nterms = w.links, w.rx, w.ry, w.nterms
    chains(p, links, rx, ry, nterms, q)
    masses, inertias = w.masses, w.inertias
    link_masses(p, masses, inertias)
    u = w.u
    for m in range(4):
        u[m] = min(max(a[m], -1.0), 1.0)
        w.umask[m] = 1.0 if -1.0 < a[m] < 1.0 else 0.0

    Jb, acc, M, c = w.Jb, w.acc, w.M, w.c
    for i in range(NQ):
        c[i] = 0.0
        for k in range(NQ):
            M[i, k] = 0.0
    for b in range(5):
        point_jac(b, links, rx, ry, nterms, Jb[b])
        ax = 0.0
        az = 0.0
        for t in range(nterms[b]):
            om = omega(links[b, t], v)
            ax -= rx[b, t] * om * om
            az -= ry[b, t] * om * om
        acc[b, 0] = ax
        acc[b, 1] = az
        mb = masses[b]
        for i in range(NQ):
            c[i] += mb * (Jb[b, 0, i] * ax + Jb[b, 1, i] * (az + g))
            for k in range(NQ):
                M[i, k] += mb * (Jb[b, 0, i] * Jb[b, 0, k] + Jb[b, 1, i] * Jb[b, 1, k])
        for i in range(2, NQ):
            for k in range(2, NQ):
                M[i, k] += inertias[b] * on_path(b, i) * on_path(b, k)
    limit, kact = w.limit, w.kact
    for m in range(4):
        limit[m] = 0.0
        kact[m] = 0.0
        qj = q[3 + m]
        if qj > JOINT_HI[m]:
            kact[m] = p[LIMIT_K]
            limit[m] = -p[LIMIT_K] * (qj - JOINT_HI[m])
        elif qj < JOINT_LO[m]:
            kact[m] = p[LIMIT_K]
            limit[m] = -p[LIMIT_K] * (qj - JOINT_LO[m])
    gears = (p[GEAR0], p[GEAR1], p[GEAR2], p[GEAR3])
    Meff = w.Meff
    for i in range(NQ):
        for k in range(NQ):
            Meff[i, k] = M[i, k]
    for m in range(4):
        i = 3 + m
        M[i, i] += p[ARMATURE]  # M now holds M + A
        Meff[i, i] += p[ARMATURE] + h * p[DAMPING] + h * h * kact[m]
    rhs = w.rhs
    for i in range(NQ):
        acc_i = 0.0
        for k in range(NQ):
            acc_i += M[i, k] * v[k]
        tau = 0.0
        if i >= 3:
            tau = gears[i - 3] * u[i - 3] + limit[i - 3]
        rhs[i] = acc_i + h * (tau - c[i])
    L, vf = w.L, w.vf
    for i in range(NQ):
        for k in range(NQ):
            L[i, k] = Meff[i, k]
    if not cholesky(L, NQ):
        return False
    for i in range(NQ):
        vf[i] = rhs[i]
    cholesky_solve(L, NQ, vf)
    return True


# -- contacts (3) -----------------------------------------------------------------------------
@jit
def contact_rows(q, w):
    """Each contact point's Jacobian and gap, ``W``'s columns ``(n, t, -t)`` per contact and
    ``Y = M_eff⁻¹ W``."""
    links, rx, ry, nterms = w.links, w.rx, w.ry, w.nterms
    Jp, gaps, W, Y, col = w.Jp, w.gaps, w.W, w.Y, w.col
    for i in range(NC):
        pt = 5 + i
        point_jac(pt, links, rx, ry, nterms, Jp[i])
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
        cholesky_solve(w.L, NQ, col)
        for k in range(NQ):
            Y[k, j] = col[k]


@jit
def _lcp_problem(p, w, ni, h, mu, cfm):
    """The LCP (3) of the contacts ``w.idx[:ni]``, in that order, eliminating
    ``v⁺ = v_f + Y λ``; returns ``(M, q)`` (views of the scratch buffers)."""
    n_l = 4 * ni
    W, Y, vf, gaps, idx = w.W, w.Y, w.vf, w.gaps, w.idx
    Ml = w.Ml[: n_l * n_l].reshape((n_l, n_l))
    ql = w.ql[:n_l]
    for r in range(n_l):
        ql[r] = 0.0
        for k in range(n_l):
            Ml[r, k] = 0.0
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
    return Ml, ql


@jit
def solve_contacts(p, w, h, mu, cfm):
    """Lemke on the contacts near the ground, adding every point the solution would leave
    below the ground, with the retries of the docstring: the impulses into ``w.zl``, ``v⁺``
    into ``w.vp``. Returns ``(status, pivots, retries, cfm)``, ``cfm`` the final attempt's
    compliance (the Jacobian's)."""
    W, Y, vf, gaps, inc, idx, zl, vp = w.W, w.Y, w.vf, w.gaps, w.inc, w.idx, w.zl, w.vp
    # Only points near the ground enter the LCP; a point left out whose constraint the
    # solution violates (it would end the step below the ground) is added and the LCP solved
    # again, so the pruning never changes the result.
    for i in range(NC):
        inc[i] = 1 if gaps[i] < MARGIN else 0
    for r in range(NL):
        zl[r] = 0.0
    status = lcp.OK
    pivots = 0
    attempt = 0
    cfm_base = cfm
    for _ in range(4 * NC + 4):
        ni = 0
        for i in range(NC):
            # A retry lists the contacts in reverse: the same LCP, permuted, which takes
            # Lemke's pivoting along another path (see the docstring).
            ii = NC - 1 - i if attempt % 2 == 1 else i
            if inc[ii]:
                idx[ni] = ii
                ni += 1
        n_l = 4 * ni
        Ml, ql = _lcp_problem(p, w, ni, h, mu, cfm)
        zs = w.zs[:n_l]
        T = w.T[: n_l * (2 * n_l + 2)].reshape((n_l, 2 * n_l + 2))
        status, piv = lcp.lemke(Ml, ql, zs, w.ws[:n_l], T, w.basis[:n_l], MAX_PIVOTS)
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
    return status, pivots, attempt, cfm
