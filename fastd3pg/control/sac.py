"""SAC (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications") and hybrid SAC
(``d3pg-sac``: PAPER.md §2's gradient-fitting term added to each of SAC's critics, paper
appendix A.2).

SAC, as compiled here (one update per env step once a minibatch is stored; the first
``warmup_steps`` actions are uniformly random):

    actor       π_θ(s) = tanh(u),  u = μ_θ(s) + σ_θ(s) ⊙ ε,  ε ~ N(0, I)        (reparameterized)
                log σ = lo + (hi - lo)(tanh ℓ + 1)/2   (ℓ: the network's raw log-std head)
    log-prob    log π(a|s) = Σ_j [-ε_j²/2 - ½ log 2π - log σ_j - log(1 - tanh² u_j)]  (tanh
                correction, computed as log(1 - tanh² u) = 2 (log 2 - u - softplus(-2u)))
    target      a' = tanh(μ(s') + σ(s') ⊙ ε'),
                y = r + γ (1 - done) (min_i Q'_i(s', a') - α log π(a'|s'))
    critics     L(φ_i) = 1/N Σ (Q_i(s, a) - y)²                        for i = 1, 2 (twin critics)
    actor       J(θ) = 1/N Σ [α log π(a_θ|s) - min_i Q_i(s, a_θ)],  a_θ = tanh(μ + σ ⊙ ε)
    temperature J(log α) = -α 1/N Σ (log π(a_θ|s) + H̄),  H̄ = target_entropy · m  (-m by default)
    targets     φ'_i ← τ φ_i + (1 - τ) φ'_i

in that order (critics, then the actor against the updated critics, then α; the log-probs of
the α step are those of the actor step, from the pre-update actor).

Hybrid SAC fits each critic to the gradients of its target as well (PAPER.md §2's loss, with the
same ``w1``, ``w2``, ``reg``). The target is differentiated with the noise ε' held fixed, so
``a'`` is a smooth function of ``s'`` (reparameterization), and through the entropy term:

    v   = d/ds' [Q'_k(s', a'(s')) - α log π(a'(s')|s')]          (k: the critic attaining the min)
        = ∇_s Q'_k + (∂(μ, ℓ)/∂s')ᵀ (μ̄, ℓ̄),  with, per action component,
          ū = (1 - a'²) ∇_a Q'_k - 2 α a'                 (d/du of -log(1 - tanh² u) is 2 tanh u)
          μ̄ = ū,   ℓ̄ = (ū σ ε' + α) (hi - lo)/2 (1 - tanh² ℓ)  (log σ enters u and -log σ)
    g_s = dr/ds + γ (1 - done) J_sᵀ v,   g_a = dr/da + γ (1 - done) J_aᵀ v          (eq. 2)

(the networks see ``s̃'``: the input gradient is multiplied by ``∂s̃'/∂s'``, D3PG's chain rule,
when observations are normalized). ``γ (1 - done) v`` is then exactly ``∂y/∂s'`` with ε' fixed,
and ``g_s``, ``g_a`` are ``∂y/∂s``, ``∂y/∂a`` through the simulator (tests/control/test_sac.py
checks this by central differences).

Reused from :mod:`fastd3pg.control.d3pg` rather than repeated: the observation normalization
(``refresh_moments``, ``normalize_states``; off by default for SAC, as in Haarnoja et al.), the
critic loss and its gradient with double backprop (``critic_gradient``, called once per critic
with that critic's parameters), episode starts and the deterministic evaluation episode. To
share them, the float and int hyper-parameter vectors use D3PG's index constants (SAC's own
entries come after them) and the NamedTuples here carry the fields those kernels read. There is
no PopArt in SAC: the return moments stay ``(0, 1)``.

The deterministic action is ``tanh(μ(s̃))``: the mean head alone is an MLP with a tanh output,
whose parameters are the actor's hidden layers plus the mean columns of its output layer
(:meth:`SACAgent.mean_actor_params`); evaluation and ``policy.npz`` both use that network.
"""

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from fastd3pg import rng as _rng
from fastd3pg._jit import jit
from fastd3pg.control import d3pg, replay
from fastd3pg.control.configio import ConfigError, require
from fastd3pg.control.d3pg import (
    C_ADAM_T, C_EPISODE_T, C_TOTAL, C_UPDATES, F_EPISODE_RETURN, HP_ACTOR_LR, HP_B1, HP_B2,
    HP_CRITIC_LR, HP_EPS, HP_GAMMA, HP_L2, HP_OBS_CLIP, HP_TAU, HP_W1, HP_W2, IP_BATCH,
    IP_COSINE, IP_GRADS, IP_HORIZON, IP_NORM_OBS, IP_POPART, IP_ROLLOUT, IP_TASK, IP_TRAIN,
    gradient_targets, normalize_states, refresh_moments,
)
from fastd3pg.nn import MLP, adam_step, polyak
from fastd3pg.nn import kernels as nnk
from fastd3pg.nn.normalizer import normalizer_update
from fastd3pg.physics import dispatch


