"""D3PG (hybrid DDPG, Algorithm 1 of the paper) and DDPG (the same with ``w1 = w2 = 0``).

Reads like the paper's Algorithm 1; the comments give Algorithm 1's line numbers. On top of OpenAI
Baselines' DDPG (adaptive parameter-space noise, observation normalization, normalized Q with
PopArt rescaling, layer norm, critic L2), the replay buffer also stores each transition's
Jacobians and reward gradients, and the critic is fitted to the gradients of its TD target:

    a'  = π'(s'),   y = r + γ (1 - done) Q'(s', a')                          (TD target)
    v   = ∇_{s'} Q'(s', a') + (∂π'/∂s')ᵀ ∇_a Q'(s', a')                        (total along π')
    g_s = dr/ds + γ (1 - done) J_sᵀ v,   g_a = dr/da + γ (1 - done) J_aᵀ v     (gradient targets)
    L(φ) = 1/N Σ (Q - y)² + w1 ‖∇_a Q - g_a‖² + w2 ‖∇_s Q - g_s‖²  (+ critic L2)

Normalized coordinates. The networks see ``s̃ = clip((s - μ_s)/(σ_s + ε), ±c)`` (``ε =
core.STD_EPS``) and the critic outputs ``Q̃ = (Q - μ_Q)/σ_Q``. By the chain rule the value
target becomes ``(y - μ_Q)/σ_Q``, the state-gradient target ``(σ_s + ε) ⊙ g_s / σ_Q`` and the
action-gradient target ``g_a / σ_Q`` (actions are not normalized). Where the clip is active
``∂s̃/∂s = 0``: the critic's raw-state gradient is zero there whatever the network does, so
those components carry no gradient-fitting term, and ``v`` has zero components there too.

The pieces other methods share (normalization, eq. 2, the critic loss, acting, evaluation)
live in :mod:`fastd3pg.control.core`. Everything from acting to target updates runs inside one
compiled call per evaluation period (:func:`train_period`); nothing is allocated inside it.
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
from fastd3pg.nn.normalizer import normalizer_update
from fastd3pg.policy import make_policy_arrays


@dataclass(frozen=True)
class D3PGConfig:
    """Settings of D3PG; Baselines' DDPG defaults where the paper is silent."""

    w1: float = 1.0  #: weight of the action-gradient term ‖∇_a Q - g_a‖²
    w2: float = 1.0  #: weight of the state-gradient term ‖∇_s Q - g_s‖²
    reg: str = "l2"  #: gradient-fitting loss: "l2" (squared error) or "cosine" (appendix A.1)
    gamma: float = 0.99  #: discount γ
    tau: float = 0.01  #: Polyak coefficient of the target networks
    batch_size: int = 64  #: minibatch size N
    actor_lr: float = 1e-4  #: Adam learning rate of the actor
    critic_lr: float = 1e-3  #: Adam learning rate of the critic
    critic_l2: float = 1e-2  #: L2 coefficient on the critic's hidden weight matrices (Σ‖W‖²/2)
    hidden: tuple = (64, 64)  #: hidden layer widths of actor and critic
    activation: str = "relu"  #: hidden activation
    layer_norm: bool = True  #: layer norm on hidden layers (dense -> LayerNorm -> activation)
    out_init: float = 3e-3  #: output layers initialised U(±out_init), bias 0
    buffer_size: int = 1_000_000  #: replay capacity (capped at the run's timesteps)
    rollout_steps: int = 100  #: env steps per cycle
    train_steps: int = 50  #: gradient updates per cycle
    noise_init: float = 0.2  #: initial std of the actor's parameter-space noise
    noise_target: float = 0.2  #: desired action-space distance of the perturbed actor
    noise_adapt: float = 1.01  #: factor by which the noise std adapts
    noise_interval: int = 50  #: updates between noise adaptations
    obs_clip: float = 5.0  #: clip of normalized observations
    normalize_obs: bool = True  #: running mean/std observation normalization
    popart: bool = True  #: normalized Q with PopArt output rescaling
    adam_beta1: float = 0.9  #: Adam β1
    adam_beta2: float = 0.999  #: Adam β2
    adam_eps: float = 1e-8  #: Adam ε (added outside the square root)

    def validate(self):
        require(core.actor_critic_checks(self) + [
            (self.actor_lr > 0 and self.critic_lr > 0, "learning rates must be > 0"),
            (self.noise_init >= 0 and self.noise_target > 0 and self.noise_adapt >= 1,
             "noise_init >= 0, noise_target > 0 and noise_adapt >= 1 required"),
            (self.noise_interval >= 1, "noise_interval must be >= 1"),
        ])


