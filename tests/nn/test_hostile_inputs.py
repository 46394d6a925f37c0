"""Hostile input to every method of ``MLP`` (and ``numpy_forward``, ``save``, ``load``): what
NumPy converts to real float64 gives the float64 result; NaN, inf, non-numbers, complex
numbers and wrong shapes give one ``ValueError`` line; huge magnitudes give a finite result
or a ``ValueError`` naming the overflow, never inf or NaN."""

import numpy as np
import pytest

from fastd3pg.nn import MLP, kernels, load, numpy_forward, save

# Two scalar-output networks: a smooth one with layer norm (bounded hidden layers) and an
# unbounded ReLU one, so that huge inputs saturate in the first and overflow in the second.
NETS = {"tanh-ln": MLP([3, 5, 4, 1], "tanh", "linear", layer_norm=True),
        "relu": MLP([3, 6, 1], "relu", "linear")}
# method -> the array arguments it takes, in order.
METHODS = {"forward": ("params", "X"), "vjp": ("params", "X", "dY"),
           "input_grad": ("params", "X"), "input_grad_vjp": ("params", "X", "H"),
           "value_and_input_grad_vjp": ("params", "X", "dY", "H"),
           "numpy_forward": ("params", "X")}
CASES = [(m, a) for m, args in METHODS.items() for a in args]


def _args(net, seed=0):
    rng = np.random.default_rng(seed)
    B = 4
    return {"params": net.init(seed=seed) + 0.1 * rng.standard_normal(net.num_params),
            "X": rng.standard_normal((B, net.n_in)), "dY": rng.standard_normal((B, net.n_out)),
            "H": rng.standard_normal((B, net.n_in))}


def _call(net, method, args):
    if method == "numpy_forward":
        return numpy_forward(net.sizes, net.activation, net.output_activation, net.layer_norm,
                             args["params"], args["X"], net.ln_eps)
    return getattr(net, method)(*(args[k] for k in METHODS[method]))


def _results(out):
    return list(out) if isinstance(out, tuple) else [out]


def _raises(fn, match):
    """``fn()`` raises a ``ValueError`` of one line matching ``match``."""
    with pytest.raises(ValueError, match=match) as err:
        fn()
    assert "\n" not in str(err.value), str(err.value)


def _non_contiguous(x):
    return np.stack([x, -x], axis=-1)[..., 0]


def _read_only(x):
    x = x.copy()
    x.setflags(write=False)
    return x


# name -> (hostile form of a float64 array x, the float64 array it stands for).
ACCEPTED = {
    "int64": lambda x: (np.round(3 * x).astype(np.int64), np.round(3 * x)),
    "int32": lambda x: (np.round(3 * x).astype(np.int32), np.round(3 * x)),
    "uint8": lambda x: (np.round(3 * np.abs(x)).astype(np.uint8), np.round(3 * np.abs(x))),
    "float32": lambda x: (x.astype(np.float32), x.astype(np.float32).astype(np.float64)),
    "float16": lambda x: (x.astype(np.float16), x.astype(np.float16).astype(np.float64)),
    "bool": lambda x: (x > 0, (x > 0).astype(np.float64)),
    "object": lambda x: (x.astype(object), x),
    "list": lambda x: (x.tolist(), x),
    "non-contiguous": lambda x: (_non_contiguous(x), x),
    "read-only": lambda x: (_read_only(x), x),
    "fortran-order": lambda x: (np.asfortranarray(x), x),
    "big-endian": lambda x: (x.astype(">f8"), x),
}


def _float32(x):
    with np.errstate(over="ignore"):  # the overflow to inf is the point
        return x.astype(np.float32)


