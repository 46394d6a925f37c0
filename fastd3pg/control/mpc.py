"""``--algo mpc``: receding-horizon iLQR (the paper's §5.2) as a training-driver agent.

A run is one episode: the paper's MPC "performs one simulation optimized online". Before each
env step it re-plans ``horizon`` (H) actions from the current state with up to
``iters_per_step`` iLQR iterations (:func:`fastd3pg.control.ilqr.ilqr_plan`, compiled), warm
started from the previous plan shifted by one step, and applies the plan's first action. The
first plan is one rollout of the *initial actor network* that D3PG, DDPG and GD start from (same
seed, same initialisation, same first state), optimised with ``first_iters`` iterations; that
rollout's actions (``rollout``, T + H of them) also fill each shifted plan's new last action.

Metric (the paper's §5.2). At every returned action, before it is applied at step ``t``, the
*predicted cumulative return* of the episode::

    the rewards received at steps 0 … t-1
  + the plan's predicted rewards over the part of the episode it covers, steps t … min(t+H, T)-1
  + the predicted rewards of the remaining initialized actions, rollout[t+H:T], applied open
    loop from the plan's predicted final state

where each predicted part ends with a predicted termination (a termination inside the plan
leaves no remaining part). The driver writes one ``metrics.csv`` row per returned action
(:meth:`MPCAgent.returns_per_action`): ``timesteps`` the env steps so far, that action's
included. MPC trains nothing: ``policy.npz`` holds the initial actor.

When the run ends (:meth:`MPCAgent.done`, :meth:`MPCAgent.stop_reason`): at the first of

- the episode's end: a termination, or the task's horizon T;
- convergence: the predictions at the last H + 1 returned actions lie within ``converge_tol``
  of each other in normalized units (a fraction of the span from the random controller's
  return to ``max_reward × T``): the predicted return changed by at most that over the last H
  actions (``converge_tol = 0``: never);
- the driver's ``--steps`` budget.

Before ``--steps`` the driver reports ``stopped early at timestep T``, as for GD's plateau, so
that a sweep counts the run as finished. Why this convergence rule: the paper ends MPC "when MPC
converges" and plots exactly this prediction; iLQR's own test of convergence is an improvement
of its objective below a tolerance (Tassa et al. 2012), and this is that test applied to the
receding-horizon loop's objective, the predicted return of the whole episode. With the
deterministic simulator the warm start predicts what the previous plan predicted (its first
reward is received as predicted, and the shifted plan and the remaining initialized actions
continue from the same states), so the prediction moves only when re-planning changes the plan;
while it rests, MPC is executing the plan it already had. The window is the planning horizon:
by its end every action that was in the plan when it opened has been re-planned during its
whole stay in the plan, without effect. Shorter windows or wider tolerances stop too soon: on
Pendulum (seed 0) the prediction rests within 0.003 for about 40 actions near 0.79 before the
plans find the balance and it rises to 0.89.

Compiled: a whole call of :meth:`MPCAgent.train` (re-planning, predicting, stepping, the test of
the run's end) is one compiled call, :func:`train_period`, around
:func:`fastd3pg.control.ilqr.ilqr_kernel`, which writes each action's prediction into
``predictions``; it allocates nothing but the kernel's own work arrays. It computes exactly what
:func:`fastd3pg.control.ilqr.ilqr_plan` and the actor's :meth:`fastd3pg.nn.MLP.forward`
compute, and sums predicted rewards in NumPy's order (:func:`numpy_sum`), so its numbers are
bit for bit those of the same loop in Python.
"""

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from fastd3pg import rng as _rng
from fastd3pg._jit import jit
from fastd3pg.control import core, metrics
from fastd3pg.control.configio import require
from fastd3pg.control.ilqr import ilqr_kernel
from fastd3pg.linalg import copy
from fastd3pg.nn import kernels as nnk
from fastd3pg.physics import dispatch
from fastd3pg.policy import make_policy_arrays

