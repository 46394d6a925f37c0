"""Evaluate a trained policy: ``python -m fastd3pg.eval RUN_DIR`` and :func:`evaluate`.

    python -m fastd3pg.eval RUN_DIR [--episodes 10] [--seed 0] [--video out.gif]
            [--start-state=S0,S1,...] [--policy FILE]

Runs the run's ``policy.npz`` (or ``--policy FILE``) on the run's task, with the physical
parameters of its ``config.json``, for ``--episodes`` episodes and prints the raw and the
normalized returns (mean, std, min, max; normalized as the run's ``metrics.csv``: a random
controller scores 0, ``max_reward × horizon`` scores 1). An episode runs to the task's
horizon or its termination. The start states are the successive draws of one random stream
seeded with ``--seed``, the same stream the training driver evaluates from: with
``--seed`` the run's evaluation seed, episode ``k`` starts where the run's ``k``-th
evaluation did. ``--start-state`` runs one episode from the given state instead (write it
with ``=`` when it starts with a minus sign). ``--video`` writes the first episode as an
animation (``.gif``; ``.mp4`` where ffmpeg is on PATH): the start state, then one frame per
step.

From Python: ``evaluate(policy, env, episodes, seed)`` returns the raw returns,
``write_video(policy, env, path, seed)`` writes the animation, ``load_run(run_dir)`` gives the
run's env and policy.
"""

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from fastd3pg._cli import Parser, count


class EvalError(ValueError):
    """A run directory, policy file or setting that cannot be evaluated; the message says why."""


def load_run(run_dir, policy_file=None):
    """``(env, policy)`` of the training run in ``run_dir``: the task made with the
    ``env_params`` of its ``config.json``, and its ``policy.npz`` (or ``policy_file``)."""
    from fastd3pg.physics import make
    from fastd3pg.train import load_policy

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise EvalError(f"no run directory {run_dir}")
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise EvalError(f"{run_dir} holds no config.json: not a fastd3pg run directory")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        env = make(config["env"], **config.get("env_params", {}))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError,
            AttributeError) as err:
        raise EvalError(f"unreadable {config_path}: {type(err).__name__}: {err}") from None
    except ValueError as err:
        raise EvalError(f"{config_path}: {err}") from None
    path = Path(policy_file) if policy_file is not None else run_dir / "policy.npz"
    if not path.is_file():
        raise EvalError(f"no policy file {path}")
    try:
        policy = load_policy(path)
    except (OSError, ValueError) as err:
        raise EvalError(str(err)) from None
    check_policy(policy, env, path)
    return env, policy


def check_policy(policy, env, source="the policy"):
    """A ``ValueError`` unless ``policy`` was trained on ``env``'s task (name and sizes)."""
    name = getattr(policy, "env", None)
    if name is not None and name != env.name:
        raise EvalError(f"{source} was trained on {name}, not on {env.name}")
    sizes = (getattr(policy, "state_dim", env.state_dim), getattr(policy, "action_dim", env.action_dim))
    if sizes != (env.state_dim, env.action_dim):
        raise EvalError(f"{source} maps {sizes[0]} state components to {sizes[1]} actions; "
                        f"{env.name} has {env.state_dim} and {env.action_dim}")


