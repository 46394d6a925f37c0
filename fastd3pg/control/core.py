"""What the algorithms share: normalization, eq. 2's gradient targets, the regularized critic
loss, acting and evaluation, seeds and the initial actor, settings and checkpoints.

Every algorithm file (``d3pg.py``, ``sac.py``, ``td3.py``, ``gd.py``, ``mpc.py``) builds on this
module and on no other algorithm's file.

Observation normalization (the paper's §4.2, Baselines' DDPG). The networks see

    s̃ = clip((s - μ_s)/(σ_s + STD_EPS), ±c),     ∂s̃/∂s = 1/(σ_s + STD_EPS) where the clip is
                                                 inactive, 0 where it is active,

with ``μ_s, σ_s`` the running statistics of stored states, ``σ_s`` floored at ``STD_FLOOR``.
Without normalization the moments are ``μ_s = 0``, ``σ_s = 1 - STD_EPS`` (so that
``σ_s + STD_EPS = 1``) and the clip is infinite: ``s̃ = s``.

Settings reach compiled code by name: each algorithm passes one NamedTuple of scalars
(``Settings`` in its file), built once from its config, whose shared parts are the
NamedTuples here (:class:`Task`, :class:`Normalization`, :class:`CriticLoss`,
:class:`AdamSettings`). A shared kernel takes only the part it reads.

Counters and running scalars (timesteps, Adam's step, PopArt's moments, a loss) change inside
compiled code, and a NamedTuple is immutable there, so they are 1-element arrays, each a named
field of the algorithm's ``Stats`` NamedTuple (``stats.total[0] += 1``): the name is at every
use, and :func:`group_arrays` checkpoints them with every other array.
"""

from typing import NamedTuple

import numpy as np

from fastd3pg._jit import jit, unit
from fastd3pg.linalg import copy, gather_rows
from fastd3pg.nn import MLP
from fastd3pg.nn import kernels as nnk
from fastd3pg.control import replay
from fastd3pg.nn.normalizer import normalizer_moments, normalizer_update
from fastd3pg.physics import dispatch

STD_EPS = 1e-8  # added to σ_s before dividing (Baselines' normalizer)
STD_FLOOR = 0.1  # Baselines' running statistics never report a std below 0.1


# -- settings -------------------------------------------------------------------------------------
class Task(NamedTuple):
    """The task as compiled loops address it."""

    kernels: dispatch.TaskKernels  # the simulator's compiled kernels (Env.kernels)
    horizon: int  # episode length T


class Normalization(NamedTuple):
    """Observation normalization: on or off, and the clip ``c`` of ``s̃`` (inf when off)."""

    on: bool
    clip: float


class CriticLoss(NamedTuple):
    """The regularized critic loss of Algorithm 1 (one critic; called once per critic)."""

    gradients: bool  # fit the gradient targets at all (w1 > 0 or w2 > 0)
    w1: float  # weight of ‖∇_a Q - g_a‖²
    w2: float  # weight of ‖∇_s Q - g_s‖²
    cosine: bool  # 1 - cos instead of the squared error (appendix A.1)
    l2: float  # coefficient of Σ‖W‖²/2 over the critic's hidden weight matrices


class AdamSettings(NamedTuple):
    beta1: float
    beta2: float
    eps: float


def task_settings(env) -> Task:
    return Task(kernels=env.kernels, horizon=int(env.horizon))


def normalization_settings(config) -> Normalization:
    """Without normalization the networks see raw states, unclipped."""
    on = bool(config.normalize_obs)
    return Normalization(on=on, clip=float(config.obs_clip) if on else np.inf)


def critic_loss_settings(config) -> CriticLoss:
    return CriticLoss(gradients=bool(config.w1 > 0 or config.w2 > 0), w1=float(config.w1),
                      w2=float(config.w2), cosine=config.reg == "cosine",
                      l2=float(config.critic_l2))


