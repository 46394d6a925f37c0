"""Pictures of the tasks: an RGB frame of any state, animations of episodes, the paper's figures.

>>> from fastd3pg.physics import make
>>> from fastd3pg.render import Renderer, write_animation, frame_rate
>>> env = make("Pendulum")
>>> draw = Renderer(env)                       # one figure, reused for every frame
>>> frame = draw(env.reset(seed=0)[0])         # (300, 400, 3) uint8
>>> write_animation([frame], "pendulum.gif", fps=frame_rate(env))   # .mp4 where ffmpeg exists

Everything is drawn with matplotlib's Agg canvas, so no display is needed. Each task's picture
is a scene in :mod:`fastd3pg.render.scenes`. Figures:
``python -m fastd3pg.render.draw_die`` (a throw drawn as in the paper's Figure 3, which
:mod:`fastd3pg.figure3` makes from trained actors) and
``python -m fastd3pg.render.draw_cheetah`` (a HalfCheetah filmstrip).
"""

from fastd3pg.render.animation import write_animation
from fastd3pg.render.frames import Renderer, frame_rate

__all__ = ["Renderer", "frame_rate", "write_animation"]
