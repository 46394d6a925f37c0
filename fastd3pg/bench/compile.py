"""Cold start: what a first run with an empty cache spends compiling, and on what.

Each measurement is a fresh process with an empty Numba cache (and a fresh ``HOME``, as on a
new machine):

- the default ``python -m fastd3pg.train`` (D3PG on Pendulum) up to its first progress line,
  on a terminal (where that line comes after the first training period), with the helpers that
  compile in parallel (:mod:`fastd3pg.control.parallel_compile`) and without them;
- import plus the first 100 training steps and one evaluation of each algorithm on Pendulum
  (``--quick``: D3PG);
- the functions that the D3PG one compiles, with their seconds: *own* is the function's own
  compilation, *total* adds the functions compiled while compiling it. A unit
  (:func:`fastd3pg._jit.unit`) appears with the suffix ``__unit``.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

from fastd3pg.bench import Table
from fastd3pg.bench.control import BENCHED

TOP = 15


@contextmanager
def compile_times():
    """Within the block, the seconds Numba spends compiling each function, accumulated into the
    yielded dict ``name -> [own seconds, total seconds, compilations]``."""
    from numba.core import event

    times = {}
    stack = []

    class Listener(event.Listener):
        def on_start(self, ev):
            dispatcher = ev.data.get("dispatcher")
            f = getattr(dispatcher, "py_func", None)
            name = f"{f.__module__}.{f.__qualname__}" if f is not None else str(ev.kind)
            stack.append([name, time.perf_counter(), 0.0])

        def on_end(self, ev):
            name, t0, inner = stack.pop()
            total = time.perf_counter() - t0
            row = times.setdefault(name, [0.0, 0.0, 0])
            row[0] += total - inner
            row[1] += total
            row[2] += 1
            if stack:
                stack[-1][2] += total

    listener = Listener()
    event.register("numba:compile", listener)
    try:
        yield times
    finally:
        event.unregister("numba:compile", listener)


def _fresh_env(tmp):
    return dict(os.environ, NUMBA_CACHE_DIR=os.path.join(tmp, "cache"), HOME=tmp)


def seconds_to_first_progress_line(workers=None) -> float:
    """The default ``python -m fastd3pg.train``, from its start to its first progress line, on
    a pseudo-terminal; ``workers``: ``FASTD3PG_COMPILE_WORKERS`` (None: the default)."""
    import pty
    import select

    with tempfile.TemporaryDirectory() as tmp:
        env = _fresh_env(tmp)
        env.pop("FASTD3PG_COMPILE_WORKERS", None)
        if workers is not None:
            env["FASTD3PG_COMPILE_WORKERS"] = str(workers)
        reader, writer = pty.openpty()
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "fastd3pg.train", "--out",
                                 os.path.join(tmp, "run")], cwd=tmp, env=env,
                                stdin=subprocess.DEVNULL, stdout=writer, stderr=writer)
        os.close(writer)
        seen = b""
        try:
            while b"steps/s" not in seen and select.select([reader], [], [], 600)[0]:
                try:
                    chunk = os.read(reader, 4096)
                except OSError:  # the process ended
                    break
                if not chunk:
                    break
                seen += chunk
            if b"steps/s" in seen:
                return time.perf_counter() - t0
        finally:
            proc.kill()
            proc.wait()
            os.close(reader)
    raise RuntimeError("python -m fastd3pg.train printed no progress line")


_FIRST_STEPS = """
import json, sys
from fastd3pg.bench.compile import compile_times
from fastd3pg.bench.control import _agent
with compile_times() as times:
    a = _agent(sys.argv[1], "Pendulum", 200)
    a.train(100)
    a.evaluate()
print(json.dumps(times))
"""


def first_steps(algo: str) -> tuple[float, dict]:
    """Seconds of a fresh process that imports the package, trains ``algo`` for 100 steps on
    Pendulum and evaluates once; and what it compiled (:func:`compile_times`)."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", _FIRST_STEPS, algo], check=True, cwd=tmp,
                             env=_fresh_env(tmp), capture_output=True, text=True)
        seconds = time.perf_counter() - t0
    return seconds, json.loads(out.stdout.strip().splitlines()[-1])


def tables(quick=False):
    from fastd3pg.control.parallel_compile import workers

    helpers = workers()
    rows = [[f"python -m fastd3pg.train (defaults: {helpers} compile helper"
             f"{'s' if helpers != 1 else ''}), to the first progress line",
             seconds_to_first_progress_line()],
            ["python -m fastd3pg.train, no compile helper, to the first progress line",
             seconds_to_first_progress_line(workers=0)]]
    for algo in ("d3pg",) if quick else BENCHED:
        seconds, times = first_steps(algo)
        rows.append([f"import + first 100 {algo} steps on Pendulum + an evaluation, one process",
                     seconds])
        if algo == "d3pg":
            profile = times
    ranked = sorted(profile.items(), key=lambda kv: -kv[1][0])
    top = [[name.removeprefix("fastd3pg."), own, total, count]
           for name, (own, total, count) in ranked[:TOP]]
    all_own = sum(own for own, _, _ in profile.values())
    return [
        Table("Cold start (fresh process, empty cache)", ["what", "seconds"], rows),
        Table(f"Largest compile pieces (d3pg on Pendulum, {len(profile)} functions, "
              f"{all_own:.1f} s in all)", ["function", "own s", "total s", "compilations"], top,
              note="own: the function's own compilation; total: with what it compiled inside."),
    ]
