"""A compiled linear complementarity problem (LCP) solver: Lemke's complementary pivoting.

The LCP ``(M, q)``: find ``z`` with::

    w = M z + q,   z ≥ 0,   w ≥ 0,   zᵀ w = 0.

Lemke's method (Cottle, Pang & Stone, *The Linear Complementarity Problem*, §4.4) augments the
problem with an artificial variable ``z0`` and covering vector ``d = 1``::

    w - M z - d z0 = q

starts from the almost-complementary basis ``w = q + d z0`` with ``z0 = -min q`` and pivots
complementary pairs in turn (the variable entering is the complement of the one that just
left) until ``z0`` leaves the basis (a solution) or the entering column has no positive entry
(*ray termination*).  For a copositive-plus ``M`` (positive semidefinite and monotone matrices,
P-matrices) ray termination proves that the LCP has no solution.  (The Stewart–Trinkle contact
matrix is copositive but not copositive-plus; :mod:`fastd3pg.physics.half_cheetah` explains
how its problems are kept processable.)

Ties in the ratio test (degenerate problems) are broken lexicographically: among the rows
tying for the minimum ratio ``q_i / a_i`` the one with the lexicographically smallest row of
``B⁻¹ / a_i`` leaves.  ``B⁻¹`` is read off the tableau's ``w`` columns (they start as the
identity), so the rule costs nothing extra and makes cycling impossible (loc. cit. §4.9).

Status codes (``lemke`` returns one; the solution is only meaningful for ``OK``):

``OK`` (0)
    ``z`` solves the LCP.
``RAY`` (1)
    ray termination: no solution exists for a copositive-plus ``M`` (an infeasible problem).
``MAX_PIVOTS`` (2)
    the pivot budget ran out (not seen with the lexicographic rule; a guard).
``NOT_FINITE`` (3)
    ``M`` or ``q`` contains NaN or inf.
``INACCURATE`` (4)
    the final check failed: some ``z_i`` or ``w_i`` is below ``-CHECK_TOL (1 + max|q|)``.
    The final basis's solution is recomputed from ``(M, q)`` by elimination with partial
    pivoting before the check, so this flags a wrong basis (a nearly singular problem whose
    pivoting went astray on rounding), not the tableau's accumulated rounding.  Every
    solution returned as ``OK`` has passed the check.

Near-ties: two ratios count as tied only if choosing either leaves the other row's basic
variable above ``-1e-13 (1 + max|q|)`` (the difference of the ratios times the row's pivot
entry); a tolerance on the ratios alone would treat ratios ~1e-8 apart by 1e-12 relative as
ties and let the lexicographic rule pick the larger, driving a basic variable negative.

"""

import math

import numpy as np

from fastd3pg._jit import jit
from fastd3pg.linalg import gauss_solve_augmented

OK, RAY, MAX_PIVOTS, NOT_FINITE, INACCURATE = 0, 1, 2, 3, 4
STATUS_NAMES = (
    "ok", "ray termination (infeasible)", "pivot budget exhausted", "NaN or inf in data",
    "solution failed the final check",
)
CHECK_TOL = 1e-9  # the final check's tolerance, relative to 1 + max|q| (see lemke)


