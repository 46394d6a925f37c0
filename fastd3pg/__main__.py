"""``python -m fastd3pg``: the version, the tasks and the algorithms, from their registries."""

import sys

# One line per algorithm; an algorithm registered without one shows its config's docstring.
SUMMARY = {
    "ddpg": "DDPG (OpenAI Baselines' settings): D3PG with w1 = w2 = 0",
    "d3pg": "D3PG, Algorithm 1: DDPG whose critic also fits the simulator's gradients",
    "sac": "soft actor-critic (twin critics, learned temperature)",
    "d3pg-sac": "SAC whose critics also fit the simulator's gradients",
    "gd": "an actor trained on the exact gradient of the episode return",
    "mpc": "receding-horizon iLQR with control limits (needs a differentiable reward)",
}


def describe() -> str:
    """The text ``python -m fastd3pg`` prints."""
    import fastd3pg
    from fastd3pg.physics import make, names
    from fastd3pg.control import ALGOS, agent_class

    lines = [f"fastd3pg {fastd3pg.__version__}: D3PG, its differentiable simulators and "
             "baselines (NumPy + Numba)", "",
             "tasks (python -m fastd3pg.train --env NAME):",
             f"  {'name':<16} {'state':>5} {'action':>6} {'horizon':>7} {'dt (s)':>7}  "
             "differentiable reward"]
    for name in names():
        env = make(name)
        lines.append(f"  {name:<16} {env.state_dim:>5} {env.action_dim:>6} {env.horizon:>7} "
                     f"{env.dt:>7g}  {'yes' if env.differentiable_reward else 'no'}")
    lines += ["", "algorithms (python -m fastd3pg.train --algo NAME):"]
    for algo in ALGOS:
        doc = (agent_class(algo).config_class.__doc__ or "").strip().splitlines() or [""]
        lines.append(f"  {algo:<9} {SUMMARY.get(algo, doc[0])}")
    lines += ["", "commands: python -m fastd3pg.train --help, python -m fastd3pg.eval --help, "
              "python -m fastd3pg.sweep --help, python -m fastd3pg.figure2 --help, "
              "python -m fastd3pg.figure3 --help, python -m fastd3pg.bench --help"]
    return "\n".join(lines)


def main() -> int:
    print(describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
