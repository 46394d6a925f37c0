"""Train an agent: ``python -m fastd3pg.train`` and :func:`run`; run a trained actor: :func:`load_policy`.

    python -m fastd3pg.train --env Pendulum --algo d3pg --seed 0 --steps 20000 --out DIR
            [--w1 1.0 --w2 1.0 --reg l2|cosine] [--config FILE.toml] [--resume]

Every setting comes from, in increasing priority: the algorithm's config dataclass, the task's
tuned file ``runs/configs/<env>.toml`` (when the source tree is at hand), ``--config FILE``,
then the flags. The output directory receives ``config.json`` (every setting used),
``metrics.csv`` (one row per evaluation), ``policy.npz`` (the actor, loadable without pickle),
``curve.png`` and ``checkpoint.npz`` (for ``--resume``). All files are written atomically.

Training runs in compiled periods of ``eval_every`` timesteps; between periods Python
evaluates, logs and checkpoints. Ctrl-C (or SIGTERM) finishes the current period, writes a
checkpoint and exits; ``--resume`` continues it to the same numbers an uninterrupted run gives.
"""

import argparse
import csv
import dataclasses
import io
import json
import math
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import fastd3pg
from fastd3pg import control
from fastd3pg.control import metrics
from fastd3pg.control.configio import ConfigError, apply_overrides, overrides_from_file
from fastd3pg.policy import Policy, load_policy  # noqa: F401  (part of this module's API)

# The algorithm registry lives in fastd3pg.control; these are its names here.
ALGOS = control.ALGOS
agent_class = control.agent_class

TUNED_CONFIGS = Path(__file__).resolve().parent.parent / "runs" / "configs"
METRICS_HEADER = ["timesteps", "wall_s", "return_raw", "return_mean", "return_history"]
CHECKPOINT_EVERY_S = 30.0


class TrainingError(RuntimeError):
    """A run that cannot go on (diverged, bad checkpoint); the message says why."""


# -- files --------------------------------------------------------------------------------------
def _atomic_write(path: Path, write):
    """Write through ``write(fileobj)`` into a temporary file beside ``path``, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _write_text(path: Path, text: str):
    _atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _write_npz(path: Path, arrays: dict):
    _atomic_write(path, lambda f: np.savez(f, **arrays))


def _metrics_text(rows) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(METRICS_HEADER)
    for row in rows:
        writer.writerow([int(row[0])] + [repr(float(x)) for x in row[1:]])
    return buf.getvalue()


def plot_curve(rows, path: Path, title: str):
    """``curve.png``: normalized ``return_mean`` and ``return_history`` against timesteps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = np.asarray(rows, dtype=np.float64).reshape(-1, len(METRICS_HEADER))
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    ax.plot(rows[:, 0], rows[:, 3], lw=1, alpha=0.6, label="return_mean")
    ax.plot(rows[:, 0], rows[:, 4], lw=2, label="return_history")
    ax.axhline(0.0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("timesteps")
    ax.set_ylabel("normalized return")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _atomic_write(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)


# -- settings -----------------------------------------------------------------------------------
def resolve_config(env_name: str, algo: str, config_file=None, overrides=None):
    """The config dataclass for ``algo`` on ``env_name`` after every layer of settings, and the
    list of files that contributed."""
    cls = agent_class(algo)
    config = cls.config_class()
    sources = []
    tuned = TUNED_CONFIGS / f"{env_name}.toml"
    if tuned.is_file():
        config = apply_overrides(config, overrides_from_file(tuned, algo, ALGOS), str(tuned))
        sources.append(str(tuned))
    if config_file is not None:
        config = apply_overrides(
            config, overrides_from_file(config_file, algo, ALGOS), str(config_file)
        )
        sources.append(str(config_file))
    if overrides:
        config = apply_overrides(config, overrides, "arguments")
    return config, sources


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


# -- the run ------------------------------------------------------------------------------------
class _StopFlag:
    """Turns SIGINT/SIGTERM into a flag checked between compiled periods."""

    def __init__(self):
        self.stop = False
        self._saved = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.stop:  # a second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self.stop = True

    def __exit__(self, *exc):
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)


