"""TD3 (Fujimoto et al. 2018, "Addressing Function Approximation Error in Actor-Critic Methods")
and hybrid TD3 (``d3pg-td3``: the paper's eq. 2 gradient-fitting term added to each of TD3's
critics).

TD3, as compiled here (one update per env step once a minibatch is stored; the first
``warmup_steps`` actions are uniformly random, the later ones the actor's plus Gaussian noise):

    acting      a = clip(π_θ(s̃) + ε, ±1),  ε ~ N(0, σ_x² I)                  (σ_x: explore_noise)
    smoothing   a' = clip(π_θ'(s̃') + ε̃', ±1),  ε̃' = clip(ε', ±c),  ε' ~ N(0, σ_t² I)
                                                  (σ_t: target_noise, c: noise_clip)
    target      y = r + γ (1 - done) min_i Q'_i(s̃', a')                  (clipped double Q)
    critics     L(φ_i) = 1/N Σ (Q_i(s̃, a) - y)²                   for i = 1, 2 (twin critics)
    every d-th update (d: policy_delay), after the critics' step:
    actor       J(θ) = -1/N Σ Q_1(s̃, π_θ(s̃))                     (critic 1 only, as Fujimoto)
    targets     θ' ← τ θ + (1 - τ) θ',   φ'_i ← τ φ_i + (1 - τ) φ'_i

Hybrid TD3 fits each critic to the gradients of its target as well (the paper's eq. 2 loss, with
the same ``w1``, ``w2``, ``reg``). The target is differentiated with the smoothing noise ε̃'
held fixed, through the critic attaining the min and through the smoothed target action; the
clip of ``a'`` at ±1 has zero derivative where it is active:

    v   = d/ds' Q'_k(s̃', a'(s'))                                  (k: the critic attaining the min)
        = (∇_s̃ Q'_k + (∂π'/∂s̃')ᵀ (m' ⊙ ∇_a Q'_k)) ⊙ ∂s̃'/∂s',   m'_j = 1[|π'_j(s̃') + ε̃'_j| < 1]
    g_s = dr/ds + γ (1 - done) J_sᵀ v,   g_a = dr/da + γ (1 - done) J_aᵀ v          (eq. 2)

``γ (1 - done) v`` is then exactly ``∂y/∂s'`` with ε̃' fixed, and ``g_s``, ``g_a`` are ``∂y/∂s``,
``∂y/∂a`` through the simulator (tests/control/test_td3.py checks this by central differences).

Shared with the other methods (:mod:`fastd3pg.control.core`): the observation normalization
(off by default, as in Fujimoto et al.), eq. 2, the critic loss and its gradient with double
backprop (called once per critic), the twin-critic minimum, deterministic acting, episode starts
and the evaluation episode. There is no PopArt: the critics' loss sees ``μ_Q, σ_Q = 0, 1``.
The actor is D3PG's (:func:`fastd3pg.control.core.initial_actor`, the same initial parameters
for a seed); evaluation and ``policy.npz`` use it without noise.
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
class HybridTD3Config:
    """Settings of hybrid TD3; Fujimoto et al.'s TD3 where they apply, and this library's SAC
    (:class:`fastd3pg.control.sac.HybridSACConfig`) for networks, batch, warm-up and cadence, so
    that the methods differ only in the algorithm."""

    w1: float = 1.0  #: weight of the action-gradient term ‖∇_a Q_i - g_a‖² (each critic)
    w2: float = 1.0  #: weight of the state-gradient term ‖∇_s Q_i - g_s‖² (each critic)
    reg: str = "l2"  #: gradient-fitting loss: "l2" (squared error) or "cosine" (appendix A.1)
    gamma: float = 0.99  #: discount γ
    tau: float = 0.005  #: Polyak coefficient of the target actor and critics
    batch_size: int = 64  #: minibatch size N (SAC's here; Fujimoto et al. use 100)
    actor_lr: float = 3e-4  #: Adam learning rate of the actor
    critic_lr: float = 3e-4  #: Adam learning rate of both critics
    explore_noise: float = 0.1  #: std σ_x of the Gaussian exploration noise on actions
    target_noise: float = 0.2  #: std σ_t of the target policy smoothing noise
    noise_clip: float = 0.5  #: the smoothing noise is clipped to ±noise_clip
    policy_delay: int = 2  #: critic updates per actor and target update
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
            (self.actor_lr > 0 and self.critic_lr > 0, "learning rates must be > 0"),
            (self.explore_noise >= 0 and self.target_noise >= 0 and self.noise_clip >= 0,
             "explore_noise, target_noise and noise_clip must be >= 0"),
            (self.policy_delay >= 1, "policy_delay must be >= 1"),
            (self.warmup_steps >= 0, "warmup_steps must be >= 0"),
        ])


@dataclass(frozen=True)
class TD3Config(HybridTD3Config):
    """TD3: hybrid TD3 without the gradient-fitting terms."""

    w1: float = 0.0  #: fixed at 0 for TD3
    w2: float = 0.0  #: fixed at 0 for TD3

    def validate(self):
        super().validate()
        if self.w1 != 0 or self.w2 != 0:
            raise ConfigError("td3 has no gradient-fitting terms (w1 = w2 = 0); use algo d3pg-td3")


class Settings(NamedTuple):
    """:class:`HybridTD3Config` as the compiled code reads it (built by :func:`make_settings`)."""

    task: core.Task
    obs: core.Normalization
    loss: core.CriticLoss
    adam: core.AdamSettings
    gamma: float
    tau: float
    actor_lr: float
    critic_lr: float
    explore_noise: float
    target_noise: float
    noise_clip: float
    policy_delay: int
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
        explore_noise=float(c.explore_noise), target_noise=float(c.target_noise),
        noise_clip=float(c.noise_clip), policy_delay=int(c.policy_delay),
        batch_size=int(c.batch_size), rollout_steps=int(c.rollout_steps),
        train_steps=int(c.train_steps), warmup_steps=int(c.warmup_steps),
    )


class Nets(NamedTuple):
    theta: np.ndarray  # actor π
    theta_targ: np.ndarray  # target actor π'
    phi1: np.ndarray  # twin critics Q_1, Q_2
    phi2: np.ndarray
    phi1_targ: np.ndarray  # target critics Q'_1, Q'_2
    phi2_targ: np.ndarray
    m_theta: np.ndarray  # Adam moments
    v_theta: np.ndarray
    m_phi1: np.ndarray
    v_phi1: np.ndarray
    m_phi2: np.ndarray
    v_phi2: np.ndarray
    l2_ranges: np.ndarray  # the critics' hidden weight matrices (core.hidden_weight_ranges)


class Stats(NamedTuple):
    """The running state of an agent (1-element arrays: see :mod:`fastd3pg.control.core`)."""

    obs: np.ndarray  # running mean/std of stored states (fastd3pg.nn.normalizer layout)
    total: np.ndarray  # env steps so far
    episode_t: np.ndarray  # steps in the current episode
    updates: np.ndarray  # critic updates so far
    critic_adam_t: np.ndarray  # the critics' Adam step count (one per update)
    actor_adam_t: np.ndarray  # the actor's Adam step count (one per policy_delay updates)
    critic_loss: np.ndarray  # the last update's mean critic loss
    actor_loss: np.ndarray  # the last actor step's objective J(θ)
    state: np.ndarray  # the env's current state
    rng: np.ndarray  # training stream
    eval_rng: np.ndarray  # evaluation stream


class Work(NamedTuple):
    batch: core.Minibatch  # the update's arrays (X2: [s̃', a'] for targets, [s̃, π(s̃)] for actor)
    E2: np.ndarray  # clipped smoothing noise ε̃' of the targets
    keep2: np.ndarray  # m': 1.0 where the smoothed target action is not clipped at ±1
    Qmin: np.ndarray  # min_i Q'_i
    Gmin: np.ndarray  # input gradient of the target critic attaining the min
    act: core.ActWork  # the actor on one state, and its env step
    J_s: np.ndarray  # that step's derivatives
    J_a: np.ndarray
    dr_ds: np.ndarray
    dr_da: np.ndarray


def make_work(actor, critic, batch_size: int) -> Work:
    B, n, m = batch_size, actor.n_in, actor.n_out
    z = np.zeros
    return Work(
        batch=core.make_minibatch(actor, critic, B), E2=z((B, m)), keep2=z((B, m)), Qmin=z(B),
        Gmin=z((B, n + m)), act=core.make_act_work(actor, n, m), J_s=z((n, n)), J_a=z((n, m)),
        dr_ds=z(n), dr_da=z(m),
    )


# -- one update -----------------------------------------------------------------------------------
@jit
def smoothing_noise(rng, sigma, c, E):
    """``E = clip(σ ε, ±c)``, ``ε ~ N(0, 1)`` per entry (target policy smoothing)."""
    for b in range(E.shape[0]):
        for j in range(E.shape[1]):
            E[b, j] = min(max(sigma * _rng.normal(rng), -c), c)


@unit
def td_and_gradient_targets(spec_a, spec_c, nets, cfg, buf, work):
    """The clipped double-Q target ``y`` into ``work.batch.Y`` for the transitions
    ``work.batch.idx``, with the smoothing noise ``work.E2``; for hybrid TD3 also ``v`` (``V``)
    and ``g_s``, ``g_a`` (``GS``, ``GA``), all in raw coordinates. Needs fresh moments in
    ``work.batch``."""
    mb = work.batch
    N, n = mb.S2.shape
    m = work.E2.shape[1]
    grads = cfg.loss.gradients
    gather_rows(mb.S2, buf.s_next, mb.idx)
    Xs2 = mb.X2[:, :n]
    core.normalize_states(mb.S2, mb.obs_mean, mb.obs_std, cfg.obs.clip, Xs2, mb.mask2)
    A2 = nnk.forward(spec_a, nets.theta_targ, Xs2, mb.wa)  # π'(s̃')
    for b in range(N):  # a' = clip(π'(s̃') + ε̃', ±1)
        for j in range(m):
            a = A2[b, j] + work.E2[b, j]
            if a >= 1.0:
                mb.X2[b, n + j], work.keep2[b, j] = 1.0, 0.0
            elif a <= -1.0:
                mb.X2[b, n + j], work.keep2[b, j] = -1.0, 0.0
            else:
                mb.X2[b, n + j], work.keep2[b, j] = a, 1.0
    core.twin_min(spec_c, nets.phi1_targ, nets.phi2_targ, mb.X2, mb.wc, mb.wc2, grads,
                  work.Qmin, work.Gmin)
    gamma = cfg.gamma
    for b in range(N):
        i = mb.idx[b]
        mb.Y[b] = buf.r[i] + gamma * (1.0 - buf.done[i]) * work.Qmin[b]
    if not grads:
        return
    # v = d/ds' Q'_k(s̃', a'(s')) with ε̃' fixed: through a' (where unclipped) into π'.
    for b in range(N):
        for j in range(m):
            mb.dA[b, j] = work.Gmin[b, n + j] * work.keep2[b, j]
    nnk.input_vjp(spec_a, nets.theta_targ, mb.wa, mb.dA, mb.dS)
    std = mb.obs_std
    for b in range(N):
        for j in range(n):
            mb.V[b, j] = (work.Gmin[b, j] + mb.dS[b, j]) * mb.mask2[b, j] / (std[j] + core.STD_EPS)
    core.gradient_targets(buf, mb.idx, gamma, mb.V, mb.GS, mb.GA)


@unit
def actor_gradient(spec_a, spec_c, nets, mb):
    """∂J/∂θ of the actor objective ``J(θ) = -1/N Σ Q_1(s̃, π_θ(s̃))`` into ``mb.dtheta``
    (states ``mb.X[:, :n]``); returns J."""
    N, n = mb.S.shape
    Xs = mb.X[:, :n]
    copy(mb.X2[:, :n], Xs)
    copy(mb.X2[:, n:], nnk.forward(spec_a, nets.theta, Xs, mb.wa))
    Q, G = nnk.forward_input_grad(spec_c, nets.phi1, mb.X2, mb.wc)
    loss = 0.0
    for b in range(N):
        loss -= Q[b, 0] / N
        for j in range(mb.dA.shape[1]):
            mb.dA[b, j] = -G[b, n + j] / N
    nnk.param_vjp(spec_a, nets.theta, mb.wa, mb.dA, mb.dtheta)
    return loss


@unit
def update(spec_a, spec_c, nets, stats, cfg, buf, work):
    """One TD3 update on a fresh minibatch: both critics; every ``policy_delay``-th update also
    the actor (against the updated critic 1) and the targets. Returns the mean of the two
    critics' losses."""
    mb = work.batch
    replay.sample_indices(buf, stats.rng, mb.idx)
    core.obs_moments(stats.obs, cfg.obs.on, mb.obs_mean, mb.obs_std)
    smoothing_noise(stats.rng, cfg.target_noise, cfg.noise_clip, work.E2)
    td_and_gradient_targets(spec_a, spec_c, nets, cfg, buf, work)
    b1, b2, eps = cfg.adam.beta1, cfg.adam.beta2, cfg.adam.eps
    stats.critic_adam_t[0] += 1
    t = stats.critic_adam_t[0]
    lr = cfg.critic_lr
    cl, clip = cfg.loss, cfg.obs.clip
    loss1 = core.critic_gradient(spec_c, nets.phi1, nets.l2_ranges, cl, clip, 0.0, 1.0, buf, mb)
    adam_step(nets.phi1, mb.dphi, nets.m_phi1, nets.v_phi1, t, lr, b1, b2, eps)
    loss2 = core.critic_gradient(spec_c, nets.phi2, nets.l2_ranges, cl, clip, 0.0, 1.0, buf, mb)
    adam_step(nets.phi2, mb.dphi, nets.m_phi2, nets.v_phi2, t, lr, b1, b2, eps)
    stats.updates[0] += 1
    if stats.updates[0] % cfg.policy_delay == 0:  # delayed actor and target updates
        stats.actor_loss[0] = actor_gradient(spec_a, spec_c, nets, mb)  # mb.X holds s̃
        stats.actor_adam_t[0] += 1
        adam_step(nets.theta, mb.dtheta, nets.m_theta, nets.v_theta, stats.actor_adam_t[0],
                  cfg.actor_lr, b1, b2, eps)
        polyak(nets.theta_targ, nets.theta, cfg.tau)
        polyak(nets.phi1_targ, nets.phi1, cfg.tau)
        polyak(nets.phi2_targ, nets.phi2, cfg.tau)
    return 0.5 * (loss1 + loss2)


