"""Property tests of the physics API's hostile-input contract, over every registered task.

For generated states and actions (reached by the task itself, huge, of any finite magnitude,
NaN or inf; as int, float32, bool, object, lists, non-contiguous, read-only, big-endian; of the
wrong shape; non-numeric or complex), ``transition``, ``transition_batch`` and ``step`` either
return finite outputs of the right shapes or raise one ``ValueError`` line: never NaN or inf,
never a crash. Conversions that keep the values give exactly the float64 result; NaN and inf
are always refused; the batch equals the loop; a refused ``step`` leaves the env unchanged.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastd3pg.physics import make, names

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# Few examples per task and test keep the file at seconds; derandomized, so that every run
# (on every machine) tries the same examples and a failure is reproducible, with no database;
# failures are shrunk but not traced ("explain" phase: slow, and the shrunk input says enough).
SETTINGS = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow],
                    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])
POOL = 48  # states each task reaches from its start distribution under random actions

_pools = {}


def _env_and_pool(name):
    """The task and a pool of states it reaches (start states and random-action steps before
    any termination): inputs that must be accepted."""
    if name not in _pools:
        env = make(name)
        rng = np.random.default_rng(0)
        S = np.array([env.reset(seed=k)[0] for k in range(POOL // 4)])
        states, alive = [S], np.ones(len(S), dtype=bool)
        env.transition(S[0], np.zeros(env.action_dim))
        env.reset(seed=0)
        env.step(np.zeros(env.action_dim))
        for _ in range(3):
            tr = env.transition_batch(S, rng.uniform(-1.0, 1.0, (len(S), env.action_dim)))
            alive &= ~tr.terminated
            S = tr.next_state
            states.append(S[alive])
        _pools[name] = (env, np.concatenate(states))
    return _pools[name]


# A kernel that never returns would hang the whole suite (compiled code cannot be interrupted),
# so huge states are first tried in a child process with a time limit.
_PROBE = textwrap.dedent("""
    import sys
    import numpy as np
    from fastd3pg.physics import make
    env = make(sys.argv[1])
    s, _ = env.reset(seed=0)
    a = np.zeros(env.action_dim)
    probes = []
    for scale in (1e3, -1e6, 1e10, -1e20, 1e50, -1e100, 1e200, -1e300, 1.7e308):
        probes.append(np.full(env.state_dim, scale))
        for i in range(env.state_dim):
            probes.append(s.copy())
            probes[-1][i] = scale
    for x in probes:
        for call in (lambda: env.transition(x, a), lambda: env.transition_batch(x[None], a[None]),
                     lambda: (env.reset(seed=0), env.set_state(x), env.step(a))):
            print(repr(x.tolist()), flush=True)
            try:
                call()
            except ValueError:
                pass
""")
PROBE_SECONDS = 120  # the kernels are compiled and cached by then: loading them takes seconds
_probed = {}


def _fail_if_huge_states_hang(name):
    """Fail (instead of hanging) if a huge state keeps one of the task's kernels from
    returning, or crashes the process."""
    if name not in _probed:
        _env_and_pool(name)  # compiles and caches the kernels the child loads
        try:
            child = subprocess.run([sys.executable, "-c", _PROBE, name], capture_output=True,
                                   text=True, timeout=PROBE_SECONDS, check=False)
            _probed[name] = None if child.returncode == 0 else (
                f"the process ended with code {child.returncode}: "
                f"{(child.stderr.strip().splitlines() or [''])[-1]}")
        except subprocess.TimeoutExpired as err:
            out = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
            state = (out.splitlines() or ["(before the first probe)"])[-1]
            _probed[name] = f"a kernel did not return within {PROBE_SECONDS} s on the state {state}"
    if _probed[name] is not None:
        pytest.fail(f"{name}, huge finite state: {_probed[name]} (the contract: a finite result "
                    f"or a ValueError)")


def _read_only(x):
    x = x.copy()
    x.setflags(write=False)
    return x


# Conversions that keep the values: the result must equal the float64 one exactly.
SAME_VALUES = {
    "float64": lambda x: x,
    "object": lambda x: x.astype(object),
    "list": lambda x: x.tolist(),
    "non-contiguous": lambda x: np.stack([x, -x], axis=-1)[..., 0],
    "read-only": _read_only,
    "big-endian": lambda x: x.astype(">f8"),
}
# Conversions that change the values: any outcome the contract allows.
NEW_VALUES = {
    "float32": lambda x: x.astype(np.float32),
    "int": lambda x: np.round(x).astype(np.int64),
    "bool": lambda x: x > 0,
}
FORMS = {**SAME_VALUES, **NEW_VALUES}


@st.composite
def _values(draw, base, low=None, high=None):
    """``(array, kind)``: ``base`` (valid), or with some entries huge, entirely arbitrary
    finite, or with one NaN or inf."""
    kind = draw(st.sampled_from(["valid", "valid", "huge", "finite", "non-finite"]))
    x = np.array(base, dtype=np.float64)
    k = x.size
    if kind == "valid" and low is not None:
        x = np.array(draw(st.lists(st.floats(low, high), min_size=k, max_size=k)))
    elif kind == "huge":
        for i in draw(st.lists(st.integers(0, k - 1), min_size=1, max_size=k, unique=True)):
            x.flat[i] = draw(st.sampled_from([-1.0, 1.0])) * draw(st.floats(1e6, 1.7e308))
    elif kind == "finite":
        x = np.array(draw(st.lists(st.floats(allow_nan=False, allow_infinity=False),
                                   min_size=k, max_size=k)), dtype=np.float64).reshape(x.shape)
    elif kind == "non-finite":
        x.flat[draw(st.integers(0, k - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return x, kind


@st.composite
def _input(draw, base, low=None, high=None, form=None):
    """``(hostile input, its float64 values, whether it must be accepted)``."""
    x, kind = draw(_values(base, low, high))
    form = form or draw(st.sampled_from(list(FORMS)))
    hostile = FORMS[form](x)
    values = np.asarray(hostile, dtype=np.float64)
    return hostile, values, kind == "valid" and form in SAME_VALUES


def _state(name, form=None):
    env, pool = _env_and_pool(name)
    return st.integers(0, len(pool) - 1).flatmap(lambda i: _input(pool[i], form=form))


def _action(name, form=None):
    env, _ = _env_and_pool(name)
    return _input(np.zeros(env.action_dim), -1.5, 1.5, form)


def _outcome(fn):
    """``fn()``'s result, or None after a ``ValueError`` of one line."""
    try:
        return fn()
    except ValueError as err:
        assert "\n" not in str(err), f"a ValueError of more than one line: {err}"
        return None


