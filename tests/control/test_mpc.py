"""Receding-horizon iLQR through the training driver: the paper's predicted cumulative return at
every returned action, a run of one episode, its convergence stop, and resume."""

import subprocess
import sys

import numpy as np
import pytest

from fastd3pg import sweep, train
from fastd3pg.control import metrics
from fastd3pg.control.d3pg import D3PGAgent, D3PGConfig
from fastd3pg.control.mpc import MPCAgent, MPCConfig
from fastd3pg.physics import make

# Short plans and few iterations keep these runs to a second or two; the metric's definition
# does not depend on them.
QUICK = dict(iters_per_step=2, first_iters=10)


def test_starts_from_d3pgs_initial_actor_and_first_state():
    env = make("Pendulum")
    mpc = MPCAgent(env, MPCConfig(horizon=5), seed=3)
    d3 = D3PGAgent(env, D3PGConfig(), seed=3, total_steps=10)
    np.testing.assert_array_equal(mpc.theta, d3.nets.theta)
    np.testing.assert_array_equal(mpc.state, d3.stats.state)
    # The first plan is the initial actor's rollout from that state.
    s = mpc.state.copy()
    for t in range(5):
        a = mpc._actor_action(s)
        np.testing.assert_array_equal(mpc.plan[t], a)
        s = env.transition(s, a).next_state


def test_every_action_returns_its_prediction_and_actions_stay_in_the_box():
    env = make("Pendulum")
    agent = MPCAgent(env, MPCConfig(horizon=20, **QUICK), seed=0)
    for _ in range(30):
        assert agent.train(1) == 1
        assert np.all(np.abs(agent.plan) <= 1.0)
        (prediction,) = agent.returns_per_action()
        assert np.isfinite(prediction) and prediction == agent.evaluate()
    assert agent.timesteps == 30 and not agent.done()


def _step(env, s, a):
    """One step of the task's own Python shell (``Env.step`` from the state ``s``)."""
    env.set_state(s)
    s_next, r, terminated, _, _ = env.step(a)
    return s_next, r, terminated


def _initial_rollout(env, agent, s0, length):
    """The initial actor's actions from ``s0`` in NumPy (its last action repeated after a
    termination)."""
    actions, s = [], s0.copy()
    while len(actions) < length:
        a = agent._actor_action(s)
        actions.append(a)
        s, _, terminated = _step(env, s, a)
        if terminated:
            break
    actions += [actions[-1]] * (length - len(actions))
    return np.array(actions)


def _reference_prediction(env, s, t, received, plan, rollout):
    """The paper's predicted cumulative return at step ``t``, stepping the env in Python: the
    rewards received, the plan's predicted rewards within the episode (0 after a predicted
    termination), then the initial actor's actions beyond the plan's end, open loop from the
    plan's final state up to the horizon or a predicted termination."""
    H, T = len(plan), env.horizon
    R, x, terminated = np.zeros(H), s.copy(), False
    for k in range(H):
        x, R[k], terminated = _step(env, x, plan[k])
        if terminated:
            break
    prediction = received + R[:min(H, T - t)].sum()
    if not terminated and t + H < T:
        remaining = []
        for u in range(t + H, T):
            x, r, stop = _step(env, x, rollout[u])
            remaining.append(r)
            if stop:
                break
        prediction = prediction + np.array(remaining).sum()
    return prediction


@pytest.mark.parametrize("name, horizon, steps", [
    ("Pendulum", 15, 40),  # never terminates: the remaining actions run to the horizon
    ("MassPoint", 10, 200),  # reaches its goal: predicted terminations, then the real one
    ("CartPoleSwingUp", 20, 15),  # a 1000-step episode: a long remaining part
])
def test_the_prediction_is_received_plus_plan_plus_remaining_initial_actions(name, horizon,
                                                                             steps):
    env = make(name)
    env.reset(seed=0)
    agent = MPCAgent(env, MPCConfig(horizon=horizon, converge_tol=0.0, **QUICK), seed=0)
    rollout = _initial_rollout(env, agent, agent.state, env.horizon + horizon)
    # The compiled loop's initial rollout is the actor's, in NumPy, exactly.
    np.testing.assert_array_equal(agent.rollout, rollout)
    s, received, tails = agent.state.copy(), 0.0, 0
    for t in range(steps):
        assert agent.train(1) == 1
        plan = agent.work.U.copy()  # the plan whose first action was applied at step t
        expected = _reference_prediction(env, s, t, received, plan, rollout)
        tails += t + horizon < env.horizon
        # compiled sum against the NumPy reference: equal up to summation rounding on any processor
        assert agent.returns_per_action()[0] == pytest.approx(expected, rel=1e-12, abs=1e-12), t
        s, r, terminated = _step(env, s, plan[0])
        received += r
        np.testing.assert_array_equal(agent.state, s)
        assert agent.episode_return[0] == received
        if terminated:
            assert agent.done() and "terminated" in agent.stop_reason()
            assert agent.evaluate() == received  # the last prediction is the realised return
            break
    assert tails > 0
    if name == "MassPoint":
        assert terminated, "MassPoint's MPC should reach the goal within its episode"


