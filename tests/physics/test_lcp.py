"""Lemke's method: solutions of solvable LCPs to 1e-9, failures reported."""

import numpy as np
import pytest

from fastd3pg.physics import lcp

TOL = 1e-9


def check_solution(M, q, z, w):
    scale = 1.0 + np.abs(q).max() + np.abs(M).max() * (1.0 + np.abs(z).max())
    assert np.all(z >= -TOL * scale), z.min()
    assert np.all(w >= -TOL * scale), w.min()
    assert np.max(np.abs(z * w)) <= TOL * scale**2
    np.testing.assert_allclose(w, M @ z + q, rtol=0, atol=TOL * scale)


def known_solution_problem(rng, n, kind):
    """A random LCP with a known solution: a complementary pair ``(z*, w*)``, then
    ``q = w* - M z*``."""
    if kind == "psd":
        B = rng.normal(size=(n, n // 2 + 1))
        M = B @ B.T
    elif kind == "pd":
        B = rng.normal(size=(n, n))
        M = B @ B.T + 0.1 * np.eye(n)
    else:  # monotone: PSD plus skew-symmetric
        B = rng.normal(size=(n, n))
        S = rng.normal(size=(n, n))
        M = B @ B.T + (S - S.T)
    support = rng.random(n) < 0.5
    z_star = np.where(support, rng.uniform(0.1, 2.0, n), 0.0)
    w_star = np.where(support, 0.0, rng.uniform(0.1, 2.0, n))
    return M, w_star - M @ z_star


@pytest.mark.parametrize("kind", ["psd", "pd", "monotone"])
def test_known_solution_problems_are_solved_to_1e9(kind):
    rng = np.random.default_rng(1)
    for trial in range(300):
        n = int(rng.integers(1, 17))
        M, q = known_solution_problem(rng, n, kind)
        z, w, status, _ = lcp.solve(M, q)
        assert status == lcp.OK, (trial, status)
        check_solution(M, q, z, w)


def test_positive_definite_solution_is_the_known_one():
    """A P-matrix LCP has exactly one solution: the constructed one."""
    rng = np.random.default_rng(2)
    for _ in range(200):
        n = int(rng.integers(1, 13))
        M, q = known_solution_problem(rng, n, "pd")
        z, w, status, _ = lcp.solve(M, q)
        assert status == lcp.OK
        z_ref = np.linalg.lstsq(M[np.ix_(z > 0, z > 0)], -q[z > 0], rcond=None)[0]
        np.testing.assert_allclose(z[z > 0], z_ref, atol=1e-9)


def test_random_p_matrix_problems_are_solved():
    """Random P-matrices that are not symmetric: diagonally dominant with random signs off the
    diagonal (every principal minor positive), with arbitrary q."""
    rng = np.random.default_rng(3)
    for _ in range(300):
        n = int(rng.integers(1, 17))
        A = rng.normal(size=(n, n))
        M = A + np.diag(np.abs(A).sum(axis=1) + 0.1)
        q = rng.normal(size=n) * 3.0
        z, w, status, _ = lcp.solve(M, q)
        assert status == lcp.OK
        check_solution(M, q, z, w)


def test_nonnegative_q_gives_zero_without_pivots():
    M = np.array([[1.0, 2.0], [0.0, 1.0]])
    z, w, status, pivots = lcp.solve(M, np.array([0.5, 0.0]))
    assert status == lcp.OK and pivots == 0
    np.testing.assert_array_equal(z, 0.0)


def test_infeasible_problem_reports_ray_termination():
    # w = 0·z - 1 is never ≥ 0; and a PSD M with no feasible point (w1 + w2 = -2 whatever z):
    z, w, status, _ = lcp.solve(np.array([[0.0]]), np.array([-1.0]))
    assert status == lcp.RAY
    M = np.array([[1.0, -1.0], [-1.0, 1.0]])
    z, w, status, _ = lcp.solve(M, np.array([-1.0, -1.0]))
    assert status == lcp.RAY


def test_degenerate_problems_do_not_cycle():
    """Ties in the ratio test (repeated entries of q, zero entries, duplicated rows) are broken
    lexicographically: the solver finishes with a valid solution."""
    rng = np.random.default_rng(4)
    for _ in range(300):
        n = int(rng.integers(2, 13))
        B = rng.normal(size=(n, max(1, n // 3)))
        M = B @ B.T  # rank-deficient PSD: many ties
        k = int(rng.integers(1, n + 1))
        M[:k, :] = M[0]  # duplicated rows
        M[:, :k] = M[:, [0]]
        M = 0.5 * (M + M.T)
        q = np.round(rng.normal(size=n)) * 0.5  # repeated values and zeros
        z, w, status, _ = lcp.solve(M, q)
        assert status in (lcp.OK, lcp.RAY)
        if status == lcp.OK:
            check_solution(M, q, z, w)
        else:
            # Ray termination must mean no solution: a PSD LCP is solvable iff it is
            # feasible, so a linear program must find no z ≥ 0 with M z + q ≥ 0.
            from scipy.optimize import linprog

            res = linprog(np.zeros(n), A_ub=-M, b_ub=q, bounds=[(0, None)] * n)
            assert not res.success


def test_contact_like_degenerate_problem():
    """A 2-D contact LCP with redundant tangent directions (t and -t): a singular block."""
    mu = 0.5
    Minv = np.diag([1.0, 1.0])
    n_, t_ = np.array([0.0, 1.0]), np.array([1.0, 0.0])
    W = np.stack([n_, t_, -t_], axis=1)
    A = W.T @ Minv @ W
    M = np.zeros((4, 4))
    M[:3, :3] = A
    M[1, 3] = M[2, 3] = 1.0
    M[3, 0], M[3, 1], M[3, 2] = mu, -1.0, -1.0
    for vx in (-2.0, -0.1, 0.0, 0.1, 2.0):
        v = np.array([vx, -1.0])
        q = np.concatenate([W.T @ v, [0.0]])
        z, w, status, _ = lcp.solve(M, q)
        assert status == lcp.OK
        check_solution(M, q, z, w)
        assert z[0] == pytest.approx(1.0)  # the normal impulse stops the approach
        assert z[1] + z[2] <= mu * z[0] + 1e-12  # inside the friction cone


def test_nan_is_reported():
    z, w, status, _ = lcp.solve(np.array([[1.0]]), np.array([np.nan]))
    assert status == lcp.NOT_FINITE


def test_bad_shapes_raise_value_error():
    with pytest.raises(ValueError, match="M must be"):
        lcp.solve(np.eye(2), np.zeros(3))
