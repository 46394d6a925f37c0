"""The Figure 2 command: its files, skipping finished runs, --report from the files alone, the
saved surfaces against independent evaluations, and its one-line errors."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastd3pg
from fastd3pg import figure2
from fastd3pg.control.core import STD_EPS
from fastd3pg.diagnostics import q_surface
from fastd3pg.nn import MLP
from fastd3pg.physics import make
from fastd3pg.policy import Policy, load_policy
from fastd3pg.train import run

REPO = Path(fastd3pg.__file__).resolve().parent.parent
SMALL = "hidden = [8, 8]\nbatch_size = 16\n"
SEEDS, STEPS, STAGES = 2, 2400, (800, 1600)
RUN_FILES = {"config.json", "metrics.csv", "diagnostics.csv", "stages.csv"}


def figure2_cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "fastd3pg.figure2", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=900,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """One small figure: 2 seeds, 2400 steps, stages at 800 and 1600, 8x8 networks."""
    root = tmp_path_factory.mktemp("figure2")
    config = root / "small.toml"
    config.write_text(SMALL)
    out = root / "out"
    done = figure2_cli("--out", out, "--seeds", SEEDS, "--steps", STEPS, "--stages",
                       ",".join(map(str, STAGES)), "--config", config)
    assert done.returncode == 0, done.stderr
    return out, config, done.stdout


def surface(out, setting, stage):
    with np.load(out / setting.name / "seed0" / f"surface_{stage}.npz") as f:
        return {k: f[k] for k in f.files}


def test_the_command_writes_every_file_and_no_checkpoint(made):
    out, _, stdout = made
    for name in ("figure2.json", "figure2.png", "figure2_curves.png", "summary.md",
                 "summary.csv"):
        assert (out / name).stat().st_size > 0, name
    for setting in figure2.SETTINGS:
        for seed in range(SEEDS):
            run_dir = out / setting.name / f"seed{seed}"
            expected = RUN_FILES | ({f"surface_{k}.npz" for k in figure2.STAGES} if seed == 0
                                    else set())
            assert {p.name for p in run_dir.iterdir()} == expected, run_dir
            with open(run_dir / "stages.csv") as f:
                rows = list(csv.DictReader(f))
            assert [(r["stage"], int(r["timesteps"])) for r in rows] == list(
                zip(figure2.STAGES, (*STAGES, STEPS)))
    assert not list(out.rglob("checkpoint.npz"))
    # One progress line per run and stage, naming it.
    assert stdout.count("seed 1  mid") == len(figure2.SETTINGS)
    assert "/8] w1 = 1, w2 = 1" in stdout


def test_the_record_names_the_settings_version_and_compile_target(made):
    out, config, _ = made
    rec = json.loads((out / "figure2.json").read_text())
    assert rec["version"] == fastd3pg.__version__
    assert rec["stages"] == {"early": 800, "mid": 1600, "converged": STEPS}
    assert rec["seeds"] == SEEDS and rec["config_toml"] == SMALL
    assert [(s["algo"], s["w1"], s["w2"]) for s in rec["settings"]] == [
        ("ddpg", 0, 0), ("d3pg", 0, 1), ("d3pg", 1, 0), ("d3pg", 1, 1)]
    assert rec["compile_target"]["cpu_name"]
    run_config = json.loads((out / "w1-1_w2-0" / "seed1" / "config.json").read_text())
    assert run_config["config"]["w1"] == 1.0 and run_config["config"]["w2"] == 0.0
    assert run_config["config"]["hidden"] == [8, 8] and run_config["steps"] == STEPS


def test_the_same_seed_starts_every_setting_from_the_same_networks(made):
    """The (0, 0) run (DDPG) and the (1, 1) run of a seed begin with the same actor and critic,
    so that the figure compares the training, not the draws."""
    from fastd3pg.control import agent_class
    from fastd3pg.train import resolve_config

    _, config, _ = made
    first = []
    for setting in (figure2.SETTINGS[0], figure2.SETTINGS[3]):
        cfg, _ = resolve_config("MassPoint", setting.algo, config,
                                {"w1": setting.w1, "w2": setting.w2})
        agent = agent_class(setting.algo)(make("MassPoint"), cfg, 0, total_steps=800)
        first.append((agent.nets.theta.copy(), agent.nets.phi.copy()))
    np.testing.assert_array_equal(first[0][0], first[1][0])
    np.testing.assert_array_equal(first[0][1], first[1][1])


@pytest.mark.parametrize("stage", figure2.STAGES)
def test_the_saved_critic_is_the_uninterrupted_runs_critic(tmp_path, made, stage):
    """Training in segments and reading the checkpoint gives, at every stage, the critic and
    actor of one uninterrupted run to that timestep (the same code on the same inputs: equal,
    not just close)."""
    out, config, _ = made
    setting = figure2.SETTINGS[1]
    saved = surface(out, setting, stage)
    steps = int(saved["timesteps"])
    run(env="MassPoint", algo=setting.algo, seed=0, steps=steps, out=tmp_path / "whole",
        config=config, w1=setting.w1, w2=setting.w2)
    agent = figure2.restore_agent(tmp_path / "whole", setting, 0, steps, config)
    np.testing.assert_array_equal(saved["critic.params"], agent.nets.phi)
    np.testing.assert_array_equal(saved["policy.params"], load_policy(tmp_path / "whole").params)


@pytest.mark.parametrize("setting", figure2.SETTINGS, ids=lambda s: s.name)
def test_the_saved_learned_surface_is_the_critics_own_values(made, setting):
    """Q_φ(s, a) = σ_Q Q̃(s̃, a) + μ_Q from the stored critic through the compiled network
    (the surface itself was computed in NumPy): equal to rounding. The input gradients against
    the compiled network's input gradient, by the chain rule through s̃."""
    out, _, _ = made
    for stage in figure2.STAGES:
        st = surface(out, setting, stage)
        net = MLP.from_arrays({k[len("critic."):]: v for k, v in st.items()
                               if k.startswith("critic.")})
        S, A = (x.reshape(-1, 1) for x in np.meshgrid(st["s"], st["a"], indexing="ij"))
        u = (S - st["critic.obs_mean"]) / (st["critic.obs_std"] + STD_EPS)
        clip = float(st["critic.obs_clip"])
        X = np.concatenate([np.clip(u, -clip, clip), A], axis=1)
        sigma, mu = float(st["critic.sigma_q"]), float(st["critic.mu_q"])
        q = sigma * net.forward(st["critic.params"], X)[:, 0] + mu
        G = net.input_grad(st["critic.params"], X)
        dq_ds = sigma * G[:, 0] * (np.abs(u[:, 0]) <= clip) / (st["critic.obs_std"][0] + STD_EPS)
        dq_da = sigma * G[:, 1]
        shape = st["critic_q"].shape
        # Compiled and NumPy matrix products round differently: 1e-9 relative to Q's scale.
        scale = np.abs(st["true_q"]).max() + 1.0
        np.testing.assert_allclose(st["critic_q"], q.reshape(shape), rtol=0, atol=1e-9 * scale)
        np.testing.assert_allclose(st["critic_dq_ds"], dq_ds.reshape(shape), rtol=1e-7,
                                   atol=1e-9 * scale)
        np.testing.assert_allclose(st["critic_dq_da"], dq_da.reshape(shape), rtol=1e-7,
                                   atol=1e-9 * scale)


