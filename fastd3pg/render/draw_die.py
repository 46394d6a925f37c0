"""A RollingDie episode drawn as the paper's Figure 3: the die's outline at its start, at each
impact (its pose at the impact's exact time) and at the end, the centre's path and the target
zone. :func:`draw_episode` draws on given axes (with a strobe and numbered bounces, as
:mod:`fastd3pg.figure3` does for trained actors).

    python -m fastd3pg.render.draw_die --out die.png [--seed 0] [--torque 0.0]
"""

import argparse
from pathlib import Path

import numpy as np

from fastd3pg.physics.rolling_die import HALF_SIZE, TARGET_X, RollingDie, corner


def rollout(env, seed=0, policy=None, start_state=None):
    """One episode from ``env.reset(seed)`` (or from ``start_state``): the states ``(T + 1, 6)``
    and the contact events ``[(step, kind, corner, t, x, y, θ), ...]``; ``policy(state) ->
    action`` (default: no torque)."""
    state = env.reset(seed=seed)[0] if start_state is None else np.array(start_state, float)
    states, events = [state], []
    for step_index in range(env.horizon):
        action = np.zeros(1) if policy is None else np.asarray(policy(state), dtype=np.float64)
        events += [(step_index, *e) for e in env.events(state, action)]
        state = env.transition(state, action).next_state
        states.append(state)
    return np.array(states), events


def draw_episode(ax, env, states, events, impacts=True, strobe=0, touchdowns=(), legend=True):
    """Draw one episode (``states``, ``events`` as :func:`rollout` returns them) on the
    matplotlib axes ``ax``: the target zone and the target centre, the centre's path, the die
    at its start and end, and

    * ``impacts``: its pose at every impact (bounces red; of a run of resting-contact steps,
      the die pivoting on a corner, only the first, orange);
    * ``strobe`` > 0: its pose every ``strobe`` steps, faint, while it moves;
    * ``touchdowns``: indices into ``events`` drawn bold and numbered 1, 2, ... (the bounces
      of :mod:`fastd3pg.figure3`)."""
    h = env.params[HALF_SIZE]

    def outline(x, y, th):
        pts = [corner(k, h, th) for k in (0, 1, 2, 3, 0)]
        return [x + p[0] for p in pts], [y + p[1] for p in pts]

    target = env.params[TARGET_X]
    ax.axvspan(target - h, target + h, color="tab:green", alpha=0.15, label="target zone")
    ax.plot(target, h, marker="x", color="tab:green", ms=8, mew=2, ls="none",
            label="target centre")
    ax.axhline(0.0, color="k", lw=1.5)
    ax.plot(states[:, 0], states[:, 1], color="tab:blue", lw=1, label="centre path")
    if strobe > 0:
        label, last = f"every {strobe} steps", states[0, :3]
        for pose in states[strobe:-1:strobe, :3]:
            if np.max(np.abs(pose - last)) < 0.02 * h:  # resting: nothing new to see
                continue
            ax.plot(*outline(*pose), color="0.55", lw=0.6, alpha=0.6, label=label)
            label, last = None, pose
    ax.plot(*outline(*states[0, :3]), color="0.5", lw=1, ls="--", label="start")
    if impacts:
        labelled, previous = set(), None
        for step_index, kind, _, _, x, y, th in events:
            held = kind.startswith("hold")
            if kind == "flat" or (held and previous == "hold"):
                previous = "hold" if held else kind
                continue
            label = "resting contact" if held else "impact"
            ax.plot(*outline(x, y, th), color="tab:orange" if held else "tab:red", lw=1,
                    label=None if label in labelled else label)
            labelled.add(label)
            previous = "hold" if held else kind
    for number, index in enumerate(touchdowns, start=1):
        _, _, _, _, x, y, th = events[index]
        ax.plot(*outline(x, y, th), color="tab:red", lw=1.6,
                label="bounce (numbered)" if number == 1 else None)
        ax.annotate(str(number), (x, y), ha="center", va="center", fontsize=8,
                    color="tab:red", fontweight="bold",
                    bbox={"boxstyle": "circle,pad=0.15", "fc": "white", "ec": "tab:red", "lw": 0.8})
    ax.plot(*outline(*states[-1, :3]), color="k", lw=1.5, label="end")
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_ylim(-0.2, max(states[:, 1].max() + 1.0, 2.0))
    if legend:
        ax.legend(loc="upper left", fontsize=8, bbox_to_anchor=(1.01, 1.0))


def draw(path, seed=0, policy=None, env=None):
    """Draw one episode to the PNG file ``path``; returns the path.  Bounces are drawn in red;
    of a run of resting-contact steps (the die pivoting on a corner) only the first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    env = RollingDie() if env is None else env
    states, events = rollout(env, seed, policy)
    fig, ax = plt.subplots(figsize=(9, 4), dpi=120)
    draw_episode(ax, env, states, events)
    ax.set_title(f"RollingDie, throw {seed}")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastd3pg.render.draw_die",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="die.png", help="PNG file to write")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random throw")
    parser.add_argument("--torque", type=float, default=0.0, help="constant action in [-1, 1]")
    parser.add_argument("--restitution", type=float, default=None)
    parser.add_argument("--friction", type=float, default=None)
    args = parser.parse_args(argv)
    params = {k: getattr(args, k) for k in ("restitution", "friction") if getattr(args, k) is not None}
    try:
        env = RollingDie(**params)
    except ValueError as err:
        parser.error(str(err))
    print(draw(args.out, seed=args.seed, policy=lambda s: [args.torque], env=env))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