# -- the compiled loop ----------------------------------------------------------------------------
@jit
def explore(spec_a, theta, stats, cfg, w, s):
    """``w.a = clip(π(s̃) + ε, ±1)``, ``ε ~ N(0, explore_noise² I)``."""
    core.act(spec_a, theta, stats.obs, cfg.obs, w, s)
    for j in range(w.a.shape[0]):
        w.a[j] = min(max(w.a[j] + cfg.explore_noise * _rng.normal(stats.rng), -1.0), 1.0)


@jit
def train_period(n_steps, p, spec_a, spec_c, nets, stats, cfg, buf, work):
    """``n_steps`` env steps of TD3: uniform random actions for the first ``warmup_steps``, then
    the actor's with Gaussian noise; every ``rollout_steps`` env steps, ``train_steps`` updates
    once a batch is stored. Returns the last critic loss."""
    w = work.act
    a = w.a
    m = a.shape[0]
    for _ in range(n_steps):
        s = stats.state
        if stats.total[0] < cfg.warmup_steps:
            for j in range(m):
                a[j] = 2.0 * _rng.uniform(stats.rng) - 1.0
        else:
            explore(spec_a, nets.theta, stats, cfg, w, s)
        core.step_and_store(p, cfg.task, cfg.obs, cfg.loss.gradients, stats, w, buf, work.J_s,
                            work.J_a, work.dr_ds, work.dr_da)
        if stats.total[0] % cfg.rollout_steps == 0 and buf.pos[0] >= cfg.batch_size:
            for _ in range(cfg.train_steps):
                stats.critic_loss[0] = update(spec_a, spec_c, nets, stats, cfg, buf, work)
    return stats.critic_loss[0]


