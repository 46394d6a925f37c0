"""Training throughput: env steps/s with one gradient update per env step (batch 64, 64×64
networks, float64, one core), after compilation, against the machine's arithmetic cap measured
in the same run (compile times: :mod:`fastd3pg.bench.compile`).

The cap of a row is ``R / W``: ``R`` the single-thread GEMM rate that NumPy's BLAS reaches on
the row's layer shapes (:func:`fastd3pg.bench.gemm.gemm_rate`, measured before and after the
training rows, the better kept), ``W`` the matrix-product flops of one update
(:func:`update_flops`). The fraction of the cap is ``steps/s × W / R``; the env step, acting
and the element-wise work all count against it.
"""

import time

from fastd3pg.bench import Table
from fastd3pg.bench.gemm import fused_backward_flops, gemm_rate, mlp_flops


#: The algorithms the training rows time (one update per env step).
BENCHED = ("ddpg", "d3pg", "sac", "d3pg-sac", "td3", "d3pg-td3")


def _agent(algo, env_name, steps):
    from fastd3pg.physics import make
    from fastd3pg.control import agent_class

    cls = agent_class(algo)
    config = cls.config_class(rollout_steps=1, train_steps=1)
    return cls(make(env_name), config, seed=0, total_steps=steps)


def update_flops(algo, agent) -> int:
    """Matrix-product flops of one update of ``agent`` (``algo`` one of ddpg, d3pg, sac,
    d3pg-sac, td3, d3pg-td3), counted from the kernels it calls, with ``F`` a network's forward flops
    (:func:`~fastd3pg.bench.gemm.mlp_flops`), ``f`` those of its input layer and ``V`` those of
    the critic's ``backward_value_and_input_grad``
    (:func:`~fastd3pg.bench.gemm.fused_backward_flops`):

    forward ``F``; ``input_grad`` ``2F``; ``input_vjp`` ``F``; ``param_vjp`` ``2F - f`` (no
    input cotangent); the twin critics' minimum with its input gradient ``3F`` (two forwards,
    the reverse pass over each row once, for the critic attaining the minimum). Per update:

    - ddpg: target ``π'``, ``Q'`` (``F_a + F_c``); critic forward and ``param_vjp``
      (``3F_c - f_c``); actor forward, critic ``input_grad``, actor ``param_vjp``
      (``3F_a - f_a + 2F_c``): ``4F_a + 6F_c - f_a - f_c``.
    - d3pg: targets with ``∇Q'`` and the actor's input cotangent (``2F_a + 2F_c``); critic
      ``forward_input_grad`` and ``backward_value_and_input_grad`` (``2F_c + V``); actor as
      ddpg: ``5F_a + 6F_c - f_a + V``.
    - sac: target actor and two target critics (``F_a + 2F_c``); two critics
      (``6F_c - 2f_c``); actor with the twin minimum's input gradient (``3F_a - f_a + 3F_c``):
      ``4F_a + 11F_c - f_a - 2f_c``.
    - d3pg-sac: targets with the twin minimum's ``∇Q'`` and the actor's input cotangent
      (``2F_a + 3F_c``); two critics (``4F_c + 2V``); actor as sac:
      ``5F_a + 10F_c - f_a + 2V``.
    - td3: target actor and two target critics (``F_a + 2F_c``); two critics
      (``6F_c - 2f_c``); the actor against critic 1, every second update
      (``(3F_a - f_a + 2F_c)/2``): ``2.5F_a + 9F_c - 0.5f_a - 2f_c``.
    - d3pg-td3: targets with the twin minimum's ``∇Q'`` and the actor's input cotangent
      (``2F_a + 3F_c``); two critics (``4F_c + 2V``); actor as td3:
      ``3.5F_a + 8F_c - 0.5f_a + 2V``.

    The parameter-noise adaptation (every ``noise_interval`` updates), the ``J_sᵀ v`` products
    of the gradient targets and the element-wise work are not counted.
    """
    B = agent.config.batch_size
    a, c = agent.actor.sizes, agent.critic.sizes
    Fa, Fc = mlp_flops(a, B), mlp_flops(c, B)
    fa, fc = 2 * B * int(a[0]) * int(a[1]), 2 * B * int(c[0]) * int(c[1])
    V = fused_backward_flops(agent.critic, B) if algo.startswith("d3pg") else 0
    counts = {  # (F_a, F_c, f_a, f_c, V)
        "ddpg": (4, 6, 1, 1, 0),
        "d3pg": (5, 6, 1, 0, 1),
        "sac": (4, 11, 1, 2, 0),
        "d3pg-sac": (5, 10, 1, 0, 2),
        "td3": (2.5, 9, 0.5, 2, 0),
        "d3pg-td3": (3.5, 8, 0.5, 0, 2),
    }
    ka, kc, ja, jc, kv = counts[algo]
    return int(ka * Fa + kc * Fc - ja * fa - jc * fc + kv * V)