@dataclass(frozen=True)
class HybridSACConfig:
    """Settings of hybrid SAC; SAC's defaults (Haarnoja et al. 2018) where they apply, D3PG's
    network size and batch so that the methods differ only in the algorithm."""

    w1: float = 1.0  #: weight of the action-gradient term ‖∇_a Q_i - g_a‖² (each critic)
    w2: float = 1.0  #: weight of the state-gradient term ‖∇_s Q_i - g_s‖² (each critic)
    reg: str = "l2"  #: gradient-fitting loss: "l2" (squared error) or "cosine" (appendix A.1)
    gamma: float = 0.99  #: discount γ
    tau: float = 0.005  #: Polyak coefficient of the target critics
    batch_size: int = 64  #: minibatch size N (D3PG's; SAC's paper uses 256)
    actor_lr: float = 3e-4  #: Adam learning rate of the actor
    critic_lr: float = 3e-4  #: Adam learning rate of both critics
    alpha_lr: float = 3e-4  #: Adam learning rate of log α
    init_alpha: float = 1.0  #: initial temperature α
    target_entropy: float = -1.0  #: target entropy per action dimension (H̄ = target_entropy · m)
    log_std_min: float = -5.0  #: lower bound of log σ (smoothly squashed, never clipped)
    log_std_max: float = 2.0  #: upper bound of log σ
    critic_l2: float = 0.0  #: L2 coefficient on the critics' hidden weight matrices (Σ‖W‖²/2)
    hidden: tuple = (64, 64)  #: hidden layer widths of actor and critics
    activation: str = "relu"  #: hidden activation
    layer_norm: bool = False  #: layer norm on hidden layers
    out_init: float = 3e-3  #: output layers initialised U(±out_init), bias 0
    buffer_size: int = 1_000_000  #: replay capacity (capped at the run's timesteps)
    warmup_steps: int = 1000  #: first env steps act uniformly at random (updates already run)
    rollout_steps: int = 1  #: env steps per cycle
    train_steps: int = 1  #: gradient updates per cycle
    obs_clip: float = 5.0  #: clip of normalized observations
    normalize_obs: bool = False  #: running mean/std observation normalization (as D3PG's)
    adam_beta1: float = 0.9  #: Adam β1
    adam_beta2: float = 0.999  #: Adam β2
    adam_eps: float = 1e-8  #: Adam ε (added outside the square root)

    def validate(self):
        require(d3pg.actor_critic_checks(self) + [
            (self.actor_lr > 0 and self.critic_lr > 0 and self.alpha_lr >= 0,
             "actor_lr and critic_lr must be > 0, alpha_lr >= 0"),
            (self.init_alpha > 0, "init_alpha must be > 0"),
            (self.log_std_min < self.log_std_max, "log_std_min must be < log_std_max"),
            (self.warmup_steps >= 0, "warmup_steps must be >= 0"),
        ])


@dataclass(frozen=True)
class SACConfig(HybridSACConfig):
    """SAC: hybrid SAC without the gradient-fitting terms."""

    w1: float = 0.0  #: fixed at 0 for SAC
    w2: float = 0.0  #: fixed at 0 for SAC

    def validate(self):
        super().validate()
        if self.w1 != 0 or self.w2 != 0:
            raise ConfigError("sac has no gradient-fitting terms (w1 = w2 = 0); use algo d3pg-sac")


