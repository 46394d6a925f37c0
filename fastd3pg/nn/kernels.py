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
    ``1 - a²`` and ``-2a(1 - a²)``; elu: ``1`` or ``a + 1`` (both), so only ``a`` is stored.

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
    ``U``  layer norm's ``u_l`` / tangent ``u̇_l`` (with layer norm) or ``ż_l`` (without;
           and always for the output layer)
    ``R``  per sample and layer ``r_l`` at ``2 Bc l + b``, ``mean(u_l ⊙ ż_l)`` at ``2 Bc l + Bc + b``
    ``C0``, ``C1``  cotangent ping-pong buffers (2 Bc max_width each)
    ``Y`` (Bc, n_L) outputs, ``G`` (Bc, n_0) input gradients, ``nb`` (1,) the batch of the
    last forward pass.

Kernels (``X``, ``dY``, ``H`` are 2-D arrays of any memory layout; results that are returned
are views into the workspace, overwritten by the next call)

    forward(spec, params, X, ws) -> Y                    (B, n_L); stores the intermediates
    forward_input_grad(spec, params, X, ws) -> (Y, G)    n_L == 1; G[b] = ∂Y[b,0]/∂X[b]
    input_grad(spec, params, X, ws) -> G                 same, G only
    param_vjp(spec, params, ws, dY, dparams)             after a forward on ws:
                                                         dparams = ∂<Y, dY>/∂params (overwrites)
    input_vjp(spec, params, ws, dY, dX)                  dX = ∂<Y, dY>/∂X (overwrites)
    vjp(spec, params, ws, dY, dparams, dX)               both at once
    backward_value_and_input_grad(spec, params, ws, dY, H, dparams)
        after forward / forward_input_grad on ws (n_L == 1): dparams =
        ∂/∂params [Σ_b dY_b Y_b + Σ_b <G_b, H_b>]  (the critic's value and gradient-fitting
        losses in one pass: value vjp and double backprop fused)
    input_grad_vjp(spec, params, X, H, ws, dparams)      forward, then the above with dY = 0