def adam_settings(config) -> AdamSettings:
    return AdamSettings(beta1=float(config.adam_beta1), beta2=float(config.adam_beta2),
                        eps=float(config.adam_eps))


def actor_critic_checks(c) -> list:
    """``(ok, message)`` checks of the settings D3PG's and SAC's configs share."""
    return [
        (c.w1 >= 0 and c.w2 >= 0, "w1 and w2 must be >= 0"),
        (c.reg in ("l2", "cosine"), f"reg must be 'l2' or 'cosine', got {c.reg!r}"),
        (0 <= c.gamma <= 1, "gamma must lie in [0, 1]"),
        (0 < c.tau <= 1, "tau must lie in (0, 1]"),
        (c.batch_size >= 1, "batch_size must be >= 1"),
        (c.critic_l2 >= 0, "critic_l2 must be >= 0"),
        (len(c.hidden) >= 1 and all(isinstance(h, int) and h > 0 for h in c.hidden),
         "hidden must be a non-empty list of positive integers"),
        (c.buffer_size >= 1, "buffer_size must be >= 1"),
        (c.rollout_steps >= 1 and c.train_steps >= 0,
         "rollout_steps must be >= 1 and train_steps >= 0"),
        (c.obs_clip > 0, "obs_clip must be > 0"),
        (0 <= c.adam_beta1 < 1 and 0 <= c.adam_beta2 < 1 and c.adam_eps > 0,
         "Adam needs 0 <= beta < 1 and eps > 0"),
    ]


# -- workspaces -----------------------------------------------------------------------------------
class ActWork(NamedTuple):
    """One network acting on one state, and the env step that follows."""

    x: np.ndarray  # (1, n) normalized state
    mask: np.ndarray  # (1, n) 1.0 where s̃ is not clipped
    net: tuple  # the network's workspace, batch 1
    a: np.ndarray  # (m,) action
    s_next: np.ndarray  # (n,)
    obs_mean: np.ndarray  # μ_s, σ_s of the current statistics
    obs_std: np.ndarray


def make_act_work(net, n: int, m: int) -> ActWork:
    return ActWork(x=np.zeros((1, n)), mask=np.zeros((1, n)), net=net.workspace(1),
                   a=np.zeros(m), s_next=np.zeros(n), obs_mean=np.zeros(n), obs_std=np.ones(n))


class Minibatch(NamedTuple):
    """The arrays of one actor-critic update on ``N`` stored transitions (raw coordinates
    unless said otherwise)."""

    idx: np.ndarray  # (N,) int64 buffer rows
    S: np.ndarray  # (N, n) s
    A: np.ndarray  # (N, m) a
    S2: np.ndarray  # (N, n) s'
    X: np.ndarray  # (N, n + m) critic input [s̃, a]
    X2: np.ndarray  # (N, n + m) critic input at s': [s̃', a']
    mask: np.ndarray  # (N, n) 1.0 where s̃ is not clipped
    mask2: np.ndarray  # (N, n) the same for s̃'
    Y: np.ndarray  # (N,) TD targets y
    GS: np.ndarray  # (N, n) gradient targets g_s
    GA: np.ndarray  # (N, m) g_a
    V: np.ndarray  # (N, n) v: the target's total gradient in s' (eq. 2)
    dY: np.ndarray  # (N, 1) cotangent of the critic's output
    H: np.ndarray  # (N, n + m) cotangent of the critic's input gradient
    dA: np.ndarray  # (N, m) scratch: action cotangents, normalized g_a
    dS: np.ndarray  # (N, n) scratch: state cotangents, normalized g_s
    dphi: np.ndarray  # a critic's parameter gradient
    dtheta: np.ndarray  # the actor's parameter gradient
    wa: tuple  # actor workspace, batch N
    wc: tuple  # critic workspaces, batch N
    wc2: tuple
    obs_mean: np.ndarray  # (n,) μ_s, σ_s of the current statistics
    obs_std: np.ndarray


