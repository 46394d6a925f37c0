"""Statistics for Table 1, as Agarwal et al. (2021, "Deep reinforcement learning at the edge of
the statistical precipice") recommend and their rliable library computes them: the
interquartile mean, stratified bootstrap confidence intervals and the probability of
improvement. NumPy only; every function is pure, and the bootstrap draws from
``np.random.default_rng(seed)``.

**Scores.** A method's scores (one number per run, e.g. a run's final normalized return) come
per task, in one of three forms:

- a 1-D array: one task's runs;
- a 2-D array of shape ``(runs, tasks)``: rliable's score matrix, one column per task;
- a list (or tuple) of 1-D arrays, one per task, whose run counts may differ.

**Interquartile mean** (``iqm``): the mean of the middle 50% of the scores, pooled over every
run of every task, exactly ``scipy.stats.trim_mean(scores, 0.25, axis=None)``: with ``N``
pooled scores it drops the ``floor(N / 4)`` smallest and the ``floor(N / 4)`` largest and
averages the rest (no fractional weights, so ``N = 3`` keeps all three).

**Stratified bootstrap** (``stratified_bootstrap_ci``): each resample draws, within each task
(stratum) separately, as many runs with replacement as that task has, so a run never moves
to another task and every task keeps its weight; the statistic is recomputed on every resample
and the interval is the ``alpha / 2`` and ``1 - alpha / 2`` percentiles of those values
(NumPy's linear interpolation: arch's "percentile" method, which rliable uses). One task is
the plain bootstrap.

**Probability of improvement** (``probability_of_improvement``): per task,
``P(X > Y) + P(X = Y) / 2`` over the ``n * m`` pairs of a run of X and a run of Y (the
Mann-Whitney U statistic divided by ``n * m``), averaged over the tasks. Its interval resamples
X and Y independently, each stratified by task.
"""

import numbers

import numpy as np

__all__ = ["iqm", "iqm_ci", "pooled_iqm", "probability_of_improvement",
           "probability_of_improvement_ci", "stratified_bootstrap_ci", "stratified_resample",
           "task_scores"]

RESAMPLES = 10_000
ALPHA = 0.05
# Resampled scores held at once (float64): bounds the memory of large experiments.
_CHUNK_VALUES = 1 << 22


# -- input -------------------------------------------------------------------------------------
def task_scores(scores, name="scores") -> list:
    """``scores`` in any of the module's three forms as a list of 1-D float64 arrays, one per
    task; ValueError for anything else, empty tasks and non-finite scores."""
    if isinstance(scores, (list, tuple)) and scores and all(np.ndim(s) == 0 for s in scores):
        scores = np.asarray(scores, dtype=object)  # a flat list: one task
    if isinstance(scores, (list, tuple)):
        tasks = list(scores)
        if not tasks:
            raise ValueError(f"{name}: no tasks")
    else:
        array = np.asarray(scores, dtype=object)
        if array.ndim == 1:
            tasks = [array]
        elif array.ndim == 2:
            tasks = list(array.T)
            if not tasks:
                raise ValueError(f"{name}: no tasks")
        else:
            raise ValueError(f"{name} must be 1-D (one task) or 2-D (runs x tasks), "
                             f"got shape {array.shape}")
    out = []
    for i, task in enumerate(tasks):
        try:
            if np.iscomplexobj(task):
                raise TypeError
            values = np.asarray(task, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: task {i} holds values that are not real numbers") from None
        if values.ndim != 1:
            raise ValueError(f"{name}: task {i} must be a 1-D array of runs, "
                             f"got shape {values.shape}")
        if not values.size:
            raise ValueError(f"{name}: task {i} has no runs")
        if not np.isfinite(values).all():
            raise ValueError(f"{name}: task {i} has NaN or infinite scores")
        out.append(values)
    return out


def _check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be a number in (0, 1) (0.05 for a 95% interval), "
                         f"got {alpha!r}")
    return float(alpha)


def _check_resamples(resamples) -> int:
    if isinstance(resamples, bool) or not isinstance(resamples, numbers.Integral) \
            or resamples < 1:
        raise ValueError(f"resamples must be an integer >= 1, got {resamples!r}")
    return int(resamples)


def _same_task_count(x: list, y: list):
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} task(s) but y has {len(y)}: "
                         f"the scores must cover the same tasks")


# -- statistics --------------------------------------------------------------------------------
def _trimmed_mean_last_axis(values: np.ndarray) -> np.ndarray:
    """``trim_mean(values, 0.25, axis=-1)``: drop ``floor(N / 4)`` at each end of the sorted
    last axis (scipy's ``int(0.25 * N)``) and average the rest."""
    n = values.shape[-1]
    cut = n // 4
    return np.sort(values, axis=-1)[..., cut:n - cut].mean(axis=-1)


