"""MassPoint: the paper's 1-D motivating example (the paper's §3.3 and Figure 2).

State
    ``[x]``, the point's position.
Action
    ``a ∈ [-1, 1]``, the point's velocity (values outside are clipped).
Dynamics
    kinematic, explicit Euler: ``x' = x + a·dt`` with ``dt = 0.01``.
Reward
    ``r = 1/(x'² + 1) - 1`` of the *next* state: 0 at the goal, negative elsewhere;
    ``max_reward = 0``.  As a function of ``(x, a)``:
    ``dr/dx = ∂r/∂x'·∂x'/∂x = -2x'/(x'²+1)²`` and ``dr/da = ∂r/∂x'·dt``.
Start state
    ``x = -0.5`` (deterministic, as in the paper).
Termination
    ``|x'| < 0.01``, the goal zone around the origin.
Horizon
    200 steps (the goal is 50 steps away at full speed).

Jacobians: ``J_s = [[1]]``, ``J_a = [[dt]]`` (zero where the action is clipped).
"""

from fastd3pg._jit import jit
from fastd3pg.physics.base import Env

# Parameter vector layout.
DT, X0, GOAL_RADIUS = 0, 1, 2


@jit
def reset(p, rng, out):
    out[0] = p[X0]


@jit
def _reward_and_grad(x_next):
    q = x_next * x_next + 1.0
    return 1.0 / q - 1.0, -2.0 * x_next / (q * q)


@jit
def _forward(p, s, a, out):
    """The Euler step into ``out``; returns the reward, its derivative in ``x'`` and the
    termination."""
    u = min(max(a[0], -1.0), 1.0)
    out[0] = s[0] + u * p[DT]
    reward, dr_dnext = _reward_and_grad(out[0])
    return reward, dr_dnext, abs(out[0]) < p[GOAL_RADIUS]


@jit
def step(p, s, a, out):
    reward, _, terminated = _forward(p, s, a, out)
    return reward, terminated


@jit
def step_jac(p, s, a, out, J_s, J_a, dr_ds, dr_da):
    du_da = 1.0 if -1.0 < a[0] < 1.0 else 0.0
    reward, dr_dnext, terminated = _forward(p, s, a, out)
    J_s[0, 0] = 1.0
    J_a[0, 0] = p[DT] * du_da
    dr_ds[0] = dr_dnext * J_s[0, 0]
    dr_da[0] = dr_dnext * J_a[0, 0]
    return reward, terminated


class MassPoint(Env):
    __doc__ = __doc__
    name = "MassPoint"
    state_dim = 1
    action_dim = 1
    horizon = 200
    dt = 0.01
    max_reward = 0.0
    param_names = ("dt", "x0", "goal_radius")
    default_params = (0.01, -0.5, 0.01)
    reset_kernel = staticmethod(reset)
    step_kernel = staticmethod(step)
    step_jac_kernel = staticmethod(step_jac)
