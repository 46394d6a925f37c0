"""The paper's Figure 3 on RollingDie: the best D3PG and the best DDPG actor on one hard throw,
and how often each method's final actors bounce the die more than once.

    python -m fastd3pg.figure3 RESULTS_DIR [--out DIR] [--throws N] [--throw K]
            [--min-clearance METRES]

``RESULTS_DIR`` is a sweep's results folder (``runs/results/<name>/``) or any folder laid out
like one: ``RESULTS_DIR/RollingDie/<algo>/seed<k>/`` holding ``metrics.csv``, ``policy.npz`` and
``config.json``, for ``algo`` = ``d3pg`` and ``ddpg``. A run counts when it is finished by the
sweep's rule (:func:`fastd3pg.sweep.finished`, with the budget ``steps`` of its
``config.json``). ``python -m fastd3pg.sweep EXP.toml`` (and ``--report``) writes this figure
beside Table 1 whenever the experiment has finished RollingDie runs of both methods.

The paper (§5.3): "visualizing the controller from the best run in our method revealed that it
discovered a novel two-bounce strategy for challenging initial poses (Figure 3), while most of
the strategies in DDPG typically leveraged one bounce only". This module makes each word of that
sentence a rule, so that the claim can be checked on every seed rather than on one picture.

**Bounces.** The simulator logs every contact event of a step
(:meth:`fastd3pg.physics.rolling_die.RollingDie.events`: an impulse at a corner, a corner held
by the resting-contact rule, two corners at once, the die lying flat). A *bounce* is a step
with contact events that follows a flight phase: since the last step with contact events, the
die flew clear of the ground, its lowest corner (height ``y - h (|cos θ| + |sin θ|)``) at least
``min_clearance`` (``MIN_CLEARANCE``, 0.1 m, a tenth of the die's side) above it at a step
boundary. The throw starts in the air (its lowest corner at least 0.79 m up), so the first
contact is always a bounce. A contact that goes on counts once however many events it logs: a
die lying or sliding on a face logs ``flat`` at every step, one pivoting on a corner a held
corner at every step, and the tail of ever smaller bounces is collapsed by the simulator into
held contact. So does a die that tumbles over its corners in hops lower than the threshold.
The threshold is a convention (``--min-clearance``): a tenth of the side is a gap plain to see
in the figure. Over the 256 throws under zero torque, flights of 0.1-0.2 s between contacts
clear the ground mostly by 1-5 cm, those of 0.2-0.3 s by 5-20 cm, those of 0.3-0.5 s by
10-50 cm, and the landing after the throw by more.
The clearance is read at the step boundaries, the episode's own states: a ballistic flight
clearing 0.1 m lasts 0.29 s (14 steps), and its highest boundary lies within a few millimetres
of its true maximum. ``min_clearance`` must exceed the simulator's 2 mm lying-flat gap.

**Throws.** ``N_THROWS`` (256) start states drawn from the task's start distribution: the first
``reset(seed=THROW_SEED)`` and the following ``reset()`` draws of the same stream, as
``fastd3pg.eval`` draws its episodes. The *hard* throws are the quarter (64) of them on which
the die, left alone (zero torque for the whole episode), ends farthest from the target centre
``c* = (target_x, h)``: where a die comes to rest far from the target by itself, the controller
has the most to change. The rule involves no trained actor, so both methods, and every seed,
are judged on the same throws. They are ordered hardest first; the figure draws hard throw
``K`` (``--throw``, 0: the hardest).

**The best run** of a method is the one with the highest final ``return_history`` (the last row
of its ``metrics.csv``, as Table 1 scores it; ties: the lowest seed).

Files, in ``--out`` (default ``RESULTS_DIR``):

    figure3.png     top: the best D3PG and the best DDPG actor from hard throw K (the die every
                    5 steps while it moves, the bounces bold and numbered, the centre's path,
                    the target); bottom: per method, the share of hard throws and of all throws
                    on which a final actor bounces more than once (mean over its finished
                    seeds, one dot per seed), and how many bounces it makes on the hard throws
    figure3.csv     one row per run (``CSV_COLUMNS``): ``bounces_gt1_*`` the share of throws
                    with more than one bounce, ``mean_bounces_*`` the mean bounce count,
                    ``final_distance_*`` the mean distance of the die's centre from ``c*`` at the
                    episode's end (m), over the hard throws and over all throws
    figure3.json    the settings (throws, rule, clearance), the drawn throw, the best runs, the
                    means over seeds, the package version
"""