class _Progress:
    """One line, rewritten in place on a terminal; plain lines in a log."""

    def __init__(self, stream, total):
        self.stream, self.total = stream, total
        self.tty = stream is not None and stream.isatty()
        self._last = 0.0

    def update(self, t, wall, rate, row, final=False):
        if self.stream is None:
            return
        text = (
            f"{t:>8d}/{self.total} steps  {rate:8.0f} steps/s  "
            f"return {row[2]:10.2f}  mean {row[3]:6.3f}  history {row[4]:6.3f}  [{wall:6.1f} s]"
        )
        if self.tty:
            self.stream.write("\r" + text + ("\n" if final else ""))
        elif final or wall - self._last >= 5.0 or t == self.total:
            self.stream.write(text + "\n")
            self._last = wall
        self.stream.flush()


def run(env="Pendulum", algo="d3pg", seed=0, steps=20000, out=None, config=None,
        resume=False, progress=None, **overrides):
    """Train ``algo`` on ``env`` and return the metrics as a dict of arrays (the columns of
    ``metrics.csv``). ``overrides`` set config fields by name (e.g. ``w1=0.5``); ``config``
    is a TOML file; ``progress`` a stream for the progress line (None: silent)."""
    from fastd3pg.physics import make

    seed = _check_int("seed", seed, 0)
    steps = _check_int("steps", steps, 1)
    environment = make(env)
    cls = agent_class(algo)
    cfg, sources = resolve_config(env, algo, config, overrides)
    out = Path(out) if out is not None else Path("runs") / env / algo / f"seed{seed}"
    settings = {
        "package": "fastd3pg",
        "version": fastd3pg.__version__,
        "env": env,
        "algo": algo,
        "seed": seed,
        "steps": steps,
        "env_params": dict(zip(environment.param_names, environment.params.tolist())),
        "config_files": sources,
        "config": dataclasses.asdict(cfg),
        "random_return": metrics.random_return(environment),
        "max_return": environment.max_reward * environment.horizon,
        "eval_every": metrics.EVAL_EVERY,
    }
    normalize = metrics.normalizer(environment)
    agent = cls(environment, cfg, seed, total_steps=steps)  # replay capped at `steps`

    rows, t, wall0 = [], 0, 0.0
    checkpoint = out / "checkpoint.npz"
    if resume:
        rows, t, wall0 = _load_checkpoint(checkpoint, agent, settings)
    _write_text(out / "config.json", json.dumps(settings, indent=2) + "\n")
    history = metrics.History(row[3] for row in rows)

    bar = _Progress(progress, steps)
    start = time.perf_counter() - wall0
    last_checkpoint = time.perf_counter()
    interrupted = False
    with _StopFlag() as flag:
        while t < steps:
            n = min(metrics.EVAL_EVERY, steps - t)
            t0 = time.perf_counter()
            agent.train(n)
            rate = n / max(time.perf_counter() - t0, 1e-9)
            if not agent.finite():
                raise TrainingError(
                    f"training diverged (non-finite network parameters or loss) between "
                    f"timesteps {t} and {t + n}; the last good checkpoint is kept in {checkpoint}"
                    if checkpoint.exists() else
                    f"training diverged (non-finite network parameters or loss) between "
                    f"timesteps {t} and {t + n}, before any checkpoint was written"
                )
            t += n
            raw = agent.evaluate()
            mean = normalize(raw)
            wall = time.perf_counter() - start
            rows.append((t, wall, raw, mean, history.add(mean)))
            plateau = hasattr(agent, "done") and agent.done()  # an early-stop rule (gd)
            bar.update(t, wall, rate, rows[-1], final=t >= steps or plateau)
            _write_text(out / "metrics.csv", _metrics_text(rows))
            if (flag.stop or plateau or t >= steps
                    or time.perf_counter() - last_checkpoint >= CHECKPOINT_EVERY_S):
                _save_checkpoint(checkpoint, agent, settings, rows, t, wall)
                last_checkpoint = time.perf_counter()
            if plateau:
                break
            if flag.stop and t < steps:
                interrupted = True
                break
    _write_npz(out / "policy.npz", agent.policy_arrays())
    plot_curve(rows, out / "curve.png", f"{algo} on {env}, seed {seed}")
    if interrupted:
        raise KeyboardInterrupt(f"interrupted at timestep {t}; resume with --resume (--out {out})")
    table = np.asarray(rows, dtype=np.float64).reshape(-1, len(METRICS_HEADER))
    result = {name: table[:, k] for k, name in enumerate(METRICS_HEADER)}
    result["timesteps"] = result["timesteps"].astype(np.int64)
    return result