@dataclass(frozen=True)
class DDPGConfig(D3PGConfig):
    """DDPG: D3PG without the gradient-fitting terms."""

    w1: float = 0.0  #: fixed at 0 for DDPG
    w2: float = 0.0  #: fixed at 0 for DDPG

    def validate(self):
        super().validate()
        if self.w1 != 0 or self.w2 != 0:
            raise ConfigError("ddpg has no gradient-fitting terms (w1 = w2 = 0); use algo d3pg")


class Settings(NamedTuple):
    """:class:`D3PGConfig` as the compiled code reads it (built by :func:`make_settings`)."""

    task: core.Task
    obs: core.Normalization
    loss: core.CriticLoss
    adam: core.AdamSettings
    gamma: float
    tau: float
    actor_lr: float
    critic_lr: float
    noise_target: float
    noise_adapt: float
    batch_size: int
    rollout_steps: int
    train_steps: int
    noise_interval: int
    popart: bool


def make_settings(config, env) -> Settings:
    c = config
    return Settings(
        task=core.task_settings(env), obs=core.normalization_settings(c),
        loss=core.critic_loss_settings(c), adam=core.adam_settings(c), gamma=float(c.gamma),
        tau=float(c.tau), actor_lr=float(c.actor_lr), critic_lr=float(c.critic_lr),
        noise_target=float(c.noise_target), noise_adapt=float(c.noise_adapt),
        batch_size=int(c.batch_size), rollout_steps=int(c.rollout_steps),
        train_steps=int(c.train_steps), noise_interval=int(c.noise_interval),
        popart=bool(c.popart),
    )


class Nets(NamedTuple):
    theta: np.ndarray  # actor π
    theta_targ: np.ndarray  # target actor π'
    theta_act: np.ndarray  # the perturbed actor acting this episode
    theta_probe: np.ndarray  # a perturbed copy used to measure the noise's effect
    phi: np.ndarray  # critic Q (outputs normalized Q̃)
    phi_targ: np.ndarray  # target critic Q'
    m_theta: np.ndarray  # Adam moments
    v_theta: np.ndarray
    m_phi: np.ndarray
    v_phi: np.ndarray
    noise_mask: np.ndarray  # 1.0 on actor weights and biases (not layer-norm parameters)
    l2_ranges: np.ndarray  # int64 (k, 2): [start, stop) of each hidden weight matrix of the critic
    out_w: np.ndarray  # int64 [start, stop] of the critic's output W, then of its output b


class Stats(NamedTuple):
    """The running state of an agent (1-element arrays: see :mod:`fastd3pg.control.core`)."""

    obs: np.ndarray  # running mean/std of stored states (fastd3pg.nn.normalizer layout)
    ret: np.ndarray  # running mean/std of TD targets (PopArt)
    total: np.ndarray  # env steps so far
    episode_t: np.ndarray  # steps in the current episode
    updates: np.ndarray  # updates so far
    adam_t: np.ndarray  # Adam's step count
    sigma: np.ndarray  # std of the parameter-space noise
    critic_loss: np.ndarray  # the last update's critic loss
    distance: np.ndarray  # the last measured action-space distance of the noise
    state: np.ndarray  # the env's current state
    rng: np.ndarray  # training stream
    eval_rng: np.ndarray  # evaluation stream


class Work(NamedTuple):
    batch: core.Minibatch  # the update's arrays
    ret: np.ndarray  # [μ_Q, σ_Q] of the current statistics
    act: core.ActWork  # acting on one state, and its env step
    J_s: np.ndarray  # that step's derivatives
    J_a: np.ndarray
    dr_ds: np.ndarray
    dr_da: np.ndarray


def make_work(actor, critic, batch_size: int) -> Work:
    n, m = actor.n_in, actor.n_out
    return Work(batch=core.make_minibatch(actor, critic, batch_size), ret=np.array([0.0, 1.0]),
                act=core.make_act_work(actor, n, m), J_s=np.zeros((n, n)), J_a=np.zeros((n, m)),
                dr_ds=np.zeros(n), dr_da=np.zeros(m))


# -- Algorithm 1, one update ----------------------------------------------------------------------
@unit
def refresh_moments(stats, cfg, mb, ret):
    """Current ``μ_s, σ_s`` into ``mb`` and ``μ_Q, σ_Q`` into ``ret``."""
    core.obs_moments(stats.obs, cfg.obs.on, mb.obs_mean, mb.obs_std)
    core.return_moments(stats.ret, cfg.popart, ret)


