"""Benchmark section ``nn``: time per call and GFLOP/s of the MLP kernels, against NumPy's BLAS.

Each kernel is timed inside a compiled loop (as the training loop calls it, without the
Python dispatch cost), median of repeated runs after compilation. GFLOP/s count only the
matrix products (2 flops per multiply-add; the element-wise work is not counted):

    forward          F = 2 B Σ_l n_{l-1} n_l
    vjp              forward + weight gradients (F) + input cotangents (F): 3F
    input_grad       forward + input cotangents: 2F
    input_grad_vjp   forward + tangent pass (F) + weight gradients over the stacked primal
                     and tangent rows (2F) + their input cotangents, except the input layer's
                     (2F - 2 f_1, f_1 = 2 B n_0 n_1): 6F - 2 f_1
    critic update    forward_input_grad (2F) + backward_value_and_input_grad, which reuses
                     the input-gradient pass's cotangents: tangent pass (F) + weight gradients;
                     relu or linear without layer norm, one product per layer (F): 4F;
                     otherwise over the primal and tangent rows (2F), with the primal rows'
                     input cotangents (F - f_1): 6F - f_1

The NumPy reference runs exactly the matrix products of ``forward + vjp`` through
single-threaded BLAS (:func:`fastd3pg.bench.gemm.blas_seconds`), so the comparison is one
core against one core. Both sides of that comparison
(and the ``input_grad_vjp / vjp`` ratio) are the best of 7 (``--quick``: 3) alternating rounds of medians,
so that a machine shared with other work slows both alike.
"""

import time

import numpy as np

from fastd3pg._jit import jit
from fastd3pg.bench import Table
from fastd3pg.bench.gemm import blas_seconds, fused_backward_flops
from fastd3pg.nn import MLP, kernels

SHAPES = ([17, 64, 64, 1], [3, 64, 64, 1])
BATCHES = (64, 256)


@jit
def _loop_forward(spec, params, X, ws, reps):
    s = 0.0
    for _ in range(reps):
        s += kernels.forward(spec, params, X, ws)[0, 0]
    return s


@jit
def _loop_vjp(spec, params, X, dY, ws, dparams, dX, reps):
    for _ in range(reps):
        kernels.forward(spec, params, X, ws)
        kernels.vjp(spec, params, ws, dY, dparams, dX)
    return dparams[0]


@jit
def _loop_input_grad(spec, params, X, ws, reps):
    s = 0.0
    for _ in range(reps):
        s += kernels.input_grad(spec, params, X, ws)[0, 0]
    return s


@jit
def _loop_input_grad_vjp(spec, params, X, H, ws, dparams, reps):
    for _ in range(reps):
        kernels.input_grad_vjp(spec, params, X, H, ws, dparams)
    return dparams[0]


@jit
def _loop_critic(spec, params, X, dY, H, ws, dparams, reps):
    for _ in range(reps):
        kernels.forward_input_grad(spec, params, X, ws)
        kernels.backward_value_and_input_grad(spec, params, ws, dY, H, dparams)
    return dparams[0]


