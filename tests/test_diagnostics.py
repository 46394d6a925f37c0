"""``true_q``: the value against a plain rollout, its gradients against central differences of
that rollout's return, the policy's input Jacobian, the Q surface, and bad input."""

import numpy as np
import pytest

from fastd3pg import diagnostics, train
from fastd3pg.diagnostics import policy_jacobian, q_surface, true_q
from fastd3pg.nn import MLP
from fastd3pg.physics import make
from fastd3pg.testing import central_difference, relative_error

TASKS = ["Pendulum", "MassPoint", "CartPole", "MountainCar", "CartPoleSwingUp"]
# (hidden activation, output activation, layer norm, output-layer init scale): smooth; ReLU with
# layer norm (the agents' default actor); a linear output large enough that the action clip
# at ±1 is active at some states.
POLICIES = {"tanh": ("tanh", "tanh", False, 0.5), "relu-ln": ("relu", "tanh", True, 0.5),
            "linear-out": ("elu", "linear", False, 2.0)}
H, GAMMA, POINTS = 40, 0.99, 6
TOL = 1e-6
# Central-difference steps near the float64 optimum for a 40-step return (truncation ~eps²,
# round-off ~1e-16 |Q| / eps). Where the two disagree by more than KINK the point lies within
# eps of a kink (a clip, a ReLU switching somewhere along the rollout): not a test of smooth
# derivatives, and skipped (at most two points of six).
EPS, KINK = (1e-6, 2e-6), TOL / 2


def _policy(env, seed, kind="tanh", hidden=(16, 16)):
    """A random-initialized :class:`fastd3pg.train.Policy`, normalizer from a few start states."""
    act, out, ln, scale = POLICIES[kind]
    net = MLP([env.state_dim, *hidden, env.action_dim], act, out, ln)
    S = np.array([env.reset(seed=k)[0] for k in range(64)])
    # Biases and layer-norm gains and biases away from their initial 0 and 1, as after training.
    params = net.init(seed=seed, out_scale=scale)
    rng = np.random.default_rng(seed)
    for block, _, off, shape in net.layout():
        if block != "W":
            params[off:off + shape[0]] += 0.3 * rng.standard_normal(shape[0])
    return train.Policy({"env": env.name, "sizes": net.sizes, "activation": act,
                   "output_activation": out, "layer_norm": ln,
                   "params": params, "obs_mean": S.mean(0),
                   "obs_std": S.std(0) + 0.1, "obs_clip": 5.0})


def _points(env, seed, count=POINTS):
    rng = np.random.default_rng(seed)
    if env.name == "MassPoint":  # its start state is fixed: spread the points out
        S = rng.uniform(-1.0, 1.0, (count, 1))
        S[np.abs(S) < 0.2] += 0.5
    else:
        S = np.array([env.reset(seed=seed * 100 + k)[0] for k in range(count)])
    return S, rng.uniform(-0.9, 0.9, (count, env.action_dim))


def _rollout(env, policy, s, a, gamma, horizon):
    """``(Σ_{t<L} γ^t r_t, L)`` one transition at a time: the reference for ``true_q``."""
    q, disc = 0.0, 1.0
    for t in range(horizon):
        tr = env.transition(s, a if t == 0 else policy(s))
        q += disc * tr.reward
        disc *= gamma
        if tr.terminated:
            return q, t + 1
        s = tr.next_state
    return q, horizon


def _fd_errors(env, policy, S, A, dq_ds, dq_da, gamma=GAMMA, horizon=H):
    """Per point, the relative errors of ``dq_ds`` and ``dq_da`` against central differences
    of the rollout return, or None where the two difference steps disagree (a kink nearby)."""
    out = []
    for s, a, gs, ga in zip(S, A, dq_ds, dq_da):
        fs = [central_difference(lambda x: _rollout(env, policy, x, a, gamma, horizon)[0], s, e)
              for e in EPS]
        fa = [central_difference(lambda x: _rollout(env, policy, s, x, gamma, horizon)[0], a, e)
              for e in EPS]
        if relative_error(*fs) > KINK or relative_error(*fa) > KINK:
            out.append(None)
        else:
            out.append((relative_error(gs, fs[0]), relative_error(ga, fa[0])))
    return out


