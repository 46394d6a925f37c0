"""The command line, run(), outputs, resume and load_policy, as a user drives them."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fastd3pg import train
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
