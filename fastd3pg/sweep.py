"""Experiment sweeps: many (task, method, seed) runs, then the paper's Figure 4 and Table 1.

    python -m fastd3pg.sweep EXPERIMENT.toml [--backend local|ray] [--jobs N] [--address ADDR]
            [--results DIR] [--report]

An experiment file is TOML::

    name = "quick"              # results go to runs/results/<name>/
    envs = ["Pendulum", "MassPoint"]
    algos = ["ddpg", "d3pg", "d3pg-cosine"]
    seeds = 4                   # seeds 0..3 (or a list)
    steps = 20000               # per run (or a table envs -> steps: [steps] Pendulum = 20000)
    config = "small.toml"       # optional settings for every run, relative to this file
    diagnose = false            # optional: every run with --diagnose (fidelity.md in the report)
    [only]                      # optional: an algorithm that runs on some of the envs only
    mpc = ["Pendulum"]
    [methods.d3pg-cosine]       # optional: a named method, an algorithm with its own settings,
    algo = "d3pg"               # listed in algos like an algorithm (its runs and table rows
    reg = "cosine"              # go by its name)
    [baselines]                 # optional: the method Table 1 compares a method with (both in
    d3pg-cosine = "d3pg"        # algos); the others compare with ddpg when it is in algos
    [figures]                   # optional: more learning-curve figures, NAME.png of some
    cosine = ["d3pg", "d3pg-cosine"]  # methods only, drawn as figure4.png is

**Methods.** A ``[methods.NAME]`` table defines a method: ``algo`` (a registered algorithm) and
any of that algorithm's config keys. Its runs train ``algo`` with a settings file the sweep
writes to ``<results>/methods/NAME.toml``: the experiment's ``config`` with these keys added to
the ``[algo]`` table (they win over the file's, and the task's tuned settings stay below both).

**Where results go.** The experiment file lives in ``<project>/runs/experiments/``; its results
go to ``<project>/runs/results/<name>/<Task>/<algo>/seed<k>/`` whatever the current folder
(``<project>`` is the folder holding the nearest ``runs`` folder above the experiment file, or
the experiment file's own folder when there is none). ``--results DIR`` puts them in ``DIR``
instead of ``runs/results/<name>``. Beside the runs the report writes ``figure4.png`` (mean ± std
over seeds of ``return_mean`` and ``return_history`` against timesteps), the same for the
methods of each ``[figures]`` entry in ``NAME.png``, and Table 1 of each
run's final ``return_history`` as ``table1.md``, ``table1.csv`` and ``table1.png`` (its
intervals). With ``diagnose = true`` it also writes ``fidelity.md`` and ``fidelity.csv``: per
task and method, the critic's gradient fidelity from the runs' ``diagnostics.csv``
(:func:`fidelity_rows`). ``--report`` (alias ``--report-only``) only redraws these from the
finished runs on disk.

**Table 1.** Each method is compared with its *baseline*: the method its ``[baselines]``
entry names, else ``ddpg`` when ``ddpg`` is in ``algos`` (``ddpg`` itself then has none), else
none. ``table1.csv`` has one row per task and method with finished runs, then one per method
with task ``all``: across the tasks on which the method and its baseline both have finished
runs (for a method without a baseline, the tasks where it has runs), when there are two or
more. Its columns:

- ``task``, ``method``; ``n``: the runs; ``mean``, ``std``: over the runs (std with ddof 0);
  for ``all``, over every run of its tasks pooled;
- ``iqm``, ``iqm_low``, ``iqm_high``: the interquartile mean (of the pooled runs for ``all``)
  and its 95% stratified bootstrap interval;
- ``p_beats_ddpg``, ``p_beats_ddpg_low``, ``p_beats_ddpg_high``: the probability that a run of
  the method beats a run of ``ddpg`` on the same task (ties half) and its interval; for
  ``all``, averaged over the tasks on which the method and ``ddpg`` both have runs (when there
  are two or more), which may not be the row's own; empty for ``ddpg`` itself and where
  ``ddpg`` has no runs;
- ``baseline``: the method's baseline, empty when it has none;
- ``p_beats_baseline``, ``p_beats_baseline_low``, ``p_beats_baseline_high``: the same against
  the baseline (for ``all``, averaged over the row's tasks); empty where the method has no
  baseline or its baseline has no runs on the task;
- ``tasks``: how many tasks the row covers (1 but for ``all``).

``table1.md`` holds the tables of mean ± std, IQM and P(method > its baseline), the baseline
named beside each method, and says under them which tasks each ``all`` row covers.
``table1.png`` draws the IQM and P(method > its baseline) with their intervals. The bootstrap
(``fastd3pg.stats``) resamples runs within each task, 10,000 times, from seed 0;
``table1.md`` says so under the tables.

**Backends.** Each run is ``python -m fastd3pg.train`` in its own process, with one thread
for Numba and BLAS. ``--backend local`` (the default) runs ``--jobs`` of them at a time (one
per core by default) straight in the results folder. ``--backend ray`` runs one Ray task per
run, with ``num_cpus=1``, on the cluster at ``--address`` (or ``RAY_ADDRESS``, or a local
cluster when there is none; ``--jobs`` then caps the runs in flight). Ray is an optional extra
(``pip install "fastd3pg[ray]"``) imported only by this backend; every node needs the same
fastd3pg source as the driver, which each task checks. No file system is shared: a Ray task
receives the run's folder (when it resumes), trains in a temporary folder on its worker, sends
the folder back at every new checkpoint and at the end, and the driver writes the files
atomically where the local backend would have written them.

**A finished run** is one whose ``metrics.csv`` has a last row at the run's budget, or whose
``train.log`` says ``stopped early at timestep T`` with ``T`` that row (an algorithm's own
early stop, e.g. GD's plateau), and that has a ``policy.npz``. The sweep deletes
``policy.npz`` before continuing a run, so a stale one never marks a run finished.

**Faults.** Finished runs are skipped, so a sweep can be stopped (Ctrl-C, SIGTERM: its runs
write a checkpoint first) or killed, and restarted, at any time. A run whose process or worker
dies (killed, lost node, the training driver interrupted alone) is retried up to 3 times,
continuing from its last checkpoint (``--resume``), or from a cleared folder when it had none.
A run that fails by itself (the training driver exits 1 or 2: bad config, divergence) is
reported once in the summary, with the last line of its log, and not retried. When the sweep
itself dies, even by SIGKILL, its local runs receive SIGTERM (Linux): they write a checkpoint
and exit, so none outlives it.

**Compiled kernels.** Runs load Numba's on-disk cache, ``~/.cache/fastd3pg/numba-<source
hash>`` (or under ``$NUMBA_CACHE_DIR``), so on each machine and each Ray node the kernels
are compiled once per fastd3pg version, not once per run. Machine code is never sent between
nodes (it is compiled for each node's processor): the first runs on a fresh node each compile
what they need (a few minutes of CPU each, side by side); every later run there loads the cache
in about a second. The cache stays valid across Ray sessions while fastd3pg stays installed at
the same path on the node.
"""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fastd3pg import stats
from fastd3pg._cli import Parser, count
from fastd3pg.control.configio import ConfigError, load_toml