Double backprop, as reverse-over-forward: ``Σ_b <G_b, H_b>`` is the directional derivative
``ẏ`` of ``y`` along ``ẋ = H``. The tangent pass pushes ``ȧ_0 = H`` through the network
(``ż = ȧ W``, layer norm's linearization ``u̇ = r (ż - mean ż - u mean(u ż))``,
``ȧ = σ'(zt) γ u̇``), then one reverse pass carries cotangents of both the primal and the
tangent values (cotangent of ``ẏ`` = 1) down to the parameters: the linear layer's
``W̄ = aᵀ z̄ + ȧᵀ ż̄`` is one product over the 2B stacked rows, activation and layer-norm rules
are in :func:`_hidden_backward`.
"""

from typing import NamedTuple

import numpy as np

from fastd3pg._jit import jit

LINEAR, RELU, TANH, ELU = 0, 1, 2, 3
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
        np.zeros(2 * batch * S), np.zeros(2 * batch * S), np.zeros(2 * batch * (L + 1)),
        np.zeros(2 * batch * maxw), np.zeros(2 * batch * maxw),
        np.zeros((batch, int(sizes[-1]))), np.zeros((batch, int(sizes[0]))),
        np.zeros(1, dtype=np.int64),
    )


# -- activations: value, and first and second derivatives from the output ---------------------
@jit
def _act(z, code):
    if code == RELU:
        return z if z > 0.0 else 0.0
    if code == TANH:
        return np.tanh(z)
    if code == ELU:
        return z if z > 0.0 else np.expm1(z)
    return z


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
def _d2act(a, code):
    if code == TANH:
        return -2.0 * a * (1.0 - a * a)
    if code == ELU:
        return 0.0 if a > 0.0 else a + 1.0
    return 0.0


# -- the three matrix products, on flat row-major blocks ---------------------------------------
@jit
def _mm_xw(P, woff, boff, X, xoff, rows, n_in, n_out, Z, zoff):
    """``Z[r, j] = Σ_i X[r, i] W[i, j] (+ b[j] if boff >= 0)`` for ``r < rows``."""
    for r in range(rows):
        zr = zoff + r * n_out
        xr = xoff + r * n_in
        for j in range(n_out):
            Z[zr + j] = P[boff + j] if boff >= 0 else 0.0
        for i in range(n_in):
            x = X[xr + i]
            wr = woff + i * n_out
            for j in range(n_out):
                Z[zr + j] += x * P[wr + j]


@jit
def _mm_dwt(P, woff, D, doff, rows, n_in, n_out, O, ooff):
    """``O[r, i] = Σ_j D[r, j] W[i, j]`` (cotangent of a layer's input)."""
    for r in range(rows):
        dr = doff + r * n_out
        orow = ooff + r * n_in
        for i in range(n_in):
            wr = woff + i * n_out
            acc = 0.0
            for j in range(n_out):
                acc += D[dr + j] * P[wr + j]
            O[orow + i] = acc


@jit
def _mm_xtd(dP, woff, X, xoff, D, doff, rows, n_in, n_out):
    """``dW[i, j] += Σ_r X[r, i] D[r, j]`` (a layer's weight gradient)."""
    for r in range(rows):
        xr = xoff + r * n_in
        dr = doff + r * n_out
        for i in range(n_in):
            x = X[xr + i]
            wr = woff + i * n_out
            for j in range(n_out):
                dP[wr + j] += x * D[dr + j]


# -- forward -----------------------------------------------------------------------------------
@jit
def _load_rows(X, B, n, buf, off):
    for b in range(B):
        for j in range(n):
            buf[off + b * n + j] = X[b, j]


@jit
def _forward(spec, P, X, ws):
    """Primal pass; stores ``a_l``, ``u_l``, ``r_l``; returns the batch size."""
    sizes, poff, aoff = spec.sizes, spec.poff, spec.aoff
    L = sizes.shape[0] - 1
    B = X.shape[0]
    Bc = ws.Y.shape[0]
    ws.nb[0] = B
    A, U, R = ws.A, ws.U, ws.R
    _load_rows(X, B, sizes[0], A, 0)
    for l in range(1, L + 1):
        n_in, n = sizes[l - 1], sizes[l]
        a_in = 2 * Bc * aoff[l - 1]
        a_out = 2 * Bc * aoff[l]
        wo, bo, go, betao = poff[l - 1, 0], poff[l - 1, 1], poff[l - 1, 2], poff[l - 1, 3]
        code = spec.hidden_act if l < L else spec.out_act
        if go >= 0:
            _mm_xw(P, wo, bo, A, a_in, B, n_in, n, U, a_out)
            for b in range(B):
                row = a_out + b * n
                mean = 0.0
                for j in range(n):
                    mean += U[row + j]
                mean /= n
                var = 0.0
                for j in range(n):
                    d = U[row + j] - mean
                    var += d * d
                r = 1.0 / np.sqrt(var / n + spec.ln_eps)
                R[2 * Bc * l + b] = r
                for j in range(n):
                    u = (U[row + j] - mean) * r
                    U[row + j] = u
                    A[row + j] = _act(P[go + j] * u + P[betao + j], code)
        else:
            _mm_xw(P, wo, bo, A, a_in, B, n_in, n, A, a_out)
            for k in range(a_out, a_out + B * n):
                A[k] = _act(A[k], code)
    nL = sizes[L]
    yo = 2 * Bc * aoff[L]
    for b in range(B):
        for j in range(nL):
            ws.Y[b, j] = A[yo + b * nL + j]
    return B


@jit
def _tangent(spec, P, H, ws):
    """Forward mode along ``ȧ_0 = H`` on the stored primal pass: ``ȧ_l`` into the tangent rows
    of ``A``, ``u̇_l`` (layer norm) or ``ż_l`` into those of ``U``, ``mean(u ż)`` into ``R``."""
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
        _mm_xw(P, wo, -1, A, t_in, B, n_in, n, U, t_out)  # ż = ȧ W
        if l == L:
            break
        code = spec.hidden_act
        for b in range(B):
            row = a_out + b * n  # primal row (a, u)
            trow = t_out + b * n  # tangent row (ȧ, u̇ / ż)
            if go >= 0:
                # u̇ = r (ż - mean ż - u mean(u ż))  (layer norm's Jacobian, r = R)
                r = R[2 * Bc * l + b]
                mz = 0.0
                muz = 0.0
                for j in range(n):
                    mz += U[trow + j]
                    muz += U[row + j] * U[trow + j]
                mz /= n
                muz /= n
                R[2 * Bc * l + Bc + b] = muz
                for j in range(n):
                    ud = r * (U[trow + j] - mz - U[row + j] * muz)
                    U[trow + j] = ud
                    A[trow + j] = _dact(A[row + j], code) * P[go + j] * ud
            else:
                for j in range(n):
                    A[trow + j] = _dact(A[row + j], code) * U[trow + j]


# -- reverse -----------------------------------------------------------------------------------
@jit
def _hidden_backward(spec, P, dP, ws, l, B, C, coff, tangent, want_dp):
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
    go, betao = poff[l - 1, 2], poff[l - 1, 3]
    code = spec.hidden_act
    A, U, R = ws.A, ws.U, ws.R
    for b in range(B):
        row = a_off + b * n
        trow = a_off + (B + b) * n
        crow = coff + b * n
        ctrow = coff + (B + b) * n
        if go < 0:
            for j in range(n):
                a = A[row + j]
                s1 = _dact(a, code)
                zb = C[crow + j] * s1
                if tangent:
                    zb += C[ctrow + j] * U[trow + j] * _d2act(a, code)
                    C[ctrow + j] *= s1
                C[crow + j] = zb
            continue
        r = R[2 * Bc * l + b]
        # zt̄ into C's primal row, c̄ = γ żt̄ into its tangent row; means for the projections.
        m_ub = 0.0
        m_uub = 0.0
        m_cb = 0.0
        m_ucb = 0.0
        m_cbud = 0.0
        for j in range(n):
            a = A[row + j]
            u = U[row + j]
            g = P[go + j]
            s1 = _dact(a, code)
            ztb = C[crow + j] * s1
            if tangent:
                ud = U[trow + j]
                ztdb = C[ctrow + j] * s1
                ztb += C[ctrow + j] * g * ud * _d2act(a, code)
                if want_dp:
                    dP[go + j] += ztdb * ud
                cb = g * ztdb
                C[ctrow + j] = cb
                m_cb += cb
                m_ucb += u * cb
                m_cbud += cb * ud
            if want_dp:
                dP[go + j] += ztb * u
                dP[betao + j] += ztb
            ub = g * ztb
            C[crow + j] = ub
            m_ub += ub
            m_uub += u * ub
        m_ub /= n
        m_uub /= n
        for j in range(n):
            u = U[row + j]
            C[crow + j] = r * (C[crow + j] - m_ub - u * m_uub)
        if tangent:
            m_cb /= n
            m_ucb /= n
            m_cbud /= n
            m = R[2 * Bc * l + Bc + b]
            for j in range(n):
                u = U[row + j]
                ud = U[trow + j]
                cb = C[ctrow + j]
                C[crow + j] += (-r * u * m_cbud + r * r * m * m_ucb * u
                                - r * r * m * (cb - m_cb) - r * m_ucb * ud)
                C[ctrow + j] = r * (cb - m_cb - u * m_ucb)


@jit
def _reverse(spec, P, ws, tangent, want_dp, dP, want_dx, dX):
    """Reverse pass from the output cotangents already in ``ws.C0`` (rows 0..B-1: ``ȳ``;
    tangent rows: ``ẏ̄``), turned here into those of ``z_L``; ``dP`` (if ``want_dp``) is
    overwritten with the parameter gradient, ``dX`` (if ``want_dx``) with ``ā_0``."""
    sizes, poff, aoff = spec.sizes, spec.poff, spec.aoff
    L = sizes.shape[0] - 1
    B = ws.nb[0]
    Bc = ws.Y.shape[0]
    A, U = ws.A, ws.U
    rows = 2 * B if tangent else B
    if want_dp:
        dP[:] = 0.0
    # Output: y = σ_out(z), ẏ = σ_out'(z) ż.  z̄ = ȳ σ' + ẏ̄ ż σ'',  ż̄ = ẏ̄ σ'.
    nL = sizes[L]
    yo = 2 * Bc * aoff[L]
    C = ws.C0
    for k in range(B * nL):
        a = A[yo + k]
        s1 = _dact(a, spec.out_act)
        if tangent:
            C[k] = C[k] * s1 + C[B * nL + k] * U[yo + B * nL + k] * _d2act(a, spec.out_act)
            C[B * nL + k] *= s1
        else:
            C[k] *= s1
    Cin, Cout = ws.C0, ws.C1
    for l in range(L, 0, -1):
        n_in, n = sizes[l - 1], sizes[l]
        a_in = 2 * Bc * aoff[l - 1]
        wo, bo = poff[l - 1, 0], poff[l - 1, 1]
        if want_dp:
            _mm_xtd(dP, wo, A, a_in, Cin, 0, rows, n_in, n)  # W̄ = aᵀ z̄ + ȧᵀ ż̄
            for b in range(B):
                for j in range(n):
                    dP[bo + j] += Cin[b * n + j]
        if l == 1 and not want_dx:
            break
        _mm_dwt(P, wo, Cin, 0, rows, n_in, n, Cout, 0)  # ā = z̄ Wᵀ, ǡ = ż̄ Wᵀ
        if l > 1:
            _hidden_backward(spec, P, dP, ws, l - 1, B, Cout, 0, tangent, want_dp)
        Cin, Cout = Cout, Cin
    if want_dx:
        n0 = sizes[0]
        for b in range(B):
            for j in range(n0):
                dX[b, j] = Cin[b * n0 + j]


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
@jit
def forward(spec, params, X, ws):
    B = _forward(spec, params, X, ws)
    return ws.Y[:B]


@jit
def input_grad(spec, params, X, ws):
    B = _forward(spec, params, X, ws)
    _seed_ones(ws, B, spec.sizes[-1])
    _reverse(spec, params, ws, False, False, params, True, ws.G)
    return ws.G[:B]


@jit
def forward_input_grad(spec, params, X, ws):
    G = input_grad(spec, params, X, ws)
    return ws.Y[:G.shape[0]], G


@jit
def param_vjp(spec, params, ws, dY, dparams):
    B = ws.nb[0]
    _seed_output(ws, B, dY, spec.sizes[-1], False)
    _reverse(spec, params, ws, False, True, dparams, False, ws.G)


@jit
def input_vjp(spec, params, ws, dY, dX):
    B = ws.nb[0]
    _seed_output(ws, B, dY, spec.sizes[-1], False)
    _reverse(spec, params, ws, False, False, params, True, dX)


@jit
def vjp(spec, params, ws, dY, dparams, dX):
    B = ws.nb[0]
    _seed_output(ws, B, dY, spec.sizes[-1], False)
    _reverse(spec, params, ws, False, True, dparams, True, dX)


@jit
def backward_value_and_input_grad(spec, params, ws, dY, H, dparams):
    B = ws.nb[0]
    _tangent(spec, params, H, ws)
    _seed_output(ws, B, dY, spec.sizes[-1], True)
    _reverse(spec, params, ws, True, True, dparams, False, ws.G)


@jit
def input_grad_vjp(spec, params, X, H, ws, dparams):
    B = _forward(spec, params, X, ws)
    _tangent(spec, params, H, ws)
    C = ws.C0
    for b in range(B):
        C[b] = 0.0
        C[B + b] = 1.0
    _reverse(spec, params, ws, True, True, dparams, False, ws.G)
