"""The command line, run(), outputs, resume and load_policy, as a user drives them."""

import csv
import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fastd3pg import train
from fastd3pg._jit import compile_target
from fastd3pg.physics import make

QUICK = dict(hidden=(16, 16), batch_size=16)


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "fastd3pg.train", *args], capture_output=True,
                          text=True, timeout=timeout)


def read_metrics(path):
    with open(path) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["timesteps", "wall_s", "return_raw", "return_mean", "return_history"]
    return np.array(rows[1:], dtype=float)


@pytest.mark.parametrize("args, message", [
    (["--env", "Nope"], "unknown env 'Nope'"),
    (["--algo", "nope"], "unknown algo 'nope'"),
    (["--steps", "0"], "must be >= 1"),
    (["--steps", "ten"], "not an integer"),
    (["--w1", "nan"], "finite"),
    (["--reg", "l3"], "invalid choice"),
])
def test_bad_arguments_give_one_line_errors(args, message):
    result = cli(*args)
    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_bad_config_files_give_one_line_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("batch_size = [\n")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("learning_rate = 1e-3\n")
    for path, message in ((tmp_path / "missing.toml", "cannot read"), (bad, "invalid TOML"),
                          (unknown, "unknown config key 'learning_rate'")):
        result = cli("--config", str(path), "--steps", "10", "--out", str(tmp_path / "o"))
        assert result.returncode == 1
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.stderr


def test_ddpg_refuses_gradient_weights(tmp_path):
    result = cli("--algo", "ddpg", "--w1", "1", "--steps", "10", "--out", str(tmp_path))
    assert result.returncode == 1 and "ddpg has no gradient-fitting terms" in result.stderr


def test_run_writes_every_output_and_same_seed_gives_same_metrics(tmp_path):
    res = train.run(env="MassPoint", algo="d3pg", seed=3, steps=1600, out=tmp_path / "a", **QUICK)
    train.run(env="MassPoint", algo="d3pg", seed=3, steps=1600, out=tmp_path / "b", **QUICK)
    for name in ("config.json", "metrics.csv", "policy.npz", "curve.png"):
        assert (tmp_path / "a" / name).is_file()
    a, b = read_metrics(tmp_path / "a" / "metrics.csv"), read_metrics(tmp_path / "b" / "metrics.csv")
    assert a[:, 0].tolist() == [800, 1600]
    np.testing.assert_array_equal(np.delete(a, 1, axis=1), np.delete(b, 1, axis=1))
    np.testing.assert_array_equal(res["return_raw"], a[:, 2])
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["version"] and config["config"]["hidden"] == [16, 16] and config["seed"] == 3
    assert config["compile_target"] == compile_target()  # what reruns depend on


def test_resume_ends_with_the_same_numbers_as_an_uninterrupted_run(tmp_path):
    full = train.run(env="Pendulum", algo="d3pg", seed=1, steps=2400, out=tmp_path / "full", **QUICK)
    train.run(env="Pendulum", algo="d3pg", seed=1, steps=800, out=tmp_path / "part", **QUICK)
    resumed = train.run(env="Pendulum", algo="d3pg", seed=1, steps=2400, out=tmp_path / "part",
                        resume=True, **QUICK)
    for key in ("timesteps", "return_raw", "return_mean", "return_history"):
        np.testing.assert_array_equal(full[key], resumed[key])


def test_resume_with_other_settings_is_refused(tmp_path):
    train.run(env="MassPoint", algo="d3pg", seed=0, steps=800, out=tmp_path, **QUICK)
    with pytest.raises(train.TrainingError, match="other settings"):
        train.run(env="MassPoint", algo="d3pg", seed=1, steps=1600, out=tmp_path, resume=True,
                  **QUICK)


