"""``fastd3pg.policy``: the stored actor's file format, its input checks, huge inputs, and its
input Jacobian against central differences."""

import numpy as np
import pytest

from fastd3pg import train
from fastd3pg.nn import MLP
from fastd3pg.policy import Policy, load_policy, make_policy_arrays
from fastd3pg.testing import central_difference, relative_error

N_STATE, N_ACTION = 3, 2


def random_arrays(seed=0, activation="tanh", output_activation="tanh", layer_norm=True,
                  obs_clip=2.0, hidden=(7, 5), scale=0.8, out_factor=1.0):
    """Policy arrays of a random actor with random normalizer statistics (``out_factor``
    scales the output layer)."""
    rng = np.random.default_rng(seed)
    net = MLP([N_STATE, *hidden, N_ACTION], activation=activation,
              output_activation=output_activation, layer_norm=layer_norm)
    params = net.init(seed=seed) + rng.normal(0, scale, net.num_params)
    w0, _, _, b1 = net.output_layer_slices()
    params[w0:b1] *= out_factor
    return make_policy_arrays("Test", net, params, rng.normal(0, 1, N_STATE),
                              rng.uniform(0.5, 2.0, N_STATE), obs_clip)


@pytest.fixture
def policy():
    return Policy(random_arrays())


def test_train_reexports_the_policy_api():
    assert train.Policy is Policy and train.load_policy is load_policy


def test_the_action_is_the_stored_recipe(policy):
    """clip(MLP(clip((s - μ)/(σ + 1e-8), ±c)), ±1), recomputed layer by layer."""
    S = np.random.default_rng(1).normal(0, 3, (6, N_STATE))
    Z = np.clip((S - policy.obs_mean) / (policy.obs_std + 1e-8), -policy.obs_clip, policy.obs_clip)
    net = MLP(policy.sizes, policy.activation, policy.output_activation, policy.layer_norm)
    # The compiled network against NumPy's: equal up to rounding (different summation order).
    np.testing.assert_allclose(policy(S), np.clip(net.forward(policy.params, Z), -1, 1),
                               rtol=1e-12, atol=1e-14)


def test_a_saved_file_loads_to_the_same_actor(tmp_path, policy):
    np.savez(tmp_path / "policy.npz", **random_arrays())
    loaded = load_policy(tmp_path)
    S = np.random.default_rng(2).normal(0, 2, (4, N_STATE))
    np.testing.assert_array_equal(loaded(S), policy(S))
    assert (loaded.env, loaded.sizes) == ("Test", [N_STATE, 7, 5, N_ACTION])
    assert loaded.layer_norm is True


def _write_good(path):
    np.savez(path, **random_arrays())
    return path.read_bytes()


def _truncated(path):
    path.write_bytes(_write_good(path)[:300])


def _garbage(path):
    path.write_bytes(np.random.default_rng(0).bytes(500))


def _empty(path):
    path.write_bytes(b"")


def _npy(path):
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))


def _with(**changes):
    def write(path):
        arrays = random_arrays()
        for key, value in changes.items():
            if value is None:
                del arrays[key]
            else:
                arrays[key] = value
        np.savez(path, **arrays)
    return write


@pytest.mark.parametrize("write, message", [
    (_empty, "not a fastd3pg policy file"),
    (_truncated, "not a fastd3pg policy file"),
    (_garbage, "not a fastd3pg policy file"),
    (_npy, "not an .npz archive"),
    (_with(params=None), "missing params"),
    (_with(sizes=None, obs_clip=None), "missing sizes, obs_clip"),
    (_with(params=np.zeros(5)), "params has shape"),
    (_with(sizes=np.array([3, 7, 5, 4])), "params has shape"),
    (_with(sizes=np.array([3.0, 7.0, 5.0, 2.0])), "sizes must be"),
    (_with(activation=np.array("swish")), "unknown activation 'swish'"),
    (_with(output_activation=np.array(3)), "output_activation must be a string"),
    (_with(obs_mean=np.zeros(4)), "obs_mean has shape"),
    (_with(obs_std=np.array([1.0, np.nan, 1.0])), "obs_std holds NaN"),
    (_with(obs_std=np.array([1.0, -1.0, 1.0])), "obs_std must be > 0"),
    (_with(obs_clip=np.array(np.nan)), "obs_clip holds NaN"),
    (_with(layer_norm=np.array("yes")), "layer_norm must be a boolean"),
    (_with(params=np.array(["a"] * 3)), "params must hold real numbers"),
    (_with(params=np.array([object()] * 3, dtype=object)), "not a fastd3pg policy file"),
])
def test_a_bad_file_gives_one_clear_error_naming_it(tmp_path, write, message):
    path = tmp_path / "policy.npz"
    write(path)
    with pytest.raises(ValueError) as err:
        load_policy(path)
    text = str(err.value)
    assert message in text and str(path) in text, text
    assert "\n" not in text


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_policy(tmp_path / "nothing")


@pytest.mark.parametrize("state, message", [
    ([0.0, np.nan, 1.0], "NaN or inf"),
    ([[0.0, 1.0, 2.0], [np.inf, 0.0, 0.0]], "NaN or inf"),
    (np.array([1j, 0.0, 0.0]), "complex"),
    ("1.0 2.0 3.0", "string"),
    (["1.0", "2.0", "3.0"], "real numbers"),
    (np.array(["1.0", "2.0", "3.0"], dtype=object), "real numbers"),
    ([1.0, None, 2.0], "real numbers"),
    ([[1.0, 2.0, 3.0], [1.0]], "not an array of numbers"),
    (np.zeros(4), "shape"),
    (np.zeros((2, 2)), "shape"),
    (np.zeros((1, 1, 3)), "shape"),
    (3.0, "shape"),
    ([10 ** 400, 0, 0], "float64's range"),
])
def test_bad_states_raise_one_clear_error(policy, state, message):
    for call in (policy, policy.jacobian):
        with pytest.raises(ValueError, match="policy for Test") as err:
            call(state)
        assert message in str(err.value)


