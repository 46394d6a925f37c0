"""Compiled MLP kernels over one flat parameter vector: forward, reverse mode, input gradients
and their parameter derivative (double backprop). Every kernel is ``@jit`` and takes only
arrays, ints, floats and NamedTuples of them, so compiled training loops call them directly.

Network
    ``sizes = [n_0, ..., n_L]``; layer ``l = 1..L`` computes ``z_l = a_{l-1} W_l + b_l``;
    a hidden layer (``l < L``) with layer norm then ``u_l = (z_l - mean z_l) r_l``,
    ``r_l = (var z_l + eps)^(-1/2)`` (per sample, biased variance), ``zt_l = γ_l ⊙ u_l + β_l``,
    without it ``zt_l = z_l``; then ``a_l = σ(zt_l)``. The output is ``y = a_L = σ_out(z_L)``.
Parameter layout (flat, layer by layer)
    ``W_l`` (n_{l-1}, n_l) row-major, ``b_l`` (n_l,), then for hidden layers with layer norm
    ``γ_l`` (n_l,), ``β_l`` (n_l,). ``spec.poff[l-1] = [W, b, γ, β]`` offsets (-1 if absent).
Activation codes
    ``LINEAR = 0``, ``RELU = 1``, ``TANH = 2``, ``ELU = 3`` (α = 1). Their first and second
    derivatives are computed from the activation's *output* ``a`` (relu: ``[a > 0]``; tanh:
    ``1 - a²`` and ``-2a(1 - a²)``; elu: ``1, 0`` for ``a > 0``, else ``a + 1`` for both), so
    only ``a`` is stored. tanh and elu are :mod:`fastd3pg.nn.vmath`'s, which vectorize, except
    that an output layer's tanh (an actor's squashing: a few units per sample) is the C
    library's, with which every committed result was produced. The two tanh differ in the last
    bit for about one input in five.

Spec (:class:`Spec`, a NamedTuple; ``MLP.spec`` builds it)
    ``sizes`` int64 (L+1,), ``hidden_act`` int, ``out_act`` int, ``layer_norm`` int (0/1),
    ``ln_eps`` float, ``poff`` int64 (L, 4) parameter offsets, ``aoff`` int64 (L+1,) the
    column offsets ``Σ_{k<l} n_k`` of each layer in the workspace.

Workspace (:class:`Workspace`, a NamedTuple; ``MLP.workspace(batch)`` / :func:`make_workspace`)
    Preallocated once for a batch capacity ``Bc``; kernels never allocate. Every call may use
    any batch ``B <= Bc``. Layer ``l``'s region in the flat buffers ``A`` and ``U`` starts at
    ``2 Bc aoff[l]`` and holds ``2B`` rows of width ``n_l``: rows ``0..B-1`` are the primal
    pass, rows ``B..2B-1`` the tangent pass (forward mode in the input direction ``H``), so
    that one matrix product serves both.

    ``A``  activations ``a_l`` (``a_0 = X``) / tangents ``ȧ_l`` (``ȧ_0 = H``)
    ``U``  layer norm's ``u_l`` / tangent ``u̇_l`` (with layer norm) or ``ż_l`` (without, and
           for the output layer; tangent ``ż_l`` only where a nonzero ``σ''`` reads it)
    ``R``  per sample and layer ``r_l`` at ``2 Bc l + b``, ``mean(u_l ⊙ ż_l)`` at
           ``2 Bc l + Bc + b``; then ``ROW_SCRATCH`` columns of ``Bc``: the row statistics of
           the layer a pass is working on (a pass computes every row's statistics, then runs
           the element-wise loops that read them, so that the rows' sums overlap)
    ``C0``, ``C1``  cotangent ping-pong buffers (2 Bc max_width each)
    ``T``  the input-gradient pass's cotangents of the hidden layers (layer ``l``'s ``B`` rows
           at ``Bc aoff[l]``): those of the outputs ``ā_l``, or, without layer norm and with
           ``σ'' = 0`` (relu, linear), those past the activation ``z̄_l = ā_l σ'``; the tangent
           half of the double-backprop reverse pass reuses them (see "Double backprop")
    ``I`` (Bc,) int64: row indices, a buffer for callers of ``input_grad_rows``
    ``Y`` (Bc, n_L) outputs, ``G`` (Bc, n_0) input gradients, ``nb`` (2,): the batch of the
    last forward pass, and 1 if ``T`` holds that pass's input-gradient cotangents (0 if not).

Kernels (``X``, ``dY``, ``H`` are 2-D arrays of any memory layout; results that are returned
are views into the workspace, overwritten by the next call)

    forward(spec, params, X, ws) -> Y                    (B, n_L); stores the intermediates
    forward_input_grad(spec, params, X, ws) -> (Y, G)    n_L == 1; G[b] = ∂Y[b,0]/∂X[b]
    input_grad(spec, params, X, ws) -> G                 same, G only
    input_grad_rows(spec, params, ws, rows, k) -> G      after a forward on ws: G of the rows
                                                         rows[:k] only, in k rows
    param_vjp(spec, params, ws, dY, dparams)             after a forward on ws:
                                                         dparams = ∂<Y, dY>/∂params (overwrites)
    input_vjp(spec, params, ws, dY, dX)                  dX = ∂<Y, dY>/∂X (overwrites)
    vjp(spec, params, ws, dY, dparams, dX)               both at once
    backward_value_and_input_grad(spec, params, ws, dY, H, dparams)
        after forward / forward_input_grad on ws with the same params (n_L == 1): dparams =
        ∂/∂params [Σ_b dY_b Y_b + Σ_b <G_b, H_b>]  (the critic's value and gradient-fitting
        losses in one pass: value vjp and double backprop fused)
    input_grad_vjp(spec, params, X, H, ws, dparams)      forward, then the above with dY = 0

Compiled code checks nothing (no exceptions in kernels): the caller guarantees ``B <= Bc``,
``X``/``H`` with ``n_0`` columns, ``dY`` with ``n_L``, ``params``/``dparams`` of the spec's
length, and ``n_L == 1`` for the input-gradient kernels. :class:`fastd3pg.nn.MLP` validates
all of this for Python callers.

Double backprop, as reverse-over-forward: ``Σ_b <G_b, H_b>`` is the directional derivative
``ẏ`` of ``y`` along ``ẋ = H``. The tangent pass pushes ``ȧ_0 = H`` through the network
(``ż = ȧ W``, layer norm's linearization ``u̇ = r (ż - mean ż - u mean(u ż))``,
``ȧ = σ'(zt) γ u̇``), then one reverse pass carries cotangents of both the primal and the
tangent values (cotangent of ``ẏ`` = 1) down to the parameters: the linear layer's
``W̄ = aᵀ z̄ + ȧᵀ ż̄`` is one product over the 2B stacked rows, activation and layer-norm rules
are in :func:`_hidden_backward`. The tangent rows' cotangents never mix in the primal ones
(``ż̄ = ǡ σ'``, and layer norm's ``c̄`` rule reads only ``c̄``), and they are seeded with ``ẏ̄ = 1``:
they are exactly the cotangents of the input-gradient pass. After ``forward_input_grad`` the
reverse pass therefore takes them from ``T`` and carries only the primal rows through ``Wᵀ``
(the same numbers, one matrix product per layer fewer; without layer norm and with ``σ'' = 0``
the tangent rows' weight-gradient product reads them in ``T`` directly, so that its sum runs over
the primal rows, then the tangent rows, as the stacked product does); after a plain ``forward``
it computes them. Where the output activation has ``σ'' = 0`` as well (a relu critic with a
linear output), nothing carries tangent cotangents into the primal rows either, and those are
``dY_b`` times the input-gradient pass's: the whole reverse pass is then one B-row product per
layer, ``W̄_l = Σ_b (dY_b a_{l-1} + ȧ_{l-1})ᵀ z̄_l`` (:func:`_reverse_piecewise_linear`).

Speed. All matrix products go through three primitives on flat buffers (``_mm_xw``: ``X W + b``,
``_mm_dwt``: ``D Wᵀ``, ``_mm_xtd``: ``W̄ += Xᵀ D``), built on two register-blocked kernels
written for LLVM's loop vectorizer (Numba keeps the SLP vectorizer off): ``_gemm_rows``
(4 rows x 4 reduction steps in scalars, vectorized over output columns) and ``_gemm_dot``
(4 x 4 blocks of dot products vectorized along the reduction). They use fused multiply-add
(``contract``) and, for sums, ``reassoc``; never the NaN/inf-assuming flags. Results are
deterministic on one machine but may differ from NumPy's in the last bits. ``python -m
fastd3pg.bench --only nn`` compares them with single-threaded NumPy BLAS.

The public kernels, the forward, tangent and reverse passes and the three products are units
(:func:`fastd3pg._jit.unit`): compiled once each, and called, not compiled again into every
kernel and training loop that uses them.
"""