@unit
def td_and_gradient_targets(spec_a, spec_c, nets, cfg, buf, mb, ret):
    """Alg. 1 lines 8-9 for the transitions ``mb.idx`` of ``buf``: the TD target ``y`` into
    ``mb.Y`` and, for D3PG, ``g_s``, ``g_a`` into ``mb.GS``, ``mb.GA`` (raw coordinates;
    ``mb.V`` gets ``v``)."""
    N, n = mb.S.shape
    mu_q, sigma_q = ret[0], ret[1]
    gather_rows(mb.S2, buf.s_next, mb.idx)
    Xs2 = mb.X2[:, :n]
    core.normalize_states(mb.S2, mb.obs_mean, mb.obs_std, cfg.obs.clip, Xs2, mb.mask2)
    copy(mb.X2[:, n:], nnk.forward(spec_a, nets.theta_targ, Xs2, mb.wa))  # a' = π'(s')
    gamma = cfg.gamma
    if not cfg.loss.gradients:
        Q2 = nnk.forward(spec_c, nets.phi_targ, mb.X2, mb.wc2)
    else:
        Q2, G2 = nnk.forward_input_grad(spec_c, nets.phi_targ, mb.X2, mb.wc2)
        # v = ∇_s' Q' + (∂π'/∂s')ᵀ ∇_a Q': the second term is the actor's input cotangent.
        copy(mb.dA, G2[:, n:])
        nnk.input_vjp(spec_a, nets.theta_targ, mb.wa, mb.dA, mb.dS)
        std = mb.obs_std
        for b in range(N):
            for j in range(n):
                ds_dx = 1.0 / (std[j] + core.STD_EPS)
                mb.V[b, j] = sigma_q * (G2[b, j] + mb.dS[b, j]) * mb.mask2[b, j] * ds_dx
        core.gradient_targets(buf, mb.idx, gamma, mb.V, mb.GS, mb.GA)
    for b in range(N):
        i = mb.idx[b]
        mb.Y[b] = buf.r[i] + gamma * (1.0 - buf.done[i]) * (sigma_q * Q2[b, 0] + mu_q)


@unit
def popart_rescale(nets, stat_ret, Y, ret):
    """Update the return statistics ``stat_ret`` with the batch's targets ``Y``, then rescale
    both critics' output layers so that their un-normalized outputs are unchanged (PopArt);
    ``ret`` gets the new ``μ_Q, σ_Q``."""
    mu_old, sigma_old = ret[0], ret[1]
    normalizer_update(stat_ret, Y.reshape((Y.shape[0], 1)))
    core.return_moments(stat_ret, True, ret)
    mu_new, sigma_new = ret[0], ret[1]
    w0, w1, b0, b1 = nets.out_w[0], nets.out_w[1], nets.out_w[2], nets.out_w[3]
    for phi in (nets.phi, nets.phi_targ):
        for k in range(w0, w1):
            phi[k] *= sigma_old / sigma_new
        for k in range(b0, b1):
            phi[k] = (sigma_old * phi[k] + mu_old - mu_new) / sigma_new


@unit
def critic_gradient(spec_c, nets, cfg, buf, mb, ret):
    """Alg. 1 line 10: ∂L/∂φ of the regularized critic loss into ``mb.dphi``; returns L."""
    return core.critic_gradient(spec_c, nets.phi, nets.l2_ranges, cfg.loss, cfg.obs.clip,
                                ret[0], ret[1], buf, mb)


@unit
def actor_gradient(spec_a, spec_c, nets, mb):
    """Alg. 1 line 11: the gradient of ``-mean Q̃(s̃, π(s̃))`` w.r.t. θ into ``mb.dtheta``
    (normalized Q, states and actions); ``mb.X[:, :n]`` holds the batch's s̃."""
    N, n = mb.S.shape
    Xs = mb.X[:, :n]
    copy(mb.X2[:, :n], Xs)
    copy(mb.X2[:, n:], nnk.forward(spec_a, nets.theta, Xs, mb.wa))
    G = nnk.input_grad(spec_c, nets.phi, mb.X2, mb.wc2)
    for b in range(N):
        for j in range(mb.dA.shape[1]):
            mb.dA[b, j] = -G[b, n + j] / N
    nnk.param_vjp(spec_a, nets.theta, mb.wa, mb.dA, mb.dtheta)


