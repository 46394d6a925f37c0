"""iLQR with control limits and receding-horizon MPC (the paper's "MPC" baseline, §5.2).

Planning problem. From ``x_0``, choose actions ``u_0 … u_{H-1} ∈ [-1, 1]^m`` to maximise the
predicted return ``Σ_t r(x_t, u_t)``, ``x_{t+1} = Γ(x_t, u_t)``, i.e. minimise the cost
``J = Σ_t c_t`` with ``c_t = -r(x_t, u_t)``. If the simulator says a step terminates, the plan's
return ends with that step's reward (later actions are carried along unchanged).

One iteration (Tassa, Mansard & Todorov 2014, "Control-limited differential dynamic
programming"; regularization and line search as Tassa, Erez & Todorov 2012):

Backward pass, ``V'_x = 0``, ``V'_xx = 0`` after the last step::

    Q_x  = c_x  + f_xᵀ V'_x             Q_u  = c_u  + f_uᵀ V'_x
    Q_xx = c_xx + f_xᵀ V'_xx f_x        Q_uu = c_uu + f_uᵀ V'_xx f_u       Q_ux = c_ux + f_uᵀ V'_xx f_x
    k = argmin_{-1 ≤ u + δu ≤ 1} ½ δuᵀ (Q_uu + μ I) δu + Q_uᵀ δu        (box QP, boxqp.py)
    K_f = -(Q_uu + μ I)_ff⁻¹ Q_ux,f,   K_c = 0    (free / clamped rows of the QP's solution)
    V_x  = Q_x  + Kᵀ Q_uu k + Kᵀ Q_u  + Q_uxᵀ k
    V_xx = Q_xx + Kᵀ Q_uu K + Kᵀ Q_ux + Q_uxᵀ K                                  (symmetrized)
    ΔV = (Σ kᵀ Q_u,  Σ ½ kᵀ Q_uu k)

``f_x = J_s``, ``f_u = J_a``, ``c_x = -dr/ds``, ``c_u = -dr/da`` come from the simulator
(:func:`fastd3pg.physics.dispatch.step_jac`). Regularization is on the controls
(``Q_uu + μ I``, the reference implementation's default), so every box QP is strictly convex
for ``μ > 0``; a QP whose Hessian is still not positive definite makes the pass fail and μ grow.

Forward pass with backtracking over ``α ∈ 10^linspace(0, -3, 11)``::

    û_t = clip(u_t + α k_t + K_t (x̂_t - x_t), -1, 1),   x̂_{t+1} = Γ(x̂_t, û_t)

accepted at the first ``α`` whose actual improvement ``J - Ĵ`` is positive and at least
``z_min`` times the expected improvement ``-(α ΔV_1 + α² ΔV_2)``. Accepted iterations therefore
decrease ``J`` strictly. Levenberg–Marquardt schedule (Tassa 2012): on success
``Δ ← min(Δ/1.6, 1/1.6)``, ``μ ← max(μ Δ, μ_min)``; on failure (QP not positive definite, or no
step accepted) ``Δ ← max(1.6 Δ, 1.6)``, ``μ ← max(μ Δ, μ_min)``; give up above ``μ_max = 1e10``.
(Tassa lets μ drop to 0 below ``μ_min``; here it stays at ``μ_min = 1e-6`` because the
Gauss–Newton ``c_uu`` below may be singular.) Stops when the improvement is below ``tol_fun`` or
the step ``mean_t max_i |k_t,i| / (|u_t,i| + 1)`` is below ``tol_grad`` with ``μ < 1e-5``.

Second derivatives of the cost: Gauss–Newton. The simulators give first derivatives only. Every
task's reward is bounded above by its ``max_reward`` (the paper's §5.2), so the shifted cost
``c̃ = max_reward - r ≥ 0`` is a sum of squares with the single residual ``ρ = √(2 c̃)``:
``c̃ = ½ ρ²``. Gauss–Newton keeps ``∇ρ ∇ρᵀ`` and drops ``ρ ∇²ρ``; with ``∇ρ = ∇c̃ / ρ``::

    [c_xx c_xu; c_ux c_uu] ≈ ∇c ∇cᵀ / (2 c̃),     ∇c = (c_x, c_u),   c̃ floored at ``gn_floor``

It is positive semidefinite, uses only ``dr/ds`` and ``dr/da``, and is exact (for any direction
along the current point) on a quadratic cost ``c̃ = zᵀ D z`` with ``z`` the deviation from the
optimum: ``zᵀ(∇c̃∇c̃ᵀ/(2c̃))z = 2 zᵀDz = zᵀ(∇²c̃)z``. For Pendulum (``c̃ = θ² + 0.1 θ̇² + 0.001 u²``)
it gives the exact curvature in the direction of the current error, which is what the swing-up
needs; the rank-one deficiency elsewhere is covered by the dynamics' ``f_uᵀ V'_xx f_u`` and by μ.

Compiled: the whole optimisation (rollouts, backward passes, box QPs, line search, μ schedule)
is one Numba kernel, :func:`ilqr_kernel`, which reaches the task through
:mod:`fastd3pg.physics.dispatch` by its compiled kernels (``env.kernels``); the Python functions below validate input.
Tasks without a differentiable reward (``env.differentiable_reward`` false: Acrobot) are refused.
"""