def test_a_run_writes_a_row_per_action_and_ends_with_its_episode(tmp_path):
    kw = dict(horizon=10, converge_tol=0.0, **QUICK)
    for name, why in (("MassPoint", "terminated"), ("Pendulum", "horizon")):
        env = make(name)
        result = train.run(env=name, algo="mpc", seed=0, steps=5000, out=tmp_path / name, **kw)
        agent = MPCAgent(env, MPCConfig(**kw), seed=0)
        taken = agent.train(5000)
        assert agent.done() and why in agent.stop_reason() and why in result["stop_reason"]
        assert taken == env.horizon if why == "horizon" else taken < env.horizon
        rows = sweep.read_metrics(tmp_path / name / "metrics.csv")
        assert len(rows) == taken
        np.testing.assert_array_equal(rows[:, 0], np.arange(1, taken + 1))  # env steps so far
        raw = agent.predictions[:taken]
        np.testing.assert_array_equal(result["return_raw"], raw)
        mean = metrics.normalizer(env)(raw)
        np.testing.assert_array_equal(result["return_mean"], mean)
        history = [np.mean(mean[max(0, k - metrics.HISTORY + 1):k + 1]) for k in range(taken)]
        np.testing.assert_array_equal(result["return_history"], history)
        assert np.all(np.diff(rows[:, 1]) >= 0)  # wall times rise through the period
        assert raw[-1] == agent.episode_return[0]  # at the last action nothing is left to predict


def _cli(out, config, steps):
    """``python -m fastd3pg.train`` as a sweep runs it: its output into ``out/train.log``."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train.log", "w") as log:
        code = subprocess.run([sys.executable, "-m", "fastd3pg.train", "--env", "Pendulum",
                               "--algo", "mpc", "--steps", str(steps), "--config", str(config),
                               "--out", str(out)], stdout=log, stderr=subprocess.STDOUT,
                              timeout=300).returncode
    return code, (out / "train.log").read_text()


def test_convergence_stops_the_run_and_the_sweep_counts_it_finished(tmp_path):
    H = 10
    env = make("Pendulum")
    whole = MPCAgent(env, MPCConfig(horizon=H, converge_tol=0.0, **QUICK), seed=0)
    whole.train(env.horizon)
    raw = whole.predictions
    _, span = metrics.scale(env)
    # A tolerance that the predictions of H + 1 consecutive actions first meet mid-episode.
    tol = float(0.5 * np.ptp(raw[:H + 1]) / span)
    assert tol > 0
    rested = [t for t in range(H, env.horizon) if np.ptp(raw[t - H:t + 1]) <= tol * span]
    assert rested and rested[0] < env.horizon - 1, "pick a tolerance the episode meets early"
    stop = rested[0] + 1  # env steps when it is met: the action at rested[0] is taken
    config = tmp_path / "mpc.toml"
    config.write_text(f"horizon = {H}\niters_per_step = 2\nfirst_iters = 10\n"
                      f"converge_tol = {tol!r}\n")
    out = tmp_path / "run"
    code, log = _cli(out, config, steps=5000)
    assert code == 0, log
    assert f"stopped early at timestep {stop}: mpc converged" in log
    rows = sweep.read_metrics(out / "metrics.csv")
    np.testing.assert_array_equal(rows[:, 2], raw[:stop])  # the same predictions up to there
    assert sweep.finished(out, 5000)
    # At the budget instead (before convergence): no early stop, finished by its budget.
    code, log = _cli(tmp_path / "budget", config, steps=stop - 1)
    assert code == 0 and "stopped early" not in log
    assert sweep.finished(tmp_path / "budget", stop - 1)
    assert not sweep.finished(tmp_path / "budget", 5000)


def test_resume_mid_episode_gives_the_numbers_of_an_uninterrupted_run(tmp_path):
    kw = dict(env="Pendulum", algo="mpc", seed=1, horizon=15, **QUICK)
    full = train.run(steps=5000, out=tmp_path / "full", **kw)
    length = len(full["timesteps"])
    assert full["return_mean"][-1] > 0.0  # plans better than a random controller
    part = tmp_path / "part"
    train.run(steps=length // 3, out=part, **kw)
    train.run(steps=2 * length // 3, out=part, resume=True, **kw)
    resumed = train.run(steps=5000, out=part, resume=True, **kw)
    # A run that has ended stays ended: resumed with a larger budget, it adds nothing.
    again = train.run(steps=9000, out=part, resume=True, **kw)
    for key in ("timesteps", "return_raw", "return_mean", "return_history"):
        np.testing.assert_array_equal(full[key], resumed[key])
        np.testing.assert_array_equal(full[key], again[key])
    assert again["stop_reason"] == full["stop_reason"]


def test_a_bad_convergence_tolerance_is_refused():
    with pytest.raises(ValueError, match="converge_tol must be >= 0"):
        MPCConfig(converge_tol=-1.0).validate()


def test_acrobot_is_refused():
    with pytest.raises(ValueError, match="differentiable reward"):
        MPCAgent(make("Acrobot"), MPCConfig(), seed=0)


def test_compiled_sum_follows_numpys_order():
    # The compiled loop sums predicted rewards with numpy_sum so that MPC's numbers are those
    # of the Python loop it replaced: NumPy's pairwise order, reproduced exactly (no fast-math
    # on either side), so the comparison is exact.
    from fastd3pg.control.mpc import numpy_sum

    rng = np.random.default_rng(0)
    for n in [1, 7, 8, 9, 50, 127, 128, 129, 300, 1001]:
        a = rng.standard_normal(n + 3) * 10.0 ** rng.uniform(-3, 3, n + 3)
        assert numpy_sum(a, 2, 2 + n) == a[2:2 + n].sum()
