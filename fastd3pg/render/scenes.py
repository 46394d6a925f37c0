"""One scene per task: the artists of a picture of the task, made once, moved to each state.

A scene is built on a matplotlib ``Axes`` from the task's env (its physical constants set the
sizes) and redraws a state by moving its artists (``update(state)``), so that an animation
draws every frame on the same figure. The registry :data:`SCENES` maps a task's name to its
scene; a task without one cannot be drawn (a test checks that every task has one).
"""

import math

import numpy as np
from matplotlib.patches import Polygon

INK = "0.15"
GROUND = "0.35"


def _params(env) -> dict:
    return dict(zip(env.param_names, env.params.tolist()))


def _box(cx, cy, half_w, half_h):
    """Corners (4, 2) of an upright rectangle centred at ``(cx, cy)``."""
    return np.array([[cx - half_w, cy - half_h], [cx + half_w, cy - half_h],
                     [cx + half_w, cy + half_h], [cx - half_w, cy + half_h]])


class Scene:
    """Base class: a view of at least ``xlim`` × ``ylim``, with equal scales on both axes
    unless ``equal`` is False (then the view is exactly that)."""

    xlim = (-1.0, 1.0)
    ylim = (-1.0, 1.0)
    equal = True

    def __init__(self, env, ax, aspect):
        """``aspect``: the axes' height over width in pixels."""
        self.env, self.ax, self.p = env, ax, _params(env)
        if self.equal:  # widen the view in one direction to keep the scales equal
            (x0, x1), (y0, y1) = self.xlim, self.ylim
            w, h = max(x1 - x0, (y1 - y0) / aspect), max(y1 - y0, (x1 - x0) * aspect)
            cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
            self.xlim, self.ylim = (cx - w / 2, cx + w / 2), (cy - h / 2, cy + h / 2)
        ax.set_xlim(*self.xlim)
        ax.set_ylim(*self.ylim)
        self.build()

    def build(self):
        raise NotImplementedError

    def update(self, state):
        raise NotImplementedError


class MassPointScene(Scene):
    """The point on its line; the goal zone around the origin in green."""

    xlim, ylim = (-2.6, 1.6), (-0.4, 0.4)

    def build(self):
        ax, r = self.ax, self.p["goal_radius"]
        ax.axhline(0.0, color=GROUND, lw=1.5, zorder=1)
        ax.axvspan(-max(r, 0.02), max(r, 0.02), color="tab:green", alpha=0.4, zorder=0)
        ax.plot([self.p["x0"]], [0.0], "|", color="0.6", ms=14)
        (self.point,) = ax.plot([], [], "o", color="tab:blue", ms=14, zorder=3)

    def update(self, state):
        self.point.set_data([state[0]], [0.0])


class CartPoleScene(Scene):
    """Cart on its track (the limits ``±x_threshold`` in red), the pole leaning by ``θ``
    (clockwise positive, as in Gym's picture)."""

    xlim, ylim = (-3.0, 3.0), (-0.7, 1.5)
    cart = (0.25, 0.15)  # half width, half height (m)

    def build(self):
        ax, xt = self.ax, self.p["x_threshold"]
        ax.axhline(0.0, color=GROUND, lw=1.5, zorder=1)
        ax.plot([-xt, -xt, None, xt, xt], [-0.3, 0.3, None, -0.3, 0.3], color="tab:red", lw=2)
        self.body = ax.add_patch(Polygon(_box(0, 0, *self.cart), closed=True, fc="tab:gray",
                                         ec=INK, zorder=2))
        (self.pole,) = ax.plot([], [], color="tab:brown", lw=6, solid_capstyle="round", zorder=3)
        (self.axle,) = ax.plot([], [], "o", color=INK, ms=5, zorder=4)

    def pole_end(self, state):
        length = 2.0 * self.p["length"]  # Gym's ``length`` is half the pole
        return state[0] + length * math.sin(state[2]), length * math.cos(state[2])

    def update(self, state):
        x = state[0]
        self.body.set_xy(_box(x, 0.0, *self.cart))
        tx, ty = self.pole_end(state)
        self.pole.set_data([x, tx], [0.0, ty])
        self.axle.set_data([x], [0.0])


class CartPoleSwingUpScene(CartPoleScene):
    """Cart and pole; ``θ = 0`` up and, by the dynamics' sign, positive to the left."""

    xlim, ylim = (-3.0, 3.0), (-1.0, 1.0)

    def pole_end(self, state):
        length, th = self.p["length"], math.atan2(state[3], state[2])
        return state[0] - length * math.sin(th), length * math.cos(th)


class PendulumScene(Scene):
    """The rod from its pivot; ``θ = 0`` up, counter-clockwise positive (Gym's picture)."""

    xlim, ylim = (-1.3, 1.3), (-1.3, 1.3)

    def build(self):
        (self.rod,) = self.ax.plot([], [], color="tab:red", lw=8, solid_capstyle="round")
        self.ax.plot([0.0], [0.0], "o", color=INK, ms=6, zorder=3)
        self.length = self.p["l"] / max(self.p["l"], 1.0)  # fits the view for any length

    def update(self, state):
        th = math.atan2(state[1], state[0])
        self.rod.set_data([0.0, -self.length * math.sin(th)], [0.0, self.length * math.cos(th)])


