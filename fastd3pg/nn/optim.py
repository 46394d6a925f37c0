"""Optimisers over flat parameter vectors: Adam and Polyak averaging.

``adam_step`` and ``polyak`` are compiled kernels for compiled loops: they update their first
argument in place, allocate nothing and check nothing (arrays must have equal lengths).
:class:`Adam` is the validating Python shell that also keeps the moments and step count."""

import numpy as np

from fastd3pg._jit import jit


@jit
def adam_step(params, grad, m, v, t, lr, beta1, beta2, eps):
    """One Adam step (Kingma & Ba 2015) at step count ``t >= 1``, in the form of OpenAI
    Baselines' ``MpiAdam``: the bias corrections fold into the step size and ``eps`` is added
    outside the square root,

        m ← β1 m + (1 - β1) g,   v ← β2 v + (1 - β2) g²,
        params ← params - lr √(1 - β2ᵗ) / (1 - β1ᵗ) · m / (√v + eps).

    ``params``, ``m``, ``v`` are updated in place."""
    step = lr * np.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
    for k in range(params.shape[0]):
        g = grad[k]
        mk = beta1 * m[k] + (1.0 - beta1) * g
        vk = beta2 * v[k] + (1.0 - beta2) * g * g
        m[k] = mk
        v[k] = vk
        params[k] -= step * mk / (np.sqrt(vk) + eps)


@jit
def polyak(target, source, tau):
    """``target ← (1 - τ) target + τ source`` in place (soft target-network update)."""
    for k in range(target.shape[0]):
        target[k] = (1.0 - tau) * target[k] + tau * source[k]


class Adam:
    """Adam over one flat parameter vector, holding its moments and step count: the validating
    Python shell of :func:`adam_step` (``ε`` outside the square root, as Baselines)."""

    def __init__(self, num_params: int, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        if isinstance(num_params, bool) or not isinstance(num_params, (int, np.integer)) or num_params < 1:
            raise ValueError(f"Adam: num_params must be a positive integer, got {num_params!r}")
        for name, value, low, high in (("lr", lr, 0.0, np.inf), ("beta1", beta1, 0.0, 1.0),
                                       ("beta2", beta2, 0.0, 1.0), ("eps", eps, 0.0, np.inf)):
            if not np.isfinite(value) or not low <= value < high or (name in ("lr", "eps") and value == 0):
                raise ValueError(f"Adam: {name} = {value!r} is out of range")
        self.lr, self.beta1, self.beta2, self.eps = float(lr), float(beta1), float(beta2), float(eps)
        self.m = np.zeros(int(num_params))
        self.v = np.zeros(int(num_params))
        self.t = 0

    def step(self, params: np.ndarray, grad) -> np.ndarray:
        """Update ``params`` (a float64 1-D array, in place) with ``grad``; returns ``params``."""
        n = self.m.shape[0]
        if not (isinstance(params, np.ndarray) and params.dtype == np.float64
                and params.shape == (n,) and params.flags.c_contiguous):
            raise ValueError(f"Adam: params must be a contiguous float64 array of shape ({n},)")
        grad = np.ascontiguousarray(grad, dtype=np.float64)
        if grad.shape != (n,):
            raise ValueError(f"Adam: grad must have shape ({n},), got {grad.shape}")
        self.t += 1
        adam_step(params, grad, self.m, self.v, self.t, self.lr, self.beta1, self.beta2, self.eps)
        return params
