"""GD: a neural actor trained with Adam on the exact gradient of the episode return,
back-propagated through the whole simulated episode (the paper's "GD" baseline, §5.2).

The actor is D3PG's (same network, same initialisation). One update:

    s_0 ~ start distribution,   a_t = π_θ(s̃_t),   s_{t+1} = Γ(s_t, a_t),   r_t = r(s_t, a_t)
    R(θ) = Σ_{t<L} γ^t r_t          (L: the horizon, or the step that terminates; γ = 1 default)

and Adam steps on ``-∂R/∂θ``. The gradient comes from one backward (adjoint) sweep over the
stored episode. With ``λ_t = ∂R_{≥t}/∂s_t`` the total derivative of the return-to-go
``R_{≥t} = Σ_{k≥t} γ^{k-t} r_k`` with respect to the state (later actions following π_θ):

    λ_L = 0
    ā_t = dr/da_t + γ J_a,tᵀ λ_{t+1}                       (cotangent of the action a_t)
    λ_t = dr/ds_t + γ J_s,tᵀ λ_{t+1} + (∂a_t/∂s_t)ᵀ ā_t,   ∂a_t/∂s_t = ∂π/∂s̃ · diag(∂s̃/∂s)
    ∂R/∂θ = Σ_t γ^t (∂π_θ/∂θ (s̃_t))ᵀ ā_t

``dr/ds``, ``dr/da``, ``J_s``, ``J_a`` are the simulator's (the paper's eq. 2). The per-step actor
Jacobian products ``(∂π/∂s̃)ᵀ ā_t`` are input vector-Jacobian products on one state; the
parameter sum is one batched reverse pass over the whole episode. The termination step is a
piecewise-constant function of θ, so it contributes nothing (the gradient is that of the
return of the episode's fixed length, valid almost everywhere).

Observation normalization is *fixed*: ``s̃ = clip((s - μ)/(σ + ε), ±obs_clip)`` (``ε =
core.STD_EPS``) with the mean and std (floored at 0.1, as D3PG's) of ``norm_steps`` states
visited by a uniform random controller at the start of the run, never updated afterwards, so
that ``R`` is one fixed function of θ. ``∂s̃/∂s = 1/(σ + ε)`` where the clip is inactive, 0
where it is. Those random steps are simulated steps and count as timesteps.
``normalize_obs = false`` uses ``s̃ = s``.

Timesteps count simulated steps: ``train(n)`` runs whole updates until the run's simulated
steps reach the driver's budget; an episode that overshoots is paid from the next period's
budget. A non-finite gradient (an episode whose derivatives overflow) skips the update; the
count is kept in ``stats.skipped``.

Early stop on a plateau: every :meth:`GDAgent.evaluate` call compares the normalized
``return_mean`` with the best so far; an evaluation that beats the best by more than
``plateau_tol`` resets a counter, any other increments it; :meth:`GDAgent.done` is true once
``patience`` evaluations in a row brought no such improvement (the driver then stops the run).

Tasks whose reward has no useful derivative (``env.differentiable_reward`` false: Acrobot) are
refused.
"""

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from fastd3pg import rng as _rng
from fastd3pg._jit import jit, unit
from fastd3pg.control import core, metrics
from fastd3pg.control.configio import require
from fastd3pg.linalg import copy
from fastd3pg.nn import adam_step
from fastd3pg.nn import kernels as nnk
from fastd3pg.nn.normalizer import normalizer_update
from fastd3pg.physics import dispatch
from fastd3pg.policy import make_policy_arrays