def make_minibatch(actor, critic, N: int) -> Minibatch:
    """A :class:`Minibatch` for ``actor`` (input ``n``) and ``critic`` (input ``n + m``)."""
    n = actor.n_in
    m = critic.n_in - n
    z = np.zeros
    return Minibatch(
        idx=z(N, dtype=np.int64), S=z((N, n)), A=z((N, m)), S2=z((N, n)), X=z((N, n + m)),
        X2=z((N, n + m)), mask=z((N, n)), mask2=z((N, n)), Y=z(N), GS=z((N, n)), GA=z((N, m)),
        V=z((N, n)), dY=z((N, 1)), H=z((N, n + m)), dA=z((N, m)), dS=z((N, n)),
        dphi=z(critic.num_params), dtheta=z(actor.num_params), wa=actor.workspace(N),
        wc=critic.workspace(N), wc2=critic.workspace(N), obs_mean=z(n), obs_std=np.ones(n),
    )


# -- normalization --------------------------------------------------------------------------------
@jit
def obs_moments(stat, on, mean, std):
    """Current ``μ_s, σ_s`` of the running statistics ``stat`` into ``mean``, ``std`` (stds
    floored at ``STD_FLOOR``); ``0, 1 - STD_EPS`` when normalization is off."""
    if on:
        normalizer_moments(stat, mean, std)
        for j in range(std.shape[0]):
            std[j] = max(std[j], STD_FLOOR)
    else:
        mean[:] = 0.0
        std[:] = 1.0 - STD_EPS  # so that σ + STD_EPS = 1


@jit
def return_moments(stat, on, ret):
    """``ret = [μ_Q, σ_Q]`` of the running TD-target statistics (PopArt), ``σ_Q`` floored at
    ``STD_FLOOR``; ``[0, 1]`` when PopArt is off."""
    if on:
        normalizer_moments(stat, ret[:1], ret[1:])
        ret[1] = max(ret[1], STD_FLOOR)
    else:
        ret[0], ret[1] = 0.0, 1.0


def current_obs_moments(stat, on: bool):
    """``(μ_s, σ_s)`` as fresh arrays (what ``policy.npz`` stores)."""
    n = (stat.shape[0] - 1) // 2
    mean, std = np.zeros(n), np.ones(n)
    obs_moments(stat, on, mean, std)
    return mean, std


@jit
def normalize_states(S, mean, std, clip, out, mask):
    """``out = clip((S - μ_s)/(σ_s + STD_EPS), ±clip)``; ``mask`` 1 where the clip is inactive
    (``out`` may be ``S``)."""
    for b in range(S.shape[0]):
        for j in range(S.shape[1]):
            z = (S[b, j] - mean[j]) / (std[j] + STD_EPS)
            if z > clip:
                out[b, j], mask[b, j] = clip, 0.0
            elif z < -clip:
                out[b, j], mask[b, j] = -clip, 0.0
            else:
                out[b, j], mask[b, j] = z, 1.0


# -- eq. 2 and the regularized critic loss --------------------------------------------------------
@unit
def gradient_targets(buf, idx, gamma, V, GS, GA):
    """The paper's eq. 2 for the transitions ``idx``: ``g_s = dr/ds + γ (1 - done) J_sᵀ v``,
    ``g_a = dr/da + γ (1 - done) J_aᵀ v``, from ``v`` (raw coordinates) in ``V``."""
    n = V.shape[1]
    for b in range(idx.shape[0]):
        i = idx[b]
        keep = gamma * (1.0 - buf.done[i])
        for j in range(n):
            acc = 0.0
            for k in range(n):
                acc += buf.J_s[i, k, j] * V[b, k]
            GS[b, j] = buf.dr_ds[i, j] + keep * acc
        for j in range(GA.shape[1]):
            acc = 0.0
            for k in range(n):
                acc += buf.J_a[i, k, j] * V[b, k]
            GA[b, j] = buf.dr_da[i, j] + keep * acc


