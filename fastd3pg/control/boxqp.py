"""Box-constrained quadratic programme by projected Newton (Tassa, Mansard & Todorov 2014, Alg. 1).

    minimise  ½ xᵀ H x + gᵀ x    subject to   lower ≤ x ≤ upper              (QP)

Each iteration splits the coordinates into *clamped* ones (at a bound with the gradient
pushing outwards: ``x = lower, ∂ > 0`` or ``x = upper, ∂ < 0``) and *free* ones, takes the Newton
step on the free ones with the clamped ones held (``x_f ← -H_ff⁻¹ (g_f + H_fc x_c)``), and
projects it back into the box with an Armijo backtracking line search along the projected arc.
It stops when the free gradient is tiny, the improvement is tiny, or every coordinate is
clamped. The Cholesky factor of the last ``H_ff`` is kept: iLQR's feedback gain is
``K_f = -H_ff⁻¹ Q_ux,f`` on the free rows and 0 on the clamped ones (Tassa et al. 2014, §III.B).

Constants are those of the paper's reference implementation: Armijo 0.1, step decrease 0.6,
minimum step 1e-22, minimum gradient 1e-8, minimum relative improvement 1e-8, 100 iterations.
``H`` need only be positive definite on the free subspace; a failed Cholesky factorization is
reported (status ``QP_NOT_PD``) so that iLQR can raise its regularization.
"""

import math

import numpy as np

from fastd3pg._jit import jit
from fastd3pg.linalg import cholesky, cholesky_solve

# Status codes (as the reference implementation's ``result``).
QP_NOT_PD = -1  # H_ff not positive definite
QP_NO_DESCENT = 0  # the Newton direction is not a descent direction (numerical)
QP_MAX_ITER = 1
QP_SMALL_STEP = 2  # line search failed
QP_SMALL_IMPROVE = 4
QP_SMALL_GRAD = 5
QP_ALL_CLAMPED = 6

ARMIJO, STEP_DEC, MIN_STEP, MIN_GRAD, MIN_REL_IMPROVE, MAX_ITER = 0.1, 0.6, 1e-22, 1e-8, 1e-8, 100


@jit(inline="always")
def _value(H, g, x):
    m = x.shape[0]
    v = 0.0
    for i in range(m):
        hx = 0.0
        for j in range(m):
            hx += H[i, j] * x[j]
        v += x[i] * (g[i] + 0.5 * hx)
    return v


@jit
def cholesky_free(H, free, L):
    """Lower Cholesky factor of ``H[free][:, free]`` into ``L[:nf, :nf]``; returns ``nf`` or -1
    when that block is not positive definite."""
    m = H.shape[0]
    nf = 0
    for i in range(m):
        if free[i]:
            nf2 = 0
            for j in range(m):
                if free[j]:
                    L[nf, nf2] = H[i, j]
                    nf2 += 1
            nf += 1
    return nf if cholesky(L, nf) else -1


@jit
def boxqp(H, g, lower, upper, x0, x, free, L, work):
    """Solve (QP) from the warm start ``x0``; the solution into ``x``.

    Outputs: ``free`` (bool, m) the final free set, ``L`` the Cholesky factor of ``H_ff`` in its
    top-left ``nf × nf`` block. ``work`` is a float64 scratch array of shape (4, m).
    Returns ``(status, nf)``.
    """
    m = g.shape[0]
    grad, search, xc, rhs = work[0], work[1], work[2], work[3]
    for i in range(m):
        x[i] = min(max(x0[i], lower[i]), upper[i])
        free[i] = True
    value = _value(H, g, x)
    old_value = 0.0
    status = QP_MAX_ITER
    nf = -2  # no factorization yet
    for it in range(MAX_ITER):
        if it > 0 and (old_value - value) < MIN_REL_IMPROVE * abs(old_value):
            status = QP_SMALL_IMPROVE
            break
        old_value = value
        for i in range(m):
            v = g[i]
            for j in range(m):
                v += H[i, j] * x[j]
            grad[i] = v
        changed = False
        n_free = 0
        for i in range(m):
            clamped = (x[i] == lower[i] and grad[i] > 0.0) or (x[i] == upper[i] and grad[i] < 0.0)
            if free[i] == clamped:
                changed = True
            free[i] = not clamped
            if not clamped:
                n_free += 1
        if n_free == 0:
            nf = 0
            status = QP_ALL_CLAMPED
            break
        if nf == -2 or changed:
            nf = cholesky_free(H, free, L)
            if nf < 0:
                return QP_NOT_PD, -1
        gnorm = 0.0
        for i in range(m):
            if free[i]:
                gnorm += grad[i] * grad[i]
        if math.sqrt(gnorm) < MIN_GRAD:
            status = QP_SMALL_GRAD
            break
        # Newton step on the free coordinates with the clamped ones held fixed.
        k = 0
        for i in range(m):
            if free[i]:
                v = g[i]
                for j in range(m):
                    if not free[j]:
                        v += H[i, j] * x[j]
                rhs[k] = -v
                k += 1
        cholesky_solve(L, nf, rhs)
        k = 0
        sdotg = 0.0
        for i in range(m):
            if free[i]:
                search[i] = rhs[k] - x[i]
                k += 1
            else:
                search[i] = 0.0
            sdotg += search[i] * grad[i]
        if sdotg >= 0.0:
            status = QP_NO_DESCENT
            break
        # Projected Armijo line search.
        step = 1.0
        while True:
            for i in range(m):
                xc[i] = min(max(x[i] + step * search[i], lower[i]), upper[i])
            vc = _value(H, g, xc)
            if (vc - value) / (step * sdotg) >= ARMIJO:
                break
            step *= STEP_DEC
            if step < MIN_STEP:
                break
        if step < MIN_STEP:
            status = QP_SMALL_STEP
            break
        for i in range(m):
            x[i] = xc[i]
        value = vc
    return status, nf


def solve(H, g, lower, upper, x0=None):
    """Python entry for (QP): returns ``(x, free, status)``. Validates shapes and bounds."""
    H = np.ascontiguousarray(H, dtype=np.float64)
    g = np.ascontiguousarray(g, dtype=np.float64).ravel()
    m = g.shape[0]
    if H.shape != (m, m):
        raise ValueError(f"boxqp: H must have shape ({m}, {m}), got {H.shape}")
    lower = np.ascontiguousarray(np.broadcast_to(lower, (m,)), dtype=np.float64)
    upper = np.ascontiguousarray(np.broadcast_to(upper, (m,)), dtype=np.float64)
    if np.any(lower > upper):
        raise ValueError("boxqp: some lower bound exceeds its upper bound")
    x0 = np.zeros(m) if x0 is None else np.ascontiguousarray(x0, dtype=np.float64).ravel()
    for name, arr in (("H", H), ("g", g), ("x0", x0)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"boxqp: {name} contains NaN or inf")
    x, free = np.empty(m), np.empty(m, dtype=np.bool_)
    status, _ = boxqp(H, g, lower, upper, x0, x, free, np.empty((m, m)), np.empty((4, m)))
    return x, free, int(status)
