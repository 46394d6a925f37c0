"""SAC (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications") and hybrid SAC
(``d3pg-sac``: the paper's eq. 2 gradient-fitting term added to each of SAC's critics, paper
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

Hybrid SAC fits each critic to the gradients of its target as well (the paper's eq. 2 loss, with the
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

Shared with the other methods (:mod:`fastd3pg.control.core`): the observation normalization
(off by default for SAC, as in Haarnoja et al.), eq. 2, the critic loss and its gradient with
double backprop (called once per critic with that critic's parameters), episode starts and the
deterministic evaluation episode. There is no PopArt in SAC: the critics' loss sees
``μ_Q, σ_Q = 0, 1``.

The deterministic action is ``tanh(μ(s̃))``: the mean head alone is an MLP with a tanh output,
whose parameters are the actor's hidden layers plus the mean columns of its output layer
(:meth:`SACAgent.mean_actor_params`); evaluation and ``policy.npz`` both use that network.
"""

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from fastd3pg import rng as _rng
from fastd3pg._jit import jit, unit
from fastd3pg.control import core, replay
from fastd3pg.control.configio import ConfigError, require
from fastd3pg.linalg import copy, gather_rows
from fastd3pg.nn import MLP, adam_step, polyak
from fastd3pg.nn import kernels as nnk
from fastd3pg.policy import make_policy_arrays


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
        require(core.actor_critic_checks(self) + [
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


HALF_LOG_2PI = 0.5 * np.log(2.0 * np.pi)


class Settings(NamedTuple):
    """:class:`HybridSACConfig` as the compiled code reads it (built by :func:`make_settings`)."""

    task: core.Task
    obs: core.Normalization
    loss: core.CriticLoss
    adam: core.AdamSettings
    gamma: float
    tau: float
    actor_lr: float
    critic_lr: float
    alpha_lr: float
    target_entropy: float  # H̄ = target_entropy · m
    log_std_min: float
    log_std_max: float
    batch_size: int
    rollout_steps: int
    train_steps: int
    warmup_steps: int


def make_settings(config, env) -> Settings:
    c = config
    return Settings(
        task=core.task_settings(env), obs=core.normalization_settings(c),
        loss=core.critic_loss_settings(c), adam=core.adam_settings(c), gamma=float(c.gamma),
        tau=float(c.tau), actor_lr=float(c.actor_lr), critic_lr=float(c.critic_lr),
        alpha_lr=float(c.alpha_lr), target_entropy=float(c.target_entropy * env.action_dim),
        log_std_min=float(c.log_std_min), log_std_max=float(c.log_std_max),
        batch_size=int(c.batch_size), rollout_steps=int(c.rollout_steps),
        train_steps=int(c.train_steps), warmup_steps=int(c.warmup_steps),
    )


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
    l2_ranges: np.ndarray  # the critics' hidden weight matrices (core.hidden_weight_ranges)


class Stats(NamedTuple):
    """The running state of an agent (1-element arrays: see :mod:`fastd3pg.control.core`)."""

    obs: np.ndarray  # running mean/std of stored states (fastd3pg.nn.normalizer layout)
    total: np.ndarray  # env steps so far
    episode_t: np.ndarray  # steps in the current episode
    updates: np.ndarray  # updates so far
    adam_t: np.ndarray  # Adam's step count
    critic_loss: np.ndarray  # the last update's mean critic loss
    actor_loss: np.ndarray  # the last update's actor objective J(θ)
    state: np.ndarray  # the env's current state
    rng: np.ndarray  # training stream
    eval_rng: np.ndarray  # evaluation stream


class Work(NamedTuple):
    batch: core.Minibatch  # the update's arrays (X2: [s̃', a'] for targets, [s̃, a_θ] for the actor)
    E: np.ndarray  # noise ε of the actor step
    E2: np.ndarray  # noise ε' of the targets
    P: np.ndarray  # the actor's raw outputs [μ, ℓ]
    dP: np.ndarray  # their cotangents
    Api: np.ndarray  # squashed actions tanh(u)
    LP: np.ndarray  # log π of those actions
    Qmin: np.ndarray  # min_i Q_i
    Gmin: np.ndarray  # input gradient of the critic attaining the min
    dX: np.ndarray  # actor input cotangent
    act: core.ActWork  # the stochastic actor on one state, and its env step
    J_s: np.ndarray  # that step's derivatives
    J_a: np.ndarray
    dr_ds: np.ndarray
    dr_da: np.ndarray
    dalpha: np.ndarray  # (1,) ∂J/∂ log α


def make_work(actor, critic, batch_size: int) -> Work:
    """``actor`` has the two heads (``2m`` outputs)."""
    B, n = batch_size, actor.n_in
    m = critic.n_in - n
    z = np.zeros
    return Work(
        batch=core.make_minibatch(actor, critic, B), E=z((B, m)), E2=z((B, m)),
        P=z((B, 2 * m)), dP=z((B, 2 * m)), Api=z((B, m)), LP=z(B), Qmin=z(B), Gmin=z((B, n + m)),
        dX=z((B, n)), act=core.make_act_work(actor, n, m), J_s=z((n, n)), J_a=z((n, m)),
        dr_ds=z(n), dr_da=z(m), dalpha=z(1),
    )


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


# -- one update -----------------------------------------------------------------------------------
@unit
def soft_targets(spec_a, spec_c, nets, cfg, buf, work):
    """The soft TD target ``y`` into ``work.batch.Y`` for the transitions ``work.batch.idx``,
    with the noise ``work.E2``; for hybrid SAC also ``v`` (``V``) and ``g_s``, ``g_a`` (``GS``,
    ``GA``), all in raw coordinates. Needs fresh moments in ``work.batch``."""
    mb = work.batch
    N, n = mb.S2.shape
    lo, hi = cfg.log_std_min, cfg.log_std_max
    alpha = np.exp(nets.log_alpha[0])
    grads = cfg.loss.gradients
    gather_rows(mb.S2, buf.s_next, mb.idx)
    Xs2 = mb.X2[:, :n]
    core.normalize_states(mb.S2, mb.obs_mean, mb.obs_std, cfg.obs.clip, Xs2, mb.mask2)
    copy(work.P, nnk.forward(spec_a, nets.theta, Xs2, mb.wa))
    squash(work.P, work.E2, lo, hi, work.Api, work.LP)  # a' = tanh(μ(s') + σ(s') ε')
    copy(mb.X2[:, n:], work.Api)
    core.twin_min(spec_c, nets.phi1_targ, nets.phi2_targ, mb.X2, mb.wc, mb.wc2, grads,
                  work.Qmin, work.Gmin)
    gamma = cfg.gamma
    for b in range(N):
        i = mb.idx[b]
        mb.Y[b] = buf.r[i] + gamma * (1.0 - buf.done[i]) * (work.Qmin[b] - alpha * work.LP[b])
    if not grads:
        return
    # v = d/ds' [Q'_k - α log π] with ε' fixed: through a' and log σ into the actor's input.
    squash_vjp(work.P, work.E2, lo, hi, work.Api, work.Gmin[:, n:], -alpha, work.dP)
    nnk.input_vjp(spec_a, nets.theta, mb.wa, work.dP, work.dX)
    std = mb.obs_std
    for b in range(N):
        for j in range(n):
            mb.V[b, j] = (work.Gmin[b, j] + work.dX[b, j]) * mb.mask2[b, j] / (std[j] + core.STD_EPS)
    core.gradient_targets(buf, mb.idx, gamma, mb.V, mb.GS, mb.GA)


@unit
def actor_gradient(spec_a, spec_c, nets, cfg, work):
    """∂J/∂θ of the actor objective ``1/N Σ α log π(a_θ|s̃) - min_i Q_i(s̃, a_θ)`` into
    ``work.batch.dtheta`` (noise ``work.E``, states ``work.batch.X[:, :n]``); ``work.LP`` gets
    the log-probs; returns J."""
    mb = work.batch
    N, n = mb.S.shape
    lo, hi = cfg.log_std_min, cfg.log_std_max
    alpha = np.exp(nets.log_alpha[0])
    Xs = mb.X[:, :n]
    copy(mb.X2[:, :n], Xs)
    copy(work.P, nnk.forward(spec_a, nets.theta, Xs, mb.wa))
    squash(work.P, work.E, lo, hi, work.Api, work.LP)
    copy(mb.X2[:, n:], work.Api)
    core.twin_min(spec_c, nets.phi1, nets.phi2, mb.X2, mb.wc, mb.wc2, True, work.Qmin,
                  work.Gmin)
    loss = 0.0
    for b in range(N):
        loss += (alpha * work.LP[b] - work.Qmin[b]) / N
        for j in range(mb.dA.shape[1]):
            mb.dA[b, j] = -work.Gmin[b, n + j] / N
    squash_vjp(work.P, work.E, lo, hi, work.Api, mb.dA, alpha / N, work.dP)
    nnk.param_vjp(spec_a, nets.theta, mb.wa, work.dP, mb.dtheta)
    return loss


@jit
def alpha_gradient(nets, cfg, work):
    """``∂/∂ log α`` of ``-α 1/N Σ (log π + H̄)`` with the log-probs in ``work.LP``."""
    N = work.LP.shape[0]
    alpha = np.exp(nets.log_alpha[0])
    acc = 0.0
    for b in range(N):
        acc += work.LP[b] + cfg.target_entropy
    return -alpha * acc / N


@unit
def update(spec_a, spec_c, nets, stats, cfg, buf, work):
    """One SAC update on a fresh minibatch: critics, actor, temperature, targets. Returns the
    mean of the two critics' losses."""
    mb = work.batch
    replay.sample_indices(buf, stats.rng, mb.idx)
    core.obs_moments(stats.obs, cfg.obs.on, mb.obs_mean, mb.obs_std)
    draw_normal(stats.rng, work.E2)
    draw_normal(stats.rng, work.E)
    soft_targets(spec_a, spec_c, nets, cfg, buf, work)
    stats.adam_t[0] += 1
    t = stats.adam_t[0]
    b1, b2, eps = cfg.adam.beta1, cfg.adam.beta2, cfg.adam.eps
    lr = cfg.critic_lr
    cl, clip = cfg.loss, cfg.obs.clip
    loss1 = core.critic_gradient(spec_c, nets.phi1, nets.l2_ranges, cl, clip, 0.0, 1.0, buf, mb)
    adam_step(nets.phi1, mb.dphi, nets.m_phi1, nets.v_phi1, t, lr, b1, b2, eps)
    loss2 = core.critic_gradient(spec_c, nets.phi2, nets.l2_ranges, cl, clip, 0.0, 1.0, buf, mb)
    adam_step(nets.phi2, mb.dphi, nets.m_phi2, nets.v_phi2, t, lr, b1, b2, eps)
    stats.actor_loss[0] = actor_gradient(spec_a, spec_c, nets, cfg, work)
    adam_step(nets.theta, mb.dtheta, nets.m_theta, nets.v_theta, t, cfg.actor_lr, b1, b2, eps)
    work.dalpha[0] = alpha_gradient(nets, cfg, work)
    adam_step(nets.log_alpha, work.dalpha, nets.m_alpha, nets.v_alpha, t, cfg.alpha_lr, b1, b2,
              eps)
    polyak(nets.phi1_targ, nets.phi1, cfg.tau)
    polyak(nets.phi2_targ, nets.phi2, cfg.tau)
    stats.updates[0] += 1
    return 0.5 * (loss1 + loss2)


# -- the compiled loop ----------------------------------------------------------------------------
@jit
def act_stochastic(spec_a, theta, stats, cfg, w, s):
    """``w.a``: a sample of π(·|s̃)."""
    core.load_state(stats.obs, cfg.obs, w, s)
    Y = nnk.forward(spec_a, theta, w.x, w.net)
    m = w.a.shape[0]
    lo, hi = cfg.log_std_min, cfg.log_std_max
    for j in range(m):
        log_sigma = lo + 0.5 * (hi - lo) * (np.tanh(Y[0, m + j]) + 1.0)
        w.a[j] = np.tanh(Y[0, j] + np.exp(log_sigma) * _rng.normal(stats.rng))


@jit
def train_period(n_steps, p, spec_a, spec_c, nets, stats, cfg, buf, work):
    """``n_steps`` env steps of SAC: uniform random actions for the first ``warmup_steps``, then
    samples of π; every ``rollout_steps`` env steps, ``train_steps`` updates once a batch is
    stored. Returns the last critic loss."""
    w = work.act
    a = w.a
    m = a.shape[0]
    for _ in range(n_steps):
        s = stats.state
        if stats.total[0] < cfg.warmup_steps:
            for j in range(m):
                a[j] = 2.0 * _rng.uniform(stats.rng) - 1.0
        else:
            act_stochastic(spec_a, nets.theta, stats, cfg, w, s)
        core.step_and_store(p, cfg.task, cfg.obs, cfg.loss.gradients, stats, w, buf, work.J_s,
                            work.J_a, work.dr_ds, work.dr_da)
        if stats.total[0] % cfg.rollout_steps == 0 and buf.pos[0] >= cfg.batch_size:
            for _ in range(cfg.train_steps):
                stats.critic_loss[0] = update(spec_a, spec_c, nets, stats, cfg, buf, work)
    return stats.critic_loss[0]


# -- the Python shell -----------------------------------------------------------------------------
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
            theta=theta, phi1=phi1, phi2=phi2, phi1_targ=phi1.copy(), phi2_targ=phi2.copy(),
            log_alpha=np.array([np.log(c.init_alpha)]), m_theta=z(theta), v_theta=z(theta),
            m_phi1=z(phi1), v_phi1=z(phi1), m_phi2=z(phi2), v_phi2=z(phi2),
            m_alpha=np.zeros(1), v_alpha=np.zeros(1),
            l2_ranges=core.hidden_weight_ranges(self.critic),
        )
        self.stats = Stats(
            obs=np.zeros(2 * n + 1), total=core.counter(), episode_t=core.counter(),
            updates=core.counter(), adam_t=core.counter(), critic_loss=core.scalar(),
            actor_loss=core.scalar(), state=np.zeros(n), rng=_rng.make_rng(int(seeds[3])),
            eval_rng=_rng.make_rng(int(seeds[4])),
        )
        self.settings = make_settings(c, env)
        self.buf = replay.make_replay(core.replay_capacity(c, total_steps), n, m,
                                      with_jacobians=self.settings.loss.gradients)
        self.work = make_work(self.actor, self.critic, c.batch_size)
        self.eval_work = core.make_act_work(self.mean_actor, n, m)
        core.start_episode(self.settings.task.kernels, env.params, self.stats.rng,
                           self.stats.state, self.stats.episode_t)

    @property
    def timesteps(self) -> int:
        return int(self.stats.total[0])

    @property
    def alpha(self) -> float:
        return float(np.exp(self.nets.log_alpha[0]))

    def train(self, n_steps: int) -> float:
        return train_period(n_steps, self.env.params, *core.loop_arguments(self))

    def mean_actor_params(self) -> np.ndarray:
        """Parameters of ``mean_actor`` (s ↦ tanh(μ(s))): the actor's hidden layers and the
        mean columns of its output layer."""
        m = self.env.action_dim
        w0, w1, b0, b1 = self.actor.output_layer_slices()
        W = self.nets.theta[w0:w1].reshape(-1, 2 * m)
        return np.concatenate([self.nets.theta[:w0], W[:, :m].ravel(), self.nets.theta[b0:b0 + m]])

    def evaluate(self) -> float:
        s = self.settings
        return core.evaluate(self.env.params, self.mean_actor.spec, self.mean_actor_params(),
                             s.task, s.obs, self.stats.obs, self.stats.eval_rng, self.eval_work)

    def compile_plan(self) -> list:
        """As :meth:`fastd3pg.control.d3pg.D3PGAgent.compile_plan`."""
        a, c, nets, stats, cfg, buf, w = core.loop_arguments(self)
        return [
            core.twin_critic_gradient_call(self),
            (soft_targets, (a, c, nets, cfg, buf, w)),
            (actor_gradient, (a, c, nets, cfg, w)),
            core.step_and_store_call(self, cfg.loss.gradients),
        ]

    def finite(self) -> bool:
        return bool(np.isfinite(self.stats.critic_loss[0])
                    and all(np.all(np.isfinite(x)) for x in self.nets[:6]))

    def state_arrays(self) -> dict:
        return core.group_arrays({"nets": self.nets, "stats": self.stats, "buf": self.buf})

    def load_state_arrays(self, arrays: dict):
        core.load_group_arrays({"nets": self.nets, "stats": self.stats, "buf": self.buf}, arrays)

    def policy_arrays(self) -> dict:
        obs = self.settings.obs
        mean, std = core.current_obs_moments(self.stats.obs, obs.on)
        return make_policy_arrays(self.env.name, self.mean_actor, self.mean_actor_params(), mean,
                                  std, obs.clip)


class SACAgent(HybridSACAgent):
    """SAC: the same agent with ``w1 = w2 = 0`` (no Jacobians stored, no double backprop)."""

    config_class = SACConfig
