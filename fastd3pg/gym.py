"""Every task as a Gymnasium environment (optional extra: ``pip install "fastd3pg[gym]"``).

>>> import gymnasium
>>> import fastd3pg.gym                      # registers fastd3pg/<Task>-v0 for every task
>>> env = gymnasium.make("fastd3pg/Pendulum-v0", render_mode="rgb_array", jacobians=True)
>>> obs, info = env.reset(seed=0)
>>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
>>> info["J_s"].shape, info["J_a"].shape    # ∂s'/∂s, ∂s'/∂a of the step just taken
((3, 3), (3, 1))
>>> envs = gymnasium.make_vec("fastd3pg/Pendulum-v0", num_envs=8,
...                           vectorization_mode="vector_entry_point")   # TaskVectorEnv

:class:`TaskEnv` is a thin shell around a :mod:`fastd3pg.physics` env: observations are the
task's float64 state vector itself (never cast to float32), actions lie in
``[-1, 1]^m`` (values outside are clipped by the simulator, as in ``fastd3pg.physics``), the
reward is the task's, and ``reset(seed=)`` seeds the task's own random stream, so that a
Gymnasium episode equals ``fastd3pg.physics``' ``reset(seed)`` and ``step`` bit for bit. The
registered environments end episodes at the task's horizon through Gymnasium's ``TimeLimit``
(``max_episode_steps``); :class:`TaskEnv` itself never truncates.

:class:`TaskVectorEnv` steps ``num_envs`` copies in one compiled batch call, with Gymnasium
1.x's next-step automatic reset (``metadata["autoreset_mode"] = AutoresetMode.NEXT_STEP``).

Gymnasium is imported here only: ``import fastd3pg`` never needs it.
"""

import os
import sys
import warnings

try:
    import gymnasium
    from gymnasium import spaces
    from gymnasium.vector import AutoresetMode, VectorEnv
    from gymnasium.vector.utils import batch_space
except ImportError:  # absent, or older than 1.1 (no AutoresetMode)
    raise ImportError(
        'fastd3pg.gym needs Gymnasium 1.1 or newer: pip install "fastd3pg[gym]"'
    ) from None

import numpy as np

from fastd3pg import physics
from fastd3pg.physics import dispatch
from fastd3pg.render import Renderer, frame_rate

NAMESPACE = "fastd3pg"
JACOBIAN_KEYS = ("J_s", "J_a", "dr_ds", "dr_da")


def env_id(task: str) -> str:
    """The Gymnasium id of ``task``: ``fastd3pg/<Task>-v0``."""
    return f"{NAMESPACE}/{task}-v0"


# -- observation bounds --------------------------------------------------------------------------
def _unbounded(env):
    return np.full(env.state_dim, -np.inf), np.full(env.state_dim, np.inf)


def _angle_pairs_and_speeds(pairs, speeds):
    """Bounds of a state made of ``pairs`` (cos, sin) entries, then speeds within ``±speeds``."""
    high = np.array([1.0] * (2 * pairs) + list(speeds))
    return -high, high


def _pendulum_bounds(env):
    p = dict(zip(env.param_names, env.params))
    # θ̇' is clipped to ±max_speed every step; the start draws θ̇ from U(-1, 1).
    return _angle_pairs_and_speeds(1, [max(p["max_speed"], 1.0)])


def _acrobot_bounds(env):
    p = dict(zip(env.param_names, env.params))
    # Both speeds are clipped every step; the start draws them from ±reset_high.
    return _angle_pairs_and_speeds(
        2, [max(p["max_vel_1"], p["reset_high"]), max(p["max_vel_2"], p["reset_high"])])


def _mountain_car_bounds(env):
    p = dict(zip(env.param_names, env.params))
    # Position and velocity are clipped every step (the start lies inside, checked by the task).
    return (np.array([p["min_position"], -p["max_speed"]]),
            np.array([p["max_position"], p["max_speed"]]))


def _swing_up_bounds(env):
    low, high = _unbounded(env)
    low[2:4], high[2:4] = -1.0, 1.0  # cos θ, sin θ
    return low, high


