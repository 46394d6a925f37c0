"""The running normalizer equals NumPy's mean/std over all data, for any split into batches."""

import numpy as np
import pytest

from fastd3pg.nn import RunningMeanStd, normalizer_moments, normalizer_update


@pytest.mark.parametrize("seed", range(5))
def test_any_split_matches_numpy_mean_and_std(seed):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 60)), 3
    data = rng.standard_normal((n, k)) * [1.0, 1e-3, 50.0] + [0.0, 1e6, -7.0]
    cuts = np.sort(rng.integers(0, n + 1, size=int(rng.integers(0, 6))))
    norm = RunningMeanStd(k)
    for part in np.split(data, cuts):  # includes empty batches
        norm.update(part)
    assert norm.count == n
    np.testing.assert_allclose(norm.mean, data.mean(axis=0), rtol=1e-13, atol=1e-15)
    # The feature around 1e6 with spread 1e-3 keeps only ~1e-7 relative precision in its data
    # (1e6 · 2^-52 / 1e-3) and loses everything in the Σx²/n - mean² form.
    np.testing.assert_allclose(norm.std, data.std(axis=0), rtol=1e-6, atol=1e-15)


def test_one_row_at_a_time_and_one_vector_updates():
    rng = np.random.default_rng(7)
    data = rng.standard_normal((20, 2)) + 3.0
    a, b = RunningMeanStd(2), RunningMeanStd(2)
    for row in data:
        a.update(row)
    b.update(data)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-14)
    np.testing.assert_allclose(a.std, b.std, rtol=1e-12)
    np.testing.assert_allclose(a.normalize(data, clip=5.0),
                               np.clip((data - data.mean(0)) / (data.std(0) + 1e-8), -5, 5),
                               rtol=1e-10)


def test_compiled_kernels_on_flat_state():
    stat = np.zeros(2 * 4 + 1)
    mean, std = np.empty(4), np.empty(4)
    normalizer_moments(stat, mean, std)
    assert np.all(mean == 0.0) and np.all(std == 1.0)
    data = np.random.default_rng(1).standard_normal((9, 4))
    normalizer_update(stat, data[:4])
    normalizer_update(stat, data[4:])
    normalizer_moments(stat, mean, std)
    np.testing.assert_allclose(mean, data.mean(0), rtol=1e-13)
    np.testing.assert_allclose(std, data.std(0), rtol=1e-13)


def test_bad_data_is_rejected():
    norm = RunningMeanStd(3)
    with pytest.raises(ValueError, match=r"shape \(B, 3\)"):
        norm.update(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        norm.update(np.array([1.0, np.nan, 0.0]))
    with pytest.raises(ValueError, match="positive integer"):
        RunningMeanStd(0)
