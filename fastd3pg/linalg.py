"""Small dense linear algebra shared by compiled kernels (the LCP-based simulator, iLQR's box
QP)."""

from fastd3pg._jit import jit


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
