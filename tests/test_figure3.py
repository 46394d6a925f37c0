"""Figure 3: bounce counting on throws whose count follows from the physics, the batched
episodes against the single-episode reference, the figure and its files from a synthetic results
folder with the fractions recomputed independently, the sweep's report, and one-line errors."""

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastd3pg
from fastd3pg import figure3, sweep
from fastd3pg.nn import MLP
from fastd3pg.physics import make
from fastd3pg.policy import load_policy, make_policy_arrays
from fastd3pg.render.draw_die import rollout

REPO = Path(fastd3pg.__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n"
G, H = 9.81, 0.5  # RollingDie's default gravity and half-size
THROWS = 32  # sampled throws in the synthetic figure: 8 hard
STEPS = 1600  # the synthetic runs' budget
FINALS = {"d3pg": [0.10, 0.30], "ddpg": [0.20, -0.10]}  # final return_history per seed


def drop(y0, th=0.0, vx=0.0, w=0.0):
    return np.array([0.0, y0, th, vx, 0.0, w])


# -- bounces on throws whose count follows from the physics ------------------------------------
@pytest.mark.parametrize("y0", [1.5, 2.5, 3.5])
def test_a_face_down_drop_bounces_while_its_rebounds_clear_the_threshold(y0):
    """Dropped flat, the die hits with both corners at once and rebounds straight up with
    restitution e: the k-th rebound's corners rise e^(2k) (y0 - h)."""
    env = make("RollingDie")  # e = 0.5
    e = 0.5
    rises = [e ** (2 * k) * (y0 - H) for k in range(1, 8)]
    # Away from the threshold by more than the step-boundary sampling can miss (~1 mm).
    assert all(abs(r - figure3.MIN_CLEARANCE) > 0.01 for r in rises)
    expected = 1 + sum(r >= figure3.MIN_CLEARANCE for r in rises)
    assert figure3.bounces(env, None, drop(y0)) == expected


def test_an_elastic_frictionless_die_bounces_once_per_period():
    """e = 1, μ = 0, dropped flat: the same 1 m rebound every 2 t1, t1 = sqrt(2 (y0 - h) / g)."""
    env = make("RollingDie", restitution=1.0, friction=0.0)
    t1 = math.sqrt(2 * (1.5 - H) / G)
    duration = env.horizon * env.dt
    expected = sum(1 for k in range(10) if t1 + 2 * k * t1 < duration)
    assert expected == 3
    assert figure3.bounces(env, None, drop(1.5)) == expected


@pytest.mark.parametrize("start, torque", [
    (drop(1.5, th=0.3), 0.0),                   # lands on a corner and tips onto a face
    (drop(1.5, th=0.6, vx=1.0, w=3.0), 1.0),    # spun, with full torque: rolls over a corner
    (drop(1.5, th=0.785), -1.0),
])
def test_rolling_and_pivoting_contact_of_a_plastic_die_is_one_bounce(start, torque):
    """e = 0: the die never leaves the ground once it touches, however many contact events its
    pivoting, rolling and lying log (one per step)."""
    env = make("RollingDie", restitution=0.0)
    states, events = rollout(env, policy=lambda s: [torque], start_state=start)
    assert len(events) > 100
    assert figure3.bounces(env, lambda s: [torque], start) == 1
    assert figure3.touchdowns(env, states, events) == [0]


def test_a_die_lying_still_is_one_contact():
    env = make("RollingDie")
    states, events = rollout(env, start_state=[0.0, H, 0.0, 0.0, 0.0, 0.0])
    assert len(events) == env.horizon and {e[1] for e in events} == {"flat"}
    assert figure3.bounces(env, None, states[0]) == 1


def test_the_rule_counts_a_step_with_contact_after_a_boundary_clear_of_the_ground():
    """Hand-made episode: the lowest corner's height at each boundary and the steps with
    events; several events in one step are one contact."""
    env = make("RollingDie")
    heights = [0.8, 0.5, 0.0, 0.0, 0.05, 0.0, 0.3, 0.12, 0.0, 0.0, 0.0]
    states = np.zeros((len(heights), 6))
    states[:, 1] = np.array(heights) + H  # θ = 0: the lowest corner is h below the centre
    event = ("bounce-stick", 2, 0.01, 0.0, 0.0, 0.0)
    steps = [1, 1, 2, 4, 7, 7, 8, 9]
    events = [(k, *event) for k in steps]
    # step 1: first contact; 2: no flight since; 4: cleared 5 cm only; 7: cleared 0.3 m;
    # 8, 9: no flight since 7.
    assert figure3.touchdowns(env, states, events, min_clearance=0.1) == [0, 4]
    assert figure3.touchdowns(env, states, events, min_clearance=0.04) == [0, 3, 4]
    logs = np.zeros((len(heights) - 1, 1, figure3.LOG_SIZE))
    for k in steps:
        logs[k, 0, 0] += 1
    assert figure3.count_bounces(env, states[:, None], logs, 0.1).tolist() == [2]
    assert figure3.count_bounces(env, states[:, None], logs, 0.04).tolist() == [3]


@pytest.mark.parametrize("kind", ["zero", "constant", "feedback"])
def test_batched_episodes_are_the_single_episode_reference(kind):
    """rollout_batch's states and events are those of env.transition and env.events step by
    step (fastd3pg.render.draw_die.rollout), and its counts those of touchdowns."""
    env = make("RollingDie")
    batch, single = {
        "zero": (None, None),
        "constant": (lambda S: np.full((len(S), 1), -0.6), lambda s: [-0.6]),
        "feedback": (lambda S: -np.clip(S[:, 5:6], -1, 1), lambda s: [-np.clip(s[5], -1, 1)]),
    }[kind]
    starts = figure3.throws(env, 24)
    states, logs = figure3.rollout_batch(env, batch, starts)
    counts = figure3.count_bounces(env, states, logs)
    for b, start in enumerate(starts):
        ref_states, ref_events = rollout(env, policy=single, start_state=start)
        np.testing.assert_array_equal(states[:, b], ref_states)
        assert figure3.episode_events(logs[:, b]) == ref_events
        assert counts[b] == len(figure3.touchdowns(env, ref_states, ref_events))
    assert counts.min() >= 1 and counts.max() > 1


def test_throws_are_one_seeded_stream_and_leave_the_env_alone():
    env = make("RollingDie")
    state, _ = env.reset(seed=7)
    starts = figure3.throws(env, 5)
    other = make("RollingDie")
    expected = [other.reset(seed=figure3.THROW_SEED)[0]] + [other.reset()[0] for _ in range(4)]
    np.testing.assert_array_equal(starts, expected)
    np.testing.assert_array_equal(env.state, state)  # its own episode is untouched


# -- a synthetic results folder ----------------------------------------------------------------
def write_run(folder, seed, final, steps=STEPS, last=STEPS, env_params=None, policy=True):
    """A run folder: a small random tanh actor, ``metrics.csv`` ending at ``last`` with the
    final return_history ``final``, ``config.json`` with the budget ``steps``."""
    folder.mkdir(parents=True, exist_ok=True)
    if policy:
        net = MLP([6, 8, 1], "tanh", "tanh")
        params = net.init(seed=seed) * 4.0  # large enough to act, not only to twitch
        np.savez(folder / "policy.npz", **make_policy_arrays("RollingDie", net, params))
    rows = [f"{t},1.0,-200.0,0.0,{final if t == last else 0.0!r}\n"
            for t in range(800, last + 1, 800)]
    (folder / "metrics.csv").write_text(
        "timesteps,wall_s,return_raw,return_mean,return_history\n" + "".join(rows))
    env = make("RollingDie")
    params = env_params or dict(zip(env.param_names, env.params.tolist()))
    (folder / "config.json").write_text(json.dumps(
        {"env": "RollingDie", "steps": steps, "env_params": params}))


def write_results(root):
    for method, finals in FINALS.items():
        for seed, final in enumerate(finals):
            write_run(root / "RollingDie" / method / f"seed{seed}", 10 * seed + len(method),
                      final)
    write_run(root / "RollingDie" / "d3pg" / "seed2", 99, 0.9, last=800)  # unfinished
    return root


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = write_results(tmp_path_factory.mktemp("figure3") / "results")
    assert figure3.main([str(root), "--throws", str(THROWS)]) == 0
    return root


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def clearance(states):
    """The lowest corner's height, from the four corners themselves."""
    y, th = states[..., 1], states[..., 2]
    corners = [y + H * (np.sin(th) * cx + np.cos(th) * cy)
               for cx, cy in ((1, 1), (-1, 1), (-1, -1), (1, -1))]
    return np.min(corners, axis=0)


def independent_counts(env, policy, starts, min_clearance):
    """Bounces per throw through env.transition_batch and env.events (not figure3's kernel),
    the rule written out again: a step with events counts if some boundary since the previous
    step with events (or since the start) cleared the ground by ``min_clearance``."""
    S = np.array(starts)
    counts = np.zeros(len(S), dtype=int)
    flown = np.ones(len(S), dtype=bool)
    for _ in range(env.horizon):
        flown |= clearance(S) >= min_clearance
        A = np.zeros((len(S), 1)) if policy is None else policy(S)
        contact = np.array([len(env.events(s, a)) > 0 for s, a in zip(S, A)])
        counts += contact & flown
        flown &= ~contact
        S = env.transition_batch(S, A).next_state
    return counts, S


def test_the_figure_and_its_files_come_from_the_finished_runs(made):
    root = made
    assert (root / "figure3.png").read_bytes()[:8] == PNG
    assert (root / "figure3.png").stat().st_size > 20_000
    rows = read_csv(root / "figure3.csv")
    assert list(rows[0]) == list(figure3.CSV_COLUMNS)
    assert [(r["method"], r["seed"]) for r in rows] == [("d3pg", "0"), ("d3pg", "1"),
                                                        ("ddpg", "0"), ("ddpg", "1")]
    assert [r["run"] for r in rows] == ["RollingDie/d3pg/seed0", "RollingDie/d3pg/seed1",
                                        "RollingDie/ddpg/seed0", "RollingDie/ddpg/seed1"]
    record = json.loads((root / "figure3.json").read_text())
    assert record["version"] == fastd3pg.__version__
    assert record["best"]["d3pg"]["seed"] == 1 and record["best"]["ddpg"]["seed"] == 0
    assert record["best"]["d3pg"]["return_history"] == 0.30
    assert record["throws"] == THROWS and len(record["hard_throws"]) == THROWS // 4
    assert record["drawn"]["throw"] == record["hard_throws"][0]
    assert record["min_clearance_m"] == figure3.MIN_CLEARANCE


def test_the_fractions_recomputed_independently(made):
    root = made
    rows = read_csv(root / "figure3.csv")
    record = json.loads((root / "figure3.json").read_text())
    env = make("RollingDie")
    stream = make("RollingDie")
    starts = np.array([stream.reset(seed=figure3.THROW_SEED)[0]]
                      + [stream.reset()[0] for _ in range(THROWS - 1)])
    # Hard throws: the zero-torque die's final distance from (target_x, h) = (0, 0.5).
    counts, end = independent_counts(env, None, starts, figure3.MIN_CLEARANCE)
    distance = np.hypot(end[:, 0], end[:, 1] - H)
    hard = sorted(range(THROWS), key=lambda i: -distance[i])[:THROWS // 4]
    assert record["hard_throws"] == hard

    def shares(counts, end):
        return {
            "bounces_gt1_hard": np.mean(counts[hard] > 1), "bounces_gt1_all": np.mean(counts > 1),
            "mean_bounces_hard": np.mean(counts[hard]), "mean_bounces_all": np.mean(counts),
            "final_distance_hard": np.mean(np.hypot(end[hard, 0], end[hard, 1] - H)),
            "final_distance_all": np.mean(np.hypot(end[:, 0], end[:, 1] - H)),
        }

    for key, value in shares(counts, end).items():  # the zero-torque reference
        assert record["zero_torque"][key] == pytest.approx(value, rel=1e-12, abs=0), key
    per_method = {}
    for row in rows:
        policy = load_policy(root / row["run"])
        expected = shares(*independent_counts(env, policy, starts, figure3.MIN_CLEARANCE))
        for key, value in expected.items():
            # Shares of throws are exact; distances summed in another order than figure3's.
            assert float(row[key]) == pytest.approx(value, rel=1e-12, abs=0), (row["run"], key)
        per_method.setdefault(row["method"], []).append(expected)
    for method, runs in per_method.items():
        for key in ("bounces_gt1_hard", "bounces_gt1_all", "mean_bounces_hard"):
            mean = np.mean([r[key] for r in runs])
            assert record["means"][method][key] == pytest.approx(mean, rel=1e-12, abs=1e-15)
        assert record["means"][method]["runs"] == 2
    # The synthetic actors are not all alike: the check sees more than one value.
    assert len({r["mean_bounces_all"] for r in rows}) > 1


def test_the_command_names_skipped_runs_and_redraws_the_same_numbers(made, tmp_path, capsys):
    root = made
    before = (root / "figure3.csv").read_text()
    out = tmp_path / "elsewhere"
    assert figure3.main([str(root), "--throws", str(THROWS), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "skipped 1 unfinished run(s): RollingDie/d3pg/seed2" in text
    assert "d3pg" in text.splitlines()[1] and "ddpg" in text.splitlines()[2]
    rows = read_csv(out / "figure3.csv")
    assert rows[0]["run"] == str((root / "RollingDie/d3pg/seed0").resolve())  # outside --out
    strip = [{k: v for k, v in r.items() if k != "run"} for r in rows]
    assert strip == [{k: v for k, v in r.items() if k != "run"}
                     for r in csv.DictReader(before.splitlines())]
    # Another hard throw draws another picture from the same numbers.
    assert figure3.main([str(root), "--throws", str(THROWS), "--out", str(out),
                         "--throw", "3"]) == 0
    assert json.loads((out / "figure3.json").read_text())["drawn"]["hard_throw"] == 3
    assert read_csv(out / "figure3.csv") == rows


def test_the_sweeps_report_draws_figure3_when_both_methods_have_finished_runs(tmp_path):
    root = write_results(tmp_path / "results")
    exp = {"name": "die", "envs": ["RollingDie"], "algos": ["ddpg", "d3pg"], "seeds": [0, 1, 2],
           "steps": {"RollingDie": STEPS}, "only": {}, "methods": {}, "config": None}
    sweep.write_report(exp, root, resamples=200)
    rows = read_csv(root / "figure3.csv")
    assert [(r["method"], r["seed"]) for r in rows] == [("d3pg", "0"), ("d3pg", "1"),
                                                        ("ddpg", "0"), ("ddpg", "1")]
    assert len(json.loads((root / "figure3.json").read_text())["hard_throws"]) == 64
    assert (root / "figure3.png").read_bytes()[:8] == PNG

    alone = tmp_path / "alone"
    write_run(alone / "RollingDie" / "d3pg" / "seed0", 1, 0.5)
    write_run(alone / "Pendulum" / "ddpg" / "seed0", 2, 0.5)
    exp = dict(exp, envs=["RollingDie", "Pendulum"], seeds=[0],
               steps={"RollingDie": STEPS, "Pendulum": STEPS})
    sweep.write_report(exp, alone, resamples=200)
    assert (alone / "table1.csv").is_file() and not (alone / "figure3.png").exists()

    (root / "RollingDie" / "ddpg" / "seed1" / "policy.npz").write_bytes(b"not an npz")
    with pytest.raises(sweep.SweepError, match=r"^figure3: .*seed1.* is not a fastd3pg policy "
                                               r"file") as err:
        sweep.write_report(exp | {"envs": ["RollingDie"], "seeds": [0, 1]}, root, resamples=200)
    assert "\n" not in str(err.value)


# -- bad input ---------------------------------------------------------------------------------
def error_of(capsys, *argv):
    code = figure3.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return code, err.strip()


def test_bad_folders_give_one_line_errors(tmp_path, capsys):
    prog = "python -m fastd3pg.figure3: error: "
    assert error_of(capsys, tmp_path / "missing") == (1, f"{prog}no results folder "
                                                         f"{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    code, err = error_of(capsys, tmp_path / "empty")
    assert code == 1 and err.startswith(prog)
    assert "no finished RollingDie runs of d3pg and ddpg" in err
    write_run(tmp_path / "one" / "RollingDie" / "d3pg" / "seed0", 0, 0.1)
    write_run(tmp_path / "one" / "RollingDie" / "ddpg" / "seed0", 0, 0.1, last=800)
    code, err = error_of(capsys, tmp_path / "one")
    assert code == 1 and "no finished RollingDie runs of ddpg " in err
    write_run(tmp_path / "one" / "RollingDie" / "ddpg" / "seed0", 0, 0.1)
    (tmp_path / "one" / "RollingDie" / "ddpg" / "seed0" / "policy.npz").write_bytes(b"junk")
    code, err = error_of(capsys, tmp_path / "one")
    assert code == 1 and "ddpg/seed0" in err and "is not a fastd3pg policy file" in err


def test_runs_of_another_task_or_physics_give_one_line_errors(tmp_path, capsys):
    write_run(tmp_path / "r" / "RollingDie" / "d3pg" / "seed0", 0, 0.1)
    write_run(tmp_path / "r" / "RollingDie" / "ddpg" / "seed0", 0, 0.1, env_params={
        "restitution": 0.2})
    code, err = error_of(capsys, tmp_path / "r", "--throws", 8)
    assert code == 1 and "other env_params" in err
    net = MLP([3, 4, 1], "tanh", "tanh")
    np.savez(tmp_path / "r" / "RollingDie" / "ddpg" / "seed0" / "policy.npz",
             **make_policy_arrays("Pendulum", net, net.init(seed=0)))
    write_run(tmp_path / "r" / "RollingDie" / "ddpg" / "seed0", 0, 0.1, policy=False)
    code, err = error_of(capsys, tmp_path / "r", "--throws", 8)
    assert code == 1 and "holds an actor for Pendulum (3 -> 1), not RollingDie" in err


def test_bad_arguments_give_one_line_errors(made, capsys):
    with pytest.raises(SystemExit) as stop:
        figure3.main([str(made), "--min-clearance", "0.001"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--min-clearance" in err and "above 0.002" in err
    code, err = error_of(capsys, made, "--throws", THROWS, "--throw", THROWS // 4)
    assert code == 1 and "throw must be an index into the 8 hard throws, 0..7, got 8" in err


def test_bad_calls_give_one_line_value_errors():
    env = make("RollingDie")
    for call, message in [
        (lambda: figure3.bounces(make("Pendulum"), None, np.zeros(3)), "must be a RollingDie"),
        (lambda: figure3.bounces(env, None, np.zeros(5)), r"shape \(6,\)"),
        (lambda: figure3.bounces(env, None, drop(1.5), min_clearance=0.0), "min_clearance"),
        (lambda: figure3.bounces(env, None, drop(1.5), min_clearance=math.nan), "min_clearance"),
        (lambda: figure3.bounces_batch(env, lambda S: np.zeros((len(S), 2)), [drop(1.5)]),
         r"actions \(B, 1\)"),
        (lambda: figure3.bounces_batch(env, lambda S: np.full((len(S), 1), np.nan),
                                       [drop(1.5)]), "NaN"),
        (lambda: figure3.rollout_batch(env, None, np.zeros((0, 6))), "B >= 1"),
        (lambda: figure3.rollout_batch(env, None, [[0, np.inf, 0, 0, 0, 0]]), "NaN or inf"),
        (lambda: figure3.hard_throws(env, [drop(1.5)], fraction=0.0), "fraction"),
    ]:
        with pytest.raises(ValueError, match=message) as err:
            call()
        assert "\n" not in str(err.value)


def test_the_module_runs_as_a_command(tmp_path):
    result = subprocess.run([sys.executable, "-m", "fastd3pg.figure3", str(tmp_path / "none")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert result.returncode == 1
    assert result.stderr == f"python -m fastd3pg.figure3: error: no results folder " \
                            f"{tmp_path / 'none'}\n"