def _assert_valid_transition(env, tr, batch=None):
    n, m = env.state_dim, env.action_dim
    lead = () if batch is None else (batch,)
    shapes = {"next_state": lead + (n,), "J_s": lead + (n, n), "J_a": lead + (n, m),
              "dr_ds": lead + (n,), "dr_da": lead + (m,)}
    for field, shape in shapes.items():
        value = getattr(tr, field)
        assert value.shape == shape and value.dtype == np.float64, field
        assert np.all(np.isfinite(value)), f"{field} is not finite: {value}"
    assert np.all(np.isfinite(tr.reward))
    if batch is None:
        assert isinstance(tr.reward, float) and isinstance(tr.terminated, bool)
    else:
        assert tr.reward.shape == lead and tr.terminated.shape == lead


def _check_transition(env, state, action):
    """One call's contract; returns the transition (None if refused)."""
    (s, s_values, s_valid), (a, a_values, a_valid) = state, action
    tr = _outcome(lambda: env.transition(s, a))
    if not (np.all(np.isfinite(s_values)) and np.all(np.isfinite(a_values))):
        assert tr is None, "NaN or inf was accepted"
    if s_valid and a_valid:
        assert tr is not None, "a state the task reached, with a plain action, was refused"
        ref = env.transition(s_values, a_values)
        for got, want in zip(tr, ref):  # same code on the same float64 values
            np.testing.assert_array_equal(got, want)
    if tr is not None:
        _assert_valid_transition(env, tr)
    return tr


@pytest.mark.parametrize("name", names())
def test_transition_is_finite_or_a_clear_value_error(name):
    env, _ = _env_and_pool(name)
    _fail_if_huge_states_hang(name)

    # State and action share their form: a compiled kernel meets each kind of array once
    # (a read-only array is a new type to Numba, compiled afresh unless the shell copies it).
    @SETTINGS
    @given(data=st.data(), form=st.sampled_from(list(FORMS)))
    def check(data, form):
        _check_transition(env, data.draw(_state(name, form)), data.draw(_action(name, form)))

    check()


