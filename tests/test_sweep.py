"""The sweep on the local backend: paths, the finished-run rule, faults, progress, the report."""

import csv
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fastd3pg
from fastd3pg import stats, sweep
from fastd3pg.control.configio import ConfigError

REPO = Path(fastd3pg.__file__).resolve().parent.parent
SMALL = "hidden = [16, 16]\nbatch_size = 16\n"
linux_only = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")


def make_experiment(tmp_path, name, envs, algos, seeds, steps, config=SMALL):
    """``<tmp>/proj/runs/experiments/<name>.toml`` with a small-network config beside it."""
    folder = tmp_path / "proj" / "runs" / "experiments"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.config.toml").write_text(config)
    path = folder / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\nenvs = {envs!r}\nalgos = {algos!r}\nseeds = {seeds}\n'
        f'steps = {steps}\nconfig = "{name}.config.toml"\n'.replace("'", '"'))
    return path


def results_of(experiment, name):
    return Path(experiment).parent.parent / "results" / name


def environ():
    return dict(os.environ, PYTHONPATH=str(REPO))


def sweep_cli(*args, cwd=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "fastd3pg.sweep", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd or REPO, env=environ(),
                          timeout=timeout)


def sweep_process(*args):
    return subprocess.Popen([sys.executable, "-m", "fastd3pg.sweep", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=REPO, env=environ())


def returns(root):
    """Run folder -> its metrics' timesteps and return columns (wall_s differs by nature)."""
    out = {}
    for path in sorted(Path(root).glob("*/*/seed*/metrics.csv")):
        out[str(path.parent.relative_to(root))] = sweep.read_metrics(path)[:, [0, 2, 3, 4]]
    return out


def assert_same_returns(a, b):
    ra, rb = returns(a), returns(b)
    assert ra and sorted(ra) == sorted(rb)
    for key in ra:
        # Same code on the same inputs and one thread: the numbers are equal, not just close.
        np.testing.assert_array_equal(ra[key], rb[key], err_msg=key)


def train_processes(marker):
    """pid -> command line of the ``fastd3pg.train`` processes whose arguments hold ``marker``."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            args = Path(f"/proc/{entry}/cmdline").read_bytes().decode().split("\0")
        except (OSError, UnicodeDecodeError):
            continue
        if "fastd3pg.train" in args and any(marker in a for a in args):
            found[int(entry)] = args
    return found


def alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(condition, timeout=240, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def rows_in(folder):
    rows = sweep.read_metrics(Path(folder) / "metrics.csv")
    return 0 if rows is None else len(rows)


# -- experiment files and paths ----------------------------------------------------------------
def test_results_go_beside_the_experiments_runs_folder_whatever_the_current_folder(tmp_path):
    path = make_experiment(tmp_path, "paths", ["MassPoint"], ["ddpg"], 2, 1600)
    exp = sweep.load_experiment(path)
    assert sweep.project_root(path) == tmp_path / "proj"
    assert sweep.results_dir(exp) == tmp_path / "proj" / "runs" / "results" / "paths"
    assert sweep.results_dir(exp, tmp_path / "elsewhere") == tmp_path / "elsewhere"
    assert exp["config"] == path.parent / "paths.config.toml"  # relative to the file
    loose = tmp_path / "loose" / "x.toml"
    loose.parent.mkdir()
    loose.write_text('envs = ["MassPoint"]\nalgos = ["ddpg"]\n')
    exp = sweep.load_experiment(loose)
    assert exp["name"] == "x" and exp["seeds"] == [0, 1, 2, 3]
    assert sweep.results_dir(exp) == tmp_path / "loose" / "runs" / "results" / "x"


@pytest.mark.parametrize("text, message", [
    ('envs = ["MassPoint"]\nalgos = ["ddpg"]\nsteppes = 3\n', "unknown key(s) ['steppes']"),
    ('envs = ["Nope"]\nalgos = ["ddpg"]\n', "unknown env 'Nope'"),
    ('envs = ["MassPoint"]\nalgos = ["nope"]\n', "unknown algo 'nope'"),
    ('algos = ["ddpg"]\n', "missing key 'envs'"),
    ('envs = ["MassPoint"]\nalgos = ["ddpg"]\nconfig = "gone.toml"\n', "does not exist"),
    ('name = "../up"\nenvs = ["MassPoint"]\nalgos = ["ddpg"]\n', "plain folder name"),
    ('envs = ["MassPoint"]\nalgos = ["ddpg"]\nsteps = 0\n', "steps must be >= 1"),
    ('envs = ["MassPoint"]\nalgos = ["ddpg"]\n[steps]\nPendulum = 9\n', "no entry for 'MassPoint'"),
    ('envs = ["MassPoint"]\nalgos = ["ddpg"]\n[only]\nmpc = ["MassPoint"]\n', "not in algos"),
    ('envs = ["MassPoint"]\nalgos = ["ddpg"]\n[only]\nddpg = ["Pendulum"]\n', "not in envs"),
    ('envs = ["MassPoint"]\nalgos = ["ddpg"]\nonly = 3\n', "table of algo = [envs]"),
    ('envs = ["MassPoint"]\nalgos = ["ddpg"]\nbaselines = "ddpg"\n', "baselines must be a table"),
    ('envs = ["MassPoint"]\nalgos = ["ddpg", "d3pg"]\n[baselines]\nd3pg = "d3pg"\n',
     "baselines.d3pg names the method itself"),
    ('envs = ["MassPoint"]\nalgos = ["ddpg", "d3pg"]\n[baselines]\nd3pg = "sac"\n',
     "baselines.d3pg names 'sac', which is not in algos"),
    ('envs = ["MassPoint"]\nalgos = ["ddpg", "d3pg"]\n[baselines]\nsac = "ddpg"\n',
     "baselines names 'sac', which is not in algos"),
    ('envs = ["MassPoint"]\nalgos = ["ddpg", "d3pg"]\n[baselines]\nd3pg = 3\n',
     "baselines.d3pg must be a method name in quotes, got 3"),
    ('envs = ["MassPoint"]\nalgos = ["ddpg"]\nfigures = ["ddpg"]\n',
     "figures must be a table of NAME = [methods]"),
    ('envs = ["MassPoint"]\nalgos = ["ddpg"]\n[figures]\npair = "ddpg"\n',
     "figures.pair must be a list of method names in quotes"),
    ('envs = ["MassPoint"]\nalgos = ["ddpg"]\n[figures]\npair = []\n',
     "figures.pair must be a list of method names in quotes"),
    ('envs = ["MassPoint"]\nalgos = ["ddpg"]\n[figures]\npair = ["ddpg", "sac"]\n',
     "figures.pair names 'sac', which is not in algos"),
    ('envs = ["MassPoint"]\nalgos = ["ddpg"]\n[figures]\ntable1 = ["ddpg"]\n',
     "figures.table1: a figure needs a plain file name other than figure3, figure4, table1"),
    ('envs = ["MassPoint"]\nalgos = ["ddpg"]\n[figures]\n"a.b" = ["ddpg"]\n',
     "figures.a.b: a figure needs a plain file name"),
])
def test_bad_experiment_files_give_one_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=None) as err:
        sweep.load_experiment(path)
    assert message in str(err.value)
    result = sweep_cli(path)
    assert result.returncode == 1 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_only_restricts_an_algorithm_to_some_envs_and_leaves_the_others_everywhere(tmp_path):
    path = tmp_path / "only.toml"
    path.write_text('envs = ["MassPoint", "Pendulum", "Acrobot"]\nalgos = ["ddpg", "mpc"]\n'
                    'seeds = 2\n[only]\nmpc = ["Pendulum"]\n')
    runs = sweep.plan(sweep.load_experiment(path), tmp_path / "results")
    assert sorted({(r.env, r.algo) for r in runs}) == [
        ("Acrobot", "ddpg"), ("MassPoint", "ddpg"), ("Pendulum", "ddpg"), ("Pendulum", "mpc")]
    assert len(runs) == 4 * 2


def test_a_method_trains_its_algorithm_with_its_settings_over_the_experiments_config(tmp_path):
    from fastd3pg.train import resolve_config

    (tmp_path / "base.toml").write_text("batch_size = 16\n[d3pg]\nw1 = 0.5\nw2 = 0.25\n")
    path = tmp_path / "methods.toml"
    path.write_text('envs = ["Pendulum"]\nalgos = ["ddpg", "d3pg", "cos"]\nseeds = 1\n'
                    'config = "base.toml"\n[methods.cos]\nalgo = "d3pg"\nreg = "cosine"\n'
                    'w2 = 0.1\nhidden = [8, 8]\n')
    exp = sweep.load_experiment(path)
    root = tmp_path / "results"
    runs = {r.algo: r for r in sweep.plan(exp, root)}
    assert runs["cos"].trains == "d3pg" and runs["cos"].out == root / "Pendulum" / "cos" / "seed0"
    assert runs["ddpg"].trains == "ddpg" and runs["ddpg"].config == tmp_path / "base.toml"
    sweep.write_method_configs(exp, root)
    assert runs["cos"].config.is_file()
    command = sweep.train_command(runs["cos"], runs["cos"].out, runs["cos"].config, False)
    assert command[command.index("--algo") + 1] == "d3pg"
    config, _ = resolve_config("Pendulum", "d3pg", runs["cos"].config)
    assert (config.reg, config.w1, config.w2, config.hidden, config.batch_size) == \
        ("cosine", 0.5, 0.1, (8, 8), 16)  # the method's keys win, the file's others stay
    plain, _ = resolve_config("Pendulum", "d3pg", tmp_path / "base.toml")
    assert (plain.reg, plain.w2) == ("l2", 0.25)


def test_a_method_compares_with_its_baselines_entry_else_with_ddpg_when_it_runs():
    exp = sweep.load_experiment(REPO / "runs" / "experiments" / "appendix.toml")
    assert {a: sweep.baseline_of(exp, a) for a in exp["algos"]} == {
        "ddpg": None, "d3pg": "ddpg", "d3pg-cosine": "ddpg", "sac": "ddpg", "d3pg-sac": "sac",
        "td3": "ddpg", "d3pg-td3": "td3"}
    alone = {"algos": ["d3pg", "sac"], "baselines": {}}
    assert sweep.baseline_of(alone, "d3pg") is None and sweep.baseline_of(alone, "sac") is None


@pytest.mark.parametrize("table, message", [
    ('[methods.d3pg]\nalgo = "d3pg"\n', "has the name of an algorithm"),
    ('[methods.x]\nw2 = 0.1\n', "needs algo = one of"),
    ('[methods.x]\nalgo = "d3pg"\nw3 = 0.1\n', "unknown config key 'w3'"),
    ('[methods.x]\nalgo = "d3pg"\nw2 = "big"\n', "must be float"),
    ('[methods.x-0.1]\nalgo = "d3pg"\n', "must be quoted"),
])
def test_bad_methods_give_one_line_errors(tmp_path, table, message):
    path = tmp_path / "bad.toml"
    path.write_text('envs = ["Pendulum"]\nalgos = ["ddpg"]\n' + table)
    result = sweep_cli(path)
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--jobs", "0"], "must be >= 1"),
    (["--address", "127.0.0.1:1"], "--address needs --backend ray"),
    (["--backend", "slurm"], "invalid choice"),
])
def test_bad_arguments_give_one_line_errors(tmp_path, args, message):
    path = make_experiment(tmp_path, "args", ["MassPoint"], ["ddpg"], 1, 800)
    result = sweep_cli(path, *args)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_the_package_and_the_local_backend_never_import_ray():
    code = ("import sys, fastd3pg, fastd3pg.train, fastd3pg.sweep; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=environ())
    assert result.returncode == 0, result.stderr


def test_the_ray_backend_without_ray_says_how_to_install_it(tmp_path):
    path = make_experiment(tmp_path, "noray", ["MassPoint"], ["ddpg"], 1, 800)
    code = ("import sys; sys.modules['ray'] = None; from fastd3pg.sweep import main; "
            f"sys.exit(main([{str(path)!r}, '--backend', 'ray']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=environ())
    assert result.returncode == 1
    assert result.stderr == ('python -m fastd3pg.sweep: error: --backend ray needs Ray: '
                             'pip install "fastd3pg[ray]"\n')


# -- the state of a run on disk ----------------------------------------------------------------
def write_run(folder, last_step, policy=True, log="", history=0.4):
    folder.mkdir(parents=True, exist_ok=True)
    steps = list(range(800, last_step + 1, 800))
    rows = "".join(f"{t},1.0,-5.0,0.5,{history!r}\n" for t in steps)
    (folder / "metrics.csv").write_text(
        "timesteps,wall_s,return_raw,return_mean,return_history\n" + rows)
    if policy:
        (folder / "policy.npz").write_bytes(b"npz")
    (folder / "train.log").write_text(log)


def test_a_run_is_finished_at_its_budget_or_at_a_reported_early_stop(tmp_path):
    write_run(tmp_path / "a", 1600)
    assert sweep.finished(tmp_path / "a", 1600)
    assert not sweep.finished(tmp_path / "a", 2400)  # a larger budget continues it
    write_run(tmp_path / "b", 1600, policy=False)  # killed between its last row and the actor
    assert not sweep.finished(tmp_path / "b", 1600)
    write_run(tmp_path / "c", 1600, log="stopped early at timestep 1600: return_mean plateaued\n")
    assert sweep.finished(tmp_path / "c", 8000)
    write_run(tmp_path / "d", 2400, log="stopped early at timestep 1600: return_mean plateaued\n")
    assert not sweep.finished(tmp_path / "d", 8000)  # the log does not describe these rows
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "metrics.csv").write_text("garbage\n1,2\n")
    (tmp_path / "e" / "policy.npz").write_bytes(b"npz")
    assert not sweep.finished(tmp_path / "e", 1)
    assert not sweep.finished(tmp_path / "missing", 1)


def test_a_restarted_run_continues_its_checkpoint_or_starts_in_an_empty_folder(tmp_path):
    write_run(tmp_path / "a", 800)
    (tmp_path / "a" / "checkpoint.npz").write_bytes(b"ckpt")
    assert sweep.prepare(tmp_path / "a") is True
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "checkpoint.npz", "metrics.csv", "train.log"]  # the stale actor is gone
    write_run(tmp_path / "b", 800)
    assert sweep.prepare(tmp_path / "b") is False
    assert list((tmp_path / "b").iterdir()) == []
    assert sweep.prepare(tmp_path / "c") is False and (tmp_path / "c").is_dir()


def test_exit_codes_tell_a_runs_own_failure_from_a_lost_process(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("fastd3pg: ...\n 800/1600 steps\npython -m fastd3pg.train: error: diverged\n")
    assert sweep.outcome_of(0, log).status == "done"
    for code in (1, 2):
        outcome = sweep.outcome_of(code, log)
        assert outcome.status == "failed"
        assert outcome.message == "python -m fastd3pg.train: error: diverged"
    assert sweep.outcome_of(-signal.SIGKILL, log).message == "process killed by SIGKILL"
    assert sweep.outcome_of(130, log).status == "lost"


# -- the scheduler, with a scripted backend ----------------------------------------------------
class ScriptedBackend:
    """Ends each attempt of a run with the next outcome of its script."""

    def __init__(self, script, slots=2):
        self.script, self.slots, self.starts, self._active = script, slots, [], []

    @property
    def active(self):
        return len(self._active)

    running = active

    def free(self):
        return len(self._active) < self.slots

    def start(self, run):
        self.starts.append(run.seed)
        self._active.append(run)

    def wait(self, timeout):
        if not self._active:
            return []
        run = self._active.pop(0)
        status, message = self.script[run.seed].pop(0)
        return [(run, sweep.Outcome(status, message))]

    def close(self):
        pass


def test_lost_runs_are_retried_and_failing_runs_are_reported_once(tmp_path):
    exp = sweep.load_experiment(make_experiment(tmp_path, "sched", ["MassPoint"], ["ddpg"], 4, 8))
    lost = ("lost", "process killed by SIGKILL")
    backend = ScriptedBackend({0: [("done", "")], 1: [lost, ("done", "")],
                               2: [("failed", "diverged")], 3: [lost] * (sweep.MAX_LOST + 1)})
    stream = io.StringIO()
    summary = sweep.run_sweep(exp, tmp_path / "results", backend, stream)
    assert sorted(backend.starts) == [0, 1, 1, 2] + [3] * (sweep.MAX_LOST + 1)
    assert [run.seed for run, _ in summary["done"]] == [0, 1]
    assert [(run.seed, m) for run, m in summary["failed"]] == [
        (2, "diverged"), (3, f"lost {sweep.MAX_LOST + 1} times, last: process killed by SIGKILL")]
    assert summary["retried"] == 1 + sweep.MAX_LOST
    log = stream.getvalue()
    assert log.count("FAIL  MassPoint ddpg seed 2: diverged") == 1
    assert "| 2/4 done, 0 running, 2 failed, 4 retried" in log.splitlines()[-1]
    text = sweep.summary_text(exp, tmp_path / "results", summary)
    assert text.count("failed: MassPoint ddpg seed 2: diverged") == 1


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_one_line_rewritten_in_place_on_a_terminal(tmp_path):
    exp = sweep.load_experiment(make_experiment(tmp_path, "tty", ["MassPoint"], ["ddpg"], 3, 8))
    stream = Terminal()
    backend = ScriptedBackend({seed: [("done", "")] for seed in range(3)})
    sweep.run_sweep(exp, tmp_path / "results", backend, stream)
    screen = stream.getvalue()
    assert screen.count("\r\x1b[K") >= 3 and screen.endswith("\n")
    assert screen.rstrip("\n").rsplit("\r\x1b[K", 1)[1].startswith("tty: 3/3 done, 0 running")
    assert screen.count("\n") == 1 + 3 + 1  # the plan, one line per run, the end
    assert "eta 0:00" in screen


# -- real runs ---------------------------------------------------------------------------------
def test_a_sweep_runs_every_run_then_skips_them_and_reports(tmp_path):
    path = make_experiment(tmp_path, "basic", ["MassPoint", "Pendulum"], ["ddpg"], 1, 1600)
    first = sweep_cli(path, "--jobs", "2", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    root = results_of(path, "basic")
    assert sorted(returns(root)) == ["MassPoint/ddpg/seed0", "Pendulum/ddpg/seed0"]
    for name in ("config.json", "metrics.csv", "policy.npz", "curve.png", "train.log"):
        assert (root / "Pendulum" / "ddpg" / "seed0" / name).is_file()
    assert "2 run(s) done" in first.stdout
    with open(root / "table1.csv") as f:
        table = list(csv.DictReader(f))
    assert [(r["task"], r["method"], r["n"]) for r in table] == [
        ("MassPoint", "ddpg", "1"), ("Pendulum", "ddpg", "1"), ("all", "ddpg", "2")]
    final = sweep.read_metrics(root / "Pendulum" / "ddpg" / "seed0" / "metrics.csv")[-1, 4]
    assert float(table[1]["mean"]) == final and float(table[1]["std"]) == 0.0
    again = sweep_cli(path, cwd=tmp_path)
    assert again.returncode == 0 and "2 finished before, 0 to do" in again.stdout


@linux_only
def test_a_killed_run_is_resumed_and_the_results_are_identical(tmp_path):
    path = make_experiment(tmp_path, "killed", ["Pendulum"], ["d3pg"], 1, 8000)
    reference = sweep_cli(path, "--jobs", "1", "--results", tmp_path / "reference")
    assert reference.returncode == 0, reference.stdout + reference.stderr
    proc = sweep_process(path, "--jobs", "1")
    out = results_of(path, "killed") / "Pendulum" / "d3pg" / "seed0"
    marker = "killed/Pendulum"
    try:
        # An interrupted run (SIGTERM) writes a checkpoint and exits; the sweep continues it.
        first = wait_for(lambda: rows_in(out) >= 1 and train_processes(marker), what="a run")
        os.kill(next(iter(first)), signal.SIGTERM)
        # Then SIGKILL the continued run, after it went past that checkpoint.
        checkpoint = out / "checkpoint.npz"
        wait_for(checkpoint.exists, what="the checkpoint")
        done_rows = rows_in(out)
        second = wait_for(lambda: {p: a for p, a in train_processes(marker).items()
                                   if p not in first and rows_in(out) > done_rows + 1},
                          what="the resumed run")
        os.kill(next(iter(second)), signal.SIGKILL)
        log, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, log
    assert log.count("retry Pendulum d3pg seed 0") == 2, log
    assert "process killed by SIGKILL" in log
    assert_same_returns(tmp_path / "reference", results_of(path, "killed"))


@linux_only
def test_a_killed_sweep_leaves_no_run_behind_and_restarts_where_it_was(tmp_path):
    path = make_experiment(tmp_path, "restart", ["MassPoint"], ["ddpg"], 2, 8000)
    reference = sweep_cli(path, "--results", tmp_path / "reference")
    assert reference.returncode == 0, reference.stdout + reference.stderr
    root = results_of(path, "restart")
    proc = sweep_process(path, "--jobs", "1")
    try:
        wait_for(lambda: sweep.finished(root / "MassPoint" / "ddpg" / "seed0", 8000)
                 and rows_in(root / "MassPoint" / "ddpg" / "seed1") >= 1, what="the second run")
        orphans = train_processes("restart/MassPoint")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    wait_for(lambda: not any(map(alive, orphans)), timeout=60, what="the run to stop")
    again = sweep_cli(path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1 finished before, 1 to do" in again.stdout
    assert_same_returns(tmp_path / "reference", root)


def test_a_run_failing_by_itself_is_reported_once_and_not_retried(tmp_path):
    path = make_experiment(tmp_path, "diverges", ["MassPoint"], ["ddpg"], 1, 1600,
                           config=SMALL + "actor_lr = 1e300\n")
    result = sweep_cli(path)
    assert result.returncode == 1
    assert "retry" not in result.stdout
    error = "MassPoint ddpg seed 0: python -m fastd3pg.train: error:"
    assert result.stdout.count("FAIL  " + error) == 1  # the run's line
    assert result.stdout.count("failed: " + error) == 1  # the summary
    log = (results_of(path, "diverges") / "MassPoint" / "ddpg" / "seed0" / "train.log").read_text()
    assert log.count("-> ") == 1  # one attempt
    assert "no finished runs" in result.stderr


# -- the report --------------------------------------------------------------------------------
def test_report_from_another_folder_redraws_the_committed_results(tmp_path):
    project = tmp_path / "proj"
    (project / "runs" / "experiments").mkdir(parents=True)
    shutil.copy(REPO / "runs" / "experiments" / "table1_quick.toml",
                project / "runs" / "experiments")
    committed = REPO / "runs" / "results" / "table1_quick"
    copy = project / "runs" / "results" / "table1_quick"
    shutil.copytree(committed, copy, ignore=shutil.ignore_patterns("table1*", "figure4.png"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = sweep_cli(project / "runs" / "experiments" / "table1_quick.toml", "--report",
                       cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert (copy / "table1.md").read_text() == (committed / "table1.md").read_text()
    with open(committed / "table1.csv") as f, open(copy / "table1.csv") as g:
        for before, after in zip(csv.DictReader(f), csv.DictReader(g), strict=True):
            assert before.keys() == after.keys()
            for column, cell in before.items():  # NumPy's SIMD sums may round differently
                if cell in ("", after[column]) or not cell[-1].isdigit():
                    assert after[column] == cell
                else:
                    assert float(after[column]) == pytest.approx(float(cell), rel=1e-12)
    assert (copy / "figure4.png").stat().st_size > 0 and (copy / "table1.png").stat().st_size > 0
    assert not list(elsewhere.iterdir())
    with open(copy / "table1.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 10 and {r["n"] for r in table[:8]} == {"4"}
    assert [(r["task"], r["method"], r["n"]) for r in table[8:]] == [
        ("all", "ddpg", "16"), ("all", "d3pg", "16")]
    finals = [sweep.read_metrics(copy / "CartPole" / "d3pg" / f"seed{s}" / "metrics.csv")[-1, 4]
              for s in range(4)]
    row = next(r for r in table if (r["task"], r["method"]) == ("CartPole", "d3pg"))
    assert float(row["mean"]) == pytest.approx(np.mean(finals), rel=1e-12)  # summation order
    assert float(row["std"]) == pytest.approx(np.std(finals), rel=1e-12)


def test_report_without_results_says_so(tmp_path):
    path = make_experiment(tmp_path, "empty", ["MassPoint"], ["ddpg"], 1, 800)
    result = sweep_cli(path, "--report-only", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (f"python -m fastd3pg.sweep: no finished runs of empty under "
                                      f"{results_of(path, 'empty')}")


def write_results(root, finals, steps=1600):
    """Finished runs under ``root`` whose final ``return_history`` are ``finals[env, algo]``."""
    for (env, algo), values in finals.items():
        for seed, value in enumerate(values):
            write_run(sweep.run_dir(root, env, algo, seed), steps, history=float(value))


def read_table(root):
    with open(root / "table1.csv") as f:
        return list(csv.DictReader(f))


def number(cell):
    return None if cell == "" else float(cell)


def test_report_tables_compare_each_method_with_its_baseline_and_ddpg_with_intervals(tmp_path):
    rng = np.random.default_rng(0)
    envs, algos = ["MassPoint", "Pendulum", "CartPole"], ["ddpg", "d3pg", "sac", "d3pg-sac"]
    finals = {(e, a): rng.uniform(size=5) for e in envs for a in ("ddpg", "d3pg", "d3pg-sac")}
    finals["MassPoint", "sac"] = rng.uniform(size=4)  # sac has no CartPole runs
    finals["Pendulum", "sac"] = np.array([0.5, 0.5, 0.9, 0.1])  # ties with nothing, repeats
    root = tmp_path / "results"
    write_results(root, finals)
    write_run(sweep.run_dir(root, "Pendulum", "sac", 4), 800, history=0.99)  # unfinished
    exp = {"name": "synthetic", "envs": envs, "algos": algos, "seeds": list(range(5)),
           "steps": {e: 1600 for e in envs}, "only": {}, "methods": {}, "config": None,
           "baselines": {"d3pg-sac": "sac"}}
    text = sweep.write_report(exp, root, resamples=2000, seed=3)
    table = read_table(root)

    assert list(table[0]) == list(sweep.COLUMNS)
    assert list(sweep.COLUMNS[:11]) == [  # the columns before baselines, then the new ones
        "task", "method", "n", "mean", "std", "iqm", "iqm_low", "iqm_high", "p_beats_ddpg",
        "p_beats_ddpg_low", "p_beats_ddpg_high"]
    assert list(sweep.COLUMNS[11:]) == ["baseline", "p_beats_baseline", "p_beats_baseline_low",
                                        "p_beats_baseline_high", "tasks"]
    assert [(r["task"], r["method"], r["n"], r["tasks"]) for r in table] == [
        ("MassPoint", "ddpg", "5", "1"), ("MassPoint", "d3pg", "5", "1"),
        ("MassPoint", "sac", "4", "1"), ("MassPoint", "d3pg-sac", "5", "1"),
        ("Pendulum", "ddpg", "5", "1"), ("Pendulum", "d3pg", "5", "1"),
        ("Pendulum", "sac", "4", "1"), ("Pendulum", "d3pg-sac", "5", "1"),
        ("CartPole", "ddpg", "5", "1"), ("CartPole", "d3pg", "5", "1"),
        ("CartPole", "d3pg-sac", "5", "1"),
        # each across the tasks it shares with its baseline: d3pg-sac's without CartPole
        ("all", "ddpg", "15", "3"), ("all", "d3pg", "15", "3"), ("all", "sac", "8", "2"),
        ("all", "d3pg-sac", "10", "2")]
    baselines = {"ddpg": None, "d3pg": "ddpg", "sac": "ddpg", "d3pg-sac": "sac"}
    across = {"ddpg": envs, "d3pg": envs, "sac": envs[:2], "d3pg-sac": envs[:2]}
    with_ddpg = {"ddpg": [], "d3pg": envs, "sac": envs[:2], "d3pg-sac": envs}
    for row in table:
        method = row["method"]
        tasks = [row["task"]] if row["task"] != "all" else across[method]
        scores = [finals[t, method] for t in tasks]
        pooled = np.concatenate(scores)
        # Written with repr and read back: the same float64 numbers.
        assert number(row["mean"]) == pytest.approx(pooled.mean(), rel=1e-12)  # summation order
        assert number(row["std"]) == pytest.approx(pooled.std(), rel=1e-12)
        assert number(row["iqm"]) == stats.iqm(scores)
        assert (number(row["iqm_low"]), number(row["iqm_high"])) == stats.iqm_ci(
            scores, 2000, seed=3)
        assert row["baseline"] == (baselines[method] or "")
        for key, other, compared in (
                ("p_beats_ddpg", "ddpg", with_ddpg[method] if row["task"] == "all" else tasks),
                ("p_beats_baseline", baselines[method], tasks)):
            beats = [number(row[key + end]) for end in ("", "_low", "_high")]
            if other is None or method == other or (row["task"], other) == ("CartPole", "sac"):
                assert beats == [None, None, None], (row["task"], method, key)
                continue
            x, y = [finals[t, method] for t in compared], [finals[t, other] for t in compared]
            assert beats[0] == stats.probability_of_improvement(x, y)
            assert tuple(beats[1:]) == stats.probability_of_improvement_ci(x, y, 2000, seed=3)
    cell = {(r["task"], r["method"]): r for r in table}
    per_task = [number(cell[e, "d3pg-sac"]["p_beats_baseline"]) for e in envs[:2]]
    assert number(cell["all", "d3pg-sac"]["p_beats_baseline"]) == pytest.approx(
        np.mean(per_task), rel=1e-15)
    assert cell["CartPole", "d3pg-sac"]["baseline"] == "sac"  # no sac runs there: no P

    assert text == (root / "table1.md").read_text()
    assert "2,000 resamples, seed 3" in text
    assert ("`all`: ddpg over 3 tasks (MassPoint, Pendulum, CartPole), d3pg over 3 (MassPoint, "
            "Pendulum, CartPole), sac over 2 (MassPoint, Pendulum), d3pg-sac over 2 (MassPoint, "
            "Pendulum): ") in text
    improvement = text.split("Probability of improvement over the method's baseline")[1]
    lines = improvement.split("\n\n")[1].splitlines()
    assert lines[0] == "| method | MassPoint | Pendulum | CartPole | all |"
    assert [line.split(" | ")[0] for line in lines[2:]] == [
        "| d3pg (vs ddpg)", "| sac (vs ddpg)", "| d3pg-sac (vs sac)"]

    def shown(task):
        p, low, high = (number(cell[task, "d3pg-sac"]["p_beats_baseline" + end])
                        for end in ("", "_low", "_high"))
        return f"{p:.3f} [{low:.3f}, {high:.3f}]"

    assert lines[4] == (f"| d3pg-sac (vs sac) | {shown('MassPoint')} | {shown('Pendulum')} | - | "
                        f"{shown('all')} |")
    assert (root / "table1.png").stat().st_size > 0
    sweep.write_report(exp, root, resamples=2000, seed=3)
    assert read_table(root) == table  # seeded: the same numbers again


def test_report_without_a_baseline_leaves_the_improvement_cells_empty(tmp_path):
    root = tmp_path / "results"
    write_results(root, {("Pendulum", "d3pg"): [0.25, 0.5, 0.75], ("MassPoint", "d3pg"): [0.5],
                         ("Pendulum", "sac"): [0.1, 0.2]})
    exp = {"name": "alone", "envs": ["Pendulum", "MassPoint"], "algos": ["d3pg", "sac"],
           "seeds": [0, 1, 2], "steps": {"Pendulum": 1600, "MassPoint": 1600}, "only": {},
           "methods": {}, "config": None, "baselines": {}}
    text = sweep.write_report(exp, root)
    table = read_table(root)
    # sac runs on one task: no row across tasks; d3pg's covers its two
    assert [(r["task"], r["method"], r["n"], r["tasks"]) for r in table] == [
        ("Pendulum", "d3pg", "3", "1"), ("Pendulum", "sac", "2", "1"),
        ("MassPoint", "d3pg", "1", "1"), ("all", "d3pg", "4", "2")]
    assert number(table[0]["iqm"]) == 0.5
    empty = ["baseline"] + [p + end for p in ("p_beats_ddpg", "p_beats_baseline")
                            for end in ("", "_low", "_high")]
    assert all(r[c] == "" for r in table for c in empty)
    assert "Probability of improvement" not in text and "10,000 resamples, seed 0" in text
    assert "`all`: d3pg over 2 tasks (Pendulum, MassPoint): " in text


def test_figures_draw_the_curves_of_their_methods_on_their_tasks(tmp_path, monkeypatch):
    import matplotlib.image

    path = tmp_path / "figures.toml"
    path.write_text('envs = ["Pendulum", "MassPoint"]\nalgos = ["ddpg", "d3pg", "sac"]\n'
                    'seeds = 2\nsteps = 1600\n[figures]\npair = ["ddpg", "d3pg"]\n'
                    'alone = ["sac"]\nnone = ["d3pg"]\n')
    exp = sweep.load_experiment(path)
    assert exp["figures"] == {"pair": ["ddpg", "d3pg"], "alone": ["sac"], "none": ["d3pg"]}
    root = tmp_path / "results"
    write_results(root, {("Pendulum", "ddpg"): [0.2, 0.4], ("Pendulum", "d3pg"): [0.5, 0.6],
                         ("MassPoint", "sac"): [0.1, 0.3]})
    exp["figures"]["none"] = []  # no method, no task: no file
    drawn, draw = [], sweep.plot_figure4

    def spy(exp, data, path, methods=None):
        drawn.append((path.name, methods))
        draw(exp, data, path, methods)

    monkeypatch.setattr(sweep, "plot_figure4", spy)
    sweep.write_report(exp, root)
    assert drawn == [("figure4.png", None), ("pair.png", ["ddpg", "d3pg"]),
                     ("alone.png", ["sac"]), ("none.png", [])]
    assert not (root / "none.png").exists()
    # one column of panels per task with runs of the figure's methods: both tasks, then one each
    widths = {name: matplotlib.image.imread(root / name).shape[1]
              for name in ("figure4.png", "pair.png", "alone.png")}
    assert widths["pair.png"] == widths["alone.png"] < widths["figure4.png"]


def test_a_diagnosed_experiment_trains_with_diagnose_and_reports_fidelity(tmp_path):
    path = make_experiment(tmp_path, "diag", ["MassPoint"], ["ddpg", "d3pg"], 2, 1600)
    path.write_text(path.read_text() + "diagnose = true\n")
    exp = sweep.load_experiment(path)
    runs = sweep.plan(exp, sweep.results_dir(exp))
    assert all(r.diagnose for r in runs)
    assert "--diagnose" in sweep.train_command(runs[0], runs[0].out, None, False)
    result = sweep_cli(path, "--jobs", "2")
    assert result.returncode == 0, result.stderr
    root = sweep.results_dir(exp)
    with open(root / "fidelity.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["task"], r["method"], r["n"]) for r in rows] == [("MassPoint", "ddpg", "2"),
                                                                 ("MassPoint", "d3pg", "2")]
    for row in rows:  # each cell is the mean over seeds of the run's mean over evaluations
        per_run = []
        for seed in (0, 1):
            run = root / "MassPoint" / row["method"] / f"seed{seed}"
            with open(run / "diagnostics.csv") as f:
                per_run.append(np.mean([float(r["critic_ds_cos_actor"])
                                        for r in csv.DictReader(f)]))
        assert float(row["critic_ds_cos_actor"]) == pytest.approx(np.mean(per_run), rel=1e-12)
    assert "∇_s cos" in (root / "fidelity.md").read_text()
    assert str(root / "fidelity.md") in result.stdout.splitlines()[-1]  # the files it wrote


def test_diagnose_is_refused_for_a_method_without_a_critic_it_measures(tmp_path):
    path = tmp_path / "gd.toml"
    path.write_text('envs = ["MassPoint"]\nalgos = ["gd"]\ndiagnose = true\n')
    result = sweep_cli(path)
    assert result.returncode == 1 and "diagnose measures a critic" in result.stderr
