"""``MLP``: the validating Python shell over :mod:`fastd3pg.nn.kernels`, plus initialisation,
parameter masks, ``.npz`` save/load and a plain-NumPy forward pass."""

import numbers

import numpy as np

from fastd3pg.nn import kernels as K

_NAMES = {v: k for k, v in K.ACTIVATIONS.items()}


def _activation_code(name, what) -> int:
    if not isinstance(name, str) or name not in K.ACTIVATIONS:
        raise ValueError(f"unknown {what} {name!r}; valid: {', '.join(K.ACTIVATIONS)}")
    return K.ACTIVATIONS[name]


def real_array(x, what, owner) -> np.ndarray:
    """``x`` as a C-contiguous, aligned, writeable float64 array (copied only when needed).

    Whatever NumPy converts to real numbers is accepted: bool, int and float arrays of any width
    and byte order, object arrays and nested lists of real numbers, non-contiguous or read-only
    arrays. Strings, complex numbers, ``None`` and ragged nests raise one ``ValueError`` line."""
    try:
        a = np.asarray(x)
        if a.dtype.kind == "O":
            if not all(isinstance(v, numbers.Real) for v in a.flat):
                raise TypeError
            a = a.astype(np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{owner}: {what} must be an array of real numbers, got "
                         f"{type(x).__name__}") from None
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{owner}: {what} must be an array of real numbers, got dtype {a.dtype}")
    return np.require(a, dtype=np.float64, requirements=["C", "A", "W"])


def check_finite(a, what, owner) -> np.ndarray:
    """``a`` itself, or one ``ValueError`` line naming the first NaN or inf entry."""
    finite = np.isfinite(a)
    if not finite.all():
        where = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise ValueError(f"{owner}: {what} contains NaN or inf (first at index {where})")
    return a


def check_result(owner, method, results, inputs) -> None:
    """One ``ValueError`` line if a result overflowed to inf or NaN (finite inputs of huge
    magnitude): every result a method returns is finite."""
    if not all(np.isfinite(r).all() for r in results):
        largest = max(float(np.max(np.abs(x), initial=0.0)) for x in inputs)
        raise ValueError(f"{owner}: {method} overflowed: the result is not finite (largest input "
                         f"or parameter magnitude {largest:.3g})")


def _check_sizes(sizes) -> np.ndarray:
    try:
        items = list(sizes)
    except TypeError:
        raise ValueError(f"MLP sizes must be a sequence of positive integers, got {sizes!r}") from None
    if len(items) < 2:
        raise ValueError(f"MLP sizes need at least an input and an output size, got {items!r}")
    for s in items:
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, numbers.Integral) or s < 1:
            raise ValueError(f"MLP layer sizes must be positive integers, got {items!r}")
    return np.array([int(s) for s in items], dtype=np.int64)