from typing import NamedTuple

import numpy as np

from fastd3pg._jit import jit, unit
from fastd3pg.linalg import copy
from fastd3pg.nn import vmath

LINEAR, RELU, TANH, ELU = 0, 1, 2, 3
ROW_SCRATCH = 8  # per-sample scratch columns at the end of a workspace's R
ACTIVATIONS = {"linear": LINEAR, "relu": RELU, "tanh": TANH, "elu": ELU}


class Spec(NamedTuple):
    sizes: np.ndarray
    hidden_act: int
    out_act: int
    layer_norm: int
    ln_eps: float
    poff: np.ndarray
    aoff: np.ndarray


class Workspace(NamedTuple):
    A: np.ndarray
    U: np.ndarray
    R: np.ndarray
    C0: np.ndarray
    C1: np.ndarray
    T: np.ndarray
    I: np.ndarray
    Y: np.ndarray
    G: np.ndarray
    nb: np.ndarray


def make_spec(sizes, hidden_act: int, out_act: int, layer_norm: bool, ln_eps: float = 1e-5) -> Spec:
    """The :class:`Spec` of a network (no validation: :class:`fastd3pg.nn.MLP` validates)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    L = len(sizes) - 1
    poff = np.full((L, 4), -1, dtype=np.int64)
    k = 0
    for l in range(L):
        n_in, n_out = int(sizes[l]), int(sizes[l + 1])
        poff[l, 0] = k
        k += n_in * n_out
        poff[l, 1] = k
        k += n_out
        if layer_norm and l < L - 1:
            poff[l, 2] = k
            poff[l, 3] = k + n_out
            k += 2 * n_out
    aoff = np.concatenate(([0], np.cumsum(sizes[:-1]))).astype(np.int64)
    return Spec(sizes, int(hidden_act), int(out_act), int(bool(layer_norm)), float(ln_eps), poff, aoff)


def num_params(spec: Spec) -> int:
    sizes = spec.sizes
    L = len(sizes) - 1
    n = sum(int(sizes[l]) * int(sizes[l + 1]) + int(sizes[l + 1]) for l in range(L))
    if spec.layer_norm:
        n += sum(2 * int(sizes[l]) for l in range(1, L))
    return n


def make_workspace(spec: Spec, batch: int) -> Workspace:
    """Preallocated buffers for batches of up to ``batch`` samples."""
    sizes = spec.sizes
    L = len(sizes) - 1
    S = int(sizes.sum())
    maxw = int(sizes.max())
    return Workspace(
        np.zeros(2 * batch * S), np.zeros(2 * batch * S),
        np.zeros(2 * batch * (L + 1) + ROW_SCRATCH * batch),
        np.zeros(2 * batch * maxw), np.zeros(2 * batch * maxw), np.zeros(batch * S),
        np.zeros(batch, dtype=np.int64), np.zeros((batch, int(sizes[-1]))), np.zeros((batch, int(sizes[0]))),
        np.zeros(2, dtype=np.int64),
    )


# -- activations: first and second derivatives from the output ---------------------
@jit
def _dact(a, code):
    if code == RELU:
        return 1.0 if a > 0.0 else 0.0
    if code == TANH:
        return 1.0 - a * a
    if code == ELU:
        return 1.0 if a > 0.0 else a + 1.0  # e^z = a + 1 on the negative branch
    return 1.0


@jit
def _has_d2(code):
    """Whether the activation's second derivative can be nonzero."""
    return code == TANH or code == ELU