import math
from typing import NamedTuple

import numpy as np

from fastd3pg._jit import jit, unit
from fastd3pg.control.boxqp import QP_NOT_PD, boxqp
from fastd3pg.linalg import cholesky_solve, copy
from fastd3pg.physics import dispatch

# Kernel status codes.
ST_MAX_ITER, ST_TOL_FUN, ST_TOL_GRAD, ST_MU_MAX, ST_NONFINITE = 0, 1, 2, -1, -2
STATUS_NAMES = {
    ST_MAX_ITER: "iteration limit",
    ST_TOL_FUN: "converged (improvement below tol_fun)",
    ST_TOL_GRAD: "converged (step below tol_grad)",
    ST_MU_MAX: "regularization exceeded mu_max",
    ST_NONFINITE: "non-finite rollout",
}

MU_FACTOR, MU_MIN, MU_MAX = 1.6, 1e-6, 1e10
N_ALPHA = 11  # line-search steps 10^linspace(0, -3, 11)


@jit
def rollout_jac(kernels, p, X, U, c, cx, cu, Fx, Fu):
    """Simulate from ``X[0]`` under ``U`` with derivatives; fill ``X[1:]``, the costs ``c`` and
    the cost and dynamics derivatives. Returns ``(J, T)``: the cost and the number of steps that
    count (``T < H`` if a step terminates; later states repeat the terminal one)."""
    H = U.shape[0]
    n = X.shape[1]
    m = U.shape[1]
    dr_ds = np.empty(n)
    dr_da = np.empty(m)
    J = 0.0
    T = H
    for t in range(H):
        r, term = dispatch.step_jac(kernels, p, X[t], U[t], X[t + 1], Fx[t], Fu[t], dr_ds, dr_da)
        c[t] = -r
        for i in range(n):
            cx[t, i] = -dr_ds[i]
        for i in range(m):
            cu[t, i] = -dr_da[i]
        J += -r
        if term:
            T = t + 1
            for k in range(t + 2, H + 1):
                copy(X[k, :], X[t + 1])
            break
    return J, T


@jit
def rollout_policy(kernels, p, X, U, Xref, Uref, k, K, alpha, T):
    """Forward pass ``U ← clip(Uref + α k + K (X - Xref))`` from ``X[0]``; returns ``(J, T_new)``.
    Steps at or after the reference's termination ``T`` get no feedback."""
    H = U.shape[0]
    n = X.shape[1]
    m = U.shape[1]
    J = 0.0
    T_new = H
    done = False
    for t in range(H):
        for i in range(m):
            v = Uref[t, i] + alpha * k[t, i]
            if t < T:
                for j in range(n):
                    v += K[t, i, j] * (X[t, j] - Xref[t, j])
            U[t, i] = min(max(v, -1.0), 1.0)
        if done:
            copy(X[t + 1, :], X[t])
            continue
        r, term = dispatch.step(kernels, p, X[t], U[t], X[t + 1])
        J += -r
        if term:
            T_new = t + 1
            done = True
    return J, T_new


