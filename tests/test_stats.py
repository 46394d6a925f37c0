"""Table 1's statistics: the interquartile mean, stratified bootstrap intervals and the
probability of improvement, against hand-computed values, sampled truths and rliable."""

import numpy as np
import pytest
from scipy import optimize
from scipy.stats import mannwhitneyu, norm, trim_mean

from fastd3pg import stats


# -- the interquartile mean --------------------------------------------------------------------
@pytest.mark.parametrize("scores, expected", [
    # 8 scores: floor(8 / 4) = 2 dropped at each end, the middle four averaged.
    ([8, 1, 7, 2, 6, 3, 5, 4], (3 + 4 + 5 + 6) / 4),
    # 10 scores: floor(10 / 4) = 2 dropped at each end (no fractional weights), six kept.
    ([10, 1, 3, 2, 100, 4, 5, -50, 6, 7], (2 + 3 + 4 + 5 + 6 + 7) / 6),
    # 5 scores: floor(5 / 4) = 1 dropped at each end.
    ([5, 1, 100, 2, 3], (2 + 3 + 5) / 3),
    # 3 scores: floor(3 / 4) = 0, so the IQM is the mean.
    ([1, 2, 9], 4.0),
    ([7.5], 7.5),
])
def test_iqm_of_a_known_sample_follows_trim_mean(scores, expected):
    # The convention is scipy.stats.trim_mean(x, 0.25)'s, which rliable uses: int(0.25 N)
    # scores cut at each end.
    assert stats.iqm(scores) == pytest.approx(expected, rel=1e-15)
    assert stats.iqm(scores) == pytest.approx(trim_mean(scores, 0.25), rel=1e-15)


def test_iqm_across_tasks_pools_every_run():
    matrix = np.array([[1.0, 100.0], [2.0, 3.0]])  # runs x tasks: pooled 1, 2, 3, 100
    assert stats.iqm(matrix) == 2.5
    assert stats.iqm([[1.0, 2.0, 3.0], [100.0]]) == 2.5  # tasks with different run counts
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(16, 7))
    assert stats.iqm(scores) == pytest.approx(trim_mean(scores, 0.25, axis=None), rel=1e-13)


def test_the_three_score_forms_agree():
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(6, 3))
    columns = [matrix[:, t] for t in range(3)]
    assert stats.iqm_ci(matrix, 500, seed=4) == stats.iqm_ci(columns, 500, seed=4)
    # One task: a 1-D array, a flat list and a one-column matrix are the plain bootstrap.
    one = matrix[:, 0]
    assert (stats.iqm_ci(one, 500, seed=4) == stats.iqm_ci(list(one), 500, seed=4)
            == stats.iqm_ci(one[:, None], 500, seed=4))


# -- interval coverage on sampled data ---------------------------------------------------------
def exponential_mixture_iqm(scales):
    """The IQM of an equal mixture of exponential distributions with these scales: twice the
    mean of x over the mixture between its quartiles a and b, with
    int_a^b x e^(-x/s) / s dx = (a + s) e^(-a/s) - (b + s) e^(-b/s)."""
    scales = np.asarray(scales, dtype=float)

    def quantile(p):
        return optimize.brentq(lambda x: 1 - np.mean(np.exp(-x / scales)) - p,
                               0, 100 * scales.max(), xtol=1e-14)

    a, b = quantile(0.25), quantile(0.75)
    return 2 * np.mean((a + scales) * np.exp(-a / scales) - (b + scales) * np.exp(-b / scales))


def test_the_true_iqm_of_an_exponential_by_hand():
    # Quartiles ln(4/3) and ln 4: IQM = 1 + 1.5 ln(4/3) - 0.5 ln 4.
    by_hand = 1 + 1.5 * np.log(4 / 3) - 0.5 * np.log(4)
    assert exponential_mixture_iqm([1.0]) == pytest.approx(by_hand, rel=1e-12)


