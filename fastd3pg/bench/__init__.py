"""``python -m fastd3pg.bench``: speed tables for every part of the library.

All benchmark code lives in this package, one module per section, each with
``tables(quick: bool) -> list[Table]``: :mod:`~fastd3pg.bench.nn` (network kernels against
NumPy's BLAS), :mod:`~fastd3pg.bench.physics` (simulator steps), :mod:`~fastd3pg.bench.control`
(training throughput against the machine's GEMM rate, measured in the same run),
:mod:`~fastd3pg.bench.ilqr` (iLQR iterations), :mod:`~fastd3pg.bench.memory` (replay bytes
per transition, and the peak resident memory of a 300,000-step run) and
:mod:`~fastd3pg.bench.compile` (a first run's compile time with an empty cache, and its largest
pieces). Timings are medians of repeated runs after compilation, on one core.

    python -m fastd3pg.bench                 # every section
    python -m fastd3pg.bench --only nn       # one section (nn, physics, control, ilqr, memory, compile)
    python -m fastd3pg.bench --quick         # fewer repetitions
"""

import importlib
import os
import platform
import time
from dataclasses import dataclass, field

from fastd3pg._cli import Parser

SECTIONS = {
    "nn": "fastd3pg.bench.nn",
    "physics": "fastd3pg.bench.physics",
    "control": "fastd3pg.bench.control",
    "ilqr": "fastd3pg.bench.ilqr",
    "memory": "fastd3pg.bench.memory",
    "compile": "fastd3pg.bench.compile",
}


@dataclass
class Table:
    title: str
    header: list
    rows: list = field(default_factory=list)
    note: str = ""

    def render(self) -> str:
        cells = [[str(h) for h in self.header]] + [[_fmt(c) for c in row] for row in self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.header))]
        lines = [f"## {self.title}", ""]
        for k, row in enumerate(cells):
            lines.append("| " + " | ".join(c.rjust(w) for c, w in zip(row, widths)) + " |")
            if k == 0:
                lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines)


def _fmt(x) -> str:
    if isinstance(x, float):
        if x != x:
            return "-"
        if abs(x) >= 1000:
            return f"{x:,.0f}"
        if abs(x) >= 10:
            return f"{x:.1f}"
        return f"{x:.3g}"
    return str(x)


def median_time(fn, repeat=7, min_time=0.05):
    """Median seconds per call of ``fn()``, after one warm-up call; each of ``repeat``
    samples loops ``fn`` long enough to last ``min_time``."""
    fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-9)
    inner = max(1, int(min_time / once))
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    samples.sort()
    return samples[len(samples) // 2]


def header() -> str:
    import numba
    import numpy

    from fastd3pg._jit import compile_target

    target = compile_target()
    return (
        f"# fastd3pg benchmark\n\nmachine: {platform.machine()}, {os.cpu_count()} cores "
        f"({target['processor']}; {platform.platform()}); python {platform.python_version()}, "
        f"numpy {numpy.__version__}, numba {numba.__version__}; "
        f"numba threads used: 1; kernels compiled for {target['cpu_name']} "
        f"({target['reason']})\n"
    )


def main(argv=None) -> int:
    parser = Parser(prog="python -m fastd3pg.bench",
                     description="Speed tables for every part of fastd3pg.")
    parser.add_argument("--only", default="", help="comma-separated sections: " + ", ".join(SECTIONS))
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args(argv)
    chosen = [s for s in args.only.split(",") if s] or list(SECTIONS)
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; valid: {', '.join(SECTIONS)}")
    import numba

    numba.set_num_threads(1)
    print(header(), flush=True)
    for name in chosen:
        module = importlib.import_module(SECTIONS[name])
        for table in module.tables(quick=args.quick):
            print(table.render() + "\n", flush=True)
    return 0
