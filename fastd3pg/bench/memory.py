"""Memory: the replay buffer's bytes per stored transition on every task, and the peak resident
memory of a whole D3PG run on HalfCheetah.

A transition is ``s, a, r, s', done`` in float64; the algorithms that fit gradient targets
(d3pg, d3pg-sac, d3pg-td3) also store the step's Jacobians ``∂s'/∂s``,
``∂s'/∂a``, ``∂r/∂s`` and ``∂r/∂a``. The bytes are those of the arrays
:func:`fastd3pg.control.replay.make_replay` allocates, per row. The buffer is allocated at the
start of a run for ``min(buffer_size, timesteps)`` transitions; its pages become resident as the
run writes them, so the peak resident memory of a run grows with its length.

The peak is measured, not estimated: one ``python -m fastd3pg.train`` process (after a warm-up
process that fills the kernel cache), its ``ru_maxrss`` as ``os.wait4`` reports it.
``--quick`` runs 20,000 timesteps instead of 300,000.
"""

import os
import subprocess
import sys
import tempfile

from fastd3pg.bench import Table

RSS_ENV, RSS_ALGO = "HalfCheetah", "d3pg"
RSS_STEPS, RSS_STEPS_QUICK = 300_000, 20_000
CAPACITY = 1000  # rows of the buffer that is measured


def _bytes_per_transition(n: int, m: int, with_jacobians: bool) -> float:
    from fastd3pg.control.replay import make_replay

    buf = make_replay(CAPACITY, n, m, with_jacobians)
    rows = [getattr(buf, f) for f in buf._fields]
    return sum(a.nbytes for a in rows if a.ndim and a.shape[0] == CAPACITY) / CAPACITY


def _train(steps: int, out: str) -> int:
    """Peak resident bytes of one training process (``wait4``'s ``ru_maxrss``, KiB on Linux)."""
    proc = subprocess.Popen([sys.executable, "-m", "fastd3pg.train", "--env", RSS_ENV, "--algo",
                             RSS_ALGO, "--steps", str(steps), "--out", out, "--overwrite"],
                            stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"the measured training run failed (exit code {proc.returncode})")
    return usage.ru_maxrss * 1024


def tables(quick: bool) -> list:
    from fastd3pg.physics import make, names

    steps = RSS_STEPS_QUICK if quick else RSS_STEPS
    rows = []
    for name in names():
        env = make(name)
        n, m = env.state_dim, env.action_dim
        plain, jac = _bytes_per_transition(n, m, False), _bytes_per_transition(n, m, True)
        rows.append([name, n, m, plain, jac, jac * steps / 2**20])
    per_task = Table(
        "Replay buffer: bytes per stored transition",
        ["task", "n", "m", "bytes (ddpg, sac, td3)", "bytes (with Jacobians)",
         f"MiB for {steps:,} (with Jacobians)"], rows,
        note="float64 rows of the buffer the training loop allocates; with Jacobians: d3pg, "
             "d3pg-sac, d3pg-td3.")
    with tempfile.TemporaryDirectory() as tmp:
        _train(1000, f"{tmp}/warm")  # compiles into the cache once, outside the measured run
        peak = _train(steps, f"{tmp}/run")
    env = make(RSS_ENV)
    buffer = _bytes_per_transition(env.state_dim, env.action_dim, True) * steps
    run = Table(
        f"Peak resident memory of one run ({RSS_ALGO} on {RSS_ENV}, {steps:,} timesteps)",
        ["peak resident MiB", "of which the full replay buffer MiB"],
        [[peak / 2**20, buffer / 2**20]],
        note="ru_maxrss of the training process (its kernels loaded from the cache); the "
             "buffer's share assumes every row written, as a run of this length does.")
    return [per_task, run]
