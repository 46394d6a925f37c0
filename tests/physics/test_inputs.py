"""Hostile inputs to the physics API (the contract in fastd3pg.physics.base): what NumPy converts
to real float64 is accepted, anything else is one clear ValueError, and no call returns NaN or
inf."""

import numpy as np
import pytest

from fastd3pg.physics import dispatch, lcp, make, names

RANGE = "outside the simulator's range"


@pytest.fixture(scope="module", params=names())
def env(request):
    return make(request.param)


def _start(env):
    s, _ = env.reset(seed=3)
    return s, np.full(env.action_dim, 0.5)


def test_numeric_inputs_of_any_dtype_and_layout_give_the_float64_result(env):
    s, a = _start(env)
    expected = env.transition(s, a)
    wide = np.zeros((env.state_dim, 3))
    wide[:, 1] = s
    frozen = s.copy()
    frozen.flags.writeable = False
    for state in (wide[:, 1], frozen, s.astype(object), list(s)):
        tr = env.transition(state, a)
        np.testing.assert_array_equal(tr.next_state, expected.next_state)
        np.testing.assert_array_equal(tr.J_s, expected.J_s)
    # ints, bools and float32 are converted (their values, not the float64 ones above).
    ints = np.ones(env.action_dim, dtype=np.int32)
    np.testing.assert_array_equal(
        env.transition(s, ints).next_state, env.transition(s, np.ones(env.action_dim)).next_state
    )
    np.testing.assert_array_equal(
        env.transition(s, np.ones(env.action_dim, dtype=bool)).next_state,
        env.transition(s, ints).next_state,
    )
    a32 = a.astype(np.float32)
    np.testing.assert_array_equal(
        env.transition(s, a32).next_state, env.transition(s, a32.astype(np.float64)).next_state
    )
    # The batch: transposed (non-contiguous) and read-only arrays.
    S = np.array([s, s]).T.copy().T
    A = np.array([a, a])
    A.flags.writeable = False
    batch = env.transition_batch(S, A)
    np.testing.assert_array_equal(batch.next_state[1], expected.next_state)
    empty = env.transition_batch(np.zeros((0, env.state_dim)), np.zeros((0, env.action_dim)))
    assert empty.next_state.shape == (0, env.state_dim)


@pytest.mark.parametrize("bad, match", [
    ("abc", "numeric"),
    (None, "numeric"),
    ({"a": 1}, "numeric"),
    (b"\x00", "numeric"),
    (np.datetime64("2020-01-01"), "numeric"),
    ([[1.0], [1.0, 2.0]], "real numbers"),  # ragged
])
def test_non_numeric_inputs_raise_value_error(env, bad, match):
    s, a = _start(env)
    with pytest.raises(ValueError, match=match):
        env.transition(s, bad)
    with pytest.raises(ValueError, match=match):
        env.transition(bad, a)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(bad)
    with pytest.raises(ValueError, match=match):
        env.set_state(bad)
    with pytest.raises(ValueError, match=match):
        env.transition_batch(bad, [a])


def test_object_arrays_with_a_non_number_and_complex_inputs_raise_value_error(env):
    s, a = _start(env)
    mixed = a.astype(object)
    mixed[0] = "1.0"  # NumPy would convert this string; the contract does not
    with pytest.raises(ValueError, match="numeric"):
        env.transition(s, mixed)
    with pytest.raises(ValueError, match="complex"):
        env.transition(s, a + 1j)
    with pytest.raises(ValueError, match="complex"):
        env.transition(s.astype(complex), a)
    with pytest.raises(ValueError, match="complex"):
        env.transition_batch([s], [a + 0j])


def test_wrong_shapes_nan_and_inf_raise_value_error(env):
    s, a = _start(env)
    n, m = env.state_dim, env.action_dim
    env.reset(seed=0)
    for bad in (np.zeros(m + 1), np.zeros((m, 2)), np.zeros(0)):
        with pytest.raises(ValueError, match="shape"):
            env.step(bad)
        with pytest.raises(ValueError, match="shape"):
            env.transition(s, bad)
    with pytest.raises(ValueError, match="shape"):
        env.set_state(np.zeros(n + 1))
    with pytest.raises(ValueError, match="shape"):
        env.transition_batch(s, a)  # a single state is not a batch
    with pytest.raises(ValueError, match="batch"):
        env.transition_batch(np.zeros((3, n)), np.zeros((2, m)))
    for value in (np.nan, np.inf, -np.inf):
        bad_s, bad_a = s.copy(), a.copy()
        bad_s[-1], bad_a[0] = value, value
        with pytest.raises(ValueError, match="NaN or inf"):
            env.step(bad_a)
        with pytest.raises(ValueError, match="NaN or inf"):
            env.transition(bad_s, a)
        with pytest.raises(ValueError, match="NaN or inf"):
            env.set_state(bad_s)
        with pytest.raises(ValueError, match="NaN or inf"):
            env.transition_batch([s, bad_s], [a, a])


