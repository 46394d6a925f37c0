"""Record, and compare against, the numbers a fixed list of short runs produces.

A refactoring that must not change arithmetic is checked by recording before it and comparing
after it, on the same machine (the bits depend on the processor and on Numba's compile
target, so this is a developer's script, not a test of the suite):

    python tools/fingerprint.py record before.json
    ... change the code ...
    python tools/fingerprint.py compare before.json

The list: every algorithm on Pendulum, D3PG on every task (1,600 timesteps each, the tuned
per-task settings), and every task's batched step with Jacobians on fixed random states and
actions. ``compare`` requires identical return columns and identical simulator outputs, and
names every run or task that differs. The script imports the package from the tree it sits
in, whatever is installed.
"""

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

STEPS = 1600
ALGOS_ON_PENDULUM = ("ddpg", "d3pg", "sac", "d3pg-sac", "gd", "mpc")
RETURN_COLUMNS = ("return_raw", "return_mean", "return_history")


def run_list():
    from fastd3pg.physics import names

    runs = [("Pendulum", algo) for algo in ALGOS_ON_PENDULUM]
    runs += [(task, "d3pg") for task in names() if task != "Pendulum"]
    return runs


def physics_fingerprint(task: str) -> dict:
    """Hashes of ``transition_batch`` on 256 start states and random actions, and of a
    100-step rollout of ``step`` under random actions."""
    from fastd3pg.physics import make

    env = make(task)
    rng = np.random.default_rng(12345)
    states = np.array([env.reset(seed=k)[0] for k in range(256)])
    actions = rng.uniform(-1.2, 1.2, size=(256, env.action_dim))
    tr = env.transition_batch(states, actions)
    digest = {}
    for field in tr._fields:
        digest[field] = hashlib.sha256(np.ascontiguousarray(getattr(tr, field)).tobytes()).hexdigest()
    env.reset(seed=7)
    path = []
    for _ in range(100):
        s, r, term, trunc, _ = env.step(rng.uniform(-1, 1, size=env.action_dim))
        path.append(np.append(s, r))
        if term:
            env.reset(seed=8)
    digest["rollout"] = hashlib.sha256(np.array(path).tobytes()).hexdigest()
    return digest


def record() -> dict:
    from fastd3pg.physics import names
    from fastd3pg.train import run

    result = {"runs": {}, "physics": {}}
    for task in names():
        result["physics"][task] = physics_fingerprint(task)
        print(f"physics {task}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for task, algo in run_list():
            metrics = run(env=task, algo=algo, seed=0, steps=STEPS, out=Path(tmp) / task / algo)
            result["runs"][f"{task}/{algo}"] = {
                k: [repr(float(x)) for x in metrics[k]] for k in RETURN_COLUMNS
            }
            print(f"run {task} {algo}: return_mean {metrics['return_mean'][-1]:.6f}", flush=True)
    return result


def compare(saved: dict, now: dict) -> list:
    differ = []
    for key in sorted(set(saved["physics"]) | set(now["physics"])):
        a, b = saved["physics"].get(key), now["physics"].get(key)
        if a != b:
            fields = sorted(f for f in (a or {}) if (b or {}).get(f) != a[f]) if a and b else "all"
            differ.append(f"physics {key}: {fields}")
    for key in sorted(set(saved["runs"]) | set(now["runs"])):
        if saved["runs"].get(key) != now["runs"].get(key):
            differ.append(f"run {key}")
    return differ


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("record", "compare"))
    parser.add_argument("file")
    args = parser.parse_args(argv)
    now = record()
    if args.mode == "record":
        Path(args.file).write_text(json.dumps(now, indent=1) + "\n")
        print(f"recorded {len(now['runs'])} runs and {len(now['physics'])} tasks in {args.file}")
        return 0
    differ = compare(json.loads(Path(args.file).read_text()), now)
    if differ:
        print("differ:\n  " + "\n  ".join(differ))
        return 1
    print(f"identical: {len(now['runs'])} runs and {len(now['physics'])} tasks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