@dataclass(frozen=True)
class GDConfig:
    """Settings of GD; the actor network is D3PG's."""

    lr: float = 1e-3  #: Adam learning rate
    gamma: float = 1.0  #: discount of the optimized return (1: the episode return itself)
    episodes_per_update: int = 1  #: episodes (fresh start states) averaged into one gradient
    hidden: tuple = (64, 64)  #: hidden layer widths of the actor
    activation: str = "relu"  #: hidden activation
    layer_norm: bool = True  #: layer norm on hidden layers (dense -> LayerNorm -> activation)
    out_init: float = 3e-3  #: output layer initialised U(±out_init), bias 0
    normalize_obs: bool = True  #: fixed observation normalization from random-controller states
    norm_steps: int = 400  #: random-controller steps that fix the normalization (timesteps)
    obs_clip: float = 5.0  #: clip of normalized observations
    patience: int = 20  #: evaluations without improvement before the run stops
    plateau_tol: float = 0.01  #: improvement of the normalized return_mean that counts
    adam_beta1: float = 0.9  #: Adam β1
    adam_beta2: float = 0.999  #: Adam β2
    adam_eps: float = 1e-8  #: Adam ε (added outside the square root)

    def validate(self):
        require([
            (self.lr > 0, "lr must be > 0"),
            (0 <= self.gamma <= 1, "gamma must lie in [0, 1]"),
            (self.episodes_per_update >= 1, "episodes_per_update must be >= 1"),
            (len(self.hidden) >= 1 and all(isinstance(h, int) and h > 0 for h in self.hidden),
             "hidden must be a non-empty list of positive integers"),
            (self.norm_steps >= 1 or not self.normalize_obs,
             "norm_steps must be >= 1 when normalize_obs is on"),
            (self.obs_clip > 0, "obs_clip must be > 0"),
            (self.patience >= 1 and self.plateau_tol >= 0,
             "patience must be >= 1 and plateau_tol >= 0"),
            (0 <= self.adam_beta1 < 1 and 0 <= self.adam_beta2 < 1 and self.adam_eps > 0,
             "Adam needs 0 <= beta < 1 and eps > 0"),
        ])


class Settings(NamedTuple):
    """:class:`GDConfig` as the compiled code reads it (built by :func:`make_settings`)."""

    task: core.Task
    obs: core.Normalization
    adam: core.AdamSettings
    gamma: float
    lr: float
    episodes_per_update: int


def make_settings(config, env) -> Settings:
    c = config
    return Settings(task=core.task_settings(env), obs=core.normalization_settings(c),
                    adam=core.adam_settings(c), gamma=float(c.gamma), lr=float(c.lr),
                    episodes_per_update=int(c.episodes_per_update))


class Nets(NamedTuple):
    theta: np.ndarray  # actor π
    m_theta: np.ndarray  # Adam moments
    v_theta: np.ndarray


class Stats(NamedTuple):
    """The running state of an agent (1-element arrays: see :mod:`fastd3pg.control.core`)."""

    obs: np.ndarray  # the fixed normalizer statistics
    total: np.ndarray  # simulated steps so far
    budget: np.ndarray  # simulated steps the driver has granted so far
    updates: np.ndarray  # updates so far
    adam_t: np.ndarray  # Adam's step count
    skipped: np.ndarray  # updates skipped for a non-finite gradient
    train_return: np.ndarray  # the last update's mean training return
    best: np.ndarray  # the plateau rule's best normalized return_mean
    since: np.ndarray  # evaluations since it last improved
    state: np.ndarray
    rng: np.ndarray  # training stream
    eval_rng: np.ndarray  # evaluation stream


class Work(NamedTuple):
    S: np.ndarray  # (T + 1, n) the episode's states
    X: np.ndarray  # (T, n) normalized states
    mask: np.ndarray  # (T, n) 1.0 where the clip is inactive
    A: np.ndarray  # (T, m) actions
    J_s: np.ndarray  # (T, n, n)
    J_a: np.ndarray  # (T, n, m)
    dr_ds: np.ndarray  # (T, n)
    dr_da: np.ndarray  # (T, m)
    abar: np.ndarray  # (T, m) ā_t, then the cotangents γ^t ā_t of the batched pass
    lam: np.ndarray  # (n,) λ_{t+1}
    lam_new: np.ndarray  # (n,) λ_t
    dX: np.ndarray  # (1, n)
    dtheta: np.ndarray  # one episode's -∂R/∂θ
    grad: np.ndarray  # the update's gradient
    wT: tuple  # actor workspace, batch T
    w1: tuple  # actor workspace, batch 1
    obs_mean: np.ndarray  # μ, σ of the fixed statistics
    obs_std: np.ndarray


def make_work(actor, T: int) -> Work:
    n, m = actor.n_in, actor.n_out
    z = np.zeros
    return Work(
        S=z((T + 1, n)), X=z((T, n)), mask=z((T, n)), A=z((T, m)), J_s=z((T, n, n)),
        J_a=z((T, n, m)), dr_ds=z((T, n)), dr_da=z((T, m)), abar=z((T, m)), lam=z(n),
        lam_new=z(n), dX=z((1, n)), dtheta=z(actor.num_params), grad=z(actor.num_params),
        wT=actor.workspace(T), w1=actor.workspace(1), obs_mean=z(n), obs_std=np.ones(n),
    )


