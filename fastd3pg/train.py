"""Train an agent: ``python -m fastd3pg.train`` and :func:`run`; run a trained actor: :func:`load_policy`.

    python -m fastd3pg.train --env Pendulum --algo d3pg --seed 0 --steps 20000 --out DIR
            [--w1 1.0 --w2 1.0 --reg l2|cosine] [--config FILE.toml] [--resume | --overwrite]
            [--checkpoint-every SECONDS] [--eval-episodes K] [--diagnose]

Every setting comes from, in increasing priority: the algorithm's config dataclass, the task's
tuned file ``fastd3pg/configs/<env>.toml`` (package data), ``--config FILE``, then the flags.
The output directory receives ``config.json`` (every setting used), ``metrics.csv`` (one row
per evaluation; for ``mpc`` one per returned action, see below), ``policy.npz`` (the final
actor, loadable without pickle), ``curve.png`` and ``checkpoint.npz`` (for ``--resume``); with
``--diagnose`` also ``diagnostics.csv`` (one row per evaluation: the critic's and the TD target's
values and input gradients against the simulator's ground truth; columns in
:mod:`fastd3pg.diagnose`). Every file is written to a temporary file beside it and renamed into
place, so a file on disk is always either the previous or the new complete version; files are
created with the permissions the umask allows.

Training runs in compiled periods of ``eval_every`` timesteps; between periods Python
evaluates, logs and, every ``checkpoint_every`` seconds of wall time (and at the end),
checkpoints. MPC's metric is recorded whenever it returns an action (the paper's §5.2): its
agent hands back the predictions of a whole period (``returns_per_action``), which become one
row per env step, ``timesteps`` the env steps so far; their ``wall_s`` are spread evenly over
the period's compiled call, which times no single step. An agent may end its run before
``--steps`` (``done``: GD's plateau; MPC's one episode ending, or MPC converging): the driver
then checkpoints, writes the final files and prints ``stopped early at timestep T: <why>``;
resumed, such a run stays stopped. Where a checkpoint falls does not change any number: a run
resumed from any checkpoint ends with the ``metrics.csv`` an uninterrupted run gives
(``wall_s`` aside). Ctrl-C (or SIGTERM) finishes the current period, writes a checkpoint and
exits; after a ``kill -9``, ``--resume`` continues from the last checkpoint, so at most
``checkpoint_every`` seconds plus one period of training are lost.

An output directory that already holds a run is never overwritten unless asked
(``--overwrite``). ``--resume`` checks that the checkpoint is intact, was made with the same
settings (naming the keys that differ), and that ``config.json`` and ``metrics.csv`` were not
edited since; any problem stops the run with one clear message and leaves the files as they
were.
"""

import argparse
import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import secrets
import signal
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np

import fastd3pg
from fastd3pg._cli import Parser, count
from fastd3pg import _jit
from fastd3pg._jit import compile_target
from fastd3pg import control
from fastd3pg.control import metrics, parallel_compile
from fastd3pg.control.configio import (ConfigError, apply_overrides, overrides_from_file,
                                       tuned_config)
from fastd3pg.policy import Policy, load_policy  # noqa: F401  (part of this module's API)

# The algorithm registry lives in fastd3pg.control; these are its names here.
ALGOS = control.ALGOS
agent_class = control.agent_class


METRICS_HEADER = ["timesteps", "wall_s", "return_raw", "return_mean", "return_history"]
CHECKPOINT_EVERY_S = 30.0  # default seconds of wall time between checkpoints
# The files of a run; a directory holding any of them holds a run.
RUN_FILES = ("config.json", "metrics.csv", "checkpoint.npz", "policy.npz", "curve.png",
             "diagnostics.csv")
CHECKPOINT_FORMAT = "fastd3pg checkpoint 1"
# config.json keys that a later invocation of the same run may change (--resume --steps N...).
_PER_INVOCATION = ("version", "steps", "checkpoint_every", "eval_episodes", "compile_target")


class TrainingError(RuntimeError):
    """A run that cannot go on or start (diverged, damaged checkpoint, unusable output
    directory); the message says why, in one line."""


# -- files --------------------------------------------------------------------------------------
def _reason(err: OSError) -> str:
    return err.strerror or str(err)