@jit
def backward_pass(U, c, cx, cu, Fx, Fu, T, mu, max_reward, gn_floor, k, K, ws):
    """The backward pass of the module docstring over steps ``T-1 … 0``. Returns
    ``(ok, dV1, dV2)``; ``ok`` is false when a box QP's Hessian is not positive definite.
    ``k`` holds the previous feed-forward terms on entry (the QPs' warm starts)."""
    H, m = U.shape
    n = cx.shape[1]
    Vx, Vxx, Qx, Qu, Qxx, Quu, QuuF, Qux, VxxFx, VxxFu, lower, upper, kt, free, L, qpw, col = ws
    Vx[:] = 0.0
    Vxx[:] = 0.0
    dV1 = 0.0
    dV2 = 0.0
    for t in range(T, H):
        k[t, :] = 0.0
        K[t, :, :] = 0.0
    for t in range(T - 1, -1, -1):
        fx, fu = Fx[t], Fu[t]
        # Gauss–Newton weight 1/(2 c̃), c̃ = max_reward - r = max_reward + c (module docstring).
        w = 0.5 / max(max_reward + c[t], gn_floor)
        for i in range(n):
            v = cx[t, i]
            for j in range(n):
                v += fx[j, i] * Vx[j]
            Qx[i] = v
        for i in range(m):
            v = cu[t, i]
            for j in range(n):
                v += fu[j, i] * Vx[j]
            Qu[i] = v
        for i in range(n):
            for j in range(n):
                v = 0.0
                for l in range(n):
                    v += Vxx[i, l] * fx[l, j]
                VxxFx[i, j] = v
            for j in range(m):
                v = 0.0
                for l in range(n):
                    v += Vxx[i, l] * fu[l, j]
                VxxFu[i, j] = v
        for i in range(n):
            for j in range(n):
                v = w * cx[t, i] * cx[t, j]
                for l in range(n):
                    v += fx[l, i] * VxxFx[l, j]
                Qxx[i, j] = v
        for i in range(m):
            for j in range(m):
                v = w * cu[t, i] * cu[t, j]
                for l in range(n):
                    v += fu[l, i] * VxxFu[l, j]
                Quu[i, j] = v
                QuuF[i, j] = v
            QuuF[i, i] += mu
            for j in range(n):
                v = w * cu[t, i] * cx[t, j]
                for l in range(n):
                    v += fu[l, i] * VxxFx[l, j]
                Qux[i, j] = v
        for i in range(m):
            lower[i] = -1.0 - U[t, i]
            upper[i] = 1.0 - U[t, i]
        status, nf = boxqp(QuuF, Qu, lower, upper, k[t], kt, free, L, qpw)
        if status == QP_NOT_PD:
            return False, dV1, dV2
        copy(k[t, :], kt)
        K[t, :, :] = 0.0
        if nf > 0:
            for j in range(n):
                q = 0
                for i in range(m):
                    if free[i]:
                        col[q] = -Qux[i, j]
                        q += 1
                cholesky_solve(L, nf, col)
                q = 0
                for i in range(m):
                    if free[i]:
                        K[t, i, j] = col[q]
                        q += 1
        # Value update with the unregularized Q_uu.
        Kt = K[t]
        for i in range(m):
            v = 0.0
            for j in range(m):
                v += Quu[i, j] * kt[j]
            dV1 += kt[i] * Qu[i]
            dV2 += 0.5 * kt[i] * v
            col[i] = v  # Q_uu k
        for i in range(n):
            v = Qx[i]
            for a in range(m):
                v += Kt[a, i] * (col[a] + Qu[a]) + Qux[a, i] * kt[a]
            Vx[i] = v
        for i in range(n):
            for j in range(i, n):
                v = Qxx[i, j]
                for a in range(m):
                    kq = 0.0
                    for b in range(m):
                        kq += Kt[b, j] * Quu[a, b]
                    v += Kt[a, i] * (kq + Qux[a, j]) + Qux[a, i] * Kt[a, j]
                Vxx[i, j] = v
        for i in range(n):
            for j in range(i):
                Vxx[i, j] = Vxx[j, i]
    return True, dV1, dV2