# What each task's dynamics guarantee for every state an episode visits; a task not listed is
# unbounded in every component (CartPole, MassPoint, RollingDie and HalfCheetah are: their
# limits end episodes rather than bound the state).
OBSERVATION_BOUNDS = {
    "Pendulum": _pendulum_bounds,
    "MountainCar": _mountain_car_bounds,
    "Acrobot": _acrobot_bounds,
    "CartPoleSwingUp": _swing_up_bounds,
}


def observation_space(env) -> spaces.Box:
    """The float64 ``Box`` of the states of the :mod:`fastd3pg.physics` env ``env``."""
    low, high = OBSERVATION_BOUNDS.get(env.name, _unbounded)(env)
    return spaces.Box(low, high, shape=(env.state_dim,), dtype=np.float64)


def action_space(env) -> spaces.Box:
    return spaces.Box(-1.0, 1.0, shape=(env.action_dim,), dtype=np.float64)


# -- human rendering -----------------------------------------------------------------------------
def _display_exists() -> bool:
    """Whether a window can open: always on macOS and Windows, with X11 or Wayland elsewhere."""
    return sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class _Window:
    """A matplotlib window showing frames; where there is no display it shows nothing (one
    warning) instead of failing."""

    def __init__(self, title, fps):
        import matplotlib.pyplot as plt

        self.plt, self.fps = plt, fps
        self.figure = plt.figure(title)
        self.image = None
        if getattr(self.figure.canvas, "required_interactive_framework", None) is None:
            plt.close(self.figure)
            self.figure = None
            warnings.warn(f"{title}: no display, so render_mode='human' shows nothing "
                          "(use render_mode='rgb_array' for frames)", stacklevel=4)

    def show(self, frame):
        if self.figure is None:
            return
        if self.image is None:
            ax = self.figure.add_axes((0.0, 0.0, 1.0, 1.0))
            ax.set_axis_off()
            self.image = ax.imshow(frame)
            self.plt.show(block=False)
        else:
            self.image.set_data(frame)
        self.figure.canvas.draw_idle()
        self.plt.pause(1.0 / self.fps)

    def close(self):
        if self.figure is not None:
            self.plt.close(self.figure)
            self.figure = None


# -- one environment -----------------------------------------------------------------------------
class TaskEnv(gymnasium.Env):
    """A :mod:`fastd3pg.physics` task as a ``gymnasium.Env``.

    ``TaskEnv(task, render_mode=None, jacobians=False, **params)``: ``task`` is a name from
    ``fastd3pg.physics.names()``, ``params`` override its physical constants by name.

    * Observations: the task's state, float64, shape ``(n,)``, in
      :data:`OBSERVATION_BOUNDS` (±inf where the dynamics bound nothing).
    * Actions: ``Box(-1, 1, (m,), float64)``; an action of the wrong shape, or with NaN or
      inf, raises ``ValueError``.
    * ``reset(seed=..., options={"state": s})`` starts from the state ``s`` instead of a draw.
    * ``jacobians=True``: ``info`` after each step holds ``J_s`` (n×n), ``J_a`` (n×m),
      ``dr_ds`` (n,), ``dr_da`` (m,) of that step, at the state it started from (those of
      ``fastd3pg.physics``' ``transition``).
    * ``render_mode``: ``"rgb_array"`` (``render()`` returns an ``(H, W, 3)`` uint8 frame) or
      ``"human"`` (a matplotlib window, drawn at every ``reset`` and ``step``; nothing where
      there is no display).
    """

    # "human" is offered where a display exists; asked for without one, it draws nothing.
    metadata = {"render_modes": ["rgb_array"] + ["human"] * _display_exists(), "render_fps": 20}
    RENDER_MODES = ("rgb_array", "human")

    def __init__(self, task: str, render_mode=None, jacobians: bool = False, **params):
        self.task = physics.make(task, **params)
        if render_mode is not None and render_mode not in self.RENDER_MODES:
            raise ValueError(f"render_mode must be one of {list(self.RENDER_MODES)} or None, "
                             f"got {render_mode!r}")
        self.render_mode = render_mode
        self.jacobians = bool(jacobians)
        self.metadata = dict(self.metadata, render_fps=frame_rate(self.task))
        self.observation_space = observation_space(self.task)
        self.action_space = action_space(self.task)
        self._renderer = None
        self._window = None

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        state, _ = self.task.reset(seed=seed)
        if options and "state" in options:
            self.task.set_state(options["state"])
            state = self.task.state
        if self.render_mode == "human":
            self.render()
        return state, {}

    def step(self, action):
        before = self.task.state
        state, reward, terminated, _, _ = self.task.step(action)
        info = {}
        if self.jacobians:
            tr = self.task.transition(before, action)
            info = {key: getattr(tr, key) for key in JACOBIAN_KEYS}
        if self.render_mode == "human":
            self.render()
        return state, reward, terminated, False, info

    def render(self):
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; "
                                  "make the env with render_mode='rgb_array' or 'human'")
            return None
        state = self.task.state
        if state is None:
            raise RuntimeError(f"{self.task.name}: call reset() before render()")
        if self._renderer is None:
            self._renderer = Renderer(self.task)
        frame = self._renderer(state)
        if self.render_mode == "rgb_array":
            return frame
        if self._window is None:
            self._window = _Window(env_id(self.task.name), self.metadata["render_fps"])
        self._window.show(frame)
        return None

    def close(self):
        if self._window is not None:
            self._window.close()
            self._window = None
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


