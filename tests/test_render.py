"""fastd3pg.render: a frame of every task's state, animations, and the two figures."""

import shutil

import numpy as np
import pytest

from fastd3pg.physics import make, names
from fastd3pg.render import Renderer, frame_rate, write_animation
from fastd3pg.render.scenes import SCENES

PNG = b"\x89PNG\r\n\x1a\n"


def test_every_task_has_a_picture():
    assert sorted(SCENES) == sorted(names())


def _states(task, steps=30, seed=0):
    env = make(task)
    state, _ = env.reset(seed=seed)
    states = [state]
    for t in range(steps):
        state, _, terminated, _, _ = env.step(np.full(env.action_dim, 1.0 if t % 12 < 6 else -1.0))
        states.append(state)
        if terminated:
            break
    return env, states


@pytest.mark.parametrize("task", names())
def test_frames_are_rgb_images_that_follow_the_state(task):
    env, states = _states(task)
    draw = Renderer(env, width=160, height=120)
    first = draw(states[0])
    assert first.shape == (120, 160, 3) and first.dtype == np.uint8
    assert len(np.unique(first.reshape(-1, 3), axis=0)) > 2  # something is drawn
    artists = len(draw.figure.axes[0].get_children())
    last = draw(states[-1])
    assert not np.array_equal(first, last)
    np.testing.assert_array_equal(draw(states[0]), first)  # same state, same picture
    assert len(draw.figure.axes[0].get_children()) == artists  # artists moved, none added
    assert 10 <= frame_rate(env) <= 50


def test_renderer_checks_its_input():
    env = make("Pendulum")
    with pytest.raises(ValueError, match="shape"):
        Renderer(env)(np.zeros(2))
    with pytest.raises(ValueError, match="NaN"):
        Renderer(env)([1.0, np.nan, 0.0])
    with pytest.raises(ValueError, match="width"):
        Renderer(env, width=3)


def _distinct_frames(n):
    env, states = _states("Pendulum", steps=n)
    draw = Renderer(env, width=96, height=64)
    return [draw(s, caption=f"step {k}") for k, s in enumerate(states[:n])]


def test_gif_holds_every_frame(tmp_path):
    from PIL import Image

    frames = _distinct_frames(12)
    assert write_animation(frames, tmp_path / "a.gif", fps=25) == 12
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames == 12 and gif.size == (96, 64)
        assert gif.info["duration"] == 40


def test_animation_errors_are_clear_and_leave_no_file(tmp_path, monkeypatch):
    frames = _distinct_frames(3)
    with pytest.raises(ValueError, match="unknown format"):
        write_animation(frames, tmp_path / "a.avi")
    with pytest.raises(ValueError, match="no directory"):
        write_animation(frames, tmp_path / "missing" / "a.gif")
    with pytest.raises(ValueError, match="uint8"):
        write_animation([f.astype(np.float64) for f in frames], tmp_path / "b.gif")
    with pytest.raises(ValueError, match="fps"):
        write_animation(frames, tmp_path / "c.gif", fps=0)

    def interrupted():
        yield frames[0]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_animation(interrupted(), tmp_path / "d.gif")
    assert list(tmp_path.iterdir()) == []  # neither a partial animation nor a temporary file
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match="needs ffmpeg on PATH"):
        write_animation(frames, tmp_path / "e.mp4")


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not on PATH")
def test_mp4_where_ffmpeg_exists(tmp_path):
    assert write_animation(_distinct_frames(6), tmp_path / "a.mp4", fps=10) == 6
    assert (tmp_path / "a.mp4").stat().st_size > 0


def test_die_figure_writes_a_png(tmp_path):
    from fastd3pg.render.draw_die import draw, main

    path = draw(tmp_path / "die.png", seed=1)
    assert path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG
    assert main(["--out", str(tmp_path / "cli.png"), "--seed", "2", "--torque", "0.5"]) == 0
    assert (tmp_path / "cli.png").read_bytes()[:8] == PNG


def test_cheetah_filmstrip_writes_a_png_and_checks_its_input(tmp_path):
    from fastd3pg.render.draw_cheetah import filmstrip, rollout

    env = make("HalfCheetah")
    states = rollout(env, seed=0, steps=30)
    path = filmstrip(states, tmp_path / "strip.png", env, every=10)
    assert path.read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match="shape"):
        filmstrip(states[:, :7], tmp_path / "bad.png", env)