@unit
def ilqr_kernel(kernels, p, max_reward, x0, U, X, max_iter, mu0, tol_fun, tol_grad, z_min,
                gn_floor, cost_history):
    """Optimise the plan ``U`` (H, m) in place from ``x0``; ``X`` (H+1, n) gets its states.

    ``cost_history[0]`` is the initial cost, ``cost_history[i]`` the cost after the i-th accepted
    iteration (length ``max_iter + 1``). Returns ``(status, iterations, accepted, mu, T)``.
    """
    H, m = U.shape
    n = x0.shape[0]
    c, cx, cu = np.empty(H), np.empty((H, n)), np.empty((H, m))
    Fx, Fu = np.empty((H, n, n)), np.empty((H, n, m))
    k, K = np.zeros((H, m)), np.zeros((H, m, n))
    Xn, Un = np.empty((H + 1, n)), np.empty((H, m))
    ws = (np.empty(n), np.empty((n, n)), np.empty(n), np.empty(m), np.empty((n, n)),
          np.empty((m, m)), np.empty((m, m)), np.empty((m, n)), np.empty((n, n)),
          np.empty((n, m)), np.empty(m), np.empty(m), np.empty(m), np.empty(m, dtype=np.bool_),
          np.empty((m, m)), np.empty((4, m)), np.empty(max(n, m)))
    for i in range(m):
        for t in range(H):
            U[t, i] = min(max(U[t, i], -1.0), 1.0)
    copy(X[0, :], x0)
    copy(Xn[0, :], x0)
    J, T = rollout_jac(kernels, p, X, U, c, cx, cu, Fx, Fu)
    cost_history[0] = J
    if not math.isfinite(J):
        return ST_NONFINITE, 0, 0, mu0, T
    mu = max(mu0, MU_MIN)
    delta = 1.0
    accepted = 0
    status = ST_MAX_ITER
    it = 0
    while it < max_iter:
        it += 1
        ok, dV1, dV2 = backward_pass(U, c, cx, cu, Fx, Fu, T, mu, max_reward, gn_floor, k, K, ws)
        if not ok:
            delta = max(delta * MU_FACTOR, MU_FACTOR)
            mu = max(mu * delta, MU_MIN)
            if mu > MU_MAX:
                status = ST_MU_MAX
                break
            continue
        # Relative size of the feed-forward step (Tassa 2012's gradient norm).
        g_norm = 0.0
        for t in range(T):
            g = 0.0
            for i in range(m):
                g = max(g, abs(k[t, i]) / (abs(U[t, i]) + 1.0))
            g_norm += g
        g_norm /= max(T, 1)
        if g_norm < tol_grad and mu < 1e-5:
            status = ST_TOL_GRAD
            break
        success = False
        Jn = J
        Tn = T
        for a in range(N_ALPHA):
            alpha = 10.0 ** (-3.0 * a / (N_ALPHA - 1))
            Jn, Tn = rollout_policy(kernels, p, Xn, Un, X, U, k, K, alpha, T)
            expected = -alpha * (dV1 + alpha * dV2)
            dJ = J - Jn
            if math.isfinite(Jn) and dJ > 0.0 and (expected <= 0.0 or dJ / expected > z_min):
                success = True
                break
        if success:
            delta = min(delta / MU_FACTOR, 1.0 / MU_FACTOR)
            mu = max(mu * delta, MU_MIN)
            copy(U, Un)
            J, T = rollout_jac(kernels, p, X, U, c, cx, cu, Fx, Fu)
            accepted += 1
            cost_history[accepted] = J
            if dJ < tol_fun:
                status = ST_TOL_FUN
                break
        else:
            delta = max(delta * MU_FACTOR, MU_FACTOR)
            mu = max(mu * delta, MU_MIN)
            if mu > MU_MAX:
                status = ST_MU_MAX
                break
    return status, it, accepted, mu, T


# -- Python entry points ---------------------------------------------------------------------

