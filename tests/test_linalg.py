"""``linalg.copy`` and ``gather_rows``: array assignment as NumPy does it, for the shapes compiled
code copies."""

import numpy as np
import pytest

from fastd3pg.linalg import copy, gather_rows


@pytest.mark.parametrize("make", [
    lambda a: a[0],  # a row
    lambda a: a[:, 1],  # a strided column
    lambda a: a,  # a whole matrix
    lambda a: a[1:, 2:],  # a strided block
    lambda a: a.T[:3, :2],  # a transposed block
])
def test_copy_assigns_like_numpy_on_views(make):
    rng = np.random.default_rng(0)
    src_base, got_base = rng.normal(size=(4, 5)), np.zeros((4, 5))
    want_base = got_base.copy()
    src = make(src_base).copy() * 3.0 - 1.0
    make(want_base)[...] = src
    copy(make(got_base), src)
    np.testing.assert_array_equal(got_base, want_base)  # exact: a copy does no arithmetic


def test_copy_refuses_arrays_of_different_shapes():
    with pytest.raises(ValueError, match="shapes differ"):
        copy(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="shapes differ"):
        copy(np.zeros((2, 3)), np.zeros((3, 2)))


def test_gather_rows_takes_the_indexed_rows_exactly():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(9, 3))
    idx = np.array([4, 0, 8, 4, 2], dtype=np.int64)
    dst = np.zeros((5, 3))
    gather_rows(dst, src, idx)
    np.testing.assert_array_equal(dst, src[idx])  # exact: a gather does no arithmetic
    strided = np.zeros((5, 6))[:, ::2]  # a view with a column stride
    gather_rows(strided, src, idx)
    np.testing.assert_array_equal(strided, src[idx])


def test_gather_rows_refuses_arrays_of_different_shapes():
    idx = np.zeros(4, dtype=np.int64)
    with pytest.raises(ValueError, match="shapes differ"):
        gather_rows(np.zeros((3, 2)), np.zeros((5, 2)), idx)
    with pytest.raises(ValueError, match="shapes differ"):
        gather_rows(np.zeros((4, 3)), np.zeros((5, 2)), idx)