# SAC's entries of the hyper-parameter vectors, after D3PG's (whose indices the shared kernels
# read: HP_GAMMA ... HP_EPS are 0..12, IP_BATCH ... IP_TASK are 0..9).
HP_ALPHA_LR, HP_TARGET_ENTROPY, HP_LOG_STD_MIN, HP_LOG_STD_MAX = 13, 14, 15, 16
N_HP = 17
IP_WARMUP = 10
N_IP = 11
# Scalars of the running agent (F_EPISODE_RETURN = 1 is D3PG's, kept for its start_episode).
F_CRITIC_LOSS, F_ACTOR_LOSS, F_ALPHA = 0, 2, 3

HALF_LOG_2PI = 0.5 * np.log(2.0 * np.pi)


class Nets(NamedTuple):
    theta: np.ndarray  # actor: [μ (m), ℓ (m)] heads
    phi1: np.ndarray  # twin critics Q_1, Q_2
    phi2: np.ndarray
    phi1_targ: np.ndarray  # target critics Q'_1, Q'_2
    phi2_targ: np.ndarray
    log_alpha: np.ndarray  # (1,) log α
    m_theta: np.ndarray  # Adam moments
    v_theta: np.ndarray
    m_phi1: np.ndarray
    v_phi1: np.ndarray
    m_phi2: np.ndarray
    v_phi2: np.ndarray
    m_alpha: np.ndarray
    v_alpha: np.ndarray
    l2_ranges: np.ndarray  # the critics' hidden weight matrices (d3pg.hidden_weight_ranges)


class Critic(NamedTuple):
    """One critic as :func:`fastd3pg.control.d3pg.critic_gradient` reads it."""

    phi: np.ndarray
    l2_ranges: np.ndarray


class Stats(NamedTuple):
    obs: np.ndarray  # running mean/std of stored states (fastd3pg.nn.normalizer layout)
    ret: np.ndarray  # unused return statistics (no PopArt), read by the shared kernels
    counters: np.ndarray  # int64, d3pg.C_*
    scalars: np.ndarray  # float64, F_*
    state: np.ndarray  # the env's current state
    rng: np.ndarray  # training stream
    eval_rng: np.ndarray  # evaluation stream


class ActWork(NamedTuple):
    """What :func:`fastd3pg.control.d3pg.act` needs to run one network on one state."""

    x1: np.ndarray  # (1, n) normalized state
    mask2: np.ndarray  # (1, n)
    wa1: tuple  # workspace, batch 1
    a: np.ndarray  # (m,) action
    s_next: np.ndarray
    obs_mean: np.ndarray
    obs_std: np.ndarray
    ret: np.ndarray


class Work(NamedTuple):
    idx: np.ndarray
    S: np.ndarray  # batch states, normalized states in X[:, :n]
    A: np.ndarray
    S2: np.ndarray
    mask: np.ndarray  # 1.0 where s̃ is not clipped
    mask2: np.ndarray
    X: np.ndarray  # critic input [s̃, a]
    X2: np.ndarray  # critic input [s̃', a'] (targets) or [s̃, a_θ] (actor step)
    Y: np.ndarray  # TD targets
    GS: np.ndarray  # gradient targets
    GA: np.ndarray
    V: np.ndarray  # v = ∂y/∂s' / (γ (1 - done))
    E: np.ndarray  # noise ε of the actor step
    E2: np.ndarray  # noise ε' of the targets
    P: np.ndarray  # the actor's raw outputs [μ, ℓ]
    dP: np.ndarray  # their cotangents
    Api: np.ndarray  # squashed actions tanh(u)
    LP: np.ndarray  # log π of those actions
    Qmin: np.ndarray  # min_i Q_i
    Gmin: np.ndarray  # input gradient of the critic attaining the min
    dX: np.ndarray  # actor input cotangent
    dY: np.ndarray
    H: np.ndarray
    dA: np.ndarray
    dS: np.ndarray
    dphi: np.ndarray
    dtheta: np.ndarray
    wa: tuple  # actor workspace, batch N
    wc: tuple  # critic workspaces, batch N
    wc2: tuple
    act1: ActWork  # the stochastic actor on one state
    s_next: np.ndarray
    J_s: np.ndarray
    J_a: np.ndarray
    dr_ds: np.ndarray
    dr_da: np.ndarray
    obs_mean: np.ndarray
    obs_std: np.ndarray
    ret: np.ndarray  # (0, 1): no PopArt


