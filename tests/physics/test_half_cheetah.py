"""HalfCheetah: Jacobians against finite differences in every contact regime, resting,
momentum in flight, friction cone, bounded random motion, loud solver failures."""

import numpy as np
import pytest

from fastd3pg.physics import half_cheetah as hc
from fastd3pg.physics import lcp, make
from fastd3pg.testing import central_difference, relative_error

EPS = 1e-6  # finite-difference step
TOL = 1e-5  # relative error of the Jacobians
N_STATES = 300  # random states per regime


@pytest.fixture(scope="module")
def env():
    return make("HalfCheetah")


def signature(env, s, a):
    """The step's active set: the LCP unknowns that are positive and the joints past a limit."""
    z = env.contact_info(s, a)["z"]
    joints = s[3:7]
    limits = (joints > hc.JOINT_HI) | (joints < hc.JOINT_LO)
    clipped = np.abs(a) >= 1.0
    return tuple((z > 0).ravel()) + tuple(limits) + tuple(clipped)


def active_set_is_stable(env, s, a):
    """No active-set change within the finite-difference stencil around (s, a)."""
    base = signature(env, s, a)
    x = np.concatenate([s, a])
    for i in range(x.size):
        for sign in (-1.0, 1.0):
            w = x.copy()
            w[i] += sign * EPS
            if signature(env, w[:14], w[14:]) != base:
                return False
    return True


def regime(env, s, a):
    """``flight`` (no loaded contact), ``stick`` (every loaded contact sticks), ``slide``
    (every loaded contact slides) or ``mixed``."""
    z = env.contact_info(s, a)["z"]
    loaded = z[:, 0] > 0.0
    if not loaded.any():
        return "flight"
    sliding = z[loaded, 3] > 0.0
    if sliding.all():
        return "slide"
    if not sliding.any():
        return "stick"
    return "mixed"


def jacobian_errors(env, s, a):
    tr = env.transition(s, a)
    J_s = central_difference(lambda x: env.transition(x, a).next_state, s, EPS)
    J_a = central_difference(lambda x: env.transition(s, x).next_state, a, EPS)
    x = np.concatenate([s, a])
    dr = central_difference(lambda w: env.transition(w[:14], w[14:]).reward, x, EPS)
    return max(
        relative_error(tr.J_s, J_s),
        relative_error(tr.J_a, J_a),
        relative_error(np.concatenate([tr.dr_ds, tr.dr_da]), dr),
    )


@pytest.fixture(scope="module")
def rollout_pairs(env):
    """(state, action) pairs of random-action episodes (actions held ~10 steps), by regime."""
    rng = np.random.default_rng(0)
    pairs = {"flight": [], "stick": [], "slide": [], "mixed": []}
    for ep in range(60):
        s, _ = env.reset(seed=ep)
        a = rng.uniform(-1, 1, 4)
        for t in range(150):
            if rng.random() < 0.1:
                a = rng.uniform(-1, 1, 4)
            # Actions well inside (-1, 1): a clipped component's derivative is zero and its
            # kink is skipped anyway.
            pairs[regime(env, s, a)].append((s.copy(), a.copy()))
            s = env.transition(s, a).next_state
    # Flight: the same states lifted 2 m (no point near the ground), with their velocities.
    for s, a in pairs["stick"][:: 3] + pairs["slide"][:: 3]:
        lifted = s.copy()
        lifted[1] += 2.0
        pairs["flight"].append((lifted, a))
    return pairs


@pytest.mark.parametrize("kind", ["flight", "stick", "slide", "mixed"])
def test_jacobians_match_central_differences(env, rollout_pairs, kind):
    rng = np.random.default_rng(1)
    pairs = rollout_pairs[kind]
    order = rng.permutation(len(pairs))
    checked = 0
    worst = 0.0
    for k in order:
        s, a = pairs[k]
        if not active_set_is_stable(env, s, a):
            continue
        err = jacobian_errors(env, s, a)
        worst = max(worst, err)
        assert err < TOL, (kind, err, s, a)
        checked += 1
        if checked == N_STATES:
            break
    assert checked == N_STATES, (kind, checked, len(pairs))