class SweepError(RuntimeError):
    """A sweep that cannot start (no Ray, no cluster, another sweep on the folder)."""

MAX_LOST = 3  # retries of a run whose process or worker died
POLL_S = 0.2
# One thread per run: runs are the unit of parallelism, and results must not depend on it.
THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
TRAIN = "python -m fastd3pg.train"
DDPG = "ddpg"  # the default baseline, and the p_beats_ddpg columns' method
AGGREGATE = "all"  # the task of the rows across tasks
REPORT_RESAMPLES = 10_000
REPORT_SEED = 0
COLUMNS = ("task", "method", "n", "mean", "std", "iqm", "iqm_low", "iqm_high",
           "p_beats_ddpg", "p_beats_ddpg_low", "p_beats_ddpg_high",
           "baseline", "p_beats_baseline", "p_beats_baseline_low", "p_beats_baseline_high",
           "tasks")
_STOPPED_EARLY = re.compile(r"stopped early at timestep (\d+)")


# -- the experiment ----------------------------------------------------------------------------
def load_experiment(path) -> dict:
    """The experiment file at ``path`` as a dict; ``config`` resolved against its folder."""
    path = Path(path)
    data = load_toml(path)
    from fastd3pg.physics import names
    from fastd3pg.train import ALGOS

    unknown = set(data) - {"name", "envs", "algos", "seeds", "steps", "config", "only",
                           "methods", "diagnose", "baselines", "figures"}
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}")
    try:
        seeds = data.get("seeds", 4)
        exp = {
            "name": str(data.get("name", path.stem)),
            "envs": list(data["envs"]),
            "algos": list(data["algos"]),
            "seeds": list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds],
            "config": None,
            "path": path.resolve(),
        }
    except KeyError as err:
        raise ConfigError(f"{path}: missing key {err.args[0]!r}") from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{path}: {err}") from None
    for env in exp["envs"]:
        if env not in names():
            raise ConfigError(f"{path}: unknown env {env!r}; valid: {', '.join(names())}")
    exp["methods"] = _load_methods(path, data.get("methods", {}))
    for algo in exp["algos"]:
        if algo not in ALGOS and algo not in exp["methods"]:
            raise ConfigError(f"{path}: unknown algo {algo!r}; valid: {', '.join(ALGOS)}"
                              + "".join(f", {m}" for m in exp["methods"]))
    only = data.get("only", {})
    if not isinstance(only, dict) or not all(isinstance(v, list) for v in only.values()):
        raise ConfigError(f"{path}: only must be a table of algo = [envs]")
    for algo, envs in only.items():
        if algo not in exp["algos"]:
            raise ConfigError(f"{path}: only names {algo!r}, which is not in algos")
        for env in envs:
            if env not in exp["envs"]:
                raise ConfigError(f"{path}: only.{algo} names {env!r}, which is not in envs")
    exp["only"] = {algo: list(envs) for algo, envs in only.items()}
    exp["baselines"] = _load_baselines(path, data.get("baselines", {}), exp["algos"])
    exp["figures"] = _load_figures(path, data.get("figures", {}), exp["algos"])
    exp["diagnose"] = data.get("diagnose", False)
    if not isinstance(exp["diagnose"], bool):
        raise ConfigError(f"{path}: diagnose must be true or false")
    if exp["diagnose"]:
        from fastd3pg.control import agent_class

        for algo in exp["algos"]:
            trains = exp["methods"][algo][0] if algo in exp["methods"] else algo
            if not hasattr(agent_class(trains), "critic_snapshot"):
                raise ConfigError(f"{path}: diagnose measures a critic; {algo} has none that "
                                  f"it measures")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", exp["name"]) or exp["name"] in (".", ".."):
        raise ConfigError(f"{path}: name must be a plain folder name, got {exp['name']!r}")
    if data.get("config") is not None:
        config = Path(path).resolve().parent / str(data["config"])
        if not config.is_file():
            raise ConfigError(f"{path}: config file {config} does not exist")
        exp["config"] = config
    steps = data.get("steps", 20000)
    try:
        exp["steps"] = {e: int(steps[e] if isinstance(steps, dict) else steps) for e in exp["envs"]}
    except KeyError as err:
        raise ConfigError(f"{path}: steps has no entry for {err.args[0]!r}") from None
    if min(exp["steps"].values()) < 1:
        raise ConfigError(f"{path}: steps must be >= 1")
    return exp


