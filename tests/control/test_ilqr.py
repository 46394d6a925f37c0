"""iLQR with control limits: box QP optimality, the LQR limit of the backward pass, Pendulum
swing-up, receding-horizon MPC and input validation."""

import numpy as np
import pytest
from scipy.optimize import minimize

from fastd3pg.control import boxqp as bq
from fastd3pg.control import ilqr
from fastd3pg.physics import dispatch, make, names


def _random_qp(rng, m):
    A = rng.normal(size=(m, m))
    H = A @ A.T + 0.1 * np.eye(m)
    g = rng.normal(size=m) * 3.0
    lower = -rng.uniform(0.1, 1.5, size=m)
    upper = rng.uniform(0.1, 1.5, size=m)
    return H, g, lower, upper


@pytest.mark.parametrize("m", [1, 2, 3, 6])
def test_boxqp_solution_satisfies_kkt_conditions(m):
    rng = np.random.default_rng(m)
    for _ in range(50):
        H, g, lower, upper = _random_qp(rng, m)
        x, free, status = bq.solve(H, g, lower, upper, x0=rng.uniform(-2, 2, size=m))
        assert status > 0, status
        assert np.all(x >= lower) and np.all(x <= upper)
        grad = H @ x + g
        at_lower, at_upper = x == lower, x == upper
        inside = ~(at_lower | at_upper)
        tol = 1e-6 * (1 + np.abs(g).max())
        assert np.all(np.abs(grad[inside]) < tol)
        assert np.all(grad[at_lower] > -tol) and np.all(grad[at_upper] < tol)


def test_boxqp_matches_scipy_bounded_minimizer():
    rng = np.random.default_rng(7)
    for _ in range(30):
        H, g, lower, upper = _random_qp(rng, 4)
        x, _, _ = bq.solve(H, g, lower, upper)
        ref = minimize(lambda z: 0.5 * z @ H @ z + g @ z, np.zeros(4), jac=lambda z: H @ z + g,
                       bounds=list(zip(lower, upper)), method="L-BFGS-B",
                       options={"ftol": 1e-15, "gtol": 1e-12})
        assert np.allclose(x, ref.x, atol=1e-5)
        assert 0.5 * x @ H @ x + g @ x <= ref.fun + 1e-10


def test_boxqp_reports_indefinite_hessian():
    H = np.array([[1.0, 0.0], [0.0, -1.0]])
    _, _, status = bq.solve(H, np.array([0.1, 0.1]), -np.ones(2), np.ones(2))
    assert status == bq.QP_NOT_PD