@pytest.mark.parametrize("setting", figure2.SETTINGS, ids=lambda s: s.name)
def test_the_saved_truth_is_q_surface_of_the_saved_actor(made, setting):
    out, _, _ = made
    env = make("MassPoint")
    for stage in figure2.STAGES:
        st = surface(out, setting, stage)
        policy = Policy({k[len("policy."):]: v for k, v in st.items() if k.startswith("policy.")})
        q, dq_ds, dq_da, pi = q_surface(env, policy, st["s"], st["a"], gamma=float(st["gamma"]))
        # One call here against chunks of rows there: BLAS may sum in another order.
        for mine, key in ((q, "true_q"), (dq_ds, "true_dq_ds"), (dq_da, "true_dq_da"),
                          (pi, "pi")):
            np.testing.assert_allclose(st[key], mine, rtol=1e-12, atol=1e-12, err_msg=key)
        np.testing.assert_allclose(st["pi"], policy(st["s"][:, None])[:, 0], rtol=1e-12,
                                   atol=1e-12)


def test_stages_csv_holds_the_surfaces_errors(made):
    out, _, _ = made
    for setting in figure2.SETTINGS:
        with open(out / setting.name / "seed0" / "stages.csv") as f:
            rows = {r["stage"]: r for r in csv.DictReader(f)}
        for stage in figure2.STAGES:
            st = surface(out, setting, stage)
            rmse = np.sqrt(np.mean((st["critic_q"] - st["true_q"]) ** 2))
            assert float(rows[stage]["q_rmse"]) == pytest.approx(rmse, rel=1e-12)


