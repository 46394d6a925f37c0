"""The Ray backend of :mod:`fastd3pg.sweep`: one Ray task per run, no shared file system.

A task (``num_cpus=1``, never retried by Ray itself) checks that its worker has the driver's
fastd3pg source, writes the files it was sent (a resumed run's folder) into a temporary
folder, and runs ``python -m fastd3pg.train`` there as a child process that dies with the
worker. It is a generator: it yields ``{"started": where}``, then the run's folder each time
the run writes a new ``checkpoint.npz``, then ``{"exit": code, "files": ...}``. The driver
writes every folder it receives atomically into the results folder, so that a worker's death
(Ray reports it as a system error) costs at most the work since the last checkpoint: the
sweep then starts the run again with the folder it holds.

Only ``--backend ray`` imports this module, and with it Ray.
"""

import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from fastd3pg.sweep import (Outcome, SweepError, die_with_parent, outcome_of, prepare,
                            train_command, train_environ, write_atomic)

try:
    import ray
except ImportError:
    raise SweepError('--backend ray needs Ray: pip install "fastd3pg[ray]"') from None

CHECK_S = 1.0  # how often a task looks for a new checkpoint


def _source() -> str:
    from fastd3pg._jit import _source_hash

    return _source_hash()


def _folder(out: Path) -> dict:
    """The run folder's files (not the hidden temporaries of atomic writes) as name -> bytes."""
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())
            if p.is_file() and not p.name.startswith(".")}


def _stamp(path: Path):
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _remove_orphans(prefix="fastd3pg-run-"):
    """Remove the temporary run folders left by this node's workers that died."""
    if not os.path.isdir("/proc/self"):
        return
    for folder in Path(tempfile.gettempdir()).glob(prefix + "*-*"):
        pid = folder.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(folder, ignore_errors=True)


def train_task(spec: dict):
    """One run on a Ray worker (see the module docstring); ``spec`` is built by
    :meth:`RayBackend.start`."""
    where = f"{socket.gethostname()} (pid {os.getpid()})"
    source = _source()
    if source != spec["source"]:
        yield {"error": f"the Ray worker on {where} has another fastd3pg source ({source}; the "
                        f"driver has {spec['source']}): install the driver's version on every node"}
        return
    yield {"started": where}
    _remove_orphans()
    with tempfile.TemporaryDirectory(prefix=f"fastd3pg-run-{os.getpid()}-") as tmp:
        tmp = Path(tmp)
        out = tmp / spec["out"]
        out.mkdir(parents=True)
        for name, data in spec["files"].items():
            (out / name).write_bytes(data)
        config = None
        if spec["config"] is not None:
            config, data = spec["config"]
            (tmp / config).parent.mkdir(parents=True, exist_ok=True)
            (tmp / config).write_bytes(data)
        cmd = train_command(spec["run"], spec["out"], config, spec["resume"])
        with open(out / "train.log", "ab" if spec["resume"] else "wb") as log:
            proc = subprocess.Popen(cmd, cwd=tmp, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, env=train_environ(),
                                    preexec_fn=die_with_parent(signal.SIGKILL))
            try:
                stamp = _stamp(out / "checkpoint.npz")
                while True:
                    try:
                        code = proc.wait(timeout=CHECK_S)
                        break
                    except subprocess.TimeoutExpired:
                        pass
                    now = _stamp(out / "checkpoint.npz")
                    if now is not None and now != stamp:
                        stamp = now
                        yield {"files": _folder(out)}
            finally:
                if proc.poll() is None:  # the task was cancelled
                    proc.kill()
                    proc.wait()
        yield {"exit": code, "files": _folder(out)}


def _check_reachable(address):
    """Fail at once on a ``host:port`` nobody listens on (Ray itself retries for minutes)."""
    if not address or "://" in address or ":" not in address:
        return
    host, port = address.rsplit(":", 1)
    if not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as err:
        raise SweepError(f"cannot reach the Ray cluster at {address}: "
                         f"{err.strerror or err}") from None


class RayBackend:
    """Runs as Ray tasks on the cluster at ``address`` (None: ``RAY_ADDRESS``, else a local
    cluster), at most ``jobs`` in flight (None: as many as the cluster takes)."""

    def __init__(self, address, jobs, cwd: Path):
        _check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        except Exception as err:  # Ray raises many kinds (ConnectionError, ValueError, ...)
            text = str(err).strip().splitlines()
            raise SweepError(f"cannot start or reach the Ray cluster "
                             f"{address or '(local)'}: {text[0] if text else type(err).__name__}"
                             ) from None
        self.slots = jobs
        self.cwd = Path(cwd)
        self.source = _source()
        self._task = ray.remote(num_cpus=1, max_retries=0)(train_task)
        self._runs = {}  # ObjectRefGenerator -> Run
        self._started = {}  # Run -> where its task runs

    def _rel(self, path: Path, fallback) -> Path:
        try:
            return path.relative_to(self.cwd)
        except ValueError:
            return Path(fallback)

    @property
    def active(self) -> int:
        return len(self._runs)

    @property
    def running(self) -> int:
        return len(self._started)

    def free(self) -> bool:
        return self.slots is None or len(self._runs) < self.slots

    def start(self, run):
        resume = prepare(run.out)
        config = None
        if run.config is not None:
            config = (str(self._rel(Path(run.config), Path(run.config).name)),
                      Path(run.config).read_bytes())
        spec = {"run": run, "out": str(self._rel(run.out, "run")), "config": config,
                "resume": resume, "files": _folder(run.out) if resume else {},
                "source": self.source}
        self._runs[self._task.remote(spec)] = run

    def _write(self, run, files: dict):
        # policy.npz last: with metrics.csv at the budget it marks the run finished.
        for name in sorted(files, key=lambda n: n == "policy.npz"):
            write_atomic(run.out / name, files[name])

    def _receive(self, gen):
        """Handle the next message of one task; an Outcome when the task is over."""
        run = self._runs[gen]
        try:
            message = ray.get(next(gen))
        except StopIteration:
            return Outcome("lost", "the Ray task ended without a result")
        except ray.exceptions.RayTaskError as err:  # the task itself raised
            lines = str(err).strip().splitlines()
            return Outcome("failed", f"Ray task error: {lines[-1] if lines else err}")
        except ray.exceptions.RayError as err:  # the worker or its node died
            where = self._started.get(run, "a node")
            return Outcome("lost", f"Ray worker lost ({type(err).__name__}) on {where}")
        if "started" in message:
            self._started[run] = message["started"]
            return None
        if "error" in message:
            return Outcome("failed", message["error"])
        self._write(run, message["files"])
        if "exit" in message:
            return outcome_of(message["exit"], run.out / "train.log")
        return None

    def wait(self, timeout: float) -> list:
        if not self._runs:
            time.sleep(timeout)
            return []
        ready, _ = ray.wait(list(self._runs), num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(list(self._runs), num_returns=len(self._runs), timeout=0)
        ended = []
        for gen in ready:
            outcome = self._receive(gen)
            if outcome is not None:
                run = self._runs.pop(gen)
                self._started.pop(run, None)
                ended.append((run, outcome))
        return ended

    def close(self):
        """Leave the cluster; runs still in flight continue from their last checkpoint when
        the sweep is started again."""
        self._runs.clear()
        self._started.clear()
        ray.shutdown()
