"""Finite-difference checks for simulators and networks (used by the test suite; public so that
users can check a task or a network of their own the same way)."""

import numpy as np


def central_difference(f, x, eps=1e-6):
    """Jacobian of ``f: R^k -> R^d`` (array-valued or scalar) at ``x`` by central differences,
    shape ``(d, k)`` (``(k,)`` for a scalar ``f``)."""
    x = np.asarray(x, dtype=np.float64)
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = eps
        cols.append((np.asarray(f(x + e), dtype=np.float64) - np.asarray(f(x - e), dtype=np.float64)) / (2 * eps))
    return np.stack(cols, axis=-1)


def relative_error(analytic, numeric, floor=1e-6):
    """``max|analytic - numeric| / max(max|analytic|, max|numeric|, floor)``.

    The floor keeps derivatives that are zero up to rounding (where a central difference has
    only round-off left, ~1e-10) from counting as large relative errors."""
    a, b = np.asarray(analytic, dtype=np.float64), np.asarray(numeric, dtype=np.float64)
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0), floor)
    return float(np.max(np.abs(a - b), initial=0.0) / scale)


def transition_fd_errors(env, state, action, eps=1e-6):
    """Relative errors of ``env.transition``'s ``J_s, J_a, dr_ds, dr_da`` against central
    differences of ``next_state`` and ``reward``; a dict field -> error."""
    state = np.asarray(state, dtype=np.float64)
    action = np.asarray(action, dtype=np.float64)
    tr = env.transition(state, action)
    fs = lambda s: env.transition(s, action).next_state  # noqa: E731
    fa = lambda a: env.transition(state, a).next_state  # noqa: E731
    rs = lambda s: env.transition(s, action).reward  # noqa: E731
    ra = lambda a: env.transition(state, a).reward  # noqa: E731
    return {
        "J_s": relative_error(tr.J_s, central_difference(fs, state, eps)),
        "J_a": relative_error(tr.J_a, central_difference(fa, action, eps)),
        "dr_ds": relative_error(tr.dr_ds, central_difference(rs, state, eps)),
        "dr_da": relative_error(tr.dr_da, central_difference(ra, action, eps)),
    }
