"""The paper's Figure 2 on MassPoint: critic surfaces against the truth, learning, fidelity.

    python -m fastd3pg.figure2 [--out DIR] [--seeds N] [--steps N] [--stages EARLY,MID]
            [--config FILE.toml] [--report]

PAPER.md §3: on the 1-D MassPoint task (``s' = s + a Δt``, start ``-0.5``, goal ``|s| < 0.01``),
D3PG is trained with the four weightings ``(w1, w2) ∈ {(0,0), (0,1), (1,0), (1,1)}`` of its
gradient terms (``(0,0)`` is DDPG: ``algo = ddpg``), for seeds ``0..N-1``; the same seed gives
every setting the same initial networks and the same first episode. Every run is
``fastd3pg.train.run(..., diagnose=True)``, trained in segments with ``resume=True`` (which
reproduces an uninterrupted run exactly), and at the end of each segment, a *stage*, the critic
``Q_φ`` and the actor ``π`` of that moment are read from the run's checkpoint:

* the learned surface ``Q_φ(s, a)`` and its input gradients on a grid of ``(s, a)`` in raw
  coordinates (:func:`fastd3pg.diagnose.critic_value_and_grads`: through the observation
  normalization and PopArt);
* the ground truth ``Q^π(s, a)`` of that same actor by forward simulation, with its exact
  gradients (:func:`fastd3pg.diagnostics.q_surface`, discount ``γ`` of the run), and the
  actor's curve ``a = π(s)``.

Stages. ``early`` = 800 timesteps, the first evaluation (8 cycles of 100 steps, 400 updates):
the actors of the four settings differ most there (``return_mean`` on seeds 0-3: DDPG from
-1.58 to 0.86, ``w1 = 1, w2 = 0`` from 0.67 to 0.88). ``mid`` = 4000 timesteps: by then every
setting's ``return_mean`` is at or near its plateau on every seed (0.86-0.913; the optimum, full
speed to the goal, scores 0.913), while the critics are still far from the truth (surface RMS
error 3-6, against 0.7-1.4 at the end without the state-gradient term). ``converged`` is the
end of the run, 20,000 timesteps by default (five times ``mid``, the budget of
``runs/experiments/table1_quick.toml``).
The paper's epochs 1, 10 and 75 are the same idea on a finer clock (its whole curve spans
~6000 timesteps); this library evaluates every 800 timesteps, so stages are multiples of 800
and a segmented run evaluates exactly when an uninterrupted run does.

Files (``--out``, default ``runs/results/figure2`` in the current folder)::

    figure2.json                    the settings of this figure, package version, compile target
    figure2.png                     per setting (rows) and stage (columns): learned Q | true Q^π
    figure2_curves.png              return_mean, return_history and the fidelity columns of
                                    diagnostics.csv against timesteps, mean ± std over seeds
    summary.md, summary.csv         the numbers behind them, mean ± std over seeds
    <setting>/seed<k>/              config.json, metrics.csv, diagnostics.csv (those of train),
                                    stages.csv (per stage: timesteps, return_mean, the RMS error of
                                    the learned surface and its gradients against the truth)
    <setting>/seed0/surface_<stage>.npz   the grid, both surfaces with their gradients, the
                                    actor's curve, and the actor and critic themselves

``<setting>`` is ``w1-0_w2-0``, ``w1-0_w2-1``, ``w1-1_w2-0`` or ``w1-1_w2-1``. Checkpoints
live in the run folders only while a run is unfinished (and are deleted with its
``policy.npz`` and ``curve.png`` when it ends), so a stopped or killed command continues where
it was when started again, finished runs are skipped, and the results hold no checkpoint.
``--report`` redraws both figures and the summary from these files alone, without training.
``--config FILE.toml`` passes settings to every run (``train``'s config files; the weights
``w1``, ``w2`` always come from the setting).
"""

import csv
import io
import json
import math
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

import fastd3pg
from fastd3pg._cli import Parser, count
from fastd3pg.control.configio import ConfigError, load_toml