def _atomic_write(path: Path, write):
    """Write through ``write(fileobj)`` into a temporary file beside ``path``, then rename it
    over ``path``: a reader (or a run killed at any moment) sees the old or the new file, never
    a part. An ``OSError`` (full disk, lost permission) becomes a :class:`TrainingError`, the
    temporary file is removed and the previous ``path`` is left as it was."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        # Mode 0o666 through os.open, so that the umask decides (mkstemp would force 0600).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise TrainingError(f"cannot write {path}: {_reason(err)} (the previous "
                                f"{path.name}, if any, is unchanged)") from None
        raise


def _write_text(path: Path, text: str):
    _atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _write_npz(path: Path, arrays: dict):
    _atomic_write(path, lambda f: np.savez(f, **arrays))


def _remove_temporary_files(out: Path):
    """Temporary files of writes that a killed run left behind."""
    for path in out.glob(".*.tmp"):
        if any(path.name.startswith(f".{name}.") for name in RUN_FILES):
            with contextlib.suppress(OSError):
                path.unlink()


def _metrics_text(rows) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(METRICS_HEADER)
    for row in rows:
        writer.writerow([int(row[0])] + [repr(float(x)) for x in row[1:]])
    return buf.getvalue()


def _diagnostics_text(rows) -> str:
    """``diagnostics.csv`` from its rows (lists of values, or lines kept from the file)."""
    from fastd3pg.diagnose import HEADER

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HEADER)
    for row in rows:
        if isinstance(row, str):
            buf.write(row + "\n")
        else:
            writer.writerow([int(row[0])] + [repr(float(x)) for x in row[1:]])
    return buf.getvalue()


def _kept_diagnostics(path: Path, t: int) -> list:
    """The lines of ``diagnostics.csv`` up to timestep ``t`` (those of a resumed run's
    checkpoint; later rows are computed again); none where the file is missing."""
    from fastd3pg.diagnose import HEADER

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as err:
        raise TrainingError(f"--resume: cannot read {path} ({err}); delete it to have it "
                            "written again from this point") from None
    if not lines or lines[0] != ",".join(HEADER):
        raise TrainingError(f"--resume: {path} is not this version's diagnostics.csv (its "
                            "header differs); delete it to have it written again")
    kept = []
    for line in lines[1:]:
        try:
            step = int(line.split(",", 1)[0])
        except ValueError:
            raise TrainingError(f"--resume: {path} is damaged (a row without a timestep); "
                                "delete it to have it written again") from None
        if step <= t:
            kept.append(line)
    return kept


def plot_curve(rows, path: Path, title: str, diagnostics=None):
    """``curve.png``: normalized ``return_mean`` and ``return_history`` against timesteps; with
    ``diagnostics`` (rows of ``diagnostics.csv``) a second panel, the cosines of the critic's
    ``∇_s Q`` and ``∇_a Q`` against the simulator's truth at the actor's actions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = np.asarray(rows, dtype=np.float64).reshape(-1, len(METRICS_HEADER))
    if diagnostics:
        from fastd3pg.diagnose import HEADER

        table = np.array([[float(x) for x in (r.split(",") if isinstance(r, str) else r)]
                          for r in diagnostics]).reshape(-1, len(HEADER))
        fig, (ax, dax) = plt.subplots(2, 1, figsize=(6, 6), dpi=120, sharex=True)
        for name, label in (("critic_ds_cos_actor", "cos(∇_s Q, truth)"),
                            ("critic_da_cos_actor", "cos(∇_a Q, truth)")):
            dax.plot(table[:, 0], table[:, HEADER.index(name)], lw=1.5, label=label)
        dax.axhline(0.0, color="grey", lw=0.8, ls=":")
        dax.set_ylim(-1.05, 1.05)
        dax.set_xlabel("timesteps")
        dax.set_ylabel("cosine (actor's action)")
        dax.legend(loc="lower right", fontsize=8)
        dax.grid(alpha=0.3)
    else:
        fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    ax.plot(rows[:, 0], rows[:, 3], lw=1, alpha=0.6, label="return_mean")
    ax.plot(rows[:, 0], rows[:, 4], lw=2, label="return_history")
    ax.axhline(0.0, color="grey", lw=0.8, ls=":")
    if not diagnostics:
        ax.set_xlabel("timesteps")
    ax.set_ylabel("normalized return")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        _atomic_write(path, lambda f: fig.savefig(f, format="png"))
    finally:
        plt.close(fig)


def _make_out(out: Path):
    """Create the output directory; a clear error where ``out`` or a parent is a file, or the
    place is not writable."""
    if out.exists() and not out.is_dir():
        raise TrainingError(f"--out {out} is a file, not a directory")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise TrainingError(f"--out {out} lies under {parent}, which is a file")
            break
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise TrainingError(f"cannot create the output directory {out}: {_reason(err)}") from None


