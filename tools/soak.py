"""Long random-action soak of every simulator through the compiled batch kernels.

    python tools/soak.py [--steps 1000000] [--batch 1000] [--task NAME ...]

For each task, ``--batch`` envs take ``--steps`` steps in all through
``dispatch.step_jac_batch`` (the kernel the training loops use), each env holding a random
action in [-1.5, 1.5] for a random while (10 steps on average; out-of-range components are
clipped by the kernel) and restarting from a fresh start state at the horizon or on
termination. Reported per task: steps whose result (state, reward or Jacobians) is not
finite, which must be 0; for HalfCheetah the contact LCP's retries (solved in reverse contact
order, or with the larger compliance) and failures; for RollingDie the steps that reached the
per-step impact cap (their rest is flown without detection). The two counts come from the
tasks' own diagnostics (``half_cheetah.contact_info``, ``rolling_die.events``) on the same
states and actions, so the stepping kernels are unchanged. A benchmark-style script, not a
test: about a minute per task, most of it HalfCheetah's.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastd3pg._jit import jit  # noqa: E402
from fastd3pg.physics import dispatch, half_cheetah, lcp, make, names  # noqa: E402
from fastd3pg.physics import rolling_die  # noqa: E402


@jit
def _cheetah_counts(p, S, A, counts):
    """counts += (reverse-order retries, larger-compliance retries, failures) over the rows."""
    info = np.empty(half_cheetah.INFO_SIZE)
    for b in range(S.shape[0]):
        half_cheetah.contact_info(p, S[b], A[b], info)
        retries = int(info[2])
        if info[0] != lcp.OK:
            counts[2] += 1
        elif retries == 1:
            counts[0] += 1
        elif retries >= 2:
            counts[1] += 1


@jit
def _die_caps(p, S, A):
    """The rows whose step reached the impact cap."""
    log = np.empty(rolling_die.LOG_SIZE)
    caps = 0
    for b in range(S.shape[0]):
        rolling_die.events(p, S[b], A[b], log)
        n = int(log[0])
        for e in range(n):
            if int(log[1 + 5 * e]) // 10 == rolling_die.EV_CAP:
                caps += 1
    return caps


def soak(name, steps, batch, seed=0):
    env = make(name)
    rng = np.random.default_rng(seed)
    tid, p, n, m = env.task_id, env.params, env.state_dim, env.action_dim
    seeds = iter(range(10**9))
    S = np.array([env.reset(seed=next(seeds))[0] for _ in range(batch)])
    A = rng.uniform(-1.5, 1.5, (batch, m))
    t = np.zeros(batch, dtype=np.int64)
    out, R, T = np.empty((batch, n)), np.empty(batch), np.empty(batch, dtype=np.bool_)
    J_s, J_a = np.empty((batch, n, n)), np.empty((batch, n, m))
    dr_ds, dr_da = np.empty((batch, n)), np.empty((batch, m))
    counts = np.zeros(3, dtype=np.int64)
    result = {"task": name, "steps": 0, "not finite": 0, "resets": 0, "lcp reverse order": "",
              "lcp larger compliance": "", "lcp failures": "", "impact caps": ""}
    caps = 0
    start = time.perf_counter()
    while result["steps"] < steps:
        k = min(batch, steps - result["steps"])
        redraw = rng.random(k) < 0.1
        A[:k][redraw] = rng.uniform(-1.5, 1.5, (int(redraw.sum()), m))
        dispatch.step_jac_batch(tid, p, S[:k], A[:k], out[:k], R[:k], T[:k], J_s[:k], J_a[:k],
                                dr_ds[:k], dr_da[:k])
        if name == "HalfCheetah":
            _cheetah_counts(p, S[:k], A[:k], counts)
        elif name == "RollingDie":
            caps += _die_caps(p, S[:k], A[:k])
        bad = ~np.isfinite(R[:k])
        for x in (out, J_s, J_a, dr_ds, dr_da):
            bad |= ~np.isfinite(x[:k].reshape(k, -1)).all(axis=1)
        result["not finite"] += int(bad.sum())
        result["steps"] += k
        S[:k] = out[:k]
        t[:k] += 1
        for b in np.flatnonzero(bad | T[:k] | (t[:k] >= env.horizon)):
            S[b] = env.reset(seed=next(seeds))[0]
            t[b] = 0
            result["resets"] += 1
    result["seconds"] = round(time.perf_counter() - start, 1)
    if name == "HalfCheetah":
        result["lcp reverse order"], result["lcp larger compliance"], result["lcp failures"] = (
            int(c) for c in counts
        )
    if name == "RollingDie":
        result["impact caps"] = caps
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10**6, help="steps per task")
    parser.add_argument("--batch", type=int, default=1000, help="envs stepped side by side")
    parser.add_argument("--task", action="append", choices=names(), help="default: every task")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch < 1:
        parser.error("--steps and --batch must be positive")
    columns = ("task", "steps", "not finite", "lcp reverse order", "lcp larger compliance",
               "lcp failures", "impact caps", "resets", "seconds")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    failed = False
    for name in args.task or names():
        row = soak(name, args.steps, args.batch)
        failed |= row["not finite"] > 0 or bool(row["lcp failures"])
        print("| " + " | ".join(str(row[c]) for c in columns) + " |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