ENV = "MassPoint"
DEFAULT_OUT = Path("runs") / "results" / "figure2"
DEFAULT_SEEDS = 4
DEFAULT_STEPS = 20000
DEFAULT_STAGES = (800, 4000)  #: timesteps of the early and mid stages (the end is the third)
STAGES = ("early", "mid", "converged")
# The grid of the surfaces: the states from the goal zone's edge to twice the start's distance
# (the first episodes' exploration reaches further left still), and every action.
S_GRID = (-1.0, -0.01, 51)
A_GRID = (-1.0, 1.0, 41)
_ROWS_PER_CALL = 64  # rows per true_q rollout (BLAS threads slow larger batches, see diagnose)
STAGE_HEADER = ["stage", "timesteps", "return_mean", "q_rmse", "dq_ds_rmse", "dq_da_rmse"]
# diagnostics.csv columns drawn and summarized: (column, label, kind of axis). A cosine of
# one-element gradients is their agreement of signs (its mean: 2p - 1 for p right).
FIDELITY = (
    ("critic_q_abserr_median_actor", "median |Q - Q^π| at (s, π(s))", "log"),
    ("critic_q_abserr_rel_actor", "that / std(Q^π)", "log"),
    ("critic_ds_cos_actor", "cos(∇_s Q, ∇_s Q^π) (1-D: sign)", "cos"),
    ("critic_da_cos_actor", "cos(∇_a Q, ∇_a Q^π) (1-D: sign)", "cos"),
    ("critic_ds_relerr_actor", "‖∇_s Q - ∇_s Q^π‖ / ‖∇_s Q^π‖", "log"),
    ("critic_da_relerr_actor", "‖∇_a Q - ∇_a Q^π‖ / ‖∇_a Q^π‖", "log"),
)


class Setting(NamedTuple):
    """One weighting of the gradient terms (PAPER.md §2's ``w1``, ``w2``)."""

    w1: float
    w2: float

    @property
    def algo(self) -> str:
        return "ddpg" if self.w1 == 0 and self.w2 == 0 else "d3pg"

    @property
    def name(self) -> str:
        return f"w1-{self.w1:g}_w2-{self.w2:g}"

    @property
    def label(self) -> str:
        return f"w1 = {self.w1:g}, w2 = {self.w2:g}" + (" (DDPG)" if self.algo == "ddpg" else "")


SETTINGS = (Setting(0.0, 0.0), Setting(0.0, 1.0), Setting(1.0, 0.0), Setting(1.0, 1.0))


class Figure2Error(RuntimeError):
    """A figure that cannot be made or redrawn; the message says why, in one line."""


# -- files ----------------------------------------------------------------------------------------
def _write_bytes(path: Path, data: bytes):
    from fastd3pg.sweep import write_atomic

    write_atomic(path, data)


def _write_npz(path: Path, arrays: dict):
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    _write_bytes(path, buf.getvalue())


def _write_csv(path: Path, header, rows):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    _write_bytes(path, buf.getvalue().encode("utf-8"))


def _read_rows(path: Path, header) -> list:
    """The rows (lists of strings) of a CSV file with ``header``; :class:`Figure2Error` if it
    cannot be read or has another header."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            lines = list(csv.reader(f))
    except OSError as err:
        raise Figure2Error(f"cannot read {path}: {err.strerror or err}") from None
    if not lines or lines[0] != list(header):
        raise Figure2Error(f"{path} is not the expected table (its header differs)")
    return lines[1:]


def grid():
    """The states and actions of the surfaces' grid."""
    return np.linspace(*S_GRID), np.linspace(*A_GRID)


def record(steps: int, stages: tuple, seeds: int, config) -> dict:
    """What ``figure2.json`` holds for this invocation."""
    from fastd3pg._jit import compile_target

    text = None if config is None else Path(config).read_text(encoding="utf-8")
    return {
        "figure": "the paper's Figure 2: critic surfaces on MassPoint (fastd3pg.figure2)",
        "package": "fastd3pg",
        "version": fastd3pg.__version__,
        "env": ENV,
        "steps": steps,
        "stages": dict(zip(STAGES, (*stages, steps))),
        "seeds": seeds,
        "settings": [{"name": s.name, "algo": s.algo, "w1": s.w1, "w2": s.w2} for s in SETTINGS],
        "grid": {"s": list(S_GRID), "a": list(A_GRID)},
        "config_file": None if config is None else str(config),
        "config_toml": text,
        "compile_target": compile_target(),
    }