def test_ctrl_c_writes_a_checkpoint_that_resumes(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "fastd3pg.train", "--env", "Pendulum",
                             "--steps", "400000", "--out", str(out), "--algo", "ddpg"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (out / "metrics.csv").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    assert (out / "checkpoint.npz").is_file() and (out / "policy.npz").is_file()
    done = read_metrics(out / "metrics.csv")[-1, 0]
    with np.load(out / "checkpoint.npz") as ck:
        assert int(ck["timesteps"]) == done


def test_diverging_run_stops_with_one_line_and_keeps_checkpoint(tmp_path):
    cfg = tmp_path / "explode.toml"
    cfg.write_text("critic_lr = 1e300\nactor_lr = 1e300\n")
    result = cli("--env", "Pendulum", "--algo", "ddpg", "--steps", "8000", "--config", str(cfg),
                 "--out", str(tmp_path / "o"))
    assert result.returncode == 1
    assert "diverged" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_load_policy_runs_in_numpy_and_matches_the_agents_actor(tmp_path):
    train.run(env="Pendulum", algo="ddpg", seed=0, steps=800, out=tmp_path, **QUICK)
    policy = train.load_policy(tmp_path)
    env = make("Pendulum")
    states = np.array([env.reset(seed=k)[0] for k in range(5)])
    batch = policy(states)
    assert batch.shape == (5, 1) and np.all(np.abs(batch) <= 1)
    # One row and five rows go through different BLAS kernels: equal up to rounding only.
    np.testing.assert_allclose(policy(states[2]), batch[2], rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="shape"):
        policy(np.zeros(4))
    with pytest.raises(FileNotFoundError):
        train.load_policy(tmp_path / "nothing")


def test_a_loaded_policy_drives_gymnasiums_pendulum(tmp_path):
    gym = pytest.importorskip("gymnasium")
    train.run(env="Pendulum", algo="d3pg", seed=0, steps=800, out=tmp_path, **QUICK)
    policy = train.load_policy(tmp_path / "policy.npz")
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=0)
    total = 0.0
    for _ in range(20):
        action = policy(obs)  # float32 observation in, action in [-1, 1]
        assert action.shape == (1,) and abs(action[0]) <= 1
        obs, reward, terminated, truncated, _ = env.step(2.0 * action)
        total += reward
    assert np.isfinite(total)


# -- kill -9, hostile files and paths, bad arguments -------------------------------------------
QUICK_TOML = "hidden = [16, 16]\nbatch_size = 16\n"
RECORD = ("config.json", "metrics.csv", "checkpoint.npz", "policy.npz", "curve.png")