@unit
def update(spec_a, spec_c, nets, stats, cfg, buf, work):
    """One update of Algorithm 1 (lines 7-13) on a fresh minibatch; returns the critic loss."""
    mb = work.batch
    replay.sample_indices(buf, stats.rng, mb.idx)  # line 7
    refresh_moments(stats, cfg, mb, work.ret)
    td_and_gradient_targets(spec_a, spec_c, nets, cfg, buf, mb, work.ret)  # lines 8-9
    if cfg.popart:
        popart_rescale(nets, stats.ret, mb.Y, work.ret)
    loss = critic_gradient(spec_c, nets, cfg, buf, mb, work.ret)  # line 10
    actor_gradient(spec_a, spec_c, nets, mb)  # line 11, from the same pre-update critic
    stats.adam_t[0] += 1
    t = stats.adam_t[0]
    b1, b2, eps = cfg.adam.beta1, cfg.adam.beta2, cfg.adam.eps
    adam_step(nets.phi, mb.dphi, nets.m_phi, nets.v_phi, t, cfg.critic_lr, b1, b2, eps)
    adam_step(nets.theta, mb.dtheta, nets.m_theta, nets.v_theta, t, cfg.actor_lr, b1, b2, eps)
    polyak(nets.theta_targ, nets.theta, cfg.tau)  # lines 12-13
    polyak(nets.phi_targ, nets.phi, cfg.tau)
    stats.updates[0] += 1
    return loss


# -- exploration ----------------------------------------------------------------------------------
@jit
def perturb(theta, mask, sigma, rng, out):
    """``out = θ + σ ε`` on weights and biases (ε ~ N(0, 1)); layer-norm parameters kept."""
    for k in range(theta.shape[0]):
        out[k] = theta[k] + sigma * _rng.normal(rng) * mask[k] if mask[k] != 0.0 else theta[k]


@unit
def adapt_noise(spec_a, nets, stats, cfg, buf, mb):
    """Adaptive parameter noise (Plappert et al. 2017): measure the action-space distance of a
    perturbed actor on stored states and move σ towards the target distance."""
    N, n = mb.S.shape
    sigma = stats.sigma[0]
    perturb(nets.theta, nets.noise_mask, sigma, stats.rng, nets.theta_probe)
    replay.sample_indices(buf, stats.rng, mb.idx)
    gather_rows(mb.S, buf.s, mb.idx)
    Xs = mb.X[:, :n]
    core.obs_moments(stats.obs, cfg.obs.on, mb.obs_mean, mb.obs_std)
    core.normalize_states(mb.S, mb.obs_mean, mb.obs_std, cfg.obs.clip, Xs, mb.mask)
    copy(mb.A, nnk.forward(spec_a, nets.theta, Xs, mb.wa))
    Ap = nnk.forward(spec_a, nets.theta_probe, Xs, mb.wa)
    d = 0.0
    for b in range(N):
        for j in range(mb.A.shape[1]):
            diff = mb.A[b, j] - Ap[b, j]
            d += diff * diff
    d = np.sqrt(d / (N * mb.A.shape[1]))
    stats.distance[0] = d
    if d > cfg.noise_target:
        stats.sigma[0] = sigma / cfg.noise_adapt
    else:
        stats.sigma[0] = sigma * cfg.noise_adapt


# -- the compiled loop ----------------------------------------------------------------------------
@jit
def train_period(n_steps, p, spec_a, spec_c, nets, stats, cfg, buf, work):
    """``n_steps`` env steps of Algorithm 1 with Baselines' cycle: after every
    ``rollout_steps`` env steps, ``train_steps`` updates. Returns the last critic loss."""
    w = work.act
    for _ in range(n_steps):
        if stats.episode_t[0] == 0:
            # A fresh perturbed actor for every episode; it acts for the whole episode.
            perturb(nets.theta, nets.noise_mask, stats.sigma[0], stats.rng, nets.theta_act)
        s = stats.state
        core.act(spec_a, nets.theta_act, stats.obs, cfg.obs, w, s)  # line 4
        core.step_and_store(p, cfg.task, cfg.obs, True, stats, w, buf, work.J_s, work.J_a,
                            work.dr_ds, work.dr_da)  # lines 5-6
        if stats.total[0] % cfg.rollout_steps == 0 and buf.pos[0] >= cfg.batch_size:
            for _ in range(cfg.train_steps):
                stats.critic_loss[0] = update(spec_a, spec_c, nets, stats, cfg, buf, work)
                if stats.updates[0] % cfg.noise_interval == 0:
                    adapt_noise(spec_a, nets, stats, cfg, buf, work.batch)
    return stats.critic_loss[0]