@jit
def _t_is_post_activation(spec):
    """Whether the input-gradient pass keeps ``z̄_l = ā_l σ'`` in ``T`` (no layer norm and
    ``σ'' = 0``: what the tangent rows need as they are), rather than ``ā_l``."""
    return spec.layer_norm == 0 and not _has_d2(spec.hidden_act)


@jit
def _d2act(a, code):
    if code == TANH:
        return -2.0 * a * (1.0 - a * a)
    if code == ELU:
        return 0.0 if a > 0.0 else a + 1.0
    return 0.0


# -- the three matrix products, on flat row-major blocks ---------------------------------------
# Numba leaves LLVM's SLP vectorizer off, so the register blocking is written for the loop
# vectorizer: ``_gemm_rows`` keeps 4 output rows and 4 steps of the reduction in scalars and
# vectorizes over the output columns (each loaded row of ``M`` feeds 4 fused multiply-adds;
# each ``Z`` element is loaded and stored once per 4 steps of the reduction); ``_gemm_dot``
# computes 4 x 4 blocks of dot products vectorized along the reduction, which needs ``reassoc``
# (the summation order is fixed by the compiled code, so results stay deterministic). Only
# ``contract`` (fused multiply-add) and ``reassoc`` are enabled: NaN and inf keep their meaning.
@jit
def _view(buf, off, rows, cols):
    """The block ``buf[off : off + rows cols]`` as a C-contiguous ``(rows, cols)`` array."""
    return buf[off:off + rows * cols].reshape((rows, cols))


@unit(fastmath={"contract"})
def _gemm_rows(C, c_off, c_rs, c_ks, M, Z, accumulate):
    """``Z[r, :] (+)= Σ_k C[c_off + r c_rs + k c_ks] M[k, :]`` with ``M`` (K, N), ``Z`` (R, N)."""
    R, N = Z.shape
    K = M.shape[0]
    if not accumulate:
        Z[:, :] = 0.0
    K4 = K - K % 4
    R4 = R - R % 4
    for r in range(0, R4, 4):
        c = c_off + r * c_rs
        for k in range(0, K4, 4):
            p = c + k * c_ks
            a0, a1, a2, a3 = C[p], C[p + c_ks], C[p + 2 * c_ks], C[p + 3 * c_ks]
            p += c_rs
            b0, b1, b2, b3 = C[p], C[p + c_ks], C[p + 2 * c_ks], C[p + 3 * c_ks]
            p += c_rs
            e0, e1, e2, e3 = C[p], C[p + c_ks], C[p + 2 * c_ks], C[p + 3 * c_ks]
            p += c_rs
            d0, d1, d2, d3 = C[p], C[p + c_ks], C[p + 2 * c_ks], C[p + 3 * c_ks]
            for j in range(N):
                m0, m1, m2, m3 = M[k, j], M[k + 1, j], M[k + 2, j], M[k + 3, j]
                Z[r, j] += a0 * m0 + a1 * m1 + a2 * m2 + a3 * m3
                Z[r + 1, j] += b0 * m0 + b1 * m1 + b2 * m2 + b3 * m3
                Z[r + 2, j] += e0 * m0 + e1 * m1 + e2 * m2 + e3 * m3
                Z[r + 3, j] += d0 * m0 + d1 * m1 + d2 * m2 + d3 * m3
        for k in range(K4, K):
            p = c + k * c_ks
            a0, b0, e0, d0 = C[p], C[p + c_rs], C[p + 2 * c_rs], C[p + 3 * c_rs]
            for j in range(N):
                m0 = M[k, j]
                Z[r, j] += a0 * m0
                Z[r + 1, j] += b0 * m0
                Z[r + 2, j] += e0 * m0
                Z[r + 3, j] += d0 * m0
    for r in range(R4, R):
        c = c_off + r * c_rs
        for k in range(0, K4, 4):
            p = c + k * c_ks
            a0, a1, a2, a3 = C[p], C[p + c_ks], C[p + 2 * c_ks], C[p + 3 * c_ks]
            for j in range(N):
                Z[r, j] += a0 * M[k, j] + a1 * M[k + 1, j] + a2 * M[k + 2, j] + a3 * M[k + 3, j]
        for k in range(K4, K):
            a0 = C[c + k * c_ks]
            for j in range(N):
                Z[r, j] += a0 * M[k, j]