@pytest.mark.parametrize("name", names())
def test_transition_batch_is_finite_or_a_clear_error_and_equals_the_loop(name):
    env, _ = _env_and_pool(name)
    _fail_if_huge_states_hang(name)

    @SETTINGS
    @given(rows=st.lists(st.tuples(_state(name), _action(name)), min_size=1, max_size=6),
           form=st.sampled_from(list(FORMS)))
    def check(rows, form):
        S = np.array([s[1] for s, _ in rows])
        A = np.array([a[1] for _, a in rows])
        batch = _outcome(lambda: env.transition_batch(FORMS[form](S), FORMS[form](A)))
        Sv = np.asarray(FORMS[form](S), dtype=np.float64)
        Av = np.asarray(FORMS[form](A), dtype=np.float64)
        singles = [_outcome(lambda s=s, a=a: env.transition(s, a)) for s, a in zip(Sv, Av)]
        if not (np.all(np.isfinite(Sv)) and np.all(np.isfinite(Av))):
            assert batch is None, "NaN or inf was accepted"
        if all(s[2] and a[2] for s, a in rows) and form in SAME_VALUES:
            assert batch is not None, "states the task reached, with plain actions, were refused"
        # The batch is refused exactly when some row is.
        assert (batch is None) == any(tr is None for tr in singles)
        if batch is None:
            return
        _assert_valid_transition(env, batch, len(rows))
        for b, tr in enumerate(singles):
            for field, want in tr._asdict().items():
                # The same kernel per row, but compiled inside the batch loop: fused
                # multiply-adds may be placed differently, so equal up to rounding, relative
                # to the row's largest input (huge inputs give huge intermediate values).
                scale = max(1.0, np.max(np.abs(Sv[b])), np.max(np.abs(Av[b])))
                np.testing.assert_allclose(getattr(batch, field)[b], want, rtol=1e-10,
                                           atol=1e-10 * scale, err_msg=field)

    check()


@pytest.mark.parametrize("name", names())
def test_step_is_finite_or_a_clear_error_and_a_refused_step_changes_nothing(name):
    env, pool = _env_and_pool(name)
    _fail_if_huge_states_hang(name)

    @SETTINGS
    @given(index=st.integers(0, len(pool) - 1), action=_action(name))
    def check(index, action):
        a, a_values, a_valid = action
        env.reset(seed=index)
        env.set_state(pool[index])
        out = _outcome(lambda: env.step(a))
        if not np.all(np.isfinite(a_values)):
            assert out is None, "NaN or inf was accepted"
        if a_valid:
            assert out is not None, "a plain action was refused"
        if out is None:
            np.testing.assert_array_equal(env.state, pool[index])  # nothing lost
            return
        state, reward, terminated, truncated, info = out
        assert state.shape == (env.state_dim,) and np.all(np.isfinite(state))
        assert isinstance(reward, float) and np.isfinite(reward)
        assert isinstance(terminated, bool) and isinstance(truncated, bool)
        np.testing.assert_array_equal(env.state, state)
        tr = env.transition(pool[index], a_values)
        # step's kernel has no Jacobians; it is compiled separately, equal up to rounding.
        scale = max(1.0, np.max(np.abs(a_values)))
        np.testing.assert_allclose(state, tr.next_state, rtol=1e-10, atol=1e-10 * scale)
        np.testing.assert_allclose(reward, tr.reward, rtol=1e-10, atol=1e-10 * scale)
        assert terminated == tr.terminated

    check()


def _spoil(draw, x):
    """``x`` made unacceptable: a wrong length or rank, or entries that are not real numbers."""
    how = draw(st.sampled_from(["short", "long", "extra axis", "complex", "complex, zero "
                                "imaginary part", "strings", "numeric strings", "None",
                                "ragged", "empty"]))
    if how == "short":
        return x[..., :-1]
    if how == "long":
        return np.concatenate([x, x[..., :1]], axis=-1)
    if how == "extra axis":
        return x[None]
    if how == "complex":
        return x + 1j
    if how == "complex, zero imaginary part":
        return x.astype(complex)
    if how == "strings":
        return np.full(x.shape, "abc")
    if how == "numeric strings":
        return x.astype(str).astype(object)
    if how == "None":
        y = x.astype(object)
        y.flat[0] = None
        return y
    if how == "ragged":
        return [x.tolist(), [1.0]]
    return x[..., :0]


@pytest.mark.parametrize("name", names())
def test_wrong_shapes_and_non_numbers_are_a_clear_value_error(name):
    env, pool = _env_and_pool(name)

    @SETTINGS
    @given(data=st.data())
    def check(data):
        index = data.draw(st.integers(0, len(pool) - 1))
        s, a = pool[index], np.zeros(env.action_dim)
        B = data.draw(st.integers(1, 4))
        S, A = np.repeat(s[None], B, axis=0), np.zeros((B, env.action_dim))
        which = data.draw(st.sampled_from(["state", "action"]))
        if which == "state":
            s, S = _spoil(data.draw, s), _spoil(data.draw, S)
        else:
            a, A = _spoil(data.draw, a), _spoil(data.draw, A)
        assert _outcome(lambda: env.transition(s, a)) is None
        assert _outcome(lambda: env.transition_batch(S, A)) is None
        if which == "action":
            env.reset(seed=index)
            env.set_state(pool[index])
            assert _outcome(lambda: env.step(a)) is None
            np.testing.assert_array_equal(env.state, pool[index])

    check()


@pytest.mark.parametrize("name", names())
def test_batches_of_different_lengths_are_refused(name):
    env, pool = _env_and_pool(name)
    with pytest.raises(ValueError, match="batch"):
        env.transition_batch(pool[:3], np.zeros((2, env.action_dim)))