def _with_one(x, value):
    x = x.astype(object if isinstance(value, (str, type(None), complex)) else x.dtype)
    x.flat[x.size // 2] = value
    return x


# name -> (hostile form of a float64 array x, the error message it must give).
REJECTED = {
    "nan": (lambda x: _with_one(x, np.nan), "contains NaN or inf"),
    "inf": (lambda x: _with_one(x, np.inf), "contains NaN or inf"),
    "-inf": (lambda x: _with_one(x, -np.inf), "contains NaN or inf"),
    "float32 overflow": (lambda x: _float32(x * 1e300), "contains NaN or inf"),
    "complex": (lambda x: x + 1j, "real numbers"),
    "complex, zero imaginary part": (lambda x: x.astype(complex), "real numbers"),
    "complex element": (lambda x: _with_one(x, 1 + 2j), "real numbers"),
    "strings": (lambda x: x.astype(str), "real numbers"),
    "string element": (lambda x: _with_one(x, "1.5"), "real numbers"),
    "None element": (lambda x: _with_one(x, None), "real numbers"),
    "None": (lambda x: None, "real numbers"),
    "ragged": (lambda x: [x.tolist(), [1.0]], "real numbers"),
    "too short": (lambda x: x[..., :-1], "shape"),
    "too long": (lambda x: np.concatenate([x, x[..., :1]], axis=-1), "shape"),
    "extra axis": (lambda x: x[None], "shape"),
    "scalar": (lambda x: 1.0, "shape"),
    "empty": (lambda x: x[:0], "shape"),
}


@pytest.mark.parametrize("variant", list(ACCEPTED))
@pytest.mark.parametrize("method, arg", CASES)
def test_what_numpy_converts_to_float64_gives_the_float64_result(method, arg, variant):
    net = NETS["tanh-ln"]
    args = _args(net)
    hostile, equivalent = ACCEPTED[variant](args[arg])
    original = np.array(hostile, dtype=object) if isinstance(hostile, list) else hostile.copy()
    got = _results(_call(net, method, {**args, arg: hostile}))
    want = _results(_call(net, method, {**args, arg: equivalent}))
    for g, w in zip(got, want):
        # Same code on the same float64 values: exactly the same result.
        np.testing.assert_array_equal(g, w)
    # The caller's array is neither modified nor aliased by a result.
    np.testing.assert_array_equal(np.array(hostile, dtype=object), original)
    if isinstance(hostile, np.ndarray):
        assert not any(np.shares_memory(g, hostile) for g in got)


@pytest.mark.parametrize("variant", list(REJECTED))
@pytest.mark.parametrize("method, arg", CASES)
def test_bad_values_and_shapes_are_one_clear_value_error(method, arg, variant):
    net = NETS["tanh-ln"]
    args = _args(net)
    make, message = REJECTED[variant]
    _raises(lambda: _call(net, method, {**args, arg: make(args[arg])}), message)


def test_dtypes_and_layouts_reuse_the_compiled_kernels():
    """Converted inputs reach the kernels as C-contiguous, writeable, native float64 arrays:
    no new specialization is compiled for an int, read-only or strided input."""
    net = NETS["relu"]
    args = _args(net)
    for method in METHODS:
        _call(net, method, args)
    kernel_fns = [kernels.forward, kernels.vjp, kernels.input_grad, kernels.input_grad_vjp,
                  kernels.backward_value_and_input_grad]
    dispatchers = [f.dispatcher for f in kernel_fns]
    before = [len(d.signatures) for d in dispatchers]
    for variant in ACCEPTED:
        for method, arg in CASES:
            _call(net, method, {**args, arg: ACCEPTED[variant](args[arg])[0]})
    assert [len(d.signatures) for d in dispatchers] == before


@pytest.mark.parametrize("scale", [1.7e308, -1e308, 1e300, 1e150])
@pytest.mark.parametrize("method, arg", CASES)
@pytest.mark.parametrize("net_name", list(NETS))
def test_huge_magnitudes_give_a_finite_result_or_a_clear_error(net_name, method, arg, scale):
    net = NETS[net_name]
    args = _args(net)
    huge = np.sign(args[arg]) * scale  # finite, every entry of magnitude |scale|
    try:
        out = _results(_call(net, method, {**args, arg: huge}))
    except ValueError as err:
        assert f"{method} overflowed" in str(err) and "\n" not in str(err), str(err)
    else:
        assert all(np.all(np.isfinite(r)) for r in out), out


def test_huge_inputs_do_overflow_without_the_check():
    """The overflow check is needed: the kernels themselves return inf or NaN here."""
    net = NETS["relu"]
    args = _args(net)
    p, X = 100.0 * args["params"], np.sign(args["X"]) * 1e308
    Y = kernels.forward(net.spec, p, X, net.workspace(len(X)))
    assert not np.all(np.isfinite(Y))
    _raises(lambda: net.forward(p, X), "forward overflowed")
    _raises(lambda: numpy_forward(net.sizes, "relu", "linear", False, p, X),
            "numpy_forward overflowed")
    # Saturating hidden layers keep huge inputs finite: a documented finite result.
    smooth = MLP([3, 5, 1], "tanh", "linear")
    p = _args(smooth)["params"]
    assert np.all(np.isfinite(smooth.forward(p, np.sign(_args(smooth)["X"]) * 1e300)))


@pytest.mark.parametrize("seed", [-1, 1.5, "0", None, True, np.nan, 1 + 0j])
def test_init_rejects_bad_seeds(seed):
    _raises(lambda: NETS["relu"].init(seed=seed), "seed must be a non-negative integer")


@pytest.mark.parametrize("scale", [0.0, -1.0, np.inf, np.nan, True, "0.1", 1j])
def test_init_rejects_bad_output_scales(scale):
    _raises(lambda: NETS["relu"].init(seed=0, out_scale=scale), "out_scale must be a positive")


def test_init_accepts_numpy_integers_and_gives_finite_parameters():
    net = NETS["tanh-ln"]
    p = net.init(seed=np.int64(3), out_scale=np.float32(0.5))
    np.testing.assert_array_equal(p, net.init(seed=3, out_scale=float(np.float32(0.5))))
    assert np.all(np.isfinite(p))


@pytest.mark.parametrize("batch", [0, -3, 2.0, "4", None, True])
def test_workspace_rejects_bad_batch_sizes(batch):
    _raises(lambda: NETS["relu"].workspace(batch), "workspace batch must be a positive integer")


@pytest.mark.parametrize("eps", [0.0, -1e-5, np.inf, np.nan, True, "1e-5"])
def test_constructor_rejects_bad_layer_norm_eps(eps):
    _raises(lambda: MLP([3, 4, 1], layer_norm=True, ln_eps=eps), "ln_eps must be a positive")


def test_save_and_load_reject_non_finite_parameters(tmp_path):
    net = NETS["relu"]
    p = net.init(seed=0)
    p[3] = np.nan
    _raises(lambda: save(tmp_path / "bad.npz", net, p), "params contains NaN or inf")
    assert not (tmp_path / "bad.npz").exists()
    np.savez(tmp_path / "foreign.npz", params=p, **net.spec_arrays())
    _raises(lambda: load(tmp_path / "foreign.npz"), "params contains NaN or inf")
    np.savez(tmp_path / "complex.npz", params=p.astype(complex), **net.spec_arrays())
    _raises(lambda: load(tmp_path / "complex.npz"), "real numbers")