@jit(fastmath={"contract", "reassoc"})
def _gemm_dot(A, Bt, Z):
    """``Z[r, n] = Σ_k A[r, k] Bt[n, k]`` with ``A`` (R, K), ``Bt`` (N, K), ``Z`` (R, N)."""
    R, K = A.shape
    N = Bt.shape[0]
    R4 = R - R % 4
    N4 = N - N % 4
    for r in range(0, R4, 4):
        for n in range(0, N4, 4):
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = 0.0
            s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = 0.0
            for k in range(K):
                a0, a1, a2, a3 = A[r, k], A[r + 1, k], A[r + 2, k], A[r + 3, k]
                b0, b1, b2, b3 = Bt[n, k], Bt[n + 1, k], Bt[n + 2, k], Bt[n + 3, k]
                s00 += a0 * b0
                s01 += a0 * b1
                s02 += a0 * b2
                s03 += a0 * b3
                s10 += a1 * b0
                s11 += a1 * b1
                s12 += a1 * b2
                s13 += a1 * b3
                s20 += a2 * b0
                s21 += a2 * b1
                s22 += a2 * b2
                s23 += a2 * b3
                s30 += a3 * b0
                s31 += a3 * b1
                s32 += a3 * b2
                s33 += a3 * b3
            Z[r, n] = s00
            Z[r, n + 1] = s01
            Z[r, n + 2] = s02
            Z[r, n + 3] = s03
            Z[r + 1, n] = s10
            Z[r + 1, n + 1] = s11
            Z[r + 1, n + 2] = s12
            Z[r + 1, n + 3] = s13
            Z[r + 2, n] = s20
            Z[r + 2, n + 1] = s21
            Z[r + 2, n + 2] = s22
            Z[r + 2, n + 3] = s23
            Z[r + 3, n] = s30
            Z[r + 3, n + 1] = s31
            Z[r + 3, n + 2] = s32
            Z[r + 3, n + 3] = s33
        for n in range(N4, N):
            s0 = s1 = s2 = s3 = 0.0
            for k in range(K):
                b = Bt[n, k]
                s0 += A[r, k] * b
                s1 += A[r + 1, k] * b
                s2 += A[r + 2, k] * b
                s3 += A[r + 3, k] * b
            Z[r, n] = s0
            Z[r + 1, n] = s1
            Z[r + 2, n] = s2
            Z[r + 3, n] = s3
    for r in range(R4, R):
        for n in range(N):
            s = 0.0
            for k in range(K):
                s += A[r, k] * Bt[n, k]
            Z[r, n] = s


@unit
def _mm_xw(P, woff, boff, X, xoff, rows, n_in, n_out, Z, zoff):
    """``Z[r, j] = Σ_i X[r, i] W[i, j] (+ b[j] if boff >= 0)`` for ``r < rows``."""
    Zv = _view(Z, zoff, rows, n_out)
    if n_out == 1:
        _gemm_dot(_view(X, xoff, rows, n_in), _view(P, woff, 1, n_in), Zv)
        if boff >= 0:
            for r in range(rows):
                Zv[r, 0] += P[boff]
        return
    if boff >= 0:
        bias = P[boff:boff + n_out]
        for r in range(rows):
            z = Zv[r]
            for j in range(n_out):
                z[j] = bias[j]
    _gemm_rows(X, xoff, n_in, 1, _view(P, woff, n_in, n_out), Zv, boff >= 0)


@unit
def _mm_dwt(P, woff, D, doff, rows, n_in, n_out, O, ooff):
    """``O[r, i] = Σ_j D[r, j] W[i, j]`` (cotangent of a layer's input)."""
    Ov = _view(O, ooff, rows, n_in)
    if n_out == 1:
        _gemm_rows(D, doff, 1, 1, _view(P, woff, 1, n_in), Ov, False)
    else:
        _gemm_dot(_view(D, doff, rows, n_out), _view(P, woff, n_in, n_out), Ov)


@unit
def _mm_xtd(dP, woff, X, xoff, D, doff, rows, n_in, n_out):
    """``dW[i, j] += Σ_r X[r, i] D[r, j]`` (a layer's weight gradient)."""
    if n_out == 1:
        # dW is a column: dWᵀ = Dᵀ X, one output row.
        _gemm_rows(D, doff, 0, 1, _view(X, xoff, rows, n_in), _view(dP, woff, 1, n_in), True)
    else:
        _gemm_rows(X, xoff, 1, n_in, _view(D, doff, rows, n_out), _view(dP, woff, n_in, n_out), True)


# -- element-wise helpers on contiguous 1-D views ----------------------------------------------
# Row statistics are sums along a row; ``reassoc`` lets them vectorize (in a fixed order).
@jit(fastmath={"contract", "reassoc"})
def _sum(x):
    s = 0.0
    for k in range(x.shape[0]):
        s += x[k]
    return s


@jit(fastmath={"contract", "reassoc"})
def _dot(x, y):
    s = 0.0
    for k in range(x.shape[0]):
        s += x[k] * y[k]
    return s


@jit(fastmath={"contract", "reassoc"})
def _sq_dev(x, mean):
    s = 0.0
    for k in range(x.shape[0]):
        d = x[k] - mean
        s += d * d
    return s


@jit
def _activate(z, code):
    """``z ← σ(z)`` in place (one loop per activation, so that each vectorizes)."""
    # Written so that NaN propagates (NaN <= 0 is false), as in NumPy.
    if code == RELU:
        for k in range(z.shape[0]):
            z[k] = 0.0 if z[k] <= 0.0 else z[k]
    elif code == TANH:
        for k in range(z.shape[0]):
            z[k] = vmath.tanh(z[k])
    elif code == ELU:
        for k in range(z.shape[0]):
            z[k] = vmath.elu(z[k])


@jit
def _activate_output(z, code):
    """:func:`_activate` for the output layer, whose tanh is the C library's (see "Activation
    codes" in the module docstring)."""
    if code == TANH:
        for k in range(z.shape[0]):
            z[k] = np.tanh(z[k])
    else:
        _activate(z, code)


@jit
def _mul_dact(a, c, code):
    """``c ← c σ'`` with ``σ'`` taken from the activation's output ``a``."""
    if code == RELU:
        for k in range(c.shape[0]):
            c[k] = c[k] if a[k] > 0.0 else 0.0
    elif code == TANH:
        for k in range(c.shape[0]):
            c[k] *= 1.0 - a[k] * a[k]
    elif code == ELU:
        for k in range(c.shape[0]):
            c[k] *= 1.0 if a[k] > 0.0 else a[k] + 1.0


@jit
def _act_tangent_backward(a, zd, c, ct, code):
    """Reverse of ``a = σ(z)``, ``ȧ = σ'(z) ż`` (``zd`` = ``ż``): ``c = ā`` becomes
    ``z̄ = ā σ' + ǡ ż σ''``, ``ct = ǡ`` becomes ``ż̄ = ǡ σ'``."""
    if code == RELU or code == LINEAR:
        _mul_dact(a, c, code)  # σ'' = 0
        _mul_dact(a, ct, code)
        return
    for k in range(c.shape[0]):
        s1 = _dact(a[k], code)
        c[k] = c[k] * s1 + ct[k] * zd[k] * _d2act(a[k], code)
        ct[k] *= s1


