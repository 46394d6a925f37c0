"""fastd3pg.nn: compiled MLPs over one flat parameter vector, with reverse mode, input
gradients and double backprop; Adam, Polyak averaging, a running normalizer, ``.npz`` files.

Python API (validating; every call allocates its own workspace and returns fresh arrays)::

    net = MLP([n_in, 64, 64, n_out], activation="relu", output_activation="linear",
              layer_norm=False)
    params = net.init(seed=0, out_scale=None)     # (net.num_params,)
    Y = net.forward(params, X)                    # (B, n_in) -> (B, n_out)
    dparams, dX = net.vjp(params, X, dY)
    G = net.input_grad(params, X)                 # n_out == 1
    dparams = net.input_grad_vjp(params, X, H)    # ∂/∂params Σ_b <G_b, H_b>
    dparams = net.value_and_input_grad_vjp(params, X, dY, H)
    opt = Adam(net.num_params, lr=1e-3); opt.step(params, dparams)
    RunningMeanStd(k).update(batch); save(path, net, params); net, params = load(path)

Compiled API (for ``@jit`` code; see :mod:`fastd3pg.nn.kernels` for the full contract)::

    spec, ws = net.spec, net.workspace(B)         # built once, in Python
    Y = kernels.forward(spec, params, X, ws)
    Y, G = kernels.forward_input_grad(spec, params, X, ws)
    kernels.param_vjp(spec, params, ws, dY, dparams)       # after a forward on ws
    kernels.input_vjp(spec, params, ws, dY, dX)
    kernels.backward_value_and_input_grad(spec, params, ws, dY, H, dparams)
    adam_step(params, grad, m, v, t, lr, beta1, beta2, eps); polyak(target, source, tau)
    normalizer_update(stat, X); normalizer_moments(stat, mean, std)

Parameter positions: ``net.weight_bias_mask()`` (parameter-space noise),
``net.hidden_weight_mask()`` (L2 on hidden weights), ``net.output_layer_slices()`` (PopArt),
``net.layout()`` (every block).
"""

from fastd3pg.nn import kernels
from fastd3pg.nn.kernels import ACTIVATIONS, Spec, Workspace
from fastd3pg.nn.mlp import MLP, load, numpy_forward, save
from fastd3pg.nn.normalizer import RunningMeanStd, normalizer_moments, normalizer_update
from fastd3pg.nn.optim import Adam, adam_step, polyak

__all__ = [
    "MLP", "ACTIVATIONS", "Spec", "Workspace", "kernels", "Adam", "adam_step", "polyak",
    "RunningMeanStd", "normalizer_update", "normalizer_moments", "save", "load", "numpy_forward",
]
