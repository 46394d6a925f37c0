"""Simulator throughput: steps/s of every registered task, plain and with Jacobians, one state
at a time from Python and batched in compiled code, with Gymnasium's own ``step`` beside the
Gym-derived tasks."""

import numpy as np

from fastd3pg.bench import Table, median_time

BATCH = 1024
PYTHON_STEPS = 200  # env.step calls per timed sample
# Gymnasium's reference environment and the action it receives for our action +1.
GYM_REFERENCE = {
    "CartPole": ("CartPole-v1", lambda: 1),
    "Pendulum": ("Pendulum-v1", lambda: np.array([2.0])),
    "MountainCar": ("MountainCarContinuous-v0", lambda: np.array([1.0])),
    "Acrobot": ("Acrobot-v1", lambda: 2),
}


def _python_step_rate(env, repeat):
    """``env.step`` steps/s, restarting episodes as they end (Python call overhead included)."""
    action = np.full(env.action_dim, 0.5)
    env.reset(seed=0)

    def run():
        for _ in range(PYTHON_STEPS):
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()

    return PYTHON_STEPS / median_time(run, repeat=repeat)


def _batch_rates(env, repeat, rounds):
    """Compiled batch loops (``dispatch.step_batch``, ``dispatch.step_jac_batch``) over
    ``BATCH`` start states and random actions: steps/s without and with Jacobians."""
    from fastd3pg.physics import dispatch

    n, m, B = env.state_dim, env.action_dim, BATCH
    S = np.array([env.reset(seed=k)[0] for k in range(B)])
    A = np.random.default_rng(0).uniform(-1.0, 1.0, (B, m))
    out, R, T = np.empty((B, n)), np.empty(B), np.empty(B, dtype=np.bool_)
    J_s, J_a = np.empty((B, n, n)), np.empty((B, n, m))
    dr_ds, dr_da = np.empty((B, n)), np.empty((B, m))
    k, p = env.kernels, env.params
    plain = jac = float("inf")
    # Alternate the two and keep the best of each: on a shared machine their ratio then
    # compares like with like.
    for _ in range(rounds):
        plain = min(plain, median_time(lambda: dispatch.step_batch(k, p, S, A, out, R, T),
                                       repeat=repeat))
        jac = min(jac, median_time(
            lambda: dispatch.step_jac_batch(k, p, S, A, out, R, T, J_s, J_a, dr_ds, dr_da),
            repeat=repeat,
        ))
    return B / plain, B / jac


def _gym_step_rate(name, repeat):
    """Gymnasium's ``gym.make(...).step`` steps/s (its default wrappers included), or NaN
    where Gymnasium has no such task or is not installed."""
    if name not in GYM_REFERENCE:
        return float("nan")
    try:
        import gymnasium
    except ImportError:
        return float("nan")
    env_id, action = GYM_REFERENCE[name]
    genv = gymnasium.make(env_id)
    genv.reset(seed=0)
    a = action()

    def run():
        for _ in range(PYTHON_STEPS):
            _, _, terminated, truncated, _ = genv.step(a)
            if terminated or truncated:
                genv.reset()

    return PYTHON_STEPS / median_time(run, repeat=repeat)


def tables(quick=False):
    from fastd3pg.physics import make, names

    repeat = 3 if quick else 7
    rows = []
    for name in names():
        env = make(name)
        state, _ = env.reset(seed=0)
        action = np.full(env.action_dim, 0.5)
        py_step = _python_step_rate(env, repeat)
        py_transition = 1.0 / median_time(lambda: env.transition(state, action), repeat=repeat)
        plain, jac = _batch_rates(env, repeat, rounds=1 if quick else 3)
        gym = _gym_step_rate(name, repeat)
        rows.append([name, py_step, py_transition, plain, jac, plain / jac, gym])
    return [Table(
        f"Simulator steps/s (one core; batched = compiled loop over {BATCH} states)",
        ["task", "env.step (Python, 1 state)", "env.transition with Jacobians (Python, 1 state)",
         "batched step", "batched step with Jacobians", "cost with/without Jacobians",
         "Gymnasium env.step (Python)"],
        rows,
        note="The Python columns are dominated by call overhead (validation, array allocation); "
             "the batched columns are the kernels' speed as a compiled training loop sees it "
             "(dispatch.step_batch / dispatch.step_jac_batch, start states, random actions). "
             "Gymnasium: gym.make(...).step with its default wrappers, '-' where Gymnasium has "
             "no such task or is not installed. Targets: cost with/without Jacobians ≤ 3; "
             "≥ 2,000,000 batched steps/s with Jacobians (Acrobot: ≥ 300,000).",
    )]