class Plan(NamedTuple):
    """An optimised open-loop plan from one start state."""

    actions: np.ndarray  # (H, m) in [-1, 1]
    states: np.ndarray  # (H+1, n) predicted states, states[0] = s0
    rewards: np.ndarray  # (H,) predicted rewards (0 after a predicted termination)
    predicted_return: float  # Σ rewards = -cost
    cost_history: np.ndarray  # cost before and after each accepted iteration (decreasing)
    iterations: int  # backward/forward passes run
    accepted: int
    status: str
    mu: float  # final regularization
    terminated: bool  # the plan predicts a termination (its rewards are 0 after it)


def _check_env(env):
    for attr in ("kernels", "params", "state_dim", "action_dim", "max_reward"):
        if not hasattr(env, attr):
            raise ValueError(f"iLQR needs a fastd3pg.physics env, got {env!r} (no {attr!r})")
    if not getattr(env, "differentiable_reward", True):
        raise ValueError(
            f"iLQR cannot plan on {env.name}: its reward is not differentiable "
            "(dr/ds and dr/da carry no signal), so iLQR has no gradient to follow"
        )


def _check_array(x, shape, what):
    try:
        a = np.array(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"iLQR: {what} must be numeric, got {x!r}") from None
    if a.ndim == 1 and len(shape) == 2 and shape[1] == 1:
        a = a.reshape(-1, 1)
    if a.ndim != len(shape) or any(s is not None and d != s for d, s in zip(a.shape, shape)):
        raise ValueError(f"iLQR: {what} must have shape {shape} (None: any), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"iLQR: {what} contains NaN or inf")
    return np.ascontiguousarray(a)


def _positive_int(v, what):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"iLQR: {what} must be a positive integer, got {v!r}")
    return int(v)


def _rewards_of(env, s0, U):
    """States, rewards and the predicted termination of the actions ``U`` from ``s0``."""
    X = np.empty((U.shape[0] + 1, env.state_dim))
    X[0] = s0
    R = np.zeros(U.shape[0])
    for t in range(U.shape[0]):
        X[t + 1] = X[t]
        r, term = dispatch.step(env.kernels, env.params, X[t], U[t], X[t + 1])
        R[t] = r
        if term:
            X[t + 1:] = X[t + 1]
            return X, R, True
    return X, R, False


def ilqr_plan(env, s0, U_init, iters=100, mu0=1.0, tol_fun=1e-7, tol_grad=1e-4, z_min=0.0,
              gn_floor=1e-6) -> Plan:
    """Optimise a plan of ``H = len(U_init)`` actions from state ``s0`` by at most ``iters``
    iLQR iterations (module docstring). ``U_init`` (H, m) is the initial plan (clipped to
    [-1, 1]); the result's ``actions`` always lie in [-1, 1]."""
    _check_env(env)
    n, m = env.state_dim, env.action_dim
    s0 = _check_array(s0, (n,), "s0")
    U = _check_array(U_init, (None, m), "U_init").copy()
    if U.shape[0] < 1:
        raise ValueError("iLQR: U_init must hold at least one action")
    iters = _positive_int(iters, "iters")
    for name, v in (("mu0", mu0), ("tol_fun", tol_fun), ("tol_grad", tol_grad),
                    ("gn_floor", gn_floor)):
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"iLQR: {name} must be a positive number, got {v!r}")
    if not (np.isfinite(z_min) and z_min >= 0):
        raise ValueError(f"iLQR: z_min must be a non-negative number, got {z_min!r}")
    X = np.empty((U.shape[0] + 1, n))
    hist = np.full(iters + 1, np.nan)
    status, it, acc, mu, _ = ilqr_kernel(
        env.kernels, env.params, float(env.max_reward), s0, U, X, iters, float(mu0),
        float(tol_fun), float(tol_grad), float(z_min), float(gn_floor), hist)
    X, R, terminated = _rewards_of(env, s0, U)
    return Plan(U, X, R, float(R.sum()), hist[: acc + 1].copy(), int(it), int(acc),
                STATUS_NAMES[int(status)], float(mu), terminated)