@jit
def _zt_cotangents(a, c, ct, gain, ud, code):
    """One row of the tangent reverse pass through ``a = σ(zt)``, ``żt = γ u̇``: ``c = ā``
    becomes ``zt̄ = ā σ' + ǡ γ u̇ σ''``, ``ct = ǡ`` becomes ``żt̄ = ǡ σ'``. The rule of
    :func:`_act_tangent_backward` with ``ż = γ u̇``, whose products it keeps in the order that
    layer norm's reverse pass has always used (``((ǡ γ) u̇) σ''``), so that results stay the
    same to the bit."""
    for j in range(c.shape[0]):
        s1 = _dact(a[j], code)
        cj, ctj = c[j], ct[j]
        c[j] = cj * s1 + ctj * gain[j] * ud[j] * _d2act(a[j], code)
        ct[j] = ctj * s1


@jit
def _row_scratch(ws, start, k):
    """``k`` scratch values at ``start`` of the workspace's per-sample scratch (``R``'s tail)."""
    off = ws.R.shape[0] - ROW_SCRATCH * ws.Y.shape[0] + start
    return ws.R[off:off + k]


# -- forward -----------------------------------------------------------------------------------
@jit
def _load_rows(X, B, n, buf, off):
    dst = _view(buf, off, B, n)
    for b in range(B):
        for j in range(n):
            dst[b, j] = X[b, j]


@unit
def _forward(spec, P, X, ws):
    """Primal pass; stores ``a_l``, ``u_l``, ``r_l``; returns the batch size. (The layers are
    :func:`_forward_layers`, compiled once whatever the memory layout of ``X``.)"""
    B = X.shape[0]
    ws.nb[0] = B
    ws.nb[1] = 0
    _load_rows(X, B, spec.sizes[0], ws.A, 0)
    _forward_layers(spec, P, ws)
    return B


@unit
def _forward_layers(spec, P, ws):
    """The primal pass through the layers, from the ``ws.nb[0]`` input rows in ``ws.A``."""
    sizes, poff, aoff = spec.sizes, spec.poff, spec.aoff
    L = sizes.shape[0] - 1
    B = ws.nb[0]
    Bc = ws.Y.shape[0]
    A, U, R = ws.A, ws.U, ws.R
    for l in range(1, L + 1):
        n_in, n = sizes[l - 1], sizes[l]
        a_in = 2 * Bc * aoff[l - 1]
        a_out = 2 * Bc * aoff[l]
        wo, bo, go, betao = poff[l - 1, 0], poff[l - 1, 1], poff[l - 1, 2], poff[l - 1, 3]
        code = spec.hidden_act if l < L else spec.out_act
        if go >= 0:
            _mm_xw(P, wo, bo, A, a_in, B, n_in, n, U, a_out)
            gain, beta = P[go:go + n], P[betao:betao + n]
            mean = _row_scratch(ws, 0, B)
            for b in range(B):  # the rows' statistics first, then the element-wise passes
                row = a_out + b * n
                u = U[row:row + n]
                mean[b] = _sum(u) / n
                R[2 * Bc * l + b] = 1.0 / np.sqrt(_sq_dev(u, mean[b]) / n + spec.ln_eps)
            for b in range(B):
                row = a_out + b * n
                u, a = U[row:row + n], A[row:row + n]
                mu, r = mean[b], R[2 * Bc * l + b]
                for j in range(n):
                    u[j] = (u[j] - mu) * r
                for j in range(n):
                    a[j] = gain[j] * u[j] + beta[j]
        else:
            _mm_xw(P, wo, bo, A, a_in, B, n_in, n, A, a_out)
        if l < L:
            _activate(A[a_out:a_out + B * n], code)
        else:
            _activate_output(A[a_out:a_out + B * n], code)
    nL = sizes[L]
    y = _view(A, 2 * Bc * aoff[L], B, nL)
    for b in range(B):
        for j in range(nL):
            ws.Y[b, j] = y[b, j]


@unit
def _tangent(spec, P, H, ws):
    """Forward mode along ``ȧ_0 = H`` on the stored primal pass: ``ȧ_l`` into the tangent rows
    of ``A``, ``u̇_l`` (layer norm) or ``ż_l`` into those of ``U``, ``mean(u ż)`` into ``R``.
    ``ż_l`` is kept only where the reverse pass reads it, through a nonzero ``σ''``; the
    output's ``ż_L`` is computed only then."""
    sizes, poff, aoff = spec.sizes, spec.poff, spec.aoff
    L = sizes.shape[0] - 1
    B = ws.nb[0]
    Bc = ws.Y.shape[0]
    A, U, R = ws.A, ws.U, ws.R
    _load_rows(H, B, sizes[0], A, B * sizes[0])
    for l in range(1, L + 1):
        n_in, n = sizes[l - 1], sizes[l]
        a_in = 2 * Bc * aoff[l - 1]
        a_out = 2 * Bc * aoff[l]
        wo, go = poff[l - 1, 0], poff[l - 1, 2]
        t_in = a_in + B * n_in
        t_out = a_out + B * n
        if l == L:
            if _has_d2(spec.out_act):  # ż_L is read only through σ_out''
                _mm_xw(P, wo, -1, A, t_in, B, n_in, n, U, t_out)  # ż = ȧ W
            break
        code = spec.hidden_act
        # Without layer norm, ż is read again only through σ''; where that is 0, ȧ = σ' ż is
        # formed in place.
        keep_zd = go >= 0 or _has_d2(code)
        _mm_xw(P, wo, -1, A, t_in, B, n_in, n, U if keep_zd else A, t_out)  # ż = ȧ W
        if go >= 0:
            gain = P[go:go + n]
            # u̇ = r (ż - mean ż - u mean(u ż))  (layer norm's Jacobian); then ȧ = σ' γ u̇
            mz = _row_scratch(ws, 0, B)
            for b in range(B):
                row, trow = a_out + b * n, t_out + b * n
                u, zd = U[row:row + n], U[trow:trow + n]
                mz[b] = _sum(zd) / n
                R[2 * Bc * l + Bc + b] = _dot(u, zd) / n
            for b in range(B):
                row, trow = a_out + b * n, t_out + b * n
                u, zd, ad = U[row:row + n], U[trow:trow + n], A[trow:trow + n]
                r, mzb, muz = R[2 * Bc * l + b], mz[b], R[2 * Bc * l + Bc + b]
                for j in range(n):
                    zd[j] = r * (zd[j] - mzb - u[j] * muz)
                for j in range(n):
                    ad[j] = gain[j] * zd[j]
        elif keep_zd:
            copy(A[t_out:t_out + B * n], U[t_out:t_out + B * n])
        _mul_dact(A[a_out:a_out + B * n], A[t_out:t_out + B * n], code)


