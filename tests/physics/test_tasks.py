"""The kernel contract, checked once for every registered task: dispatch covers the task, the
batch equals the loop, a clipped action has zero derivative, a steady-state compiled step
allocates nothing.

Exact equality between dispatch, the batch loops and the task's own kernels is intended: they
run the same scalar code on the same inputs (the physics kernels use no fastmath, and the
batch loops treat samples independently), so any difference is a wiring error.
"""

import numpy as np
import pytest
from numba.core.runtime import _nrt_python, rtsys

from fastd3pg import rng as _rng
from fastd3pg._jit import jit
from fastd3pg.physics import dispatch, make, names, registry


def sample_pairs(env, count, seed):
    """``count`` (state, action) pairs: states of random-action episodes (actions held ~10
    steps, so that contacts, limits and clips occur), half of them perturbed by three times the
    rollouts' spread per component; actions uniform in [-1.5, 1.5] (a third of the components
    outside [-1, 1])."""
    rng = np.random.default_rng(seed)
    states = []
    for ep in range(4):
        s, _ = env.reset(seed=seed * 100 + ep)
        a = rng.uniform(-1, 1, env.action_dim)
        for _ in range(min(env.horizon, 200)):
            if rng.random() < 0.1:
                a = rng.uniform(-1, 1, env.action_dim)
            states.append(s)
            tr = env.transition(s, a)
            s = env.reset()[0] if tr.terminated else tr.next_state
    S = np.array(states)
    S = S[rng.choice(len(S), count, replace=False)]
    spread = S.std(axis=0)
    half = count // 2
    S[:half] += 3.0 * spread * rng.standard_normal((half, env.state_dim))
    A = rng.uniform(-1.5, 1.5, (count, env.action_dim))
    return S, A


@pytest.fixture(scope="module", params=names())
def env(request):
    return make(request.param)


def test_registry_gives_every_task_its_position_as_id():
    assert names() == [cls.name for cls in registry.TASKS]
    for k, name in enumerate(names()):
        assert make(name).task_id == k == registry.task_id(name)
    with pytest.raises(ValueError, match="MassPoint"):
        registry.task_id("NoSuchTask")


def test_dispatch_calls_the_tasks_own_kernels(env):
    """Every dispatch function, called through this task's kernel addresses, gives exactly what
    the task's kernels give."""
    kern, p, n, m = env.kernels, env.params, env.state_dim, env.action_dim
    for seed in range(5):
        r1, r2 = _rng.make_rng(seed), _rng.make_rng(seed)
        mine, theirs = np.empty(n), np.empty(n)
        env.reset_kernel(p, r1, mine)
        dispatch.reset(kern, p, r2, theirs)
        np.testing.assert_array_equal(theirs, mine)
        np.testing.assert_array_equal(r2, r1)
    S, A = sample_pairs(env, 40, seed=1)
    B = len(S)
    out, R, T = np.empty((B, n)), np.empty(B), np.empty(B, dtype=np.bool_)
    J_s, J_a, dr_ds, dr_da = np.empty((B, n, n)), np.empty((B, n, m)), np.empty((B, n)), np.empty((B, m))
    dispatch.step_batch(kern, p, S, A, out, R, T)
    plain = (out.copy(), R.copy(), T.copy())
    dispatch.step_jac_batch(kern, p, S, A, out, R, T, J_s, J_a, dr_ds, dr_da)
    for b in range(B):
        o = np.empty(n)
        r, t = env.step_kernel(p, S[b], A[b], o)
        np.testing.assert_array_equal(plain[0][b], o)
        assert (plain[1][b], plain[2][b]) == (r, t)
        o2 = np.empty(n)
        assert dispatch.step(kern, p, S[b], A[b], o2) == (r, t)
        np.testing.assert_array_equal(o2, o)
        one = [np.empty(n), np.empty((n, n)), np.empty((n, m)), np.empty(n), np.empty(m)]
        r, t = env.step_jac_kernel(p, S[b], A[b], *one)
        two = [np.empty_like(x) for x in one]
        assert dispatch.step_jac(kern, p, S[b], A[b], *two) == (r, t)
        for x, y, batched in zip(one, two, (out, J_s, J_a, dr_ds, dr_da)):
            np.testing.assert_array_equal(y, x)
            np.testing.assert_array_equal(batched[b], x)
        assert (R[b], T[b]) == (r, t)
        # The step with Jacobians moves the state exactly as the plain step does.
        np.testing.assert_array_equal(one[0], o)


