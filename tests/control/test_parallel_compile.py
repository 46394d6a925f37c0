"""Helper processes compiling a cold run's kernels: each plan lists units its loop calls with
the types it passes, a helper fills the cache with them, and a run's numbers do not depend on
which process compiled what."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fastd3pg import _jit, control, train
from fastd3pg.control import parallel_compile
from fastd3pg.physics import make

PLANNED = ["ddpg", "d3pg", "sac", "d3pg-sac", "td3", "d3pg-td3"]


def small_config(algo):
    cls = control.agent_class(algo)
    extra = {"warmup_steps": 20} if "warmup_steps" in cls.config_class.__dataclass_fields__ else {}
    return dataclasses.replace(cls.config_class(), hidden=(8, 8), batch_size=8, **extra)


def fresh_env(cache):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    env.pop("FASTD3PG_COMPILE_WORKERS", None)
    return env


@pytest.mark.parametrize("algo", PLANNED)
def test_a_plan_lists_units_the_loop_calls_with_the_types_it_passes(algo):
    cls = control.agent_class(algo)
    agent = cls(make("Pendulum"), small_config(algo), 0, total_steps=100)
    agent.train(1)  # compiles (or loads) the loop, binding every unit it calls
    plan = agent.compile_plan()
    assert len(plan) >= 3
    keys = {_jit.unit_key(call, args) for call, args in plan}
    assert len(keys) == len(plan)
    assert keys <= _jit.bound_units(), sorted(str(k[:2]) for k in keys - _jit.bound_units())


RUN = '''
import json, sys
from fastd3pg import train
from fastd3pg.control import d3pg
m = train.run(env="Pendulum", algo="ddpg", steps=400, out=sys.argv[1], hidden=(8, 8),
              batch_size=8)
stats = d3pg.critic_gradient.compiled.stats  # the helper's plan starts with it
print(json.dumps({"metrics": {k: v.tolist() for k, v in m.items() if k != "wall_s"},
                  "hits": sum(stats.cache_hits.values()),
                  "misses": sum(stats.cache_misses.values())}))
'''


def test_a_helper_compiles_part_of_a_cold_run_and_the_numbers_stay_the_same(tmp_path,
                                                                             monkeypatch):
    env = {**fresh_env(tmp_path / "cache"), "FASTD3PG_COMPILE_WORKERS": "1"}
    out = subprocess.run([sys.executable, "-c", RUN, str(tmp_path / "helped")], env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    helped = json.loads(out.stdout.strip().splitlines()[-1])
    # The run found its plan's first unit in the cache, compiled by the helper (which starts
    # on it at once, while the run starts from the plan's end).
    assert helped["hits"] == 1 and helped["misses"] == 0
    monkeypatch.setenv("FASTD3PG_COMPILE_WORKERS", "0")
    alone = train.run(env="Pendulum", algo="ddpg", steps=400, out=tmp_path / "alone",
                      hidden=(8, 8), batch_size=8)
    # The same code on the same inputs: the machine code is the same whoever compiled it.
    assert helped["metrics"] == {k: v.tolist() for k, v in alone.items() if k != "wall_s"}


def test_the_number_of_helpers(monkeypatch):
    monkeypatch.setenv("FASTD3PG_COMPILE_WORKERS", "3")
    assert parallel_compile.workers() == 3
    monkeypatch.setenv("FASTD3PG_COMPILE_WORKERS", "0")
    assert parallel_compile.workers() == 0
    for bad in ("two", "-1", "1.5"):
        monkeypatch.setenv("FASTD3PG_COMPILE_WORKERS", bad)
        with pytest.raises(ValueError, match="FASTD3PG_COMPILE_WORKERS must be a whole number"):
            parallel_compile.workers()
    monkeypatch.delenv("FASTD3PG_COMPILE_WORKERS")
    cpus = len(os.sched_getaffinity(0))
    assert parallel_compile.workers() == max(0, min(cpus - 1, parallel_compile.MAX_WORKERS))


def test_no_helper_starts_when_turned_off_or_for_an_agent_without_a_plan(monkeypatch):
    monkeypatch.setenv("FASTD3PG_COMPILE_WORKERS", "0")
    assert parallel_compile.start("Pendulum", "d3pg", small_config("d3pg")) == []
    monkeypatch.setenv("FASTD3PG_COMPILE_WORKERS", "1")
    assert not hasattr(control.agent_class("gd"), "compile_plan")
    assert parallel_compile.start("Pendulum", "gd", control.agent_class("gd").config_class()) == []


def test_helpers_end_with_their_plan(monkeypatch):
    """On this suite's (warm) cache, a helper loads its plan and exits cleanly."""
    monkeypatch.setenv("FASTD3PG_COMPILE_WORKERS", "1")
    agent = control.agent_class("td3")(make("Pendulum"), small_config("td3"), 0, 100)
    agent.train(1)
    helpers = parallel_compile.start("Pendulum", "td3", small_config("td3"))
    assert len(helpers) == 1
    parallel_compile.finish(helpers, timeout=300)
    assert helpers[0].returncode == 0
    assert np.isfinite(agent.train(1))


def test_a_failed_run_stops_its_helpers_at_once(tmp_path, monkeypatch):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    monkeypatch.setattr(train, "cold_cache", lambda cls: True)
    monkeypatch.setattr(parallel_compile, "start", lambda *args: [sleeper])

    def broken(*args):
        raise RuntimeError("broken run")

    monkeypatch.setattr(train, "_train", broken)
    with pytest.raises(RuntimeError, match="broken run"):
        train.run(env="Pendulum", algo="ddpg", steps=10, out=tmp_path / "run")
    assert sleeper.poll() is not None  # stopped, not waited for