def test_dropped_cheetah_settles_without_creeping(env):
    """Zero torque: after 1,000 steps it lies still (it folds onto its joint limits, knees and
    feet), penetration of the contact points below 1 µm, and it does not creep over the last
    500 steps."""
    for seed in range(3):
        s, _ = env.reset(seed=seed)
        a = np.zeros(4)
        for t in range(1000):
            s = env.transition(s, a).next_state
            if t == 499:
                mid = s.copy()
        lowest = env.points(s)[5:, 1].min()
        assert lowest > -1e-6, lowest  # measured: ~ -1e-8 m
        assert np.abs(s[7:]).max() < 1e-5, s[7:]  # measured: < 1e-6
        assert abs(s[0] - mid[0]) < 1e-6, (s[0], mid[0])  # measured: < 3e-7 m over 5 s
        np.testing.assert_allclose(s[:7], mid[:7], atol=1e-5)


def fd4(f, d):
    """Fourth-order central difference of ``f`` at 0 (an array-valued function of a scalar)."""
    return (8.0 * (f(d) - f(-d)) - (f(2 * d) - f(-2 * d))) / (12.0 * d)


def momentum(env, s):
    """Total linear momentum Σ m ṗ of the five links' centres, ``ṗ`` by differentiating the
    exact centre positions along ``q + ε v`` (fourth order, ~1e-11)."""
    p = env.params
    masses = np.array([p[hc.TORSO_MASS], p[hc.THIGH_MASS], p[hc.SHIN_MASS], p[hc.THIGH_MASS],
                       p[hc.SHIN_MASS]])
    q, v = s[:7], s[7:]
    vel = fd4(lambda e: env.points(np.concatenate([q + e * v, v]))[:5], 1e-4)
    return (masses[:, None] * vel).sum(axis=0), masses.sum()


def test_free_flight_momentum_balance_has_no_external_force(env):
    """In flight the step obeys the discrete momentum balance of (1) exactly (to rounding):
    ``P(q, v⁺) - P(q, v) = -h Σ m J̇c v + (0, -m g h)``, i.e. no force but gravity acts (joint
    torques, limits and damping are internal; no ghost contact or friction), where
    ``Σ m J̇c v = d/dε P(q + ε v, v)``.  Horizontal momentum is thereby conserved up to the
    scheme's O(h) drift over a fixed time (next test)."""
    rng = np.random.default_rng(2)
    h, g = env.dt, env.params[hc.GRAVITY]
    for ep in range(100):
        s, _ = env.reset(seed=ep)
        s[1] += 20.0
        s[7:] += rng.normal(0.0, 3.0, 7)
        s[3:7] = rng.uniform(hc.JOINT_LO - 0.1, hc.JOINT_HI + 0.1)  # limits active too
        nxt = env.transition(s, rng.uniform(-1.5, 1.5, 4)).next_state
        P0, mass = momentum(env, s)
        P1, _ = momentum(env, np.concatenate([s[:7], nxt[7:]]))
        dP = fd4(lambda e: momentum(env, np.concatenate([s[:7] + e * s[7:], s[7:]]))[0], 1e-4)
        residual = P1 - P0 + h * dP - np.array([0.0, -mass * g * h])
        scale = 1.0 + np.abs(P0).max() + np.abs(h * dP).max()
        assert np.abs(residual).max() < 1e-8 * scale, residual


def test_momentum_drift_is_first_order_in_the_step():
    """Halving h halves the momentum drift over a fixed time (a first-order scheme), so the
    dynamics conserve momentum exactly in the limit."""
    drift = []
    for dt in (0.004, 0.002):
        env = make("HalfCheetah", dt=dt)
        s, _ = env.reset(seed=7)
        s[1] += 20.0
        s[7:] = np.array([0.5, 0.0, 1.0, 3.0, -2.0, 2.0, 4.0])
        P0, mass = momentum(env, s)
        steps = int(round(0.1 / dt))
        for _ in range(steps):
            s = env.transition(s, np.zeros(4)).next_state
        P, _ = momentum(env, s)
        expected = P0 + np.array([0.0, -mass * env.params[hc.GRAVITY] * steps * dt])
        drift.append(np.abs(P - expected).max())
    ratio = drift[0] / drift[1]
    assert 1.6 < ratio < 2.5, (drift, ratio)


