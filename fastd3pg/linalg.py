"""Small dense linear algebra shared by compiled kernels (the LCP-based simulator, its contact
solver, iLQR's box QP).

Every routine works in place on the leading block of caller-given arrays, so that a kernel can
hand it scratch memory and allocate nothing.

Two Gaussian eliminations with partial pivoting live here, and they are not merged: the
multi-right-hand-side :func:`gauss_solve` (HalfCheetah's active-set Jacobian) scales rows by
the pivot's reciprocal and calls a pivot below 1e-300 singular, while
:func:`gauss_solve_augmented` (the LCP solver's final polish) divides by the pivot and calls
only an exact zero singular. The two roundings differ in the last bits, and both simulators'
numbers are pinned, so one routine would change one of them.
"""

import math

from fastd3pg._jit import jit


@jit
def cholesky(L, n):
    """``L[:n, :n] ← the lower Cholesky factor of the symmetric L[:n, :n]`` in place (only the
    lower triangle is read; the upper one is zeroed). Returns False, leaving ``L`` partly
    factored, when a pivot is not positive (``L`` is not numerically positive definite)."""
    for j in range(n):
        d = L[j, j]
        for k in range(j):
            d -= L[j, k] * L[j, k]
        if not d > 0.0:
            return False
        d = math.sqrt(d)
        L[j, j] = d
        for i in range(j + 1, n):
            v = L[i, j]
            for k in range(j):
                v -= L[i, k] * L[j, k]
            L[i, j] = v / d
        for i in range(j):
            L[i, j] = 0.0
    return True


@jit
def cholesky_solve(L, nf, b):
    """``b[:nf] ← (L Lᵀ)⁻¹ b[:nf]`` in place."""
    for i in range(nf):
        v = b[i]
        for k in range(i):
            v -= L[i, k] * b[k]
        b[i] = v / L[i, i]
    for i in range(nf - 1, -1, -1):
        v = b[i]
        for k in range(i + 1, nf):
            v -= L[k, i] * b[k]
        b[i] = v / L[i, i]


@jit
def gauss_solve(K, G, n, ncols):
    """Gaussian elimination with partial pivoting: ``G[:n, :ncols] ← K[:n, :n]⁻¹ G`` (``K`` is
    overwritten); returns False if ``K`` is numerically singular (a pivot below 1e-300)."""
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
def gauss_solve_augmented(A, n):
    """Solve ``A[:n, :n] x = A[:n, n]`` in place (``x`` into ``A[:n, n]``), partial pivoting;
    False if singular (an exact zero pivot)."""
    for c in range(n):
        piv = c
        best = abs(A[c, c])
        for i in range(c + 1, n):
            if abs(A[i, c]) > best:
                best = abs(A[i, c])
                piv = i
        if best == 0.0:
            return False
        if piv != c:
            for j in range(n + 1):
                A[c, j], A[piv, j] = A[piv, j], A[c, j]
        for i in range(c + 1, n):
            f = A[i, c] / A[c, c]
            if f != 0.0:
                for j in range(c, n + 1):
                    A[i, j] -= f * A[c, j]
    for i in range(n - 1, -1, -1):
        acc = A[i, n]
        for j in range(i + 1, n):
            acc -= A[i, j] * A[j, n]
        A[i, n] = acc / A[i, i]
    return True


@jit
def copy(dst, src):
    """``dst[...] = src`` for 1-D or 2-D arrays of one shape, element by element. Compiled code
    uses it for array-to-array assignment: Numba's own compiles a formatted shape-mismatch
    message (string formatting) into every function that assigns, which costs a cold start
    seconds and buys nothing here."""
    if dst.shape != src.shape:
        raise ValueError("copy: the arrays' shapes differ")
    if dst.ndim == 1:
        for i in range(dst.shape[0]):
            dst[i] = src[i]
    else:
        for i in range(dst.shape[0]):
            for j in range(dst.shape[1]):
                dst[i, j] = src[i, j]


@jit
def gather_rows(dst, src, idx):
    """``dst[b] = src[idx[b]]`` for every ``b``, with 2-D ``dst`` and ``src`` (a minibatch taken
    from stored rows): one call for the batch, where a :func:`copy` per row would cost more
    than the row."""
    if dst.shape[0] != idx.shape[0] or dst.shape[1] != src.shape[1]:
        raise ValueError("gather_rows: the arrays' shapes differ")
    for b in range(idx.shape[0]):
        i = idx[b]
        for j in range(dst.shape[1]):
            dst[b, j] = src[i, j]