def _load_methods(path, methods) -> dict:
    """The experiment's ``[methods]`` as ``name -> (algo, settings)``, every setting checked
    against the algorithm's config."""
    from fastd3pg.control import agent_class
    from fastd3pg.control.configio import apply_overrides
    from fastd3pg.train import ALGOS

    if not isinstance(methods, dict) or not all(isinstance(v, dict) for v in methods.values()):
        raise ConfigError(f"{path}: methods must hold tables [methods.NAME]")
    out = {}
    for name, table in methods.items():
        settings = dict(table)
        algo = settings.pop("algo", None)
        nested = [k for k, v in settings.items() if isinstance(v, dict)]
        if nested:
            raise ConfigError(f"{path}: methods.{name} holds a table {nested[0]!r}; a method "
                              f"name with a dot must be quoted")
        if name in ALGOS:
            raise ConfigError(f"{path}: method {name!r} has the name of an algorithm")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in (".", ".."):
            raise ConfigError(f"{path}: method name must be a plain folder name, got {name!r}")
        if algo not in ALGOS:
            raise ConfigError(f"{path}: methods.{name} needs algo = one of {', '.join(ALGOS)}, "
                              f"got {algo!r}")
        apply_overrides(agent_class(algo).config_class(), settings, f"{path}: methods.{name}")
        out[name] = (algo, settings)
    return out


def _load_baselines(path, baselines, algos) -> dict:
    """The experiment's ``[baselines]`` as ``method -> baseline``, both in ``algos``."""
    if not isinstance(baselines, dict):
        raise ConfigError(f"{path}: baselines must be a table of method = \"baseline\"")
    for method, baseline in baselines.items():
        if method not in algos:
            raise ConfigError(f"{path}: baselines names {method!r}, which is not in algos")
        if not isinstance(baseline, str):
            raise ConfigError(f"{path}: baselines.{method} must be a method name in quotes, "
                              f"got {baseline!r}")
        if baseline == method:
            raise ConfigError(f"{path}: baselines.{method} names the method itself")
        if baseline not in algos:
            raise ConfigError(f"{path}: baselines.{method} names {baseline!r}, which is not in "
                              f"algos")
    return dict(baselines)


# The report's own files, which a figure of [figures] may not replace.
REPORT_FILES = ("figure3", "figure4", "table1", "fidelity")


def _load_figures(path, figures, algos) -> dict:
    """The experiment's ``[figures]`` as ``name -> [methods]``, the methods in ``algos``."""
    if not isinstance(figures, dict):
        raise ConfigError(f"{path}: figures must be a table of NAME = [methods]")
    for name, methods in figures.items():
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name) or name in REPORT_FILES:
            raise ConfigError(f"{path}: figures.{name}: a figure needs a plain file name other "
                              f"than {', '.join(REPORT_FILES)}")
        if not isinstance(methods, list) or not methods or not all(
                isinstance(m, str) for m in methods):
            raise ConfigError(f"{path}: figures.{name} must be a list of method names in quotes")
        for method in methods:
            if method not in algos:
                raise ConfigError(f"{path}: figures.{name} names {method!r}, which is not in "
                                  f"algos")
    return {name: list(methods) for name, methods in figures.items()}


def baseline_of(exp: dict, method: str):
    """The method Table 1 compares ``method`` with: its ``[baselines]`` entry, else ddpg when
    ddpg is in the experiment (and is not ``method``), else None."""
    if method in exp.get("baselines", {}):
        return exp["baselines"][method]
    return DDPG if DDPG in exp["algos"] and method != DDPG else None


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"


