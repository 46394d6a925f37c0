"""Gradient fidelity during training: how right the critic's value and input gradients are.

``python -m fastd3pg.train ... --diagnose`` (``run(..., diagnose=True)``) calls :func:`fidelity`
after every evaluation and writes one row of ``diagnostics.csv`` beside ``metrics.csv``. The row
measures, on ``SAMPLES`` transitions drawn uniformly from the replay buffer, the critic ``Q_φ``
and the TD target ``y`` against the ground truth of the current deterministic actor ``π``:
``Q^π(s, a)`` and its exact gradients from :func:`fastd3pg.diagnostics.true_q` (forward
simulation for the task's horizon counted from ``s``, discount the run's ``γ``).

Everything is computed in NumPy on copies of the agent's arrays (``agent.critic_snapshot()``),
from a random stream of its own seeded by ``(seed, timesteps)``: the training and evaluation
streams are never touched, so a diagnosed run's ``metrics.csv`` returns equal an undiagnosed
run's, and a resumed run writes the rows an uninterrupted one writes.

Raw coordinates. The critic sees ``s̃ = clip((s - μ_s)/(σ_s + ε), ±c)`` and outputs ``Q̃``;
the values and gradients compared here are those of ``Q_φ(s, a) = σ_Q Q̃(s̃, a) + μ_Q`` with
respect to the raw ``s`` and ``a`` (zero in the state components whose clip is active). The TD
target is ``y(s, a) = r + γ (1 - done) Q'(s', π'(s'))`` with its gradients ``g_s``, ``g_a`` of
PAPER.md eq. 2 (target networks at the stored ``s'``, the simulator's Jacobians at the stored
``(s, a)``: the buffer's where it stores them, else ``env.transition_batch``). For an agent with
twin critics (TD3) the critic measured is the first and the target is the minimum of the two
target critics at the noise-free target action.

Columns (``x`` is ``actor``: at ``(s, π(s))``, or ``stored``: at the buffer's ``(s, a)``):

    timesteps                     the evaluation's timestep (as in metrics.csv)
    critic_q_abserr_median_x      median over the samples of |Q_φ - Q^π|
    critic_q_abserr_rel_x         that divided by the std of Q^π over the samples
    critic_da_cos_x               mean cosine between ∇_a Q_φ and ∇_a Q^π
    critic_da_relerr_x            median of ‖∇_a Q_φ - ∇_a Q^π‖ / ‖∇_a Q^π‖
    critic_ds_cos_x, critic_ds_relerr_x      the same for ∇_s
    target_q_abserr_median_stored, target_q_abserr_rel_stored    y against Q^π (stored (s, a))
    target_ga_cos_stored, target_ga_relerr_stored    g_a against ∇_a Q^π
    target_gs_cos_stored, target_gs_relerr_stored    g_s against ∇_s Q^π

A cosine skips the samples where either vector is zero, a relative error those where the true
gradient is zero; a statistic with no sample left (or a rollout that overflowed) is ``nan``.
With one action (Pendulum, MassPoint) a ``da`` cosine is ±1, the agreement of signs: its mean
is ``2p - 1`` for the fraction ``p`` of samples whose sign is right.

Cost: a batched rollout of ``2 SAMPLES`` rows over the task's horizon per evaluation (with its
adjoint sweep), plus a few network Jacobians in NumPy; nothing when diagnostics are off. A
diagnosed Pendulum D3PG run of 20,000 steps takes well under twice the plain run.
"""

import numpy as np

from fastd3pg.control.core import STD_EPS
from fastd3pg.diagnostics import _network_jacobian, true_q
from fastd3pg.policy import Policy

SAMPLES = 32  #: replay transitions drawn at every evaluation (so that a row costs little)
# Rows per true_q call. NumPy's BLAS runs the networks' matrix products on several threads from
# about 128 rows, and on a busy machine that is ~10x slower than one thread (measured: 256 rows
# over Pendulum's 200 steps, 3.2 s in one call against 0.5 s single-threaded).
_ROWS_PER_CALL = 64
_STREAM = 0x6469  # tags the diagnostic stream's seed, apart from the agent's own streams

_KINDS = ("actor", "stored")
_MEASURES = ("q_abserr_median", "q_abserr_rel", "da_cos", "da_relerr", "ds_cos", "ds_relerr")
HEADER = (["timesteps"] + [f"critic_{k}_{x}" for x in _KINDS for k in _MEASURES]
          + [f"target_{k.replace('da', 'ga').replace('ds', 'gs')}_stored" for k in _MEASURES])


def _normalize(snap, S):
    u = (S - snap["obs_mean"]) / (snap["obs_std"] + STD_EPS)
    clip = snap["obs_clip"]
    return np.clip(u, -clip, clip), (np.abs(u) <= clip) / (snap["obs_std"] + STD_EPS)


def critic_value_and_grads(snap, states, actions, phi=None):
    """``Q_φ(s, a)``, ``∇_s Q_φ``, ``∇_a Q_φ`` in raw coordinates for rows ``(B, n)``,
    ``(B, m)`` (through the observation normalization, its clip and PopArt's ``μ_Q, σ_Q``);
    ``phi`` defaults to the snapshot's critic."""
    S, A = np.asarray(states, dtype=np.float64), np.asarray(actions, dtype=np.float64)
    n = S.shape[1]
    X, ds_dx = _normalize(snap, S)
    f, T = _network_jacobian(snap["critic"], snap["phi"] if phi is None else phi,
                             np.concatenate([X, A], axis=1))
    sigma, mu = snap["sigma_q"], snap["mu_q"]
    return sigma * f[:, 0] + mu, sigma * T[:, 0, :n] * ds_dx, sigma * T[:, 0, n:]


