"""Ground truth from the simulator: the value of a policy and its exact gradients.

A differentiable simulator gives what no sampled return can: the true action value of the
current policy and its derivatives with respect to the state and the action, against which a
critic ``Q_φ`` and its input gradients (the quantities D3PG fits, the paper's eq. 2) can be measured.

:func:`true_q` is the action value of a deterministic policy by forward simulation, with its
gradients by an adjoint (reverse) sweep; :func:`policy_jacobian` is the actor's action and
input Jacobian in raw state coordinates (normalizer and clips included); :func:`q_surface` is
``Q^π`` on a grid of ``(s, a)`` for a task with one state and one action (MassPoint, the
paper's Figure 2).

The policy is anything with the attributes of :class:`fastd3pg.train.Policy` (what
``load_policy`` returns): ``sizes``, ``activation``, ``output_activation``, ``layer_norm``,
``params`` (the flat layout of :class:`fastd3pg.nn.MLP`), ``obs_mean``, ``obs_std``,
``obs_clip`` and optionally ``env`` (the task's name) and ``ln_eps`` (default 1e-5). Its action
is ``π(s) = clip(f(clip((s - obs_mean)/(obs_std + 1e-8), ±obs_clip)), ±1)`` with ``f`` the
network; the network is evaluated here in NumPy, alongside its input Jacobian.
"""

import numbers

import numpy as np

from fastd3pg.nn import MLP
from fastd3pg.nn.mlp import check_finite, real_array

# Upper bound on the adjoint storage of one chunk of rows (bytes); larger batches are processed
# in chunks so that a long horizon with many rows (HalfCheetah: n = 14, H = 1000) stays small.
_CHUNK_BYTES = 64 * 2**20
_OBS_EPS = 1e-8  # the normalizer's ``σ + 1e-8``, as in Policy and the agents


