"""The machine's single-thread dense float64 matrix-product rate, measured through NumPy's BLAS.

:func:`blas_seconds` times exactly the matrix products of an MLP's ``forward + vjp`` (per
layer ``X W``, ``Aᵀ D`` and ``D Wᵀ``, with ``out=`` buffers, ``3 F`` flops where
``F = 2 B Σ_l n_{l-1} n_l``) through ``np.matmul``. It runs in a child process started with
every BLAS's thread-count variable set to 1: BLAS reads them when NumPy is first imported, and
the benchmark's own process has imported NumPy already. So the rate is one core's, on the
shapes the training loop multiplies, and it serves as the arithmetic cap of the training
rows (:mod:`fastd3pg.bench.control`).
"""

import json
import os
import subprocess
import sys

ONE_THREAD = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                     "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                                     "VECLIB_MAXIMUM_THREADS")}

_CHILD = r"""
import json, sys, time
import numpy as np
sizes, B, repeat = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
L = len(sizes) - 1
Ws = [rng.standard_normal((sizes[l], sizes[l + 1])) for l in range(L)]
As = [rng.standard_normal((B, n)) for n in sizes]
Ds = [rng.standard_normal((B, n)) for n in sizes]
dWs = [np.empty_like(W) for W in Ws]
def run():
    for l in range(L):
        np.matmul(As[l], Ws[l], out=As[l + 1])
    for l in range(L, 0, -1):
        np.matmul(As[l - 1].T, Ds[l], out=dWs[l - 1])
        np.matmul(Ds[l], Ws[l - 1].T, out=Ds[l - 1])
run()
t0 = time.perf_counter(); run(); once = time.perf_counter() - t0
inner = max(1, int(0.02 / max(once, 1e-9)))
samples = []
for _ in range(repeat):
    t0 = time.perf_counter()
    for _ in range(inner):
        run()
    samples.append((time.perf_counter() - t0) / inner)
samples.sort()
print(json.dumps(samples[len(samples) // 2]))
"""


def mlp_flops(sizes, batch) -> int:
    """``F = 2 B Σ_l n_{l-1} n_l``: the flops of one forward pass's matrix products."""
    return 2 * batch * sum(int(sizes[l]) * int(sizes[l + 1]) for l in range(len(sizes) - 1))


def fused_backward_flops(net, batch) -> int:
    """Matrix-product flops of ``backward_value_and_input_grad`` after ``forward_input_grad``
    on ``net`` (an :class:`fastd3pg.nn.MLP`), with ``F`` its forward flops and ``f`` those of its
    input layer: the tangent pass ``F``, then, for a relu or linear network without layer norm,
    one weight-gradient product per layer (``F``: ``2F`` in all), else weight gradients over the
    primal and tangent rows and the primal rows' input cotangents (``3F - f``: ``4F - f``)."""
    F = mlp_flops(net.sizes, batch)
    if not net.layer_norm and net.activation in ("relu", "linear") \
            and net.output_activation in ("relu", "linear"):
        return 2 * F
    return 4 * F - 2 * batch * int(net.sizes[0]) * int(net.sizes[1])


def blas_seconds(sizes, batch, repeat=7) -> float:
    """Median seconds of the matrix products of forward + vjp (``3 F`` flops) through
    single-threaded NumPy BLAS."""
    env = dict(os.environ, **ONE_THREAD)
    out = subprocess.run([sys.executable, "-c", _CHILD,
                          json.dumps([[int(k) for k in sizes], int(batch), int(repeat)])],
                         env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def gemm_rate(networks, batch, repeat=7) -> float:
    """Single-thread GEMM flops per second over the layer shapes of ``networks`` (a list of
    MLP size lists) at ``batch`` rows: their forward + vjp products, timed together."""
    flops = sum(3 * mlp_flops(sizes, batch) for sizes in networks)
    seconds = sum(blas_seconds(sizes, batch, repeat) for sizes in networks)
    return flops / seconds