@jit
def lemke(M, q, z, w, T, basis, max_pivots):
    """Solve the LCP ``(M, q)`` into ``z`` and ``w`` (n,) each; returns ``(status, pivots)``.

    The final basis's solution is recomputed from ``(M, q)`` (see the polish below) and
    checked: ``OK`` means ``z ≥ -tol``, ``w ≥ -tol`` and ``z_i w_i = 0`` exactly for the
    complementary pairs (one of each is zero), with ``tol = CHECK_TOL (1 + max|q|)``.

    ``T`` is an ``(n, 2n + 2)`` float64 work tableau and ``basis`` an ``(n,)`` int64 work array
    (passed in so that a hot loop allocates nothing). Column layout of ``T``: ``w`` (0..n-1),
    ``z`` (n..2n-1), ``z0`` (2n), right-hand side (2n+1).  ``basis[i]`` is the variable basic
    in row ``i`` (``j < n``: ``w_j``; ``n ≤ j < 2n``: ``z_{j-n}``; ``2n``: ``z0``)."""
    n = q.shape[0]
    for i in range(n):
        z[i] = 0.0
        w[i] = q[i]
        if not math.isfinite(q[i]):
            return NOT_FINITE, 0
        for j in range(n):
            if not math.isfinite(M[i, j]):
                return NOT_FINITE, 0
    if n == 0:
        return OK, 0
    # Trivial solution z = 0 when q ≥ 0.
    r = 0
    for i in range(1, n):
        if q[i] < q[r]:
            r = i
    if q[r] >= 0.0:
        return OK, 0
    rhs = 2 * n + 1
    z0col = 2 * n
    for i in range(n):
        for j in range(n):
            T[i, j] = 1.0 if i == j else 0.0
            T[i, n + j] = -M[i, j]
        T[i, z0col] = -1.0
        T[i, rhs] = q[i]
        basis[i] = i
    # First pivot: z0 enters; the row of the most negative q leaves (lexicographic tie-break).
    qscale = 0.0
    for i in range(n):
        qscale = max(qscale, abs(q[i]))
    tie_tol = 1e-13 * (1.0 + qscale)
    r = _ratio_row(T, n, z0col, True, tie_tol)
    entering = z0col
    pivots = 0
    while pivots < max_pivots:
        leaving = basis[r]
        _pivot(T, n, r, entering)
        basis[r] = entering
        pivots += 1
        if leaving == z0col:
            break
        # The complement of the variable that left enters.
        entering = leaving + n if leaving < n else leaving - n
        r = _ratio_row(T, n, entering, False, tie_tol)
        if r < 0:
            return RAY, pivots
    else:
        return MAX_PIVOTS, pivots
    # Polish: recompute the basic solution of the final (complementary) basis from the data,
    # M_BB z_B = -q_B with B = {i : z_i basic}, by elimination with partial pivoting.  The
    # tableau's values carry the rounding of every pivot (a pivot can be as small as the
    # problem's regularisation); the basis itself is what the pivoting found.
    nb = 0
    for i in range(n):
        j = basis[i]
        if n <= j < 2 * n:
            basis[nb] = j - n  # reuse: the basic z indices (the tableau is done)
            nb += 1
    for r in range(nb):
        for c in range(nb):
            T[r, c] = M[basis[r], basis[c]]
        T[r, nb] = -q[basis[r]]
    if not gauss_solve_augmented(T, nb):
        return INACCURATE, pivots
    for r in range(nb):
        z[basis[r]] = T[r, nb]
    for i in range(n):
        acc = q[i]
        for j in range(n):
            acc += M[i, j] * z[j]
        w[i] = acc
    for r in range(nb):
        w[basis[r]] = 0.0  # zero by construction up to rounding
    bound = -CHECK_TOL * (1.0 + qscale)
    for i in range(n):
        if z[i] < bound or w[i] < bound:
            return INACCURATE, pivots
    return OK, pivots


@jit
def _ratio_row(T, n, col, first, tie_tol):
    """The leaving row for entering column ``col``, or -1 (no blocking row: a ray).

    Regular pivots: rows with ``a_i = T[i, col] > 0`` block; the minimum ``T[i, rhs] / a_i``
    leaves.  First pivot (``z0`` enters with column ``-d = -1``): the minimum ``q_i`` leaves.
    Ties are broken by the lexicographically smallest ``T[i, 0:n] / a_i`` (rows of ``B⁻¹``;
    ``a_i = 1`` for the first pivot): this is the ratio test of the problem with ``q``
    perturbed by ``(ε, ε², …, εⁿ)``, which is never degenerate, so no basis repeats."""
    rhs = 2 * n + 1
    best = -1
    best_key = 0.0
    best_a = 1.0
    for i in range(n):
        if first:
            a = 1.0
        else:
            a = T[i, col]
            if a <= 1e-13:
                continue
        key = T[i, rhs] / a
        if best < 0:
            best, best_key, best_a = i, key, a
            continue
        # Choosing the larger of two ratios leaves the other row at -(difference) × its entry.
        tie = tie_tol / max(a, best_a)
        if key < best_key - tie:
            best, best_key, best_a = i, key, a
        elif key <= best_key + tie:
            for j in range(n):
                x = T[i, j] / a
                y = T[best, j] / best_a
                if x < y - 1e-15:
                    best, best_key, best_a = i, key, a
                    break
                if x > y + 1e-15:
                    break
    return best


@jit
def _pivot(T, n, r, col):
    """Gauss–Jordan pivot on ``T[r, col]``."""
    width = 2 * n + 2
    inv = 1.0 / T[r, col]
    for j in range(width):
        T[r, j] *= inv
    T[r, col] = 1.0
    for i in range(n):
        if i == r:
            continue
        f = T[i, col]
        if f != 0.0:
            for j in range(width):
                T[i, j] -= f * T[r, j]
            T[i, col] = 0.0


def solve(M, q, max_pivots=None):
    """Python convenience wrapper: ``(z, w, status, pivots)``; validates shapes."""
    M = np.ascontiguousarray(M, dtype=np.float64)
    q = np.ascontiguousarray(q, dtype=np.float64)
    if q.ndim != 1 or M.shape != (q.size, q.size):
        raise ValueError(f"lcp: M must be (n, n) and q (n,), got {M.shape} and {q.shape}")
    n = q.size
    if max_pivots is None:
        max_pivots = 50 * (n + 1)
    z = np.zeros(n)
    w = np.zeros(n)
    T = np.empty((n, 2 * n + 2))
    basis = np.empty(n, dtype=np.int64)
    status, pivots = lemke(M, q, z, w, T, basis, int(max_pivots))
    return z, w, int(status), int(pivots)
