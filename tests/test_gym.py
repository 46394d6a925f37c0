"""fastd3pg.gym: the tasks as Gymnasium environments, one and many at a time."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium")

import fastd3pg.gym as fg  # noqa: E402
from fastd3pg.physics import make, names  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)


def test_importing_the_package_never_imports_gymnasium():
    proc = _python("import sys, fastd3pg, fastd3pg.physics, fastd3pg.render, fastd3pg.eval, "
                   "fastd3pg.train; print('gymnasium' in sys.modules)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_without_gymnasium_the_import_error_says_what_to_install():
    proc = _python("import sys; sys.modules['gymnasium'] = None\n"
                   "try:\n    import fastd3pg.gym\n"
                   "except ImportError as err:\n    print(err)")
    assert proc.returncode == 0, proc.stderr
    assert 'pip install "fastd3pg[gym]"' in proc.stdout
    assert len(proc.stdout.strip().splitlines()) == 1


def test_every_task_is_registered_with_its_horizon():
    for task in names():
        spec = gymnasium.spec(f"fastd3pg/{task}-v0")
        assert spec.max_episode_steps == make(task).horizon
        env = gymnasium.make(f"fastd3pg/{task}-v0")
        assert env.action_space == gymnasium.spaces.Box(-1, 1, (make(task).action_dim,),
                                                        np.float64)
        assert env.observation_space.dtype == np.float64
        assert env.observation_space.shape == (make(task).state_dim,)
        env.close()


@pytest.mark.parametrize("task", names())
def test_check_env_passes_without_warnings(task):
    from gymnasium.utils.env_checker import check_env

    env = gymnasium.make(f"fastd3pg/{task}-v0", render_mode="rgb_array").unwrapped
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    env.close()
    # check_env advises against any infinite Box bound; our bounds are infinite exactly where
    # the dynamics bound nothing (as for the velocities of Gymnasium's own CartPole-v1, which
    # draws the same advice). Where a display exists, check_env also tries render_mode="human";
    # if this process's matplotlib is already on Agg (other tests select it), that mode says
    # it shows nothing. Every other warning fails the test.
    advice = ("space minimum value is -infinity", "space maximum value is infinity",
              "no display, so render_mode='human' shows nothing")
    assert [str(w.message) for w in caught if not any(a in str(w.message) for a in advice)] == []


@pytest.mark.parametrize("task", names())
def test_trajectory_equals_the_simulators_own_steps(task):
    """Same seed, same actions: the same states, rewards and terminations, bit for bit (the
    same compiled step on the same inputs)."""
    env, sim = gymnasium.make(f"fastd3pg/{task}-v0"), make(task)
    obs, _ = env.reset(seed=11)
    state, _ = sim.reset(seed=11)
    np.testing.assert_array_equal(obs, state)
    assert obs.dtype == np.float64
    rng = np.random.default_rng(0)
    for _ in range(60):
        a = rng.uniform(-1.2, 1.2, sim.action_dim)
        obs, reward, terminated, truncated, _ = env.step(a)
        state, r, term, _, _ = sim.step(a)
        np.testing.assert_array_equal(obs, state)
        assert (reward, terminated) == (r, term)
        if terminated:
            break
    env.close()


def test_time_limit_truncates_at_the_horizon():
    env = gymnasium.make("fastd3pg/Pendulum-v0")
    env.reset(seed=0)
    flags = [env.step(np.zeros(1))[3] for _ in range(make("Pendulum").horizon)]
    assert flags == [False] * (len(flags) - 1) + [True]


def test_reset_seed_makes_episodes_reproducible_and_start_state_option():
    env = gymnasium.make("fastd3pg/RollingDie-v0")
    a, _ = env.reset(seed=5)
    b, _ = env.reset(seed=5)
    c, _ = env.reset()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    start = np.array([-2.0, 2.0, 0.3, 1.0, 0.0, 0.0])
    obs, _ = env.reset(seed=1, options={"state": start})
    np.testing.assert_array_equal(obs, start)
    np.testing.assert_array_equal(env.step([0.5])[0], make("RollingDie").transition(start, [0.5]).next_state)


@pytest.mark.parametrize("task", names())
def test_info_jacobians_equal_transition(task):
    env, sim = gymnasium.make(f"fastd3pg/{task}-v0", jacobians=True), make(task)
    obs, info = env.reset(seed=2)
    rng = np.random.default_rng(1)
    for _ in range(20):
        a = rng.uniform(-1, 1, sim.action_dim)
        tr = sim.transition(obs, a)
        obs, _, terminated, _, info = env.step(a)
        for key in fg.JACOBIAN_KEYS:
            np.testing.assert_array_equal(info[key], getattr(tr, key), err_msg=key)
        if terminated:
            break
    assert "J_s" not in gymnasium.make(f"fastd3pg/{task}-v0").reset(seed=0)[1]


@pytest.mark.parametrize("task", names())
def test_observations_stay_within_the_declared_bounds(task):
    """Bang-bang actions drive the speeds into their clips; every state stays in the space."""
    env = fg.TaskEnv(task)
    rng = np.random.default_rng(3)
    for episode in range(3):
        obs, _ = env.reset(seed=episode)
        assert env.observation_space.contains(obs)
        for t in range(300 if task != "HalfCheetah" else 100):
            a = np.sign(np.sin(0.05 * t * (episode + 1) + rng.uniform(0, 0.3, env.task.action_dim)))
            obs, _, terminated, _, _ = env.step(a)
            assert env.observation_space.contains(obs), (t, obs)
            if terminated:
                break


def test_bounds_are_the_dynamics_limits():
    low, high = fg.observation_space(make("Pendulum")).low, fg.observation_space(make("Pendulum")).high
    np.testing.assert_array_equal(high, [1, 1, 8])
    np.testing.assert_array_equal(low, [-1, -1, -8])
    space = fg.observation_space(make("MountainCar", max_speed=0.05))
    np.testing.assert_array_equal(space.low, [-1.2, -0.05])
    assert np.all(np.isinf(fg.observation_space(make("HalfCheetah")).high))


def _loop_reference(task, num_envs, seed, actions, max_steps):
    """Single registered envs stepped in a loop with next-step automatic reset."""
    envs = [gymnasium.make(f"fastd3pg/{task}-v0", max_episode_steps=max_steps)
            for _ in range(num_envs)]
    obs = np.array([e.reset(seed=seed + i)[0] for i, e in enumerate(envs)])
    done = np.zeros(num_envs, dtype=bool)
    rows = [(obs, None, None, None)]
    for A in actions:
        step = []
        for i, e in enumerate(envs):
            if done[i]:
                step.append((e.reset()[0], 0.0, False, False))
            else:
                step.append(e.step(A[i])[:4])
        obs = np.array([s[0] for s in step])
        R = np.array([s[1] for s in step])
        T = np.array([s[2] for s in step])
        U = np.array([s[3] for s in step])
        done = T | U
        rows.append((obs, R, T, U))
    return rows


@pytest.mark.parametrize("task", names())
def test_vector_env_equals_single_envs_in_a_loop_with_autoreset(task):
    """The vector env steps through the batch kernel (compiled separately from the single
    step, so fastmath may round a few operations differently): states agree to 1e-9, rewards
    likewise, flags and resets exactly."""
    N, seed, max_steps = 4, 20, 12
    rng = np.random.default_rng(4)
    m = make(task).action_dim
    actions = [np.sign(rng.uniform(-1, 1, (N, m))) for _ in range(40)]
    reference = _loop_reference(task, N, seed, actions, max_steps)
    venv = fg.TaskVectorEnv(task, N, max_episode_steps=max_steps)
    assert venv.metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.NEXT_STEP
    obs, _ = venv.reset(seed=seed)
    np.testing.assert_array_equal(obs, reference[0][0])
    resets = 0
    for A, (obs_ref, R_ref, T_ref, U_ref) in zip(actions, reference[1:]):
        obs, R, T, U, _ = venv.step(A)
        np.testing.assert_allclose(obs, obs_ref, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(R, R_ref, rtol=1e-9, atol=1e-9)
        np.testing.assert_array_equal(T, T_ref)
        np.testing.assert_array_equal(U, U_ref)
        resets += int(np.sum(T | U))
    assert resets >= N  # every sub-environment was reset at least once
    assert venv.observation_space.shape == (N, make(task).state_dim)


def test_make_vec_uses_the_vector_env_and_its_jacobians_equal_transition_batch():
    venv = gymnasium.make_vec("fastd3pg/CartPole-v0", num_envs=3, jacobians=True)
    assert isinstance(venv.unwrapped, fg.TaskVectorEnv)
    sim = make("CartPole")
    obs, _ = venv.reset(seed=0)
    done = np.zeros(3, dtype=bool)
    for t in range(30):
        A = np.full((3, 1), 1.0 if t % 10 < 5 else -0.3)
        tr = sim.transition_batch(obs, A)
        new, _, T, U, info = venv.step(A)
        alive = ~done
        np.testing.assert_array_equal(info["_J_s"], alive)
        for key in fg.JACOBIAN_KEYS:
            np.testing.assert_array_equal(info[key][alive], getattr(tr, key)[alive])
        obs, done = new, T | U
    assert venv.metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.NEXT_STEP


def test_vector_reset_mask_resets_only_the_masked_envs():
    venv = fg.TaskVectorEnv("Pendulum", 3)
    obs, _ = venv.reset(seed=0)
    moved, *_ = venv.step(np.ones((3, 1)))
    again, _ = venv.reset(seed=0, options={"reset_mask": np.array([True, False, True])})
    np.testing.assert_array_equal(again[[0, 2]], obs[[0, 2]])
    np.testing.assert_array_equal(again[1], moved[1])


def _one_line_error(exc_type, fn, match):
    with pytest.raises(exc_type, match=match) as err:
        fn()
    assert "\n" not in str(err.value)


def test_bad_input_gives_one_clear_error():
    _one_line_error(gymnasium.error.Error, lambda: gymnasium.make("fastd3pg/NoSuchTask-v0"),
                    "NoSuchTask")
    _one_line_error(ValueError, lambda: fg.TaskEnv("NoSuchTask"), "unknown task")
    env = gymnasium.make("fastd3pg/HalfCheetah-v0")
    env.reset(seed=0)
    _one_line_error(ValueError, lambda: env.step(np.zeros(3)), "shape")
    _one_line_error(ValueError, lambda: env.step([0.0, np.nan, 0.0, 0.0]), "NaN")
    _one_line_error(ValueError, lambda: env.step(["a", "b", "c", "d"]), "numeric")
    venv = fg.TaskVectorEnv("Pendulum", 2)
    venv.reset(seed=0)
    _one_line_error(ValueError, lambda: venv.step(np.zeros((3, 1))), "shape")
    _one_line_error(ValueError, lambda: venv.step(np.array([[0.0], [np.inf]])), "NaN")
    _one_line_error(ValueError, lambda: fg.TaskEnv("Pendulum", render_mode="video"), "render_mode")


def test_rgb_array_rendering_for_every_task():
    for task in names():
        env = gymnasium.make(f"fastd3pg/{task}-v0", render_mode="rgb_array")
        env.reset(seed=0)
        first = env.render()
        for _ in range(5):
            env.step(np.ones(make(task).action_dim))
        later = env.render()
        assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
        assert not np.array_equal(first, later), task  # the picture follows the state
        env.close()
    venv = fg.TaskVectorEnv("Acrobot", 2, render_mode="rgb_array")
    venv.reset(seed=0)
    frames = venv.render()
    assert len(frames) == 2 and not np.array_equal(frames[0], frames[1])


def test_human_rendering_without_a_display_warns_once_and_goes_on():
    import matplotlib

    matplotlib.use("Agg")  # what matplotlib picks where there is no display
    env = fg.TaskEnv("Pendulum", render_mode="human")
    with pytest.warns(UserWarning, match="no display"):
        env.reset(seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env.step([0.5])
    assert env.render() is None
    env.close()


def test_stable_baselines3_sac_trains_on_a_task():
    sb3 = pytest.importorskip("stable_baselines3")
    env = gymnasium.make("fastd3pg/Pendulum-v0")
    model = sb3.SAC("MlpPolicy", env, learning_starts=100, batch_size=32, seed=0,
                    policy_kwargs={"net_arch": [32, 32]}, device="cpu")
    model.learn(total_timesteps=300)
    assert model.num_timesteps == 300
    assert model.replay_buffer.size() == 300
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (1,) and np.all(np.abs(action) <= 1.0)
