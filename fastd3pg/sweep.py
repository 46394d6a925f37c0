"""Experiment sweeps: many (env, algo, seed) runs, then the paper's Figure 4 and Table 1.

    python -m fastd3pg.sweep runs/experiments/quick.toml [--workers 2] [--report-only]

An experiment file is TOML::

    name = "quick"              # results go to runs/results/<name>/
    envs = ["Pendulum", "MassPoint"]
    algos = ["ddpg", "d3pg"]
    seeds = 4                   # seeds 0..3 (or a list)
    steps = 20000               # per run (or a table envs -> steps: [steps] Pendulum = 20000)

Each run is ``python -m fastd3pg.train`` in its own process (``--workers`` at a time, one per
core by default) writing to ``runs/results/<name>/<env>/<algo>/seed<k>/``. A finished run is
skipped; an interrupted one resumes from its checkpoint, so a sweep can be stopped and
restarted at any time without losing work. Then ``figure4.png`` (mean ± std of
``return_mean`` and ``return_history`` against timesteps) and ``table1.md`` (final
``return_history``, mean ± std over seeds) are written beside the runs.
"""

import argparse
import csv
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from fastd3pg.control.configio import ConfigError, load_toml

RESULTS = Path("runs") / "results"


def load_experiment(path) -> dict:
    data = load_toml(path)
    from fastd3pg.physics import names
    from fastd3pg.train import ALGOS

    unknown = set(data) - {"name", "envs", "algos", "seeds", "steps", "config"}
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}")
    try:
        exp = {
            "name": str(data.get("name", Path(path).stem)),
            "envs": list(data["envs"]),
            "algos": list(data["algos"]),
            "seeds": list(range(data["seeds"])) if isinstance(data.get("seeds", 4), int)
            else list(data["seeds"]),
            "config": data.get("config"),
        }
    except KeyError as err:
        raise ConfigError(f"{path}: missing key {err.args[0]!r}") from None
    for env in exp["envs"]:
        if env not in names():
            raise ConfigError(f"{path}: unknown env {env!r}; valid: {', '.join(names())}")
    for algo in exp["algos"]:
        if algo not in ALGOS:
            raise ConfigError(f"{path}: unknown algo {algo!r}; valid: {', '.join(ALGOS)}")
    steps = data.get("steps", 20000)
    exp["steps"] = {env: int(steps[env] if isinstance(steps, dict) else steps) for env in exp["envs"]}
    return exp


def run_dir(root: Path, env, algo, seed) -> Path:
    return root / env / algo / f"seed{seed}"


def _finished(out: Path, steps: int) -> bool:
    rows = read_metrics(out / "metrics.csv")
    return rows is not None and len(rows) and rows[-1, 0] >= steps and (out / "policy.npz").exists()


def read_metrics(path: Path):
    if not path.is_file():
        return None
    with open(path) as f:
        rows = list(csv.reader(f))[1:]
    return np.array(rows, dtype=np.float64).reshape(-1, 5)


def _launch(job, log):
    env, algo, seed, steps, out, config = job
    cmd = [sys.executable, "-m", "fastd3pg.train", "--env", env, "--algo", algo, "--seed",
           str(seed), "--steps", str(steps), "--out", str(out)]
    if config:
        cmd += ["--config", str(config)]
    if (out / "checkpoint.npz").exists():
        cmd.append("--resume")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(out / "train.log", "w") as f:
        code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT,
                              env=dict(os.environ, NUMBA_NUM_THREADS="1")).returncode
    log(f"{'ok  ' if code == 0 else 'FAIL'} {env:16s} {algo:9s} seed {seed}  "
        f"{time.perf_counter() - t0:6.1f} s" + ("" if code == 0 else f"  (see {out}/train.log)"))
    return code


def run_sweep(exp: dict, root: Path, workers: int, log=print) -> int:
    jobs = []
    for env in exp["envs"]:
        for algo in exp["algos"]:
            for seed in exp["seeds"]:
                out = run_dir(root, env, algo, seed)
                if not _finished(out, exp["steps"][env]):
                    jobs.append((env, algo, seed, exp["steps"][env], out, exp["config"]))
    log(f"{exp['name']}: {len(jobs)} run(s) to do, {workers} at a time")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        codes = list(pool.map(lambda job: _launch(job, log), jobs))
    return sum(1 for c in codes if c != 0)


def collect(exp: dict, root: Path) -> dict:
    """(env, algo) -> (timesteps, return_mean runs, return_history runs), over finished seeds."""
    out = {}
    for env in exp["envs"]:
        for algo in exp["algos"]:
            runs = [read_metrics(run_dir(root, env, algo, s) / "metrics.csv") for s in exp["seeds"]]
            runs = [r for r in runs if r is not None and len(r)]
            if not runs:
                continue
            k = min(len(r) for r in runs)
            out[env, algo] = (runs[0][:k, 0], np.array([r[:k, 3] for r in runs]),
                              np.array([r[:k, 4] for r in runs]))
    return out


def write_report(exp: dict, root: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = collect(exp, root)
    envs = [e for e in exp["envs"] if any((e, a) in data for a in exp["algos"])]
    if not envs:
        return
    fig, axes = plt.subplots(2, len(envs), figsize=(3.2 * len(envs), 5.2), squeeze=False)
    for col, env in enumerate(envs):
        for algo in exp["algos"]:
            if (env, algo) not in data:
                continue
            t, means, hists = data[env, algo]
            for row, values in enumerate((means, hists)):
                mu, sd = values.mean(0), values.std(0)
                ax = axes[row, col]
                ax.plot(t, mu, lw=1.2, label=f"{algo} ({len(values)})")
                ax.fill_between(t, mu - sd, mu + sd, alpha=0.2)
        axes[0, col].set_title(env, fontsize=10)
        axes[1, col].set_xlabel("timesteps")
    axes[0, 0].set_ylabel("return_mean")
    axes[1, 0].set_ylabel("return_history")
    axes[0, -1].legend(fontsize=7)
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(root / "figure4.png", dpi=110)
    plt.close(fig)

    lines = ["| method | " + " | ".join(envs) + " |", "|---" * (len(envs) + 1) + "|"]
    for algo in exp["algos"]:
        cells = []
        for env in envs:
            if (env, algo) in data:
                final = data[env, algo][2][:, -1]
                cells.append(f"{final.mean():.3f} ± {final.std():.3f} ({len(final)})")
            else:
                cells.append("-")
        lines.append(f"| {algo} | " + " | ".join(cells) + " |")
    text = (f"# {exp['name']}: final normalized return_history, mean ± std (runs)\n\n"
            + "\n".join(lines) + "\n")
    (root / "table1.md").write_text(text)
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastd3pg.sweep",
                                     description="Run an experiment file's runs, then plot them.")
    parser.add_argument("experiment", help="TOML experiment file")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--report-only", action="store_true", help="only aggregate finished runs")
    args = parser.parse_args(argv)
    try:
        exp = load_experiment(args.experiment)
    except ConfigError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 1
    root = RESULTS / exp["name"]
    failures = 0
    if not args.report_only:
        failures = run_sweep(exp, root, max(1, args.workers))
    text = write_report(exp, root)
    if text:
        print(text)
        print(f"figure: {root / 'figure4.png'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
