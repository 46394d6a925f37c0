"""A trained deterministic actor in plain NumPy: :class:`Policy`, :func:`load_policy`, and
:func:`make_policy_arrays`, the one writer of the arrays ``policy.npz`` holds.

``policy.npz`` (no pickles) holds:

    env                 the task's name
    sizes               the actor MLP's layer sizes [n, ..., m]
    activation          its hidden activation; output_activation: its output activation
    layer_norm          whether its hidden layers are layer-normalized
    params              its flat parameters (fastd3pg.nn's layout)
    obs_mean, obs_std   the observation normalizer's μ_s, σ_s
    obs_clip            the clip c of normalized states (inf: none)

and the actor is ``π(s) = clip(MLP(clip((s - μ_s)/(σ_s + STD_EPS), ±c)), ±1)``.
"""

import numbers
import zipfile
import zlib
from pathlib import Path

import numpy as np

from fastd3pg.control.core import STD_EPS
from fastd3pg.nn import ACTIVATIONS, MLP, numpy_forward

FIELDS = ("env", "sizes", "activation", "output_activation", "layer_norm", "params",
          "obs_mean", "obs_std", "obs_clip")


def make_policy_arrays(env_name: str, net, params, obs_mean=None, obs_std=None,
                       obs_clip=np.inf) -> dict:
    """The arrays of ``policy.npz`` for the actor ``net`` (an :class:`fastd3pg.nn.MLP`) with
    ``params``; without ``obs_mean``/``obs_std`` the actor sees raw states (``μ_s = 0``,
    ``σ_s + STD_EPS = 1``), clipped at ``obs_clip``."""
    n = net.n_in
    if obs_mean is None:
        obs_mean, obs_std = np.zeros(n), np.ones(n) - STD_EPS
    return {
        "env": np.array(env_name), "sizes": np.array(net.sizes),
        "activation": np.array(net.activation),
        "output_activation": np.array(net.output_activation),
        "layer_norm": np.array(net.layer_norm),
        "params": np.array(params, dtype=np.float64),
        "obs_mean": np.array(obs_mean, dtype=np.float64),
        "obs_std": np.array(obs_std, dtype=np.float64),
        "obs_clip": np.array(float(obs_clip)),
    }


def _text(arrays, key) -> str:
    a = np.asarray(arrays[key])
    if a.ndim != 0 or a.dtype.kind != "U":
        raise ValueError(f"{key} must be a string, got {a.dtype} of shape {a.shape}")
    return str(a)


def _activation(arrays, key) -> str:
    name = _text(arrays, key)
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown {key} {name!r}; valid: {', '.join(ACTIVATIONS)}")
    return name


def _reals(arrays, key, shape, allow_inf=False) -> np.ndarray:
    a = np.asarray(arrays[key])
    if a.dtype.kind not in "fiu":
        raise ValueError(f"{key} must hold real numbers, got {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{key} has shape {a.shape}, expected {shape}")
    a = a.astype(np.float64)
    if np.any(np.isnan(a)) or (not allow_inf and not np.all(np.isfinite(a))):
        raise ValueError(f"{key} holds NaN or inf")
    return a


