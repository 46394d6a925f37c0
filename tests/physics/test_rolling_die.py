import numpy as np
import pytest

from fastd3pg.physics import make
from fastd3pg.physics import rolling_die as rd
from fastd3pg.testing import relative_error

EPS = 1e-6  # finite-difference step


def central_difference(f, x, eps=EPS):
    """Fourth-order central differences (steps ±eps, ±2eps), shape (d, k) or (k,).

    Right after a resting contact the step is strongly curved (third derivatives ~1e8 right
    after a hold followed by a bounce), so the second-order rule's eps² error alone can reach
    1e-5; the fourth-order rule leaves only round-off (~1e-10)."""
    x = np.asarray(x, dtype=np.float64)
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = eps
        f1 = np.asarray(f(x + e)) - np.asarray(f(x - e))
        f2 = np.asarray(f(x + 2 * e)) - np.asarray(f(x - 2 * e))
        cols.append((8.0 * f1 - f2) / (12.0 * eps))
    return np.stack(cols, axis=-1)


def energy(env, s):
    m, h, g = env.params[rd.MASS], env.params[rd.HALF_SIZE], env.params[rd.GRAVITY]
    inertia = 2.0 / 3.0 * m * h * h
    return 0.5 * m * (s[3] ** 2 + s[4] ** 2) + 0.5 * inertia * s[5] ** 2 + m * g * s[1]


def lowest_corner(env, s):
    return env.corners(s)[:, 1].min()


def signature(env, s, a):
    """The step's sequence of contact events (kind and corner; a flat die's corner is a tie)."""
    return tuple(e[0] if e[0] == "flat" else (e[0], e[1]) for e in env.events(s, a))


def mode_is_stable(env, s, a):
    """No contact-mode change within the finite-difference stencil around (s, a)."""
    base = signature(env, s, a)
    z = np.concatenate([s, a])
    for i in range(7):
        for sign in (-2.0, -1.0, 1.0, 2.0):
            w = z.copy()
            w[i] += sign * EPS
            if signature(env, w[:6], w[6:]) != base:
                return False
    return True


def jacobian_errors(env, s, a):
    tr = env.transition(s, a)
    J_s = central_difference(lambda x: env.transition(x, a).next_state, s, EPS)
    J_a = central_difference(lambda x: env.transition(s, x).next_state, a, EPS)
    z = np.concatenate([s, a])
    dr = central_difference(lambda w: env.transition(w[:6], w[6:]).reward, z, EPS)
    return {
        "J_s": relative_error(tr.J_s, J_s),
        "J_a": relative_error(tr.J_a, J_a),
        # dr/ds and dr/da as one gradient: dr/da alone is ~0 in flight (the torque moves only θ)
        "dr": relative_error(np.concatenate([tr.dr_ds, tr.dr_da]), dr),
    }


def rollout_states(env, episodes, rng, action_scale=1.0):
    pairs = []
    for ep in range(episodes):
        s, _ = env.reset(seed=ep)
        for _ in range(env.horizon):
            a = rng.uniform(-action_scale, action_scale, 1)
            pairs.append((s, a))
            s = env.transition(s, a).next_state
    return pairs


def near_ground_states(env, count, rng):
    """``count`` states, lowest corner at most 15 cm up, whose step contains an impact."""
    pairs = []
    while len(pairs) < count:
        th = rng.uniform(-np.pi, np.pi)
        y = -lowest_corner(env, [0, 0, th, 0, 0, 0]) + rng.uniform(0.0, 0.15)
        s = np.array([rng.uniform(-1, 1), y, th, rng.uniform(-3, 3), rng.uniform(-6, 1),
                      rng.uniform(-8, 8)])
        a = rng.uniform(-0.99, 0.99, 1)
        if env.events(s, a):
            pairs.append((s, a))
    return pairs


@pytest.mark.parametrize("params", [{}, {"restitution": 1.0, "friction": 0.0},
                                    {"restitution": 0.2, "friction": 0.2}])
def test_jacobians_match_finite_differences_through_impacts(params):
    env = make("RollingDie", **params)
    rng = np.random.default_rng(0)
    pairs = rollout_states(env, 4, rng)
    pairs = [pairs[i] for i in rng.permutation(len(pairs))[:300]]
    pairs += near_ground_states(env, 300, rng)
    checked = with_impact = skipped = 0
    kinds = set()
    for s, a in pairs:
        if not mode_is_stable(env, s, a):
            skipped += 1
            continue
        errors = jacobian_errors(env, s, a)
        assert max(errors.values()) < 1e-5, (s, a, env.events(s, a), errors)
        checked += 1
        events = signature(env, s, a)
        with_impact += any(e != "flat" for e in events)
        kinds.update(e if e == "flat" else e[0] for e in events)
    assert checked >= 500 and with_impact >= 200, (checked, with_impact, skipped)
    assert skipped < 0.1 * len(pairs), skipped
    assert "bounce-slide" in kinds, kinds
    if not params:  # every contact mode of the default die was among the checked points
        assert {"bounce-stick", "hold-stick", "hold-slide", "flat"} <= kinds, kinds