@contextlib.contextmanager
def _lock(out: Path):
    """Hold ``out/.lock`` for the run: probes that ``out`` is writable, and refuses a second
    run writing into the same directory at the same time."""
    path = out / ".lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        raise TrainingError(f"cannot write into the output directory {out}: {_reason(err)}") from None
    try:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock, the probe only
            fcntl = None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise TrainingError(f"another run is writing into {out}; wait for it to end "
                                    "or use another --out") from None
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                path.unlink()
    finally:
        os.close(fd)


# -- settings -----------------------------------------------------------------------------------
def resolve_config(env_name: str, algo: str, config_file=None, overrides=None):
    """The config dataclass for ``algo`` on ``env_name`` after every layer of settings, and the
    list of files that contributed. An error from a file names the file."""
    cls = agent_class(algo)
    config = cls.config_class()
    sources = []
    layers = []
    tuned, tuned_name = tuned_config(env_name)
    if tuned is not None:
        layers.append((tuned, tuned_name))
    if config_file is not None:
        layers.append((config_file, str(config_file)))
    for path, name in layers:
        try:
            config = apply_overrides(config, overrides_from_file(path, algo, ALGOS), name)
        except ConfigError as err:
            message = str(err)
            raise ConfigError(message if name in message else f"{name}: {message}") from None
        sources.append(name)
    if overrides:
        config = apply_overrides(config, overrides, "arguments")
    return config, sources


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_path(name, value):
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"{name} must be a path (str or os.PathLike) or None, got {value!r}")
    if value is not None and str(value) == "":
        raise ValueError(f"{name} must not be empty")
    return value


def _differences(before: dict, after: dict, labels, prefix="") -> list:
    """``key: value in <labels[0]>, value in <labels[1]>`` for every (nested) key that differs."""
    missing = object()
    found = []
    for key in sorted(set(before) | set(after), key=str):
        a, b = before.get(key, missing), after.get(key, missing)
        if isinstance(a, dict) and isinstance(b, dict):
            found += _differences(a, b, labels, f"{prefix}{key}.")
        elif a != b:
            show = [("(none)" if v is missing else json.dumps(v)) for v in (a, b)]
            found.append(f"{prefix}{key}: {show[0]} {labels[0]}, {show[1]} {labels[1]}")
    return found


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


class _CompileNotice:
    """``compiling kernels, first run only ... done in N s`` on the progress stream, when the
    kernel cache lacks what this run compiles (:func:`cold_cache`, a cheap look at file
    names)."""

    def __init__(self, stream, cold: bool):
        self.stream, self.t0 = stream, None
        if stream is not None and cold:
            stream.write(f"compiling kernels, first run only (cached in {_jit.cache_dir()}) ... ")
            stream.flush()
            self.t0 = time.perf_counter()

    def done(self):
        if self.t0 is not None:
            self.stream.write(f"done in {time.perf_counter() - self.t0:.0f} s\n")
            self.stream.flush()
            self.t0 = None


def cold_cache(cls) -> bool:
    """Whether the kernel cache holds no kernel of the metrics (every run compiles them first)
    or, where the agent's module defines compiled kernels, none of those."""
    module = sys.modules[cls.__module__]
    stems = ["metrics."]
    if any(getattr(getattr(value, "py_func", None), "__module__", None) == module.__name__
           for value in vars(module).values()):
        stems.append(module.__name__.rsplit(".", 1)[-1] + ".")
    try:
        cached = [p.name for p in Path(_jit.cache_dir()).rglob("*.nbi")]
    except OSError:
        return True
    return not all(any(name.startswith(stem) for name in cached) for stem in stems)