def one_line_error(result, *fragments):
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr and "pickle" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def snapshot(out):
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def quick_toml(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "quick.toml"
    path.write_text(QUICK_TOML)
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory, quick_toml):
    """A finished 1,600-step MassPoint D3PG run (checkpoint at its last step)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    train.run(env="MassPoint", algo="d3pg", seed=0, steps=1600, out=out, config=quick_toml)
    return out


@pytest.fixture
def run_copy(finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    return out


def resume_cli(out, quick_toml, *extra):
    return cli("--env", "MassPoint", "--algo", "d3pg", "--steps", "1600", "--config",
               str(quick_toml), "--out", str(out), "--resume", *extra)


def test_help_is_plain_text_and_shows_defaults():
    result = cli("--help")
    assert result.returncode == 0
    assert "``" not in result.stdout and ":func:" not in result.stdout
    assert "(default: 20000)" in result.stdout and "(default: Pendulum)" in result.stdout
    assert "return_history" in result.stdout and "policy.npz" in result.stdout


def test_out_naming_a_file_or_a_path_under_a_file_is_refused(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    one_line_error(cli("--steps", "800", "--out", str(afile)), "is a file, not a directory")
    one_line_error(cli("--steps", "800", "--out", str(afile / "sub" / "run")),
                   f"lies under {afile}, which is a file")
    assert afile.read_text() == "keep me"


def test_an_unwritable_output_directory_is_refused(tmp_path, monkeypatch):
    out = tmp_path / "locked"
    out.mkdir()
    if os.geteuid() != 0:
        out.chmod(0o500)
    else:  # root writes anywhere: refuse the write as the file system would
        real_open = os.open

        def refuse(path, *args, **kwargs):
            if os.path.dirname(os.fspath(path)) == str(out):
                raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", refuse)
    try:
        with pytest.raises(train.TrainingError, match="cannot write into the output directory"):
            train.run(env="MassPoint", algo="d3pg", steps=800, out=out, **QUICK)
    finally:
        out.chmod(0o700)
    assert list(out.iterdir()) == []


def test_a_second_run_into_the_same_out_is_refused_unless_overwriting(run_copy, quick_toml):
    before = snapshot(run_copy)
    one_line_error(cli("--env", "MassPoint", "--steps", "800", "--config", str(quick_toml),
                       "--out", str(run_copy)), "already holds a run", "--overwrite")
    assert snapshot(run_copy) == before
    res = train.run(env="MassPoint", algo="d3pg", seed=5, steps=800, out=run_copy,
                    overwrite=True, **QUICK)
    assert read_metrics(run_copy / "metrics.csv")[:, 0].tolist() == [800]
    assert json.loads((run_copy / "config.json").read_text())["seed"] == 5
    np.testing.assert_array_equal(res["return_raw"], read_metrics(run_copy / "metrics.csv")[:, 2])


@pytest.mark.parametrize("damage, message", [
    ("truncate", "is damaged"),
    ("empty", "is empty"),
    ("garbage", "is not a checkpoint"),
])
def test_resume_on_a_damaged_checkpoint_gives_one_line_and_keeps_the_files(
        run_copy, quick_toml, damage, message):
    ck = run_copy / "checkpoint.npz"
    data = ck.read_bytes()
    ck.write_bytes({"truncate": data[:len(data) // 2], "empty": b"",
                    "garbage": bytes(range(256)) * 64}[damage])
    before = snapshot(run_copy)
    one_line_error(resume_cli(run_copy, quick_toml), message, str(ck))
    assert snapshot(run_copy) == before


def test_resume_with_steps_below_the_checkpoint_is_refused(run_copy, quick_toml):
    before = snapshot(run_copy)
    result = cli("--env", "MassPoint", "--steps", "800", "--config", str(quick_toml), "--out",
                 str(run_copy), "--resume")
    one_line_error(result, "at timestep 1600", "--steps 800 is below it")
    assert snapshot(run_copy) == before


def test_resume_with_other_settings_names_the_keys_and_values(run_copy, quick_toml):
    before = snapshot(run_copy)
    one_line_error(resume_cli(run_copy, quick_toml, "--w1", "0.5"),
                   "config.w1: 1.0 in the checkpoint, 0.5 now")
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("name", ["config.json", "metrics.csv"])
def test_resume_over_a_hand_edited_record_is_refused(run_copy, quick_toml, name):
    path = run_copy / name
    text = path.read_text()
    if name == "config.json":
        edited = json.loads(text)
        edited["config"]["critic_lr"] = 0.5
        path.write_text(json.dumps(edited, indent=2))
        fragment = "config.critic_lr: 0.001 in the checkpoint, 0.5 in the file"
    else:
        lines = text.splitlines()
        lines[1] = lines[1].rsplit(",", 1)[0] + ",0.99"
        path.write_text("\n".join(lines) + "\n")
        fragment = "line 2 differs"
    before = snapshot(run_copy)
    one_line_error(resume_cli(run_copy, quick_toml), f"{path} was edited", fragment)
    assert snapshot(run_copy) == before
    path.unlink()  # a deleted record is written again from the checkpoint
    assert resume_cli(run_copy, quick_toml).returncode == 0
    assert path.read_text() == text


def test_a_config_file_error_names_the_file(tmp_path):
    bad = tmp_path / "negative.toml"
    bad.write_text("w1 = -1.0\n")
    one_line_error(cli("--config", str(bad), "--steps", "800", "--out", str(tmp_path / "o")),
                   str(bad), "w1 and w2 must be >= 0")
    assert not (tmp_path / "o").exists()


def test_files_honour_the_umask(tmp_path):
    saved = os.umask(0o027)
    try:
        train.run(env="MassPoint", algo="d3pg", steps=800, out=tmp_path / "run", **QUICK)
    finally:
        os.umask(saved)
    for name in RECORD:
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o640, name


def test_a_full_disk_stops_the_run_keeps_the_last_good_files_and_resumes(tmp_path, monkeypatch):
    reference = train.run(env="MassPoint", algo="d3pg", seed=2, steps=2400, out=tmp_path / "ref",
                          **QUICK)
    out = tmp_path / "run"
    real_fsync, calls = os.fsync, []

    def fsync(fd):  # writes 1-3: config.json, then metrics.csv and checkpoint after 800 steps
        calls.append(fd)
        if len(calls) > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(train.TrainingError, match="cannot write .*metrics.csv: No space left"):
        train.run(env="MassPoint", algo="d3pg", seed=2, steps=2400, out=out, checkpoint_every=0,
                  **QUICK)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert read_metrics(out / "metrics.csv")[:, 0].tolist() == [800]
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "config.json",
                                                     "metrics.csv"]
    resumed = train.run(env="MassPoint", algo="d3pg", seed=2, steps=2400, out=out, resume=True,
                        **QUICK)
    for key in ("timesteps", "return_raw", "return_mean", "return_history"):
        np.testing.assert_array_equal(reference[key], resumed[key])


@pytest.mark.parametrize("kwargs, message", [
    (dict(seed=1.5), "seed must be an integer"),
    (dict(seed="0"), "seed must be an integer"),
    (dict(seed=-1), "seed must be an integer >= 0"),
    (dict(seed=True), "seed must be an integer"),
    (dict(steps=0), "steps must be an integer >= 1"),
    (dict(steps=800.0), "steps must be an integer"),
    (dict(w1=float("nan")), "must be finite"),
    (dict(critic_lr=float("inf")), "must be finite"),
    (dict(batch_size=float("nan")), "must be int"),
    (dict(learning_rate=1e-3), "unknown config key 'learning_rate'"),
    (dict(env="Nope"), "unknown env 'Nope'"),
    (dict(env=3), "unknown env 3"),
    (dict(algo="nope"), "unknown algo 'nope'"),
    (dict(out=5), "out must be a path"),
    (dict(config=1.0), "config must be a path"),
    (dict(resume="yes"), "resume must be True or False"),
    (dict(resume=True, overwrite=True), "exclude each other"),
    (dict(checkpoint_every=-1.0), "checkpoint_every must be a finite number"),
    (dict(checkpoint_every=float("nan")), "checkpoint_every must be a finite number"),
    (dict(eval_episodes=0), "eval_episodes must be an integer >= 1"),
    (dict(algo="mpc", eval_episodes=3), "eval_episodes applies to trained actors"),
    (dict(progress=5), "progress must be a writable stream"),
])
def test_run_rejects_bad_arguments_with_a_value_error(tmp_path, kwargs, message):
    args = dict(env="MassPoint", algo="d3pg", steps=800, out=tmp_path / "o")
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        train.run(**args)
    assert not (tmp_path / "o").exists()


def test_eval_episodes_reports_more_episodes_without_changing_the_metrics(tmp_path):
    plain = train.run(env="Pendulum", algo="ddpg", seed=0, steps=800, out=tmp_path / "a", **QUICK)
    res = train.run(env="Pendulum", algo="ddpg", seed=0, steps=800, out=tmp_path / "b",
                    eval_episodes=4, **QUICK)
    assert "eval_returns" not in plain
    assert res["eval_returns"].shape == (4,) and np.all(np.isfinite(res["eval_returns"]))
    assert len(set(res["eval_returns"].tolist())) == 4  # four different start states
    np.testing.assert_array_equal(np.delete(read_metrics(tmp_path / "a" / "metrics.csv"), 1, 1),
                                  np.delete(read_metrics(tmp_path / "b" / "metrics.csv"), 1, 1))


def test_the_tuned_settings_come_from_the_package_and_are_recorded(tmp_path):
    train.run(env="CartPole", algo="d3pg", steps=800, out=tmp_path, **QUICK)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["config_files"] == ["fastd3pg/configs/CartPole.toml"]
    assert config["config"]["popart"] is False  # the tuned file's value, not the default


def test_the_first_line_says_when_kernels_compile(tmp_path, monkeypatch):
    from fastd3pg import _jit

    empty = tmp_path / "cache"
    empty.mkdir()
    monkeypatch.setattr(_jit, "cache_dir", lambda: str(empty))
    assert train.cold_cache(train.agent_class("d3pg"))
    (empty / "d3pg.train_period-471.py311.nbi").write_bytes(b"")
    assert train.cold_cache(train.agent_class("d3pg"))  # the metrics' kernels missing
    (empty / "metrics._random_returns-31.py311.nbi").write_bytes(b"")
    assert not train.cold_cache(train.agent_class("d3pg"))
    assert train.cold_cache(train.agent_class("sac"))
    assert train.cold_cache(train.agent_class("mpc"))  # its own compiled loop is missing
    (empty / "mpc.train_period-201.py311.nbi").write_bytes(b"")
    assert not train.cold_cache(train.agent_class("mpc"))
    monkeypatch.setattr(train, "cold_cache", lambda cls: True)
    stream = io.StringIO()
    train.run(env="MassPoint", algo="d3pg", steps=800, out=tmp_path / "run", progress=stream,
              **QUICK)
    first = stream.getvalue().splitlines()[0]
    assert first.startswith("compiling kernels, first run only") and first.endswith(" s")
    assert "done in" in first


def _metrics_lines_without_wall(path):
    return [row[:1] + row[2:] for row in csv.reader(open(path))]


def test_kill_9_at_random_moments_loses_at_most_a_checkpoint_and_resume_matches(tmp_path,
                                                                                 quick_toml):
    steps, period = 24000, 800
    reference = tmp_path / "reference"
    train.run(env="Pendulum", algo="ddpg", seed=4, steps=steps, out=reference, config=quick_toml)
    out = tmp_path / "run"
    args = ["--env", "Pendulum", "--algo", "ddpg", "--seed", "4", "--steps", str(steps),
            "--config", str(quick_toml), "--out", str(out), "--checkpoint-every", "0"]
    # The child's writes pause in fsync, between writing the temporary file and renaming it,
    # so that a kill lands inside a checkpoint write.
    slow = ("import os, sys, time\n"
            "real = os.fsync\n"
            "def fsync(fd):\n    time.sleep(0.3)\n    real(fd)\n"
            "os.fsync = fsync\n"
            "from fastd3pg.train import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    rng = np.random.default_rng()
    # The first kill is placed by progress, not by time: on a fast processor a fixed delay can
    # land after the last metrics row, which leaves the second run no checkpoint write to hit.
    first_target, first_delay = rng.uniform(period, steps / 3), rng.uniform(0.0, 0.1)
    moment = rng.uniform(0.0, 1.5)

    def start(resume, slow_writes=False):
        code = ["-c", slow] if slow_writes else ["-m", "fastd3pg.train"]
        return subprocess.Popen([sys.executable, *code, *args, *(["--resume"] if resume else [])],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def wait_for(test, proc, timeout=240):
        deadline = time.time() + timeout
        while not test():
            assert proc.poll() is None, proc.stderr.read()
            assert time.time() < deadline, "timed out"
            time.sleep(0.01)

    def kill(proc):
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        metrics_t = read_metrics(out / "metrics.csv")[-1, 0]
        with np.load(out / "checkpoint.npz") as ck:
            assert int(ck["timesteps"]) >= metrics_t - period  # at most one interval lost
        return metrics_t

    # 1. at a random moment in the first third of the run, after the first checkpoint
    proc = start(resume=False)
    wait_for(lambda: (out / "checkpoint.npz").exists()
             and read_metrics(out / "metrics.csv")[-1, 0] >= first_target, proc)
    time.sleep(first_delay)
    first = kill(proc)
    assert first < steps, "the first kill should land before the last metrics row"
    # 2. inside a checkpoint write: its temporary file exists and is never renamed
    proc = start(resume=True, slow_writes=True)
    temporary = lambda: list(out.glob(".checkpoint.npz.*.tmp"))  # noqa: E731
    wait_for(lambda: read_metrics(out / "metrics.csv")[-1, 0] > first and temporary(), proc)
    kill(proc)
    assert temporary(), "the kill should have landed inside a checkpoint write"
    # 3. at a random moment of a resumed run, then resume to the end
    proc = start(resume=True)
    wait_for(lambda: not temporary(), proc)  # left-over temporary files are cleared
    time.sleep(moment)
    if proc.poll() is None:
        kill(proc)
    proc = start(resume=True)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert _metrics_lines_without_wall(out / "metrics.csv") == \
        _metrics_lines_without_wall(reference / "metrics.csv"), \
        f"kills: timestep {first_target:.0f} + {first_delay:.2f} s, then {moment:.2f} s"


def test_video_writes_one_frame_per_step_of_an_episode_of_the_final_actor(tmp_path):
    from PIL import Image

    small = tmp_path / "small.toml"
    small.write_text("hidden = [16, 16]\nbatch_size = 16\n")
    gif = tmp_path / "episode.gif"
    result = cli("--env", "Pendulum", "--algo", "ddpg", "--steps", "800", "--config", str(small),
                 "--out", str(tmp_path / "run"), "--video", str(gif))
    assert result.returncode == 0, result.stderr
    assert f"video: {gif}" in result.stdout
    with Image.open(gif) as image:
        assert image.n_frames == make("Pendulum").horizon + 1  # the start state, then each step


def test_a_video_path_that_cannot_be_written_is_refused_before_training(tmp_path):
    for path, message in ((tmp_path / "episode.avi", "unknown format"),
                          (tmp_path / "missing" / "episode.gif", "no directory")):
        result = cli("--steps", "800", "--out", str(tmp_path / "run"), "--video", str(path))
        assert result.returncode == 2 and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
        assert not (tmp_path / "run").exists()
