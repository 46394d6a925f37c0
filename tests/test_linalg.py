"""``linalg.copy``: array assignment as NumPy does it, for the shapes compiled code copies."""

import numba
import numpy as np
import pytest

from fastd3pg.linalg import copy


@numba.njit
def compiled_copy(dst, src):
    copy(dst, src)


# Compiled code gets its own loop inlined; Python callers get NumPy's assignment.
COPIES = [pytest.param(copy, id="python"), pytest.param(compiled_copy, id="compiled")]


@pytest.mark.parametrize("make", [
    lambda a: a[0],  # a row
    lambda a: a[:, 1],  # a strided column
    lambda a: a,  # a whole matrix
    lambda a: a[1:, 2:],  # a strided block
    lambda a: a.T[:3, :2],  # a transposed block
])
@pytest.mark.parametrize("copy_fn", COPIES)
def test_copy_assigns_like_numpy_on_views(make, copy_fn):
    rng = np.random.default_rng(0)
    src_base, got_base = rng.normal(size=(4, 5)), np.zeros((4, 5))
    want_base = got_base.copy()
    src = make(src_base).copy() * 3.0 - 1.0
    make(want_base)[...] = src
    copy_fn(make(got_base), src)
    np.testing.assert_array_equal(got_base, want_base)  # exact: a copy does no arithmetic


@pytest.mark.parametrize("copy_fn", COPIES)
def test_copy_refuses_arrays_of_different_shapes(copy_fn):
    with pytest.raises(ValueError, match="shapes differ"):
        copy_fn(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="shapes differ"):
        copy_fn(np.zeros((2, 3)), np.zeros((3, 2)))
