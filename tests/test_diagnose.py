"""``--diagnose``: the critic's raw input gradients and the TD target's gradients against
central differences, and the diagnosed run (one row per evaluation, the same metrics, resume,
refusals, the command-line flag)."""

import csv

import numpy as np
import pytest

from fastd3pg import diagnose, train
from fastd3pg.control import agent_class
from fastd3pg.control.core import STD_EPS
from fastd3pg.nn.mlp import numpy_forward
from fastd3pg.physics import make
from fastd3pg.testing import central_difference, relative_error

# Central differences of a float64 NumPy network at eps = 1e-6 are good to ~1e-9 relative; the
# points lie away from the observation clip (checked: a point within eps of it is moved).
EPS, TOL = 1e-6, 1e-6


def _snapshot(env, seed, algo="d3pg"):
    """The agent's snapshot with random, trained-looking parameters and normalization: a
    non-trivial μ_s, σ_s, μ_Q, σ_Q, biases and layer-norm parameters away from 0 and 1."""
    cls = agent_class(algo)
    agent = cls(env, cls.config_class(hidden=(16, 16)), seed, total_steps=100)
    snap = agent.critic_snapshot()
    rng = np.random.default_rng(seed)
    n = env.state_dim

    def params(net, s):
        p = net.init(seed=s, out_scale=1.0)
        for block, _, off, shape in net.layout():
            if block != "W":
                p[off:off + shape[0]] += 0.3 * rng.standard_normal(shape[0])
        return p

    snap.update(phi=params(snap["critic"], seed + 1), theta_targ=params(snap["actor"], seed + 2),
                phi_targ=[params(snap["critic"], seed + 3)], obs_mean=rng.normal(0, 0.3, n),
                obs_std=rng.uniform(0.3, 1.5, n), obs_clip=2.0, mu_q=-3.0, sigma_q=7.5)
    return snap


def _raw_critic(snap, phi, s, a):
    """The critic's raw output σ_Q Q̃(clip((s - μ)/(σ + ε)), a) + μ_Q, written out."""
    x = np.clip((s - snap["obs_mean"]) / (snap["obs_std"] + STD_EPS), -snap["obs_clip"],
                snap["obs_clip"])
    net = snap["critic"]
    f = numpy_forward(net.sizes, net.activation, net.output_activation, net.layer_norm, phi,
                      np.concatenate([x, a])[None])
    return snap["sigma_q"] * f[0, 0] + snap["mu_q"]


def _points(env, snap, seed, count=6):
    rng = np.random.default_rng(seed)
    S = snap["obs_mean"] + snap["obs_std"] * rng.uniform(-2.5, 2.5, (count, env.state_dim))
    u = (S - snap["obs_mean"]) / (snap["obs_std"] + STD_EPS)
    near = np.abs(np.abs(u) - snap["obs_clip"]) < 1e-3  # within reach of the clip: move it
    S[near] += 0.01 * snap["obs_std"][np.nonzero(near)[1]]
    return S, rng.uniform(-0.9, 0.9, (count, env.action_dim))


@pytest.mark.parametrize("name", ["Pendulum", "CartPole"])
def test_critic_raw_gradients_match_central_differences(name):
    env = make(name)
    snap = _snapshot(env, 3)
    S, A = _points(env, snap, 4)
    q, dq_ds, dq_da = diagnose.critic_value_and_grads(snap, S, A)
    clipped = 0
    for b in range(len(S)):
        assert q[b] == pytest.approx(_raw_critic(snap, snap["phi"], S[b], A[b]), rel=1e-12)
        fs = central_difference(lambda s: _raw_critic(snap, snap["phi"], s, A[b]), S[b], EPS)
        fa = central_difference(lambda a: _raw_critic(snap, snap["phi"], S[b], a), A[b], EPS)
        assert relative_error(dq_ds[b], fs) < TOL
        assert relative_error(dq_da[b], fa) < TOL
        clipped += int(np.sum(dq_ds[b] == 0.0))
    assert clipped > 0  # some components lie beyond the clip (zero gradient, checked above)


def _td_target(env, snap, s, a):
    """y = r + γ (1 - done) Q'(s', π'(s')) in raw coordinates through env.transition."""
    tr = env.transition(s, a)
    net = snap["actor"]
    x2 = np.clip((tr.next_state - snap["obs_mean"]) / (snap["obs_std"] + STD_EPS),
                 -snap["obs_clip"], snap["obs_clip"])
    a2 = numpy_forward(net.sizes, net.activation, net.output_activation, net.layer_norm,
                       snap["theta_targ"], x2[None])[0]
    q2 = min(_raw_critic(snap, phi, tr.next_state, a2) for phi in snap["phi_targ"])
    return tr.reward + snap["gamma"] * (1.0 - float(tr.terminated)) * q2