def test_friction_cone_and_complementarity_at_every_contact(env):
    rng = np.random.default_rng(3)
    mu, slack, h = env.params[hc.FRICTION], env.params[hc.SLACK], env.dt
    loaded = 0
    for ep in range(10):
        s, _ = env.reset(seed=100 + ep)
        a = rng.uniform(-1, 1, 4)
        for t in range(200):
            if rng.random() < 0.1:
                a = rng.uniform(-1, 1, 4)
            info = env.contact_info(s, a)
            assert info["status"] == lcp.OK
            nxt = env.transition(s, a).next_state
            z = info["z"]
            assert np.all(z >= -1e-12)
            friction = np.abs(z[:, 1] - z[:, 2])
            assert np.all(friction <= mu * z[:, 0] + slack + 1e-9), (z, s, a)
            # A loaded contact ends the step on the surface (its linearised gap is zero to
            # the compliance ε λn) and a sticking one does not move tangentially.
            pts_jac = _contact_rows(env, s)
            for i in range(hc.NC):
                # Every point, in the LCP or pruned from it, ends the step (linearised) on
                # or above the ground.
                n_row = pts_jac[i][0]
                assert info["gaps"][i] + h * n_row @ nxt[7:] > -1e-6
                if z[i, 0] > 1e-6:
                    loaded += 1
                    n_row, t_row = pts_jac[i]
                    gap_next = info["gaps"][i] + h * n_row @ nxt[7:]
                    assert abs(gap_next) < 1e-5 * (1 + z[i, 0]), gap_next
                    if z[i, 3] == 0.0:
                        assert abs(t_row @ nxt[7:]) < 1e-5 * (1 + z[i, 0])
                    else:  # sliding: friction saturated and opposing the motion
                        assert friction[i] == pytest.approx(mu * z[i, 0] + slack, abs=1e-9)
                        assert np.sign(z[i, 1] - z[i, 2]) == -np.sign(t_row @ nxt[7:])
            s = nxt
    assert loaded > 1000


def _contact_rows(env, s):
    """(n_i, t_i) = rows z and x of the contact points' Jacobians, by central differences of
    the point positions (the positions are exact, the rows only need ~1e-9)."""
    rows = []
    J = central_difference(lambda q: env.points(np.concatenate([q, s[7:]]))[5:].ravel(),
                           s[:7], 1e-7)
    for i in range(hc.NC):
        rows.append((J[2 * i + 1], J[2 * i]))
    return rows


def test_random_actions_stay_bounded_and_the_solver_never_fails(env):
    """20 episodes × 500 steps (10,000 steps; the generic robustness test runs 100,000 steps of
    every task, this one too, for NaN/inf): the solver succeeds at every step and the
    centre of mass's height and the speeds stay bounded (no energy blow-up)."""
    rng = np.random.default_rng(4)
    p = env.params
    masses = np.array([p[hc.TORSO_MASS], p[hc.THIGH_MASS], p[hc.SHIN_MASS],
                       p[hc.THIGH_MASS], p[hc.SHIN_MASS]])
    worst = 0.0
    for ep in range(20):
        s, _ = env.reset(seed=200 + ep)
        a = rng.uniform(-1.5, 1.5, 4)
        for t in range(500):
            if rng.random() < 0.1:
                a = rng.uniform(-1.5, 1.5, 4)
            assert env.contact_info(s, a)["status"] == lcp.OK
            s = env.transition(s, a).next_state
            assert np.all(np.isfinite(s))
            height = (masses * env.points(s)[:5, 1]).sum() / masses.sum()
            worst = max(worst, height, np.abs(s[7:]).max())
    assert worst < 100.0, worst


def test_reward_is_forward_speed_minus_effort(env):
    s, _ = env.reset(seed=5)
    a = np.array([0.5, -0.3, 2.0, 0.1])
    tr = env.transition(s, a)
    u = np.clip(a, -1, 1)
    assert tr.reward == pytest.approx(tr.next_state[7] - 0.1 * u @ u, abs=1e-12)


def test_invalid_parameters_raise_value_error():
    with pytest.raises(ValueError, match="dt"):
        make("HalfCheetah", dt=0.0)
    with pytest.raises(ValueError, match="friction"):
        make("HalfCheetah", friction=-1.0)


def test_held_random_actions_never_fail_the_solver(env):
    """50,000 steps: 500 random starts, each holding one random action for 100 steps (the
    body ends folded on knees and feet, the nearly singular contact configurations where the
    solver's retries matter); every step is finite."""
    rng = np.random.default_rng(6)
    S = np.array([env.reset(seed=1000 + k)[0] for k in range(500)])
    A = rng.uniform(-1, 1, (500, 4))
    for _ in range(100):
        tr = env.transition_batch(S, A)
        assert np.all(np.isfinite(tr.next_state)) and np.all(np.isfinite(tr.J_s))
        S = tr.next_state