# -- the policy and its input Jacobian ---------------------------------------------------------
def _check_policy(policy, env=None):
    """The policy's network as ``(net, params, mean, std, clip)``, validated."""
    try:
        sizes = [int(k) for k in policy.sizes]
        net = MLP(sizes, policy.activation, policy.output_activation, bool(policy.layer_norm),
                  float(getattr(policy, "ln_eps", 1e-5)))
        arrays = [np.asarray(getattr(policy, k), dtype=np.float64)
                  for k in ("params", "obs_mean", "obs_std")]
        clip = float(policy.obs_clip)
    except (AttributeError, TypeError, ValueError) as err:
        raise ValueError(f"policy must have the attributes of fastd3pg.train.Policy "
                         f"(sizes, activation, output_activation, layer_norm, params, obs_mean, "
                         f"obs_std, obs_clip): {err}") from None
    params, mean, std = arrays
    n, m = net.n_in, net.n_out
    if env is not None:
        task = getattr(policy, "env", None)
        task = getattr(task, "name", task)
        if isinstance(task, str) and task != env.name:
            raise ValueError(f"the policy was trained on {task}, not {env.name}")
        if (n, m) != (env.state_dim, env.action_dim):
            raise ValueError(f"the policy maps {n} states to {m} actions; {env.name} has "
                             f"{env.state_dim} states and {env.action_dim} actions")
    if params.shape != (net.num_params,):
        raise ValueError(f"policy params must have shape ({net.num_params},) for sizes {sizes}, "
                         f"got {params.shape}")
    if mean.shape != (n,) or std.shape != (n,):
        raise ValueError(f"policy obs_mean and obs_std must have shape ({n},), got "
                         f"{mean.shape} and {std.shape}")
    if not (np.all(np.isfinite(params)) and np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
        raise ValueError("policy params, obs_mean or obs_std contain NaN or inf")
    if np.any(std < 0):
        raise ValueError("policy obs_std must be >= 0")
    if not clip > 0:
        raise ValueError(f"policy obs_clip must be > 0, got {clip}")
    return net, params, mean, std, clip


def _activation_and_slope(name, z):
    """``σ(z)`` and ``σ'(z)``, with the compiled kernels' conventions at the kinks
    (``relu'(0) = 0``, ``elu'(0) = 1``)."""
    if name == "relu":
        return np.maximum(z, 0.0), (z > 0.0).astype(np.float64)
    if name == "tanh":
        a = np.tanh(z)
        return a, 1.0 - a * a
    if name == "elu":
        a = np.where(z > 0.0, z, np.expm1(np.minimum(z, 0.0)))
        return a, np.where(z > 0.0, 1.0, a + 1.0)
    return z, np.ones_like(z)


def _network_jacobian(net, params, X):
    """``(f(X), ∂f/∂X)``: shapes ``(B, n_out)`` and ``(B, n_out, n_in)``, forward mode.

    ``T[b, i] = ∂a/∂X[b, i]`` (one row per input direction, the layer's ``k`` features along
    the last axis, so that each affine map is one matrix product over all ``B n_in`` rows):
    the affine map gives ``∂z = ∂a W``; layer norm ``u = (z - mean z)/ρ``,
    ``ρ = sqrt(var z + eps)`` gives ``∂u = (∂z - mean ∂z - u · mean(u ∂z)) / ρ`` (means over
    the features), then ``γ ∂u``; the activation multiplies by ``σ'(z)``."""
    L = len(net.sizes) - 1
    B, n_in = X.shape
    blocks = {(name, layer): params[off:off + int(np.prod(shape))].reshape(shape)
              for name, layer, off, shape in net.layout()}
    a, T = X, None
    for l in range(1, L + 1):
        W = blocks["W", l]
        z = a @ W + blocks["b", l]
        if T is None:
            T = np.broadcast_to(W, (B,) + W.shape)
        else:
            T = (T.reshape(B * n_in, -1) @ W).reshape(B, n_in, -1)
        if l < L and net.layer_norm:
            mu = z.mean(axis=1, keepdims=True)
            rho = np.sqrt(((z - mu) ** 2).mean(axis=1, keepdims=True) + net.ln_eps)
            u = (z - mu) / rho
            uT = u[:, None, :]
            T = (T - T.mean(axis=2, keepdims=True) - uT * (uT * T).mean(axis=2, keepdims=True))
            T *= (blocks["ln_gain", l] / rho)[:, None, :]
            z = u * blocks["ln_gain", l] + blocks["ln_bias", l]
        a, slope = _activation_and_slope(net.activation if l < L else net.output_activation, z)
        T = slope[:, None, :] * T
    return a, T.transpose(0, 2, 1)


def _policy_jacobian(checked, S):
    net, params, mean, std, clip = checked
    u = (S - mean) / (std + _OBS_EPS)
    X = np.clip(u, -clip, clip)
    Y, dY_dX = _network_jacobian(net, params, X)
    inside_obs = (np.abs(u) < clip) / (std + _OBS_EPS)  # ∂X/∂s: diagonal, 0 where clipped
    inside_act = (np.abs(Y) < 1.0).astype(np.float64)  # ∂π/∂Y: diagonal, 0 where clipped
    return np.clip(Y, -1.0, 1.0), inside_act[:, :, None] * dY_dX * inside_obs[:, None, :]


def policy_jacobian(policy, states):
    """The policy's actions and input Jacobian in raw state coordinates.

    ``states (B, n) -> (actions (B, m), dpi_ds (B, m, n))`` with
    ``dpi_ds[b] = ∂π/∂s (states[b]) = diag(1[|y| < 1]) · ∂f/∂x · diag(1[|u| < c] / (σ + 1e-8))``,
    ``u = (s - μ)/(σ + 1e-8)``, ``x = clip(u, ±c)``, ``y = f(x)``: zero in the rows of clipped
    actions and the columns of clipped observations. ``policy`` is a
    :class:`fastd3pg.train.Policy` or any object with its attributes (module docstring).
    """
    checked = _check_policy(policy)
    S = _states(states, checked[0].n_in, "states")
    return _policy_jacobian(checked, S)


# -- Q^π by forward simulation, its gradients by the adjoint sweep ----------------------------
def _states(x, n, what):
    X = real_array(x, what, "true_q")
    if X.ndim != 2 or X.shape[1] != n or X.shape[0] < 1:
        raise ValueError(f"true_q: {what} must have shape (B, {n}) with B >= 1, got {X.shape}")
    return check_finite(X, what, "true_q")


def _true_q_rows(env, checked, S, A, gamma, H):
    """:func:`true_q` on one chunk of rows (already validated)."""
    B, n = S.shape
    q = np.zeros(B)
    # Adjoint storage for t >= 1: M_t = J_s,t + J_a,t ∂π_t, g_t = dr_ds_t + ∂π_tᵀ dr_da_t
    # (zero for the rows whose sum has stopped).
    M, g = np.zeros((H, B, n, n)), np.zeros((H, B, n))
    alive = np.ones(B, dtype=bool)
    S = S.copy()
    disc, last = 1.0, 0
    for t in range(H):
        rows = np.flatnonzero(alive)
        if rows.size == 0:
            break
        if t == 0:
            tr = env.transition_batch(S, A)
            first = tr
        else:
            actions, dpi = _policy_jacobian(checked, S[rows])
            tr = env.transition_batch(S[rows], actions)
            M[t, rows] = tr.J_s + np.matmul(tr.J_a, dpi)
            g[t, rows] = tr.dr_ds + np.einsum("bmn,bm->bn", dpi, tr.dr_da)
        q[rows] += disc * tr.reward
        S[rows] = tr.next_state
        alive[rows[tr.terminated]] = False
        disc *= gamma
        last = t
    lam = np.zeros((B, n))  # λ_{t+1}, starting from λ_H = 0
    for t in range(last, 0, -1):
        lam = g[t] + gamma * np.einsum("bij,bi->bj", M[t], lam)
    dq_ds = first.dr_ds + gamma * np.einsum("bij,bi->bj", first.J_s, lam)
    dq_da = first.dr_da + gamma * np.einsum("bij,bi->bj", first.J_a, lam)
    return q, dq_ds, dq_da


def true_q(env, policy, states, actions, gamma=0.99, horizon=None):
    """The action value of ``policy`` by simulation, with its exact gradients.

    ``states (B, n)``, ``actions (B, m)`` -> ``q (B,)``, ``dq_ds (B, n)``, ``dq_da (B, m)``::

        Q^π(s, a) = Σ_{t<L} γ^t r(s_t, a_t),   s_0 = s,  a_0 = a,  a_t = π(s_t) (t ≥ 1),
        s_{t+1} = Γ(s_t, a_t),   L = min(H, 1 + the first t whose step terminates)

    ``H = horizon`` defaults to ``env.horizon``, counted from ``s`` (the step count of the
    episode ``s`` came from is not known here). ``π`` is deterministic: ``policy`` is a
    :class:`fastd3pg.train.Policy` or any object with its attributes (module docstring).

    Derivation of the gradients. Let ``V_t(s_t) = Σ_{t≤k<L} γ^{k-t} r_k`` be the return-to-go
    from step ``t ≥ 1`` (a function of ``s_t`` alone, the later actions following ``π``), so
    ``V_t(s_t) = r(s_t, π(s_t)) + γ V_{t+1}(Γ(s_t, π(s_t)))`` and ``V_L = 0``. Its gradient
    ``λ_t = ∂V_t/∂s_t`` follows by the chain rule, with ``∂π_t = ∂π/∂s (s_t)``
    (:func:`policy_jacobian`) and the simulator's ``J_s,t``, ``J_a,t``, ``dr_ds_t``,
    ``dr_da_t`` at ``(s_t, a_t)`` (the paper's eq. 2)::

        λ_L = 0
        λ_t = dr_ds_t + ∂π_tᵀ dr_da_t + γ (J_s,t + J_a,t ∂π_t)ᵀ λ_{t+1},     t = L-1, ..., 1

    and ``Q^π(s, a) = r(s, a) + γ V_1(Γ(s, a))`` gives, at ``t = 0`` (where the action is the
    argument ``a``, not ``π(s)``)::

        ∂Q/∂s = dr_ds_0 + γ J_s,0ᵀ λ_1,      ∂Q/∂a = dr_da_0 + γ J_a,0ᵀ λ_1

    (Equivalently, with ``μ_t = γ^t λ_t``: ``μ_t = γ^t (dr_ds_t + ∂π_tᵀ dr_da_t) +
    (J_s,t + J_a,t ∂π_t)ᵀ μ_{t+1}``, ``∂Q/∂s = dr_ds_0 + J_s,0ᵀ μ_1``.) One forward rollout of
    the whole batch (one ``env.transition_batch`` call per step; rows whose sum has stopped are
    left out) stores ``J_s,t + J_a,t ∂π_t`` and ``dr_ds_t + ∂π_tᵀ dr_da_t``; the reverse sweep
    above then costs one ``n × n`` matrix-vector product per row and step.

    Kinks and termination. The derivative is that of the piecewise-smooth ``Q^π`` on the piece
    containing ``(s, a)``: where a clip is active (the action's ``[-1, 1]``, the policy's
    observation and action clips, a simulator's speed or position limit) the clipped
    component contributes zero, and the termination step ``L`` is held fixed (``Q^π`` jumps
    where a perturbation would change it). On a task whose reward carries no gradient
    (``env.differentiable_reward`` false: Acrobot) the gradients are those of that
    piecewise-constant reward, i.e. zero.

    ``gamma`` in [0, 1] (``gamma = 0`` simulates one step); ``horizon`` an integer >= 1. A
    rollout whose value or derivatives overflow raises ``ValueError``, as does bad input.
    """
    if not all(hasattr(env, k) for k in ("transition_batch", "state_dim", "action_dim", "horizon")):
        raise ValueError(f"env must be a fastd3pg.physics env (make(name)), got {env!r}")
    checked = _check_policy(policy, env)
    if isinstance(gamma, (bool, np.bool_)) or not isinstance(gamma, numbers.Real) \
            or not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be a number in [0, 1], got {gamma!r}")
    if horizon is None:
        horizon = env.horizon
    if isinstance(horizon, (bool, np.bool_)) or not isinstance(horizon, numbers.Integral) \
            or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1, got {horizon!r}")
    S = _states(states, env.state_dim, "states")
    A = _states(actions, env.action_dim, "actions")
    if S.shape[0] != A.shape[0]:
        raise ValueError(f"states and actions have different batch sizes "
                         f"({S.shape[0]} and {A.shape[0]})")
    gamma, H = float(gamma), 1 if gamma == 0 else int(horizon)
    n = env.state_dim
    chunk = max(1, _CHUNK_BYTES // (8 * H * n * (n + 1)))
    parts = [_true_q_rows(env, checked, S[i:i + chunk], A[i:i + chunk], gamma, H)
             for i in range(0, S.shape[0], chunk)]
    q, dq_ds, dq_da = (np.concatenate(k) for k in zip(*parts))
    bad = ~(np.isfinite(q) & np.isfinite(dq_ds).all(axis=1) & np.isfinite(dq_da).all(axis=1))
    if np.any(bad):
        raise ValueError(f"true_q: the rollout's value or derivatives overflowed for "
                         f"{int(bad.sum())} of {bad.size} rows (first: row {int(np.argmax(bad))})")
    return q, dq_ds, dq_da


def q_surface(env, policy, s_values, a_values, gamma=0.99, horizon=None):
    """``Q^π`` on the grid ``s_values × a_values`` of a task with one state and one action
    (MassPoint: the ground-truth surfaces of the paper's Figure 2).

    Returns ``(q, dq_ds, dq_da, pi)``: three arrays of shape ``(len(s_values), len(a_values))``
    with ``q[i, j] = Q^π(s_values[i], a_values[j])`` and its gradients (:func:`true_q`), and
    ``pi (len(s_values),)``, the policy's action at each state (its curve on the surface).
    """
    if env.state_dim != 1 or env.action_dim != 1:
        raise ValueError(f"q_surface needs a task with one state and one action; {env.name} "
                         f"has {env.state_dim} and {env.action_dim}")
    s = np.asarray(s_values, dtype=np.float64)
    a = np.asarray(a_values, dtype=np.float64)
    if s.ndim != 1 or a.ndim != 1 or s.size < 1 or a.size < 1:
        raise ValueError(f"s_values and a_values must be non-empty 1-D arrays, got shapes "
                         f"{s.shape} and {a.shape}")
    S, A = np.meshgrid(s, a, indexing="ij")
    q, dq_ds, dq_da = true_q(env, policy, S.reshape(-1, 1), A.reshape(-1, 1), gamma, horizon)
    pi, _ = policy_jacobian(policy, s.reshape(-1, 1))
    shape = S.shape
    return q.reshape(shape), dq_ds.reshape(shape), dq_da.reshape(shape), pi[:, 0]