def _assert_gradients_match(env, policy, S, A, gamma=GAMMA, horizon=H):
    _, dq_ds, dq_da = true_q(env, policy, S, A, gamma, horizon)
    errors = _fd_errors(env, policy, S, A, dq_ds, dq_da, gamma, horizon)
    checked = [e for e in errors if e is not None]
    assert len(checked) >= len(errors) - 2, f"{env.name}: too many points near a kink"
    worst = max(max(e) for e in checked)
    assert worst <= TOL, f"{env.name}: relative error {worst:.2e}"
    return worst


@pytest.mark.parametrize("name", TASKS)
@pytest.mark.parametrize("gamma, horizon", [(0.99, H), (1.0, 25), (0.0, H), (0.9, None)])
def test_q_equals_the_discounted_return_of_a_plain_rollout(name, gamma, horizon):
    env = make(name)
    policy = _policy(env, 0)
    S, A = _points(env, 1)
    q, dq_ds, dq_da = true_q(env, policy, S, A, gamma=gamma, horizon=horizon)
    assert q.shape == (POINTS,) and dq_ds.shape == S.shape and dq_da.shape == A.shape
    ref = [_rollout(env, policy, s, a, gamma, horizon or env.horizon)[0] for s, a in zip(S, A)]
    # The batched rollout and the reference use the same kernels, but BLAS may pick other
    # kernels for the batched policy than for one state: equal up to rounding.
    np.testing.assert_allclose(q, ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", list(POLICIES))
@pytest.mark.parametrize("name", TASKS)
def test_gradients_match_central_differences_of_the_rollout_return(name, kind):
    env = make(name)
    S, A = _points(env, 2)
    _assert_gradients_match(env, _policy(env, 3, kind), S, A)


@pytest.mark.parametrize("name", ["CartPole", "MassPoint"])
def test_termination_stops_the_sum_and_its_gradient(name):
    """Rows that terminate inside the horizon beside rows that do not, in one batch."""
    env = make(name)
    policy = _policy(env, 4)
    if name == "CartPole":  # falling poles: the first rows leave the angle limit within H
        S = np.array([[0.0, 0.0, 0.1, 1.0], [0.1, -0.2, -0.08, -1.2], [0.0, 0.1, 0.15, 0.8],
                      [0.0, 0.0, 0.0, 0.0], [0.05, 0.0, 0.01, -0.05]])
    else:  # points heading into the goal zone |x| < 0.01, and points far from it
        S = np.array([[-0.2], [0.15], [-0.9], [0.8], [-0.12]])
    A = np.full((len(S), 1), 0.3)
    if name == "MassPoint":
        A[:, 0] = -0.5 * np.sign(S[:, 0])
    horizon = 15 if name == "CartPole" else H
    lengths = [_rollout(env, policy, s, a, GAMMA, horizon)[1] for s, a in zip(S, A)]
    assert min(lengths) < horizon and max(lengths) == horizon, lengths  # both kinds of rows
    q, _, _ = true_q(env, policy, S, A, GAMMA, horizon)
    ref = [_rollout(env, policy, s, a, GAMMA, horizon)[0] for s, a in zip(S, A)]
    np.testing.assert_allclose(q, ref, rtol=1e-9, atol=1e-9)  # rounding only (see above)
    _assert_gradients_match(env, policy, S, A, horizon=horizon)


def _without(term, monkeypatch):
    """Drop one term of the adjoint sweep by corrupting what it is built from."""
    if term == "policy Jacobian":
        real = diagnostics._policy_jacobian
        monkeypatch.setattr(diagnostics, "_policy_jacobian",
                            lambda c, S: (real(c, S)[0], np.zeros_like(real(c, S)[1])))
        return lambda env: env

    def patched(env):
        real = env.transition_batch

        def transition_batch(S, A):
            tr = real(S, A)
            getattr(tr, term)[...] = 0.0
            return tr

        env.transition_batch = transition_batch
        return env

    return patched


def test_a_trained_policy_loaded_from_its_run(tmp_path):
    """The agents' actor (ReLU, layer norm, a fitted normalizer) as load_policy returns it."""
    train.run(env="Pendulum", algo="d3pg", seed=0, steps=800, out=tmp_path, hidden=(16, 16),
              batch_size=16)
    env, policy = make("Pendulum"), train.load_policy(tmp_path)
    S, A = _points(env, 10)
    q, _, _ = true_q(env, policy, S, A, GAMMA, H)
    ref = [_rollout(env, policy, s, a, GAMMA, H)[0] for s, a in zip(S, A)]
    np.testing.assert_allclose(q, ref, rtol=1e-9, atol=1e-9)  # rounding only (see above)
    _assert_gradients_match(env, policy, S, A)


@pytest.mark.parametrize("term", ["policy Jacobian", "J_s", "J_a", "dr_ds"])
def test_dropping_a_term_of_the_adjoint_breaks_the_check(term, monkeypatch):
    """The finite-difference check can fail: with one term missing it does, on Pendulum."""
    env = make("Pendulum")
    policy = _policy(env, 3)
    S, A = _points(env, 2)
    _assert_gradients_match(env, policy, S, A)
    broken = _without(term, monkeypatch)(make("Pendulum"))
    _, dq_ds, dq_da = true_q(broken, policy, S, A, GAMMA, H)
    errors = [e for e in _fd_errors(env, policy, S, A, dq_ds, dq_da) if e is not None]
    assert max(max(e) for e in errors) > 1e-3


@pytest.mark.parametrize("ln", [False, True])
@pytest.mark.parametrize("act", ["relu", "tanh", "elu", "linear"])
def test_policy_jacobian_matches_central_differences_and_the_policy(act, ln):
    env = make("CartPoleSwingUp")
    net = MLP([5, 8, 7, 1], act, "linear", ln)
    rng = np.random.default_rng(5)
    S = np.array([env.reset(seed=k)[0] for k in range(40)])
    std = S.std(0) + 0.1
    std[1] = 1e-3  # the cart's speed is clipped at most states: a zero column there
    params = net.init(seed=6) + 0.3 * rng.standard_normal(net.num_params)
    X = np.clip((S - S.mean(0)) / (std + 1e-8), -3.0, 3.0)
    w0, w1, b0, b1 = net.output_layer_slices()
    # Scale the output layer so that the action clip at ±1 is active at about half the states.
    params[w0:b1] *= 1.0 / np.median(np.abs(net.forward(params, X)))
    policy = train.Policy({"env": env.name, "sizes": net.sizes, "activation": act,
                     "output_activation": "linear", "layer_norm": ln, "params": params,
                     "obs_mean": S.mean(0), "obs_std": std, "obs_clip": 3.0})
    actions, dpi = policy_jacobian(policy, S)
    # The same arithmetic as Policy's forward pass, up to BLAS's choice of kernels.
    np.testing.assert_allclose(actions, policy(S), rtol=1e-12, atol=1e-12)
    assert dpi.shape == (40, 1, 5)
    clipped_actions = np.abs(policy(S)[:, 0]) >= 1.0
    assert 0 < clipped_actions.sum() < 40
    assert np.all(dpi[clipped_actions] == 0.0)
    checked = 0
    for s, J in zip(S, dpi):
        fd = [central_difference(lambda x: policy(x), s, e) for e in EPS]
        if relative_error(*fd) > KINK:
            continue  # within eps of a ReLU kink or a clip
        assert relative_error(J, fd[0]) <= TOL
        checked += 1
    assert checked >= 30


def test_long_batches_are_processed_in_chunks_with_the_same_result(monkeypatch):
    env = make("CartPoleSwingUp")
    policy = _policy(env, 7, "relu-ln")
    S, A = _points(env, 8, count=9)
    whole = true_q(env, policy, S, A, GAMMA, H)
    monkeypatch.setattr(diagnostics, "_CHUNK_BYTES", 8 * H * 5 * 6 * 2)  # two rows a chunk
    chunked = true_q(env, policy, S, A, GAMMA, H)
    for x, y in zip(whole, chunked):
        # Same arithmetic per row; NumPy's matrix products may block differently by batch size.
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)