def test_any_real_input_is_accepted_as_its_float64_value(policy):
    S = np.random.default_rng(3).integers(-3, 4, (5, N_STATE))
    expected = policy(S.astype(np.float64))
    readonly = S.astype(np.float64)
    readonly.setflags(write=False)
    wide = np.zeros((5, 2 * N_STATE))
    wide[:, ::2] = S
    for same in (S, S.tolist(), S.astype(np.float32), readonly, wide[:, ::2],
                 S.astype(object), np.asfortranarray(S)):
        np.testing.assert_array_equal(policy(same), expected)
    np.testing.assert_array_equal(policy(np.array([True, False, True])),
                                  policy(np.array([1.0, 0.0, 1.0])))


@pytest.mark.parametrize("magnitude", [1e300, -1e300, 1.7e308])
def test_huge_states_give_finite_actions_through_the_normalizer_clip(policy, magnitude):
    s = np.array([magnitude, 1.0, -magnitude])
    a = policy(s)
    assert np.all(np.isfinite(a)) and np.all(np.abs(a) <= 1.0)
    # Clipped components carry no derivative.
    J = policy.jacobian(s)
    assert np.all(np.isfinite(J))
    np.testing.assert_array_equal(J[:, [0, 2]], 0.0)


def test_without_normalization_an_overflowing_network_raises_instead_of_nan():
    arrays = random_arrays(obs_clip=np.inf)
    n_w1 = N_STATE * 7
    arrays["params"][:n_w1] = 1.0  # every first-layer unit sums the state: 3 × 1.7e308 = inf
    policy = Policy(arrays)
    assert np.all(np.isfinite(policy(np.full(N_STATE, 1e3))))
    for call in (policy, policy.jacobian):
        with pytest.raises(ValueError, match="overflows the actor network"):
            call(np.full(N_STATE, 1.7e308))


@pytest.mark.parametrize("magnitude", [1e300, 1.7e308])
def test_without_normalization_huge_states_are_finite_or_refused(magnitude):
    policy = Policy(random_arrays(obs_clip=np.inf, layer_norm=False, activation="relu"))
    for s in (np.full(N_STATE, magnitude), np.array([magnitude, -magnitude, 0.0])):
        try:
            a = policy(s)
        except ValueError as err:
            assert "overflows the actor network" in str(err)
        else:
            assert np.all(np.isfinite(a)) and np.all(np.abs(a) <= 1.0)


@pytest.mark.parametrize("activation, output_activation, layer_norm", [
    ("tanh", "tanh", True), ("elu", "tanh", False), ("relu", "tanh", True),
    ("tanh", "linear", False), ("elu", "linear", True),
])
def test_jacobian_matches_central_differences(activation, output_activation, layer_norm):
    arrays = random_arrays(seed=4, activation=activation, output_activation=output_activation,
                           layer_norm=layer_norm, scale=0.5,
                           out_factor=0.3 if output_activation == "linear" else 1.0)
    policy = Policy(arrays)
    S = np.random.default_rng(5).normal(0, 2.5, (40, N_STATE)) * policy.obs_std + policy.obs_mean
    J = policy.jacobian(S)
    assert J.shape == (40, N_ACTION, N_STATE)
    checked = zeros = 0
    for s, J_s in zip(S, J):
        z = (s - policy.obs_mean) / (policy.obs_std + 1e-8)
        a = policy(s)
        # Skip points within a difference step of a kink: the normalizer's clip, the final
        # clip (linear output), a ReLU's switch.
        near_clip = np.abs(np.abs(z) - policy.obs_clip) < 1e-4
        near_one = (np.abs(a) < 1.0) & (np.abs(a) > 1.0 - 1e-4)
        if np.any(near_clip) or np.any(near_one):
            continue
        fd = central_difference(policy, s)
        if activation == "relu" and relative_error(J_s, fd) > 1e-6:
            fd = central_difference(policy, s, 1e-8)
        assert relative_error(J_s, fd) < 1e-6
        # One state and a batch row go through different BLAS kernels: equal up to rounding.
        np.testing.assert_allclose(policy.jacobian(s), J_s, rtol=1e-12, atol=1e-15)
        checked += 1
        zeros += np.sum(np.abs(z) > policy.obs_clip) + np.sum(np.abs(a) >= 1.0)
    assert checked >= 20
    assert zeros > 0  # some clips were active, and their zero derivatives matched


def test_jacobian_is_zero_where_the_final_clip_is_active():
    policy = Policy(random_arrays(seed=6, output_activation="linear", scale=4.0, out_factor=0.1))
    S = np.random.default_rng(7).normal(0, 1, (30, N_STATE)) * policy.obs_std + policy.obs_mean
    A, J = policy(S), policy.jacobian(S)
    net = MLP(policy.sizes, policy.activation, policy.output_activation, policy.layer_norm)
    raw = net.forward(policy.params, np.clip((S - policy.obs_mean) / (policy.obs_std + 1e-8),
                                             -policy.obs_clip, policy.obs_clip))
    clipped = np.abs(raw) > 1.0
    assert clipped.any() and (~clipped).any()
    np.testing.assert_array_equal(J[clipped], 0.0)
    assert np.all(np.abs(A[clipped]) == 1.0)
    assert np.all(np.any(J[~clipped] != 0.0, axis=-1))
