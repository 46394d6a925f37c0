"""A HalfCheetah trajectory drawn as a filmstrip: the body's pose (torso, thighs, shins) every
few steps, one panel per pose, each centred on the root's x (written under it).

    python -m fastd3pg.render.draw_cheetah --out cheetah.png [--seed 0] [--steps 200]
"""

import argparse
from pathlib import Path

import numpy as np

from fastd3pg.physics.half_cheetah import HalfCheetah
from fastd3pg.render.scenes import cheetah_skeleton


def filmstrip(states, path, env=None, every=10, title=None, max_frames=12):
    """Draw the poses ``states[::every]`` (a trajectory ``(T, 14)``; at most ``max_frames``),
    one panel each, centred on the root's x, into the PNG ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    env = HalfCheetah() if env is None else env
    states = np.asarray(states, dtype=np.float64)
    if states.ndim != 2 or states.shape[1] != env.state_dim:
        raise ValueError(f"filmstrip: states must have shape (T, 14), got {states.shape}")
    poses = states[::every][:max_frames]
    n = len(poses)
    fig, axes = plt.subplots(1, n, figsize=(1.6 * n, 2.4), dpi=120, sharey=True, squeeze=False)
    for k, (ax, s) in enumerate(zip(axes[0], poses)):
        torso, back, front = cheetah_skeleton(env, s)
        ax.plot(*torso.T, color="tab:brown", lw=3, solid_capstyle="round")
        ax.plot(*back.T, color="tab:blue", lw=1.5, marker="o", ms=2)
        ax.plot(*front.T, color="tab:orange", lw=1.5, marker="o", ms=2)
        ax.axhline(0.0, color="k", lw=1.5)
        ax.set_xlim(s[0] - 0.8, s[0] + 0.8)
        ax.set_ylim(-0.1, 1.3)
        ax.set_aspect("equal")
        ax.set_title(f"t = {k * every * env.dt:.2f} s", fontsize=8)
        ax.tick_params(labelsize=6)
        ax.set_xlabel(f"x = {s[0]:.2f} m", fontsize=7)
    fig.suptitle(title or "HalfCheetah (back leg blue, front leg orange)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def rollout(env, seed=0, steps=200, policy=None):
    """States ``(steps + 1, 14)`` from ``env.reset(seed)``; ``policy(state) -> action``
    (default: a fixed sinusoidal gait, just to show the picture)."""
    state, _ = env.reset(seed=seed)
    states = [state]
    for t in range(steps):
        if policy is None:
            w = 2 * np.pi * 2.0 * t * env.dt
            action = 0.3 * np.sin([w, w + 1.0, w + np.pi, w + np.pi + 1.0])
        else:
            action = np.asarray(policy(state), dtype=np.float64)
        state = env.transition(state, action).next_state
        states.append(state)
    return np.array(states)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastd3pg.render.draw_cheetah",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="cheetah.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=10)
    args = parser.parse_args(argv)
    env = HalfCheetah()
    print(filmstrip(rollout(env, args.seed, args.steps), args.out, env, args.every))


if __name__ == "__main__":
    main()