def _finite_or_range_error(call):
    try:
        result = call()
    except ValueError as error:
        assert RANGE in str(error) and "\n" not in str(error), error
        return False
    for x in result if isinstance(result, tuple) else (result,):
        if isinstance(x, (np.ndarray, float)):
            assert np.all(np.isfinite(x)), result
    return True


@pytest.mark.parametrize("magnitude", [1e6, 1e150, 1e300, -1e300])
def test_huge_finite_inputs_give_a_finite_result_or_a_range_error(env, magnitude):
    s, a = _start(env)
    for k in range(env.state_dim):
        big = s.copy()
        big[k] = magnitude
        _finite_or_range_error(lambda: env.transition(big, a))
        _finite_or_range_error(lambda: env.transition_batch([s, big], [a, a]))
        env.reset(seed=0)
        env.set_state(big)
        before = env.state
        if not _finite_or_range_error(lambda: env.step(a)):
            np.testing.assert_array_equal(env.state, before)  # a refused step changes nothing
    _finite_or_range_error(lambda: env.transition(np.full(env.state_dim, magnitude), a))
    # Actions are clipped, so any magnitude is a plain step.
    assert _finite_or_range_error(lambda: env.transition(s, np.full(env.action_dim, magnitude)))


def test_a_batch_range_error_names_the_row(env):
    s, a = _start(env)
    huge = np.full(env.state_dim, 1e300)
    try:
        env.transition(huge, a)
    except ValueError:
        with pytest.raises(ValueError, match="row 1 of the batch"):
            env.transition_batch([s, huge], [a, a])


def test_bad_parameters_raise_value_error(env):
    key = env.param_names[0]
    for bad, match in (("abc", "numeric"), (None, "numeric"), (1 + 2j, "complex"),
                       ([1.0, 2.0], "a number"), (np.nan, "finite"), (np.inf, "finite")):
        with pytest.raises(ValueError, match=match):
            make(env.name, **{key: bad})
    default = env.params[0]
    assert make(env.name, **{key: np.float32(default)}).params[0] == np.float32(default)
    with pytest.raises(ValueError, match="seed"):
        env.reset(seed=-1)
    with pytest.raises(ValueError, match="seed"):
        env.reset(seed=1.5)


def test_huge_parameters_give_finite_results_or_clear_errors(env):
    for k, key in enumerate(env.param_names):
        for magnitude in (1e300, -1e300):
            try:
                big = make(env.name, **{key: magnitude})
            except ValueError as error:  # a task's own range check
                assert key in str(error)
                continue
            try:
                s, _ = big.reset(seed=0)
            except ValueError as error:
                assert RANGE in str(error)
                continue
            assert np.all(np.isfinite(s))
            _finite_or_range_error(lambda: big.transition(s, np.zeros(big.action_dim)))
            _finite_or_range_error(lambda: big.transition_batch([s], [np.zeros(big.action_dim)]))


def test_half_cheetah_solver_failure_is_nan_in_compiled_code_and_an_error_in_python():
    """An LCP on data that overflows fails (status NOT_FINITE): the compiled kernel returns NaN
    (a training loop stops such a run as diverged); the Python shell raises, naming it."""
    env = make("HalfCheetah")
    s, _ = env.reset(seed=0)
    s[1] = 0.6  # feet near the ground: the contacts enter the LCP
    s[10:] = 1e200  # joint speeds whose squares overflow
    a = np.zeros(4)
    assert env.contact_info(s, a)["status"] == lcp.NOT_FINITE
    n = env.state_dim
    out, J_s, J_a, dr_ds, dr_da = np.empty(n), np.empty((n, n)), np.empty((n, 4)), np.empty(n), np.empty(4)
    reward, _ = dispatch.step_jac(env.kernels, env.params, s, a, out, J_s, J_a, dr_ds, dr_da)
    assert np.all(np.isnan(out)) and np.isnan(reward) and np.all(np.isnan(J_s))
    with pytest.raises(ValueError, match="contact solver failed: NaN or inf in data"):
        env.transition(s, a)
    with pytest.raises(ValueError, match="contact solver failed"):
        env.transition_batch([s], [a])
    env.reset(seed=0)
    env.set_state(s)
    with pytest.raises(ValueError, match="contact solver failed"):
        env.step(a)


def test_a_start_state_that_overflows_is_a_range_error():
    env = make("CartPole", reset_high=1e308)  # the start interval's width overflows
    with pytest.raises(ValueError, match="parameters " + RANGE):
        env.reset(seed=0)
    assert env.state is None  # the refused reset left no state behind