def actor_actions(snap, states, theta=None):
    """The deterministic actor's actions (``theta`` defaults to the snapshot's actor)."""
    X, _ = _normalize(snap, np.asarray(states, dtype=np.float64))
    a, _ = _network_jacobian(snap["actor"], snap["theta"] if theta is None else theta, X)
    return np.clip(a, -1.0, 1.0)


def td_target_and_grads(snap, rewards, next_states, done, J_s, J_a, dr_ds, dr_da):
    """The TD target ``y`` and its gradients ``g_s``, ``g_a`` (PAPER.md eq. 2) in raw
    coordinates, from the target networks at ``next_states`` and the step's derivatives."""
    S2 = np.asarray(next_states, dtype=np.float64)
    n = S2.shape[1]
    X2, ds_dx = _normalize(snap, S2)
    A2, dA2 = _network_jacobian(snap["actor"], snap["theta_targ"], X2)  # a' = π'(s')
    best = None
    for phi in snap["phi_targ"]:  # the minimum over the target critics (one for D3PG)
        f, T = _network_jacobian(snap["critic"], phi, np.concatenate([X2, A2], axis=1))
        if best is None:
            best = [f[:, 0], T[:, 0]]
        else:
            lower = f[:, 0] < best[0]
            best[0] = np.where(lower, f[:, 0], best[0])
            best[1] = np.where(lower[:, None], T[:, 0], best[1])
    q2, G2 = best
    sigma, mu = snap["sigma_q"], snap["mu_q"]
    v = sigma * (G2[:, :n] + np.einsum("bm,bmn->bn", G2[:, n:], dA2)) * ds_dx  # d Q'/d s'
    keep = snap["gamma"] * (1.0 - np.asarray(done, dtype=np.float64))
    y = np.asarray(rewards, dtype=np.float64) + keep * (sigma * q2 + mu)
    g_s = dr_ds + keep[:, None] * np.einsum("bkj,bk->bj", J_s, v)
    g_a = dr_da + keep[:, None] * np.einsum("bkj,bk->bj", J_a, v)
    return y, g_s, g_a


def _cosine(g, true):
    ng, nt = np.linalg.norm(g, axis=1), np.linalg.norm(true, axis=1)
    ok = (ng > 0) & (nt > 0)
    return float(np.mean(np.sum(g[ok] * true[ok], axis=1) / (ng[ok] * nt[ok]))) if ok.any() \
        else float("nan")


def _relerr(g, true):
    nt = np.linalg.norm(true, axis=1)
    ok = nt > 0
    return float(np.median(np.linalg.norm(g[ok] - true[ok], axis=1) / nt[ok])) if ok.any() \
        else float("nan")


def _measures(q, dq_ds, dq_da, truth):
    tq, tds, tda = truth
    err = float(np.median(np.abs(q - tq)))
    std = float(np.std(tq))
    return [err, err / std if std > 0 else float("nan"), _cosine(dq_da, tda),
            _relerr(dq_da, tda), _cosine(dq_ds, tds), _relerr(dq_ds, tds)]


def fidelity(env, agent, seed: int, timesteps: int, samples: int = SAMPLES, horizon=None):
    """One row of ``diagnostics.csv`` (the values of :data:`HEADER`) for ``agent`` now."""
    snap = agent.critic_snapshot()
    buf = snap["replay"]
    rng = np.random.default_rng(np.random.SeedSequence((int(seed), int(timesteps), _STREAM)))
    idx = rng.integers(int(buf.pos[0]), size=samples)
    S, A = buf.s[idx].copy(), buf.a[idx].copy()
    if buf.J_s.shape[0] > 0:
        J_s, J_a, dr_ds, dr_da = (x[idx].copy() for x in (buf.J_s, buf.J_a, buf.dr_ds, buf.dr_da))
    else:
        tr = env.transition_batch(S, A)
        J_s, J_a, dr_ds, dr_da = tr.J_s, tr.J_a, tr.dr_ds, tr.dr_da
    A_pi = actor_actions(snap, S)
    nan = [float("nan")] * len(_MEASURES)
    try:
        policy = Policy(agent.policy_arrays())
        SS, AA = np.concatenate([S, S]), np.concatenate([A_pi, A])
        parts = [true_q(env, policy, SS[i:i + _ROWS_PER_CALL], AA[i:i + _ROWS_PER_CALL],
                        gamma=snap["gamma"], horizon=horizon)
                 for i in range(0, len(SS), _ROWS_PER_CALL)]
        tq, tds, tda = (np.concatenate(k) for k in zip(*parts))
    except ValueError:  # the rollout overflowed: no ground truth at this evaluation
        return [int(timesteps)] + nan * 3
    halves = [(tq[:samples], tds[:samples], tda[:samples]),
              (tq[samples:], tds[samples:], tda[samples:])]
    row = [int(timesteps)]
    for actions, truth in zip((A_pi, A), halves):
        row += _measures(*critic_value_and_grads(snap, S, actions), truth)
    y, g_s, g_a = td_target_and_grads(snap, buf.r[idx], buf.s_next[idx], buf.done[idx],
                                      J_s, J_a, dr_ds, dr_da)
    return row + _measures(y, g_s, g_a, halves[1])