@jit(inline="always")
def value_term(Q, Y, mu_q, sigma_q, inv_n, dY, b):
    """Sample ``b``'s share of ``1/N Σ (Q̃ - ỹ)²`` (``ỹ = (y - μ_Q)/σ_Q``); its cotangent into
    ``dY[b]``."""
    y_norm = (Y[b] - mu_q) / sigma_q
    diff = Q[b, 0] - y_norm
    dY[b, 0] = 2.0 * diff * inv_n
    return diff * diff * inv_n


@jit(inline="always")
def normalized_gradient_targets(GS, GA, std, mask, sigma_q, dS, dA, b):
    """Sample ``b``'s gradient targets in the networks' coordinates (chain rule through s̃ and
    Q̃): ``(σ_s + STD_EPS) ⊙ g_s / σ_Q`` into ``dS[b]``, zero on clipped components, and
    ``g_a / σ_Q`` into ``dA[b]``."""
    for j in range(dS.shape[1]):
        scale = std[j] + STD_EPS
        dS[b, j] = GS[b, j] * scale / sigma_q * mask[b, j]
    for j in range(dA.shape[1]):
        dA[b, j] = GA[b, j] / sigma_q


@jit(inline="always")
def l2_gradient_terms(loss, G, dS, dA, mask, w1, w2, inv_n, H, b):
    """``loss`` plus sample ``b``'s ``1/N (w2 ‖∇_s̃ Q̃ ⊙ mask - dS‖² + w1 ‖∇_a Q̃ - dA‖²)``; the
    cotangent of ``G[b]`` into ``H[b]``."""
    n = dS.shape[1]
    for j in range(n):
        r = (G[b, j] - dS[b, j]) * mask[b, j]
        loss += w2 * r * r * inv_n
        H[b, j] = 2.0 * w2 * r * inv_n
    for j in range(dA.shape[1]):
        r = G[b, n + j] - dA[b, j]
        loss += w1 * r * r * inv_n
        H[b, n + j] = 2.0 * w1 * r * inv_n
    return loss


@jit
def cosine_cotangent(G, g, w, scale, out):
    """Loss ``w (1 - cos(G, g))`` and its gradient w.r.t. ``G`` (times ``scale``) into ``out``;
    zero where either norm vanishes."""
    gg = 0.0
    GG = 0.0
    Gg = 0.0
    for j in range(G.shape[0]):
        gg += g[j] * g[j]
        GG += G[j] * G[j]
        Gg += G[j] * g[j]
    if gg < 1e-24 or GG < 1e-24:
        out[:] = 0.0
        return w
    nG, ng = np.sqrt(GG), np.sqrt(gg)
    cos = Gg / (nG * ng)
    for j in range(G.shape[0]):
        out[j] = -scale * w * (g[j] / (nG * ng) - cos * G[j] / GG)
    return w * (1.0 - cos)


@jit(inline="always")
def cosine_gradient_terms(loss, G, dS, dA, mask, w1, w2, inv_n, H, b):
    """``loss`` plus sample ``b``'s ``1/N (w2 (1 - cos(∇_s̃ Q̃ ⊙ mask, dS)) + w1 (1 - cos(∇_a Q̃,
    dA)))`` (appendix A.1); the cotangent of ``G[b]`` into ``H[b]``, zero on clipped states."""
    n = dS.shape[1]
    Gs = G[b, :n] * mask[b]
    loss += cosine_cotangent(Gs, dS[b], w2, inv_n, H[b, :n]) * inv_n
    loss += cosine_cotangent(G[b, n:], dA[b], w1, inv_n, H[b, n:]) * inv_n
    for j in range(n):
        H[b, j] *= mask[b, j]
    return loss