_RESUME_KEYS = ("env", "algo", "seed", "env_params", "config", "eval_every")


def _save_checkpoint(path, agent, settings, rows, t, wall):
    arrays = {f"agent.{k}": v for k, v in agent.state_arrays().items()}
    arrays["rows"] = np.asarray(rows, dtype=np.float64).reshape(-1, len(METRICS_HEADER))
    arrays["timesteps"] = np.int64(t)
    arrays["wall_s"] = np.float64(wall)
    arrays["settings"] = np.array(json.dumps({k: settings[k] for k in _RESUME_KEYS}))
    _write_npz(path, arrays)


def _load_checkpoint(path, agent, settings):
    if not path.is_file():
        raise TrainingError(f"--resume: no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            saved = json.loads(str(data["settings"]))
            current = json.loads(json.dumps({k: settings[k] for k in _RESUME_KEYS}))
            changed = [k for k in _RESUME_KEYS if saved.get(k) != current[k]]
            if changed:
                raise TrainingError(
                    f"--resume: the checkpoint in {path} was made with other settings "
                    f"({', '.join(changed)} differ); use the same settings or another --out"
                )
            agent.load_state_arrays(
                {k[len("agent."):]: data[k] for k in data.files if k.startswith("agent.")}
            )
            rows = [tuple(r) for r in data["rows"]]
            return rows, int(data["timesteps"]), float(data["wall_s"])
    except (OSError, ValueError, KeyError) as err:
        raise TrainingError(f"--resume: unreadable checkpoint {path}: {err}") from None


# -- command line -------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def _finite_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _count(low):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def main(argv=None) -> int:
    from fastd3pg.physics import names

    parser = _Parser(prog="python -m fastd3pg.train", description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="Pendulum", help="task: " + ", ".join(names()))
    parser.add_argument("--algo", default="d3pg", help="algorithm: " + ", ".join(ALGOS))
    parser.add_argument("--seed", type=_count(0), default=0)
    parser.add_argument("--steps", type=_count(1), default=20000, help="env timesteps")
    parser.add_argument("--out", default=None, help="output directory (default runs/<env>/<algo>/seed<k>)")
    parser.add_argument("--w1", type=_finite_float, help="weight of the action-gradient term")
    parser.add_argument("--w2", type=_finite_float, help="weight of the state-gradient term")
    parser.add_argument("--reg", choices=("l2", "cosine"), help="gradient-fitting loss")
    parser.add_argument("--config", default=None, help="TOML file of config overrides")
    parser.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    args = parser.parse_args(argv)
    if args.algo not in ALGOS:
        parser.error(f"unknown algo {args.algo!r}; valid: {', '.join(ALGOS)}")
    if args.env not in names():
        parser.error(f"unknown env {args.env!r}; valid: {', '.join(names())}")
    overrides = {k: v for k, v in (("w1", args.w1), ("w2", args.w2), ("reg", args.reg)) if v is not None}
    out = args.out or os.path.join("runs", args.env, args.algo, f"seed{args.seed}")
    print(f"fastd3pg {fastd3pg.__version__}: {args.algo} on {args.env}, seed {args.seed}, "
          f"{args.steps} steps -> {out}", flush=True)
    try:
        result = run(env=args.env, algo=args.algo, seed=args.seed, steps=args.steps, out=out,
                     config=args.config, resume=args.resume, progress=sys.stdout, **overrides)
    except KeyboardInterrupt as stop:
        print(f"\n{parser.prog}: {stop.args[0] if stop.args else 'interrupted'}", file=sys.stderr)
        return 130
    except (ConfigError, TrainingError, ValueError) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 1
    if result["timesteps"][-1] < args.steps:
        print(f"stopped early at timestep {result['timesteps'][-1]}: return_mean plateaued",
              flush=True)
    print(f"done: {out}/metrics.csv, policy.npz, curve.png", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