_SAME_FIGURE = ("env", "steps", "stages", "settings", "grid", "config_toml")


def read_record(out: Path) -> dict:
    path = out / "figure2.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise Figure2Error(f"no figure in {out} (no figure2.json); make it first: "
                           f"python -m fastd3pg.figure2 --out {out}") from None
    except (OSError, ValueError) as err:
        raise Figure2Error(f"cannot read {path}: {err}") from None
    missing = [k for k in _SAME_FIGURE + ("seeds",) if k not in data]
    if missing:
        raise Figure2Error(f"{path} is not a figure2 record (it lacks {', '.join(missing)})")
    return data


def _check_same_figure(out: Path, new: dict):
    """Refuse to add runs to a folder that holds a figure made with other settings."""
    if not (out / "figure2.json").exists():
        return
    old = read_record(out)
    changed = [k for k in _SAME_FIGURE if old[k] != new[k]]
    if changed:
        shown = "; ".join(f"{k}: {json.dumps(old[k])} there, {json.dumps(new[k])} now"
                          for k in changed if k != "config_toml")
        if "config_toml" in changed:
            shown = "; ".join(filter(None, [shown, "another --config file's text"]))
        raise Figure2Error(f"{out} holds a figure made with other settings ({shown}); use "
                           "another --out, or delete it to start again")


# -- one stage of one run -------------------------------------------------------------------------
def restore_agent(run_dir: Path, setting: Setting, seed: int, timesteps: int, config=None):
    """The agent of the run in ``run_dir`` as its checkpoint holds it, which must be at
    ``timesteps``."""
    from fastd3pg.physics import make
    from fastd3pg.train import agent_class, resolve_config

    path = run_dir / "checkpoint.npz"
    cfg, _ = resolve_config(ENV, setting.algo, config, {"w1": setting.w1, "w2": setting.w2})
    agent = agent_class(setting.algo)(make(ENV), cfg, seed, total_steps=timesteps)
    with np.load(path, allow_pickle=False) as data:
        saved = int(data["timesteps"])
        if saved != timesteps:
            raise Figure2Error(f"{path} is at timestep {saved}, not {timesteps}")
        agent.load_state_arrays({k[len("agent."):]: data[k] for k in data.files
                                 if k.startswith("agent.")})
    return agent