def run(env="Pendulum", algo="d3pg", seed=0, steps=20000, out=None, config=None,
        resume=False, progress=None, *, overwrite=False, checkpoint_every=CHECKPOINT_EVERY_S,
        eval_episodes=1, diagnose=False, **overrides):
    """Train ``algo`` on ``env`` and return the metrics as a dict of arrays (the columns of
    ``metrics.csv``; with ``eval_episodes`` K > 1 also ``eval_returns``, the normalized
    returns of K episodes of the final actor from seeded start states).

    ``overrides`` set config fields by name (e.g. ``w1=0.5``); ``config`` is a TOML file;
    ``progress`` a stream for the progress line (None: silent). ``out`` (default
    ``runs/<env>/<algo>/seed<k>``) must not hold a run already unless ``resume`` (continue its
    checkpoint) or ``overwrite`` (replace it). ``checkpoint_every``: seconds of wall time
    between checkpoints (0: after every evaluation); it changes no number. ``diagnose``: also
    write ``diagnostics.csv`` (:mod:`fastd3pg.diagnose`; algorithms with a critic, SAC aside);
    it changes no number of ``metrics.csv``. Bad arguments raise
    ``ValueError``; unusable files and directories :class:`TrainingError`, before anything in
    ``out`` is changed."""
    from fastd3pg.physics import make, names

    seed = _check_int("seed", seed, 0)
    steps = _check_int("steps", steps, 1)
    eval_episodes = _check_int("eval_episodes", eval_episodes, 1)
    resume, overwrite = _check_bool("resume", resume), _check_bool("overwrite", overwrite)
    diagnose = _check_bool("diagnose", diagnose)
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other")
    if (isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, (int, float))
            or not math.isfinite(checkpoint_every) or checkpoint_every < 0):
        raise ValueError(f"checkpoint_every must be a finite number of seconds >= 0, "
                         f"got {checkpoint_every!r}")
    if not isinstance(env, str) or env not in names():
        raise ValueError(f"unknown env {env!r}; valid: {', '.join(names())}")
    if not isinstance(algo, str) or algo not in ALGOS:
        raise ValueError(f"unknown algo {algo!r}; valid: {', '.join(ALGOS)}")
    if algo == "mpc" and eval_episodes > 1:
        raise ValueError("eval_episodes applies to trained actors; mpc's metric is its "
                         "predicted return and its policy.npz holds the untrained initial actor")
    if diagnose and not hasattr(agent_class(algo), "critic_snapshot"):
        raise ValueError(f"diagnose measures a critic; {algo} has none" if algo in ("gd", "mpc")
                         else f"diagnose is not available for {algo} (only for d3pg, ddpg, "
                              "td3 and d3pg-td3)")
    _check_path("out", out)
    _check_path("config", config)
    if progress is not None and not callable(getattr(progress, "write", None)):
        raise ValueError(f"progress must be a writable stream or None, got {progress!r}")
    environment = make(env)
    cls = agent_class(algo)
    cfg, sources = resolve_config(env, algo, config, overrides)
    out = Path(out) if out is not None else Path("runs") / env / algo / f"seed{seed}"
    _make_out(out)
    with _lock(out):
        held = [name for name in RUN_FILES if (out / name).exists()]
        if resume and not (out / "checkpoint.npz").exists():
            raise TrainingError(f"--resume: no checkpoint in {out}"
                                + (" (start it again with --overwrite)" if held else ""))
        if held and not resume and not overwrite:
            raise TrainingError(f"{out} already holds a run ({', '.join(held)}); continue it "
                                "with --resume, replace it with --overwrite, or use another --out")
        cold = cold_cache(cls)
        notice = _CompileNotice(progress, cold)
        helpers = parallel_compile.start(env, algo, cfg) if cold else []
        try:
            result = _train(environment, cls, cfg, sources, algo, seed, steps, out, resume,
                            progress, overwrite, float(checkpoint_every), eval_episodes, notice,
                            diagnose, helpers)
        except BaseException:
            parallel_compile.finish(helpers, timeout=0)  # a failed run waits for nothing
            raise
        finally:
            notice.done()
        parallel_compile.finish(helpers)
        return result