def test_unconstrained_backward_pass_step_equals_lqr_solution():
    """Linear dynamics ``x' = A x + B u`` with the rank-one cost ``c = ½ (qᵀx + ρ u)²``, on which
    the Gauss–Newton cost Hessian is exact: one full iLQR step from ``U = 0`` with no
    regularization and inactive bounds must land on the least-squares (LQR) optimum."""
    rng = np.random.default_rng(3)
    n, m, H = 3, 1, 12
    A = np.eye(n) + 0.1 * rng.normal(size=(n, n))
    B = 0.3 * rng.normal(size=(n, m))
    q, rho = rng.normal(size=n), 0.7
    x0 = 0.05 * rng.normal(size=n)

    def residuals(U):
        x, res = x0.copy(), []
        for t in range(H):
            res.append(q @ x + rho * U[t, 0])
            x = A @ x + B @ U[t]
        return np.array(res)

    # The residuals are affine in U: solve the least-squares problem exactly.
    r0 = residuals(np.zeros((H, m)))
    M = np.column_stack([residuals(np.eye(H)[i][:, None]) - r0 for i in range(H)])
    U_star = np.linalg.lstsq(M, -r0, rcond=None)[0]

    U = np.zeros((H, m))
    X = np.empty((H + 1, n))
    X[0] = x0
    c, cx, cu = np.empty(H), np.empty((H, n)), np.empty((H, m))
    for t in range(H):
        e = q @ X[t] + rho * U[t, 0]
        c[t], cx[t], cu[t] = 0.5 * e * e, e * q, e * rho
        X[t + 1] = A @ X[t] + B @ U[t]
    Fx, Fu = np.repeat(A[None], H, axis=0), np.repeat(B[None], H, axis=0)
    k, K = np.zeros((H, m)), np.zeros((H, m, n))
    ws = (np.empty(n), np.empty((n, n)), np.empty(n), np.empty(m), np.empty((n, n)),
          np.empty((m, m)), np.empty((m, m)), np.empty((m, n)), np.empty((n, n)),
          np.empty((n, m)), np.empty(m), np.empty(m), np.empty(m), np.empty(m, dtype=np.bool_),
          np.empty((m, m)), np.empty((4, m)), np.empty(max(n, m)))
    # The bounds ±1 around U = 0 are inactive at this small problem's optimum (checked below).
    ok, dV1, dV2 = ilqr.backward_pass(U, c, cx, cu, Fx, Fu, H, 0.0, 0.0, 1e-300, k, K, ws)
    assert ok
    assert np.abs(U_star).max() < 0.9
    x, U_new = x0.copy(), np.empty(H)
    for t in range(H):
        U_new[t] = k[t, 0] + K[t, 0] @ (x - X[t])
        x = A @ x + B[:, 0] * U_new[t]
    assert np.allclose(U_new, U_star, atol=1e-9)
    # Expected improvement of the full step equals the actual one on a quadratic problem.
    J0, J1 = 0.5 * np.sum(r0**2), 0.5 * np.sum(residuals(U_new[:, None]) ** 2)
    assert np.isclose(J0 - J1, -(dV1 + dV2), rtol=1e-8)


def _pumping_plan(H):
    """A fixed swinging initial plan: torque alternating at roughly the pendulum's period."""
    return np.sin(2 * np.pi * np.arange(H) / 40.0)[:, None]


def test_pendulum_swing_up_plan_brings_pendulum_up():
    """From hanging down (θ = π, at rest), 100-step plan (5 s), at most 200 iterations from a
    swinging initial plan (which leaves the pendulum down: up to 2.4 rad from upright over its
    last 20 steps, cost 542.3): the cost -Σr falls to about 484.5 (predicted return -484.5),
    every accepted iteration lowers it, the plan's actions stay in [-1, 1] and the pendulum is
    within 0.3 rad of upright over the plan's last 20 steps. (From a constant zero plan iLQR
    stops in a local minimum, spinning at the speed limit: cost 681.)"""
    env = make("Pendulum")
    U0 = _pumping_plan(100)
    plan = ilqr.ilqr_plan(env, [-1.0, 0.0, 0.0], U0, iters=200)
    hist = plan.cost_history
    assert plan.accepted >= 5 and len(hist) == plan.accepted + 1
    assert np.all(np.diff(hist) < 0)
    assert hist[-1] < 0.95 * hist[0]
    assert hist[-1] < 520.0
    assert np.isclose(plan.predicted_return, -hist[-1], rtol=1e-9)
    assert np.all(np.abs(plan.actions) <= 1.0)
    theta = np.arctan2(plan.states[:, 1], plan.states[:, 0])
    assert np.abs(theta[-20:]).max() < 0.3
    X0, _, _ = ilqr._rewards_of(env, np.array([-1.0, 0.0, 0.0]), np.clip(U0, -1, 1))
    assert np.abs(np.arctan2(X0[-20:, 1], X0[-20:, 0])).max() > 2.0  # the start plan is not up
    # The returned states are the simulator's under the returned actions.
    s = np.array([-1.0, 0.0, 0.0])
    for t in range(100):
        out = np.empty(3)
        dispatch.step(env.kernels, env.params, s, plan.actions[t], out)
        s = out
    assert np.allclose(s, plan.states[-1])