@pytest.mark.parametrize("name,algo", [("Pendulum", "d3pg"), ("MassPoint", "d3pg"),
                                       ("Pendulum", "d3pg-td3")])
def test_td_target_gradients_match_central_differences(name, algo):
    env = make(name)
    snap = _snapshot(env, 5, "d3pg")
    if algo == "d3pg-td3":  # two target critics: the target is their minimum
        snap["phi_targ"].append(snap["critic"].init(seed=11, out_scale=1.0))
    S, A = _points(env, snap, 6)
    tr = env.transition_batch(S, A)
    assert not tr.terminated.any()
    y, g_s, g_a = diagnose.td_target_and_grads(snap, tr.reward, tr.next_state, tr.terminated,
                                               tr.J_s, tr.J_a, tr.dr_ds, tr.dr_da)
    for b in range(len(S)):
        assert y[b] == pytest.approx(_td_target(env, snap, S[b], A[b]), rel=1e-12)
        fs = central_difference(lambda s: _td_target(env, snap, s, A[b]), S[b], EPS)
        fa = central_difference(lambda a: _td_target(env, snap, S[b], a), A[b], EPS)
        # 1e-5: the simulator's step adds its own round-off to the difference quotient.
        assert relative_error(g_s[b], fs) < 1e-5
        assert relative_error(g_a[b], fa) < 1e-5


def _read(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def _returns(path):
    rows = _read(path)
    keep = [rows[0].index(k) for k in ("timesteps", "return_raw", "return_mean", "return_history")]
    return [[r[k] for k in keep] for r in rows[1:]]


def test_diagnosed_run_rows_metrics_and_resume(tmp_path):
    kw = dict(env="Pendulum", algo="ddpg", seed=2, steps=2400)
    train.run(out=tmp_path / "plain", **kw)
    train.run(out=tmp_path / "diag", diagnose=True, **kw)
    rows = _read(tmp_path / "diag" / "diagnostics.csv")
    assert rows[0] == diagnose.HEADER
    assert [r[0] for r in rows[1:]] == ["800", "1600", "2400"]  # one row per evaluation
    values = np.array(rows[1:], dtype=float)
    cosines = values[:, [diagnose.HEADER.index(k) for k in diagnose.HEADER if "_cos_" in k]]
    assert np.all(np.isfinite(cosines)) and np.all(np.abs(cosines) <= 1.0 + 1e-12)
    plain, diag = (_returns(tmp_path / k / "metrics.csv") for k in ("plain", "diag"))
    assert diag == plain
    assert not (tmp_path / "plain" / "diagnostics.csv").exists()

    # Stopped at 1600 with a row after its checkpoint on disk: resuming drops and recomputes it.
    part = tmp_path / "part"
    train.run(out=part, diagnose=True, **{**kw, "steps": 1600})
    with open(part / "diagnostics.csv", "a") as f:
        f.write("2400" + ",0.5" * (len(diagnose.HEADER) - 1) + "\n")
    train.run(out=part, diagnose=True, resume=True, **kw)
    assert _read(part / "diagnostics.csv") == rows  # same code, same inputs: exactly equal


@pytest.mark.parametrize("algo", ["gd", "mpc"])
def test_without_a_critic_refused(algo, tmp_path, capsys):
    with pytest.raises(ValueError, match=f"{algo} has none"):
        train.run(algo=algo, steps=800, out=tmp_path / "a", diagnose=True)
    assert not (tmp_path / "a").exists()
    code = train.main(["--algo", algo, "--steps", "800", "--out", str(tmp_path / "b"),
                       "--diagnose"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "has none" in err


def test_cli_flag(tmp_path, capsys):
    out = tmp_path / "run"
    assert train.main(["--env", "MassPoint", "--algo", "d3pg", "--steps", "800", "--out",
                       str(out), "--diagnose"]) == 0
    rows = _read(out / "diagnostics.csv")
    assert rows[0] == diagnose.HEADER and len(rows) == 2 and rows[1][0] == "800"
    assert "diagnostics.csv" not in capsys.readouterr().err


def test_sac_refused(tmp_path):
    with pytest.raises(ValueError, match="not available for sac"):
        train.run(algo="sac", steps=800, out=tmp_path / "a", diagnose=True)