# -- reverse -----------------------------------------------------------------------------------
@unit
def _hidden_backward(spec, P, dP, ws, l, B, C, tangent, want_dp):
    """In place on ``C``: the cotangents ``ā_l`` (rows 0..B-1) and ``ǡ_l`` (rows B..2B-1, if
    ``tangent``) of hidden layer ``l``'s outputs become those of its pre-norm ``z_l``, ``ż_l``;
    accumulates ``γ̄_l``, ``β̄_l``.

    Activation ``a = σ(zt)``, ``ȧ = σ'(zt) żt``:
        ``żt̄ = ǡ σ'``, ``zt̄ = ā σ' + ǡ żt σ''``.
    Layer norm, ``zt = γ u + β``, ``żt = γ u̇``:
        ``γ̄ += zt̄ u + żt̄ u̇``, ``β̄ += zt̄``, ``ū = γ zt̄``, ``c̄ = γ żt̄`` (cotangent of u̇);
        ``ż̄ = r (c̄ - mean c̄ - u mean(u c̄))`` (the linearization is symmetric);
        ``z̄ = r (ū - mean ū - u mean(u ū)) + e`` where ``e`` is the derivative of ``<c̄, u̇>``
        through ``u``, ``r`` in ``u̇ = r ż_c - r³ z_c mean(z_c ż)`` (``z_c = z - mean z``),
        which, with ``m = mean(u ż)`` and ``β = mean(c̄ u)``, works out to
        ``e = -r u mean(c̄ u̇) + r² m β u - r² m (c̄ - mean c̄) - r β u̇``.
    """
    sizes, poff, aoff = spec.sizes, spec.poff, spec.aoff
    n = sizes[l]
    Bc = ws.Y.shape[0]
    a_off = 2 * Bc * aoff[l]
    t_off = a_off + B * n
    go, betao = poff[l - 1, 2], poff[l - 1, 3]
    code = spec.hidden_act
    A, U, R = ws.A, ws.U, ws.R
    if go < 0:
        a, c = A[a_off:a_off + B * n], C[0:B * n]
        if tangent:
            _act_tangent_backward(a, U[t_off:t_off + B * n], c, C[B * n:2 * B * n], code)
        else:
            _mul_dact(a, c, code)
        return
    gain = P[go:go + n]
    dgain, dbeta = dP[go:go + n], dP[betao:betao + n]
    # Element-wise passes over the block, then each row's statistics, then the element-wise
    # pass that reads them (the per-row sums' latencies overlap across rows).
    Cp, Ct = _view(C, 0, B, n), _view(C, B * n, B, n)
    Ua, Ut = _view(U, a_off, B, n), _view(U, t_off, B, n)
    if tangent:
        for b in range(B):
            _zt_cotangents(A[a_off + b * n:a_off + (b + 1) * n], Cp[b], Ct[b], gain, Ut[b], code)
        if want_dp:  # γ̄ += zt̄ u + żt̄ u̇,  β̄ += zt̄
            for b in range(B):
                for j in range(n):
                    dgain[j] += Cp[b, j] * Ua[b, j] + Ct[b, j] * Ut[b, j]
            for b in range(B):
                for j in range(n):
                    dbeta[j] += Cp[b, j]
        for b in range(B):  # ū = γ zt̄, c̄ = γ żt̄
            for j in range(n):
                Cp[b, j] *= gain[j]
            for j in range(n):
                Ct[b, j] *= gain[j]
        st = _row_scratch(ws, 0, 7 * B)
        for b in range(B):
            u, c, ct, ud = Ua[b], Cp[b], Ct[b], Ut[b]
            r, m = R[2 * Bc * l + b], R[2 * Bc * l + Bc + b]
            m_ucb = _dot(u, ct) / n
            m_cbud = _dot(ct, ud) / n
            st[b] = _sum(c) / n  # m_ub
            st[B + b] = _dot(u, c) / n  # m_uub
            st[2 * B + b] = _sum(ct) / n  # m_cb
            st[3 * B + b] = m_ucb
            st[4 * B + b] = -r * m_cbud + r * r * m * m_ucb  # k_u
            st[5 * B + b] = r * r * m  # k_c
            st[6 * B + b] = r * m_ucb  # k_ud
        for b in range(B):
            u, c, ct, ud = Ua[b], Cp[b], Ct[b], Ut[b]
            r = R[2 * Bc * l + b]
            m_ub, m_uub, m_cb, m_ucb = st[b], st[B + b], st[2 * B + b], st[3 * B + b]
            k_u, k_c, k_ud = st[4 * B + b], st[5 * B + b], st[6 * B + b]
            for j in range(n):
                c[j] = (r * (c[j] - m_ub - u[j] * m_uub) + k_u * u[j]
                        - k_c * (ct[j] - m_cb) - k_ud * ud[j])
            for j in range(n):
                ct[j] = r * (ct[j] - m_cb - u[j] * m_ucb)
        return
    _mul_dact(A[a_off:a_off + B * n], C[0:B * n], code)  # zt̄
    if want_dp:  # γ̄ += zt̄ u,  β̄ += zt̄
        for b in range(B):
            for j in range(n):
                dgain[j] += Cp[b, j] * Ua[b, j]
        for b in range(B):
            for j in range(n):
                dbeta[j] += Cp[b, j]
    for b in range(B):  # ū
        for j in range(n):
            Cp[b, j] *= gain[j]
    st = _row_scratch(ws, 0, 2 * B)
    for b in range(B):
        st[b] = _sum(Cp[b]) / n
        st[B + b] = _dot(Ua[b], Cp[b]) / n
    for b in range(B):
        u, c = Ua[b], Cp[b]
        r, m_ub, m_uub = R[2 * Bc * l + b], st[b], st[B + b]
        for j in range(n):
            c[j] = r * (c[j] - m_ub - u[j] * m_uub)