# ilqr_plan's defaults, which MPC uses.
TOL_FUN, TOL_GRAD, Z_MIN, GN_FLOOR = 1e-7, 1e-4, 0.0, 1e-6

# Running.stop: the run goes on, or why it ended.
RUNNING, TERMINATED, AT_HORIZON, CONVERGED = 0, 1, 2, 3


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
    #: convergence: the normalized prediction moved by at most this over the last ``horizon``
    #: actions (0: never; see the module docstring)
    converge_tol: float = 1e-4

    def validate(self):
        require([
            (self.horizon >= 1 and self.iters_per_step >= 1 and self.first_iters >= 1,
             "horizon, iters_per_step and first_iters must be >= 1"),
            (self.mu0 > 0 and self.obs_clip > 0, "mu0 and obs_clip must be > 0"),
            (self.converge_tol >= 0, "converge_tol must be >= 0"),
        ])


class Settings(NamedTuple):
    """:class:`MPCConfig` as the compiled loop reads it."""

    task: core.Task
    max_reward: float
    iters_per_step: int
    first_iters: int
    mu0: float
    obs_clip: float
    converge_band: float  # converge_tol in raw return units (× the normalization's span)


class Running(NamedTuple):
    """The agent's running state (the arrays :meth:`MPCAgent.state_arrays` checkpoints)."""

    state: np.ndarray  # (n,) the env's current state
    plan: np.ndarray  # (H, m) the warm start of the next plan
    rollout: np.ndarray  # (T + H, m) the initial actor's actions
    total: np.ndarray  # env steps so far (a run is one episode: also the episode's step)
    episode_return: np.ndarray  # rewards received so far
    predictions: np.ndarray  # (T,) the predicted cumulative return at each returned action
    stop: np.ndarray  # RUNNING, or why the run ended (TERMINATED, AT_HORIZON, CONVERGED)
    rng: np.ndarray  # the training stream (the start state)


class Work(NamedTuple):
    U: np.ndarray  # (H, m) the plan being optimised
    X: np.ndarray  # (H + 1, n) its states (iLQR's, then the reward rollout's)
    R: np.ndarray  # (H,) its predicted rewards
    tail: np.ndarray  # (T,) the predicted rewards of the remaining initialized actions
    hist: np.ndarray  # iLQR's cost history
    s: np.ndarray  # (n,) a rollout's state
    s_next: np.ndarray  # (n,)
    x: np.ndarray  # (1, n) the actor's input
    net: tuple  # the actor's workspace, batch 1