# -- the squashed Gaussian -----------------------------------------------------------------------
@jit
def _softplus(x):
    return max(x, 0.0) + np.log1p(np.exp(-abs(x)))


@jit
def squash(P, E, lo, hi, A, LP):
    """Actions ``A = tanh(μ + σ ε)`` and ``LP = log π(A|s)`` from the actor's raw outputs ``P``
    (``[μ, ℓ]``, B × 2m) and the noise ``E`` (B × m)."""
    B, m = E.shape
    for b in range(B):
        lp = 0.0
        for j in range(m):
            log_sigma = lo + 0.5 * (hi - lo) * (np.tanh(P[b, m + j]) + 1.0)
            u = P[b, j] + np.exp(log_sigma) * E[b, j]
            A[b, j] = np.tanh(u)
            log1m_tanh2 = 2.0 * (np.log(2.0) - u - _softplus(-2.0 * u))
            lp += -0.5 * E[b, j] * E[b, j] - HALF_LOG_2PI - log_sigma - log1m_tanh2
        LP[b] = lp


@jit
def squash_vjp(P, E, lo, hi, A, dA, c_lp, dP):
    """Cotangent ``dP`` of the raw outputs for the objective ``Σ_b <dA_b, A_b> + c_lp LP_b``
    (ε fixed; ``A`` from :func:`squash`): ``ū = (1 - a²) ā + 2 c_lp a``, ``μ̄ = ū``,
    ``ℓ̄ = (ū σ ε - c_lp) (hi - lo)/2 (1 - tanh² ℓ)``."""
    B, m = E.shape
    for b in range(B):
        for j in range(m):
            t = np.tanh(P[b, m + j])
            sigma = np.exp(lo + 0.5 * (hi - lo) * (t + 1.0))
            a = A[b, j]
            ub = (1.0 - a * a) * dA[b, j] + 2.0 * c_lp * a
            dP[b, j] = ub
            dP[b, m + j] = (ub * sigma * E[b, j] - c_lp) * 0.5 * (hi - lo) * (1.0 - t * t)


@jit
def draw_normal(rng, E):
    for b in range(E.shape[0]):
        for j in range(E.shape[1]):
            E[b, j] = _rng.normal(rng)


@jit
def twin_min(spec_c, phi1, phi2, X, wc1, wc2, grads, Qmin, Gmin):
    """``Qmin = min(Q_1(X), Q_2(X))`` per row and, with ``grads``, the input gradient of the
    critic attaining it (critic 1 on ties)."""
    if grads:
        Q1, G1 = nnk.forward_input_grad(spec_c, phi1, X, wc1)
        Q2, G2 = nnk.forward_input_grad(spec_c, phi2, X, wc2)
    else:
        Q1 = nnk.forward(spec_c, phi1, X, wc1)
        Q2 = nnk.forward(spec_c, phi2, X, wc2)
    for b in range(X.shape[0]):
        first = Q1[b, 0] <= Q2[b, 0]
        Qmin[b] = Q1[b, 0] if first else Q2[b, 0]
        if grads:
            Gmin[b] = G1[b] if first else G2[b]


