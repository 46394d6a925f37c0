"""Running mean and standard deviation over batches of feature vectors, merged in a numerically
stable way (Chan, Golub & LeVeque 1979): each batch's own mean and sum of squared deviations
``M2`` are combined with the running ones,

    n = n_a + n_b,   δ = mean_b - mean_a,
    mean = mean_a + δ n_b / n,   M2 = M2_a + M2_b + δ² n_a n_b / n,

so the result equals NumPy's ``mean`` and ``std`` (``ddof=0``) of all data seen, for any split
into batches, without the cancellation of the ``Σx² / n - mean²`` form.

The state is one flat float64 array ``stat = [count, mean (k), M2 (k)]`` (length ``2k + 1``), so
compiled loops carry it like any other array; :class:`RunningMeanStd` is its Python shell.
"""

import numpy as np

from fastd3pg._jit import jit


@jit
def normalizer_update(stat, X):
    """Merge the rows of ``X`` (B, k) into ``stat`` in place."""
    B, k = X.shape
    if B == 0:
        return
    n_a = stat[0]
    n = n_a + B
    for j in range(k):
        mean_b = 0.0
        for b in range(B):
            mean_b += X[b, j]
        mean_b /= B
        m2_b = 0.0
        for b in range(B):
            d = X[b, j] - mean_b
            m2_b += d * d
        delta = mean_b - stat[1 + j]
        stat[1 + j] += delta * B / n
        stat[1 + k + j] += m2_b + delta * delta * n_a * B / n
    stat[0] = n


@jit
def normalizer_moments(stat, mean, std):
    """Mean and standard deviation (``ddof=0``) into ``mean``, ``std``; ``0`` and ``1`` before
    any data."""
    k = mean.shape[0]
    n = stat[0]
    for j in range(k):
        if n > 0.0:
            mean[j] = stat[1 + j]
            std[j] = np.sqrt(max(stat[1 + k + j], 0.0) / n)
        else:
            mean[j] = 0.0
            std[j] = 1.0


class RunningMeanStd:
    """Running mean/std of ``k``-dimensional data: ``update(X)`` with batches ``(B, k)`` (or
    one vector ``(k,)``), then ``mean``, ``std``, ``count`` and ``normalize(X)``."""

    def __init__(self, k: int):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"RunningMeanStd: dimension must be a positive integer, got {k!r}")
        self.k = int(k)
        self.stat = np.zeros(2 * self.k + 1)

    def update(self, X):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X.reshape(1, -1)
        if X.ndim != 2 or X.shape[1] != self.k:
            raise ValueError(f"RunningMeanStd: data must have shape (B, {self.k}), got {X.shape}")
        if not np.all(np.isfinite(X)):
            raise ValueError("RunningMeanStd: data contains NaN or inf")
        normalizer_update(self.stat, X)

    @property
    def count(self) -> float:
        return float(self.stat[0])

    @property
    def mean(self) -> np.ndarray:
        mean, std = np.empty(self.k), np.empty(self.k)
        normalizer_moments(self.stat, mean, std)
        return mean

    @property
    def std(self) -> np.ndarray:
        mean, std = np.empty(self.k), np.empty(self.k)
        normalizer_moments(self.stat, mean, std)
        return std

    def normalize(self, X, clip: float | None = None, eps: float = 1e-8) -> np.ndarray:
        """``(X - mean) / (std + eps)``, clipped to ``±clip`` if given."""
        Z = (np.asarray(X, dtype=np.float64) - self.mean) / (self.std + eps)
        return Z if clip is None else np.clip(Z, -clip, clip)
