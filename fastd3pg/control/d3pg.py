"""D3PG (hybrid DDPG, Algorithm 1 of the paper) and DDPG (the same with ``w1 = w2 = 0``).

Reads like PAPER.md §2; the comments give Algorithm 1's line numbers. On top of OpenAI
Baselines' DDPG (adaptive parameter-space noise, observation normalization, normalized Q with
PopArt rescaling, layer norm, critic L2), the replay buffer also stores each transition's
Jacobians and reward gradients, and the critic is fitted to the gradients of its TD target:

    a'  = π'(s'),   y = r + γ (1 - done) Q'(s', a')                          (TD target)
    v   = ∇_{s'} Q'(s', a') + (∂π'/∂s')ᵀ ∇_a Q'(s', a')                        (total along π')
    g_s = dr/ds + γ (1 - done) J_sᵀ v,   g_a = dr/da + γ (1 - done) J_aᵀ v     (gradient targets)
    L(φ) = 1/N Σ (Q - y)² + w1 ‖∇_a Q - g_a‖² + w2 ‖∇_s Q - g_s‖²  (+ critic L2)

Normalized coordinates. The networks see ``s̃ = clip((s - μ_s)/(σ_s + 1e-8), ±c)`` and the
critic outputs ``Q̃ = (Q - μ_Q)/σ_Q``. By the chain rule the value target becomes
``(y - μ_Q)/σ_Q``, the state-gradient target ``(σ_s + 1e-8) ⊙ g_s / σ_Q`` and the
action-gradient target ``g_a / σ_Q`` (actions are not normalized). Where the clip is active
``∂s̃/∂s = 0``: the critic's raw-state gradient is zero there whatever the network does, so
those components carry no gradient-fitting term, and ``v`` has zero components there too.

Everything from acting to target updates runs inside one compiled call per evaluation
period (:func:`train_period`); nothing is allocated inside it.
"""

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from fastd3pg import rng as _rng
from fastd3pg._jit import jit
from fastd3pg.control import replay
from fastd3pg.control.configio import ConfigError, require
from fastd3pg.nn import MLP, adam_step, polyak
from fastd3pg.nn import kernels as nnk
from fastd3pg.nn.normalizer import normalizer_moments, normalizer_update
from fastd3pg.physics import dispatch


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
        require(actor_critic_checks(self) + [
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


# Indices of the float hyper-parameter vector handed to compiled code.
HP_GAMMA, HP_TAU, HP_ACTOR_LR, HP_CRITIC_LR, HP_L2, HP_W1, HP_W2 = 0, 1, 2, 3, 4, 5, 6
HP_NOISE_TARGET, HP_NOISE_ADAPT, HP_OBS_CLIP, HP_B1, HP_B2, HP_EPS = 7, 8, 9, 10, 11, 12
# ... and of the int one.
IP_BATCH, IP_ROLLOUT, IP_TRAIN, IP_NOISE_INTERVAL, IP_COSINE, IP_NORM_OBS, IP_POPART = range(7)
IP_GRADS, IP_HORIZON, IP_TASK = 7, 8, 9
# Counters (int64) and scalars (float64) of the running agent.
C_TOTAL, C_EPISODE_T, C_UPDATES, C_ADAM_T = 0, 1, 2, 3
F_SIGMA, F_EPISODE_RETURN, F_CRITIC_LOSS, F_DISTANCE = 0, 1, 2, 3


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
    obs: np.ndarray  # running mean/std of stored states (fastd3pg.nn.normalizer layout)
    ret: np.ndarray  # running mean/std of TD targets (PopArt)
    counters: np.ndarray  # int64, C_*
    scalars: np.ndarray  # float64, F_*
    state: np.ndarray  # the env's current state
    rng: np.ndarray  # training stream
    eval_rng: np.ndarray  # evaluation stream


class Work(NamedTuple):
    idx: np.ndarray
    S: np.ndarray
    A: np.ndarray
    S2: np.ndarray
    mask: np.ndarray  # 1.0 where s̃ is not clipped
    mask2: np.ndarray
    X: np.ndarray  # critic input [s̃, a]
    X2: np.ndarray
    A2: np.ndarray
    V: np.ndarray
    Y: np.ndarray  # TD targets, raw
    GS: np.ndarray  # gradient targets, raw
    GA: np.ndarray
    dY: np.ndarray
    H: np.ndarray
    dA: np.ndarray
    dS: np.ndarray
    dphi: np.ndarray
    dtheta: np.ndarray
    wa: tuple  # actor workspace, batch N
    wc: tuple  # critic workspace, batch N
    wc2: tuple  # second critic workspace, batch N
    wa1: tuple  # actor workspace, batch 1
    x1: np.ndarray  # (1, n) normalized state for acting
    a: np.ndarray  # (m,) action
    s_next: np.ndarray
    J_s: np.ndarray
    J_a: np.ndarray
    dr_ds: np.ndarray
    dr_da: np.ndarray
    obs_mean: np.ndarray  # μ_s, σ_s, [μ_Q, σ_Q] of the current statistics
    obs_std: np.ndarray
    ret: np.ndarray


# -- normalization --------------------------------------------------------------------------------
STD_FLOOR = 0.1  # Baselines' running statistics never report a std below 0.1


@jit
def refresh_moments(stats, work, norm_obs, popart):
    """Current ``μ_s, σ_s`` into ``work.obs_mean/obs_std`` and ``μ_Q, σ_Q`` into ``work.ret``
    (``0, 1`` where the normalization is off); stds floored at ``STD_FLOOR``."""
    if norm_obs:
        normalizer_moments(stats.obs, work.obs_mean, work.obs_std)
        for j in range(work.obs_std.shape[0]):
            work.obs_std[j] = max(work.obs_std[j], STD_FLOOR)
    else:
        work.obs_mean[:] = 0.0
        work.obs_std[:] = 1.0 - 1e-8  # so that σ + 1e-8 = 1
    refresh_return_moments(stats, work, popart)


@jit
def refresh_return_moments(stats, work, popart):
    if popart:
        normalizer_moments(stats.ret, work.ret[:1], work.ret[1:])
        work.ret[1] = max(work.ret[1], STD_FLOOR)
    else:
        work.ret[0], work.ret[1] = 0.0, 1.0


@jit
def normalize_states(S, work, clip, out, mask):
    """``out = clip((S - μ_s)/(σ_s + 1e-8), ±clip)``; ``mask`` 1 where the clip is inactive."""
    mean, std = work.obs_mean, work.obs_std
    for b in range(S.shape[0]):
        for j in range(S.shape[1]):
            z = (S[b, j] - mean[j]) / (std[j] + 1e-8)
            if z > clip:
                out[b, j], mask[b, j] = clip, 0.0
            elif z < -clip:
                out[b, j], mask[b, j] = -clip, 0.0
            else:
                out[b, j], mask[b, j] = z, 1.0


# -- Algorithm 1, one update ----------------------------------------------------------------------
@jit
def gradient_targets(buf, idx, gamma, V, GS, GA):
    """PAPER.md eq. 2 for the transitions ``idx``: ``g_s = dr/ds + γ (1 - done) J_sᵀ v``,
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


@jit
def td_and_gradient_targets(spec_a, spec_c, nets, stats, hp, ip, buf, work):
    """Alg. 1 lines 8-9 for the transitions ``work.idx`` of ``buf``: the TD target ``y`` into
    ``work.Y`` and, for D3PG, ``g_s``, ``g_a`` into ``work.GS``, ``work.GA`` (raw coordinates;
    ``work.V`` gets ``v``)."""
    N, n = work.S.shape
    mu_q, sigma_q = work.ret[0], work.ret[1]
    for b in range(N):
        work.S2[b] = buf.s_next[work.idx[b]]
    Xs2 = work.X2[:, :n]
    normalize_states(work.S2, work, hp[HP_OBS_CLIP], Xs2, work.mask2)
    work.X2[:, n:] = nnk.forward(spec_a, nets.theta_targ, Xs2, work.wa)  # a' = π'(s')
    gamma = hp[HP_GAMMA]
    if ip[IP_GRADS] == 0:
        Q2 = nnk.forward(spec_c, nets.phi_targ, work.X2, work.wc2)
    else:
        Q2, G2 = nnk.forward_input_grad(spec_c, nets.phi_targ, work.X2, work.wc2)
        # v = ∇_s' Q' + (∂π'/∂s')ᵀ ∇_a Q': the second term is the actor's input cotangent.
        work.dA[:] = G2[:, n:]
        nnk.input_vjp(spec_a, nets.theta_targ, work.wa, work.dA, work.dS)
        std = work.obs_std
        for b in range(N):
            for j in range(n):
                ds_dx = 1.0 / (std[j] + 1e-8)
                work.V[b, j] = sigma_q * (G2[b, j] + work.dS[b, j]) * work.mask2[b, j] * ds_dx
        gradient_targets(buf, work.idx, gamma, work.V, work.GS, work.GA)
    for b in range(N):
        i = work.idx[b]
        work.Y[b] = buf.r[i] + gamma * (1.0 - buf.done[i]) * (sigma_q * Q2[b, 0] + mu_q)


@jit
def popart_rescale(nets, stats, work):
    """Update the return statistics with the batch's targets ``work.Y``, then rescale both
    critics' output layers so that their un-normalized outputs are unchanged (PopArt);
    ``work.ret`` gets the new ``μ_Q, σ_Q``."""
    mu_old, sigma_old = work.ret[0], work.ret[1]
    normalizer_update(stats.ret, work.Y.reshape((work.Y.shape[0], 1)))
    refresh_return_moments(stats, work, True)
    mu_new, sigma_new = work.ret[0], work.ret[1]
    w0, w1, b0, b1 = nets.out_w[0], nets.out_w[1], nets.out_w[2], nets.out_w[3]
    for phi in (nets.phi, nets.phi_targ):
        for k in range(w0, w1):
            phi[k] *= sigma_old / sigma_new
        for k in range(b0, b1):
            phi[k] = (sigma_old * phi[k] + mu_old - mu_new) / sigma_new


@jit
def _cosine_cotangent(G, g, w, scale, out):
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


@jit
def critic_gradient(spec_c, nets, stats, hp, ip, buf, work):
    """Alg. 1 line 10: ∂L/∂φ of the regularized critic loss into ``work.dphi``; returns L."""
    N, n = work.S.shape
    m = work.A.shape[1]
    mu_q, sigma_q = work.ret[0], work.ret[1]
    std = work.obs_std
    for b in range(N):
        i = work.idx[b]
        work.S[b] = buf.s[i]
        work.A[b] = buf.a[i]
    Xs = work.X[:, :n]
    normalize_states(work.S, work, hp[HP_OBS_CLIP], Xs, work.mask)
    work.X[:, n:] = work.A
    inv_n = 1.0 / N
    loss = 0.0
    grads = ip[IP_GRADS] == 1
    if grads:
        Q, G = nnk.forward_input_grad(spec_c, nets.phi, work.X, work.wc)
    else:
        Q = nnk.forward(spec_c, nets.phi, work.X, work.wc)
    w1, w2 = hp[HP_W1], hp[HP_W2]
    for b in range(N):
        y_norm = (work.Y[b] - mu_q) / sigma_q
        diff = Q[b, 0] - y_norm
        loss += diff * diff * inv_n
        work.dY[b, 0] = 2.0 * diff * inv_n
        if not grads:
            continue
        # Gradient targets in normalized coordinates (chain rule through s̃ and Q̃); clipped
        # state components have no gradient term.
        for j in range(n):
            scale = std[j] + 1e-8
            work.dS[b, j] = work.GS[b, j] * scale / sigma_q * work.mask[b, j]
        for j in range(m):
            work.dA[b, j] = work.GA[b, j] / sigma_q
        if ip[IP_COSINE] == 1:
            Gs = G[b, :n] * work.mask[b]
            loss += _cosine_cotangent(Gs, work.dS[b], w2, inv_n, work.H[b, :n]) * inv_n
            loss += _cosine_cotangent(G[b, n:], work.dA[b], w1, inv_n, work.H[b, n:]) * inv_n
            for j in range(n):
                work.H[b, j] *= work.mask[b, j]
        else:
            for j in range(n):
                r = (G[b, j] - work.dS[b, j]) * work.mask[b, j]
                loss += w2 * r * r * inv_n
                work.H[b, j] = 2.0 * w2 * r * inv_n
            for j in range(m):
                r = G[b, n + j] - work.dA[b, j]
                loss += w1 * r * r * inv_n
                work.H[b, n + j] = 2.0 * w1 * r * inv_n
    if grads:
        nnk.backward_value_and_input_grad(spec_c, nets.phi, work.wc, work.dY, work.H, work.dphi)
    else:
        nnk.param_vjp(spec_c, nets.phi, work.wc, work.dY, work.dphi)
    # Critic L2: 1e-2 · Σ ‖W‖² / 2 over hidden weight matrices.
    l2 = hp[HP_L2]
    for r in range(nets.l2_ranges.shape[0]):
        for k in range(nets.l2_ranges[r, 0], nets.l2_ranges[r, 1]):
            work.dphi[k] += l2 * nets.phi[k]
            loss += 0.5 * l2 * nets.phi[k] * nets.phi[k]
    return loss


@jit
def actor_gradient(spec_a, spec_c, nets, work):
    """Alg. 1 line 11: the gradient of ``-mean Q̃(s̃, π(s̃))`` w.r.t. θ into ``work.dtheta``
    (normalized Q, states and actions); ``work.X[:, :n]`` holds the batch's s̃."""
    N, n = work.S.shape
    Xs = work.X[:, :n]
    work.X2[:, :n] = Xs
    work.X2[:, n:] = nnk.forward(spec_a, nets.theta, Xs, work.wa)
    G = nnk.input_grad(spec_c, nets.phi, work.X2, work.wc2)
    for b in range(N):
        for j in range(work.dA.shape[1]):
            work.dA[b, j] = -G[b, n + j] / N
    nnk.param_vjp(spec_a, nets.theta, work.wa, work.dA, work.dtheta)


@jit
def update(spec_a, spec_c, nets, stats, hp, ip, buf, work):
    """One update of Algorithm 1 (lines 7-13) on a fresh minibatch; returns the critic loss."""
    replay.sample_indices(buf, stats.rng, work.idx)  # line 7
    refresh_moments(stats, work, ip[IP_NORM_OBS] == 1, ip[IP_POPART] == 1)
    td_and_gradient_targets(spec_a, spec_c, nets, stats, hp, ip, buf, work)  # lines 8-9
    if ip[IP_POPART] == 1:
        popart_rescale(nets, stats, work)
    loss = critic_gradient(spec_c, nets, stats, hp, ip, buf, work)  # line 10
    actor_gradient(spec_a, spec_c, nets, work)  # line 11, from the same pre-update critic
    stats.counters[C_ADAM_T] += 1
    t = stats.counters[C_ADAM_T]
    b1, b2, eps = hp[HP_B1], hp[HP_B2], hp[HP_EPS]
    adam_step(nets.phi, work.dphi, nets.m_phi, nets.v_phi, t, hp[HP_CRITIC_LR], b1, b2, eps)
    adam_step(nets.theta, work.dtheta, nets.m_theta, nets.v_theta, t, hp[HP_ACTOR_LR], b1, b2, eps)
    polyak(nets.theta_targ, nets.theta, hp[HP_TAU])  # lines 12-13
    polyak(nets.phi_targ, nets.phi, hp[HP_TAU])
    stats.counters[C_UPDATES] += 1
    return loss


# -- exploration ----------------------------------------------------------------------------------
@jit
def perturb(theta, mask, sigma, rng, out):
    """``out = θ + σ ε`` on weights and biases (ε ~ N(0, 1)); layer-norm parameters kept."""
    for k in range(theta.shape[0]):
        out[k] = theta[k] + sigma * _rng.normal(rng) * mask[k] if mask[k] != 0.0 else theta[k]


@jit
def adapt_noise(spec_a, nets, stats, hp, ip, buf, work):
    """Adaptive parameter noise (Plappert et al. 2017): measure the action-space distance of a
    perturbed actor on stored states and move σ towards the target distance."""
    N, n = work.S.shape
    sigma = stats.scalars[F_SIGMA]
    perturb(nets.theta, nets.noise_mask, sigma, stats.rng, nets.theta_probe)
    replay.sample_indices(buf, stats.rng, work.idx)
    for b in range(N):
        work.S[b] = buf.s[work.idx[b]]
    Xs = work.X[:, :n]
    refresh_moments(stats, work, ip[IP_NORM_OBS] == 1, ip[IP_POPART] == 1)
    normalize_states(work.S, work, hp[HP_OBS_CLIP], Xs, work.mask)
    work.A[:] = nnk.forward(spec_a, nets.theta, Xs, work.wa)
    Ap = nnk.forward(spec_a, nets.theta_probe, Xs, work.wa)
    d = 0.0
    for b in range(N):
        for j in range(work.A.shape[1]):
            diff = work.A[b, j] - Ap[b, j]
            d += diff * diff
    d = np.sqrt(d / (N * work.A.shape[1]))
    stats.scalars[F_DISTANCE] = d
    if d > hp[HP_NOISE_TARGET]:
        stats.scalars[F_SIGMA] = sigma / hp[HP_NOISE_ADAPT]
    else:
        stats.scalars[F_SIGMA] = sigma * hp[HP_NOISE_ADAPT]


@jit
def act(spec_a, theta, stats, hp, ip, work, s):
    """``work.a = π_θ(s̃)`` for one state ``s``."""
    work.x1[0, :] = s
    refresh_moments(stats, work, ip[IP_NORM_OBS] == 1, ip[IP_POPART] == 1)
    normalize_states(work.x1, work, hp[HP_OBS_CLIP], work.x1, work.mask2[:1])
    work.a[:] = nnk.forward(spec_a, theta, work.x1, work.wa1)[0]


# -- the compiled loop ----------------------------------------------------------------------------
@jit
def start_episode(p, nets, stats, ip):
    dispatch.reset(ip[IP_TASK], p, stats.rng, stats.state)
    stats.counters[C_EPISODE_T] = 0
    stats.scalars[F_EPISODE_RETURN] = 0.0


@jit
def train_period(n_steps, p, spec_a, spec_c, nets, stats, hp, ip, buf, work):
    """``n_steps`` env steps of Algorithm 1 with Baselines' cycle: after every
    ``rollout_steps`` env steps, ``train_steps`` updates. Returns the last critic loss."""
    task = ip[IP_TASK]
    for _ in range(n_steps):
        if stats.counters[C_EPISODE_T] == 0:
            # A fresh perturbed actor for every episode; it acts for the whole episode.
            perturb(nets.theta, nets.noise_mask, stats.scalars[F_SIGMA], stats.rng,
                    nets.theta_act)
        s = stats.state
        act(spec_a, nets.theta_act, stats, hp, ip, work, s)  # line 4
        r, terminated = dispatch.step_jac(task, p, s, work.a, work.s_next, work.J_s, work.J_a,
                                          work.dr_ds, work.dr_da)  # line 5
        replay.add(buf, s, work.a, r, work.s_next, terminated, work.J_s, work.J_a,
                   work.dr_ds, work.dr_da)  # line 6
        if ip[IP_NORM_OBS] == 1:
            normalizer_update(stats.obs, s.reshape((1, s.shape[0])))
        stats.counters[C_TOTAL] += 1
        stats.counters[C_EPISODE_T] += 1
        stats.scalars[F_EPISODE_RETURN] += r
        s[:] = work.s_next
        if terminated or stats.counters[C_EPISODE_T] >= ip[IP_HORIZON]:
            start_episode(p, nets, stats, ip)
        if stats.counters[C_TOTAL] % ip[IP_ROLLOUT] == 0 and buf.pos[0] >= ip[IP_BATCH]:
            for _ in range(ip[IP_TRAIN]):
                stats.scalars[F_CRITIC_LOSS] = update(spec_a, spec_c, nets, stats, hp, ip,
                                                      buf, work)
                if stats.counters[C_UPDATES] % ip[IP_NOISE_INTERVAL] == 0:
                    adapt_noise(spec_a, nets, stats, hp, ip, buf, work)
    return stats.scalars[F_CRITIC_LOSS]


@jit
def evaluate(p, spec_a, nets, stats, hp, ip, work):
    """The return of one episode of the deterministic (unperturbed) actor, from a start state
    drawn from the evaluation stream."""
    task = ip[IP_TASK]
    s = np.empty(stats.state.shape[0])
    dispatch.reset(task, p, stats.eval_rng, s)
    total = 0.0
    for _ in range(ip[IP_HORIZON]):
        act(spec_a, nets.theta, stats, hp, ip, work, s)
        r, terminated = dispatch.step(task, p, s, work.a, work.s_next)
        total += r
        s[:] = work.s_next
        if terminated:
            break
    return total


# -- the Python shell -----------------------------------------------------------------------------
def hidden_weight_ranges(net) -> np.ndarray:
    """``[start, stop)`` of each hidden layer's weight matrix in ``net``'s flat parameters
    (the critic L2's support: no biases, layer-norm parameters or output layer)."""
    L = len(net.sizes) - 1
    return np.array([[off, off + shape[0] * shape[1]] for name, layer, off, shape in net.layout()
                     if name == "W" and layer < L], dtype=np.int64).reshape(-1, 2)


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


class D3PGAgent:
    """Holds the arrays of a D3PG run and calls the compiled loop (the driver's interface:
    ``train(n)``, ``evaluate()``, ``finite()``, ``state_arrays()``, ``load_state_arrays()``,
    ``policy_arrays()``)."""

    config_class = D3PGConfig

    def __init__(self, env, config, seed: int, total_steps: int | None = None):
        self.env, self.config = env, config
        c = config
        n, m = env.state_dim, env.action_dim
        self.actor, theta = initial_actor(env, c, seed)
        self.critic = MLP([n + m, *c.hidden, 1], activation=c.activation,
                          output_activation="linear", layer_norm=c.layer_norm)
        seeds = run_seeds(seed)
        phi = self.critic.init(seed=int(seeds[1]), out_scale=c.out_init)
        w0, w1, b0, b1 = self.critic.output_layer_slices()
        self.nets = Nets(
            theta, theta.copy(), theta.copy(), theta.copy(), phi, phi.copy(),
            np.zeros_like(theta), np.zeros_like(theta), np.zeros_like(phi), np.zeros_like(phi),
            self.actor.weight_bias_mask().astype(np.float64),
            hidden_weight_ranges(self.critic),
            np.array([w0, w1, b0, b1], dtype=np.int64),
        )
        self.stats = Stats(
            np.zeros(2 * n + 1), np.zeros(3), np.zeros(4, dtype=np.int64),
            np.array([c.noise_init, 0.0, 0.0, 0.0]), np.zeros(n),
            _rng.make_rng(int(seeds[2])), _rng.make_rng(int(seeds[3])),
        )
        capacity = c.buffer_size if total_steps is None else min(c.buffer_size, total_steps)
        grads = c.w1 > 0 or c.w2 > 0
        self.buf = replay.make_replay(capacity, n, m, with_jacobians=grads)
        B = c.batch_size
        self.work = Work(
            np.zeros(B, dtype=np.int64), np.zeros((B, n)), np.zeros((B, m)), np.zeros((B, n)),
            np.zeros((B, n)), np.zeros((B, n)), np.zeros((B, n + m)), np.zeros((B, n + m)),
            np.zeros((B, m)), np.zeros((B, n)), np.zeros(B), np.zeros((B, n)), np.zeros((B, m)),
            np.zeros((B, 1)), np.zeros((B, n + m)), np.zeros((B, m)), np.zeros((B, n)),
            np.zeros_like(phi), np.zeros_like(theta),
            self.actor.workspace(B), self.critic.workspace(B), self.critic.workspace(B),
            self.actor.workspace(1), np.zeros((1, n)), np.zeros(m), np.zeros(n),
            np.zeros((n, n)), np.zeros((n, m)), np.zeros(n), np.zeros(m),
            np.zeros(n), np.ones(n), np.array([0.0, 1.0]),
        )
        # Without observation normalization the networks see raw states, unclipped.
        obs_clip = c.obs_clip if c.normalize_obs else np.inf
        self.hp = np.array([c.gamma, c.tau, c.actor_lr, c.critic_lr, c.critic_l2, c.w1, c.w2,
                            c.noise_target, c.noise_adapt, obs_clip, c.adam_beta1,
                            c.adam_beta2, c.adam_eps])
        self.ip = np.array([B, c.rollout_steps, c.train_steps, c.noise_interval,
                            int(c.reg == "cosine"), int(c.normalize_obs), int(c.popart),
                            int(grads), env.horizon, env.task_id], dtype=np.int64)
        start_episode(env.params, self.nets, self.stats, self.ip)

    @property
    def timesteps(self) -> int:
        return int(self.stats.counters[C_TOTAL])

    def train(self, n_steps: int) -> float:
        return train_period(n_steps, self.env.params, self.actor.spec, self.critic.spec,
                            self.nets, self.stats, self.hp, self.ip, self.buf, self.work)

    def evaluate(self) -> float:
        return evaluate(self.env.params, self.actor.spec, self.nets, self.stats, self.hp,
                        self.ip, self.work)

    def finite(self) -> bool:
        return bool(np.isfinite(self.stats.scalars[F_CRITIC_LOSS])
                    and np.all(np.isfinite(self.nets.theta)) and np.all(np.isfinite(self.nets.phi)))

    def state_arrays(self) -> dict:
        return group_arrays({"nets": self.nets, "stats": self.stats, "buf": self.buf})

    def load_state_arrays(self, arrays: dict):
        load_group_arrays({"nets": self.nets, "stats": self.stats, "buf": self.buf}, arrays)

    def policy_arrays(self) -> dict:
        refresh_moments(self.stats, self.work, self.config.normalize_obs, self.config.popart)
        mean, std = self.work.obs_mean.copy(), self.work.obs_std.copy()
        return {
            "env": np.array(self.env.name), "sizes": np.array(self.actor.sizes),
            "activation": np.array(self.config.activation),
            "output_activation": np.array("tanh"),
            "layer_norm": np.array(self.config.layer_norm),
            "params": self.nets.theta.copy(), "obs_mean": mean, "obs_std": std,
            "obs_clip": np.array(self.config.obs_clip if self.config.normalize_obs else np.inf),
        }


class DDPGAgent(D3PGAgent):
    """DDPG: the same agent with ``w1 = w2 = 0`` (no Jacobians stored, no double backprop)."""

    config_class = DDPGConfig
