"""Benchmark section: iLQR iterations per second for a 100-step plan.

One iteration is a backward pass (with its box QPs), a forward line search (up to 11 rollouts
without derivatives) and, when accepted, one rollout with Jacobians. Each task plans from its
``reset(seed=0)`` state with a constant zero initial plan; the convergence tests are disabled so
that the whole budget of iterations runs. Tasks not registered yet are skipped.
"""

import numpy as np

from fastd3pg.bench import Table, median_time
from fastd3pg.control.ilqr import ilqr_plan
from fastd3pg.physics import make, names

TASKS = ("Pendulum", "CartPoleSwingUp", "HalfCheetah")
HORIZON = 100


def tables(quick: bool) -> list:
    iters = 5 if quick else 20
    table = Table(
        f"iLQR, {HORIZON}-step plan (per iteration: backward pass + box QPs + line search)",
        ["task", "n", "m", "iterations/s", "ms/iteration", "accepted/run"],
        note=f"{iters} iterations per timed run from reset(seed=0), zero initial plan, "
        "convergence tests off; median of repeated runs after compilation.",
    )
    for name in TASKS:
        if name not in names():
            continue
        env = make(name)
        s0, _ = env.reset(seed=0)
        U0 = np.zeros((HORIZON, env.action_dim))
        runs = []

        def run():
            runs.append(ilqr_plan(env, s0, U0, iters=iters, tol_fun=1e-300, tol_grad=1e-300))

        seconds = median_time(run, repeat=3 if quick else 7)
        done = runs[-1].iterations
        table.rows.append([name, env.state_dim, env.action_dim, done / seconds,
                           1e3 * seconds / done, runs[-1].accepted])
    return [table]
