"""``--algo mpc``: receding-horizon iLQR (the paper's §5.2) as a training-driver agent.

Each env step re-plans ``horizon`` actions from the current state with up to
``iters_per_step`` iLQR iterations (:func:`fastd3pg.control.ilqr.ilqr_plan`, compiled), warm
started from the previous plan shifted by one step, and applies the plan's first action. The
first plan of every episode is one rollout of the *initial actor network* that D3PG, DDPG and
GD start from (same seed, same initialisation), optimised with ``first_iters`` iterations.

Metric (the paper's §5.2): every time an action is returned, the *predicted cumulative return*:
the rewards received so far in the episode plus the plan's predicted rewards over the part of
the episode it covers. ``timesteps`` are env steps; the driver records the latest prediction
every 800 of them. MPC trains nothing: ``policy.npz`` holds the initial actor.

Compiled: a whole call of :meth:`MPCAgent.train` (re-planning, stepping, the episodes' starts
and their actor rollouts) is one compiled call, :func:`train_period`, around
:func:`fastd3pg.control.ilqr.ilqr_kernel`; it allocates nothing but the kernel's own work
arrays. It computes exactly what :func:`fastd3pg.control.ilqr.ilqr_plan` and the actor's
:meth:`fastd3pg.nn.MLP.forward` compute, and sums the plan's predicted rewards in NumPy's
order (:func:`numpy_sum`), so its numbers are bit for bit those of the same loop in Python.
"""

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from fastd3pg import rng as _rng
from fastd3pg._jit import jit
from fastd3pg.control import core
from fastd3pg.control.configio import require
from fastd3pg.control.ilqr import ilqr_kernel
from fastd3pg.nn import kernels as nnk
from fastd3pg.physics import dispatch
from fastd3pg.policy import make_policy_arrays

# ilqr_plan's defaults, which MPC uses.
TOL_FUN, TOL_GRAD, Z_MIN, GN_FLOOR = 1e-7, 1e-4, 0.0, 1e-6


@dataclass(frozen=True)
class MPCConfig:
    """Settings of receding-horizon iLQR."""

    horizon: int = 50  #: planning horizon H in steps (per task in fastd3pg/configs)
    iters_per_step: int = 5  #: iLQR iterations before each action (warm started)
    first_iters: int = 50  #: iLQR iterations on an episode's first plan
    mu0: float = 1.0  #: initial Levenberg–Marquardt regularization
    hidden: tuple = (64, 64)  #: the initial actor's hidden widths (as D3PG's)
    activation: str = "relu"  #: the initial actor's activation (as D3PG's)
    layer_norm: bool = True  #: the initial actor's layer norm (as D3PG's)
    out_init: float = 3e-3  #: the initial actor's output-layer scale (as D3PG's)
    obs_clip: float = 5.0  #: clip of the initial actor's input (D3PG's, before any statistics)

    def validate(self):
        require([
            (self.horizon >= 1 and self.iters_per_step >= 1 and self.first_iters >= 1,
             "horizon, iters_per_step and first_iters must be >= 1"),
            (self.mu0 > 0 and self.obs_clip > 0, "mu0 and obs_clip must be > 0"),
        ])


class Settings(NamedTuple):
    """:class:`MPCConfig` as the compiled loop reads it."""

    task: core.Task
    max_reward: float
    iters_per_step: int
    first_iters: int
    mu0: float
    obs_clip: float


class Running(NamedTuple):
    """The agent's running state (the arrays :meth:`MPCAgent.state_arrays` checkpoints)."""

    state: np.ndarray  # (n,) the env's current state
    plan: np.ndarray  # (H, m) the warm start of the next plan
    rollout: np.ndarray  # (T + H, m) the initial actor's actions this episode
    total: np.ndarray  # env steps so far
    episode_t: np.ndarray  # steps in the current episode
    episode_return: np.ndarray  # rewards received so far in the episode
    predicted: np.ndarray  # the latest predicted cumulative return
    rng: np.ndarray  # the training stream (start states)