@unit
def episode_gradient(p, spec_a, theta, stats, cfg, work, s0):
    """One episode of π_θ from ``s0``: returns ``(R, L)`` and writes ``-∂R/∂θ`` into
    ``work.dtheta`` (the adjoint sweep of the module docstring)."""
    task, T = cfg.task.kernels, cfg.task.horizon
    gamma = cfg.gamma
    n, m = work.S.shape[1], work.A.shape[1]
    core.obs_moments(stats.obs, cfg.obs.on, work.obs_mean, work.obs_std)
    work.S[0] = s0
    R = 0.0
    disc = 1.0
    L = 0
    for t in range(T):
        core.normalize_states(work.S[t:t + 1], work.obs_mean, work.obs_std, cfg.obs.clip,
                              work.X[t:t + 1], work.mask[t:t + 1])
        copy(work.A[t], nnk.forward(spec_a, theta, work.X[t:t + 1], work.w1)[0])
        r, terminated = dispatch.step_jac(task, p, work.S[t], work.A[t], work.S[t + 1],
                                          work.J_s[t], work.J_a[t], work.dr_ds[t], work.dr_da[t])
        R += disc * r
        disc *= gamma
        L = t + 1
        if terminated:
            break
    std = work.obs_std
    work.lam[:] = 0.0  # λ_L = 0
    for t in range(L - 1, -1, -1):
        for j in range(m):  # ā_t = dr/da_t + γ J_a,tᵀ λ_{t+1}
            acc = 0.0
            for k in range(n):
                acc += work.J_a[t, k, j] * work.lam[k]
            work.abar[t, j] = work.dr_da[t, j] + gamma * acc
        nnk.forward(spec_a, theta, work.X[t:t + 1], work.w1)
        nnk.input_vjp(spec_a, theta, work.w1, work.abar[t:t + 1], work.dX)
        for j in range(n):  # λ_t = dr/ds_t + γ J_s,tᵀ λ_{t+1} + (∂a_t/∂s_t)ᵀ ā_t
            acc = 0.0
            for k in range(n):
                acc += work.J_s[t, k, j] * work.lam[k]
            work.lam_new[j] = (work.dr_ds[t, j] + gamma * acc
                               + work.dX[0, j] * work.mask[t, j] / (std[j] + core.STD_EPS))
        copy(work.lam, work.lam_new)
    # -∂R/∂θ = -Σ_t γ^t (∂π/∂θ)ᵀ ā_t, in one batched reverse pass.
    disc = 1.0
    for t in range(L):
        for j in range(m):
            work.abar[t, j] *= -disc
        disc *= gamma
    nnk.forward(spec_a, theta, work.X[:L], work.wT)
    nnk.param_vjp(spec_a, theta, work.wT, work.abar[:L], work.dtheta)
    return R, L


@jit
def random_state_statistics(p, stats, cfg, steps, work):
    """Merge ``steps`` states of a uniform random controller into ``stats.obs``."""
    task, T = cfg.task.kernels, cfg.task.horizon
    s, a = work.S[0], work.A[0]
    dispatch.reset(task, p, stats.rng, s)
    t = 0
    for _ in range(steps):
        normalizer_update(stats.obs, s.reshape((1, s.shape[0])))
        for j in range(a.shape[0]):
            a[j] = 2.0 * _rng.uniform(stats.rng) - 1.0
        _, terminated = dispatch.step(task, p, s, a, work.S[1])
        copy(s, work.S[1])
        t += 1
        if terminated or t >= T:
            dispatch.reset(task, p, stats.rng, s)
            t = 0
    stats.total[0] += steps


@jit
def train_period(n_steps, p, spec_a, nets, stats, cfg, work):
    """Updates until the run's simulated steps reach its budget, raised by ``n_steps``."""
    stats.budget[0] += n_steps
    k = cfg.episodes_per_update
    while stats.total[0] < stats.budget[0]:
        work.grad[:] = 0.0
        total = 0.0
        for _ in range(k):
            dispatch.reset(cfg.task.kernels, p, stats.rng, stats.state)
            R, L = episode_gradient(p, spec_a, nets.theta, stats, cfg, work, stats.state)
            stats.total[0] += L
            total += R / k
            for i in range(work.grad.shape[0]):
                work.grad[i] += work.dtheta[i] / k
        stats.train_return[0] = total
        if not np.all(np.isfinite(work.grad)):
            stats.skipped[0] += 1
            continue
        stats.adam_t[0] += 1
        a = cfg.adam
        adam_step(nets.theta, work.grad, nets.m_theta, nets.v_theta, stats.adam_t[0], cfg.lr,
                  a.beta1, a.beta2, a.eps)
        stats.updates[0] += 1
    return stats.train_return[0]