# 1,000 trials of 16 runs per task, 2,000 resamples each: a coverage estimate with a standard
# error of about 0.008. The percentile interval of a skewed statistic under-covers at n = 16:
# here the 95% intervals cover 0.941 (one task) and 0.933 (three tasks) of the trials, the 90%
# ones 0.885 and 0.883, so [0.91, 0.975] takes a correct 95% interval (other random streams
# included) with about 3 standard errors to spare, and refuses a 90% one, a 50% one or one that
# never resamples (width 0, coverage 0). The 50% row (0.507 here) checks that alpha means what
# it says.
@pytest.mark.parametrize("scales, alpha, band", [
    ([1.0], 0.05, (0.91, 0.975)),
    ([1.0, 2.0, 4.0], 0.05, (0.91, 0.975)),
    ([1.0], 0.5, (0.44, 0.56)),
])
def test_bootstrap_interval_covers_the_true_iqm_at_its_level(scales, alpha, band):
    rng = np.random.default_rng(2024)
    truth = exponential_mixture_iqm(scales)
    samples = rng.exponential(size=(1000, 16, len(scales))) * np.asarray(scales)
    hits = []
    for trial, sample in enumerate(samples):
        low, high = stats.iqm_ci(sample, resamples=2000, alpha=alpha, seed=trial)
        hits.append(low <= truth <= high)
    assert band[0] <= np.mean(hits) <= band[1]


def test_improvement_interval_covers_the_true_probability():
    # X ~ N(1/2, 1), Y ~ N(0, 1): P(X > Y) = Phi(1/2 / sqrt 2) = 0.638. Same trials and band as
    # above: the 95% intervals cover 0.936 of them, 90% ones 0.896.
    truth = norm.cdf(0.5 / np.sqrt(2))
    rng = np.random.default_rng(7)
    xs, ys = rng.normal(0.5, 1.0, size=(1000, 16)), rng.normal(0.0, 1.0, size=(1000, 16))
    hits = [low <= truth <= high for low, high in
            (stats.probability_of_improvement_ci(x, y, 2000, seed=k)
             for k, (x, y) in enumerate(zip(xs, ys)))]
    assert 0.91 <= np.mean(hits) <= 0.975


# -- the probability of improvement ------------------------------------------------------------
def test_disjoint_samples_give_one_and_zero():
    assert stats.probability_of_improvement([2.0, 3.0, 4.0], [0.0, 1.0]) == 1.0
    assert stats.probability_of_improvement([0.0, 1.0], [2.0, 3.0, 4.0]) == 0.0


def test_identical_samples_give_one_half():
    x = [0.3, 0.1, 0.1, 0.7]  # with ties inside the sample
    assert stats.probability_of_improvement(x, x) == 0.5
    assert stats.probability_of_improvement(x, list(reversed(x))) == 0.5


def test_ties_count_half():
    assert stats.probability_of_improvement([1.0], [1.0]) == 0.5
    assert stats.probability_of_improvement([1.0, 2.0], [1.0]) == (0.5 + 1) / 2


def test_a_hand_computed_case_is_the_mann_whitney_statistic():
    x, y = [1.0, 3.0, 5.0], [2.0, 3.0, 4.0, 6.0]
    # x = 1 beats nothing; x = 3 beats 2 and ties 3 (1.5); x = 5 beats 2, 3, 4 (3): 4.5 of 12.
    assert stats.probability_of_improvement(x, y) == 4.5 / 12
    assert mannwhitneyu(x, y).statistic / 12 == 4.5 / 12


def test_improvement_is_averaged_over_tasks():
    x = [[2.0, 3.0], [0.0], [1.0, 3.0, 5.0]]
    y = [[0.0, 1.0], [5.0, 6.0], [2.0, 3.0, 4.0, 6.0]]
    assert stats.probability_of_improvement(x, y) == pytest.approx((1 + 0 + 0.375) / 3,
                                                                   rel=1e-15)


