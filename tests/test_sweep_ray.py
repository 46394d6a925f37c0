"""The sweep on a Ray cluster (started here on the loopback interface): the local backend's
results, and a killed worker's run retried from the checkpoint the driver holds."""

import logging
import os
import signal
from pathlib import Path

import pytest

from test_sweep import (REPO, assert_same_returns, make_experiment, results_of, rows_in,
                        sweep_cli, sweep_process, train_processes, wait_for)

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")


@pytest.fixture(scope="module")
def cluster():
    """A two-CPU Ray cluster of this machine only, for the whole module."""
    saved = {k: os.environ.get(k) for k in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "PYTHONPATH")}
    # Ray's single-machine mode: every Ray process binds and talks on 127.0.0.1. The processes
    # Ray starts read the variable; this one read it when it imported Ray.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray._private import ray_constants

    saved_constant = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ["PYTHONPATH"] = str(REPO)  # what the workers import
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING)
    address = ray.get_runtime_context().gcs_address
    try:
        assert address.startswith("127.0.0.1:")
        yield address
    finally:
        ray.shutdown()
        ray_constants.ENABLE_RAY_CLUSTER = saved_constant
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def ray_sweep(path, address, *args):
    return sweep_cli(path, "--backend", "ray", "--address", address, *args)


def test_an_unreachable_cluster_is_one_line_at_once(tmp_path):
    path = make_experiment(tmp_path, "nocluster", ["MassPoint"], ["ddpg"], 1, 800)
    result = ray_sweep(path, "127.0.0.1:1")  # nothing listens on port 1
    assert result.returncode == 1
    assert result.stderr.startswith("python -m fastd3pg.sweep: error: cannot reach the Ray "
                                    "cluster at 127.0.0.1:1")
    assert len(result.stderr.strip().splitlines()) == 1


def test_ray_backend_writes_what_the_local_backend_writes(tmp_path, cluster):
    path = make_experiment(tmp_path, "both", ["MassPoint", "Pendulum"], ["ddpg", "d3pg"], 2, 1600)
    local = sweep_cli(path, "--jobs", "2", "--results", tmp_path / "local")
    assert local.returncode == 0, local.stdout + local.stderr
    remote = ray_sweep(path, cluster)
    assert remote.returncode == 0, remote.stdout + remote.stderr
    assert "8 run(s) done" in remote.stdout
    root = results_of(path, "both")
    assert_same_returns(tmp_path / "local", root)
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(tmp_path / "local"))
                           for p in (tmp_path / "local").rglob("*") if p.is_file())
    again = ray_sweep(path, cluster)
    assert again.returncode == 0 and "8 finished before, 0 to do" in again.stdout


def test_a_killed_ray_worker_is_retried_from_the_last_checkpoint(tmp_path, cluster):
    path = make_experiment(tmp_path, "rayk", ["Pendulum"], ["d3pg"], 1, 8000)
    reference = sweep_cli(path, "--results", tmp_path / "reference")
    assert reference.returncode == 0, reference.stdout + reference.stderr
    proc = sweep_process(path, "--backend", "ray", "--address", cluster)
    relative = Path("runs", "results", "rayk", "Pendulum", "d3pg", "seed0")

    def remote_run(exclude=()):
        """pid and output folder of the run's process on its worker."""
        for pid in train_processes("rayk/Pendulum"):
            if pid not in exclude:
                try:
                    return pid, Path(os.readlink(f"/proc/{pid}/cwd")) / relative
                except OSError:
                    pass
        return None

    try:
        # The run, interrupted alone, checkpoints; the worker sends the folder to the driver.
        pid, out = wait_for(lambda: (found := remote_run()) and rows_in(found[1]) >= 1 and found,
                            what="the run on its worker")
        os.kill(pid, signal.SIGTERM)
        held = results_of(path, "rayk") / "Pendulum" / "d3pg" / "seed0"  # on the driver
        wait_for(lambda: (held / "checkpoint.npz").exists(), what="the shipped checkpoint")
        done_rows = rows_in(held)
        # The continued run: kill its Ray worker, the process the task runs in.
        second, out = wait_for(lambda: (found := remote_run({pid})) and
                               rows_in(found[1]) > done_rows + 1 and found, what="the resumed run")
        worker = int(Path(f"/proc/{second}/stat").read_text().rsplit(")", 1)[1].split()[1])
        assert Path(f"/proc/{worker}/cmdline").read_bytes().startswith(b"ray::")
        os.kill(worker, signal.SIGKILL)
        log, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, log
    assert log.count("retry Pendulum d3pg seed 0") == 2, log
    assert "Ray worker lost (WorkerCrashedError)" in log
    assert_same_returns(tmp_path / "reference", results_of(path, "rayk"))
