"""On a cold kernel cache, helper processes compile the actor-critic agents' plans on Pendulum
in the background while the first tests run, one agent after another
(:mod:`fastd3pg.control.parallel_compile`, as a cold training run's helpers do); tests that
need those kernels find them in the cache or wait for them. It changes no number:
``FASTD3PG_COMPILE_WORKERS=0`` turns it off."""

import threading

import pytest

from fastd3pg import train
from fastd3pg.control import parallel_compile

WARMED = ("d3pg", "sac", "td3")  # ddpg, d3pg-sac and d3pg-td3 compile the same kernels


def _compile_plans(stop: threading.Event):
    for algo in WARMED:
        if stop.is_set() or not train.cold_cache(train.agent_class(algo)):
            continue
        config = train.resolve_config("Pendulum", algo)[0]
        helpers = parallel_compile.start("Pendulum", algo, config,
                                         n=min(parallel_compile.workers(), 1))
        while helpers and helpers[0].poll() is None and not stop.wait(0.2):
            pass
        parallel_compile.finish(helpers, timeout=0)


@pytest.fixture(scope="session", autouse=True)
def compile_plans_in_the_background():
    stop = threading.Event()
    worker = threading.Thread(target=_compile_plans, args=(stop,), daemon=True)
    worker.start()
    yield
    stop.set()
    worker.join(timeout=60)