def test_improvement_of_x_over_y_and_of_y_over_x_sum_to_one():
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 5, size=(9, 4)), rng.integers(0, 5, size=(6, 4))  # many ties
    total = stats.probability_of_improvement(x, y) + stats.probability_of_improvement(y, x)
    assert total == pytest.approx(1.0, abs=1e-15)


# -- the stratified bootstrap ------------------------------------------------------------------
def test_a_resample_never_moves_runs_between_tasks():
    tasks = [np.arange(5.0), 100 + np.arange(3.0), [-7.0, -8.0]]
    resampled = stats.stratified_resample(tasks, 1000, np.random.default_rng(0))
    assert [r.shape for r in resampled] == [(1000, 5), (1000, 3), (1000, 2)]
    for original, rows in zip(tasks, resampled):
        assert np.isin(rows, original).all()
        # With replacement: some rows repeat a run, and every run turns up somewhere.
        assert (np.array([len(set(r)) for r in rows]) < len(original)).any()
        assert set(rows.ravel()) == set(original)


def test_tasks_without_spread_inside_give_a_point_interval():
    # Constant within each task: every stratified resample is the sample itself; resampling
    # the pooled runs instead would mix the tasks and give a wide interval.
    scores = np.array([[0.0, 10.0]] * 4)
    assert stats.iqm_ci(scores) == (5.0, 5.0)
    assert stats.probability_of_improvement_ci([[1.0] * 3, [0.0] * 2], [[0.0] * 4, [1.0] * 5]) \
        == (0.5, 0.5)


def test_a_statistic_sees_every_resample_once_in_any_number_of_passes(monkeypatch):
    monkeypatch.setattr(stats, "_CHUNK_VALUES", 8)  # 2 resamples of 4 runs per pass
    seen = []

    def first_task_mean(tasks):
        seen.append(tasks[0].shape[0])
        return tasks[0].mean(axis=-1)

    low, high = stats.stratified_bootstrap_ci([[1.0, 2.0], [3.0, 4.0]], first_task_mean,
                                              resamples=7)
    assert seen == [2, 2, 2, 1]
    assert 1.0 <= low <= high <= 2.0


def test_the_same_seed_gives_the_same_interval():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(10, 3)), rng.normal(size=(8, 3))
    assert stats.iqm_ci(x, 1000, seed=11) == stats.iqm_ci(x, 1000, seed=11)
    assert stats.iqm_ci(x, 1000, seed=11) != stats.iqm_ci(x, 1000, seed=12)
    assert stats.probability_of_improvement_ci(x, y, 1000, seed=11) \
        == stats.probability_of_improvement_ci(x, y, 1000, seed=11)
    assert stats.probability_of_improvement_ci(x, y, 1000, seed=11) \
        != stats.probability_of_improvement_ci(x, y, 1000, seed=12)


def test_intervals_hold_their_point_estimates():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(16, 7)), rng.normal(0.3, 1.0, size=(16, 7))
    low, high = stats.iqm_ci(x)
    assert low < stats.iqm(x) < high
    low, high = stats.probability_of_improvement_ci(y, x)
    assert low < stats.probability_of_improvement(y, x) < high


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("scores, message", [
    ([], "no tasks"),
    (np.zeros((3, 0)), "no tasks"),
    ([[]], "task 0 has no runs"),
    (np.zeros((0, 2)), "task 0 has no runs"),
    ([[1.0], []], "task 1 has no runs"),
    ([1.0, np.nan], "task 0 has NaN or infinite scores"),
    (np.array([[1.0, 2.0], [np.inf, 3.0]]), "task 0 has NaN or infinite scores"),
    (np.zeros((2, 2, 2)), r"1-D \(one task\) or 2-D \(runs x tasks\)"),
    (3.0, r"1-D \(one task\) or 2-D \(runs x tasks\)"),
    ([[1.0, 2.0], ["a"]], "task 1 holds values that are not real numbers"),
    ([[1.0], np.array([1j])], "task 1 holds values that are not real numbers"),
    ([[1.0], [[1.0, 2.0]]], "task 1 must be a 1-D array of runs"),
])
def test_bad_scores_give_one_line_errors(scores, message):
    for call in (lambda: stats.iqm(scores), lambda: stats.iqm_ci(scores),
                 lambda: stats.probability_of_improvement(scores, scores)):
        with pytest.raises(ValueError, match=message) as err:
            call()
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("alpha", [0, 1, -0.1, 1.5, float("nan"), "0.05", True, None])
def test_bad_alpha_is_refused(alpha):
    with pytest.raises(ValueError, match=r"alpha must be a number in \(0, 1\)"):
        stats.iqm_ci([1.0, 2.0], alpha=alpha)
    with pytest.raises(ValueError, match=r"alpha must be a number in \(0, 1\)"):
        stats.probability_of_improvement_ci([1.0, 2.0], [1.0], alpha=alpha)