@unit
def _reverse(spec, P, ws, tangent, want_dp, dP, want_dx, dX, store):
    """Reverse pass from the output cotangents already in ``ws.C0`` (rows 0..B-1: ``ȳ``;
    tangent rows: ``ẏ̄``), turned here into those of ``z_L``; ``dP`` (if ``want_dp``) is
    overwritten with the parameter gradient, ``dX`` (if ``want_dx``) with ``ā_0``. ``store``
    (the input-gradient pass) keeps the hidden layers' ``ā_l`` in ``ws.T``; a tangent pass
    takes its ``ǡ_l`` from there when ``ws.nb[1]`` says they are this batch's."""
    sizes, poff, aoff = spec.sizes, spec.poff, spec.aoff
    L = sizes.shape[0] - 1
    B = ws.nb[0]
    Bc = ws.Y.shape[0]
    A, U, T = ws.A, ws.U, ws.T
    rows = 2 * B if tangent else B
    reuse = tangent and ws.nb[1] == 1
    # Without layer norm and with σ'' = 0, T keeps the cotangents past the activation
    # (z̄_l = ā_l σ'), which is what the tangent rows need: they are used as they are.
    post = _t_is_post_activation(spec)
    from_T = reuse and post  # the tangent rows' cotangents are read in T, not carried in C
    if want_dp:
        dP[:] = 0.0
    # Output: y = σ_out(z), ẏ = σ_out'(z) ż.  z̄ = ȳ σ' + ẏ̄ ż σ'',  ż̄ = ẏ̄ σ'.
    nL = sizes[L]
    yo = 2 * Bc * aoff[L]
    k = B * nL
    if tangent:
        _act_tangent_backward(A[yo:yo + k], U[yo + k:yo + 2 * k], ws.C0[0:k], ws.C0[k:2 * k],
                              spec.out_act)
    else:
        _mul_dact(A[yo:yo + k], ws.C0[0:k], spec.out_act)
    Cin, Cout = ws.C0, ws.C1
    for l in range(L, 0, -1):
        n_in, n = sizes[l - 1], sizes[l]
        a_in = 2 * Bc * aoff[l - 1]
        wo, bo = poff[l - 1, 0], poff[l - 1, 1]
        if want_dp:
            if from_T and l < L:  # W̄ = aᵀ z̄ + ȧᵀ ż̄, ż̄ from T
                _mm_xtd(dP, wo, A, a_in, Cin, 0, B, n_in, n)
                _mm_xtd(dP, wo, A, a_in + B * n_in, T, Bc * aoff[l], B, n_in, n)
            else:
                _mm_xtd(dP, wo, A, a_in, Cin, 0, rows, n_in, n)  # W̄ = aᵀ z̄ + ȧᵀ ż̄
            db = dP[bo:bo + n]
            for b in range(B):
                crow = Cin[b * n:(b + 1) * n]
                for j in range(n):
                    db[j] += crow[j]
        if l == 1 and not want_dx:
            break
        k = B * n_in
        t_l = Bc * aoff[l - 1]
        if reuse and l > 1:
            _mm_dwt(P, wo, Cin, 0, B, n_in, n, Cout, 0)  # ā = z̄ Wᵀ
            if not post:
                copy(Cout[k:2 * k], T[t_l:t_l + k])  # ǡ: the input-gradient pass's ā
        else:
            _mm_dwt(P, wo, Cin, 0, rows, n_in, n, Cout, 0)  # ā = z̄ Wᵀ, ǡ = ż̄ Wᵀ
            if store and l > 1 and not post:
                copy(T[t_l:t_l + k], Cout[0:k])
        if l > 1:
            _hidden_backward(spec, P, dP, ws, l - 1, B, Cout, tangent and not from_T, want_dp)
            if store and post:
                copy(T[t_l:t_l + k], Cout[0:k])
        Cin, Cout = Cout, Cin
    if want_dx:
        n0 = sizes[0]
        for b in range(B):
            for j in range(n0):
                dX[b, j] = Cin[b * n0 + j]
    if store:
        ws.nb[1] = 1


