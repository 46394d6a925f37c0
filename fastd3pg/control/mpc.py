"""``--algo mpc``: receding-horizon iLQR (PAPER.md §5) as a training-driver agent.

Each env step re-plans ``horizon`` actions from the current state with up to
``iters_per_step`` iLQR iterations (:func:`fastd3pg.control.ilqr.ilqr_plan`, compiled), warm
started from the previous plan shifted by one step, and applies the plan's first action. The
first plan of every episode is one rollout of the *initial actor network* that D3PG, DDPG and
GD start from (same seed, same initialisation), optimised with ``first_iters`` iterations.

Metric (PAPER.md §6): every time an action is returned, the *predicted cumulative return*:
the rewards received so far in the episode plus the plan's predicted rewards over the part of
the episode it covers. ``timesteps`` are env steps; the driver records the latest prediction
every 800 of them. MPC trains nothing: ``policy.npz`` holds the initial actor.
"""

from dataclasses import dataclass

import numpy as np

from fastd3pg import rng as _rng
from fastd3pg.control import core
from fastd3pg.control.configio import require
from fastd3pg.control.ilqr import ilqr_plan
from fastd3pg.physics import dispatch
from fastd3pg.policy import make_policy_arrays


@dataclass(frozen=True)
class MPCConfig:
    """Settings of receding-horizon iLQR."""

    horizon: int = 50  #: planning horizon H in steps (per task in runs/configs)
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
        self._start_episode()

    def _actor_action(self, s):
        x = np.clip(s, -self.config.obs_clip, self.config.obs_clip).reshape(1, -1)
        return self.actor.forward(self.theta, x)[0]

    def _start_episode(self):
        env, H = self.env, self.config.horizon
        dispatch.reset(env.task_id, env.params, self.rng, self.state)
        s = self.state.copy()
        out = np.empty(env.state_dim)
        for t in range(self.rollout.shape[0]):
            self.rollout[t] = self._actor_action(s)
            _, terminated = dispatch.step(env.task_id, env.params, s, self.rollout[t], out)
            s[:] = out
            if terminated:
                self.rollout[t + 1:] = self.rollout[t]
                break
        self.plan[:] = self.rollout[:H]
        self.episode_t[0] = 0
        self.episode_return[0] = 0.0

    @property
    def timesteps(self) -> int:
        return int(self.total[0])

    def train(self, n_steps: int) -> float:
        env, c = self.env, self.config
        out = np.empty(env.state_dim)
        for _ in range(n_steps):
            t = int(self.episode_t[0])
            plan = ilqr_plan(env, self.state, self.plan,
                             c.first_iters if t == 0 else c.iters_per_step, mu0=c.mu0)
            covered = min(c.horizon, env.horizon - t)
            self.predicted[0] = self.episode_return[0] + float(plan.rewards[:covered].sum())
            r, terminated = dispatch.step(env.task_id, env.params, self.state,
                                          plan.actions[0], out)
            self.state[:] = out
            self.episode_return[0] += r
            self.total[0] += 1
            self.episode_t[0] += 1
            if terminated or self.episode_t[0] >= env.horizon:
                self._start_episode()
                continue
            # Warm start: shift by one; the new last action from the initial rollout.
            self.plan[:-1] = plan.actions[1:]
            self.plan[-1] = self.rollout[min(t + c.horizon, self.rollout.shape[0] - 1)]
        return float(self.predicted[0])

    def evaluate(self) -> float:
        """The latest predicted cumulative return (PAPER.md §6's MPC metric)."""
        return float(self.predicted[0])

    def finite(self) -> bool:
        return bool(np.isfinite(self.predicted[0]) and np.all(np.isfinite(self.plan)))

    _STATE = ("state", "plan", "rollout", "total", "episode_t", "episode_return", "predicted",
              "rng")

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
