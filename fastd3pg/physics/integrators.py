"""The classical Runge-Kutta step (RK4) and the exact Jacobian of its map.

For ``ẏ = f(y, u)`` with the control ``u`` held over a step of length ``h``::

    k1 = f(y0, u)
    k2 = f(y0 + (h/2) k1, u)
    k3 = f(y0 + (h/2) k2, u)
    k4 = f(y0 + h k3, u)                                                       (1)
    y' = y0 + h/6 (k1 + 2 k2 + 2 k3 + k4)                                      (2)

which is Gymnasium's ``rk4`` (its classic-control Acrobot) in its order of operations, so a task
that integrates with these helpers equals Gym's float64 step to rounding.

Jacobian of the map. Differentiate w.r.t. ``z = (y0, u)`` (``n + m`` columns). With the stage
points ``y_i`` of (1), ``Y_i = ∂y_i/∂z``, ``K_i = ∂k_i/∂z``, and the dynamics' Jacobians
``F_i = ∂f/∂y``, ``G_i = ∂f/∂u`` at ``(y_i, u)``, the chain rule through the stages gives::

    Y_1 = [I 0],   Y_i = [I 0] + c_i h K_{i-1}   (c_2 = c_3 = 1/2, c_4 = 1)         (3)
    K_i = F_i Y_i + [0 G_i]                                                    (4)
    ∂y'/∂z = [I 0] + h/6 (K_1 + 2 K_2 + 2 K_3 + K_4)                             (5)

(the exact derivative of the discrete map, not of the ODE's flow). For a linear ODE
``f = A y + B u`` this is the degree-4 Taylor polynomial of ``exp(A h)`` in its first ``n``
columns.

Why helpers and not one ``rk4(f, ...)``: Numba does not cache a function that takes another
compiled function as an argument (it recompiles it in every process), so a task writes the four
stages itself and calls these small, inlined helpers between its own evaluations of ``f`` and
its Jacobians::

    start_tangent(Y)                                                      # (3), i = 1
    f(y0) -> k1, F, G;            stage_jacobian(F, G, Y, K1)             # (4)
    stage_point(y0, k1, h/2, y);  stage_tangent(K1, h/2, Y)               # (1), (3), i = 2
    f(y) -> k2, F, G;             stage_jacobian(F, G, Y, K2)             # (4)
    ... likewise k3 (from k2, h/2) and k4 (from k3, h) ...
    combine(y0, k1, k2, k3, k4, h, out);  combine_jacobian(K1, K2, K3, K4, h, J)  # (2), (5)

All arrays are float64 and given by the caller (no allocation): ``y0, y, k*`` of length ``n``,
``F`` (n, n), ``G`` (n, m), ``Y, K*, J`` (n, n + m). ``h/2`` is computed as ``h / 2.0`` like
Gym's ``dt2``.
"""

from fastd3pg._jit import jit


@jit(inline="always")
def stage_point(y0, k, hc, out):
    """(1): ``out = y0 + hc k`` (``hc = h/2`` for stages 2, 3; ``h`` for stage 4)."""
    for i in range(y0.shape[0]):
        out[i] = y0[i] + hc * k[i]


@jit(inline="always")
def start_tangent(Y):
    """(3), stage 1: ``Y = ∂y0/∂(y0, u) = [I 0]``."""
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = 1.0 if i == j else 0.0


@jit(inline="always")
def stage_tangent(K, hc, Y):
    """(3): ``Y = [I 0] + hc K`` with ``K`` the previous stage's ``∂k/∂(y0, u)``."""
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = hc * K[i, j] + (1.0 if i == j else 0.0)


@jit(inline="always")
def stage_jacobian(F, G, Y, K):
    """(4): ``K = F Y + [0 G]``, the stage slope's Jacobian w.r.t. ``(y0, u)``."""
    n = F.shape[0]
    for i in range(n):
        for j in range(Y.shape[1]):
            acc = G[i, j - n] if j >= n else 0.0
            for l in range(n):
                acc += F[i, l] * Y[l, j]
            K[i, j] = acc


@jit(inline="always")
def combine(y0, k1, k2, k3, k4, h, out):
    """(2): ``out = y0 + h/6 (k1 + 2 k2 + 2 k3 + k4)``, summed in Gym's order."""
    w = h / 6.0
    for i in range(y0.shape[0]):
        out[i] = y0[i] + w * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i])


@jit(inline="always")
def combine_jacobian(K1, K2, K3, K4, h, J):
    """(5): ``J = ∂y'/∂(y0, u) = [I 0] + h/6 (K1 + 2 K2 + 2 K3 + K4)``."""
    w = h / 6.0
    for i in range(J.shape[0]):
        for j in range(J.shape[1]):
            J[i, j] = w * (K1[i, j] + 2.0 * K2[i, j] + 2.0 * K3[i, j] + K4[i, j]) + (
                1.0 if i == j else 0.0
            )