# -- eq. 2 ----------------------------------------------------------------------------------------
# -- one update -----------------------------------------------------------------------------------
@jit
def soft_targets(spec_a, spec_c, nets, hp, ip, buf, work):
    """The soft TD target ``y`` into ``work.Y`` for the transitions ``work.idx``, with the noise
    ``work.E2``; for hybrid SAC also ``v`` (``work.V``) and ``g_s``, ``g_a`` (``work.GS``,
    ``work.GA``), all in raw coordinates. Needs fresh moments in ``work``."""
    N, n = work.S2.shape
    lo, hi = hp[HP_LOG_STD_MIN], hp[HP_LOG_STD_MAX]
    alpha = np.exp(nets.log_alpha[0])
    grads = ip[IP_GRADS] == 1
    for b in range(N):
        work.S2[b] = buf.s_next[work.idx[b]]
    Xs2 = work.X2[:, :n]
    normalize_states(work.S2, work, hp[HP_OBS_CLIP], Xs2, work.mask2)
    work.P[:] = nnk.forward(spec_a, nets.theta, Xs2, work.wa)
    squash(work.P, work.E2, lo, hi, work.Api, work.LP)  # a' = tanh(μ(s') + σ(s') ε')
    work.X2[:, n:] = work.Api
    twin_min(spec_c, nets.phi1_targ, nets.phi2_targ, work.X2, work.wc, work.wc2, grads,
             work.Qmin, work.Gmin)
    gamma = hp[HP_GAMMA]
    for b in range(N):
        i = work.idx[b]
        work.Y[b] = buf.r[i] + gamma * (1.0 - buf.done[i]) * (work.Qmin[b] - alpha * work.LP[b])
    if not grads:
        return
    # v = d/ds' [Q'_k - α log π] with ε' fixed: through a' and log σ into the actor's input.
    squash_vjp(work.P, work.E2, lo, hi, work.Api, work.Gmin[:, n:], -alpha, work.dP)
    nnk.input_vjp(spec_a, nets.theta, work.wa, work.dP, work.dX)
    std = work.obs_std
    for b in range(N):
        for j in range(n):
            work.V[b, j] = (work.Gmin[b, j] + work.dX[b, j]) * work.mask2[b, j] / (std[j] + 1e-8)
    gradient_targets(buf, work.idx, gamma, work.V, work.GS, work.GA)


@jit
def actor_gradient(spec_a, spec_c, nets, hp, work):
    """∂J/∂θ of the actor objective ``1/N Σ α log π(a_θ|s̃) - min_i Q_i(s̃, a_θ)`` into
    ``work.dtheta`` (noise ``work.E``, states ``work.X[:, :n]``); ``work.LP`` gets the
    log-probs; returns J."""
    N, n = work.S.shape
    lo, hi = hp[HP_LOG_STD_MIN], hp[HP_LOG_STD_MAX]
    alpha = np.exp(nets.log_alpha[0])
    Xs = work.X[:, :n]
    work.X2[:, :n] = Xs
    work.P[:] = nnk.forward(spec_a, nets.theta, Xs, work.wa)
    squash(work.P, work.E, lo, hi, work.Api, work.LP)
    work.X2[:, n:] = work.Api
    twin_min(spec_c, nets.phi1, nets.phi2, work.X2, work.wc, work.wc2, True, work.Qmin,
             work.Gmin)
    loss = 0.0
    for b in range(N):
        loss += (alpha * work.LP[b] - work.Qmin[b]) / N
        for j in range(work.dA.shape[1]):
            work.dA[b, j] = -work.Gmin[b, n + j] / N
    squash_vjp(work.P, work.E, lo, hi, work.Api, work.dA, alpha / N, work.dP)
    nnk.param_vjp(spec_a, nets.theta, work.wa, work.dP, work.dtheta)
    return loss


@jit
def alpha_gradient(nets, hp, work):
    """``∂/∂ log α`` of ``-α 1/N Σ (log π + H̄)`` with the log-probs in ``work.LP``."""
    N = work.LP.shape[0]
    alpha = np.exp(nets.log_alpha[0])
    acc = 0.0
    for b in range(N):
        acc += work.LP[b] + hp[HP_TARGET_ENTROPY]
    return -alpha * acc / N


