"""Compiled optimiser kernels over flat parameter vectors: Adam and Polyak averaging.
Both update their first argument in place and allocate nothing."""

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
