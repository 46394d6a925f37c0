"""The MLP's derivatives against central finite differences, its layout, files and errors."""

import numpy as np
import pytest

from fastd3pg._jit import jit
from fastd3pg.nn import MLP, kernels, load, numpy_forward, save
from fastd3pg.testing import central_difference, relative_error

ACTS = ["relu", "tanh", "elu", "linear"]
# (sizes, output activation): scalar outputs (input gradients) with both output activations.
SHAPES = [([3, 5, 4, 1], "linear"), ([2, 7, 1], "tanh"), ([4, 3, 6, 5, 1], "linear")]
TOL = 1e-6
# Central-difference step: near the float64 optimum (truncation ~EPS², round-off ~1e-16/EPS).
EPS = 1e-5


def _pre_activations(net, params, X):
    """Every hidden pre-activation (after layer norm) and the output's, for the kink margin."""
    blocks = {(n, l): params[o:o + int(np.prod(s))].reshape(s) for n, l, o, s in net.layout()}
    acts = {"relu": lambda v: np.maximum(v, 0), "tanh": np.tanh, "linear": lambda v: v,
            "elu": lambda v: np.where(v > 0, v, np.expm1(np.minimum(v, 0)))}
    L = len(net.sizes) - 1
    out, a = [], X
    for l in range(1, L + 1):
        z = a @ blocks["W", l] + blocks["b", l]
        if l < L and net.layer_norm:
            z = (z - z.mean(1, keepdims=True)) / np.sqrt(z.var(1, keepdims=True) + net.ln_eps)
            z = z * blocks["ln_gain", l] + blocks["ln_bias", l]
        out.append(z.ravel())
        a = acts[net.activation if l < L else net.output_activation](z)
    return np.concatenate(out)


def _point(net, batch, seed):
    """Random parameters (layer-norm gains and biases away from 1 and 0) and inputs, redrawn
    until every pre-activation is at least 1e-3 away from the ReLU/ELU kink at 0."""
    rng = np.random.default_rng(seed)
    for _ in range(100):
        params = net.init(seed=seed) + 0.3 * rng.standard_normal(net.num_params)
        X = rng.standard_normal((batch, net.n_in))
        if np.min(np.abs(_pre_activations(net, params, X))) > 1e-3:
            return params, X, rng
    raise AssertionError("no point away from the kinks")


def _net_list():
    out_nets = []
    for sizes, out in SHAPES:
        for act in ACTS:
            for ln in (False, True):
                out_nets.append(pytest.param(MLP(sizes, act, out, ln), id=f"{sizes}-{act}-{out}-ln{int(ln)}"))
    return out_nets


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("net", _net_list())
def test_forward_matches_numpy_reference(net, batch):
    params, X, _ = _point(net, batch, 0)
    ref = numpy_forward(net.sizes, net.activation, net.output_activation, net.layer_norm, params, X)
    assert relative_error(net.forward(params, X), ref) < 1e-13


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("net", list(_net_list()) + [MLP([3, 4, 2], "tanh", "tanh", True),
                                                  MLP([2, 5, 3], "elu", "linear", False)])
def test_vjp_matches_finite_differences(net, batch):
    for seed in range(2):
        params, X, rng = _point(net, batch, seed)
        dY = rng.standard_normal((batch, net.n_out))
        dparams, dX = net.vjp(params, X, dY)
        fd_p = central_difference(lambda p: np.sum(net.forward(p, X) * dY), params, EPS)
        fd_x = central_difference(lambda x: np.sum(net.forward(params, x.reshape(X.shape)) * dY),
                                  X.ravel(), EPS)
        assert relative_error(dparams, fd_p) < TOL
        assert relative_error(dX, fd_x.reshape(X.shape)) < TOL


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("net", _net_list())
def test_input_grad_matches_finite_differences(net, batch):
    for seed in range(2):
        params, X, _ = _point(net, batch, seed)
        fd = central_difference(lambda x: net.forward(params, x.reshape(X.shape))[:, 0], X.ravel(), EPS)
        # fd[b, (b', j)] = ∂Y[b]/∂X[b', j]: samples are independent, so only b' = b survives.
        fd = fd.reshape(batch, batch, net.n_in)[np.arange(batch), np.arange(batch)]
        assert relative_error(net.input_grad(params, X), fd) < TOL


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("net", _net_list())
def test_input_grad_vjp_matches_finite_differences(net, batch):
    for seed in range(2):
        params, X, rng = _point(net, batch, seed)
        H = rng.standard_normal(X.shape)
        fd = central_difference(lambda p: np.sum(net.input_grad(p, X) * H), params, EPS)
        assert relative_error(net.input_grad_vjp(params, X, H), fd) < TOL


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("net", _net_list())
def test_fused_value_and_input_grad_backward_matches_finite_differences(net, batch):
    params, X, rng = _point(net, batch, 3)
    dY, H = rng.standard_normal((batch, 1)), rng.standard_normal(X.shape)
    fd = central_difference(
        lambda p: np.sum(net.forward(p, X) * dY) + np.sum(net.input_grad(p, X) * H), params, EPS)
    assert relative_error(net.value_and_input_grad_vjp(params, X, dY, H), fd) < TOL