def steps_per_second(agent, steps=3000, warmup=300, chunks=4):
    """Env steps per second over ``steps`` steps after ``warmup``, timed in ``chunks`` equal
    parts of which the fastest counts (on a shared machine, the others carry its noise)."""
    agent.train(warmup)  # compiles, fills the buffer past one batch
    n = max(steps // chunks, 1)
    best = float("inf")
    for _ in range(chunks):
        t0 = time.perf_counter()
        agent.train(n)
        best = min(best, time.perf_counter() - t0)
    return n / best


def tables(quick=False):
    from fastd3pg.physics import names
    from fastd3pg.control import ALGOS

    steps = 1000 if quick else 4000
    repeat = 3 if quick else 7
    tasks = ["Pendulum"] + [t for t in ("HalfCheetah", "RollingDie") if t in names()][:1]
    algos = [a for a in BENCHED if a in ALGOS]
    measured = []
    shapes = set()
    for task in tasks:
        for a in algos:
            agent = _agent(a, task, steps + 300)
            rate = steps_per_second(agent, steps)
            measured.append((task, a, rate, update_flops(a, agent), agent.config.batch_size,
                             (tuple(agent.actor.sizes), tuple(agent.critic.sizes))))
            shapes.add((measured[-1][5], measured[-1][4]))
    # The GEMM rate on each row's shapes, before and after the training rows were timed;
    # training was timed in between, so the better of the two is the fairer cap on a shared
    # machine.
    caps = {}
    for nets, batch in sorted(shapes):
        caps[nets, batch] = gemm_rate([list(s) for s in nets], batch, repeat)
    for nets, batch in sorted(shapes):
        caps[nets, batch] = max(caps[nets, batch], gemm_rate([list(s) for s in nets], batch,
                                                             repeat))
    rows = []
    ddpg = {task: rate for task, a, rate, *_ in measured if a == "ddpg"}
    for task, a, rate, flops, batch, nets in measured:
        cap = caps[nets, batch]
        rows.append([task, a, rate, 1e3 / rate, ddpg.get(task, float("nan")) / rate,
                     flops / 1e6, cap / 1e9, cap / flops, rate * flops / cap])
    out = [Table("Training throughput (1 update per env step, batch 64, 64×64)",
                 ["task", "algo", "env steps/s", "ms/step", "cost vs ddpg", "MFLOP/update",
                  "GEMM GFLOP/s (1 thread)", "cap updates/s", "fraction of cap"],
                 rows,
                 note="cap = the single-thread NumPy/BLAS GEMM rate on the row's layer shapes "
                      "(forward + vjp products of actor and critic, measured in this run) / "
                      "the update's matrix-product flops; fraction = env steps/s / cap. BLAS "
                      "picks its kernels for this processor (AVX-512 where there is one); the "
                      "package's kernels are compiled for the target in the header (x86-64-v3, "
                      "AVX2, unless FASTD3PG_CPU=host). For a cap of the same vector width on an "
                      "AVX-512 machine, run with OPENBLAS_CORETYPE=Haswell (NumPy's OpenBLAS).")]
    return out