class MPCEpisode(NamedTuple):
    """One receding-horizon episode."""

    actions: np.ndarray  # (L, m) applied actions
    states: np.ndarray  # (L+1, n) visited states
    rewards: np.ndarray  # (L,) rewards received
    predicted_returns: np.ndarray  # (L,) received + the plan's + the initial actions' rest
    plan_returns: np.ndarray  # (L,) the plan's predicted return over its horizon
    iterations: np.ndarray  # (L,) iLQR iterations run before each action


def mpc_episode(env, s0, U_init, horizon, iters_per_step=10, steps=None, mu0=1.0,
                first_iters=None, **ilqr_options) -> MPCEpisode:
    """Receding-horizon iLQR from ``s0`` for ``steps`` env steps (default ``env.horizon``; fewer
    if the episode terminates).

    ``U_init``: the initial actor, either a callable ``actor(state) -> action`` (rolled out once
    from ``s0`` through the simulator) or that rollout's actions as an array ``(L, m)``. The
    first plan is its first ``horizon`` actions; after each env step the plan is shifted by one
    and its new last action is the initial rollout's action at that time, or a repeat of the
    last action once the rollout is used up. Each step runs up to ``iters_per_step`` iLQR
    iterations (``first_iters`` for the first plan, default the same), applies the plan's first
    action, and records the predicted cumulative return (the paper's §5.2, as
    :mod:`fastd3pg.control.mpc` does): rewards received so far, plus the plan's predicted
    rewards over the part of the episode it covers, plus those of the remaining initial actions
    (``U_init``'s beyond the plan's end, as far as they reach) applied open loop from the
    plan's predicted final state, unless the plan predicts a termination.
    """
    _check_env(env)
    n, m = env.state_dim, env.action_dim
    s0 = _check_array(s0, (n,), "s0")
    horizon = _positive_int(horizon, "horizon")
    iters_per_step = _positive_int(iters_per_step, "iters_per_step")
    first_iters = iters_per_step if first_iters is None else _positive_int(first_iters,
                                                                           "first_iters")
    steps = env.horizon if steps is None else _positive_int(steps, "steps")
    if callable(U_init):
        length = steps + horizon
        U0 = np.empty((length, m))
        s = s0.copy()
        for t in range(length):
            a = _check_array(U_init(s.copy()), (m,), "the initial actor's action")
            U0[t] = np.clip(a, -1.0, 1.0)
            out = np.empty(n)
            dispatch.step(env.kernels, env.params, s, U0[t], out)
            s = out
    else:
        U0 = np.clip(_check_array(U_init, (None, m), "U_init"), -1.0, 1.0)
        if U0.shape[0] < 1:
            raise ValueError("iLQR: U_init must hold at least one action")
    plan = np.empty((horizon, m))
    for t in range(horizon):
        plan[t] = U0[min(t, U0.shape[0] - 1)]
    actions, states, rewards = [], [s0.copy()], []
    predicted, plan_returns, iterations = [], [], []
    s = s0.copy()
    for t in range(steps):
        res = ilqr_plan(env, s, plan, first_iters if t == 0 else iters_per_step, mu0=mu0,
                        **ilqr_options)
        covered = min(horizon, steps - t)
        remaining = 0.0
        if not res.terminated and t + horizon < steps:
            remaining = float(_rewards_of(env, res.states[-1], U0[t + horizon:steps])[1].sum())
        predicted.append(float(np.sum(rewards)) + float(res.rewards[:covered].sum()) + remaining)
        plan_returns.append(res.predicted_return)
        iterations.append(res.iterations)
        a = res.actions[0].copy()
        out = np.empty(n)
        r, term = dispatch.step(env.kernels, env.params, s, a, out)
        actions.append(a)
        rewards.append(float(r))
        states.append(out.copy())
        s = out
        if term:
            break
        # Warm start: shift by one; the new last action from the initial rollout if it lasts.
        plan[:-1] = res.actions[1:]
        nxt = t + 1 + horizon - 1
        plan[-1] = U0[nxt] if nxt < U0.shape[0] else res.actions[-1]
    return MPCEpisode(np.array(actions).reshape(-1, m), np.array(states), np.array(rewards),
                      np.array(predicted), np.array(plan_returns), np.array(iterations))