def _train(environment, cls, cfg, sources, algo, seed, steps, out, resume, progress, overwrite,
           checkpoint_every, eval_episodes, notice, diagnose=False, helpers=()):
    env = environment.name
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
        "checkpoint_every": checkpoint_every,
        "eval_episodes": eval_episodes,
        # What bit-identical reruns depend on (see fastd3pg._jit): the kernels' compile target,
        # the processor and Numba's version; of the latest invocation when resumed elsewhere.
        "compile_target": compile_target(),
    }
    config_text = json.dumps(settings, indent=2) + "\n"
    normalize = metrics.normalizer(environment)
    agent = cls(environment, cfg, seed, total_steps=steps)  # replay capped at `steps`
    if helpers:  # they compile the plan from its start; this process from its end
        _jit.compile_ahead(agent.compile_plan(), backwards=True)

    rows, t, wall0 = [], 0, 0.0
    checkpoint = out / "checkpoint.npz"
    diagnosed = out / "diagnostics.csv"
    if resume:
        rows, t, wall0 = _load_checkpoint(checkpoint, agent, settings)
    diag_rows = _kept_diagnostics(diagnosed, t) if resume and diagnose else []
    _remove_temporary_files(out)
    if overwrite:
        for name in RUN_FILES:
            with contextlib.suppress(FileNotFoundError):
                (out / name).unlink()
    _write_text(out / "config.json", config_text)
    if rows:  # the checkpoint's record (rows written after it are computed again)
        _write_text(out / "metrics.csv", _metrics_text(rows))
    if diagnose and (diag_rows or diagnosed.exists()):
        _write_text(diagnosed, _diagnostics_text(diag_rows))
    history = metrics.History(row[3] for row in rows)
    # An agent with its own end (gd's plateau, mpc's episode) says so through done().
    stopped = hasattr(agent, "done") and agent.done()
    # mpc records its metric at every returned action: a row per env step, not per period.
    per_action = hasattr(agent, "returns_per_action")

    bar = _Progress(progress, steps)
    start = time.perf_counter() - wall0
    last_checkpoint = time.perf_counter()
    interrupted = False
    with _StopFlag() as flag:
        while t < steps and not stopped:  # a resumed run that had stopped stays stopped
            n = min(metrics.EVAL_EVERY, steps - t)
            t0 = time.perf_counter()
            agent.train(n)
            t1 = time.perf_counter()
            if not agent.finite():
                raise TrainingError(
                    f"training diverged (non-finite network parameters or loss) between "
                    f"timesteps {t} and {t + n}; the last good checkpoint is kept in {checkpoint}"
                    if checkpoint.exists() else
                    f"training diverged (non-finite network parameters or loss) between "
                    f"timesteps {t} and {t + n}, before any checkpoint was written"
                )
            if per_action:
                raws = agent.returns_per_action()
                n = len(raws)
                # One compiled call made these rows: their wall times are spread evenly over it.
                walls = [t0 - start + (k + 1) / n * (t1 - t0) for k in range(n)]
                stamps = range(t + 1, t + n + 1)
            else:
                raws, walls, stamps = [agent.evaluate()], [None], [t + n]
            rate = n / max(t1 - t0, 1e-9)
            for step, wall, raw in zip(stamps, walls, raws):
                mean = normalize(raw)
                wall = time.perf_counter() - start if wall is None else wall
                rows.append((step, wall, raw, mean, history.add(mean)))
            t += n
            wall = rows[-1][1]
            notice.done()
            stopped = hasattr(agent, "done") and agent.done()
            bar.update(t, wall, rate, rows[-1], final=t >= steps or stopped)
            _write_text(out / "metrics.csv", _metrics_text(rows))
            if diagnose:  # NumPy on copies of the agent's arrays, from a stream of its own
                from fastd3pg.diagnose import fidelity

                diag_rows.append(fidelity(environment, agent, seed, t))
                _write_text(diagnosed, _diagnostics_text(diag_rows))
            if (flag.stop or stopped or t >= steps
                    or time.perf_counter() - last_checkpoint >= checkpoint_every):
                _save_checkpoint(checkpoint, agent, settings, config_text, rows, t, wall)
                last_checkpoint = time.perf_counter()
            if stopped:
                break
            if flag.stop and t < steps:
                interrupted = True
                break
    policy_arrays = agent.policy_arrays()
    _write_npz(out / "policy.npz", policy_arrays)
    plot_curve(rows, out / "curve.png", f"{algo} on {env}, seed {seed}", diag_rows)
    if interrupted:
        raise KeyboardInterrupt(f"interrupted at timestep {t}; resume with --resume (--out {out})")
    table = np.asarray(rows, dtype=np.float64).reshape(-1, len(METRICS_HEADER))
    result = {name: table[:, k] for k, name in enumerate(METRICS_HEADER)}
    result["timesteps"] = result["timesteps"].astype(np.int64)
    if stopped:
        result["stop_reason"] = agent.stop_reason()
    if eval_episodes > 1:
        result["eval_returns"] = _evaluate_episodes(env, policy_arrays, eval_episodes, seed,
                                                    normalize)
    return result


def _evaluate_episodes(env_name, policy_arrays, episodes, seed, normalize) -> np.ndarray:
    """Normalized returns of ``episodes`` episodes of the final actor in NumPy, from start
    states seeded by ``seed`` (apart from the agent's random streams, which stay untouched)."""
    from fastd3pg.physics import make

    env, policy = make(env_name), Policy(policy_arrays)
    returns = []
    for start in np.random.SeedSequence((seed, episodes)).generate_state(episodes):
        state, _ = env.reset(seed=int(start))
        total = 0.0
        for _ in range(env.horizon):
            state, reward, terminated, truncated, _ = env.step(policy(state))
            total += reward
            if terminated or truncated:
                break
        returns.append(normalize(total))
    return np.array(returns)