@jit
def critic_l2(phi, l2_ranges, l2, dphi, loss):
    """``loss`` plus ``l2 Σ ‖W‖²/2`` over the ranges ``l2_ranges`` of ``phi``; its gradient added
    into ``dphi``. Two loops: the gradient's vectorizes, the loss keeps its sequential order.
    With ``l2 = 0`` (finite ``phi``) both would add zeros, so nothing is computed."""
    if l2 == 0.0:
        return loss
    for r in range(l2_ranges.shape[0]):
        lo, hi = l2_ranges[r, 0], l2_ranges[r, 1]
        for k in range(lo, hi):
            dphi[k] += l2 * phi[k]
        for k in range(lo, hi):
            loss += 0.5 * l2 * phi[k] * phi[k]
    return loss


@unit
def critic_gradient(spec_c, phi, l2_ranges, cl, clip, mu_q, sigma_q, buf, mb):
    """∂L/∂φ of the regularized critic loss (Algorithm 1, in normalized coordinates) of the
    critic ``phi`` on the transitions ``mb.idx`` into ``mb.dphi``; returns L. Needs the targets
    ``mb.Y`` (and ``mb.GS``, ``mb.GA`` with ``cl.gradients``), the moments in ``mb``, and the
    return moments ``mu_q``, ``sigma_q`` (0, 1 without PopArt)."""
    N, n = mb.S.shape
    gather_rows(mb.S, buf.s, mb.idx)
    gather_rows(mb.A, buf.a, mb.idx)
    Xs = mb.X[:, :n]
    normalize_states(mb.S, mb.obs_mean, mb.obs_std, clip, Xs, mb.mask)
    copy(mb.X[:, n:], mb.A)
    inv_n = 1.0 / N
    loss = 0.0
    if cl.gradients:
        Q, G = nnk.forward_input_grad(spec_c, phi, mb.X, mb.wc)
    else:
        Q = nnk.forward(spec_c, phi, mb.X, mb.wc)
    for b in range(N):
        loss += value_term(Q, mb.Y, mu_q, sigma_q, inv_n, mb.dY, b)
        if not cl.gradients:
            continue
        normalized_gradient_targets(mb.GS, mb.GA, mb.obs_std, mb.mask, sigma_q, mb.dS, mb.dA, b)
        if cl.cosine:
            loss = cosine_gradient_terms(loss, G, mb.dS, mb.dA, mb.mask, cl.w1, cl.w2, inv_n,
                                         mb.H, b)
        else:
            loss = l2_gradient_terms(loss, G, mb.dS, mb.dA, mb.mask, cl.w1, cl.w2, inv_n, mb.H, b)
    if cl.gradients:
        nnk.backward_value_and_input_grad(spec_c, phi, mb.wc, mb.dY, mb.H, mb.dphi)
    else:
        nnk.param_vjp(spec_c, phi, mb.wc, mb.dY, mb.dphi)
    return critic_l2(phi, l2_ranges, cl.l2, mb.dphi, loss)


# -- twin critics (SAC, TD3) ---------------------------------------------------------------------
@jit
def twin_min(spec_c, phi1, phi2, X, wc1, wc2, grads, Qmin, Gmin):
    """``Qmin = min(Q_1(X), Q_2(X))`` per row and, with ``grads``, the input gradient of the
    critic attaining it (critic 1 on ties), computed for those rows only."""
    Q1 = nnk.forward(spec_c, phi1, X, wc1)
    Q2 = nnk.forward(spec_c, phi2, X, wc2)
    k1 = k2 = 0
    for b in range(X.shape[0]):
        if Q1[b, 0] <= Q2[b, 0]:
            Qmin[b] = Q1[b, 0]
            wc1.I[k1] = b
            k1 += 1
        else:
            Qmin[b] = Q2[b, 0]
            wc2.I[k2] = b
            k2 += 1
    if not grads:
        return
    if k1 > 0:
        _scatter_rows(nnk.input_grad_rows(spec_c, phi1, wc1, wc1.I, k1), wc1.I, k1, Gmin)
    if k2 > 0:
        _scatter_rows(nnk.input_grad_rows(spec_c, phi2, wc2, wc2.I, k2), wc2.I, k2, Gmin)