@jit
def _fused_backward(spec, params, X, dY, H, ws, dparams, after_input_grad):
    """The fused backward after ``forward_input_grad`` (reusing its cotangents) or, with
    ``after_input_grad`` false, after a plain ``forward``."""
    if after_input_grad:
        kernels.forward_input_grad(spec, params, X, ws)
    else:
        kernels.forward(spec, params, X, ws)
    kernels.backward_value_and_input_grad(spec, params, ws, dY, H, dparams)


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("net", _net_list())
def test_fused_backward_after_forward_input_grad_matches_finite_differences(net, batch):
    """After ``forward_input_grad`` the fused backward reuses that pass's cotangents (after a
    plain ``forward``, as in the Python API, it computes them): the same derivative."""
    params, X, rng = _point(net, batch, 4)
    dY, H = rng.standard_normal((batch, 1)), rng.standard_normal(X.shape)
    dparams = np.empty(net.num_params)
    _fused_backward(net.spec, params, X, dY, H, net.workspace(batch + 2), dparams, True)
    fd = central_difference(
        lambda p: np.sum(net.forward(p, X) * dY) + np.sum(net.input_grad(p, X) * H), params, EPS)
    assert relative_error(dparams, fd) < TOL


@pytest.mark.parametrize("batch", [7, 8])
@pytest.mark.parametrize("net", _net_list())
def test_fused_backward_reusing_the_input_gradient_pass_matches_recomputing_it(net, batch):
    """The reuse path (after ``forward_input_grad``) against the path that computes the
    tangent rows' cotangents itself (after ``forward``): the same products and element-wise
    rules, with the weight-gradient sums split at the primal/tangent boundary, so they agree
    to rounding (1e-13 relative; bit-for-bit where 4 divides the batch)."""
    params, X, rng = _point(net, batch, 5)
    dY, H = rng.standard_normal((batch, 1)), rng.standard_normal(X.shape)
    reuse, recompute = np.empty(net.num_params), np.empty(net.num_params)
    ws = net.workspace(batch)
    _fused_backward(net.spec, params, X, dY, H, ws, reuse, True)
    _fused_backward(net.spec, params, X, dY, H, ws, recompute, False)
    assert relative_error(reuse, recompute) < 1e-13


@jit
def _input_grad_rows(spec, params, X, ws, rows, k, out):
    kernels.forward(spec, params, X, ws)
    out[:k] = kernels.input_grad_rows(spec, params, ws, rows, k)


@pytest.mark.parametrize("capacity", [9, 12])
@pytest.mark.parametrize("net", _net_list())
def test_input_grad_of_selected_rows_matches_the_full_input_grad(net, capacity):
    params, X, rng = _point(net, 9, 5)
    full = net.input_grad(params, X)
    subsets = [[0], [8], list(range(9)), [1, 2, 6], [0, 3, 4, 5, 8],
               sorted(rng.choice(9, size=7, replace=False))]
    for rows in subsets:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.full((9, net.n_in), np.nan)
        _input_grad_rows(net.spec, params, X, net.workspace(capacity), rows, len(rows), out)
        # The rows meet other rows in the matrix kernels' 4-row blocks than in the full batch:
        # equal up to the order of a sum, not bit for bit.
        np.testing.assert_allclose(out[:len(rows)], full[rows], rtol=1e-12, atol=1e-14)