@jit
def update(spec_a, spec_c, nets, stats, hp, ip, buf, work, dalpha):
    """One SAC update on a fresh minibatch: critics, actor, temperature, targets. Returns the
    mean of the two critics' losses."""
    replay.sample_indices(buf, stats.rng, work.idx)
    refresh_moments(stats, work, ip[IP_NORM_OBS] == 1, False)
    draw_normal(stats.rng, work.E2)
    draw_normal(stats.rng, work.E)
    soft_targets(spec_a, spec_c, nets, hp, ip, buf, work)
    stats.counters[C_ADAM_T] += 1
    t = stats.counters[C_ADAM_T]
    b1, b2, eps = hp[HP_B1], hp[HP_B2], hp[HP_EPS]
    lr = hp[HP_CRITIC_LR]
    loss1 = d3pg.critic_gradient(spec_c, Critic(nets.phi1, nets.l2_ranges), stats, hp, ip, buf, work)
    adam_step(nets.phi1, work.dphi, nets.m_phi1, nets.v_phi1, t, lr, b1, b2, eps)
    loss2 = d3pg.critic_gradient(spec_c, Critic(nets.phi2, nets.l2_ranges), stats, hp, ip, buf, work)
    adam_step(nets.phi2, work.dphi, nets.m_phi2, nets.v_phi2, t, lr, b1, b2, eps)
    stats.scalars[F_ACTOR_LOSS] = actor_gradient(spec_a, spec_c, nets, hp, work)
    adam_step(nets.theta, work.dtheta, nets.m_theta, nets.v_theta, t, hp[HP_ACTOR_LR], b1, b2,
              eps)
    dalpha[0] = alpha_gradient(nets, hp, work)
    adam_step(nets.log_alpha, dalpha, nets.m_alpha, nets.v_alpha, t, hp[HP_ALPHA_LR], b1, b2, eps)
    stats.scalars[F_ALPHA] = np.exp(nets.log_alpha[0])
    polyak(nets.phi1_targ, nets.phi1, hp[HP_TAU])
    polyak(nets.phi2_targ, nets.phi2, hp[HP_TAU])
    stats.counters[C_UPDATES] += 1
    return 0.5 * (loss1 + loss2)


# -- the compiled loop ----------------------------------------------------------------------------
@jit
def act_stochastic(spec_a, theta, stats, hp, ip, work, s):
    """``work.act1.a``: a sample of π(·|s̃)."""
    w = work.act1
    w.x1[0, :] = s
    refresh_moments(stats, w, ip[IP_NORM_OBS] == 1, False)
    normalize_states(w.x1, w, hp[HP_OBS_CLIP], w.x1, w.mask2)
    Y = nnk.forward(spec_a, theta, w.x1, w.wa1)
    m = w.a.shape[0]
    lo, hi = hp[HP_LOG_STD_MIN], hp[HP_LOG_STD_MAX]
    for j in range(m):
        log_sigma = lo + 0.5 * (hi - lo) * (np.tanh(Y[0, m + j]) + 1.0)
        w.a[j] = np.tanh(Y[0, j] + np.exp(log_sigma) * _rng.normal(stats.rng))


@jit
def train_period(n_steps, p, spec_a, spec_c, nets, stats, hp, ip, buf, work, dalpha):
    """``n_steps`` env steps of SAC: uniform random actions for the first ``warmup_steps``, then
    samples of π; every ``rollout_steps`` env steps, ``train_steps`` updates once a batch is
    stored. Returns the last critic loss."""
    task = ip[IP_TASK]
    m = work.act1.a.shape[0]
    a = work.act1.a
    for _ in range(n_steps):
        s = stats.state
        if stats.counters[C_TOTAL] < ip[IP_WARMUP]:
            for j in range(m):
                a[j] = 2.0 * _rng.uniform(stats.rng) - 1.0
        else:
            act_stochastic(spec_a, nets.theta, stats, hp, ip, work, s)
        if ip[IP_GRADS] == 1:
            r, terminated = dispatch.step_jac(task, p, s, a, work.s_next, work.J_s, work.J_a,
                                              work.dr_ds, work.dr_da)
        else:
            r, terminated = dispatch.step(task, p, s, a, work.s_next)
        replay.add(buf, s, a, r, work.s_next, terminated, work.J_s, work.J_a,
                   work.dr_ds, work.dr_da)
        if ip[IP_NORM_OBS] == 1:
            normalizer_update(stats.obs, s.reshape((1, s.shape[0])))
        stats.counters[C_TOTAL] += 1
        stats.counters[C_EPISODE_T] += 1
        stats.scalars[F_EPISODE_RETURN] += r
        s[:] = work.s_next
        if terminated or stats.counters[C_EPISODE_T] >= ip[IP_HORIZON]:
            d3pg.start_episode(p, nets, stats, ip)
        if stats.counters[C_TOTAL] % ip[IP_ROLLOUT] == 0 and buf.pos[0] >= ip[IP_BATCH]:
            for _ in range(ip[IP_TRAIN]):
                stats.scalars[F_CRITIC_LOSS] = update(spec_a, spec_c, nets, stats, hp, ip, buf,
                                                      work, dalpha)
    return stats.scalars[F_CRITIC_LOSS]