class Policy:
    """A trained deterministic actor in plain NumPy: ``policy(state) -> action``.

    Applies the stored observation normalizer, then the actor network, then clips to [-1, 1]^m.
    Accepts one state ``(n,)`` or a batch ``(B, n)`` of real numbers (any real dtype, any
    memory layout); NaN, inf, complex or non-numeric states raise ``ValueError``.
    :meth:`jacobian` gives ``dπ/ds``. ``arrays`` is what :func:`make_policy_arrays` returns
    (or ``policy.npz`` holds); bad arrays raise ``ValueError``.
    """

    def __init__(self, arrays):
        missing = [k for k in FIELDS if k not in arrays]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        self.env = _text(arrays, "env")
        sizes = np.asarray(arrays["sizes"])
        if (sizes.ndim != 1 or sizes.dtype.kind not in "iu" or sizes.shape[0] < 2
                or np.any(sizes < 1)):
            raise ValueError(f"sizes must be a list of at least 2 positive integers, got {sizes!r}")
        self.sizes = [int(k) for k in sizes]
        self.activation = _activation(arrays, "activation")
        self.output_activation = _activation(arrays, "output_activation")
        layer_norm = np.asarray(arrays["layer_norm"])
        if layer_norm.ndim != 0 or layer_norm.dtype.kind != "b":
            raise ValueError(f"layer_norm must be a boolean, got {layer_norm!r}")
        self.layer_norm = bool(layer_norm)
        self._net = MLP(self.sizes, self.activation, self.output_activation, self.layer_norm)
        self.params = _reals(arrays, "params", (self._net.num_params,))
        self.state_dim, self.action_dim = self.sizes[0], self.sizes[-1]
        n = self.state_dim
        self.obs_mean = _reals(arrays, "obs_mean", (n,))
        self.obs_std = _reals(arrays, "obs_std", (n,))
        if np.any(self.obs_std <= 0):
            raise ValueError("obs_std must be > 0")
        self.obs_clip = float(_reals(arrays, "obs_clip", (), allow_inf=True))
        if not self.obs_clip > 0:
            raise ValueError(f"obs_clip must be > 0, got {self.obs_clip}")
        self._blocks = {(name, layer): self.params[off:off + int(np.prod(shape))].reshape(shape)
                        for name, layer, off, shape in self._net.layout()}

    def _states(self, state):
        """``(X (B, n) float64, single)`` from any real array-like, or a one-line ValueError."""
        where = f"policy for {self.env}"
        if isinstance(state, (str, bytes)):
            raise ValueError(f"{where}: state must hold real numbers, got a string")
        try:
            x = np.asarray(state)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{where}: state is not an array of numbers ({err})") from None
        kind = x.dtype.kind
        if kind == "O":
            if not all(isinstance(v, (numbers.Real, np.bool_)) for v in x.flat):
                raise ValueError(f"{where}: state must hold real numbers")
        elif kind not in "biuf":
            what = "complex numbers" if kind == "c" else f"dtype {x.dtype}"
            raise ValueError(f"{where}: state must hold real numbers, got {what}")
        single = x.ndim == 1
        if x.ndim not in (1, 2) or x.shape[-1] != self.state_dim:
            raise ValueError(
                f"{where}: state must have shape ({self.state_dim},) or "
                f"(B, {self.state_dim}), got {x.shape}"
            )
        try:
            # C order whatever the input's layout, so that BLAS takes the same kernel for the
            # same values (a Fortran-ordered batch would otherwise round differently).
            X = np.ascontiguousarray(x, dtype=np.float64).reshape(-1, self.state_dim)
        except OverflowError:
            raise ValueError(f"{where}: state holds a number beyond float64's range") from None
        if not np.all(np.isfinite(X)):
            raise ValueError(f"{where}: state contains NaN or inf")
        return X, single

    def _normalized(self, X):
        """``s̃`` and the mask of its unclipped components."""
        with np.errstate(over="ignore"):
            Z = (X - self.obs_mean) / (self.obs_std + STD_EPS)
        inside = (Z <= self.obs_clip) & (Z >= -self.obs_clip)
        return np.clip(Z, -self.obs_clip, self.obs_clip), inside

    def _overflow(self, X):
        return ValueError(
            f"policy for {self.env}: a state of magnitude {np.max(np.abs(X)):.3g} overflows the "
            f"actor network (outside the range it can evaluate)")

    def __call__(self, state):
        X, single = self._states(state)
        Z, _ = self._normalized(X)
        if not np.all(np.isfinite(Z)):  # only without the clip (obs_clip = inf)
            raise self._overflow(X)
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                Y = numpy_forward(self.sizes, self.activation, self.output_activation,
                                  self.layer_norm, self.params, Z)
        except ValueError:  # the network's own overflow check
            raise self._overflow(X) from None
        if not np.all(np.isfinite(Y)):
            raise self._overflow(X)
        Y = np.clip(Y, -1.0, 1.0)
        return Y[0] if single else Y

    def jacobian(self, state):
        """``dπ/ds`` in raw coordinates: ``(m, n)`` for one state ``(n,)``, ``(B, m, n)`` for a
        batch; through the normalization (zero where its clip is active), the network and the
        final clip (zero where it is active)."""
        X, single = self._states(state)
        Z, inside = self._normalized(X)
        B, n = Z.shape
        # Forward mode: J[b, k, i] = ∂(layer output k)/∂s_i.
        J = np.zeros((B, n, n))
        J[:, np.arange(n), np.arange(n)] = inside / (self.obs_std + STD_EPS)
        a = Z
        L = len(self.sizes) - 1
        with np.errstate(over="ignore", invalid="ignore"):
            for l in range(1, L + 1):
                W = self._blocks["W", l]
                z = a @ W + self._blocks["b", l]
                J = np.einsum("kh,bki->bhi", W, J)
                if l < L and self.layer_norm:
                    c = z - z.mean(axis=1, keepdims=True)
                    sd = np.sqrt((c ** 2).mean(axis=1, keepdims=True) + self._net.ln_eps)
                    xhat = c / sd
                    dc = J - J.mean(axis=1, keepdims=True)
                    # d x̂ = (dc - x̂ mean(x̂ dc)) / sd, dc = dz - mean(dz)
                    xh = xhat[:, :, None]
                    dxhat = (dc - xh * (xh * dc).mean(axis=1, keepdims=True)) / sd[:, :, None]
                    gain = self._blocks["ln_gain", l]
                    z = xhat * gain + self._blocks["ln_bias", l]
                    J = dxhat * gain[None, :, None]
                a, slope = _activate(z, self.activation if l < L else self.output_activation)
                J = slope[:, :, None] * J
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(J))):
            raise self._overflow(X)
        J = J * ((a >= -1.0) & (a <= 1.0))[:, :, None]  # the final clip to [-1, 1]
        return J[0] if single else J


def _activate(z, name):
    """``(f(z), f'(z))`` for an activation of :data:`fastd3pg.nn.ACTIVATIONS`."""
    if name == "relu":
        return np.maximum(z, 0.0), (z > 0.0).astype(np.float64)
    if name == "tanh":
        t = np.tanh(z)
        return t, 1.0 - t * t
    if name == "elu":
        e = np.expm1(np.minimum(z, 0.0))
        return np.where(z > 0.0, z, e), np.where(z > 0.0, 1.0, e + 1.0)
    return z, np.ones_like(z)


_READ_ERRORS = (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile,
                zlib.error)


def load_policy(path) -> Policy:
    """The actor stored in ``policy.npz`` (or in a run directory holding one).

    A missing file raises ``FileNotFoundError``; an unreadable, truncated or foreign one a
    ``ValueError`` naming it."""
    path = Path(path)
    if path.is_dir():
        path = path / "policy.npz"
    if not path.is_file():
        raise FileNotFoundError(f"no policy file at {path}")
    problem = f"{path} is not a fastd3pg policy file"
    try:
        data = np.load(path, allow_pickle=False)
    except _READ_ERRORS as err:
        raise ValueError(f"{problem}: {err or type(err).__name__}") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{problem}: not an .npz archive")
    try:
        with data:
            arrays = {k: data[k] for k in data.files}
        return Policy(arrays)
    except _READ_ERRORS as err:
        raise ValueError(f"{problem}: {err or type(err).__name__}") from None