def method_config_text(exp: dict, method: str) -> str:
    """The settings file of ``method``'s runs (see **Methods** above)."""
    algo, settings = exp["methods"][method]
    data = load_toml(exp["config"]) if exp["config"] is not None else {}
    data.setdefault(algo, {}).update(settings)
    source = exp["config"].name if exp["config"] is not None else "no config file"
    lines = [f"# {method}: {algo} with the settings of methods.{method} in "
             f"{exp['path'].name}, over {source}"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for table, values in data.items():
        if isinstance(values, dict):
            lines += [f"[{table}]"] + [f"{k} = {_toml_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def project_root(experiment) -> Path:
    """The folder holding the nearest ``runs`` folder above ``experiment``, else its folder."""
    folder = Path(experiment).resolve().parent
    for parent in (folder, *folder.parents):
        if parent.name == "runs":
            return parent.parent
    return folder


def results_dir(exp: dict, results=None) -> Path:
    """``results`` if given, else ``<project>/runs/results/<name>``."""
    if results is not None:
        return Path(results).resolve()
    return project_root(exp["path"]) / "runs" / "results" / exp["name"]


@dataclass(frozen=True)
class Run:
    env: str
    algo: str  # the experiment's name for the method: an algorithm or one of its [methods]
    seed: int
    steps: int
    out: Path
    trains: str = ""  # the registered algorithm that runs (algo, unless algo is a method)
    config: Path | None = None  # the settings file of the run
    diagnose: bool = False  # train with --diagnose

    @property
    def label(self) -> str:
        return f"{self.env} {self.algo} seed {self.seed}"


def plan(exp: dict, root: Path) -> list:
    """Every run of the experiment, in file order."""
    runs = []
    for env in exp["envs"]:
        for algo in exp["algos"]:
            if env not in exp["only"].get(algo, [env]):
                continue
            if algo in exp["methods"]:
                trains, config = exp["methods"][algo][0], method_config_path(root, algo)
            else:
                trains, config = algo, exp["config"]
            runs += [Run(env, algo, seed, exp["steps"][env], run_dir(root, env, algo, seed),
                         trains, config, exp.get("diagnose", False)) for seed in exp["seeds"]]
    return runs


def method_config_path(root: Path, method: str) -> Path:
    return Path(root) / "methods" / f"{method}.toml"


def write_method_configs(exp: dict, root: Path):
    """Write each method's settings file (:func:`method_config_text`) where its runs read it."""
    for method in exp["methods"]:
        write_atomic(method_config_path(root, method),
                     method_config_text(exp, method).encode("utf-8"))


def run_dir(root: Path, env, algo, seed) -> Path:
    return Path(root) / env / algo / f"seed{seed}"


# -- the state of a run on disk ----------------------------------------------------------------
def read_metrics(path: Path):
    """``metrics.csv`` as an (n, 5) array, or None when missing or unreadable."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        return np.array(rows[1:], dtype=np.float64).reshape(-1, 5)
    except (OSError, ValueError, IndexError):
        return None


def finished(out: Path, steps: int) -> bool:
    """Whether the run in ``out`` is complete (see the module docstring for the rule)."""
    out = Path(out)
    rows = read_metrics(out / "metrics.csv")
    if rows is None or not len(rows) or not (out / "policy.npz").is_file():
        return False
    last = int(rows[-1, 0])
    return last >= steps or _stopped_early_at(out / "train.log") == last


def _stopped_early_at(log: Path):
    try:
        found = _STOPPED_EARLY.findall(log.read_text(errors="replace"))
    except OSError:
        return None
    return int(found[-1]) if found else None


def prepare(out: Path) -> bool:
    """Ready ``out`` for a (new) attempt; True when it continues a checkpoint.

    A run with a checkpoint continues it, without its end-of-run files (``policy.npz``,
    ``curve.png``), which it rewrites. A run without one starts over in an emptied folder.
    """
    out = Path(out)
    if (out / "checkpoint.npz").is_file():
        for name in ("policy.npz", "curve.png"):
            (out / name).unlink(missing_ok=True)
        return True
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    return False


def last_line(log: Path) -> str:
    """The training driver's error line in ``log``, else its last non-empty line."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    errors = [ln for ln in lines if ln.startswith(TRAIN + ":")]
    return (errors or lines or ["empty log"])[-1]


def write_atomic(path: Path, data: bytes):
    """Write ``data`` to ``path`` through a temporary file beside it and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# -- one run's process, shared by the backends -------------------------------------------------
def train_command(run: Run, out, config, resume: bool) -> list:
    cmd = [sys.executable, "-m", "fastd3pg.train", "--env", run.env, "--algo", run.trains,
           "--seed", str(run.seed), "--steps", str(run.steps), "--out", str(out)]
    if config is not None:
        cmd += ["--config", str(config)]
    if run.diagnose:
        cmd.append("--diagnose")
    if resume:
        cmd.append("--resume")
    return cmd


def train_environ() -> dict:
    """The environment of a run's process: one thread, this very fastd3pg first on the path,
    and no compile helpers unless asked (``FASTD3PG_COMPILE_WORKERS``): a sweep's runs already
    run side by side, and share what they compile through the cache's locks."""
    import fastd3pg

    package_root = str(Path(fastd3pg.__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    env = dict(os.environ, PYTHONPATH=package_root + (os.pathsep + path if path else ""))
    env.update({name: "1" for name in THREAD_VARS})
    env.setdefault("FASTD3PG_COMPILE_WORKERS", "0")
    return env


def die_with_parent(sig):
    """A ``preexec_fn`` that has the child receive ``sig`` when its parent dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def hook():
        prctl(1, int(sig))  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), int(sig))

    return hook


@dataclass
class Outcome:
    """How an attempt ended: ``done``, ``failed`` (by itself: not retried) or ``lost``."""

    status: str
    message: str = ""


def outcome_of(code: int, log: Path) -> Outcome:
    """Classify the training driver's exit code: 0 done, 1 or 2 its own error, else lost."""
    if code == 0:
        return Outcome("done")
    if code in (1, 2):
        return Outcome("failed", last_line(log))
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return Outcome("lost", f"process killed by {name}")
    return Outcome("lost", f"process exited with code {code} ({last_line(log)})")


class LocalBackend:
    """``jobs`` training processes at a time on this machine, writing in the results folder."""

    def __init__(self, jobs: int, cwd: Path):
        self.slots = max(1, int(jobs))
        self.cwd = Path(cwd)
        self._procs = {}  # Run -> (Popen, log file)
        self._env = train_environ()
        # The sweep's own death (even SIGKILL) interrupts its runs, which write a checkpoint.
        self._preexec = die_with_parent(signal.SIGTERM)

    @property
    def active(self) -> int:
        return len(self._procs)

    running = active

    def free(self) -> bool:
        return len(self._procs) < self.slots

    def _rel(self, path: Path):
        try:
            return path.relative_to(self.cwd)
        except ValueError:
            return path

    def start(self, run: Run):
        resume = prepare(run.out)
        config = self._rel(run.config) if run.config is not None else None
        log = open(run.out / "train.log", "ab" if resume else "wb")
        proc = subprocess.Popen(
            train_command(run, self._rel(run.out), config, resume), cwd=self.cwd,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self._env,
            start_new_session=True,  # a Ctrl-C reaches the sweep, which passes one SIGTERM on
            preexec_fn=self._preexec,
        )
        self._procs[run] = (proc, log)

    def wait(self, timeout: float) -> list:
        deadline = time.monotonic() + timeout
        while True:
            ended = [(run, proc.returncode) for run, (proc, _) in self._procs.items()
                     if proc.poll() is not None]
            if ended or time.monotonic() >= deadline:
                break
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
        results = []
        for run, code in ended:
            self._procs.pop(run)[1].close()
            results.append((run, outcome_of(code, run.out / "train.log")))
        return results

    def close(self):
        """Interrupt the runs still going (they checkpoint and exit) and wait for them."""
        for proc, _ in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, log in self._procs.values():
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
        self._procs.clear()


# -- the scheduler -----------------------------------------------------------------------------
def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class Status:
    """Runs done / running / failed and a time estimate: one line rewritten in place on a
    terminal, plain lines (one per finished attempt) in a log."""

    def __init__(self, name, total, stream):
        self.name, self.total, self.stream = name, total, stream
        self.tty = stream is not None and hasattr(stream, "isatty") and stream.isatty()
        self.t0 = time.perf_counter()
        self.done = self.failed = self.retried = 0
        self.run_s = self.run_steps = 0.0  # time and budget of the runs finished here

    def counts(self, running, remaining_steps, slots) -> str:
        elapsed = time.perf_counter() - self.t0
        eta = "--"
        if self.run_steps and remaining_steps:
            eta = _clock(self.run_s / self.run_steps * remaining_steps / max(1, slots))
        elif not remaining_steps:
            eta = "0:00"
        retried = f", {self.retried} retried" if self.retried else ""
        return (f"{self.done}/{self.total} done, {running} running, {self.failed} failed"
                f"{retried}, {_clock(elapsed)} elapsed, eta {eta}")

    def show(self, counts):
        if self.tty:
            self.stream.write(f"\r\x1b[K{self.name}: {counts}")
            self.stream.flush()

    def event(self, text, counts):
        if self.stream is None:
            return
        if self.tty:
            self.stream.write(f"\r\x1b[K{text}\n{self.name}: {counts}")
        else:
            self.stream.write(f"{text}  | {counts}\n")
        self.stream.flush()

    def end(self):
        if self.tty and self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()


def run_sweep(exp: dict, root: Path, backend, stream=sys.stdout) -> dict:
    """Run every unfinished run of ``exp`` on ``backend``; a summary dict.

    The summary has ``done`` / ``skipped`` / ``failed`` (lists of ``(Run, message)``) /
    ``retried`` (attempts lost and restarted) / ``interrupted`` / ``seconds``.
    """
    runs = plan(exp, root)
    write_method_configs(exp, root)
    pending = deque(r for r in runs if not finished(r.out, r.steps))
    summary = {"done": [], "skipped": [r for r in runs if r not in pending], "failed": [],
               "retried": 0, "interrupted": False, "seconds": 0.0}
    status = Status(exp["name"], len(runs), stream)
    status.done = len(summary["skipped"])
    if stream is not None:
        stream.write(f"{exp['name']}: {len(runs)} runs, {len(summary['skipped'])} finished "
                     f"before, {len(pending)} to do -> {root}\n")
        stream.flush()
    lost, started = {}, {}
    running = {}

    def remaining():
        return sum(r.steps for r in pending) + sum(r.steps for r in running)

    def slots():
        return backend.slots or max(1, backend.running)

    try:
        while pending or backend.active:
            while pending and backend.free():
                run = pending.popleft()
                if finished(run.out, run.steps):  # lost after its last write
                    summary["done"].append((run, ""))
                    status.done += 1
                    continue
                backend.start(run)
                running[run] = True
                started.setdefault(run, time.perf_counter())
            for run, outcome in backend.wait(POLL_S):
                running.pop(run, None)
                seconds = time.perf_counter() - started[run]
                if outcome.status == "lost" and lost.get(run, 0) < MAX_LOST:
                    lost[run] = lost.get(run, 0) + 1
                    status.retried += 1
                    pending.appendleft(run)
                    text = f"retry {run.label}: {outcome.message} (attempt {lost[run] + 1})"
                elif outcome.status == "done":
                    summary["done"].append((run, ""))
                    status.done += 1
                    status.run_s += seconds
                    status.run_steps += run.steps
                    started.pop(run)
                    text = f"ok    {run.label}  {seconds:.1f} s"
                else:
                    message = outcome.message
                    if outcome.status == "lost":
                        message = f"lost {MAX_LOST + 1} times, last: {message}"
                    summary["failed"].append((run, message))
                    status.failed += 1
                    started.pop(run)
                    text = f"FAIL  {run.label}: {message}"
                status.event(text, status.counts(backend.running, remaining(), slots()))
            status.show(status.counts(backend.running, remaining(), slots()))
    except KeyboardInterrupt:
        summary["interrupted"] = True
    finally:
        backend.close()
        status.end()
    summary["seconds"] = time.perf_counter() - status.t0
    summary["retried"] = status.retried
    return summary


def summary_text(exp: dict, root: Path, summary: dict) -> str:
    done, failed = len(summary["done"]), len(summary["failed"])
    left = len(plan(exp, root)) - done - failed - len(summary["skipped"])
    text = [f"{exp['name']}: {done} run(s) done, {len(summary['skipped'])} finished before, "
            f"{failed} failed, {summary['retried']} retried after a lost process, in "
            f"{_clock(summary['seconds'])}"]
    if summary["interrupted"]:
        text.append(f"interrupted: {left} run(s) left; run the same command again to continue")
    for run, message in summary["failed"]:
        text.append(f"failed: {run.label}: {message} (log: {run.out / 'train.log'})")
    return "\n".join(text)


# -- the report --------------------------------------------------------------------------------
def collect(exp: dict, root: Path) -> dict:
    """(env, algo) -> list of the finished seeds' ``metrics.csv`` arrays."""
    data = {}
    for run in plan(exp, root):
        if finished(run.out, run.steps):
            data.setdefault((run.env, run.algo), []).append(read_metrics(run.out / "metrics.csv"))
    return data


def curves(runs: list, column: int):
    """Timesteps and the runs' ``column`` on the longest run's grid; a run that stopped early
    keeps its last value."""
    t = max(runs, key=len)[:, 0]
    values = np.array([np.concatenate([r[:, column], np.full(len(t) - len(r), r[-1, column])])
                       for r in runs])
    return t, values


def final_scores(data: dict) -> dict:
    """(env, algo) -> the runs' final ``return_history`` (last row, column 4), in run order."""
    return {key: np.array([r[-1, 4] for r in runs]) for key, runs in data.items()}


def aggregate_tasks(exp: dict, finals: dict, method: str, other=None) -> list:
    """The tasks of ``method``'s ``all`` row when it compares with ``other`` (None: no
    comparison): those on which both have finished runs, or [] when they are fewer than two."""
    tasks = [e for e in exp["envs"]
             if (e, method) in finals and (other is None or (e, other) in finals)]
    return tasks if len(tasks) > 1 else []


def _compared(exp: dict, finals: dict, task: str, method: str, other) -> list:
    """The tasks over which the row (``task``, ``method``) compares ``method`` with ``other``:
    ``task`` alone where ``other`` has runs on it, for ``all`` :func:`aggregate_tasks`; [] when
    there is no comparison (``other`` None or ``method`` itself)."""
    if other is None or other == method:
        return []
    if task == AGGREGATE:
        return aggregate_tasks(exp, finals, method, other)
    return [task] if (task, other) in finals else []


def table_rows(exp: dict, data: dict, resamples=REPORT_RESAMPLES, seed=REPORT_SEED) -> list:
    """One dict per (task, method) with runs, then per method across tasks (task ``all``),
    with the columns of ``COLUMNS``; ``None`` where a probability of improvement does not
    apply (the method itself, or no runs of the other method on those tasks). Every interval
    draws its own resamples from ``seed``."""
    finals = final_scores(data)
    groups = [(e, {a: [e] for a in exp["algos"] if (e, a) in finals}) for e in exp["envs"]]
    across = {a: aggregate_tasks(exp, finals, a, baseline_of(exp, a)) for a in exp["algos"]}
    groups.append((AGGREGATE, {a: tasks for a, tasks in across.items() if tasks}))
    rows = []
    for task, covers in groups:
        for algo, tasks in covers.items():
            scores = [finals[t, algo] for t in tasks]
            pooled = np.concatenate(scores)
            low, high = stats.iqm_ci(scores, resamples, seed=seed)
            baseline = baseline_of(exp, algo)
            row = {"task": task, "method": algo, "n": len(pooled),
                   "mean": float(pooled.mean()), "std": float(pooled.std()),
                   "iqm": stats.iqm(scores), "iqm_low": low, "iqm_high": high,
                   "baseline": baseline, "tasks": len(tasks)}
            for key, other in (("p_beats_ddpg", DDPG), ("p_beats_baseline", baseline)):
                row[key] = row[key + "_low"] = row[key + "_high"] = None
                compared = _compared(exp, finals, task, algo, other)
                if compared:
                    x, y = [finals[t, algo] for t in compared], [finals[t, other] for t in compared]
                    row[key] = stats.probability_of_improvement(x, y)
                    row[key + "_low"], row[key + "_high"] = stats.probability_of_improvement_ci(
                        x, y, resamples, seed=seed)
            rows.append(row)
    return rows


def _md_table(exp: dict, rows: list, text, label=str) -> list:
    """A methods x tasks Markdown table of ``text(row)`` (None: no such line), each method
    named ``label(method)``, or []."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    cell = {(r["task"], r["method"]): text(r) for r in rows}
    methods = [a for a in exp["algos"] if any(cell.get((t, a)) for t in tasks)]
    if not methods:
        return []
    lines = ["| method | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
    lines += [f"| {label(a)} | " + " | ".join(cell.get((t, a)) or "-" for t in tasks) + " |"
              for a in methods]
    return lines + [""]


def table_md(exp: dict, rows: list, resamples=REPORT_RESAMPLES, seed=REPORT_SEED) -> str:
    def mean_std(r):
        return f"{r['mean']:.3f} ± {r['std']:.3f} ({r['n']})"

    def iqm(r):
        return f"{r['iqm']:.3f} [{r['iqm_low']:.3f}, {r['iqm_high']:.3f}]"

    def beats(r):
        if r["p_beats_baseline"] is None:
            return None
        low, high = r["p_beats_baseline_low"], r["p_beats_baseline_high"]
        return f"{r['p_beats_baseline']:.3f} [{low:.3f}, {high:.3f}]"

    lines = [f"# {exp['name']}: final normalized return_history", "",
             "Mean ± std over runs (std with ddof 0; runs in parentheses):", "",
             *_md_table(exp, rows, mean_std),
             "Interquartile mean (IQM) [95% CI]:", "", *_md_table(exp, rows, iqm)]
    comparison = _md_table(exp, rows, beats, _versus(exp))
    if comparison:
        lines += ["Probability of improvement over the method's baseline, P(method > baseline) "
                  "[95% CI]:", "", *comparison]
    lines += ["IQM: the mean of the middle 50% of the runs' scores (a quarter trimmed at each "
              "end). P(method > baseline): the probability that a run of the method scores "
              "above a run of its baseline (named beside it) on the same task, ties counting "
              "half. 95% CI: percentile interval of a stratified bootstrap (each task's runs "
              "resampled with replacement within the task, each method's independently), "
              f"{resamples:,} resamples, seed {seed}."]
    across = [r["method"] for r in rows if r["task"] == AGGREGATE]
    if across:
        finals = {(r["task"], r["method"]): None for r in rows}
        spans = []
        for algo in across:
            tasks = aggregate_tasks(exp, finals, algo, baseline_of(exp, algo))
            spans.append(f"{algo} over {len(tasks)}{' tasks' if not spans else ''} "
                         f"({', '.join(tasks)})")
        lines += ["", f"`{AGGREGATE}`: {', '.join(spans)}: the tasks where the method and its "
                  "baseline both have finished runs (all those of a method without one); mean ± "
                  "std and IQM of their runs pooled, P averaged over them."]
    return "\n".join(lines) + "\n"


def _versus(exp: dict):
    """A method's name with its baseline's: ``d3pg-sac (vs sac)``."""
    def label(method):
        baseline = baseline_of(exp, method)
        return method if baseline is None else f"{method} (vs {baseline})"
    return label


def _csv_cell(value) -> str:
    return "" if value is None else value if isinstance(value, str) else repr(value)


def table_csv(rows: list) -> str:
    lines = [",".join(COLUMNS)]
    lines += [",".join(_csv_cell(r[c]) for c in COLUMNS) for r in rows]
    return "\n".join(lines) + "\n"


def plot_figure4(exp: dict, data: dict, path: Path, methods=None):
    """The paper's Figure 4: per task, mean ± std over the runs of ``return_mean`` and
    ``return_history`` against timesteps, for ``methods`` (default: all of ``algos``) on the
    tasks where any of them has finished runs."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = exp["algos"] if methods is None else methods
    envs = [e for e in exp["envs"] if any((e, a) in data for a in methods)]
    if not envs:
        return
    fig, axes = plt.subplots(2, len(envs), figsize=(3.2 * len(envs), 5.2), squeeze=False)
    for col, env in enumerate(envs):
        for algo in methods:
            if (env, algo) not in data:
                continue
            for row, column in enumerate((3, 4)):
                t, values = curves(data[env, algo], column)
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
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_atomic(path, buf.getvalue())


def plot_intervals(exp: dict, rows: list, path: Path):
    """Table 1's IQM and P(method > its baseline) as points with their 95% intervals, one band
    per task (and ``all``), one colour per method."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    methods = [a for a in exp["algos"] if any(r["method"] == a for r in rows)]
    panels = [("iqm", "IQM of the final return_history")]
    if any(r["p_beats_baseline"] is not None for r in rows):
        panels.append(("p_beats_baseline", "P(method > baseline)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 0.9 + 0.32 * len(tasks)
                                                      * len(methods)), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    cell = {(r["task"], r["method"]): r for r in rows}
    versus = _versus(exp)
    for ax, (key, title) in zip(axes[0], panels):
        for i, algo in enumerate(methods):
            colour = colours[i % len(colours)]
            label = versus(algo) if key == "p_beats_baseline" else algo
            for j, task in enumerate(tasks):
                r = cell.get((task, algo))
                if r is None or r[key] is None:
                    continue
                y = j + (i - (len(methods) - 1) / 2) * 0.8 / len(methods)
                ax.plot([r[key + "_low"], r[key + "_high"]], [y, y], lw=4, alpha=0.45,
                        solid_capstyle="butt", color=colour)
                ax.plot(r[key], y, "|", ms=10, mew=2, color=colour, label=label)
                label = None
        if tasks[-1] == AGGREGATE:
            ax.axhline(len(tasks) - 1.5, color="0.3", lw=0.8)
        if key == "p_beats_baseline":
            ax.axvline(0.5, color="0.5", lw=0.8, ls="--")
            ax.set_xlim(-0.02, 1.02)
        ax.set_yticks(range(len(tasks)), tasks)
        ax.set_ylim(len(tasks) - 0.5, -0.5)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"{exp['name']}: point estimates and 95% stratified bootstrap intervals",
                 fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_atomic(path, buf.getvalue())


# The fidelity report's columns of diagnostics.csv (fastd3pg.diagnose), at the actor's action.
FIDELITY = ("critic_ds_cos_actor", "critic_ds_relerr_actor", "critic_da_cos_actor",
            "critic_da_relerr_actor", "critic_q_abserr_rel_actor", "target_gs_cos_stored",
            "target_ga_cos_stored")


def fidelity_rows(exp: dict, root: Path) -> list:
    """One dict per (task, method) whose finished runs have ``diagnostics.csv``: for each column
    of :data:`FIDELITY`, the mean over seeds of the run's mean over its evaluations
    (``<column>``), and the same over the last quarter of the evaluations (``<column>_late``)."""
    runs = {}
    for run in plan(exp, root):
        path = run.out / "diagnostics.csv"
        if finished(run.out, run.steps) and path.is_file():
            with open(path) as f:
                table = list(csv.reader(f))
            header, values = table[0], np.array(table[1:], dtype=np.float64)
            runs.setdefault((run.env, run.algo), []).append(
                values[:, [header.index(c) for c in FIDELITY]])
    rows = []
    for env in exp["envs"]:
        for algo in exp["algos"]:
            if (env, algo) not in runs:
                continue
            row = {"task": env, "method": algo, "n": len(runs[env, algo])}
            for k, column in enumerate(FIDELITY):
                row[column] = float(np.mean([np.nanmean(v[:, k]) for v in runs[env, algo]]))
                row[column + "_late"] = float(np.mean(
                    [np.nanmean(v[-max(1, len(v) // 4):, k]) for v in runs[env, algo]]))
            rows.append(row)
    return rows


def fidelity_md(exp: dict, rows: list) -> str:
    names = ("∇_s cos", "∇_s rel. err", "∇_a cos", "∇_a rel. err", "|Q - Q^π| / std",
             "target g_s cos", "target g_a cos")
    lines = ["| task | method | n | " + " | ".join(names) + " |",
             "|---" * (len(names) + 3) + "|"]
    for r in rows:
        cells = [f"{r[c]:.3f} ({r[c + '_late']:.3f})" for c in FIDELITY]
        lines.append(f"| {r['task']} | {r['method']} | {r['n']} | " + " | ".join(cells) + " |")
    return (f"# {exp['name']}: gradient fidelity of the critic against the simulator's truth\n\n"
            "Mean over seeds of each run's mean over its evaluations (in brackets: over the last "
            "quarter of them), from diagnostics.csv (32 replay states per evaluation; the "
            "critic at the actor's action, the TD target at the stored action; cosines and "
            "relative errors of the gradients against those of the current actor's true "
            "Q^π).\n\n" + "\n".join(lines) + "\n")


def fidelity_csv(rows: list) -> str:
    columns = ["task", "method", "n"] + [c + s for c in FIDELITY for s in ("", "_late")]
    lines = [",".join(columns)]
    lines += [",".join(str(r[c]) if c in ("task", "method", "n") else repr(r[c])
                       for c in columns) for r in rows]
    return "\n".join(lines) + "\n"


def write_report(exp: dict, root: Path, resamples=REPORT_RESAMPLES, seed=REPORT_SEED):
    """Write ``figure4.png``, ``table1.md``, ``table1.csv`` and ``table1.png`` from the finished
    runs under ``root``; the Markdown tables, or None when there are no finished runs.
    ``resamples`` and ``seed`` are the bootstrap's. With finished RollingDie runs of both d3pg
    and ddpg, also the paper's Figure 3, ``figure3.png``, ``figure3.csv`` and ``figure3.json``
    (:mod:`fastd3pg.figure3`)."""
    from fastd3pg import figure3

    data = collect(exp, root)
    if not data:
        return None
    rows = table_rows(exp, data, resamples, seed)
    text = table_md(exp, rows, resamples, seed)
    plot_figure4(exp, data, root / "figure4.png")
    for name, methods in exp.get("figures", {}).items():
        plot_figure4(exp, data, root / f"{name}.png", methods)
    plot_intervals(exp, rows, root / "table1.png")
    write_atomic(root / "table1.md", text.encode("utf-8"))
    write_atomic(root / "table1.csv", table_csv(rows).encode("utf-8"))
    fidelity = fidelity_rows(exp, root)
    if fidelity:
        write_atomic(root / "fidelity.md", fidelity_md(exp, fidelity).encode("utf-8"))
        write_atomic(root / "fidelity.csv", fidelity_csv(fidelity).encode("utf-8"))
    die = {}
    for run in plan(exp, root):
        if run.env == figure3.ENV and run.algo in figure3.METHODS and finished(run.out, run.steps):
            die.setdefault(run.algo, []).append(run.out)
    if all(die.get(method) for method in figure3.METHODS):
        try:
            figure3.make_figure3(die, root)
        except (figure3.Figure3Error, ValueError) as err:
            raise SweepError(f"figure3: {' '.join(str(err).split())}") from None
    return text


# -- command line ------------------------------------------------------------------------------
class _Lock:
    """An exclusive lock on the results folder itself (no lock file), so that two sweeps never
    write the same runs."""

    def __init__(self, root: Path):
        self.root = root
        self.fd = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # no POSIX locks: trust the user
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.root, os.O_RDONLY)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            raise SweepError(f"another sweep is writing to {self.root}") from None
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)


def _sigterm(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    parser = Parser(prog="python -m fastd3pg.sweep",
                     description="Run an experiment file's runs, then draw Figure 4 and Table 1.")
    parser.add_argument("experiment", help="TOML experiment file")
    parser.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="where runs execute (default: local)")
    parser.add_argument("--jobs", "--workers", type=count(1), default=None,
                        help="runs at a time (default: the number of cores; ray: no cap)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster address (default: RAY_ADDRESS, else a local cluster)")
    parser.add_argument("--results", default=None,
                        help="results folder (default: <project>/runs/results/<name>)")
    parser.add_argument("--report", "--report-only", action="store_true",
                        help="only redraw the figure and tables from the finished runs")
    args = parser.parse_args(argv)
    if args.address is not None and args.backend != "ray":
        parser.error("--address needs --backend ray")
    try:
        exp = load_experiment(args.experiment)
    except ConfigError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 1
    root = results_dir(exp, args.results)
    summary = None
    try:
        if not args.report:
            if args.backend == "ray":
                from fastd3pg.sweep_ray import RayBackend

                backend = RayBackend(args.address, args.jobs, project_root(exp["path"]))
            else:
                backend = LocalBackend(args.jobs or os.cpu_count() or 1, project_root(exp["path"]))
            saved = signal.signal(signal.SIGTERM, _sigterm)
            try:
                with _Lock(root):
                    summary = run_sweep(exp, root, backend)
            finally:
                signal.signal(signal.SIGTERM, saved)
            print(summary_text(exp, root, summary))
            if summary["interrupted"]:
                return 130
        text = write_report(exp, root) if root.is_dir() else None
    except (ConfigError, SweepError, OSError) as err:
        detail = f"{err.strerror}: {err.filename}" if isinstance(err, OSError) and err.strerror \
            else str(err)
        print(f"{parser.prog}: error: {detail}", file=sys.stderr)
        return 1
    if text is None:
        print(f"{parser.prog}: no finished runs of {exp['name']} under {root}", file=sys.stderr)
        return 1
    print(text)
    names = ["figure4.png", "table1.png", "figure3.png"] + [f"{n}.png" for n in exp["figures"]]
    figures = [root / name for name in names if (root / name).is_file()]
    tables = [root / name for name in ("table1.md", "table1.csv", "fidelity.md", "figure3.csv")
              if (root / name).is_file()]
    print(f"figures: {', '.join(map(str, figures))}\ntables: {', '.join(map(str, tables))}")
    return 1 if summary is not None and summary["failed"] else 0


if __name__ == "__main__":
    # Through the imported module, so that the Ray backend shares its classes.
    from fastd3pg.sweep import main as _main

    sys.exit(_main())