def _per_call(run, repeat):
    """Median seconds per call of a compiled loop ``run(reps)``, reps sized for ~20 ms."""
    run(1)
    t0 = time.perf_counter()
    run(10)
    reps = max(1, int(0.02 / max((time.perf_counter() - t0) / 10, 1e-9)))
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run(reps)
        samples.append((time.perf_counter() - t0) / reps)
    samples.sort()
    return samples[len(samples) // 2]


def flops(net, batch):
    """Matrix-product flops of ``forward``, ``vjp``, ``input_grad``, ``input_grad_vjp`` and the
    critic update (``forward_input_grad``, then ``backward_value_and_input_grad``:
    :func:`fastd3pg.bench.gemm.fused_backward_flops`)."""
    sizes = [int(n) for n in net.sizes]
    F = 2 * batch * sum(sizes[l] * sizes[l + 1] for l in range(len(sizes) - 1))
    first = 2 * batch * sizes[0] * sizes[1]
    return {"forward": F, "vjp": 3 * F, "input_grad": 2 * F,
            "input_grad_vjp": F + F + 2 * F + 2 * (F - first),
            "critic update": 2 * F + fused_backward_flops(net, batch)}


def _vjp_times(net, B, repeat):
    """Seconds per call of ``vjp`` and of ``input_grad_vjp``, timed back to back."""
    p = net.init(seed=0)
    rng = np.random.default_rng(0)
    X, H = rng.standard_normal((B, net.n_in)), rng.standard_normal((B, net.n_in))
    dY = rng.standard_normal((B, net.n_out))
    ws, dp, dX = net.workspace(B), np.empty(net.num_params), np.empty((B, net.n_in))
    s = net.spec
    return (_per_call(lambda r: _loop_vjp(s, p, X, dY, ws, dp, dX, r), repeat),
            _per_call(lambda r: _loop_input_grad_vjp(s, p, X, H, ws, dp, r), repeat))


def _time_kernels(net, B, repeat):
    p = net.init(seed=0)
    n_in = int(net.sizes[0])
    rng = np.random.default_rng(0)
    X, H = rng.standard_normal((B, n_in)), rng.standard_normal((B, n_in))
    dY = rng.standard_normal((B, 1))
    ws, dp, dX = net.workspace(B), np.empty(net.num_params), np.empty((B, n_in))
    s = net.spec
    return {
        "forward": _per_call(lambda r: _loop_forward(s, p, X, ws, r), repeat),
        "vjp": _per_call(lambda r: _loop_vjp(s, p, X, dY, ws, dp, dX, r), repeat),
        "input_grad": _per_call(lambda r: _loop_input_grad(s, p, X, ws, r), repeat),
        "input_grad_vjp": _per_call(lambda r: _loop_input_grad_vjp(s, p, X, H, ws, dp, r), repeat),
        "critic update": _per_call(lambda r: _loop_critic(s, p, X, dY, H, ws, dp, r), repeat),
    }


def tables(quick=False):
    repeat = 3 if quick else 7
    rounds = 3 if quick else 7
    rows, ratio_rows, variant_rows = [], [], []
    for sizes in SHAPES:
        net = MLP(sizes, "relu", "linear", layer_norm=False)
        for B in BATCHES:
            times = _time_kernels(net, B, repeat)
            fl = flops(net, B)
            for name, t in times.items():
                rows.append([str(sizes), B, name, t * 1e6, fl[name] / t / 1e9])
            # Both sides best of several alternating rounds: on a shared machine, the minimum is the
            # fairer estimate of what each reaches, and alternating exposes both to the same load.
            t_ours, t_igv, t_blas = times["vjp"], times["input_grad_vjp"], np.inf
            for _ in range(rounds):
                t_v, t_i = _vjp_times(net, B, repeat)
                t_ours, t_igv = min(t_ours, t_v), min(t_igv, t_i)
                t_blas = min(t_blas, blas_seconds(sizes, B, repeat))
            ours = fl["vjp"] / t_ours / 1e9
            theirs = fl["vjp"] / t_blas / 1e9
            ratio_rows.append([str(sizes), B, ours, theirs, ours / theirs, t_igv / t_ours])
    sizes, B = SHAPES[0], BATCHES[0]
    relu_times = {}
    for ln in (False, True):
        for act in ("relu", "tanh", "elu"):
            net = MLP(sizes, act, "linear", layer_norm=ln)
            times = _time_kernels(net, B, repeat)
            if act == "relu":
                relu_times[ln] = times
            fl = flops(net, B)
            for name, t in times.items():
                variant_rows.append([act, "yes" if ln else "no", name, t * 1e6, fl[name] / t / 1e9,
                                     t / relu_times[ln][name]])
    return [
        Table("nn: MLP kernels (relu, no layer norm; time per call inside a compiled loop)",
              ["sizes", "batch", "kernel", "µs/call", "GFLOP/s"], rows,
              note="vjp = forward + reverse pass; critic update = forward_input_grad + "
                   "backward_value_and_input_grad. GFLOP/s count matrix products only."),
        Table("nn: forward + vjp against NumPy BLAS (single-threaded, same matrix products; "
              f"best of {rounds} alternating rounds each)",
              ["sizes", "batch", "ours GFLOP/s", "NumPy GFLOP/s", "ours/NumPy",
               "input_grad_vjp / vjp time"], ratio_rows,
              note="Targets at batch 64, [17, 64, 64, 1]: ours/NumPy >= 0.5, "
                   "input_grad_vjp / vjp <= 3."),
        Table(f"nn: activations and layer norm ({sizes}, batch {B})",
              ["activation", "layer norm", "kernel", "µs/call", "GFLOP/s", "time / relu's"],
              variant_rows,
              note="time / relu's: against the relu network with the same layer norm. tanh and elu "
                   "are fastd3pg.nn.vmath's, which vectorize; their cost is all in the forward "
                   "pass (the derivatives are read off the outputs). Layer norm adds per-sample "
                   "row statistics. GFLOP/s count matrix products only."),
    ]