class GDAgent:
    """Holds the arrays of a GD run (the training driver's interface, plus :meth:`done`)."""

    config_class = GDConfig

    def __init__(self, env, config, seed: int, total_steps: int | None = None):
        if not env.differentiable_reward:
            raise ValueError(f"gd needs a differentiable reward; {env.name}'s reward has no "
                             f"useful derivative (use ddpg, d3pg, sac or d3pg-sac)")
        self.env, self.config = env, config
        c = config
        n, m, T = env.state_dim, env.action_dim, env.horizon
        # The same actor and seed streams as D3PG's agent, so that every method starts alike.
        self.actor, theta = core.initial_actor(env, c, seed)
        seeds = core.run_seeds(seed)
        self.nets = Nets(theta=theta, m_theta=np.zeros_like(theta), v_theta=np.zeros_like(theta))
        self.stats = Stats(
            obs=np.zeros(2 * n + 1), total=core.counter(), budget=core.counter(),
            updates=core.counter(), adam_t=core.counter(), skipped=core.counter(),
            train_return=core.scalar(), best=core.scalar(-np.inf), since=core.counter(),
            state=np.zeros(n), rng=_rng.make_rng(int(seeds[2])),
            eval_rng=_rng.make_rng(int(seeds[3])),
        )
        self.settings = make_settings(c, env)
        self.work = make_work(self.actor, T)
        self.eval_work = core.make_act_work(self.actor, n, m)
        self._normalize = None  # the metrics' normalizer, made at the first evaluation
        if c.normalize_obs:
            random_state_statistics(env.params, self.stats, self.settings, c.norm_steps,
                                    self.work)

    @property
    def timesteps(self) -> int:
        return int(self.stats.total[0])

    def train(self, n_steps: int) -> float:
        return train_period(n_steps, self.env.params, self.actor.spec, self.nets, self.stats,
                            self.settings, self.work)

    def episode_gradient(self, s0, theta=None):
        """``(R, ∂R/∂θ)`` of one episode from ``s0`` (at ``theta``, default the actor's)."""
        theta = self.nets.theta if theta is None else np.ascontiguousarray(theta, dtype=float)
        s0 = self.env._check(s0, self.env.state_dim, "s0")
        R, _ = episode_gradient(self.env.params, self.actor.spec, theta, self.stats,
                                self.settings, self.work, s0)
        return R, -self.work.dtheta.copy()

    def evaluate(self) -> float:
        """One deterministic episode's return; also advances the plateau rule."""
        s = self.settings
        raw = core.evaluate(self.env.params, self.actor.spec, self.nets.theta, s.task, s.obs,
                            self.stats.obs, self.stats.eval_rng, self.eval_work)
        if self._normalize is None:
            self._normalize = metrics.normalizer(self.env)
        value = self._normalize(raw)
        st = self.stats
        if value > st.best[0] + self.config.plateau_tol:
            st.best[0], st.since[0] = value, 0
        else:
            st.since[0] += 1
        return raw

    def done(self) -> bool:
        """True once ``patience`` evaluations in a row brought no improvement."""
        return bool(self.stats.since[0] >= self.config.patience)

    def stop_reason(self) -> str:
        """Why :meth:`done` ended the run, in words (for the driver's ``stopped early`` line)."""
        return "return_mean plateaued"

    def finite(self) -> bool:
        return bool(np.all(np.isfinite(self.nets.theta)))

    def state_arrays(self) -> dict:
        return core.group_arrays({"nets": self.nets, "stats": self.stats})

    def load_state_arrays(self, arrays: dict):
        core.load_group_arrays({"nets": self.nets, "stats": self.stats}, arrays)

    def policy_arrays(self) -> dict:
        obs = self.settings.obs
        mean, std = core.current_obs_moments(self.stats.obs, obs.on)
        return make_policy_arrays(self.env.name, self.actor, self.nets.theta, mean, std, obs.clip)