class Work(NamedTuple):
    U: np.ndarray  # (H, m) the plan being optimised
    X: np.ndarray  # (H + 1, n) its states (iLQR's, then the reward rollout's)
    R: np.ndarray  # (H,) its predicted rewards
    hist: np.ndarray  # iLQR's cost history
    s: np.ndarray  # (n,) a rollout's state
    s_next: np.ndarray  # (n,)
    x: np.ndarray  # (1, n) the actor's input
    net: tuple  # the actor's workspace, batch 1


def make_work(actor, n: int, m: int, config) -> Work:
    H = config.horizon
    return Work(U=np.zeros((H, m)), X=np.zeros((H + 1, n)), R=np.zeros(H),
                hist=np.zeros(max(config.first_iters, config.iters_per_step) + 1),
                s=np.zeros(n), s_next=np.zeros(n), x=np.zeros((1, n)), net=actor.workspace(1))


@jit
def _block_sum(a, lo, hi):
    """NumPy's sum of at most 128 elements: a plain loop below 8, else 8 partial sums."""
    n = hi - lo
    if n < 8:
        res = 0.0
        for i in range(lo, hi):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    end = lo + n - n % 8
    for i in range(lo + 8, end, 8):
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for i in range(end, hi):
        res += a[i]
    return res


@jit
def numpy_sum(a, lo, hi):
    """``a[lo:hi].sum()`` in NumPy's order (pairwise: halves, cut at a multiple of 8, down to
    blocks of at most 128), so that compiled sums match NumPy's bit for bit. Longer arrays are
    walked with an explicit stack (Numba's cache does not take recursive functions)."""
    if hi - lo <= 128:
        return _block_sum(a, lo, hi)
    size = 256  # the halving tree is at most 64 deep, each level holds at most 3 entries
    los, his = np.empty(size, dtype=np.int64), np.empty(size, dtype=np.int64)
    split, vals = np.zeros(size, dtype=np.bool_), np.empty(size)
    top, nv = 0, 0
    los[0], his[0], split[0] = lo, hi, False
    while top >= 0:
        l, h, was_split = los[top], his[top], split[top]
        top -= 1
        if h - l <= 128:
            vals[nv] = _block_sum(a, l, h)
            nv += 1
        elif was_split:
            vals[nv - 2] = vals[nv - 2] + vals[nv - 1]
            nv -= 1
        else:
            n2 = (h - l) // 2
            n2 -= n2 % 8
            los[top + 1], his[top + 1], split[top + 1] = l, h, True
            los[top + 2], his[top + 2], split[top + 2] = l + n2, h, False
            los[top + 3], his[top + 3], split[top + 3] = l, l + n2, False
            top += 3
    return vals[0]


@jit
def start_episode(p, spec_a, theta, cfg, run, w):
    """A fresh start state; the initial actor's rollout from it, whose first ``H`` actions are
    the first plan."""
    task = cfg.task.task_id
    dispatch.reset(task, p, run.rng, run.state)
    s, n = w.s, w.s.shape[0]
    s[:] = run.state
    rollout = run.rollout
    T, m = rollout.shape
    for t in range(T):
        for j in range(n):
            w.x[0, j] = min(max(s[j], -cfg.obs_clip), cfg.obs_clip)
        rollout[t] = nnk.forward(spec_a, theta, w.x, w.net)[0]
        _, terminated = dispatch.step(task, p, s, rollout[t], w.s_next)
        s[:] = w.s_next
        if terminated:
            for u in range(t + 1, T):
                rollout[u] = rollout[t]
            break
    run.plan[:, :] = rollout[:run.plan.shape[0]]
    run.episode_t[0] = 0
    run.episode_return[0] = 0.0


@jit
def plan_rewards(task, p, s0, U, X, R):
    """The rewards ``R`` of the plan ``U`` from ``s0`` (0 after a predicted termination)."""
    X[0] = s0
    R[:] = 0.0
    for t in range(U.shape[0]):
        X[t + 1] = X[t]
        r, terminated = dispatch.step(task, p, X[t], U[t], X[t + 1])
        R[t] = r
        if terminated:
            break


