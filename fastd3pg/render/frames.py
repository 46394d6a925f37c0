"""A task's state as an RGB image, drawn with matplotlib's Agg canvas (no display needed)."""

import numpy as np


def frame_rate(env) -> int:
    """Frames per second of an animation of ``env``: real time (``1/dt``), kept within
    [10, 50] so that slow tasks still move and GIF viewers honour the frame time."""
    return int(min(50, max(10, round(1.0 / env.dt))))


class Renderer:
    """``Renderer(env)(state) -> (height, width, 3) uint8``: a picture of ``state``.

    One figure and one set of artists serve every frame (only the artists move), so drawing an
    episode costs one canvas redraw per frame. ``caption`` writes a line of text in the top
    left corner (e.g. the time). ``width`` and ``height`` are in pixels.
    """

    def __init__(self, env, width: int = 400, height: int = 300):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        from fastd3pg.render.scenes import SCENES

        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 16 <= value <= 4096:
                raise ValueError(f"{name} must be an integer in [16, 4096] pixels, got {value!r}")
        if env.name not in SCENES:
            raise ValueError(f"no picture of task {env.name!r}; drawn: {', '.join(SCENES)}")
        self.env, self.width, self.height = env, int(width), int(height)
        dpi = 100
        self.figure = Figure(figsize=(self.width / dpi, self.height / dpi), dpi=dpi,
                             facecolor="white")
        self.canvas = FigureCanvasAgg(self.figure)
        ax = self.figure.add_axes((0.0, 0.0, 1.0, 1.0))
        ax.set_axis_off()
        self.scene = SCENES[env.name](env, ax, self.height / self.width)
        self.caption = ax.text(0.02, 0.97, "", transform=ax.transAxes, va="top", ha="left",
                               fontsize=9, color="0.2", family="monospace")

    def __call__(self, state, caption: str = "") -> np.ndarray:
        x = np.asarray(state, dtype=np.float64)
        if x.shape != (self.env.state_dim,):
            raise ValueError(f"{self.env.name}: state must have shape ({self.env.state_dim},), "
                             f"got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{self.env.name}: cannot draw a state with NaN or inf: {x}")
        self.scene.update(x)
        self.caption.set_text(caption)
        self.canvas.draw()
        rgba = np.asarray(self.canvas.buffer_rgba())
        return np.ascontiguousarray(rgba[:, :, :3])

    def close(self):
        self.figure.clear()