# -- many environments at once -------------------------------------------------------------------
class TaskVectorEnv(VectorEnv):
    """``num_envs`` copies of a task stepped together by one compiled batch call.

    ``TaskVectorEnv(task, num_envs, jacobians=False, max_episode_steps=None,
    render_mode=None, **params)``. Sub-environment ``i`` behaves exactly as a registered
    ``fastd3pg/<Task>-v0`` (``TimeLimit`` at ``max_episode_steps``, default the task's
    horizon) seeded with ``seed + i`` (or the ``i``-th of a list of seeds), stepped in a loop.

    Automatic reset, next-step mode (``AutoresetMode.NEXT_STEP``): the step that ends an
    episode returns its last observation with ``terminated`` or ``truncated`` set; the next
    call to ``step`` ignores that sub-environment's action, resets it (drawing its next start
    state from its own stream) and returns the start state with reward 0 and both flags False.
    ``reset(options={"reset_mask": mask})`` resets only the sub-environments in ``mask``.

    With ``jacobians=True``, ``info`` holds ``J_s`` (N×n×n), ``J_a``, ``dr_ds``, ``dr_da`` and
    Gymnasium's masks ``_J_s``, ...: False for the sub-environments that were reset in that
    call (they took no step). ``render_mode="rgb_array"``: ``render()`` returns a tuple of one
    frame per sub-environment.
    """

    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, task: str, num_envs: int, jacobians: bool = False,
                 max_episode_steps=None, render_mode=None, **params):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        self.envs = [physics.make(task, **params) for _ in range(int(num_envs))]
        base = self.envs[0]
        horizon = base.horizon if max_episode_steps is None else max_episode_steps
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
            raise ValueError(f"max_episode_steps must be an integer >= 1, got {horizon!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        self.num_envs, self.max_episode_steps = int(num_envs), int(horizon)
        self.render_mode, self.jacobians = render_mode, bool(jacobians)
        self.metadata = dict(self.metadata, render_fps=frame_rate(base))
        self.single_observation_space = observation_space(base)
        self.single_action_space = action_space(base)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.task = base
        N, n = self.num_envs, base.state_dim
        self._states = np.zeros((N, n))
        self._elapsed = np.zeros(N, dtype=np.int64)
        self._autoreset = np.zeros(N, dtype=np.bool_)
        self._started = False
        self._renderer = None

    def _seeds(self, seed):
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            return [int(seed) + i for i in range(self.num_envs)]
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"need {self.num_envs} seeds (one per sub-environment), "
                             f"got {len(seeds)}")
        return seeds

    def reset(self, *, seed=None, options=None):
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            super().reset(seed=int(seed))
        seeds = self._seeds(seed)
        mask = np.ones(self.num_envs, dtype=np.bool_)
        if options and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"])
            if mask.dtype != np.bool_ or mask.shape != (self.num_envs,) or not mask.any():
                raise ValueError(f"options['reset_mask'] must be a bool array of shape "
                                 f"({self.num_envs},) with a True value")
            if not self._started and not mask.all():
                raise ValueError("the first reset() must reset every sub-environment")
        for i in np.flatnonzero(mask):
            self._states[i] = self.envs[i].reset(seed=seeds[i])[0]
        self._elapsed[mask] = 0
        self._autoreset[mask] = False
        self._started = True
        return self._states.copy(), {}

    def _check_actions(self, actions):
        try:
            A = np.asarray(actions, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{self.task.name}: actions must be numeric, got {actions!r}") from None
        shape = (self.num_envs, self.task.action_dim)
        if A.shape != shape:
            raise ValueError(f"{self.task.name}: actions must have shape {shape}, got {A.shape}")
        if not np.all(np.isfinite(A)):
            raise ValueError(f"{self.task.name}: actions contain NaN or inf")
        return np.ascontiguousarray(A)

    def step(self, actions):
        if not self._started:
            raise RuntimeError(f"{self.task.name}: call reset() before step()")
        A = self._check_actions(actions)
        N, n, m = self.num_envs, self.task.state_dim, self.task.action_dim
        restart = self._autoreset.copy()
        alive = ~restart
        S = np.ascontiguousarray(self._states[alive])
        B = S.shape[0]
        rewards, terminated = np.zeros(N), np.zeros(N, dtype=np.bool_)
        info = {}
        if B:
            A = np.ascontiguousarray(A[alive])
            out, R, T = np.empty((B, n)), np.empty(B), np.empty(B, dtype=np.bool_)
            if self.jacobians:
                J_s, J_a = np.empty((B, n, n)), np.empty((B, n, m))
                dr_ds, dr_da = np.empty((B, n)), np.empty((B, m))
                dispatch.step_jac_batch(self.task.kernels, self.task.params, S, A, out, R, T,
                                        J_s, J_a, dr_ds, dr_da)
                for key, value in zip(JACOBIAN_KEYS, (J_s, J_a, dr_ds, dr_da)):
                    full = np.zeros((N,) + value.shape[1:])
                    full[alive] = value
                    info[key], info["_" + key] = full, alive.copy()
            else:
                dispatch.step_batch(self.task.kernels, self.task.params, S, A, out, R, T)
            self._states[alive] = out
            rewards[alive], terminated[alive] = R, T
            self._elapsed[alive] += 1
        for i in np.flatnonzero(restart):
            self._states[i] = self.envs[i].reset()[0]
            self._elapsed[i] = 0
        truncated = alive & (self._elapsed >= self.max_episode_steps)
        self._autoreset = terminated | truncated
        return self._states.copy(), rewards, terminated, truncated, info

    def render(self):
        if self.render_mode != "rgb_array":
            gymnasium.logger.warn("render() needs render_mode='rgb_array'")
            return None
        if self._renderer is None:
            self._renderer = Renderer(self.task)
        return tuple(self._renderer(s) for s in self._states)

    def close_extras(self, **kwargs):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def _register():
    for task in physics.names():
        if env_id(task) in gymnasium.registry:
            continue
        gymnasium.register(
            id=env_id(task),
            entry_point="fastd3pg.gym:TaskEnv",
            vector_entry_point="fastd3pg.gym:TaskVectorEnv",
            max_episode_steps=physics.make(task).horizon,
            kwargs={"task": task},
        )


_register()

__all__ = ["TaskEnv", "TaskVectorEnv", "env_id", "observation_space", "action_space",
           "OBSERVATION_BOUNDS"]