def test_several_impacts_in_one_step_are_differentiated():
    env = make("RollingDie")
    rng = np.random.default_rng(5)
    checked = 0
    for s, a in near_ground_states(env, 1500, rng):
        events = signature(env, s, a)
        if len([e for e in events if e != "flat"]) < 2 or not mode_is_stable(env, s, a):
            continue
        errors = jacobian_errors(env, s, a)
        assert max(errors.values()) < 1e-5, (s, a, events, errors)
        checked += 1
    assert checked >= 20, checked


def test_energy_capped_sliding_bounces_are_differentiated():
    env = make("RollingDie", restitution=0.9, friction=0.3)
    rng = np.random.default_rng(9)
    checked = 0
    for s, a in near_ground_states(env, 1500, rng):
        if not any(e[0] == "bounce-capped" for e in env.events(s, a)):
            continue
        if mode_is_stable(env, s, a):
            errors = jacobian_errors(env, s, a)
            assert max(errors.values()) < 1e-5, (s, a, env.events(s, a), errors)
            checked += 1
    assert checked >= 15, checked


@pytest.mark.parametrize("params", [{}, {"restitution": 0.3, "friction": 0.0}])
def test_resting_contact_steps_are_differentiated(params):
    """Steps where a corner is held on the ground (the die pivoting on it), from rollouts."""
    env = make("RollingDie", **params)
    rng = np.random.default_rng(8)
    held = [(s, a) for s, a in rollout_states(env, 40, rng)
            if any(e[0].startswith("hold") for e in env.events(s, a))]
    checked = 0
    for s, a in held[:150]:
        if not mode_is_stable(env, s, a):
            continue
        errors = jacobian_errors(env, s, a)
        assert max(errors.values()) < 1e-5, (s, a, env.events(s, a), errors)
        checked += 1
    assert checked >= 100, (checked, len(held))


def test_energy_is_conserved_through_impacts_with_restitution_one_and_no_friction():
    env = make("RollingDie", restitution=1.0, friction=0.0)
    bounces = 0
    for seed in range(20):
        s, _ = env.reset(seed=seed)
        e0 = energy(env, s)
        for _ in range(300):
            bounces += len(env.events(s, [0.0]))
            s = env.transition(s, [0.0]).next_state
            assert abs(energy(env, s) - e0) < 1e-10 * e0
    assert bounces >= 100, bounces


def test_impacts_never_add_energy():
    for params in ({}, {"restitution": 1.0, "friction": 0.5}, {"restitution": 0.9, "friction": 0.3}):
        env = make("RollingDie", **params)
        for seed in range(10):
            s, _ = env.reset(seed=seed)
            for _ in range(200):
                events = [e[0] for e in env.events(s, [0.0])]
                s2 = env.transition(s, [0.0]).next_state
                if events and all(k.startswith("bounce") or k == "two" for k in events):
                    assert energy(env, s2) <= energy(env, s) + 1e-9, (params, s, events)
                s = s2


def _impact_velocities(env, s, a):
    """Corner normal velocity just before and just after the first impact of the step."""
    (kind, k, t, *_), = env.events(s, a)[:1]
    alpha, _ = rd._action(env.params, np.asarray(a, float))
    g, h, dt = env.params[rd.GRAVITY], env.params[rd.HALF_SIZE], env.params[rd.DT]
    before = np.array(s, float)
    rd.fly(before, alpha, g, t)
    after = env.transition(s, a).next_state.copy()
    rd.fly(after, alpha, g, -(dt - t))  # the flight after the impact, run backwards
    rx_b, _ = rd.corner(k, h, before[2])
    rx_a, ry_a = rd.corner(k, h, after[2])
    return kind, before[4] + before[5] * rx_b, after[4] + after[5] * rx_a, after[3] - after[5] * ry_a


@pytest.mark.parametrize("e", [0.0, 0.3, 0.7, 1.0])
def test_restitution_reverses_and_scales_the_normal_contact_velocity(e):
    env = make("RollingDie", restitution=e, friction=0.0)
    rng = np.random.default_rng(2)
    checked = 0
    for s, a in near_ground_states(env, 400, rng):
        events = env.events(s, a)
        if len(events) != 1 or events[0][0] != "bounce-slide":
            continue
        kind, vn_before, vn_after, _ = _impact_velocities(env, s, a)
        assert vn_before < 0
        assert vn_after == pytest.approx(-e * vn_before, abs=1e-9)
        checked += 1
    assert checked >= 50