_RESUME_KEYS = ("env", "algo", "seed", "env_params", "config", "eval_every")
_CHECKPOINT_KEYS = ("timesteps", "rows", "wall_s", "settings")


def _save_checkpoint(path, agent, settings, config_text, rows, t, wall):
    arrays = {f"agent.{k}": v for k, v in agent.state_arrays().items()}
    arrays["format"] = np.array(CHECKPOINT_FORMAT)
    arrays["rows"] = np.asarray(rows, dtype=np.float64).reshape(-1, len(METRICS_HEADER))
    arrays["timesteps"] = np.int64(t)
    arrays["wall_s"] = np.float64(wall)
    arrays["settings"] = np.array(json.dumps({k: settings[k] for k in _RESUME_KEYS}))
    arrays["config_json"] = np.array(config_text)
    _write_npz(path, arrays)


def _read_checkpoint(path: Path) -> dict:
    """Every array of ``checkpoint.npz``; :class:`TrainingError` unless it is an intact
    checkpoint (an empty, truncated or foreign file never reaches the agent)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as err:
        raise TrainingError(f"--resume: cannot read {path}: {_reason(err)}") from None
    if not head:
        raise TrainingError(f"--resume: {path} is empty, not a checkpoint; start the run "
                            "again with --overwrite")
    if head != b"PK\x03\x04":
        raise TrainingError(f"--resume: {path} is not a checkpoint (not an .npz archive); "
                            "start the run again with --overwrite")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        missing = [k for k in _CHECKPOINT_KEYS if k not in arrays]
        if missing:
            raise TrainingError(f"--resume: {path} is not a fastd3pg checkpoint (it lacks "
                                f"{', '.join(missing)}); start the run again with --overwrite")
        arrays["settings"] = json.loads(str(arrays["settings"]))
        if "config_json" in arrays:
            arrays["config_json"] = json.loads(str(arrays["config_json"]))
        arrays["timesteps"] = int(arrays["timesteps"])
        arrays["wall_s"] = float(arrays["wall_s"])
        rows = np.asarray(arrays["rows"], dtype=np.float64)
        if (rows.ndim != 2 or rows.shape[1] != len(METRICS_HEADER)
                or (len(rows) and rows[-1, 0] != arrays["timesteps"])):
            raise ValueError("its rows do not match its timesteps")
        arrays["rows"] = [tuple(r) for r in rows.tolist()]
    except (OSError, ValueError, TypeError, KeyError, EOFError, zipfile.BadZipFile,
            zlib.error) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise TrainingError(f"--resume: {path} is damaged (truncated or corrupted: {reason}); "
                            "start the run again with --overwrite") from None
    return arrays


def _load_checkpoint(path: Path, agent, settings):
    """Restore ``agent`` from the checkpoint at ``path`` after checking that it belongs to this
    run and that the run's files were not edited since; returns ``rows, timesteps, wall_s``."""
    saved = _read_checkpoint(path)
    t, steps = saved["timesteps"], settings["steps"]
    if t > steps:
        raise TrainingError(f"--resume: the checkpoint in {path.parent} is at timestep {t}; "
                            f"--steps {steps} is below it (use --steps {t} or more)")
    current = json.loads(json.dumps({k: settings[k] for k in _RESUME_KEYS}))
    changed = _differences(saved["settings"], current, ("in the checkpoint", "now"))
    if changed:
        raise TrainingError(f"--resume: the checkpoint in {path.parent} was made with other "
                            f"settings ({'; '.join(changed)}); use the same settings or "
                            "another --out")
    _check_unedited(path.parent, saved)
    try:
        agent.load_state_arrays(
            {k[len("agent."):]: v for k, v in saved.items() if k.startswith("agent.")}
        )
    except (ValueError, KeyError) as err:
        started = (saved.get("config_json") or {}).get("steps")
        if isinstance(started, int) and steps < started:
            raise TrainingError(f"--resume: --steps {steps} is below the {started} this run "
                                "was started with, for which its replay buffer was sized; use "
                                f"--steps {started} or more") from None
        raise TrainingError(f"--resume: {path} does not fit this run: {err}") from None
    return saved["rows"], t, saved["wall_s"]