def test_report_redraws_from_the_files_alone(made, tmp_path):
    out, _, _ = made
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    for name in ("figure2.png", "figure2_curves.png", "summary.md", "summary.csv"):
        (copy / name).unlink()
    done = figure2_cli("--report", "--out", copy, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for name in ("figure2.png", "figure2_curves.png"):
        assert (copy / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (copy / "summary.md").read_text() == (out / "summary.md").read_text()
    assert (copy / "summary.csv").read_text() == (out / "summary.csv").read_text()
    assert "| return_mean at the end |" in done.stdout


def test_a_finished_figure_is_skipped_and_a_missing_run_is_trained_again(made, tmp_path):
    out, config, _ = made
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    gone = copy / "w1-0_w2-1" / "seed1"
    shutil.rmtree(gone)
    args = ("--out", copy, "--seeds", SEEDS, "--steps", STEPS, "--stages",
            ",".join(map(str, STAGES)), "--config", config)
    done = figure2_cli(*args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("finished already") == len(figure2.SETTINGS) * SEEDS - 1
    # The same seed and settings: the same numbers as the first time (wall_s aside).
    for name in ("metrics.csv", "diagnostics.csv", "stages.csv"):
        fresh = np.genfromtxt(gone / name, delimiter=",", skip_header=1)
        first = np.genfromtxt(out / "w1-0_w2-1" / "seed1" / name, delimiter=",", skip_header=1)
        if name == "metrics.csv":
            fresh, first = np.delete(fresh, 1, axis=1), np.delete(first, 1, axis=1)
        np.testing.assert_array_equal(fresh, first, err_msg=name)
    other = figure2_cli("--out", copy, "--seeds", SEEDS, "--steps", 3200, "--stages",
                        ",".join(map(str, STAGES)), "--config", config)
    assert other.returncode == 1
    assert "holds a figure made with other settings (steps: 2400 there, 3200 now" in other.stderr


@pytest.mark.parametrize("args, code, message", [
    (["--seeds", "0"], 2, "--seeds: must be >= 1, got 0"),
    (["--steps", "many"], 2, "--steps: not an integer: 'many'"),
    (["--stages", "800"], 2, "need two timesteps EARLY,MID"),
    (["--stages", "800,x"], 2, "not two integers EARLY,MID"),
    (["--stages", "900,1600"], 2, "must be multiples of 800"),
    (["--stages", "800,4000", "--steps", "4000"], 2, "MID < steps (4000)"),
    (["--report", "--seeds", "2"], 2, "--report redraws from the files in --out; --seeds"),
    (["--frobnicate"], 2, "unrecognized arguments: --frobnicate"),
    (["--config", "missing.toml"], 1, "cannot read config file missing.toml"),
    (["--config", "bad.toml"], 1, "unknown config key 'hiden'"),
    (["--report"], 1, "no figure in"),
])
def test_bad_arguments_give_one_line_errors(tmp_path, args, code, message):
    (tmp_path / "bad.toml").write_text("hiden = [8]\n")
    done = figure2_cli(*args, "--out", tmp_path / "out", cwd=tmp_path)
    assert done.returncode == code
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert done.stderr.startswith("python -m fastd3pg.figure2: error: ")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