@jit
def _scatter_rows(G, rows, k, out):
    """``out[rows[i]] = G[i]`` for ``i < k``."""
    for i in range(k):
        for j in range(G.shape[1]):
            out[rows[i], j] = G[i, j]


# -- acting, episodes, evaluation -----------------------------------------------------------------
@unit
def load_state(stat, norm, work, s):
    """``work.x = s̃`` for one state ``s``, with the current moments of ``stat``."""
    copy(work.x[0, :], s)
    obs_moments(stat, norm.on, work.obs_mean, work.obs_std)
    normalize_states(work.x, work.obs_mean, work.obs_std, norm.clip, work.x, work.mask)


@unit
def act(spec_a, theta, stat, norm, work, s):
    """``work.a = π_θ(s̃)`` for one state ``s`` (a deterministic actor)."""
    load_state(stat, norm, work, s)
    copy(work.a, nnk.forward(spec_a, theta, work.x, work.net)[0])


@jit
def start_episode(kernels, p, rng, state, episode_t):
    """A fresh start state from ``rng`` into ``state``; the episode's step count to 0."""
    dispatch.reset(kernels, p, rng, state)
    episode_t[0] = 0


@unit
def step_and_store(p, task, norm, with_jacobians, stats, w, buf, J_s, J_a, dr_ds, dr_da):
    """Alg. 1 lines 5-6: the env step from ``stats.state`` under the action ``w.a``, stored in
    ``buf`` (with the step's Jacobians when ``with_jacobians``); then the observation statistics,
    the step counters (``stats.total``, ``stats.episode_t``) and, at the episode's end, a fresh
    start state. Returns the reward."""
    s = stats.state
    if with_jacobians:
        r, terminated = dispatch.step_jac(task.kernels, p, s, w.a, w.s_next, J_s, J_a,
                                          dr_ds, dr_da)
    else:
        r, terminated = dispatch.step(task.kernels, p, s, w.a, w.s_next)
    replay.add(buf, s, w.a, r, w.s_next, terminated, J_s, J_a, dr_ds, dr_da)
    if norm.on:
        normalizer_update(stats.obs, s.reshape((1, s.shape[0])))
    stats.total[0] += 1
    stats.episode_t[0] += 1
    copy(s, w.s_next)
    if terminated or stats.episode_t[0] >= task.horizon:
        start_episode(task.kernels, p, stats.rng, stats.state, stats.episode_t)
    return r


@unit
def evaluate(p, spec_a, theta, task, norm, stat, rng, work):
    """The return of one episode of the deterministic actor ``theta`` from a start state drawn
    from ``rng`` (the evaluation stream)."""
    s = np.empty(work.s_next.shape[0])
    dispatch.reset(task.kernels, p, rng, s)
    total = 0.0
    for _ in range(task.horizon):
        act(spec_a, theta, stat, norm, work, s)
        r, terminated = dispatch.step(task.kernels, p, s, work.a, work.s_next)
        total += r
        copy(s, work.s_next)
        if terminated:
            break
    return total


# -- networks and seeds ---------------------------------------------------------------------------
def loop_arguments(agent) -> tuple:
    """What an actor-critic agent's compiled loop takes besides the step count and the task's
    parameters: ``(spec_a, spec_c, nets, stats, cfg, buf, work)``."""
    return (agent.actor.spec, agent.critic.spec, agent.nets, agent.stats, agent.settings,
            agent.buf, agent.work)


def step_and_store_call(agent, with_jacobians) -> tuple:
    """:func:`step_and_store` with the arguments an actor-critic agent's loop passes it, as an
    entry of the agent's ``compile_plan``."""
    s, w = agent.settings, agent.work
    return (step_and_store, (agent.env.params, s.task, s.obs, with_jacobians, agent.stats, w.act,
                             agent.buf, w.J_s, w.J_a, w.dr_ds, w.dr_da))