def _count(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def start_states(env, episodes: int, seed: int) -> np.ndarray:
    """The start states ``(episodes, n)`` of :func:`evaluate`: successive draws of ``env``'s
    start distribution from one stream seeded with ``seed`` (``env.reset(seed)``, then
    ``env.reset()``), as the training driver draws its evaluations' start states."""
    episodes, seed = _count("episodes", episodes, 1), _count("seed", seed, 0)
    states = [env.reset(seed=seed)[0]]
    states += [env.reset()[0] for _ in range(episodes - 1)]
    return np.array(states)


def episode(policy, env, state):
    """One episode of the deterministic ``policy`` from ``state``: ``(states (T + 1, n),
    rewards (T,))``, to the horizon or the termination."""
    env.set_state(state)
    s = env.state
    states, rewards = [s], []
    for _ in range(env.horizon):
        s, reward, terminated, _, _ = env.step(policy(s))
        states.append(s)
        rewards.append(reward)
        if terminated:
            break
    return np.array(states), np.array(rewards)


def evaluate(policy, env, episodes: int = 10, seed: int = 0, states=None) -> np.ndarray:
    """The raw returns ``(episodes,)`` of ``policy`` (``policy(state) -> action``, e.g. from
    :func:`fastd3pg.train.load_policy`) on the :mod:`fastd3pg.physics` env ``env``, from the
    start states of :func:`start_states`, or from ``states`` ``(k, n)`` (then ``k`` episodes)."""
    check_policy(policy, env)
    if states is None:
        states = start_states(env, episodes, seed)
    else:
        states = np.asarray(states, dtype=np.float64)
        if states.ndim != 2 or states.shape[1] != env.state_dim or len(states) == 0:
            raise ValueError(f"states must have shape (k, {env.state_dim}) with k >= 1, "
                             f"got {states.shape}")
    returns = np.empty(len(states))
    for k, start in enumerate(states):
        total = 0.0
        for reward in episode(policy, env, start)[1]:
            total += reward  # summed in order, as the training driver does
        returns[k] = total
    return returns


def summary(returns, env) -> dict:
    """Mean, std, min and max of the raw and the normalized returns."""
    from fastd3pg.control.metrics import normalizer

    raw = np.asarray(returns, dtype=np.float64)
    normalized = normalizer(env)(raw)
    def stats(x):
        return {"mean": float(np.mean(x)), "std": float(np.std(x)),
                "min": float(np.min(x)), "max": float(np.max(x))}

    return {"raw": stats(raw), "normalized": stats(normalized)}


def write_video(policy, env, path, seed: int = 0, state=None, width: int = 400,
                height: int = 300) -> int:
    """Write the first episode of :func:`evaluate` (or the episode from ``state``) as an
    animation at ``path`` (``.gif``, or ``.mp4`` where ffmpeg is on PATH): the start state, then
    one frame per step, each captioned with its time and the return so far. Returns the number
    of frames."""
    from fastd3pg.render import Renderer, frame_rate, write_animation
    from fastd3pg.render.animation import check_path

    check_policy(policy, env)
    path = check_path(path)
    start = start_states(env, 1, seed)[0] if state is None else state
    states, rewards = episode(policy, env, start)
    draw = Renderer(env, width, height)
    returns = np.concatenate([[0.0], np.cumsum(rewards)])
    frames = (draw(s, caption=f"{env.name}  t = {k * env.dt:.2f} s  return {g:.2f}")
              for k, (s, g) in enumerate(zip(states, returns)))
    try:
        return write_animation(frames, path, fps=frame_rate(env))
    finally:
        draw.close()


# -- command line -------------------------------------------------------------------------------
def _state(text):
    try:
        values = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"need finite numbers, got {text!r}")
    return np.array(values)


def main(argv=None) -> int:
    parser = Parser(prog="python -m fastd3pg.eval",
                     description="Evaluate a trained policy: its raw and normalized returns over "
                                 "seeded episodes, and optionally an animation of the first.")
    parser.add_argument("run_dir", help="a training run's output directory")
    parser.add_argument("--episodes", type=count(1), default=10, metavar="N",
                        help="episodes (default 10)")
    parser.add_argument("--seed", type=count(0), default=0,
                        help="seed of the start states' stream (default 0)")
    parser.add_argument("--start-state", type=_state, default=None, metavar="S0,S1,...",
                        help="one episode from this state (write --start-state=-1,0,0 when it "
                             "begins with a minus sign)")
    parser.add_argument("--video", default=None, metavar="FILE",
                        help="write the first episode to this .gif (or .mp4, with ffmpeg)")
    parser.add_argument("--policy", default=None, metavar="FILE",
                        help="evaluate this policy.npz instead of the run's own")
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # a usage error (already reported) or --help
        return stop.code
    try:
        env, policy = load_run(args.run_dir, args.policy)
        states = None
        if args.start_state is not None:
            if args.start_state.shape != (env.state_dim,):
                raise EvalError(f"--start-state needs {env.state_dim} numbers for {env.name}, "
                                f"got {args.start_state.size}")
            states = args.start_state[None, :]
        if args.video is not None:
            from fastd3pg.render.animation import check_path

            check_path(args.video)  # before the evaluation, not after it
        returns = evaluate(policy, env, args.episodes, args.seed, states=states)
        table = summary(returns, env)
        where = (f"from {args.start_state.tolist()}" if states is not None
                 else f"start states from seed {args.seed}")
        print(f"{env.name}: {len(returns)} episode(s) of {args.policy or Path(args.run_dir) / 'policy.npz'}, {where}")
        print(f"{'':12s}{'mean':>12s}{'std':>12s}{'min':>12s}{'max':>12s}")
        for row in ("raw", "normalized"):
            print(f"{row:12s}" + "".join(f"{table[row][k]:12.4f}" for k in ("mean", "std", "min", "max")))
        if args.video is not None:
            start = None if states is None else states[0]
            n = write_video(policy, env, args.video, seed=args.seed, state=start)
            print(f"video: {args.video} ({n} frames)")
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, OSError) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