def test_finite_difference_check_catches_a_perturbed_kernel_result():
    """The check of the tests above fails when one entry of the kernel's result is off by a
    relative 1e-5 (far smaller than any real derivation bug)."""
    net = MLP([3, 5, 4, 1], "tanh", "linear", True)
    params, X, rng = _point(net, 7, 0)
    H = rng.standard_normal(X.shape)
    analytic = net.input_grad_vjp(params, X, H)
    fd = central_difference(lambda p: np.sum(net.input_grad(p, X) * H), params, EPS)
    assert relative_error(analytic, fd) < TOL
    scale = np.max(np.abs(analytic))
    for k in (0, net.num_params // 2, net.num_params - 1):
        perturbed = analytic.copy()
        perturbed[k] += 1e-5 * scale
        assert relative_error(perturbed, fd) > TOL


@jit
def _critic_step(spec, params, X, H, dY, ws, dparams, Gout):
    Y, G = kernels.forward_input_grad(spec, params, X, ws)
    Gout[:] = G
    kernels.backward_value_and_input_grad(spec, params, ws, dY, H, dparams)
    return Y[0, 0]


@jit
def _actor_step(spec, params, X, dY, ws, dparams, dX):
    kernels.forward(spec, params, X, ws)
    kernels.param_vjp(spec, params, ws, dY, dparams)
    kernels.input_vjp(spec, params, ws, dY, dX)


def test_kernels_called_from_compiled_code_match_the_python_api():
    critic = MLP([5, 8, 8, 1], "relu", "linear", True)
    actor = MLP([3, 8, 2], "tanh", "tanh", False)
    rng = np.random.default_rng(1)
    pc, pa = critic.init(seed=1), actor.init(seed=2, out_scale=3e-3)
    big = rng.standard_normal((6, 9))
    X = big[:, 2:7]  # a non-contiguous view, batch below the workspace's capacity
    H, dY = rng.standard_normal((6, 5)), rng.standard_normal((6, 1))
    dparams, G = np.empty(critic.num_params), np.empty((6, 5))
    y0 = _critic_step(critic.spec, pc, X, H, dY, critic.workspace(10), dparams, G)
    assert y0 == pytest.approx(critic.forward(pc, X)[0, 0], rel=1e-14)
    np.testing.assert_allclose(G, critic.input_grad(pc, X), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(dparams, critic.value_and_input_grad_vjp(pc, X, dY, H),
                               rtol=1e-12, atol=1e-15)
    Xa, dA = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    dpa, dXa = np.empty(actor.num_params), np.empty((4, 3))
    _actor_step(actor.spec, pa, Xa, dA, actor.workspace(4), dpa, dXa)
    ref_p, ref_x = actor.vjp(pa, Xa, dA)
    np.testing.assert_allclose(dpa, ref_p, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dXa, ref_x, rtol=1e-12, atol=1e-15)


def test_layout_masks_and_output_slices():
    net = MLP([3, 4, 5, 2], "relu", "linear", True)
    sizes = [3, 4, 5, 2]
    assert net.num_params == 3 * 4 + 4 + 2 * 4 + 4 * 5 + 5 + 2 * 5 + 5 * 2 + 2
    expected = [("W", 1, (3, 4)), ("b", 1, (4,)), ("ln_gain", 1, (4,)), ("ln_bias", 1, (4,)),
                ("W", 2, (4, 5)), ("b", 2, (5,)), ("ln_gain", 2, (5,)), ("ln_bias", 2, (5,)),
                ("W", 3, (5, 2)), ("b", 3, (2,))]
    layout = net.layout()
    assert [(n, l, s) for n, l, _, s in layout] == expected
    offsets = [o for _, _, o, _ in layout] + [net.num_params]
    assert all(offsets[i + 1] - offsets[i] == int(np.prod(layout[i][3])) for i in range(len(layout)))
    wb, hw = net.weight_bias_mask(), net.hidden_weight_mask()
    assert wb.dtype == bool and wb.sum() == net.num_params - 2 * (4 + 5)
    assert hw.sum() == 3 * 4 + 4 * 5 and not hw[layout[1][2]] and hw[layout[4][2]]
    w0, w1, b0, b1 = net.output_layer_slices()
    assert (w0, w1, b0, b1) == (layout[8][2], layout[9][2], layout[9][2], net.num_params)
    # PopArt-style rescaling through these slices scales and shifts a linear output.
    params = net.init(seed=0)
    X = np.random.default_rng(0).standard_normal((4, sizes[0]))
    p2 = params.copy()
    p2[w0:w1] *= 2.0
    p2[b0:b1] = 2.0 * p2[b0:b1] + 1.0
    np.testing.assert_allclose(net.forward(p2, X), 2.0 * net.forward(params, X) + 1.0, rtol=1e-12)


def test_init_is_seeded_and_scaled():
    net = MLP([6, 64, 64, 1], "relu", "linear", True)
    a, b, c = net.init(seed=3), net.init(seed=3), net.init(seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    p = net.init(seed=0, out_scale=3e-3)
    w0, w1, b0, b1 = net.output_layer_slices()
    assert np.max(np.abs(p[w0:w1])) <= 3e-3 and np.all(p[b0:b1] == 0.0)
    for name, layer, off, shape in net.layout():
        block = p[off:off + int(np.prod(shape))]
        if name == "ln_gain":
            assert np.all(block == 1.0)
        elif name in ("b", "ln_bias"):
            assert np.all(block == 0.0)
        elif layer < 3:
            assert np.max(np.abs(block)) <= np.sqrt(6.0 / sum(shape)) and np.std(block) > 0


def test_save_and_load_round_trip(tmp_path):
    net = MLP([4, 7, 2], "elu", "tanh", True, ln_eps=1e-3)
    params = net.init(seed=5)
    save(tmp_path / "net.npz", net, params)
    net2, params2 = load(tmp_path / "net.npz")
    assert repr(net2) == repr(net) and net2.ln_eps == 1e-3
    np.testing.assert_array_equal(params2, params)
    X = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_array_equal(net2.forward(params2, X), net.forward(params, X))


@pytest.mark.parametrize("sizes", [[3], [3, 0, 1], [3, -2, 1], [3, 2.5, 1], [3, True, 1], 5, [3, "4", 1]])
def test_bad_sizes_are_rejected(sizes):
    with pytest.raises(ValueError, match="sizes"):
        MLP(sizes)


def test_bad_activations_are_rejected():
    with pytest.raises(ValueError, match="unknown activation 'sigmoid'.*relu"):
        MLP([2, 3, 1], activation="sigmoid")
    with pytest.raises(ValueError, match="unknown output_activation"):
        MLP([2, 3, 1], output_activation="softmax")
    with pytest.raises(ValueError, match="layer_norm"):
        MLP([2, 3, 1], layer_norm="yes")


def test_bad_shapes_and_parameter_lengths_are_rejected():
    net = MLP([3, 4, 1])
    p, X = net.init(), np.zeros((5, 3))
    with pytest.raises(ValueError, match="params must be a 1-D array of length 21"):
        net.forward(p[:-1], X)
    with pytest.raises(ValueError, match="params"):
        net.forward(p.reshape(3, 7), X)
    with pytest.raises(ValueError, match=r"X must have shape \(B, 3\)"):
        net.forward(p, np.zeros((5, 2)))
    with pytest.raises(ValueError, match="X must have shape"):
        net.input_grad(p, np.zeros(3))
    with pytest.raises(ValueError, match=r"dY must have shape \(5, 1\)"):
        net.vjp(p, X, np.zeros((4, 1)))
    with pytest.raises(ValueError, match=r"H must have shape \(5, 3\)"):
        net.input_grad_vjp(p, X, np.zeros((5, 2)))
    two = MLP([3, 4, 2])
    with pytest.raises(ValueError, match="single output"):
        two.input_grad(two.init(), X)
    with pytest.raises(ValueError, match="seed"):
        net.init(seed=-1)
    with pytest.raises(ValueError, match="batch"):
        net.workspace(0)


@pytest.mark.parametrize("rows, n_in, n_out", [(r, k, n) for r in (1, 3, 4, 5, 9)
                                                for k in (1, 3, 4, 6) for n in (1, 2, 4, 7)])
def test_blocked_matrix_products_match_numpy_for_every_remainder(rows, n_in, n_out):
    """The three products behind every kernel, on shapes hitting each 4 x 4 block remainder."""
    rng = np.random.default_rng(rows * 100 + n_in * 10 + n_out)
    off = 3  # the blocks live at offsets inside flat buffers
    P = rng.standard_normal(off + n_in * n_out + n_out)
    W, b = P[off:off + n_in * n_out].reshape(n_in, n_out), P[off + n_in * n_out:]
    X = rng.standard_normal(off + rows * n_in)
    D = rng.standard_normal(off + rows * n_out)
    Xm, Dm = X[off:].reshape(rows, n_in), D[off:].reshape(rows, n_out)
    Z = np.full(off + rows * n_out, np.nan)
    kernels._mm_xw(P, off, off + n_in * n_out, X, off, rows, n_in, n_out, Z, off)
    np.testing.assert_allclose(Z[off:].reshape(rows, n_out), Xm @ W + b, rtol=1e-13, atol=1e-13)
    O = np.full(off + rows * n_in, np.nan)
    kernels._mm_dwt(P, off, D, off, rows, n_in, n_out, O, off)
    np.testing.assert_allclose(O[off:].reshape(rows, n_in), Dm @ W.T, rtol=1e-13, atol=1e-13)
    dP = np.ones_like(P)
    kernels._mm_xtd(dP, off, X, off, D, off, rows, n_in, n_out)
    np.testing.assert_allclose(dP[off:off + n_in * n_out].reshape(n_in, n_out), 1.0 + Xm.T @ Dm,
                               rtol=1e-13, atol=1e-13)
    assert np.all(dP[:off] == 1.0) and np.all(dP[off + n_in * n_out:] == 1.0)


def test_loading_an_incomplete_file_is_a_clear_error(tmp_path):
    np.savez(tmp_path / "a.npz", sizes=np.array([2, 3, 1]), params=np.zeros(13))
    with pytest.raises(ValueError, match="lacks 'activation'"):
        load(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", **MLP([2, 3, 1]).spec_arrays())
    with pytest.raises(ValueError, match="no 'params'"):
        load(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", params=np.zeros(12), **MLP([2, 3, 1]).spec_arrays())
    with pytest.raises(ValueError, match="length 13"):
        load(tmp_path / "c.npz")