def _check_unedited(out: Path, saved: dict):
    """Refuse to resume over a ``config.json`` or ``metrics.csv`` changed since the
    checkpoint was written (a deleted one is simply written again)."""
    path = out / "config.json"
    recorded = saved.get("config_json")
    if recorded is not None and path.exists():
        try:
            on_disk = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(on_disk, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as err:
            raise TrainingError(f"--resume: {path} is no longer the run's record ({err}); "
                                "restore it, or delete it to have it written again") from None
        recorded = {k: v for k, v in recorded.items() if k not in _PER_INVOCATION}
        on_disk = {k: v for k, v in on_disk.items() if k not in _PER_INVOCATION}
        edits = _differences(recorded, on_disk, ("in the checkpoint", "in the file"))
        if edits:
            raise TrainingError(f"--resume: {path} was edited after the run wrote it "
                                f"({'; '.join(edits)}); settings come from the flags and "
                                "--config, not from config.json: restore it, or delete it to "
                                "have it written again")
    path = out / "metrics.csv"
    if path.exists():
        expected = _metrics_text(saved["rows"]).splitlines()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, ValueError) as err:
            raise TrainingError(f"--resume: cannot read {path} ({err}); restore it, or delete "
                                "it to have it written again from the checkpoint") from None
        if lines[:len(expected)] != expected:
            k = next(k for k in range(len(expected))
                     if k >= len(lines) or lines[k] != expected[k])
            raise TrainingError(f"--resume: {path} was edited after the checkpoint (line "
                                f"{k + 1} differs from the checkpoint's record); restore it, "
                                "or delete it to have it written again from the checkpoint")


# -- command line -------------------------------------------------------------------------------
DESCRIPTION = """\
Train an agent on a task and write its results into one directory.

Settings come from, in increasing priority: the algorithm's config dataclass, the task's tuned
file fastd3pg/configs/<env>.toml, --config FILE, then the flags."""