def twin_critic_gradient_call(agent) -> tuple:
    """:func:`critic_gradient` as a twin-critic agent's update calls it (on critic 1, without
    PopArt), as an entry of the agent's ``compile_plan``."""
    s = agent.settings
    return (critic_gradient, (agent.critic.spec, agent.nets.phi1, agent.nets.l2_ranges, s.loss,
                              s.obs.clip, 0.0, 1.0, agent.buf, agent.work.batch))


def run_seeds(seed: int) -> np.ndarray:
    """Four independent seeds of a run: actor init, critic init, training stream, evaluation
    stream. Every method derives its streams here, so that all start from the same actor and
    the same first episode."""
    return np.random.SeedSequence(seed).generate_state(4)


def initial_actor(env, config, seed: int):
    """The actor network and its initial parameters for ``seed`` (shared by D3PG, DDPG, GD and
    MPC's initial plan)."""
    n, m = env.state_dim, env.action_dim
    actor = MLP([n, *config.hidden, m], activation=config.activation, output_activation="tanh",
                layer_norm=config.layer_norm)
    return actor, actor.init(seed=int(run_seeds(seed)[0]), out_scale=config.out_init)


def hidden_weight_ranges(net) -> np.ndarray:
    """``[start, stop)`` of each hidden layer's weight matrix in ``net``'s flat parameters
    (the critic L2's support: no biases, layer-norm parameters or output layer)."""
    L = len(net.sizes) - 1
    return np.array([[off, off + shape[0] * shape[1]] for name, layer, off, shape in net.layout()
                     if name == "W" and layer < L], dtype=np.int64).reshape(-1, 2)


def replay_capacity(config, total_steps) -> int:
    """The replay buffer's capacity: ``buffer_size``, capped at the run's timesteps."""
    return config.buffer_size if total_steps is None else min(config.buffer_size, total_steps)


def counter(value=0) -> np.ndarray:
    """A named int64 counter of a ``Stats`` NamedTuple (a 1-element array)."""
    return np.array([value], dtype=np.int64)


def scalar(value=0.0) -> np.ndarray:
    """A named float64 running scalar of a ``Stats`` NamedTuple (a 1-element array)."""
    return np.array([value], dtype=np.float64)


# -- checkpoints ----------------------------------------------------------------------------------
def group_arrays(groups: dict) -> dict:
    """``{"group.field": array}`` over NamedTuples of arrays (an agent's checkpoint)."""
    return {f"{g}.{k}": v for g, tup in groups.items() for k, v in tup._asdict().items()}


def load_group_arrays(groups: dict, arrays: dict):
    """Copy a checkpoint made by :func:`group_arrays` back into the same NamedTuples.

    A replay buffer (group ``"buf"``) may have grown: its capacity is capped at the run's
    timesteps, so resuming with more ``--steps`` gives a larger one. The saved transitions are
    then the new buffer's first rows, and the next one follows them: the saved buffer cannot
    have wrapped around, since a buffer that wraps is at ``buffer_size`` already and keeps
    that capacity."""
    for group, tup in groups.items():
        grown = False
        for name in tup._fields:
            key = f"{group}.{name}"
            if key not in arrays:
                raise ValueError(f"checkpoint lacks {key}")
            target, saved = getattr(tup, name), arrays[key]
            if (group == "buf" and name != "pos" and target.dtype == saved.dtype
                    and target.ndim == saved.ndim and target.shape[1:] == saved.shape[1:]
                    and target.shape[0] > saved.shape[0]):
                target[:saved.shape[0]] = saved
                grown = True
                continue
            if target.shape != saved.shape or target.dtype != saved.dtype:
                raise ValueError(f"checkpoint's {key} has shape {saved.shape}, "
                                 f"expected {target.shape}")
            target[...] = saved
        if grown:
            tup.pos[1] = tup.pos[0]