# -- the Python shell -----------------------------------------------------------------------------
class D3PGAgent:
    """Holds the arrays of a D3PG run and calls the compiled loop (the driver's interface:
    ``train(n)``, ``evaluate()``, ``finite()``, ``state_arrays()``, ``load_state_arrays()``,
    ``policy_arrays()``, ``timesteps``)."""

    config_class = D3PGConfig

    def __init__(self, env, config, seed: int, total_steps: int | None = None):
        self.env, self.config = env, config
        c = config
        n, m = env.state_dim, env.action_dim
        self.actor, theta = core.initial_actor(env, c, seed)
        self.critic = MLP([n + m, *c.hidden, 1], activation=c.activation,
                          output_activation="linear", layer_norm=c.layer_norm)
        seeds = core.run_seeds(seed)
        phi = self.critic.init(seed=int(seeds[1]), out_scale=c.out_init)
        w0, w1, b0, b1 = self.critic.output_layer_slices()
        z = np.zeros_like
        self.nets = Nets(
            theta=theta, theta_targ=theta.copy(), theta_act=theta.copy(),
            theta_probe=theta.copy(), phi=phi, phi_targ=phi.copy(), m_theta=z(theta),
            v_theta=z(theta), m_phi=z(phi), v_phi=z(phi),
            noise_mask=self.actor.weight_bias_mask().astype(np.float64),
            l2_ranges=core.hidden_weight_ranges(self.critic),
            out_w=np.array([w0, w1, b0, b1], dtype=np.int64),
        )
        self.stats = Stats(
            obs=np.zeros(2 * n + 1), ret=np.zeros(3), total=core.counter(),
            episode_t=core.counter(), updates=core.counter(), adam_t=core.counter(),
            sigma=core.scalar(c.noise_init), critic_loss=core.scalar(), distance=core.scalar(),
            state=np.zeros(n), rng=_rng.make_rng(int(seeds[2])),
            eval_rng=_rng.make_rng(int(seeds[3])),
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
        """Units the compiled loop calls (under ``update``, whose own compile waits for them),
        each with the arguments it passes: what helper processes compile on a cold cache, in
        this order, while the run takes them from the end
        (:mod:`fastd3pg.control.parallel_compile`). The critic's gradient and the targets,
        the largest, come first."""
        a, c, nets, stats, cfg, buf, w = core.loop_arguments(self)
        mb = w.batch
        return [
            (critic_gradient, (c, nets, cfg, buf, mb, w.ret)),
            (td_and_gradient_targets, (a, c, nets, cfg, buf, mb, w.ret)),
            (actor_gradient, (a, c, nets, mb)),
            (adapt_noise, (a, nets, stats, cfg, buf, mb)),
            core.step_and_store_call(self, True),
            (core.act, (a, nets.theta_act, stats.obs, cfg.obs, w.act, stats.state)),
        ]

    def finite(self) -> bool:
        return bool(np.isfinite(self.stats.critic_loss[0])
                    and np.all(np.isfinite(self.nets.theta)) and np.all(np.isfinite(self.nets.phi)))

    def state_arrays(self) -> dict:
        return core.group_arrays({"nets": self.nets, "stats": self.stats, "buf": self.buf})

    def load_state_arrays(self, arrays: dict):
        core.load_group_arrays({"nets": self.nets, "stats": self.stats, "buf": self.buf}, arrays)

    def policy_arrays(self) -> dict:
        obs = self.settings.obs
        mean, std = core.current_obs_moments(self.stats.obs, obs.on)
        return make_policy_arrays(self.env.name, self.actor, self.nets.theta, mean, std, obs.clip)

    def critic_snapshot(self) -> dict:
        """Copies of what a look at the critic in NumPy needs (:mod:`fastd3pg.diagnose`): the
        networks (``actor``, ``critic``: :class:`fastd3pg.nn.MLP`), their parameters
        (``theta``, ``theta_targ``, ``phi``; ``phi_targ``, a list of target critics), the
        normalization (``obs_mean``, ``obs_std``, ``obs_clip``, PopArt's ``mu_q``, ``sigma_q``),
        ``gamma`` and ``replay``, the buffer itself (read it, never write it)."""
        s = self.settings
        mean, std = core.current_obs_moments(self.stats.obs, s.obs.on)
        ret = np.zeros(2)
        core.return_moments(self.stats.ret, s.popart, ret)
        n = self.nets
        return {"actor": self.actor, "critic": self.critic, "theta": n.theta.copy(),
                "theta_targ": n.theta_targ.copy(), "phi": n.phi.copy(),
                "phi_targ": [n.phi_targ.copy()], "obs_mean": mean, "obs_std": std,
                "obs_clip": float(s.obs.clip), "mu_q": float(ret[0]), "sigma_q": float(ret[1]),
                "gamma": float(s.gamma), "replay": self.buf}


class DDPGAgent(D3PGAgent):
    """DDPG: the same agent with ``w1 = w2 = 0`` (no Jacobians stored, no double backprop)."""

    config_class = DDPGConfig