def test_q_surface_is_true_q_on_the_grid():
    env = make("MassPoint")
    policy = _policy(env, 9)
    s, a = np.linspace(-1.0, 1.0, 7), np.linspace(-1.0, 1.0, 5)
    q, dq_ds, dq_da, pi = q_surface(env, policy, s, a, gamma=0.99, horizon=30)
    assert q.shape == dq_ds.shape == dq_da.shape == (7, 5) and pi.shape == (7,)
    for i, j in [(0, 0), (3, 2), (6, 4), (2, 1)]:
        ref = true_q(env, policy, [[s[i]]], [[a[j]]], gamma=0.99, horizon=30)
        # Same code on a batch of one row instead of 35: equal up to rounding.
        np.testing.assert_allclose([q[i, j], dq_ds[i, j], dq_da[i, j]],
                                   [ref[0][0], ref[1][0, 0], ref[2][0, 0]], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pi, policy(s.reshape(-1, 1))[:, 0], rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="one state and one action"):
        q_surface(make("Pendulum"), _policy(make("Pendulum"), 0), s, a)


def test_an_overflowing_rollout_is_a_clear_error():
    env = make("Pendulum")
    real = env.transition_batch

    def exploding(S, A):
        tr = real(S, A)
        tr.J_s[...] *= 1e200
        return tr

    env.transition_batch = exploding
    policy = _policy(env, 0)
    S, A = _points(env, 1)
    with pytest.raises(ValueError, match="overflowed"):
        true_q(env, policy, S, A, horizon=10)