class MountainCarScene(Scene):
    """The car on the track ``y = 0.45 sin(3x) + 0.55`` (Gym's picture), the flag at
    ``goal_position``."""

    equal = False

    def __init__(self, env, ax, aspect):
        p = _params(env)
        self.xlim = (p["min_position"], p["max_position"])
        self.ylim = (0.0, 1.25)
        super().__init__(env, ax, aspect)

    @staticmethod
    def height(x):
        return 0.45 * np.sin(3.0 * x) + 0.55

    def build(self):
        ax = self.ax
        xs = np.linspace(*self.xlim, 200)
        ax.plot(xs, self.height(xs), color=GROUND, lw=2)
        goal = self.p["goal_position"]
        top = self.height(goal)
        ax.plot([goal, goal], [top, top + 0.15], color=INK, lw=1.5)
        ax.fill([goal, goal, goal + 0.08], [top + 0.15, top + 0.09, top + 0.12], color="gold")
        (self.car,) = ax.plot([], [], "o", color="tab:blue", mec=INK, ms=14, zorder=3)

    def update(self, state):
        self.car.set_data([state[0]], [self.height(state[0])])


class AcrobotScene(Scene):
    """The two links from the pivot (angles from hanging down, Gym's picture) and the goal
    line one link-length above the pivot."""

    xlim, ylim = (-2.2, 2.2), (-2.2, 2.2)

    def build(self):
        ax = self.ax
        ax.axhline(1.0, color="0.5", lw=1, ls="--")
        (self.links,) = ax.plot([], [], color="tab:blue", lw=6, solid_capstyle="round",
                                marker="o", mfc="gold", mec=INK, ms=7)
        ax.plot([0.0], [0.0], "o", color=INK, ms=8, zorder=3)

    def update(self, state):
        c1, s1, c2, s2 = state[:4]
        l1 = self.p["link_length_1"]
        c12, s12 = c1 * c2 - s1 * s2, s1 * c2 + c1 * s2
        x1, y1 = l1 * s1, -l1 * c1
        self.links.set_data([0.0, x1, x1 + s12], [0.0, y1, y1 - c12])  # link 2 is 1 m (Gym)


class RollingDieScene(Scene):
    """The die over the ground, the target zone in green."""

    xlim, ylim = (-4.0, 6.0), (-0.3, 3.7)

    def build(self):
        ax, h = self.ax, self.p["half_size"]
        target = self.p["target_x"]
        ax.axvspan(target - h, target + h, color="tab:green", alpha=0.2)
        ax.axhline(0.0, color=GROUND, lw=2)
        self.die = ax.add_patch(Polygon(np.zeros((4, 2)), closed=True, fc="ivory", ec=INK, lw=2))
        (self.mark,) = ax.plot([], [], "o", color="tab:red", ms=5)

    def update(self, state):
        corners = self.env.corners(state)
        self.die.set_xy(corners)
        self.mark.set_data([0.5 * (state[0] + corners[0, 0])], [0.5 * (state[1] + corners[0, 1])])


def cheetah_skeleton(env, state):
    """Polylines (torso, back leg, front leg) of a HalfCheetah pose, each an (k, 2) array."""
    from fastd3pg.physics import half_cheetah as hc

    pts = env.points(state)
    x, z, th = state[0], state[1], state[2]
    hip, l1 = env.params[hc.HIP], env.params[hc.THIGH_LEN]
    axis = np.array([np.cos(th), np.sin(th)])
    legs = []
    for sign, q1, foot in ((-1.0, state[3], pts[5]), (1.0, state[5], pts[6])):
        h = np.array([x, z]) + sign * hip * axis
        phi = th + q1
        knee = h + l1 * np.array([np.sin(phi), -np.cos(phi)])
        legs.append(np.array([h, knee, foot]))
    return [np.array([pts[7], pts[8]])] + legs


class HalfCheetahScene(Scene):
    """The body (back leg blue, front leg orange); the view follows the root, with a mark on
    the ground every half metre to show the motion."""

    xlim, ylim = (-1.6, 1.6), (-0.25, 1.35)

    def build(self):
        ax = self.ax
        ax.axhline(0.0, color=GROUND, lw=2)
        (self.marks,) = ax.plot([], [], "|", color=GROUND, ms=10)
        (self.torso,) = ax.plot([], [], color="tab:brown", lw=6, solid_capstyle="round")
        (self.back,) = ax.plot([], [], color="tab:blue", lw=3, marker="o", ms=4)
        (self.front,) = ax.plot([], [], color="tab:orange", lw=3, marker="o", ms=4)

    def update(self, state):
        x = state[0]
        lo, hi = x + self.xlim[0], x + self.xlim[1]
        self.ax.set_xlim(lo, hi)
        ticks = np.arange(math.floor(2 * lo) / 2, hi + 0.5, 0.5)
        self.marks.set_data(ticks, np.zeros_like(ticks))
        for line, poly in zip((self.torso, self.back, self.front), cheetah_skeleton(self.env, state)):
            line.set_data(poly[:, 0], poly[:, 1])


SCENES = {
    "MassPoint": MassPointScene,
    "CartPole": CartPoleScene,
    "CartPoleSwingUp": CartPoleSwingUpScene,
    "Pendulum": PendulumScene,
    "MountainCar": MountainCarScene,
    "Acrobot": AcrobotScene,
    "RollingDie": RollingDieScene,
    "HalfCheetah": HalfCheetahScene,
}