import csv
import io
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

import fastd3pg
from fastd3pg._cli import Parser, count
from fastd3pg._jit import jit
from fastd3pg.physics.rolling_die import (HALF_SIZE, LOG_SIZE, NCOL, TARGET_X,
                                          RollingDie, read_log, simulate)
from fastd3pg.physics.rolling_die_contact import FLAT_GAP  # a die this low lies on the ground

ENV = "RollingDie"
METHODS = ("d3pg", "ddpg")  #: the methods compared, in the order drawn
LABELS = {"d3pg": "D3PG", "ddpg": "DDPG"}
MIN_CLEARANCE = 0.1  #: metres the lowest corner must clear between two contacts
N_THROWS = 256
THROW_SEED = 3
HARD_FRACTION = 0.25  #: the share of the throws that are hard
STROBE = 5  #: steps between the drawn poses
CSV_COLUMNS = ("method", "seed", "return_history", "bounces_gt1_hard", "bounces_gt1_all",
               "mean_bounces_hard", "mean_bounces_all", "final_distance_hard",
               "final_distance_all", "run")


class Figure3Error(RuntimeError):
    """A figure that cannot be made from the given runs; the message says why, in one line."""


# -- episodes and their bounces ----------------------------------------------------------------
@jit
def _step_logged(p, S, A, out, logs):
    """One step of every row of ``S`` under ``A`` into ``out``, its contact events into
    ``logs`` (the simulator's own step, without Jacobians)."""
    D = np.empty((7, NCOL))
    for i in range(S.shape[0]):
        simulate(p, S[i], A[i], out[i], D, False, logs[i])


def _check_env(env):
    if not isinstance(env, RollingDie):
        raise ValueError(f"env must be a RollingDie (fastd3pg.physics.make('RollingDie')), "
                         f"got {type(env).__name__}")


def _check_clearance(min_clearance):
    if (isinstance(min_clearance, bool) or not isinstance(min_clearance, (int, float))
            or not math.isfinite(min_clearance) or not min_clearance > FLAT_GAP):
        raise ValueError(f"min_clearance must be a height in metres above the simulator's "
                         f"lying-flat gap of {FLAT_GAP:g} m, got {min_clearance!r}")
    return float(min_clearance)


