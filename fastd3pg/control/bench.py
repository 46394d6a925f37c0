"""Training throughput: env steps/s with one gradient update per env step (batch 64, 64×64
networks, float64, one core), after compilation; and the compile time of a first run with an
empty cache."""

import os
import subprocess
import sys
import tempfile
import time

from fastd3pg.bench import Table

# The arithmetic of one hybrid update (≈ 8.7 MFLOP on Pendulum) caps a core that sustains
# ~50 GFLOP/s at about 5,900 updates/s.
UPDATE_CAP = 5900.0


def _agent(algo, env_name, steps):
    from fastd3pg.physics import make
    from fastd3pg.control import agent_class

    cls = agent_class(algo)
    config = cls.config_class(rollout_steps=1, train_steps=1)
    return cls(make(env_name), config, seed=0, total_steps=steps)


def steps_per_second(algo, env_name, steps=3000, warmup=300):
    agent = _agent(algo, env_name, steps + warmup)
    agent.train(warmup)  # compiles, fills the buffer past one batch
    t0 = time.perf_counter()
    agent.train(steps)
    return steps / (time.perf_counter() - t0)


def first_run_compile_seconds(algo="d3pg", env_name="Pendulum"):
    """Wall time of a fresh process that imports the package and trains 100 steps with an
    empty Numba cache (almost all of it compilation)."""
    code = (f"from fastd3pg.control.bench import _agent; a = _agent({algo!r}, {env_name!r}, 200);"
            " a.train(100)")
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        return time.perf_counter() - t0


def tables(quick=False):
    from fastd3pg.physics import names
    from fastd3pg.control import ALGOS

    steps = 1000 if quick else 4000
    tasks = ["Pendulum"] + [t for t in ("HalfCheetah", "RollingDie") if t in names()][:1]
    algos = [a for a in ("ddpg", "d3pg", "sac", "d3pg-sac", "td3", "d3pg-td3") if a in ALGOS]
    rows = []
    for task in tasks:
        rates = {a: steps_per_second(a, task, steps) for a in algos}
        for a in algos:
            rows.append([task, a, rates[a], 1e3 / rates[a], rates["ddpg"] / rates[a],
                         rates[a] / UPDATE_CAP if task == "Pendulum" else float("nan")])
    out = [Table("Training throughput (1 update per env step, batch 64, 64×64)",
                 ["task", "algo", "env steps/s", "ms/step", "cost vs ddpg", "fraction of cap"],
                 rows, note="cap: 5,900 updates/s, the arithmetic limit of a hybrid update "
                            "(≈ 8.7 MFLOP) at ~50 GFLOP/s.")]
    if not quick:
        out.append(Table("Compilation (fresh process, empty cache)", ["what", "seconds"],
                         [["import + first 100 D3PG steps on Pendulum",
                           first_run_compile_seconds()]]))
    return out