@pytest.mark.parametrize("resamples", [0, -5, 2.5, True])
def test_bad_resample_counts_are_refused(resamples):
    with pytest.raises(ValueError, match="resamples must be an integer >= 1"):
        stats.iqm_ci([1.0, 2.0], resamples=resamples)


def test_scores_of_different_tasks_are_refused():
    with pytest.raises(ValueError, match="x has 2 task.s. but y has 3"):
        stats.probability_of_improvement(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="x has 1 task.s. but y has 2"):
        stats.probability_of_improvement_ci([1.0, 2.0], [[1.0], [2.0]])


# -- the published library ---------------------------------------------------------------------
@pytest.fixture
def numpy_global_seed():
    """rliable draws from NumPy's global generator: seed it, and put it back afterwards."""
    state = np.random.get_state()
    np.random.seed(0)
    yield
    np.random.set_state(state)


def test_matches_rliable(numpy_global_seed):
    pytest.importorskip("rliable")
    from rliable import library, metrics

    rng = np.random.default_rng(8)
    level = np.linspace(0.0, 1.5, 7)  # tasks of different levels, so that strata matter
    x = rng.uniform(size=(16, 7)) + level
    y = 0.9 * rng.uniform(size=(12, 7)) + level  # other run counts, as rliable allows
    y[:, 0] = x[:12, 0]  # ties between the methods
    y[3, 1] = x[5, 1]
    same = x.copy()
    # Point estimates are the same sums of the same numbers: equal to rounding.
    assert stats.iqm(x) == pytest.approx(metrics.aggregate_iqm(x), abs=1e-12)
    assert stats.probability_of_improvement(x, y) == pytest.approx(
        metrics.probability_of_improvement(x, y), abs=1e-12)
    assert stats.probability_of_improvement(x, same) == metrics.probability_of_improvement(x, same)

    # Intervals: the same resampling scheme on different random streams, so the end points
    # differ by Monte Carlo error only. Its standard deviation, measured over 200 seeds of
    # ours, is 0.0012 per end point for the IQM at 5,000 resamples and 0.0040 for P at 2,000
    # (rliable's loop is slow), so 0.0017 and 0.0056 for the difference of two independent
    # estimates; the tolerances are about 3.5 of those. For the IQM that still tells a 90%
    # interval (end points 0.009 and 0.012 away) and a resampling of the pooled runs that
    # ignores the tasks (0.06 away) from rliable's.
    _, interval = library.get_interval_estimates(
        {"x": x}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=5000)
    np.testing.assert_allclose(stats.iqm_ci(x, 5000), interval["x"].ravel(), atol=0.006)
    x3, y3 = x[:, :3], y[:, :3]  # three tasks keep rliable's loop short
    _, interval = library.get_interval_estimates(
        {"xy": [x3, y3]}, metrics.probability_of_improvement, reps=2000)
    np.testing.assert_allclose(stats.probability_of_improvement_ci(x3, y3, 2000),
                               interval["xy"].ravel(), atol=0.02)
