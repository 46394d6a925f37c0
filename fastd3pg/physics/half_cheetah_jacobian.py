"""HalfCheetah's Jacobian: implicit differentiation of the active-set system (the derivation is
in :mod:`fastd3pg.physics.half_cheetah`'s docstring), on the scratch arrays of
:mod:`fastd3pg.physics.half_cheetah_dynamics` after a solved step.
"""

import numpy as np

from fastd3pg._jit import jit
from fastd3pg.linalg import gauss_solve
from fastd3pg.physics.half_cheetah_dynamics import (
    DT, GEAR0, GEAR1, GEAR2, GEAR3, GRAVITY, NC, NIN, NL, NQ, omega, on_path,
)


@jit
def _active_set_system(w, mu, cfm):
    """``K`` of the active set's system ``K y = r`` and a zeroed ``G`` for ``∂F/∂(s, a)``
    (views of the scratch buffers, ``N = NQ + |A|`` rows)."""
    act, zl, W = w.act, w.zl, w.W
    na = 0
    for r in range(NL):
        if zl[r] > 0.0:
            act[r] = NQ + na
            na += 1
        else:
            act[r] = -1
    N = NQ + na
    K = w.K[: N * N].reshape((N, N))
    G = w.G[: N * NIN].reshape((N, NIN))
    for i in range(N):
        for k in range(N):
            K[i, k] = 0.0
        for k in range(NIN):
            G[i, k] = 0.0
    for i in range(NQ):
        for k in range(NQ):
            K[i, k] = w.Meff[i, k]
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
    return K, G


@jit
def _dynamics_partials(p, v, w, G):
    """``∂F/∂(q, v, a)`` of the dynamics rows (docstring), added into ``G[:NQ]``."""
    h, g = p[DT], p[GRAVITY]
    links, rx, ry, nterms, Jb, acc = w.links, w.rx, w.ry, w.nterms, w.Jb, w.acc
    vp, x, wv, wx = w.vp, w.x, w.wv, w.wx
    for k in range(NQ):
        x[k] = vp[k] - v[k]
    # Link angular velocities of v and of x = v⁺ - v.
    for j in range(5):
        wv[j] = omega(j, v)
        wx[j] = omega(j, x)
    for b in range(5):
        mb = w.masses[b]
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
                if on_path(j, k) == 0.0:
                    continue
                # (∂Jc/∂q_k)ᵀ e: component l = -[l on path] r·e
                for l in range(2, NQ):
                    if on_path(j, l) != 0.0:
                        G[l, k] -= mb * rdote
                # Jcᵀ hk
                for l in range(NQ):
                    G[l, k] += mb * (Jb[b, 0, l] * hx + Jb[b, 1, l] * hz)
            # ∂F/∂v_l = -(M + A) + h ∂c/∂v: ∂(J̇c v)/∂v_l = -2 [l on path] ω_t r_t
            for l in range(2, NQ):
                if on_path(j, l) == 0.0:
                    continue
                dax = -2.0 * wv[j] * r_x
                daz = -2.0 * wv[j] * r_y
                for i in range(NQ):
                    G[i, NQ + l] += h * mb * (Jb[b, 0, i] * dax + Jb[b, 1, i] * daz)
    for i in range(NQ):
        for l in range(NQ):
            G[i, NQ + l] -= w.M[i, l]
    gears = (p[GEAR0], p[GEAR1], p[GEAR2], p[GEAR3])
    for m in range(4):
        G[3 + m, 3 + m] += h * w.kact[m]
        G[3 + m, 2 * NQ + m] = -h * gears[m] * w.umask[m]


@jit
def _contact_partials(w, G, h):
    """The contact terms of ``∂F/∂q``: ``-(∂J_iᵀ/∂q_k) f_i`` in the dynamics rows and the
    normal and friction rows (docstring), added into ``G``."""
    links, rx, ry, nterms, zl, act, vp = w.links, w.rx, w.ry, w.nterms, w.zl, w.act, w.vp
    for i in range(NC):
        fx = zl[4 * i + 1] - zl[4 * i + 2]
        fz = zl[4 * i]
        pt = 5 + i
        yn, yp, ym = act[4 * i], act[4 * i + 1], act[4 * i + 2]
        for t in range(nterms[pt]):
            j = links[pt, t]
            r_x, r_y = rx[pt, t], ry[pt, t]
            rdotf = r_x * fx + r_y * fz
            wvp = omega(j, vp)
            for k in range(2, NQ):
                if on_path(j, k) == 0.0:
                    continue
                for l in range(2, NQ):
                    if on_path(j, l) != 0.0:
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
                G[yn, k] += w.Jp[i, 1, k] / h


@jit
def jacobian(p, v, w, mu, cfm, J_s, J_a):
    """``J_s``, ``J_a`` of the step by the implicit function theorem at the active set:
    ``dy = -K⁻¹ ∂F``, ``∂v⁺ = dy[:NQ]``, ``∂q⁺ = [I 0] + h ∂v⁺``."""
    h = p[DT]
    K, G = _active_set_system(w, mu, cfm)
    _dynamics_partials(p, v, w, G)
    _contact_partials(w, G, h)
    if not gauss_solve(K, G, K.shape[0], NIN):
        J_s[:, :] = np.nan
        J_a[:, :] = np.nan
        return
    for i in range(NQ):
        for k in range(NIN):
            dv = -G[i, k]
            if k < 2 * NQ:
                J_s[NQ + i, k] = dv
                J_s[i, k] = (1.0 if k == i else 0.0) + h * dv
            else:
                J_a[NQ + i, k - 2 * NQ] = dv
                J_a[i, k - 2 * NQ] = h * dv