def test_bad_input_is_rejected():
    env = make("Pendulum")
    policy = _policy(env, 0)
    S, A = _points(env, 1)
    ok = dict(env=env, policy=policy, states=S, actions=A)
    bad = [
        (dict(states=S[:, :2]), r"states must have shape \(B, 3\)"),
        (dict(states=S[0]), "states must have shape"),
        (dict(actions=A[:3]), "different batch sizes"),
        (dict(actions=np.zeros((6, 2))), r"actions must have shape \(B, 1\)"),
        (dict(states=np.where(np.eye(6, 3) > 0, np.nan, S)), "states contains NaN"),
        (dict(actions=np.full((6, 1), np.inf)), "actions contains NaN or inf"),
        (dict(states=[["a", "b", "c"]] * 6), "real numbers"),
        (dict(states=S + 1j), "real numbers"),
        (dict(gamma=1.5), r"gamma must be a number in \[0, 1\]"),
        (dict(gamma=-0.1), "gamma"),
        (dict(gamma=np.nan), "gamma"),
        (dict(gamma="0.9"), "gamma"),
        (dict(horizon=0), "horizon must be an integer >= 1"),
        (dict(horizon=2.5), "horizon"),
        (dict(horizon=True), "horizon"),
        (dict(env="Pendulum"), "fastd3pg.physics env"),
        (dict(env=make("CartPole")), "trained on Pendulum, not CartPole"),
        (dict(policy=object()), "attributes of fastd3pg.train.Policy"),
    ]
    for change, message in bad:
        with pytest.raises(ValueError, match=message):
            true_q(**{**ok, **change})
    other = _policy(make("CartPole"), 0)
    other.env = "Pendulum"
    with pytest.raises(ValueError, match="maps 4 states to 1 actions"):
        true_q(env, other, S, A)
    for attr, value, message in [("params", policy.params[:-1], "params must have shape"),
                                 ("params", policy.params * np.nan, "NaN or inf"),
                                 ("obs_std", -policy.obs_std, "obs_std must be >= 0"),
                                 ("obs_mean", policy.obs_mean[:2], "obs_mean and obs_std"),
                                 ("obs_clip", 0.0, "obs_clip must be > 0")]:
        broken = _policy(env, 0)
        setattr(broken, attr, value)
        with pytest.raises(ValueError, match=message):
            true_q(env, broken, S, A)
        with pytest.raises(ValueError, match=message):
            policy_jacobian(broken, S)