def surfaces(agent) -> dict:
    """The learned and the true surfaces of ``agent`` now, on :func:`grid` (module docstring),
    with what is needed to evaluate them again: the actor's ``policy.npz`` arrays
    (``policy.*``) and the critic's network, parameters and normalization (``critic.*``)."""
    from fastd3pg.diagnose import critic_value_and_grads
    from fastd3pg.diagnostics import q_surface
    from fastd3pg.policy import Policy

    s, a = grid()
    S, A = np.meshgrid(s, a, indexing="ij")
    snap = agent.critic_snapshot()
    q, dq_ds, dq_da = critic_value_and_grads(snap, S.reshape(-1, 1), A.reshape(-1, 1))
    policy_arrays = agent.policy_arrays()
    policy = Policy(policy_arrays)
    per_call = max(1, _ROWS_PER_CALL // len(a))
    parts = [q_surface(agent.env, policy, s[i:i + per_call], a, gamma=snap["gamma"])
             for i in range(0, len(s), per_call)]
    true_q, true_dq_ds, true_dq_da, pi = (np.concatenate(k) for k in zip(*parts))
    out = {"s": s, "a": a, "timesteps": np.int64(agent.timesteps),
           "critic_q": q.reshape(S.shape), "critic_dq_ds": dq_ds[:, 0].reshape(S.shape),
           "critic_dq_da": dq_da[:, 0].reshape(S.shape), "true_q": true_q,
           "true_dq_ds": true_dq_ds, "true_dq_da": true_dq_da, "pi": pi,
           "gamma": np.float64(snap["gamma"])}
    out.update({f"policy.{k}": v for k, v in policy_arrays.items()})
    out.update({f"critic.{k}": v for k, v in snap["critic"].spec_arrays().items()})
    out.update({"critic.params": snap["phi"], "critic.obs_mean": snap["obs_mean"],
                "critic.obs_std": snap["obs_std"]})
    out.update({f"critic.{k}": np.float64(snap[k]) for k in ("obs_clip", "mu_q", "sigma_q")})
    return out


def surface_errors(surf: dict) -> list:
    """RMS errors over the grid of the learned surface and its gradients against the truth."""
    return [float(np.sqrt(np.mean((surf[f"critic_{k}"] - surf[f"true_{k}"]) ** 2)))
            for k in ("q", "dq_ds", "dq_da")]


# -- training -------------------------------------------------------------------------------------
def _stage_rows(run_dir: Path) -> dict:
    path = run_dir / "stages.csv"
    if not path.exists():
        return {}
    return {row[0]: row for row in _read_rows(path, STAGE_HEADER)}


def _recorded(run_dir: Path, seed: int) -> tuple:
    """The rows of ``stages.csv`` by stage, and for each stage whether it is recorded (seed 0
    also needs its surfaces file)."""
    rows = _stage_rows(run_dir)
    return rows, [k in rows and (seed != 0 or (run_dir / f"surface_{k}.npz").exists())
                  for k in STAGES]


def _finished(run_dir: Path, seed: int) -> bool:
    return all(_recorded(run_dir, seed)[1])


def _clean(run_dir: Path):
    """A finished run keeps its tables only: no checkpoint, no final actor, no curve."""
    for name in ("checkpoint.npz", "policy.npz", "curve.png"):
        (run_dir / name).unlink(missing_ok=True)


def _checkpoint_timesteps(path: Path):
    try:
        with np.load(path, allow_pickle=False) as data:
            return int(data["timesteps"])
    except (OSError, ValueError, KeyError):
        return None


def train_run(out: Path, setting: Setting, seed: int, stage_steps: dict, config, say):
    """Train one (setting, seed) run through its stages, recording each, from the first stage
    not recorded yet (a later one is then recorded again: its run continues from here)."""
    from fastd3pg.train import run

    run_dir = out / setting.name / f"seed{seed}"
    rows, done = _recorded(run_dir, seed)
    first = done.index(False) if False in done else len(STAGES)
    for stage in STAGES[first:]:
        steps = stage_steps[stage]
        t0 = time.perf_counter()
        saved = _checkpoint_timesteps(run_dir / "checkpoint.npz")
        resume = saved is not None and saved <= steps
        metrics = run(env=ENV, algo=setting.algo, seed=seed, steps=steps, out=run_dir,
                      config=config, resume=resume, overwrite=not resume, diagnose=True,
                      w1=setting.w1, w2=setting.w2)
        agent = restore_agent(run_dir, setting, seed, steps, config)
        surf = surfaces(agent)
        if seed == 0:
            _write_npz(run_dir / f"surface_{stage}.npz", surf)
        errors = surface_errors(surf)
        rows[stage] = [stage, steps, repr(float(metrics["return_mean"][-1]))] + [
            repr(e) for e in errors]
        _write_csv(run_dir / "stages.csv", STAGE_HEADER, [rows[k] for k in STAGES if k in rows])
        say(f"{stage:<9s} {steps:6d} steps  return_mean {metrics['return_mean'][-1]:6.3f}  "
            f"surface rmse: Q {errors[0]:6.3f}  dQ/ds {errors[1]:7.3f}  dQ/da {errors[2]:6.3f}  "
            f"[{time.perf_counter() - t0:5.1f} s]")
    _clean(run_dir)


def check_stages(stages, steps: int) -> tuple:
    """``(early, mid)`` timesteps, validated against the run's ``steps``: ``ValueError``
    unless they are multiples of the evaluation period with ``0 < early < mid < steps``."""
    from fastd3pg.control.metrics import EVAL_EVERY

    stages = tuple(stages)
    if (len(stages) != 2 or not all(isinstance(t, int) for t in stages)
            or any(t % EVAL_EVERY for t in stages) or not 0 < stages[0] < stages[1] < steps):
        raise ValueError(f"stages EARLY,MID must be multiples of {EVAL_EVERY} with 0 < EARLY < "
                         f"MID < steps ({steps}), got {','.join(map(str, stages))}")
    return stages


def make_figure(out, seeds=DEFAULT_SEEDS, steps=DEFAULT_STEPS, stages=DEFAULT_STAGES,
                config=None, stream=sys.stdout) -> str:
    """Train every setting and seed not finished yet into ``out``, then draw the report;
    returns the Markdown summary."""
    from fastd3pg.control import agent_class
    from fastd3pg.train import cold_cache, resolve_config

    out = Path(out)
    stages = check_stages(stages, steps)
    for setting in SETTINGS:  # a bad config file fails here, before any training
        resolve_config(ENV, setting.algo, config, {"w1": setting.w1, "w2": setting.w2})
    new = record(steps, stages, seeds, config)
    out.mkdir(parents=True, exist_ok=True)
    _check_same_figure(out, new)
    _write_bytes(out / "figure2.json", (json.dumps(new, indent=2) + "\n").encode("utf-8"))
    stage_steps = dict(zip(STAGES, (*stages, steps)))
    jobs = [(setting, seed) for setting in SETTINGS for seed in range(seeds)]
    print(f"fastd3pg {fastd3pg.__version__} figure2: {ENV}, {len(SETTINGS)} settings x {seeds} "
          f"seeds, stages " + ", ".join(f"{k} {v}" for k, v in stage_steps.items())
          + f" timesteps -> {out}", file=stream, flush=True)
    if cold_cache(agent_class("d3pg")):
        print("(the first run compiles the kernels first: a few minutes, once)", file=stream,
              flush=True)
    t0 = time.perf_counter()
    for k, (setting, seed) in enumerate(jobs, 1):
        head = f"[{k:2d}/{len(jobs)}] {setting.label:<24s} seed {seed}"
        run_dir = out / setting.name / f"seed{seed}"
        if _finished(run_dir, seed):
            _clean(run_dir)
            print(f"{head}  finished already", file=stream, flush=True)
            continue
        train_run(out, setting, seed, stage_steps, config,
                  lambda text: print(f"{head}  {text}", file=stream, flush=True))
    print(f"trained in {time.perf_counter() - t0:.0f} s", file=stream, flush=True)
    return report(out, stream)


# -- the report -----------------------------------------------------------------------------------
def _numbers(path: Path, header, skip=0) -> np.ndarray:
    """The table in ``path`` as floats, without its first ``skip`` columns."""
    rows = _read_rows(path, header)
    try:
        table = np.array([[float(x) for x in row[skip:]] for row in rows], dtype=np.float64)
    except ValueError:
        raise Figure2Error(f"{path} is damaged (a value that is not a number)") from None
    return table.reshape(len(rows), len(header) - skip)


def collect(out: Path) -> dict:
    """Everything the figures draw, from the files in ``out`` alone."""
    from fastd3pg.diagnose import HEADER
    from fastd3pg.train import METRICS_HEADER

    rec = read_record(out)
    steps, seeds = rec["steps"], rec["seeds"]
    data = {"record": rec, "runs": {}}
    for setting in SETTINGS:
        runs = []
        for seed in range(seeds):
            run_dir = out / setting.name / f"seed{seed}"
            if not _finished(run_dir, seed):
                raise Figure2Error(f"{run_dir} is not finished; run python -m fastd3pg.figure2 "
                                   f"--out {out} (without --report) to finish it")
            metrics = _numbers(run_dir / "metrics.csv", METRICS_HEADER)
            diag = _numbers(run_dir / "diagnostics.csv", HEADER)
            stages = _numbers(run_dir / "stages.csv", STAGE_HEADER, skip=1)
            if len(metrics) == 0 or metrics[-1, 0] != steps or len(diag) != len(metrics):
                raise Figure2Error(f"{run_dir}: metrics.csv and diagnostics.csv do not reach the "
                                   f"figure's {steps} timesteps")
            runs.append({"metrics": metrics, "diagnostics": diag, "stages": stages})
        surf = {}
        for stage in STAGES:
            path = out / setting.name / "seed0" / f"surface_{stage}.npz"
            try:
                with np.load(path, allow_pickle=False) as f:
                    surf[stage] = {k: f[k] for k in f.files}
            except (OSError, ValueError) as err:
                raise Figure2Error(f"cannot read {path}: {err}") from None
        data["runs"][setting] = {"seeds": runs, "surfaces": surf}
    return data


def summary_rows(data: dict) -> list:
    """``(metric, description, {setting: per-seed values})`` for the summary tables."""
    from fastd3pg.diagnose import HEADER
    from fastd3pg.train import METRICS_HEADER

    rec = data["record"]
    first = next(iter(data["runs"].values()))["seeds"][0]["diagnostics"][:, 0]
    window = int(np.sum(first <= rec["stages"]["mid"]))  # evaluations up to the mid stage
    rows = []

    def add(metric, text, fn):
        rows.append((metric, text, {s: np.array([fn(r) for r in d["seeds"]])
                                    for s, d in data["runs"].items()}))

    for col in ("return_mean", "return_history"):
        k = METRICS_HEADER.index(col)
        add(f"final_{col}", f"{col} at the end", lambda r, k=k: r["metrics"][-1, k])
    for col, label, _ in FIDELITY:
        k = HEADER.index(col)
        add(f"{col}_first", f"{label}, mean of the first {window} evaluations",
            lambda r, k=k: np.nanmean(r["diagnostics"][:window, k]))
        add(f"{col}_last", f"{label}, mean of the last {window} evaluations",
            lambda r, k=k: np.nanmean(r["diagnostics"][-window:, k]))
    for j, stage in enumerate(STAGES):
        for k, what in enumerate(("q", "dq_ds", "dq_da"), start=2):
            add(f"{what}_rmse_{stage}", f"surface RMS error of {what.replace('q', 'Q', 1)} "
                f"({stage}, {rec['stages'][stage]} steps)", lambda r, j=j, k=k: r["stages"][j, k])
    return rows


def _summary_text(data: dict, rows: list) -> tuple:
    settings = list(data["runs"])
    n = data["record"]["seeds"]
    md = [f"# Figure 2 on {ENV}: mean ± std over {n} seeds\n",
          "| metric | " + " | ".join(s.label for s in settings) + " |",
          "|---" * (len(settings) + 1) + "|"]
    buf = io.StringIO()
    table = csv.writer(buf, lineterminator="\n")
    table.writerow(["metric", "description"] + [f"{s.name}_{x}" for s in settings
                                                for x in ("mean", "std")])
    for metric, text, values in rows:
        stats = [(float(np.mean(values[s])), float(np.std(values[s]))) for s in settings]
        cell = text.replace("|", "\\|")  # a bar inside a Markdown table's cell
        md.append(f"| {cell} | " + " | ".join(f"{m:.3f} ± {d:.3f}" for m, d in stats) + " |")
        table.writerow([metric, text] + [repr(x) for pair in stats for x in pair])
    return "\n".join(md) + "\n", buf.getvalue()


def _save_figure(fig, path: Path):
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    _write_bytes(path, buf.getvalue())


def plot_surfaces(data: dict, path: Path):
    """``figure2.png``: one row per setting; per stage the learned ``Q_φ`` beside the truth
    ``Q^π`` of the same moment's actor, with the actor's curve ``a = π(s)``. The panels of a
    stage share one colour scale and one set of contour levels (so that a pair reads at a
    glance: where the critic is right, its contours continue the truth's)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    rec = data["record"]
    runs = data["runs"]
    fig, axes = plt.subplots(len(runs), 2 * len(STAGES), figsize=(17, 2.6 * len(runs) + 1.6),
                             sharex=True, sharey=True, squeeze=False, layout="constrained")
    for col, stage in enumerate(STAGES):
        values = np.concatenate([np.ravel(d["surfaces"][stage][k]) for d in runs.values()
                                 for k in ("critic_q", "true_q")])
        norm = Normalize(float(values.min()), float(values.max()))
        step = _nice((norm.vmax - norm.vmin) / 10)
        levels = np.arange(math.floor(norm.vmin / step), math.ceil(norm.vmax / step) + 1) * step
        for row, (setting, d) in enumerate(runs.items()):
            st = d["surfaces"][stage]
            for half, key in enumerate(("critic_q", "true_q")):
                ax = axes[row, 2 * col + half]
                mesh = ax.pcolormesh(st["s"], st["a"], st[key].T, norm=norm, cmap="viridis",
                                     shading="nearest", rasterized=True)
                ax.contour(st["s"], st["a"], st[key].T, levels=levels, colors="white",
                           linewidths=0.6, linestyles="solid", alpha=0.7)
                ax.plot(st["s"], st["pi"], color="black", lw=2.0)
                if row == 0:
                    ax.set_title(f"{stage}, {int(st['timesteps'])} steps: "
                                 + ("learned Q" if half == 0 else "true Q^π"), fontsize=9)
                if half == 0:
                    ax.text(0.03, 0.04, f"rmse {surface_errors(st)[0]:.2f}",
                            transform=ax.transAxes, fontsize=8, color="white")
                if row == len(runs) - 1:
                    ax.set_xlabel("state s")
            axes[row, 0].set_ylabel(f"{setting.label}\naction a", fontsize=9)
        fig.colorbar(mesh, ax=axes[:, 2 * col:2 * col + 2], orientation="horizontal",
                     fraction=0.04, aspect=40, label=f"Q ({stage}; contours every {step:g})")
    gamma = float(next(iter(runs.values()))["surfaces"]["early"]["gamma"])
    fig.suptitle(f"{ENV}, seed 0: the critic Q(s, a) (left of each pair) against the true Q^π "
                 f"of the same moment's actor (right; forward simulation, γ = {gamma:g}); "
                 f"black: the actor's a = π(s); rmse: over the grid (fastd3pg {rec['version']})",
                 fontsize=10)
    _save_figure(fig, path)


def _nice(x: float) -> float:
    """The 1, 2 or 5 times a power of ten nearest above ``x``."""
    if not x > 0:
        return 1.0
    p = 10.0 ** math.floor(math.log10(x))
    return next(m * p for m in (1, 2, 5, 10) if m * p >= x)


def plot_curves(data: dict, path: Path):
    """``figure2_curves.png``: return_mean, return_history and the critic's fidelity columns of
    ``diagnostics.csv`` against timesteps, mean ± std over seeds, one line per setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fastd3pg.diagnose import HEADER

    panels = [("metrics", 3, "return_mean (normalized)", "return"),
              ("metrics", 4, "return_history (normalized)", "return")]
    panels += [("diagnostics", HEADER.index(col), label, axis) for col, label, axis in FIDELITY]
    cols = 4
    fig, axes = plt.subplots(2, cols, figsize=(4.2 * cols, 7.2), sharex=True, squeeze=False)
    for ax, (kind, k, label, axis) in zip(axes.flat, panels):
        for setting, d in data["runs"].items():
            tables = [r[kind] for r in d["seeds"]]
            t = tables[0][:, 0]
            values = np.array([tab[:, k] for tab in tables])
            with np.errstate(invalid="ignore"):
                mu = np.nanmean(values, axis=0)
                sd = np.nanstd(values, axis=0)
            line, = ax.plot(t, mu, lw=1.4, label=setting.label)
            low, high = mu - sd, mu + sd
            if axis == "log":  # a band below zero has no place on a log axis
                low = np.maximum(low, mu / 10)
            elif axis == "cos":
                low, high = np.maximum(low, -1.0), np.minimum(high, 1.0)
            else:  # a normalized return never exceeds 1 (max_reward x horizon)
                high = np.minimum(high, 1.0)
            ax.fill_between(t, low, high, color=line.get_color(), alpha=0.15, lw=0)
        ax.set_title(label, fontsize=9)
        if axis == "log":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("timesteps")
    axes[0, 0].legend(fontsize=8, loc="lower right")
    rec = data["record"]
    fig.suptitle(f"{ENV}: returns and the critic's fidelity against the simulator's truth "
                 f"(diagnostics.csv: 32 replay states per evaluation, at the actor's action); "
                 f"mean ± std over {rec['seeds']} seeds", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    _save_figure(fig, path)


def report(out, stream=sys.stdout) -> str:
    """Redraw ``figure2.png``, ``figure2_curves.png`` and the summary from the files in
    ``out``; returns the Markdown summary."""
    out = Path(out)
    data = collect(out)
    rows = summary_rows(data)
    md, table = _summary_text(data, rows)
    plot_surfaces(data, out / "figure2.png")
    plot_curves(data, out / "figure2_curves.png")
    _write_bytes(out / "summary.md", md.encode("utf-8"))
    _write_bytes(out / "summary.csv", table.encode("utf-8"))
    print(md, file=stream)
    print(f"figures: {out / 'figure2.png'}, {out / 'figure2_curves.png'}\nsummary: "
          f"{out / 'summary.md'}, {out / 'summary.csv'}", file=stream, flush=True)
    return md


# -- command line ---------------------------------------------------------------------------------
def _stages(text):
    import argparse

    parts = text.split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not two integers EARLY,MID: {text!r}") from None
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"need two timesteps EARLY,MID, got {text!r}")
    return values


def main(argv=None) -> int:
    import argparse

    from fastd3pg.control.metrics import EVAL_EVERY
    from fastd3pg.train import TrainingError

    parser = Parser(prog="python -m fastd3pg.figure2",
                    description="The paper's Figure 2 on MassPoint: train the four (w1, w2) "
                                "settings, draw critic surfaces against the truth, learning "
                                "and gradient-fidelity curves.")
    parser.add_argument("--out", default=str(DEFAULT_OUT), metavar="DIR",
                        help=f"results folder (default: {DEFAULT_OUT}, in the current folder)")
    parser.add_argument("--seeds", type=count(1), default=argparse.SUPPRESS, metavar="N",
                        help=f"seeds 0..N-1 per setting (default: {DEFAULT_SEEDS})")
    parser.add_argument("--steps", type=count(1), default=argparse.SUPPRESS, metavar="N",
                        help=f"timesteps per run, the converged stage (default: {DEFAULT_STEPS})")
    parser.add_argument("--stages", type=_stages, default=argparse.SUPPRESS, metavar="EARLY,MID",
                        help="timesteps of the early and mid stages, multiples of "
                             f"{EVAL_EVERY} (default: {','.join(map(str, DEFAULT_STAGES))})")
    parser.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE.toml",
                        help="settings for every run (train's config file; default: none)")
    parser.add_argument("--report", action="store_true",
                        help="only redraw the figures and the summary from the files in --out")
    args = parser.parse_args(argv)
    given = [f"--{k}" for k in ("seeds", "steps", "stages", "config") if hasattr(args, k)]
    if args.report and given:
        parser.error(f"--report redraws from the files in --out; {', '.join(given)} apply to "
                     "training only")
    out = Path(args.out)
    try:
        if args.report:
            report(out)
            return 0
        seeds = getattr(args, "seeds", DEFAULT_SEEDS)
        steps = getattr(args, "steps", DEFAULT_STEPS)
        try:
            stages = check_stages(getattr(args, "stages", DEFAULT_STAGES), steps)
        except ValueError as err:
            parser.error(f"--{err}")
        config = getattr(args, "config", None)
        if config is not None:
            load_toml(config)  # a missing or malformed file: one line, before anything else
        make_figure(out, seeds, steps, stages, config)
    except KeyboardInterrupt:
        print(f"\n{parser.prog}: interrupted; run the same command again to continue",
              file=sys.stderr)
        return 130
    except (Figure2Error, ConfigError, TrainingError, ValueError, OSError) as err:
        print(f"{parser.prog}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