def _starts(env, starts):
    try:
        S = np.array(starts, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("start states must be an array of numbers") from None
    if S.ndim != 2 or S.shape[1] != env.state_dim or len(S) == 0:
        raise ValueError(f"start states must have shape (B, {env.state_dim}) with B >= 1, "
                         f"got {S.shape}")
    if not np.all(np.isfinite(S)):
        raise ValueError("start states contain NaN or inf")
    return np.ascontiguousarray(S)


def _actions(policy, S):
    if policy is None:
        return np.zeros((len(S), 1))
    A = np.asarray(policy(S), dtype=np.float64)
    if A.shape == (len(S),):
        A = A[:, None]
    if A.shape != (len(S), 1):
        raise ValueError(f"policy must map states (B, 6) to actions (B, 1), got {A.shape} for "
                         f"B = {len(S)}")
    if not np.all(np.isfinite(A)):
        raise ValueError("policy returned NaN or inf")
    return np.ascontiguousarray(A)


def rollout_batch(env, policy, starts):
    """Episodes of ``env.horizon`` steps from each row of ``starts`` (B, 6): the states
    ``(T + 1, B, 6)`` and each step's contact-event log ``(T, B, LOG_SIZE)`` (the format of
    :func:`fastd3pg.physics.rolling_die.simulate`; :func:`episode_events` reads one).
    ``policy(states (B, 6)) -> actions (B, 1)``, e.g. a :class:`fastd3pg.policy.Policy`;
    None: no torque. The states are those of ``env.transition``, step by step."""
    _check_env(env)
    S0 = _starts(env, starts)
    T, B = env.horizon, len(S0)
    states = np.empty((T + 1, B, env.state_dim))
    states[0] = S0
    logs = np.zeros((T, B, LOG_SIZE))
    for k in range(T):
        _step_logged(env.params, states[k], _actions(policy, states[k]), states[k + 1], logs[k])
    if not np.all(np.isfinite(states)):
        raise ValueError("an episode left the simulator's range (non-finite state)")
    return states, logs


def episode_events(logs):
    """The contact events of one episode's logs ``(T, LOG_SIZE)`` as
    :func:`fastd3pg.render.draw_die.rollout` lists them: ``(step, kind, corner, t, x, y, θ)``."""
    return [(k, *e) for k, log in enumerate(logs) for e in read_log(log)]


def clearance(env, states):
    """The height of the die's lowest corner above the ground, for states ``(..., 6)``."""
    th = states[..., 2]
    return states[..., 1] - env.params[HALF_SIZE] * (np.abs(np.cos(th)) + np.abs(np.sin(th)))


def touchdowns(env, states, events, min_clearance=MIN_CLEARANCE):
    """Indices of the bounces among one episode's ``events`` (``(step, kind, ...)`` in time
    order, as :func:`episode_events` gives them; ``states`` ``(T + 1, 6)``): the first event of
    each step with events before which the die cleared the ground by ``min_clearance`` at a
    step boundary since the previous step with events."""
    min_clearance = _check_clearance(min_clearance)
    high = clearance(env, np.asarray(states)) >= min_clearance
    found, flown, previous = [], True, -1
    for i, (step, *_) in enumerate(events):
        if step == previous:
            continue
        flown = flown or bool(high[previous + 1:step + 1].any())
        if flown:
            found.append(i)
        flown, previous = False, step
    return found


def count_bounces(env, states, logs, min_clearance=MIN_CLEARANCE):
    """The bounces of each episode of ``states`` ``(T + 1, B, 6)`` and ``logs``
    ``(T, B, LOG_SIZE)``: the rule of :func:`touchdowns`, over the whole batch at once."""
    min_clearance = _check_clearance(min_clearance)
    high = clearance(env, states) >= min_clearance
    flown = np.ones(states.shape[1], dtype=bool)  # the throw starts in the air
    counts = np.zeros(states.shape[1], dtype=np.int64)
    for k in range(len(logs)):
        flown |= high[k]
        contact = logs[k, :, 0] > 0
        counts += contact & flown
        flown &= ~contact
    return counts


def bounces_batch(env, policy, starts, min_clearance=MIN_CLEARANCE):
    """The bounces (module docstring) of an episode of ``policy`` from each row of
    ``starts``; ``policy`` as for :func:`rollout_batch`."""
    min_clearance = _check_clearance(min_clearance)
    states, logs = rollout_batch(env, policy, starts)
    return count_bounces(env, states, logs, min_clearance)


def bounces(env, policy, start_state, min_clearance=MIN_CLEARANCE):
    """The number of bounces (separate ground contacts, each after a flight clearing the
    ground by ``min_clearance``; module docstring) of one episode of ``policy(state) ->
    action`` from ``start_state`` (6,) on ``env``, a RollingDie; ``policy`` None: no torque."""
    _check_env(env)
    state = np.asarray(start_state, dtype=np.float64)
    if state.shape != (env.state_dim,):
        raise ValueError(f"start_state must have shape ({env.state_dim},), got {state.shape}")
    one = None if policy is None else (lambda S: np.reshape(policy(S[0]), (1, -1)))
    return int(bounces_batch(env, one, state[None], min_clearance)[0])


def throws(env, n=N_THROWS, seed=THROW_SEED):
    """``n`` start states of ``env``'s task: ``reset(seed=seed)``, then ``reset()`` draws of the
    same stream (on a copy of ``env``: its own episode is left alone)."""
    fresh = type(env)(**dict(zip(env.param_names, env.params.tolist())))
    starts = [fresh.reset(seed=seed)[0]]
    starts += [fresh.reset()[0] for _ in range(n - 1)]
    return np.array(starts)


def final_distance(env, states):
    """The distance of the die's centre from the target centre ``c* = (target_x, h)`` at the
    end of each episode of ``states`` ``(T + 1, B, 6)``."""
    end = states[-1]
    return np.hypot(end[:, 0] - env.params[TARGET_X], end[:, 1] - env.params[HALF_SIZE])


def hard_throws(env, starts, fraction=HARD_FRACTION):
    """The hard throws among ``starts``: the indices of the ``round(fraction · B)`` (at least
    one) on which a die under zero torque ends farthest from the target, farthest first, and
    the zero-torque final distances of all throws."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    distance = final_distance(env, rollout_batch(env, None, starts)[0])
    return _farthest(distance, fraction), distance


def _farthest(distance, fraction):
    n = max(1, int(round(fraction * len(distance))))
    return np.argsort(-distance, kind="stable")[:n]


# -- runs on disk ------------------------------------------------------------------------------
def _seed_of(folder: Path):
    name = folder.name
    return int(name[4:]) if name.startswith("seed") and name[4:].isdigit() else None


def _read_config(folder: Path):
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def find_runs(results) -> tuple:
    """``({method: [run folder, ...]}, [unfinished folder, ...])`` under ``results`` (a sweep's
    layout), seeds in increasing order; :class:`Figure3Error` if the folder is missing or
    either method has no finished run."""
    from fastd3pg.sweep import finished

    results = Path(results)
    if not results.is_dir():
        raise Figure3Error(f"no results folder {results}")
    runs, skipped = {}, []
    for method in METHODS:
        folder = results / ENV / method
        seeds = sorted((_seed_of(p), p) for p in folder.glob("seed*")
                       if p.is_dir() and _seed_of(p) is not None) if folder.is_dir() else []
        for _, path in seeds:
            config = _read_config(path)
            steps = config.get("steps") if isinstance(config, dict) else None
            if isinstance(steps, int) and finished(path, steps):
                runs.setdefault(method, []).append(path)
            else:
                skipped.append(path)
    missing = [m for m in METHODS if m not in runs]
    if missing:
        raise Figure3Error(f"{results}: no finished {ENV} runs of {' and '.join(missing)} (needs "
                           f"both {' and '.join(METHODS)} under {ENV}/<algo>/seed<k>/)")
    return runs, skipped


def _load_run(method: str, folder: Path) -> dict:
    from fastd3pg.policy import load_policy
    from fastd3pg.sweep import read_metrics

    folder = Path(folder)
    rows = read_metrics(folder / "metrics.csv")
    if rows is None or not len(rows):
        raise Figure3Error(f"{folder}: no readable metrics.csv")
    try:
        policy = load_policy(folder)
    except (OSError, ValueError) as err:
        raise Figure3Error(f"{folder}: {err}") from None
    if policy.env != ENV or policy.state_dim != 6 or policy.action_dim != 1:
        raise Figure3Error(f"{folder}: policy.npz holds an actor for {policy.env} "
                           f"({policy.state_dim} -> {policy.action_dim}), not {ENV}")
    config = _read_config(folder)
    params = config.get("env_params", {}) if isinstance(config, dict) else {}
    seed = _seed_of(folder)
    return {"method": method, "seed": seed if seed is not None else folder.name,
            "folder": folder, "return_history": float(rows[-1, 4]), "policy": policy,
            "env_params": params if isinstance(params, dict) else {}}


def _env_of(loaded: list) -> RollingDie:
    """The task all ``loaded`` runs were trained on (their ``config.json``'s ``env_params``)."""
    from fastd3pg.physics import make

    first = loaded[0]
    for run in loaded[1:]:
        if run["env_params"] != first["env_params"]:
            raise Figure3Error(f"{run['folder']} was trained with other env_params than "
                               f"{first['folder']}; the throws must be the same task")
    try:
        return make(ENV, **first["env_params"])
    except ValueError as err:
        raise Figure3Error(f"{first['folder']}: env_params: {err}") from None


# -- the figure --------------------------------------------------------------------------------
def evaluate(runs: dict, n_throws=N_THROWS, throw=0, min_clearance=MIN_CLEARANCE) -> dict:
    """Everything the figure and its files show, for ``runs`` ``{method: [run folder, ...]}``
    (both of ``METHODS``): the env, the throws, the hard throws, one row per run (the columns
    of ``CSV_COLUMNS``, with the drawn throw's episode), the best run of each method, and the
    same numbers for a die under zero torque (``zero_torque``), the reference."""
    for method in METHODS:
        if not runs.get(method):
            raise Figure3Error(f"no finished {ENV} runs of {method}")
    loaded = [_load_run(m, f) for m in METHODS for f in runs[m]]
    env = _env_of(loaded)
    min_clearance = _check_clearance(min_clearance)
    if isinstance(n_throws, bool) or not isinstance(n_throws, int) or n_throws < 1:
        raise ValueError(f"n_throws must be an integer >= 1, got {n_throws!r}")
    starts = throws(env, n_throws)
    zero_states, zero_logs = rollout_batch(env, None, starts)
    zero_distance = final_distance(env, zero_states)
    hard = _farthest(zero_distance, HARD_FRACTION)  # hard_throws, from this same rollout
    if isinstance(throw, bool) or not isinstance(throw, int) or not 0 <= throw < len(hard):
        raise ValueError(f"throw must be an index into the {len(hard)} hard throws, "
                         f"0..{len(hard) - 1}, got {throw!r}")
    drawn = int(hard[throw])
    is_hard = np.zeros(n_throws, dtype=bool)
    is_hard[hard] = True

    def scores(states, logs):
        counts = count_bounces(env, states, logs, min_clearance)
        distance = final_distance(env, states)
        return {
            "bounces_gt1_hard": float(np.mean(counts[is_hard] > 1)),
            "bounces_gt1_all": float(np.mean(counts > 1)),
            "mean_bounces_hard": float(np.mean(counts[is_hard])),
            "mean_bounces_all": float(np.mean(counts)),
            "final_distance_hard": float(np.mean(distance[is_hard])),
            "final_distance_all": float(np.mean(distance)),
            "counts_hard": counts[hard],
        }

    rows = []
    for run in loaded:
        states, logs = rollout_batch(env, run["policy"], starts)
        rows.append({"method": run["method"], "seed": run["seed"],
                     "return_history": run["return_history"], **scores(states, logs),
                     "run": run["folder"], "episode": (states[:, drawn], logs[:, drawn])})
    best = {}
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method]
        best[method] = max(mine, key=lambda r: r["return_history"])  # first of equals
    return {"env": env, "starts": starts, "hard": hard, "zero_distance": zero_distance,
            "zero_torque": scores(zero_states, zero_logs), "drawn": drawn, "throw": throw,
            "min_clearance": min_clearance, "rows": rows, "best": best}


def means(data: dict) -> dict:
    """Per method: the number of runs and the mean and std (ddof 0) over them of each number
    of ``CSV_COLUMNS``."""
    out = {}
    for method in METHODS:
        mine = [r for r in data["rows"] if r["method"] == method]
        entry = {"runs": len(mine)}
        for key in CSV_COLUMNS[2:-1]:
            values = np.array([r[key] for r in mine])
            entry[key] = float(values.mean())
            entry[key + "_std"] = float(values.std())
        out[method] = entry
    return out


def _percent(x) -> str:
    return f"{100 * x:.0f}%"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def plot(data: dict, path: Path):
    """Draw ``figure3.png`` (module docstring) from :func:`evaluate`'s ``data``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fastd3pg.render.draw_die import draw_episode

    env, summary = data["env"], means(data)
    fig = plt.figure(figsize=(14, 8.6))
    grid = fig.add_gridspec(2, 2, height_ratios=(1.25, 1.0))
    episodes = {m: data["best"][m]["episode"] for m in METHODS}
    x_all = np.concatenate([states[:, 0] for states, _ in episodes.values()])
    x_low, x_high = x_all.min() - 1.0, max(x_all.max(), env.params[TARGET_X]) + 1.0
    y_high = max(2.0, max(states[:, 1].max() for states, _ in episodes.values()) + 1.0)
    for col, method in enumerate(METHODS):
        ax = fig.add_subplot(grid[0, col])
        states, logs = episodes[method]
        events = episode_events(logs)
        found = touchdowns(env, states, events, data["min_clearance"])
        draw_episode(ax, env, states, events, impacts=False, strobe=STROBE, touchdowns=found,
                     legend=False)
        ax.set_xlim(x_low, x_high)
        ax.set_ylim(-0.2, y_high)
        run = data["best"][method]
        ax.set_title(f"{LABELS[method]}, best run (seed {run['seed']}, return_history "
                     f"{run['return_history']:.3f}): {_plural(len(found), 'bounce')}",
                     fontsize=10)
    ax.legend(loc="upper right", fontsize=7)

    ax = fig.add_subplot(grid[1, 0])
    colours = {"d3pg": "tab:red", "ddpg": "tab:blue"}
    groups = (("bounces_gt1_hard", f"hard throws ({len(data['hard'])})"),
              ("bounces_gt1_all", f"all throws ({len(data['starts'])})"))
    width = 0.36
    for i, method in enumerate(METHODS):
        mine = [r for r in data["rows"] if r["method"] == method]
        for j, (key, _) in enumerate(groups):
            x = j + (i - 0.5) * width
            ax.bar(x, summary[method][key], width * 0.9, color=colours[method], alpha=0.45,
                   label=f"{LABELS[method]} ({_plural(len(mine), 'seed')})" if j == 0 else None)
            dots = [r[key] for r in mine]
            ax.plot(np.full(len(dots), x) + np.linspace(-0.08, 0.08, len(dots)), dots, "o",
                    ms=3, color=colours[method])
            ax.annotate(_percent(summary[method][key]), (x, summary[method][key]),
                        xytext=(0, 3), textcoords="offset points", ha="center", fontsize=8)
    zero = data["zero_torque"]
    for j, (key, _) in enumerate(groups):
        ax.plot([j - width, j + width], [zero[key]] * 2, color="k", lw=1.2, ls="--",
                label="zero torque" if j == 0 else None)
    ax.set_xticks(range(len(groups)), [g[1] for g in groups])
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("share of throws with > 1 bounce")
    ax.set_title("final actors: bar = mean over seeds, dot = one seed", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")

    ax = fig.add_subplot(grid[1, 1])
    top = max(int(r["counts_hard"].max()) for r in data["rows"] + [data["zero_torque"]])
    ks = np.arange(0, top + 1)
    for i, method in enumerate(METHODS):
        mine = [r for r in data["rows"] if r["method"] == method]
        share = np.mean([np.bincount(r["counts_hard"], minlength=top + 1) / len(r["counts_hard"])
                         for r in mine], axis=0)
        ax.bar(ks + (i - 0.5) * width, share, width * 0.9, color=colours[method], alpha=0.7,
               label=f"{LABELS[method]}: {summary[method]['mean_bounces_hard']:.2f} bounces, "
                     f"ends {summary[method]['final_distance_hard']:.2f} m from the target")
    share = np.bincount(zero["counts_hard"], minlength=top + 1) / len(data["hard"])
    ax.step(np.append(ks, top + 1) - 0.5, np.append(share, share[-1]), where="post", color="k",
            lw=1.2, ls="--", label=f"zero torque: {zero['mean_bounces_hard']:.2f} bounces, ends "
                                   f"{zero['final_distance_hard']:.2f} m from the target")
    ax.set_xticks(ks)
    ax.set_xlabel(f"bounces in the episode (contacts after a flight clearing the ground by "
                  f">= {data['min_clearance']:g} m)")
    ax.set_ylabel("share of the hard throws")
    ax.set_title("bounces on the hard throws (mean over seeds)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")

    d, q = summary["d3pg"], summary["ddpg"]
    fig.suptitle(
        f"RollingDie: the best D3PG and DDPG actors from hard throw {data['throw']} (throw "
        f"#{data['drawn']} of {len(data['starts'])})\nMore than one bounce on the hard throws: "
        f"D3PG {_percent(d['bounces_gt1_hard'])}, DDPG {_percent(q['bounces_gt1_hard'])}, zero "
        f"torque {_percent(zero['bounces_gt1_hard'])}; on all throws: D3PG "
        f"{_percent(d['bounces_gt1_all'])}, DDPG {_percent(q['bounces_gt1_all'])}, zero torque "
        f"{_percent(zero['bounces_gt1_all'])} (mean over seeds: D3PG {d['runs']}, DDPG "
        f"{q['runs']})", fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    _write(path, buf.getvalue())


def _write(path: Path, data: bytes):
    from fastd3pg.sweep import write_atomic

    write_atomic(path, data)


def _where(path: Path, out: Path) -> str:
    """``path`` relative to ``out`` (absolute when that needs a ``..``)."""
    path, out = Path(path).resolve(), Path(out).resolve()
    try:
        return path.relative_to(out).as_posix()
    except ValueError:
        return str(path)


def csv_text(data: dict, out: Path) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in data["rows"]:
        writer.writerow([r["method"], r["seed"]] + [repr(r[k]) for k in CSV_COLUMNS[2:-1]]
                        + [_where(r["run"], out)])
    return buf.getvalue()


def record(data: dict, out: Path) -> dict:
    """What ``figure3.json`` holds."""
    env = data["env"]
    return {
        "package": "fastd3pg", "version": fastd3pg.__version__, "env": ENV,
        "env_params": dict(zip(env.param_names, env.params.tolist())),
        "throws": len(data["starts"]), "throw_seed": THROW_SEED,
        "hard_rule": f"the {HARD_FRACTION:g} of the throws on which a zero-torque die ends "
                     "farthest from the target centre",
        "hard_throws": [int(i) for i in data["hard"]],
        "min_clearance_m": data["min_clearance"],
        "drawn": {"hard_throw": data["throw"], "throw": data["drawn"],
                  "start_state": data["starts"][data["drawn"]].tolist(),
                  "zero_torque_final_distance": float(data["zero_distance"][data["drawn"]])},
        "best": {m: {"seed": r["seed"], "return_history": r["return_history"],
                     "run": _where(r["run"], out)} for m, r in data["best"].items()},
        "means": means(data),
        "zero_torque": {k: v for k, v in data["zero_torque"].items() if k != "counts_hard"},
    }


def make_figure3(runs: dict, out, n_throws=N_THROWS, throw=0, min_clearance=MIN_CLEARANCE) -> dict:
    """Write ``figure3.png``, ``figure3.csv`` and ``figure3.json`` to ``out`` for ``runs``
    ``{"d3pg": [run folder, ...], "ddpg": [...]}``; returns :func:`evaluate`'s data.
    :class:`Figure3Error` (or ``ValueError`` for bad arguments) when it cannot."""
    out = Path(out)
    data = evaluate(runs, n_throws, throw, min_clearance)
    plot(data, out / "figure3.png")
    _write(out / "figure3.csv", csv_text(data, out).encode("utf-8"))
    _write(out / "figure3.json", (json.dumps(record(data, out), indent=2) + "\n").encode("utf-8"))
    return data


def summary_text(data: dict) -> str:
    """The means of :func:`means` as a small table, one line per method."""
    lines = [f"{'method':<6} {'seeds':>5} {'>1 bounce, hard':>16} {'>1 bounce, all':>15} "
             f"{'bounces, hard':>14}  best run (return_history)"]
    for method, m in means(data).items():
        best = data["best"][method]
        lines.append(f"{method:<6} {m['runs']:>5} {_percent(m['bounces_gt1_hard']):>16} "
                     f"{_percent(m['bounces_gt1_all']):>15} {m['mean_bounces_hard']:>14.2f}  "
                     f"seed {best['seed']} ({best['return_history']:.3f})")
    return "\n".join(lines)


# -- command line ------------------------------------------------------------------------------
def _metres(text):
    import argparse

    try:
        return _check_clearance(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a height in metres above {FLAT_GAP:g}: "
                                         f"{text!r}") from None


def main(argv=None) -> int:
    parser = Parser(prog="python -m fastd3pg.figure3",
                    description="The paper's Figure 3 on RollingDie: the best D3PG and DDPG "
                                "actors on a hard throw, and how often the final actors bounce "
                                "more than once.")
    parser.add_argument("results", metavar="RESULTS_DIR",
                        help="a sweep's results folder (holding RollingDie/<algo>/seed<k>/)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="where to write figure3.png, .csv, .json (default: RESULTS_DIR)")
    parser.add_argument("--throws", type=count(1), default=N_THROWS, metavar="N",
                        help=f"start states sampled (default: {N_THROWS})")
    parser.add_argument("--throw", type=count(0), default=0, metavar="K",
                        help="which hard throw to draw, 0 = the hardest (default: 0)")
    parser.add_argument("--min-clearance", type=_metres, default=MIN_CLEARANCE,
                        metavar="METRES", help="how high the die's lowest corner must fly "
                        f"between two contacts for the second to be a bounce (default: "
                        f"{MIN_CLEARANCE})")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out is not None else Path(args.results)
    try:
        runs, skipped = find_runs(args.results)
        data = make_figure3(runs, out, args.throws, args.throw, args.min_clearance)
    except (Figure3Error, ValueError, OSError) as err:
        print(f"{parser.prog}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    print(summary_text(data))
    if skipped:
        print(f"skipped {len(skipped)} unfinished run(s): "
              + ", ".join(os.path.relpath(p, args.results) for p in skipped))
    print(f"files: {out / 'figure3.png'}, {out / 'figure3.csv'}, {out / 'figure3.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
