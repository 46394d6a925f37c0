"""A training run's kernels compiled by several processes at once, on a cold cache.

On an empty cache a run spends most of its start compiling, one kernel after another in one
process. An agent with ``compile_plan()`` lists the units its compiled loop calls, with the
arguments it passes them. :func:`start` launches helper processes that build the same agent
and compile its plan from the first entry on, while the run compiles the plan from the last
entry back (:func:`fastd3pg._jit.compile_ahead`) and then its loop, which finds the units in
the cache. A process compiling a unit holds a lock on it, so each unit is compiled once: the
other processes skip it in their plan, or wait for it where they need it and then load it.
Machine code does not depend on the process that compiled it, so no number does either.

``FASTD3PG_COMPILE_WORKERS`` is the number of helpers: by default one less than the processors
this process may run on, at most :data:`MAX_WORKERS`; 0 turns them off. Helpers start only when
the cache lacks the agent's kernels, and never on systems without file locks.
"""

import os
import pickle
import subprocess
import sys
from pathlib import Path

from fastd3pg import _jit

MAX_WORKERS = 2  # a plan has a few large pieces: more helpers would find nothing left to do
HELPER_STEPS = 1000  # the helper's agent only lends its arrays' types: a small replay will do


def workers() -> int:
    """How many helpers a cold run starts (see the module docstring)."""
    value = os.environ.get("FASTD3PG_COMPILE_WORKERS", "").strip()
    if value:
        try:
            n = int(value)
        except ValueError:
            n = -1
        if n < 0:
            raise ValueError(f"FASTD3PG_COMPILE_WORKERS must be a whole number >= 0, "
                             f"got {value!r}")
        return n
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(0, min(cpus - 1, MAX_WORKERS))


def start(env_name: str, algo: str, config, n: int | None = None) -> list:
    """Start ``n`` helpers (default :func:`workers`) for a run of ``algo`` on ``env_name`` with
    ``config``, if its agent has a plan (the caller checks that the cache is cold); returns
    their processes."""
    from fastd3pg.control import agent_class

    n = workers() if n is None else n
    if n == 0 or _jit.fcntl is None or not hasattr(agent_class(algo), "compile_plan"):
        return []
    env = dict(os.environ)
    # The helpers import this very source tree (hence use the same cache) and compile for
    # the same target.
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    if _jit.compile_target()["reason"].startswith("host"):
        env["FASTD3PG_CPU"] = "host"
    job = pickle.dumps((env_name, algo, config))
    helpers = []
    for _ in range(n):
        try:
            helper = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      env=env)
            helper.stdin.write(job)
            helper.stdin.close()
        except OSError:  # no process to spare: the run compiles everything itself
            break
        helpers.append(helper)
    return helpers


def finish(helpers, timeout: float = 60.0):
    """Wait for the helpers (they end with their plan); stop any still running after
    ``timeout`` seconds (0: stop them now)."""
    for helper in helpers:
        try:
            helper.wait(timeout)
        except subprocess.TimeoutExpired:
            helper.kill()
            helper.wait()


def main():
    """A helper: the job (env name, algo, config) on stdin; compiles the agent's plan, then
    its evaluation."""
    env_name, algo, config = pickle.load(sys.stdin.buffer)
    from fastd3pg.control import agent_class
    from fastd3pg.physics import make

    agent = agent_class(algo)(make(env_name), config, 0, total_steps=HELPER_STEPS)
    _jit.compile_ahead(agent.compile_plan())
    # Then the evaluation, which the run calls from Python at the end of its first period:
    # the run loads it from the cache if this is done by then, or compiles it as well.
    agent.evaluate()


if __name__ == "__main__":
    main()