def test_sticking_impacts_stop_the_corner_sliding_and_bounce_it_up():
    env = make("RollingDie", restitution=0.5, friction=0.8, torque_scale=0.5)
    rng = np.random.default_rng(10)
    checked = 0
    for s, a in near_ground_states(env, 300, rng):
        events = env.events(s, a)
        if len(events) != 1 or events[0][0] != "bounce-stick":
            continue
        _, vn_before, vn_after, vt_after = _impact_velocities(env, s, a)
        assert vt_after == pytest.approx(0.0, abs=1e-9)
        assert vn_before < 0 <= vn_after
        checked += 1
    assert checked >= 50


def test_no_tunnelling_at_ten_times_the_throw_speed():
    env = make("RollingDie")
    rng = np.random.default_rng(3)
    for _ in range(200):
        # Typical throws land at ~6 m/s and spin at up to 6 rad/s: 10x both.
        s = np.array([0.0, rng.uniform(1.0, 3.0), rng.uniform(-np.pi, np.pi),
                      rng.uniform(-25, 25), rng.uniform(-60, -30), rng.uniform(-60, 60)])
        for _ in range(40):
            for kind, k, t, x, y, th in env.events(s, rng.uniform(-1, 1, 1)):
                if kind != "flat":
                    assert abs(y + rd.corner(k, env.params[rd.HALF_SIZE], th)[1]) < 1e-9
            s = env.transition(s, rng.uniform(-1, 1, 1)).next_state
            assert lowest_corner(env, s) > -1e-9, s


def test_no_tunnelling_even_at_a_hundred_times_the_throw_speed():
    env = make("RollingDie")
    rng = np.random.default_rng(11)
    B = 5000
    th = rng.uniform(-np.pi, np.pi, B)
    low = np.array([lowest_corner(env, [0, 0, t, 0, 0, 0]) for t in th])
    S = np.column_stack([np.zeros(B), -low + rng.uniform(0, 0.3, B), th, rng.normal(0, 300, B),
                         -np.abs(rng.normal(0, 600, B)), rng.normal(0, 600, B)])
    tr = env.transition_batch(S, rng.uniform(-1, 1, (B, 1)))
    assert min(lowest_corner(env, s) for s in tr.next_state) > -1e-9


def test_a_die_dropped_flat_comes_to_rest_and_stays_without_drift():
    env = make("RollingDie")
    rng = np.random.default_rng(4)
    s = np.array([0.3, 1.5, 0.0, 0.4, 0.0, 0.0])
    for t in range(200):
        s = env.transition(s, rng.uniform(-1, 1, 1)).next_state
        if np.all(s[3:] == 0.0):
            break
    assert np.all(s[3:] == 0.0), s
    assert s[1] == pytest.approx(env.params[rd.HALF_SIZE], abs=1e-12)
    rest = s.copy()
    for _ in range(1000):
        s = env.transition(s, rng.uniform(-1, 1, 1)).next_state
        np.testing.assert_array_equal(s, rest)


def test_thrown_dice_end_lying_flat_and_never_sink():
    env = make("RollingDie")
    h = env.params[rd.HALF_SIZE]
    for seed in range(20):
        s, _ = env.reset(seed=seed)
        for _ in range(500):
            s = env.transition(s, [0.0]).next_state
            assert lowest_corner(env, s) > -1e-9
        assert np.all(s[3:] == 0.0) and s[1] == pytest.approx(h, abs=1e-12), (seed, s)
        assert abs(np.sin(2 * s[2])) < 1e-12


def test_reward_is_the_smoothed_distance_to_the_target():
    env = make("RollingDie", target_x=1.5)
    s = np.array([-1.0, 3.0, 0.2, 0.5, 1.0, 0.0])
    tr = env.transition(s, [0.0])
    c = tr.next_state[:2] - np.array([1.5, env.params[rd.HALF_SIZE]])
    assert tr.reward == pytest.approx(0.1 - np.sqrt(c @ c + 0.01), abs=1e-14)
    assert tr.reward <= env.max_reward


@pytest.mark.parametrize("params,match", [
    ({"restitution": 1.5}, "restitution"),
    ({"friction": -0.1}, "friction"),
    ({"torque_scale": 10.0}, "torque_scale"),
    ({"mass": 0.0}, "mass"),
    ({"dt": float("nan")}, "finite"),
])
def test_bad_parameters_raise_clear_errors(params, match):
    with pytest.raises(ValueError, match=match):
        make("RollingDie", **params)


def test_bad_states_raise_clear_errors():
    env = make("RollingDie")
    with pytest.raises(ValueError, match="NaN"):
        env.transition([0, np.nan, 0, 0, 0, 0], [0.0])
    with pytest.raises(ValueError, match="shape"):
        env.events(np.zeros(5), [0.0])