# -- the Python shell -----------------------------------------------------------------------------
class HybridTD3Agent:
    """Holds the arrays of a (hybrid) TD3 run and calls the compiled loop (the training
    driver's interface, as :class:`fastd3pg.control.d3pg.D3PGAgent`)."""

    config_class = HybridTD3Config

    def __init__(self, env, config, seed: int, total_steps: int | None = None):
        self.env, self.config = env, config
        c = config
        n, m = env.state_dim, env.action_dim
        self.actor, theta = core.initial_actor(env, c, seed)
        self.critic = MLP([n + m, *c.hidden, 1], activation=c.activation,
                          output_activation="linear", layer_norm=c.layer_norm)
        # The core's four seeds (actor, critic 1, training, evaluation), then critic 2's.
        seeds = np.random.SeedSequence(seed).generate_state(5)
        phi1 = self.critic.init(seed=int(seeds[1]), out_scale=c.out_init)
        phi2 = self.critic.init(seed=int(seeds[4]), out_scale=c.out_init)
        z = np.zeros_like
        self.nets = Nets(
            theta=theta, theta_targ=theta.copy(), phi1=phi1, phi2=phi2, phi1_targ=phi1.copy(),
            phi2_targ=phi2.copy(), m_theta=z(theta), v_theta=z(theta), m_phi1=z(phi1),
            v_phi1=z(phi1), m_phi2=z(phi2), v_phi2=z(phi2),
            l2_ranges=core.hidden_weight_ranges(self.critic),
        )
        self.stats = Stats(
            obs=np.zeros(2 * n + 1), total=core.counter(), episode_t=core.counter(),
            updates=core.counter(), critic_adam_t=core.counter(), actor_adam_t=core.counter(),
            critic_loss=core.scalar(), actor_loss=core.scalar(), state=np.zeros(n),
            rng=_rng.make_rng(int(seeds[2])), eval_rng=_rng.make_rng(int(seeds[3])),
        )
        self.settings = make_settings(c, env)
        self.buf = replay.make_replay(core.replay_capacity(c, total_steps), n, m,
                                      with_jacobians=self.settings.loss.gradients)
        self.work = make_work(self.actor, self.critic, c.batch_size)
        core.start_episode(self.settings.task.kernels, env.params, self.stats.rng,
                           self.stats.state, self.stats.episode_t)

    @property
    def timesteps(self) -> int:
        return int(self.stats.total[0])

    def train(self, n_steps: int) -> float:
        return train_period(n_steps, self.env.params, *core.loop_arguments(self))

    def evaluate(self) -> float:
        s = self.settings
        return core.evaluate(self.env.params, self.actor.spec, self.nets.theta, s.task, s.obs,
                             self.stats.obs, self.stats.eval_rng, self.work.act)

    def compile_plan(self) -> list:
        """As :meth:`fastd3pg.control.d3pg.D3PGAgent.compile_plan`."""
        a, c, nets, stats, cfg, buf, w = core.loop_arguments(self)
        return [
            core.twin_critic_gradient_call(self),
            (td_and_gradient_targets, (a, c, nets, cfg, buf, w)),
            (actor_gradient, (a, c, nets, w.batch)),
            core.step_and_store_call(self, cfg.loss.gradients),
            (core.act, (a, nets.theta, stats.obs, cfg.obs, w.act, stats.state)),
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
        return make_policy_arrays(self.env.name, self.actor, self.nets.theta, mean, std, obs.clip)

    def critic_snapshot(self) -> dict:
        """Copies of what a look at the critic in NumPy needs, as
        :meth:`fastd3pg.control.d3pg.D3PGAgent.critic_snapshot`: the critic is the first of the
        twins (the one the actor follows), ``phi_targ`` both target critics (the TD target is
        their minimum); no PopArt (``mu_q, sigma_q = 0, 1``)."""
        s, n = self.settings, self.nets
        mean, std = core.current_obs_moments(self.stats.obs, s.obs.on)
        return {"actor": self.actor, "critic": self.critic, "theta": n.theta.copy(),
                "theta_targ": n.theta_targ.copy(), "phi": n.phi1.copy(),
                "phi_targ": [n.phi1_targ.copy(), n.phi2_targ.copy()], "obs_mean": mean,
                "obs_std": std, "obs_clip": float(s.obs.clip), "mu_q": 0.0, "sigma_q": 1.0,
                "gamma": float(s.gamma), "replay": self.buf}


class TD3Agent(HybridTD3Agent):
    """TD3: the same agent with ``w1 = w2 = 0`` (no Jacobians stored, no double backprop)."""

    config_class = TD3Config
