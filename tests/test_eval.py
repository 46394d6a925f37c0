"""fastd3pg.eval: a saved policy evaluated on its own, its first episode as an animation."""

import csv
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from fastd3pg import eval as ev
from fastd3pg import train
from fastd3pg.control.metrics import normalizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = {"hidden": (16, 16), "batch_size": 16}


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pendulum")
    train.run("Pendulum", "d3pg", seed=3, steps=1600, out=out, **SMALL)
    return out


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cartpole")
    train.run("CartPole", "d3pg", seed=0, steps=800, out=out, **SMALL)
    return out


def _rows(run):
    with open(run / "metrics.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _last_evaluation_start(env, run_seed, evaluations):
    """The start state of the run's last evaluation: the driver draws one start per
    evaluation from its evaluation stream, seeded with the fourth of the run's seeds."""
    from fastd3pg.control.core import run_seeds

    return ev.start_states(env, evaluations, int(run_seeds(run_seed)[3]))[-1]


def test_eval_reproduces_the_runs_last_evaluation(pendulum_run, capsys):
    """The NumPy policy against the compiled actor the driver evaluated with: the same network,
    but the two sum its products in different orders (BLAS picks kernels by shape, the
    compiled code has fastmath), so the returns agree up to rounding amplified over 200 steps."""
    rows = _rows(pendulum_run)
    assert len(rows) == 2
    env, policy = ev.load_run(pendulum_run)
    start = _last_evaluation_start(env, 3, len(rows))
    raw = ev.evaluate(policy, env, states=start[None, :])
    np.testing.assert_allclose(raw, [rows[-1]["return_raw"]], rtol=1e-6)
    np.testing.assert_allclose(normalizer(env)(raw), [rows[-1]["return_mean"]], rtol=1e-6, atol=1e-9)
    # The command line, from that state, prints the same normalized return.
    state = ",".join(repr(float(x)) for x in start)
    assert ev.main([str(pendulum_run), f"--start-state={state}"]) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("normalized")][0]
    assert float(line.split()[1]) == pytest.approx(rows[-1]["return_mean"], rel=1e-4, abs=1e-4)


def test_evaluate_draws_the_start_states_of_one_seeded_stream(pendulum_run):
    env, policy = ev.load_run(pendulum_run)
    a = ev.evaluate(policy, env, episodes=4, seed=7)
    b = ev.evaluate(policy, env, episodes=4, seed=7)
    np.testing.assert_array_equal(a, b)  # same code, same inputs
    assert len(set(a.tolist())) == 4
    starts = ev.start_states(env, 4, 7)
    np.testing.assert_array_equal(ev.evaluate(policy, env, states=starts[2:3]), a[2:3])


def test_command_line_prints_raw_and_normalized_statistics(pendulum_run, capsys):
    assert ev.main([str(pendulum_run), "--episodes", "3", "--seed", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    env, policy = ev.load_run(pendulum_run)
    table = ev.summary(ev.evaluate(policy, env, 3, 1), env)
    raw = [ln for ln in out if ln.startswith("raw")][0].split()[1:]
    norm = [ln for ln in out if ln.startswith("normalized")][0].split()[1:]
    for row, printed in (("raw", raw), ("normalized", norm)):
        for key, text in zip(("mean", "std", "min", "max"), printed):
            assert float(text) == pytest.approx(table[row][key], abs=1e-4)
    assert table["raw"]["min"] <= table["raw"]["mean"] <= table["raw"]["max"]


def test_gif_has_one_frame_per_step(pendulum_run, tmp_path):
    from PIL import Image

    env, policy = ev.load_run(pendulum_run)
    path = tmp_path / "episode.gif"
    assert ev.main([str(pendulum_run), "--episodes", "1", "--video", str(path)]) == 0
    steps = len(ev.episode(policy, env, ev.start_states(env, 1, 0)[0])[1])
    with Image.open(path) as gif:
        assert gif.n_frames == steps + 1  # the start state, then one frame per step
        assert gif.size == (400, 300)


def test_video_of_a_terminating_episode_stops_at_termination(cartpole_run, tmp_path):
    from PIL import Image

    env, policy = ev.load_run(cartpole_run)
    start = np.array([0.0, 0.0, 0.2, 1.0])  # past the 12° limit within a step or two
    states, rewards = ev.episode(policy, env, start)
    assert len(rewards) < env.horizon
    n = ev.write_video(policy, env, tmp_path / "fall.gif", state=start)
    with Image.open(tmp_path / "fall.gif") as gif:
        assert gif.n_frames == n == len(rewards) + 1


def _one_line_failure(argv, match, capsys):
    assert ev.main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1, err


def test_bad_input_gives_one_clear_error(pendulum_run, cartpole_run, tmp_path, capsys):
    _one_line_failure([str(tmp_path / "missing")], "no run directory", capsys)
    _one_line_failure([str(tmp_path)], "no config.json", capsys)
    _one_line_failure([str(pendulum_run), "--policy", str(cartpole_run / "policy.npz")],
                      "trained on CartPole, not on Pendulum", capsys)
    _one_line_failure([str(pendulum_run), "--start-state=1,2"], "needs 3 numbers", capsys)
    _one_line_failure([str(pendulum_run), "--video", str(tmp_path / "x.avi")], "unknown format",
                      capsys)
    _one_line_failure([str(pendulum_run), "--episodes", "0"], "must be >= 1", capsys)
    if shutil.which("ffmpeg") is None:
        _one_line_failure([str(pendulum_run), "--video", str(tmp_path / "x.mp4")], "ffmpeg",
                          capsys)
    broken = tmp_path / "broken"
    shutil.copytree(pendulum_run, broken)
    (broken / "policy.npz").write_bytes(b"not a policy")
    _one_line_failure([str(broken)], "not a fastd3pg policy file", capsys)
    env, _ = ev.load_run(pendulum_run)
    _, other = ev.load_run(cartpole_run)
    with pytest.raises(ValueError, match="trained on CartPole"):
        ev.evaluate(other, env, 1, 0)


def test_command_line_errors_exit_non_zero_without_a_traceback(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "fastd3pg.eval", str(tmp_path / "missing")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"python -m fastd3pg.eval: error: no run directory {tmp_path / 'missing'}"