def make_work(actor, n: int, m: int, T: int, config) -> Work:
    H = config.horizon
    return Work(U=np.zeros((H, m)), X=np.zeros((H + 1, n)), R=np.zeros(H), tail=np.zeros(T),
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
    """The start state; the initial actor's rollout from it, whose first ``H`` actions are the
    first plan (after a termination the rollout repeats its last action)."""
    task = cfg.task.kernels
    dispatch.reset(task, p, run.rng, run.state)
    s, n = w.s, w.s.shape[0]
    copy(s, run.state)
    rollout = run.rollout
    T, m = rollout.shape
    for t in range(T):
        for j in range(n):
            w.x[0, j] = min(max(s[j], -cfg.obs_clip), cfg.obs_clip)
        copy(rollout[t], nnk.forward(spec_a, theta, w.x, w.net)[0])
        _, terminated = dispatch.step(task, p, s, rollout[t], w.s_next)
        copy(s, w.s_next)
        if terminated:
            for u in range(t + 1, T):
                copy(rollout[u], rollout[t])
            break
    copy(run.plan, rollout[:run.plan.shape[0]])
    run.total[0] = 0
    run.episode_return[0] = 0.0
    run.predictions[:] = np.nan
    run.stop[0] = RUNNING


@jit
def plan_rewards(task, p, s0, U, X, R):
    """The rewards ``R`` of the plan ``U`` from ``s0`` (0 after a predicted termination) and its
    states ``X`` (up to that termination); returns whether it predicts a termination."""
    X[0] = s0
    R[:] = 0.0
    for t in range(U.shape[0]):
        X[t + 1] = X[t]
        r, terminated = dispatch.step(task, p, X[t], U[t], X[t + 1])
        R[t] = r
        if terminated:
            return True
    return False


@jit
def open_loop_rewards(task, p, s0, actions, lo, hi, s, s_next, R):
    """The rewards ``R[:k]`` of ``actions[lo:hi]`` applied open loop from ``s0``, ``k`` steps up
    to and including a predicted termination; returns ``k``."""
    copy(s, s0)
    for u in range(lo, hi):
        r, terminated = dispatch.step(task, p, s, actions[u], s_next)
        R[u - lo] = r
        copy(s, s_next)
        if terminated:
            return u - lo + 1
    return hi - lo


@jit
def predicted_return(task, p, horizon, t, received, s, U, rollout, w):
    """The predicted cumulative return of the episode at step ``t`` (the module docstring):
    ``received`` + the plan ``U``'s rewards from ``s`` within the episode + the remaining
    initialized actions' rewards from the plan's final state."""
    H = U.shape[0]
    terminated = plan_rewards(task, p, s, U, w.X, w.R)
    total = received + numpy_sum(w.R, 0, min(H, horizon - t))
    if not terminated and t + H < horizon:
        k = open_loop_rewards(task, p, w.X[H], rollout, t + H, horizon, w.s, w.s_next, w.tail)
        total += numpy_sum(w.tail, 0, k)
    return total


@jit
def converged(predictions, t, window, band):
    """Whether the predictions at actions ``t - window … t`` lie within ``band``."""
    if band <= 0.0 or t < window:
        return False
    low = high = predictions[t]
    for k in range(t - window, t):
        low, high = min(low, predictions[k]), max(high, predictions[k])
    return high - low <= band


@jit
def train_period(n_steps, p, spec_a, theta, cfg, run, w):
    """Up to ``n_steps`` env steps of receding-horizon iLQR, fewer when the run ends (the
    module docstring); each action's prediction goes into ``run.predictions``. Returns the
    steps taken."""
    task, horizon = cfg.task.kernels, cfg.task.horizon
    U, plan, rollout = w.U, run.plan, run.rollout
    H = U.shape[0]
    taken = 0
    while taken < n_steps and run.stop[0] == RUNNING:
        t = run.total[0]
        copy(U, plan)
        ilqr_kernel(task, p, cfg.max_reward, run.state, U, w.X,
                    cfg.first_iters if t == 0 else cfg.iters_per_step, cfg.mu0, TOL_FUN,
                    TOL_GRAD, Z_MIN, GN_FLOOR, w.hist)
        run.predictions[t] = predicted_return(task, p, horizon, t, run.episode_return[0],
                                              run.state, U, rollout, w)
        r, terminated = dispatch.step(task, p, run.state, U[0], w.s_next)
        copy(run.state, w.s_next)
        run.episode_return[0] += r
        run.total[0] = t + 1
        taken += 1
        if terminated:
            run.stop[0] = TERMINATED
        elif t + 1 >= horizon:
            run.stop[0] = AT_HORIZON
        elif converged(run.predictions, t, H, cfg.converge_band):
            run.stop[0] = CONVERGED
        else:
            # Warm start: shift by one; the new last action from the initial rollout.
            copy(plan[:H - 1], U[1:])
            copy(plan[H - 1], rollout[t + H])
    return taken


class MPCAgent:
    """The driver's interface over receding-horizon iLQR (see the module docstring), plus
    :meth:`returns_per_action` (a ``metrics.csv`` row per returned action), :meth:`done` and
    :meth:`stop_reason` (the run's end)."""

    config_class = MPCConfig

    def __init__(self, env, config, seed: int, total_steps: int | None = None):
        if not env.differentiable_reward:
            raise ValueError(f"mpc needs a differentiable reward; {env.name}'s reward has no "
                             f"useful derivative (use ddpg, d3pg, sac or d3pg-sac)")
        self.env, self.config = env, config
        self.actor, self.theta = core.initial_actor(env, config, seed)
        n, m, T = env.state_dim, env.action_dim, env.horizon
        # The training stream of D3PG's agent: the episode starts from D3PG's first state.
        self.rng = _rng.make_rng(int(core.run_seeds(seed)[2]))
        self.state = np.zeros(n)
        self.plan = np.zeros((config.horizon, m))
        self.rollout = np.zeros((T + config.horizon, m))  # the initial actor's actions
        self.total = core.counter()  # env steps so far
        self.episode_return = core.scalar()  # rewards received so far
        self.predictions = np.full(T, np.nan)  # the prediction at each returned action
        self.stop = core.counter()  # RUNNING, or why the run ended
        _, span = metrics.scale(env)
        self.settings = Settings(
            task=core.task_settings(env), max_reward=float(env.max_reward),
            iters_per_step=int(config.iters_per_step), first_iters=int(config.first_iters),
            mu0=float(config.mu0), obs_clip=float(config.obs_clip),
            converge_band=float(config.converge_tol) * span)
        self.running = Running(**{name: getattr(self, name) for name in Running._fields})
        self.work = make_work(self.actor, n, m, T, config)
        self._first = 0  # the first step of the latest train() call
        start_episode(env.params, self.actor.spec, self.theta, self.settings, self.running,
                      self.work)

    def _actor_action(self, s):
        x = np.clip(s, -self.config.obs_clip, self.config.obs_clip).reshape(1, -1)
        return self.actor.forward(self.theta, x)[0]

    @property
    def timesteps(self) -> int:
        return int(self.total[0])

    def train(self, n_steps: int) -> int:
        """Up to ``n_steps`` env steps, fewer when the run ends; returns the steps taken."""
        self._first = self.timesteps
        return int(train_period(n_steps, self.env.params, self.actor.spec, self.theta,
                                self.settings, self.running, self.work))

    def returns_per_action(self) -> np.ndarray:
        """The predicted cumulative return (raw) at each action the latest :meth:`train`
        returned, in order: the paper's MPC metric, one ``metrics.csv`` row each."""
        return self.predictions[self._first:self.timesteps].copy()

    def evaluate(self) -> float:
        """The latest predicted cumulative return (NaN before the first action)."""
        t = self.timesteps
        return float(self.predictions[t - 1]) if t else float("nan")

    def done(self) -> bool:
        """True once the episode has ended or MPC has converged (the module docstring)."""
        return bool(self.stop[0] != RUNNING)

    def stop_reason(self) -> str:
        """Why the run ended, in words (for the driver's ``stopped early`` line)."""
        code, t = int(self.stop[0]), self.timesteps
        if code == TERMINATED:
            return f"the episode terminated after {t} steps (an mpc run is one episode)"
        if code == AT_HORIZON:
            return f"the episode reached the task's horizon, {t} steps (an mpc run is one episode)"
        if code == CONVERGED:
            return (f"mpc converged (its normalized predicted return moved by at most "
                    f"{self.config.converge_tol:g} over the last {self.config.horizon} actions)")
        return "mpc is still running"

    def finite(self) -> bool:
        return bool(np.all(np.isfinite(self.predictions[:self.timesteps]))
                    and np.all(np.isfinite(self.plan)))

    _STATE = Running._fields

    def state_arrays(self) -> dict:
        return {name: getattr(self, name) for name in self._STATE}

    def load_state_arrays(self, arrays: dict):
        for name in self._STATE:
            target = getattr(self, name)
            if name not in arrays or arrays[name].shape != target.shape:
                raise ValueError(f"checkpoint lacks a matching {name}")
            target[...] = arrays[name]
        self._first = self.timesteps

    def policy_arrays(self) -> dict:
        """The initial actor on raw states clipped at ``obs_clip`` (as :meth:`_actor_action`)."""
        return make_policy_arrays(self.env.name, self.actor, self.theta,
                                  obs_clip=self.config.obs_clip)