def test_dispatch_refuses_arrays_of_the_wrong_size_or_layout():
    """The kernels behind dispatch do not check their arrays; dispatch does, before calling."""
    env = make("Pendulum")
    kern, p, n, m = env.kernels, env.params, env.state_dim, env.action_dim
    s, a, out = np.zeros(n), np.zeros(m), np.empty(n)
    with pytest.raises(ValueError, match="size"):
        dispatch.step(kern, p, np.zeros(n + 1), a, out)
    with pytest.raises(ValueError, match="size"):
        dispatch.step(kern, p[:-1].copy(), s, a, out)
    with pytest.raises(ValueError, match="size"):
        dispatch.step_jac(kern, p, s, a, out, np.empty((n, n + 1)), np.empty((n, m)),
                          np.empty(n), np.empty(m))
    with pytest.raises(ValueError, match="size"):
        dispatch.reset(kern, p, _rng.make_rng(0), np.empty(n + 2))
    strided = np.zeros(2 * n)[::2]
    with pytest.raises(Exception, match="C-contiguous"):
        dispatch.step(kern, p, strided, a, out)


def test_dispatch_refuses_a_kernel_compiled_earlier_with_another_return_type():
    """A kernel first called from Python keeps the return type Numba inferred for those
    argument types; dispatch must not call it with another one."""

    @jit
    def reset(p, rng, out):
        out[:] = 0.0

    @jit
    def step(p, s, a, out):
        out[:] = s
        return 0.0, 1  # an int where dispatch expects a bool

    class Odd:
        state_dim, action_dim, default_params = 1, 1, (0.0,)
        reset_kernel, step_kernel, step_jac_kernel = reset, step, step

    one = np.zeros(1)
    step(one, one, one, np.empty(1))
    with pytest.raises(TypeError, match="returns"):
        dispatch.kernels(Odd)


def test_transition_batch_equals_looped_transition_and_step(env):
    S, A = sample_pairs(env, 30, seed=2)
    batch = env.transition_batch(S, A)
    env.reset(seed=0)
    for b in range(len(S)):
        one = env.transition(S[b], A[b])
        for field, value in one._asdict().items():
            np.testing.assert_array_equal(getattr(batch, field)[b], value)
        env.set_state(S[b])  # the plain kernel (no Jacobians) gives the same step
        s, reward, terminated, _, _ = env.step(A[b])
        np.testing.assert_array_equal(s, one.next_state)
        assert reward == one.reward and terminated == one.terminated


def test_out_of_range_actions_are_clipped_with_zero_derivative(env):
    S, A = sample_pairs(env, 20, seed=3)
    S, A = S[10:], A[10:]  # unperturbed rollout states
    moved = 0
    for s, a in zip(S, np.clip(A, -0.9, 0.9)):
        inside = env.transition(s, a)
        moved += np.abs(inside.J_a).max() > 0.0
        for j in range(env.action_dim):
            for big, edge in ((3.0, 1.0), (-7.0, -1.0)):
                a_big, a_edge = a.copy(), a.copy()
                a_big[j], a_edge[j] = big, edge
                tr = env.transition(s, a_big)
                np.testing.assert_array_equal(tr.next_state, env.transition(s, a_edge).next_state)
                assert tr.reward == env.transition(s, a_edge).reward
                assert np.all(tr.J_a[:, j] == 0.0) and tr.dr_da[j] == 0.0
    # Inside the box the action moves the state (but where a clip of the state, e.g. a wall
    # or a speed limit, cuts its effect).
    assert moved >= len(S) // 2


def _allocations(fn):
    before = rtsys.get_allocation_stats()
    fn()
    after = rtsys.get_allocation_stats()
    return after.alloc - before.alloc


def test_a_steady_state_compiled_step_allocates_nothing(env):
    """Numba's allocation counters over the compiled batch loops: 400 steps (with and without
    Jacobians) allocate exactly as much as 1 step, i.e. only what the call from Python costs."""
    _nrt_python.memsys_enable_stats()
    S, A = sample_pairs(env, 400, seed=4)
    kern, p, n, m = env.kernels, env.params, env.state_dim, env.action_dim

    def loops(k):
        out, R, T = np.empty((k, n)), np.empty(k), np.empty(k, dtype=np.bool_)
        J = (np.empty((k, n, n)), np.empty((k, n, m)), np.empty((k, n)), np.empty((k, m)))
        Sk, Ak = S[:k].copy(), A[:k].copy()
        return (lambda: dispatch.step_jac_batch(kern, p, Sk, Ak, out, R, T, *J),
                lambda: dispatch.step_batch(kern, p, Sk, Ak, out, R, T))

    for one, many in zip(loops(1), loops(len(S))):
        many()  # compile
        assert _allocations(many) == _allocations(one)