def pooled_iqm(tasks: list) -> np.ndarray:
    """The IQM of every task's runs pooled, for per-task arrays of shape ``(R, n_t)``: ``(R,)``.

    The form ``stratified_bootstrap_ci`` takes a statistic in.
    """
    return _trimmed_mean_last_axis(np.concatenate(tasks, axis=-1))


def iqm(scores) -> float:
    """Interquartile mean of ``scores`` pooled over runs and tasks (see the module docstring)."""
    tasks = task_scores(scores)
    return float(pooled_iqm([t[None, :] for t in tasks])[0])


def _task_improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``W[i, j] = 1`` when ``x[i] > y[j]``, ``1/2`` when equal, else 0."""
    return (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])


def probability_of_improvement(x, y) -> float:
    """``P(X > Y) + P(X = Y) / 2`` for a run of X and a run of Y on the same task, averaged over
    the tasks; ``x`` and ``y`` list the same tasks, with any run counts."""
    xs, ys = task_scores(x, "x"), task_scores(y, "y")
    _same_task_count(xs, ys)
    # Sums of 0, 1/2 and 1 are exact: the value is rliable's U / (n m) to the last bit per task.
    return float(np.mean([_task_improvement(a, b).sum() / (a.size * b.size)
                          for a, b in zip(xs, ys)]))


# -- the stratified bootstrap ------------------------------------------------------------------
def stratified_resample(scores, resamples: int, rng) -> list:
    """``resamples`` stratified bootstrap resamples of ``scores``: one ``(resamples, n_t)`` array
    per task, whose rows are ``n_t`` of that task's runs drawn with replacement."""
    tasks = task_scores(scores)
    resamples = _check_resamples(resamples)
    return [t[rng.integers(0, t.size, size=(resamples, t.size))] for t in tasks]


def _percentile_interval(values: np.ndarray, alpha: float) -> tuple:
    low, high = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def _chunks(resamples: int, runs: int):
    """Resample counts per pass, so that at most ``_CHUNK_VALUES`` scores are held at once."""
    size = max(1, _CHUNK_VALUES // max(1, runs))
    for start in range(0, resamples, size):
        yield min(size, resamples - start)


def stratified_bootstrap_ci(scores, statistic=pooled_iqm, resamples=RESAMPLES, alpha=ALPHA,
                            seed=0) -> tuple:
    """The ``1 - alpha`` percentile interval ``(low, high)`` of ``statistic`` over stratified
    bootstrap resamples of ``scores``.

    ``statistic`` maps a list of per-task arrays of shape ``(R, n_t)`` (R resamples at once)
    to an array of shape ``(R,)``, e.g. ``pooled_iqm``, or
    ``lambda tasks: np.concatenate(tasks, -1).mean(-1)`` for the mean.
    """
    tasks = task_scores(scores)
    resamples, alpha = _check_resamples(resamples), _check_alpha(alpha)
    rng = np.random.default_rng(seed)
    values = np.concatenate([
        np.asarray(statistic(stratified_resample(tasks, r, rng)), dtype=np.float64).reshape(r)
        for r in _chunks(resamples, sum(t.size for t in tasks))])
    return _percentile_interval(values, alpha)


def iqm_ci(scores, resamples=RESAMPLES, alpha=ALPHA, seed=0) -> tuple:
    """The ``1 - alpha`` stratified bootstrap interval of ``iqm(scores)``."""
    return stratified_bootstrap_ci(scores, pooled_iqm, resamples, alpha, seed)


def _counts(indices: np.ndarray, n: int) -> np.ndarray:
    """How often each of ``n`` runs occurs in each row of ``indices``: ``(R, n)`` float64."""
    rows = indices.shape[0]
    flat = indices + n * np.arange(rows)[:, None]
    return np.bincount(flat.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float64)


def probability_of_improvement_ci(x, y, resamples=RESAMPLES, alpha=ALPHA, seed=0) -> tuple:
    """The ``1 - alpha`` percentile interval of ``probability_of_improvement(x, y)``, with X's
    and Y's runs resampled independently, each within its task."""
    xs, ys = task_scores(x, "x"), task_scores(y, "y")
    _same_task_count(xs, ys)
    resamples, alpha = _check_resamples(resamples), _check_alpha(alpha)
    rng = np.random.default_rng(seed)
    values = []
    for r in _chunks(resamples, sum(a.size + b.size for a, b in zip(xs, ys))):
        total = np.zeros(r)
        for a, b in zip(xs, ys):
            # A resample only changes how often each run counts: P = c_x' W c_y / (n m).
            cx = _counts(rng.integers(0, a.size, size=(r, a.size)), a.size)
            cy = _counts(rng.integers(0, b.size, size=(r, b.size)), b.size)
            total += ((cx @ _task_improvement(a, b)) * cy).sum(axis=1) / (a.size * b.size)
        values.append(total / len(xs))
    return _percentile_interval(np.concatenate(values), alpha)