class MLP:
    """A multilayer perceptron over one flat float64 parameter vector.

    ``Y = σ_out(... σ(LN(X W_1 + b_1)) ... W_L + b_L)``; ``LN`` (if ``layer_norm``) normalizes
    each hidden pre-activation per sample with gain and bias (``eps = ln_eps``). The flat layout
    is, layer by layer, ``W (fan_in, fan_out)`` row-major, ``b``, then for normalized hidden
    layers the gain and the bias (see :meth:`layout`).

    Compiled code uses ``net.spec`` (a :class:`~fastd3pg.nn.kernels.Spec` of arrays and ints:
    ``sizes``, ``hidden_act``, ``out_act``, ``layer_norm``, ``ln_eps`` and offsets),
    ``net.workspace(batch)`` and the kernels of :mod:`fastd3pg.nn.kernels`; the methods here
    validate, allocate a workspace and call those same kernels.

    Input to the methods: anything NumPy converts to real float64 (int, float32, bool, object
    arrays of numbers, non-contiguous or read-only arrays; see :func:`real_array`). Non-numeric
    or complex values, NaN or inf, and wrong shapes or lengths raise ``ValueError`` (one line).
    Results are always finite: where finite inputs of huge magnitude (say 1e300) overflow, the
    method raises ``ValueError`` instead of returning inf or NaN.
    """

    def __init__(self, sizes, activation="relu", output_activation="linear", layer_norm=False,
                 ln_eps=1e-5):
        self.sizes = _check_sizes(sizes)
        self.activation = activation
        self.output_activation = output_activation
        self.hidden_act = _activation_code(activation, "activation")
        self.out_act = _activation_code(output_activation, "output_activation")
        if not isinstance(layer_norm, (bool, np.bool_)):
            raise ValueError(f"layer_norm must be True or False, got {layer_norm!r}")
        if isinstance(ln_eps, (bool, np.bool_)) or not isinstance(ln_eps, numbers.Real) \
                or not 0 < ln_eps < np.inf:
            raise ValueError(f"ln_eps must be a positive finite number, got {ln_eps!r}")
        self.layer_norm = bool(layer_norm)
        self.ln_eps = float(ln_eps)
        self.spec = K.make_spec(self.sizes, self.hidden_act, self.out_act, self.layer_norm, self.ln_eps)
        self.num_params = K.num_params(self.spec)
        self.n_in, self.n_out = int(self.sizes[0]), int(self.sizes[-1])
        self.kernels = K

    def __repr__(self):
        return (f"MLP({self.sizes.tolist()}, activation={self.activation!r}, "
                f"output_activation={self.output_activation!r}, layer_norm={self.layer_norm})")

    # -- layout ---------------------------------------------------------------------------------
    def layout(self) -> list:
        """``[(name, layer, offset, shape), ...]`` for every block of the flat vector, names
        ``"W"``, ``"b"``, ``"ln_gain"``, ``"ln_bias"``, layers numbered from 1."""
        out = []
        L = len(self.sizes) - 1
        for l in range(L):
            n_in, n = int(self.sizes[l]), int(self.sizes[l + 1])
            w, b, g, beta = (int(x) for x in self.spec.poff[l])
            out += [("W", l + 1, w, (n_in, n)), ("b", l + 1, b, (n,))]
            if g >= 0:
                out += [("ln_gain", l + 1, g, (n,)), ("ln_bias", l + 1, beta, (n,))]
        return out

    def weight_bias_mask(self) -> np.ndarray:
        """Boolean mask of every weight and bias (not the layer-norm gains and biases)."""
        mask = np.zeros(self.num_params, dtype=bool)
        for name, _, off, shape in self.layout():
            if name in ("W", "b"):
                mask[off:off + int(np.prod(shape))] = True
        return mask

    def hidden_weight_mask(self) -> np.ndarray:
        """Boolean mask of the hidden layers' weight matrices (not biases, layer-norm
        parameters or the output layer)."""
        mask = np.zeros(self.num_params, dtype=bool)
        L = len(self.sizes) - 1
        for name, layer, off, shape in self.layout():
            if name == "W" and layer < L:
                mask[off:off + int(np.prod(shape))] = True
        return mask

    def output_layer_slices(self) -> tuple:
        """``(w0, w1, b0, b1)``: the output layer's ``W`` is ``params[w0:w1]`` (row-major
        ``(n_{L-1}, n_L)``), its bias ``params[b0:b1]``."""
        w0, b0 = int(self.spec.poff[-1, 0]), int(self.spec.poff[-1, 1])
        return w0, b0, b0, b0 + self.n_out

    # -- parameters -----------------------------------------------------------------------------
    def init(self, seed=0, out_scale=None) -> np.ndarray:
        """Fresh parameters: weights Glorot-uniform ``U(±√(6 / (fan_in + fan_out)))`` (the
        default of the dense layers Baselines' DDPG builds on), biases 0, layer-norm gains 1
        and biases 0; with ``out_scale`` the output layer's weights are ``U(±out_scale)``
        instead (Baselines uses 3e-3 for actor and critic outputs)."""
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if out_scale is not None and (isinstance(out_scale, (bool, np.bool_))
                                      or not isinstance(out_scale, numbers.Real)
                                      or not 0 < out_scale < np.inf):
            raise ValueError(f"out_scale must be a positive finite number or None, "
                             f"got {out_scale!r}")
        rng = np.random.default_rng(int(seed))
        params = np.zeros(self.num_params)
        L = len(self.sizes) - 1
        for name, layer, off, shape in self.layout():
            size = int(np.prod(shape))
            if name == "W":
                limit = np.sqrt(6.0 / (shape[0] + shape[1]))
                if layer == L and out_scale is not None:
                    limit = float(out_scale)
                params[off:off + size] = rng.uniform(-limit, limit, size)
            elif name == "ln_gain":
                params[off:off + size] = 1.0
        return params

    def workspace(self, batch: int) -> K.Workspace:
        """Preallocated buffers for the kernels, for batches of up to ``batch`` samples."""
        if isinstance(batch, bool) or not isinstance(batch, numbers.Integral) or batch < 1:
            raise ValueError(f"workspace batch must be a positive integer, got {batch!r}")
        return K.make_workspace(self.spec, int(batch))

    # -- validation -----------------------------------------------------------------------------
    def _params(self, params) -> np.ndarray:
        p = real_array(params, "params", repr(self))
        if p.ndim != 1 or p.shape[0] != self.num_params:
            raise ValueError(f"{self!r}: params must be a 1-D array of length {self.num_params}, "
                             f"got shape {p.shape}")
        return check_finite(p, "params", repr(self))

    def _batch(self, X, n, what) -> np.ndarray:
        X = real_array(X, what, repr(self))
        if X.ndim != 2 or X.shape[1] != n or X.shape[0] < 1:
            raise ValueError(f"{self!r}: {what} must have shape (B, {n}) with B >= 1, got {X.shape}")
        return check_finite(X, what, repr(self))

    def _same_batch(self, X, other, n, what) -> np.ndarray:
        other = real_array(other, what, repr(self))
        if other.shape != (X.shape[0], n):
            raise ValueError(f"{self!r}: {what} must have shape ({X.shape[0]}, {n}) to match X, "
                             f"got {other.shape}")
        return check_finite(other, what, repr(self))

    def _scalar_output(self, method):
        if self.n_out != 1:
            raise ValueError(f"{self!r}: {method} needs a single output (n_out == 1), "
                             f"this network has {self.n_out}")

    # -- the API --------------------------------------------------------------------------------
    def forward(self, params, X) -> np.ndarray:
        """``Y = net(X)``: ``X (B, n_in) -> Y (B, n_out)``."""
        p, X = self._params(params), self._batch(X, self.n_in, "X")
        Y = K.forward(self.spec, p, X, self.workspace(X.shape[0])).copy()
        check_result(repr(self), "forward", [Y], [p, X])
        return Y

    def vjp(self, params, X, dY):
        """Reverse mode: ``(∂<Y, dY>/∂params, ∂<Y, dY>/∂X)``."""
        p, X = self._params(params), self._batch(X, self.n_in, "X")
        dY = self._same_batch(X, dY, self.n_out, "dY")
        ws = self.workspace(X.shape[0])
        dparams, dX = np.empty(self.num_params), np.empty(X.shape)
        K.forward(self.spec, p, X, ws)
        K.vjp(self.spec, p, ws, dY, dparams, dX)
        check_result(repr(self), "vjp", [dparams, dX], [p, X, dY])
        return dparams, dX

    def input_grad(self, params, X) -> np.ndarray:
        """``G[b] = ∂Y[b, 0]/∂X[b]``, shape ``(B, n_in)`` (single-output networks)."""
        self._scalar_output("input_grad")
        p, X = self._params(params), self._batch(X, self.n_in, "X")
        G = K.input_grad(self.spec, p, X, self.workspace(X.shape[0])).copy()
        check_result(repr(self), "input_grad", [G], [p, X])
        return G

    def input_grad_vjp(self, params, X, H) -> np.ndarray:
        """Double backprop: ``∂/∂params Σ_b <G[b], H[b]>`` with ``G = input_grad(params, X)``."""
        self._scalar_output("input_grad_vjp")
        p, X = self._params(params), self._batch(X, self.n_in, "X")
        H = self._same_batch(X, H, self.n_in, "H")
        dparams = np.empty(self.num_params)
        K.input_grad_vjp(self.spec, p, X, H, self.workspace(X.shape[0]), dparams)
        check_result(repr(self), "input_grad_vjp", [dparams], [p, X, H])
        return dparams

    def value_and_input_grad_vjp(self, params, X, dY, H) -> np.ndarray:
        """``∂/∂params [Σ_b dY[b] Y[b] + Σ_b <G[b], H[b]>]`` (the fused critic backward)."""
        self._scalar_output("value_and_input_grad_vjp")
        p, X = self._params(params), self._batch(X, self.n_in, "X")
        dY = self._same_batch(X, dY, 1, "dY")
        H = self._same_batch(X, H, self.n_in, "H")
        ws = self.workspace(X.shape[0])
        dparams = np.empty(self.num_params)
        K.forward(self.spec, p, X, ws)
        K.backward_value_and_input_grad(self.spec, p, ws, dY, H, dparams)
        check_result(repr(self), "value_and_input_grad_vjp", [dparams], [p, X, dY, H])
        return dparams

    # -- files ----------------------------------------------------------------------------------
    def spec_arrays(self) -> dict:
        """The network's specification as plain arrays (for ``.npz`` files)."""
        return {
            "sizes": self.sizes.copy(),
            "activation": np.array(self.activation),
            "output_activation": np.array(self.output_activation),
            "layer_norm": np.array(self.layer_norm),
            "ln_eps": np.array(self.ln_eps),
        }

    @classmethod
    def from_arrays(cls, arrays) -> "MLP":
        try:
            return cls([int(s) for s in np.asarray(arrays["sizes"])],
                       activation=str(arrays["activation"]),
                       output_activation=str(arrays["output_activation"]),
                       layer_norm=bool(arrays["layer_norm"]), ln_eps=float(arrays["ln_eps"]))
        except KeyError as err:
            raise ValueError(f"network specification lacks {err}") from None