# -- the Python shell -----------------------------------------------------------------------------
class DeterministicActor(NamedTuple):
    theta: np.ndarray  # the mean network's parameters (what d3pg.evaluate reads)


class HybridSACAgent:
    """Holds the arrays of a (hybrid) SAC run and calls the compiled loop (the training
    driver's interface, as :class:`fastd3pg.control.d3pg.D3PGAgent`)."""

    config_class = HybridSACConfig

    def __init__(self, env, config, seed: int, total_steps: int | None = None):
        self.env, self.config = env, config
        c = config
        n, m = env.state_dim, env.action_dim
        self.actor = MLP([n, *c.hidden, 2 * m], activation=c.activation,
                         output_activation="linear", layer_norm=c.layer_norm)
        self.mean_actor = MLP([n, *c.hidden, m], activation=c.activation,
                              output_activation="tanh", layer_norm=c.layer_norm)
        self.critic = MLP([n + m, *c.hidden, 1], activation=c.activation,
                          output_activation="linear", layer_norm=c.layer_norm)
        seeds = np.random.SeedSequence(seed).generate_state(5)
        theta = self.actor.init(seed=int(seeds[0]), out_scale=c.out_init)
        phi1 = self.critic.init(seed=int(seeds[1]), out_scale=c.out_init)
        phi2 = self.critic.init(seed=int(seeds[2]), out_scale=c.out_init)
        z = np.zeros_like
        self.nets = Nets(
            theta, phi1, phi2, phi1.copy(), phi2.copy(), np.array([np.log(c.init_alpha)]),
            z(theta), z(theta), z(phi1), z(phi1), z(phi2), z(phi2), np.zeros(1), np.zeros(1),
            d3pg.hidden_weight_ranges(self.critic),
        )
        self.stats = Stats(
            np.zeros(2 * n + 1), np.zeros(3), np.zeros(4, dtype=np.int64),
            np.array([0.0, 0.0, 0.0, c.init_alpha]), np.zeros(n),
            _rng.make_rng(int(seeds[3])), _rng.make_rng(int(seeds[4])),
        )
        capacity = c.buffer_size if total_steps is None else min(c.buffer_size, total_steps)
        grads = c.w1 > 0 or c.w2 > 0
        self.buf = replay.make_replay(capacity, n, m, with_jacobians=grads)
        B = c.batch_size

        def act_work(net):
            return ActWork(np.zeros((1, n)), np.zeros((1, n)), net.workspace(1), np.zeros(m),
                           np.zeros(n), np.zeros(n), np.ones(n), np.array([0.0, 1.0]))

        self.work = Work(
            np.zeros(B, dtype=np.int64), np.zeros((B, n)), np.zeros((B, m)), np.zeros((B, n)),
            np.zeros((B, n)), np.zeros((B, n)), np.zeros((B, n + m)), np.zeros((B, n + m)),
            np.zeros(B), np.zeros((B, n)), np.zeros((B, m)), np.zeros((B, n)),
            np.zeros((B, m)), np.zeros((B, m)), np.zeros((B, 2 * m)), np.zeros((B, 2 * m)),
            np.zeros((B, m)), np.zeros(B), np.zeros(B), np.zeros((B, n + m)), np.zeros((B, n)),
            np.zeros((B, 1)), np.zeros((B, n + m)), np.zeros((B, m)), np.zeros((B, n)),
            z(phi1), z(theta), self.actor.workspace(B), self.critic.workspace(B),
            self.critic.workspace(B), act_work(self.actor), np.zeros(n), np.zeros((n, n)),
            np.zeros((n, m)), np.zeros(n), np.zeros(m), np.zeros(n), np.ones(n),
            np.array([0.0, 1.0]),
        )
        self.eval_work = act_work(self.mean_actor)
        self.dalpha = np.zeros(1)
        hp = np.zeros(N_HP)
        hp[[HP_GAMMA, HP_TAU, HP_ACTOR_LR, HP_CRITIC_LR, HP_L2, HP_W1, HP_W2, HP_OBS_CLIP]] = (
            c.gamma, c.tau, c.actor_lr, c.critic_lr, c.critic_l2, c.w1, c.w2,
            c.obs_clip if c.normalize_obs else np.inf)  # no clip on raw states (policy.npz's)
        hp[[HP_B1, HP_B2, HP_EPS]] = c.adam_beta1, c.adam_beta2, c.adam_eps
        hp[[HP_ALPHA_LR, HP_TARGET_ENTROPY, HP_LOG_STD_MIN, HP_LOG_STD_MAX]] = (
            c.alpha_lr, c.target_entropy * m, c.log_std_min, c.log_std_max)
        self.hp = hp
        ip = np.zeros(N_IP, dtype=np.int64)
        ip[[IP_BATCH, IP_ROLLOUT, IP_TRAIN, IP_COSINE, IP_NORM_OBS, IP_POPART]] = (
            B, c.rollout_steps, c.train_steps, int(c.reg == "cosine"), int(c.normalize_obs), 0)
        ip[[IP_GRADS, IP_HORIZON, IP_TASK, IP_WARMUP]] = (
            int(grads), env.horizon, env.task_id, c.warmup_steps)
        self.ip = ip
        d3pg.start_episode(env.params, self.nets, self.stats, self.ip)

    @property
    def timesteps(self) -> int:
        return int(self.stats.counters[C_TOTAL])

    @property
    def alpha(self) -> float:
        return float(np.exp(self.nets.log_alpha[0]))

    def train(self, n_steps: int) -> float:
        return train_period(n_steps, self.env.params, self.actor.spec, self.critic.spec,
                            self.nets, self.stats, self.hp, self.ip, self.buf, self.work,
                            self.dalpha)

    def mean_actor_params(self) -> np.ndarray:
        """Parameters of ``mean_actor`` (s ↦ tanh(μ(s))): the actor's hidden layers and the
        mean columns of its output layer."""
        m = self.env.action_dim
        w0, w1, b0, b1 = self.actor.output_layer_slices()
        W = self.nets.theta[w0:w1].reshape(-1, 2 * m)
        return np.concatenate([self.nets.theta[:w0], W[:, :m].ravel(), self.nets.theta[b0:b0 + m]])

    def evaluate(self) -> float:
        return d3pg.evaluate(self.env.params, self.mean_actor.spec,
                             DeterministicActor(self.mean_actor_params()), self.stats, self.hp,
                             self.ip, self.eval_work)

    def finite(self) -> bool:
        return bool(np.isfinite(self.stats.scalars[F_CRITIC_LOSS])
                    and all(np.all(np.isfinite(x)) for x in self.nets[:6]))

    def state_arrays(self) -> dict:
        return d3pg.group_arrays({"nets": self.nets, "stats": self.stats, "buf": self.buf})

    def load_state_arrays(self, arrays: dict):
        d3pg.load_group_arrays({"nets": self.nets, "stats": self.stats, "buf": self.buf}, arrays)

    def policy_arrays(self) -> dict:
        refresh_moments(self.stats, self.eval_work, self.config.normalize_obs, False)
        return {
            "env": np.array(self.env.name), "sizes": np.array(self.mean_actor.sizes),
            "activation": np.array(self.config.activation),
            "output_activation": np.array("tanh"),
            "layer_norm": np.array(self.config.layer_norm),
            "params": self.mean_actor_params(),
            "obs_mean": self.eval_work.obs_mean.copy(), "obs_std": self.eval_work.obs_std.copy(),
            "obs_clip": np.array(self.config.obs_clip if self.config.normalize_obs else np.inf),
        }


class SACAgent(HybridSACAgent):
    """SAC: the same agent with ``w1 = w2 = 0`` (no Jacobians stored, no double backprop)."""

    config_class = SACConfig
