import numpy as np
import pytest

from fastd3pg.physics import integrators as rk
from fastd3pg.testing import central_difference, relative_error


def _rk4_step(f_jac, y0, u, h):
    """One RK4 step of ``ẏ = f(y, u)`` through the stage helpers, as a task writes it;
    ``f_jac(y, u) -> (k, F, G)``. Returns ``y'`` and ``∂y'/∂(y0, u)``."""
    n, m = y0.size, u.size
    y = np.empty(n)
    Y = np.empty((n, n + m))
    ks, Ks = [], []
    points = [(None, 0.0), (0, h / 2.0), (1, h / 2.0), (2, h)]
    for prev, hc in points:
        if prev is None:
            y[:] = y0
            rk.start_tangent(Y)
        else:
            rk.stage_point(y0, ks[prev], hc, y)
            rk.stage_tangent(Ks[prev], hc, Y)
        k, F, G = f_jac(y.copy(), u)
        K = np.empty((n, n + m))
        rk.stage_jacobian(F, G, Y, K)
        ks.append(k)
        Ks.append(K)
    out, J = np.empty(n), np.empty((n, n + m))
    rk.combine(y0, *ks, h, out)
    rk.combine_jacobian(*Ks, h, J)
    return out, J


def test_linear_ode_jacobian_is_the_degree_4_taylor_polynomial_of_exp():
    rng = np.random.default_rng(0)
    n, m, h = 4, 2, 0.3
    A = rng.normal(size=(n, n))
    B = rng.normal(size=(n, m))
    y0, u = rng.normal(size=n), rng.normal(size=m)
    out, J = _rk4_step(lambda y, u: (A @ y + B @ u, A, B), y0, u, h)
    X = h * A
    I = np.eye(n)
    X2 = X @ X
    X3 = X2 @ X
    P = I + X + X2 / 2 + X3 / 6 + X3 @ X / 24  # exp(A h) to degree 4
    Q = h * (I + X / 2 + X2 / 6 + X3 / 24) @ B  # ∫ exp(A t) dt B to the same order
    np.testing.assert_allclose(J[:, :n], P, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(J[:, n:], Q, rtol=1e-13, atol=1e-13)
    # A linear ODE's RK4 map is linear: its value is its Jacobian applied to (y0, u).
    np.testing.assert_allclose(out, P @ y0 + Q @ u, rtol=1e-13, atol=1e-13)
    # ... and differs from exp(A h) at order h⁵.
    w, V = np.linalg.eig(X)
    expm = (V @ np.diag(np.exp(w)) @ np.linalg.inv(V)).real
    assert 0 < np.abs(P - expm).max() < np.abs(X).max() ** 5


def _damped_pendulum(y, u):
    """A nonlinear test system with two controls; its value and exact Jacobians."""
    k = np.array([y[1], -np.sin(y[0]) - 0.1 * y[1] * abs(y[1]) + u[0] * np.cos(y[0]) + u[1] * y[0]])
    F = np.array([[0.0, 1.0], [-np.cos(y[0]) - u[0] * np.sin(y[0]) + u[1], -0.2 * abs(y[1])]])
    G = np.array([[0.0, 0.0], [np.cos(y[0]), y[0]]])
    return k, F, G


def test_nonlinear_ode_jacobian_matches_finite_differences():
    rng = np.random.default_rng(1)
    h = 0.2
    for _ in range(50):
        y0, u = rng.uniform(-2, 2, 2), rng.uniform(-1, 1, 2)
        if abs(y0[1]) < 0.5:  # keep the stages away from the kink of |ẏ|
            continue
        _, J = _rk4_step(_damped_pendulum, y0, u, h)
        z = np.concatenate([y0, u])
        fd = central_difference(lambda z: _rk4_step(_damped_pendulum, z[:2], z[2:], h)[0], z, 1e-6)
        assert relative_error(J, fd) < 1e-8


def test_stages_equal_gymnasiums_rk4():
    acrobot_module = pytest.importorskip("gymnasium.envs.classic_control.acrobot")
    rng = np.random.default_rng(2)
    h = 0.2
    for _ in range(20):
        y0, u = rng.uniform(-2, 2, 2), rng.uniform(-1, 1, 2)

        def derivs(aug):  # Gym's form: the controls appended to the state, with zero slope
            return (*_damped_pendulum(aug[:2], aug[2:])[0], 0.0, 0.0)

        gym_next = acrobot_module.rk4(derivs, np.concatenate([y0, u]), [0, h])[:2]
        out, _ = _rk4_step(_damped_pendulum, y0, u, h)
        np.testing.assert_array_equal(out, gym_next)