@unit
def _reverse_piecewise_linear(spec, P, ws, dY, dP):
    """The reverse pass of ``backward_value_and_input_grad`` for a network without layer norm
    whose activations all have ``σ'' = 0`` (relu, linear), after ``forward_input_grad`` (``T``
    holds ``z̄_l = ā_l σ'`` of its input-gradient pass) and ``_tangent``. Then nothing carries
    tangent cotangents into the primal rows, and the reverse pass is linear in its seed: the
    primal rows' cotangents are ``dY_b`` times the input-gradient pass's, and the tangent rows'
    are those themselves. So ``W̄_l = Σ_b (dY_b a_{l-1} + ȧ_{l-1})ᵀ z̄_l`` and
    ``b̄_l = Σ_b dY_b z̄_l``: one B-row product per layer, and no cotangent is carried through
    any ``Wᵀ`` (``n_L == 1``; the output layer's ``z̄_L`` is ``σ_out'``)."""
    sizes, poff, aoff = spec.sizes, spec.poff, spec.aoff
    L = sizes.shape[0] - 1
    B = ws.nb[0]
    Bc = ws.Y.shape[0]
    A, T, M, S = ws.A, ws.T, ws.C0, ws.C1
    dP[:] = 0.0
    yo = 2 * Bc * aoff[L]
    for b in range(B):  # σ_out' per row, the seed 1 through the output activation
        S[b] = 1.0
    _mul_dact(A[yo:yo + B], S[0:B], spec.out_act)
    for l in range(L, 0, -1):
        n_in, n = sizes[l - 1], sizes[l]
        a_in = 2 * Bc * aoff[l - 1]
        wo, bo = poff[l - 1, 0], poff[l - 1, 1]
        Z, zo = (S, 0) if l == L else (T, Bc * aoff[l])
        for b in range(B):  # M_b = dY_b a_{l-1} + ȧ_{l-1}
            d = dY[b, 0]
            row, trow = a_in + b * n_in, a_in + (B + b) * n_in
            m, a, ad = M[b * n_in:(b + 1) * n_in], A[row:row + n_in], A[trow:trow + n_in]
            for i in range(n_in):
                m[i] = d * a[i] + ad[i]
        _mm_xtd(dP, wo, M, 0, Z, zo, B, n_in, n)
        db = dP[bo:bo + n]
        for b in range(B):
            d = dY[b, 0]
            z = Z[zo + b * n:zo + (b + 1) * n]
            for j in range(n):
                db[j] += d * z[j]


@jit
def _seed_output(ws, B, dY, nL, tangent):
    C = ws.C0
    for b in range(B):
        for j in range(nL):
            C[b * nL + j] = dY[b, j]
            if tangent:
                C[(B + b) * nL + j] = 1.0


@jit
def _seed_ones(ws, B, nL):
    C = ws.C0
    for k in range(B * nL):
        C[k] = 1.0


# -- public kernels ----------------------------------------------------------------------------
@unit
def forward(spec, params, X, ws):
    B = _forward(spec, params, X, ws)
    return ws.Y[:B]


@unit
def input_grad(spec, params, X, ws):
    B = _forward(spec, params, X, ws)
    _seed_ones(ws, B, spec.sizes[-1])
    _reverse(spec, params, ws, False, False, params, True, ws.G, True)
    return ws.G[:B]


@unit
def forward_input_grad(spec, params, X, ws):
    G = input_grad(spec, params, X, ws)
    return ws.Y[:G.shape[0]], G


@jit
def _compact_rows(buf, off, n, rows, k, k4):
    """Rows ``rows[:k]`` (ascending) of the ``n``-wide block at ``off`` moved to its first ``k``
    rows, then the last of them repeated up to row ``k4``."""
    for i in range(k4):
        src = off + (rows[i] if i < k else i - 1) * n  # padding: the row just written
        dst = off + i * n
        if src != dst:
            for j in range(n):
                buf[dst + j] = buf[src + j]


@unit
def input_grad_rows(spec, params, ws, rows, k):
    """After a ``forward`` on ``ws``: the input gradients of the rows ``rows[:k]`` (ascending
    indices into that batch, ``k >= 1``), as the first ``k`` rows of the returned block: the
    numbers ``input_grad`` gives those rows, at the cost of ``k`` rows of the reverse pass
    (e.g. only the twin critic that attains a minimum). It moves the forward pass's stored
    rows, so ``ws`` then holds a forward pass of those rows only."""
    sizes, aoff = spec.sizes, spec.aoff
    L = sizes.shape[0] - 1
    Bc = ws.Y.shape[0]
    # A multiple of 4 rows (padding repeats the last one) keeps each row in the matrix
    # kernels' 4-row blocks, so its result does not depend on which rows it is computed with.
    k4 = min(k + (-k) % 4, Bc)
    for l in range(1, L + 1):  # (the input layer's rows are not read without weight gradients)
        off = 2 * Bc * aoff[l]
        _compact_rows(ws.A, off, sizes[l], rows, k, k4)
        if l > 0 and l < L and spec.layer_norm:
            _compact_rows(ws.U, off, sizes[l], rows, k, k4)
            _compact_rows(ws.R, 2 * Bc * l, 1, rows, k, k4)
    ws.nb[0] = k4
    ws.nb[1] = 0
    _seed_ones(ws, k4, sizes[L])
    _reverse(spec, params, ws, False, False, params, True, ws.G, False)
    return ws.G[:k]


@unit
def param_vjp(spec, params, ws, dY, dparams):
    B = ws.nb[0]
    _seed_output(ws, B, dY, spec.sizes[-1], False)
    _reverse(spec, params, ws, False, True, dparams, False, ws.G, False)


@unit
def input_vjp(spec, params, ws, dY, dX):
    B = ws.nb[0]
    _seed_output(ws, B, dY, spec.sizes[-1], False)
    _reverse(spec, params, ws, False, False, params, True, dX, False)


@unit
def vjp(spec, params, ws, dY, dparams, dX):
    B = ws.nb[0]
    _seed_output(ws, B, dY, spec.sizes[-1], False)
    _reverse(spec, params, ws, False, True, dparams, True, dX, False)


@unit
def backward_value_and_input_grad(spec, params, ws, dY, H, dparams):
    B = ws.nb[0]
    _tangent(spec, params, H, ws)
    if ws.nb[1] == 1 and _t_is_post_activation(spec) and not _has_d2(spec.out_act):
        _reverse_piecewise_linear(spec, params, ws, dY, dparams)
        return
    _seed_output(ws, B, dY, spec.sizes[-1], True)
    _reverse(spec, params, ws, True, True, dparams, False, ws.G, False)


@unit
def input_grad_vjp(spec, params, X, H, ws, dparams):
    B = _forward(spec, params, X, ws)
    _tangent(spec, params, H, ws)
    C = ws.C0
    for b in range(B):
        C[b] = 0.0
        C[B + b] = 1.0
    _reverse(spec, params, ws, True, True, dparams, False, ws.G, False)