def test_mpc_episode_applies_plans_and_records_predicted_returns():
    env = make("Pendulum")
    s0 = np.array([-1.0, 0.0, 0.0])
    ep = ilqr.mpc_episode(env, s0, _pumping_plan(60), horizon=20, iters_per_step=3, steps=25)
    assert ep.actions.shape == (25, 1) and ep.states.shape == (26, 3)
    assert np.all(np.abs(ep.actions) <= 1.0)
    assert len(ep.predicted_returns) == len(ep.plan_returns) == 25
    s = s0.copy()
    for t in range(25):
        out = np.empty(3)
        r, _ = dispatch.step(env.kernels, env.params, s, ep.actions[t], out)
        assert np.isclose(r, ep.rewards[t]) and np.allclose(out, ep.states[t + 1])
        s = out
    # At step t the plan covers min(20, 25 - t) steps: the predicted cumulative return is the
    # rewards received plus the plan's prediction, plus, while the plan ends before the episode,
    # the remaining initial actions from the plan's final state; the last one is exactly the
    # realised return.
    assert np.isclose(ep.predicted_returns[-1], ep.rewards.sum())
    first = ilqr.ilqr_plan(env, s0, _pumping_plan(60)[:20], iters=3)  # the plan at step 0
    s, remaining = first.states[-1].copy(), 0.0
    for a in _pumping_plan(60)[20:25]:
        out = np.empty(3)
        r, _ = dispatch.step(env.kernels, env.params, s, a, out)
        remaining, s = remaining + r, out
    assert np.isclose(ep.predicted_returns[0], first.predicted_return + remaining, rtol=1e-12)
    assert np.isclose(ep.predicted_returns[0], ep.plan_returns[0] + remaining, rtol=1e-12)


def test_mpc_accepts_an_initial_actor_callable():
    env = make("Pendulum")
    ep = ilqr.mpc_episode(env, [-1.0, 0.0, 0.0], lambda s: np.array([0.5 * s[2]]),
                          horizon=10, iters_per_step=2, steps=5)
    assert ep.actions.shape == (5, 1)


def test_refuses_a_task_without_differentiable_reward():
    env = make("Acrobot")
    with pytest.raises(ValueError, match="not differentiable"):
        ilqr.ilqr_plan(env, np.zeros(6), np.zeros((5, 1)))
    with pytest.raises(ValueError, match="not differentiable"):
        ilqr.mpc_episode(env, np.zeros(6), np.zeros((5, 1)), horizon=5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"s0": [1.0, 0.0]}, "s0"),
        ({"U_init": np.zeros((5, 2))}, "U_init"),
        ({"U_init": np.full((5, 1), np.nan)}, "NaN"),
        ({"iters": 0}, "iters"),
        ({"mu0": -1.0}, "mu0"),
    ],
)
def test_ilqr_plan_validates_input(kwargs, match):
    args = {"s0": [-1.0, 0.0, 0.0], "U_init": np.zeros((5, 1))}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ilqr.ilqr_plan(make("Pendulum"), **args)


@pytest.mark.parametrize("name", [n for n in names()
                                  if make(n).differentiable_reward])
def test_cost_decreases_and_actions_stay_in_box_on_every_task(name):
    # 60 steps: RollingDie's die must reach the ground for its torque to matter at all.
    env = make(name)
    s0, _ = env.reset(seed=1)
    U0 = np.random.default_rng(1).uniform(-1.5, 1.5, size=(60, env.action_dim))
    plan = ilqr.ilqr_plan(env, s0, U0, iters=10)
    assert plan.accepted >= 1
    assert np.all(np.diff(plan.cost_history) < 0)
    assert np.all(np.abs(plan.actions) <= 1.0)
    assert np.isclose(plan.predicted_return, -plan.cost_history[-1], rtol=1e-9, atol=1e-9)