EPILOG = """\
output files (in --out):
  config.json     every setting used
  metrics.csv     one row per evaluation (every 800 steps; mpc: one per action):
                  timesteps, wall_s, return_raw, return_mean, return_history
  policy.npz      the final actor (fastd3pg.train.load_policy(DIR) runs it in NumPy)
  curve.png       return_mean and return_history against timesteps
  checkpoint.npz  for --resume; written every --checkpoint-every seconds and at the end
  diagnostics.csv with --diagnose: one row per evaluation, the critic's and the TD
                  target's values and input gradients against the simulator's truth
                  (columns: see fastd3pg.diagnose)

metrics:
  return_mean     the return of one episode of the current deterministic actor (the
                  paper's metric; for mpc the predicted return of its one episode at each
                  returned action), normalized so that random actions score 0 and
                  max_reward x horizon scores 1
  return_history  the mean of the latest 100 return_mean values (the paper's Table 1)

Ctrl-C writes a checkpoint and stops; --resume continues it (also after kill -9, from the
last checkpoint) to the numbers an uninterrupted run gives."""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown, description and epilog kept as written."""


def _finite_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _one_line(err) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def main(argv=None) -> int:
    from fastd3pg.physics import names

    parser = Parser(prog="python -m fastd3pg.train", description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=_HelpFormatter)
    parser.add_argument("--env", default="Pendulum", help="task: " + ", ".join(names()))
    parser.add_argument("--algo", default="d3pg", help="algorithm: " + ", ".join(ALGOS))
    parser.add_argument("--seed", type=count(0), default=0, help="random seed")
    parser.add_argument("--steps", type=count(1), default=20000, help="env timesteps")
    parser.add_argument("--out", default=argparse.SUPPRESS,
                        help="output directory (default: runs/<env>/<algo>/seed<seed>)")
    parser.add_argument("--w1", type=_finite_float, default=argparse.SUPPRESS,
                        help="weight of the action-gradient term (default: from the config)")
    parser.add_argument("--w2", type=_finite_float, default=argparse.SUPPRESS,
                        help="weight of the state-gradient term (default: from the config)")
    parser.add_argument("--reg", choices=("l2", "cosine"), default=argparse.SUPPRESS,
                        help="gradient-fitting loss (default: from the config)")
    parser.add_argument("--config", default=argparse.SUPPRESS,
                        help="TOML file of config overrides (default: none)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run whose checkpoint is in --out")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run already in --out")
    parser.add_argument("--checkpoint-every", type=_finite_float, default=CHECKPOINT_EVERY_S,
                        metavar="SECONDS",
                        help="wall time between checkpoints (0: after every evaluation)")
    parser.add_argument("--eval-episodes", type=count(1), default=1, metavar="K",
                        help="at the end, also report the mean normalized return of K episodes "
                             "of the final actor (1: only the paper's single-episode metric)")
    parser.add_argument("--video", default=argparse.SUPPRESS, metavar="FILE",
                        help="at the end, an animation of one episode of the final actor "
                             "(.gif, or .mp4 where ffmpeg is installed)")
    parser.add_argument("--diagnose", action="store_true",
                        help="also write diagnostics.csv: at every evaluation, the critic's "
                             "value and input gradients against the simulator's ground truth "
                             "(d3pg, ddpg, td3, d3pg-td3)")
    args = parser.parse_args(argv)
    if args.algo not in ALGOS:
        parser.error(f"unknown algo {args.algo!r}; valid: {', '.join(ALGOS)}")
    if args.env not in names():
        parser.error(f"unknown env {args.env!r}; valid: {', '.join(names())}")
    if args.resume and args.overwrite:
        parser.error("--resume and --overwrite exclude each other")
    video = getattr(args, "video", None)
    if video is not None:
        from fastd3pg.render.animation import check_path

        try:
            check_path(video)  # before training, not after it
        except ValueError as err:
            parser.error(str(err))
    overrides = {k: getattr(args, k) for k in ("w1", "w2", "reg") if hasattr(args, k)}
    out = getattr(args, "out", None) or os.path.join("runs", args.env, args.algo,
                                                     f"seed{args.seed}")
    print(f"fastd3pg {fastd3pg.__version__}: {args.algo} on {args.env}, seed {args.seed}, "
          f"{args.steps} steps -> {out}", flush=True)
    t0 = time.perf_counter()
    try:
        result = run(env=args.env, algo=args.algo, seed=args.seed, steps=args.steps, out=out,
                     config=getattr(args, "config", None), resume=args.resume, progress=sys.stdout,
                     overwrite=args.overwrite, checkpoint_every=args.checkpoint_every,
                     eval_episodes=args.eval_episodes, diagnose=args.diagnose, **overrides)
    except KeyboardInterrupt as stop:
        print(f"\n{parser.prog}: {stop.args[0] if stop.args else 'interrupted'}", file=sys.stderr)
        return 130
    except (ConfigError, TrainingError, ValueError, OSError) as err:
        print(f"{parser.prog}: error: {_one_line(err)}", file=sys.stderr)
        return 1
    _summary(result, out, time.perf_counter() - t0, args.steps, args.algo)
    if video is not None:
        from fastd3pg.eval import write_video
        from fastd3pg.physics import make

        try:
            frames = write_video(load_policy(out), make(args.env), video, seed=args.seed)
        except (ValueError, OSError) as err:
            print(f"{parser.prog}: error: {_one_line(err)}", file=sys.stderr)
            return 1
        print(f"video: {video} ({frames} frames, one episode of the final actor from a start "
              f"state drawn with seed {args.seed})", flush=True)
    return 0


def _summary(result, out, seconds, steps, algo):
    """The last lines of a run: what the final numbers mean and where the files are. A run
    that its agent ended before ``steps`` says ``stopped early at timestep T: <why>``, the line
    by which a sweep knows it finished (:func:`fastd3pg.sweep.finished`)."""
    t = int(result["timesteps"][-1])
    if t < steps:
        print(f"stopped early at timestep {t}: {result.get('stop_reason', 'by its own rule')}",
              flush=True)
    last = ("the prediction at the last action: the episode's predicted return" if algo == "mpc"
            else "the last evaluation: one episode of the final deterministic actor")
    lines = [
        f"done: {t} steps in {seconds:.1f} s -> {out}",
        f"  return_mean    {result['return_mean'][-1]:7.3f}  {last}",
        f"  return_history {result['return_history'][-1]:7.3f}  the mean of the latest "
        f"{metrics.HISTORY} return_mean values",
    ]
    if "eval_returns" in result:
        r = result["eval_returns"]
        lines.append(f"  mean of {len(r)} episodes {r.mean():7.3f}  (std {r.std():.3f}, min "
                     f"{r.min():.3f}, max {r.max():.3f}) of the final actor, seeded start states")
    lines += [
        "  (normalized: random actions score 0, max_reward x horizon scores 1)",
        f"files: {os.path.join(out, 'metrics.csv')} (every evaluation), policy.npz (the final "
        "actor: fastd3pg.train.load_policy), curve.png, config.json, checkpoint.npz",
    ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