def save(path, net: MLP, params) -> None:
    """Write ``net``'s specification and ``params`` to ``path`` (``.npz``, no pickle);
    ``params`` are checked as the methods' (finite, of the right length)."""
    p = net._params(params)
    np.savez(path, params=p, **net.spec_arrays())


def load(path):
    """``(net, params)`` from a file written by :func:`save`."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    if "params" not in arrays:
        raise ValueError(f"{path}: no 'params' array")
    net = MLP.from_arrays(arrays)
    return net, net._params(arrays["params"])


def numpy_forward(sizes, activation, output_activation, layer_norm, params, X, ln_eps=1e-5):
    """The forward pass in plain NumPy (no compilation): for running a stored network anywhere
    NumPy does, and as an independent reference for the compiled kernels. Input is checked as
    :meth:`MLP.forward`'s, and the result is always finite (or a ``ValueError``)."""
    net = MLP(sizes, activation, output_activation, layer_norm, ln_eps)
    p, X = net._params(params), net._batch(X, net.n_in, "X")
    a = X
    fns = {"linear": lambda z: z, "relu": lambda z: np.maximum(z, 0.0), "tanh": np.tanh,
           "elu": lambda z: np.where(z > 0.0, z, np.expm1(np.minimum(z, 0.0)))}
    L = len(net.sizes) - 1
    blocks = {(name, layer): p[off:off + int(np.prod(shape))].reshape(shape)
              for name, layer, off, shape in net.layout()}
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is checked below
        for l in range(1, L + 1):
            z = a @ blocks["W", l] + blocks["b", l]
            if l < L and net.layer_norm:
                mu = z.mean(axis=1, keepdims=True)
                var = ((z - mu) ** 2).mean(axis=1, keepdims=True)
                z = (z - mu) / np.sqrt(var + net.ln_eps)
                z = z * blocks["ln_gain", l] + blocks["ln_bias", l]
            a = fns[activation if l < L else output_activation](z)
    check_result(repr(net), "numpy_forward", [a], [p, X])
    return a