@jit
def train_period(n_steps, p, spec_a, theta, cfg, run, w):
    """``n_steps`` env steps of receding-horizon iLQR; returns the latest prediction."""
    task, horizon = cfg.task.task_id, cfg.task.horizon
    U, plan, rollout = w.U, run.plan, run.rollout
    H = U.shape[0]
    for _ in range(n_steps):
        t = run.episode_t[0]
        U[:, :] = plan
        ilqr_kernel(task, p, cfg.max_reward, run.state, U, w.X,
                    cfg.first_iters if t == 0 else cfg.iters_per_step, cfg.mu0, TOL_FUN,
                    TOL_GRAD, Z_MIN, GN_FLOOR, w.hist)
        plan_rewards(task, p, run.state, U, w.X, w.R)
        covered = min(H, horizon - t)
        run.predicted[0] = run.episode_return[0] + numpy_sum(w.R, 0, covered)
        r, terminated = dispatch.step(task, p, run.state, U[0], w.s_next)
        run.state[:] = w.s_next
        run.episode_return[0] += r
        run.total[0] += 1
        run.episode_t[0] += 1
        if terminated or run.episode_t[0] >= horizon:
            start_episode(p, spec_a, theta, cfg, run, w)
            continue
        # Warm start: shift by one; the new last action from the initial rollout.
        plan[:H - 1] = U[1:]
        plan[H - 1] = rollout[min(t + H, rollout.shape[0] - 1)]
    return run.predicted[0]


class MPCAgent:
    """The driver's interface over receding-horizon iLQR (see the module docstring)."""

    config_class = MPCConfig

    def __init__(self, env, config, seed: int, total_steps: int | None = None):
        if not env.differentiable_reward:
            raise ValueError(f"mpc needs a differentiable reward; {env.name}'s reward has no "
                             f"useful derivative (use ddpg, d3pg, sac or d3pg-sac)")
        self.env, self.config = env, config
        self.actor, self.theta = core.initial_actor(env, config, seed)
        n, m = env.state_dim, env.action_dim
        # The training stream of D3PG's agent: the first episode starts from the same state.
        self.rng = _rng.make_rng(int(core.run_seeds(seed)[2]))
        self.state = np.zeros(n)
        self.plan = np.zeros((config.horizon, m))
        self.rollout = np.zeros((env.horizon + config.horizon, m))  # initial actor's actions
        self.total, self.episode_t = core.counter(), core.counter()  # env steps: run, episode
        self.episode_return = core.scalar()  # rewards received so far in the episode
        self.predicted = core.scalar(np.nan)  # the latest predicted cumulative return
        self.settings = Settings(
            task=core.task_settings(env), max_reward=float(env.max_reward),
            iters_per_step=int(config.iters_per_step), first_iters=int(config.first_iters),
            mu0=float(config.mu0), obs_clip=float(config.obs_clip))
        self.running = Running(**{name: getattr(self, name) for name in Running._fields})
        self.work = make_work(self.actor, n, m, config)
        self._start_episode()

    def _actor_action(self, s):
        x = np.clip(s, -self.config.obs_clip, self.config.obs_clip).reshape(1, -1)
        return self.actor.forward(self.theta, x)[0]

    def _start_episode(self):
        start_episode(self.env.params, self.actor.spec, self.theta, self.settings, self.running,
                      self.work)

    @property
    def timesteps(self) -> int:
        return int(self.total[0])

    def train(self, n_steps: int) -> float:
        return float(train_period(n_steps, self.env.params, self.actor.spec, self.theta,
                                  self.settings, self.running, self.work))

    def evaluate(self) -> float:
        """The latest predicted cumulative return (the paper's MPC metric, §5.2)."""
        return float(self.predicted[0])

    def finite(self) -> bool:
        return bool(np.isfinite(self.predicted[0]) and np.all(np.isfinite(self.plan)))

    _STATE = Running._fields

    def state_arrays(self) -> dict:
        return {name: getattr(self, name) for name in self._STATE}

    def load_state_arrays(self, arrays: dict):
        for name in self._STATE:
            target = getattr(self, name)
            if name not in arrays or arrays[name].shape != target.shape:
                raise ValueError(f"checkpoint lacks a matching {name}")
            target[...] = arrays[name]

    def policy_arrays(self) -> dict:
        """The initial actor on raw states clipped at ``obs_clip`` (as :meth:`_actor_action`)."""
        return make_policy_arrays(self.env.name, self.actor, self.theta,
                                  obs_clip=self.config.obs_clip)
