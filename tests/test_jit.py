"""The compile target: pinned to x86-64-v3 where the processor has it, or the host's by choice."""

import json
import os
import subprocess
import sys

import pytest

PRINT_TARGET = "from fastd3pg import _jit; import json; print(json.dumps(_jit.compile_target()))"


def target_in_fresh_process(code=PRINT_TARGET, **env_vars):
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CPU_NAME", "FASTD3PG_CPU")}
    env.update(env_vars)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def host_has_x86_64_v3():
    import platform

    import llvmlite.binding as ll

    from fastd3pg import _jit

    features = ll.get_host_cpu_features()
    return (platform.machine().lower() in ("x86_64", "amd64")
            and all(features.get(f, False) for f in _jit._PORTABLE_FEATURES))


def test_the_default_target_is_portable_where_the_processor_allows_it():
    target = target_in_fresh_process()
    if host_has_x86_64_v3():
        assert target["cpu_name"] == "x86-64-v3" and target["reason"] == "portable"
    else:
        assert target["reason"].startswith("host")
    assert target["processor"] and target["numba"]


def test_fastd3pg_cpu_host_keeps_the_hosts_target():
    import llvmlite.binding as ll

    target = target_in_fresh_process(FASTD3PG_CPU="host")
    assert target["reason"] == "FASTD3PG_CPU=host"
    assert target["cpu_name"] == ll.get_host_cpu_name()


def test_a_users_numba_cpu_name_wins():
    target = target_in_fresh_process(NUMBA_CPU_NAME="generic")
    assert target["cpu_name"] == "generic" and target["reason"] == "NUMBA_CPU_NAME"


def test_numba_code_compiled_before_the_import_keeps_the_host_target():
    if not host_has_x86_64_v3():
        pytest.skip("the host target is used anyway")
    code = "import numba; numba.njit(lambda x: x + 1)(1); " + PRINT_TARGET
    target = target_in_fresh_process(code)
    assert target["reason"].startswith("host (Numba compiled code before")
    assert target["cpu_name"] != "x86-64-v3"


# -- units ----------------------------------------------------------------------------------------
UNIT_MODULE = '''
import numpy as np
from fastd3pg._jit import jit, unit


@unit
def inner(x, k):
    if k < 0:
        raise ValueError("k must be >= 0")
    s = 0.0
    for v in x:
        s += v * k
    return x[:2], s


@jit
def middle(x, k):
    head, s = inner(x, k)
    return head.sum() + s


@jit
def outer(x, k):
    return middle(x, k) + 1.0
'''

RUN_UNIT = '''
import json, sys
import numpy as np
import unitmod
name = sys.argv[1]
f = getattr(unitmod, name)
x = np.arange(5.0)
value = f(x, 2)
try:
    f(x, -1)
    error = None
except ValueError as e:
    error = str(e)
d = getattr(f, "dispatcher", f)
print(json.dumps({"value": float(value) if name != "inner" else float(value[1]),
                  "error": error, "hits": sum(d.stats.cache_hits.values()),
                  "misses": sum(d.stats.cache_misses.values())}))
'''


@pytest.fixture
def unit_package(tmp_path):
    (tmp_path / "unitmod.py").write_text(UNIT_MODULE)
    (tmp_path / "run_unit.py").write_text(RUN_UNIT)
    return tmp_path


def run_unit(package, name):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(package / "cache"),
           "PYTHONPATH": os.pathsep.join([str(package), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, str(package / "run_unit.py"), name], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_unit_gives_the_same_result_and_error_from_python_and_from_compiled_callers(unit_package):
    # inner: 0..4 times 2 summed = 20; middle adds x[0] + x[1] = 1; outer adds 1.
    assert run_unit(unit_package, "inner") == {"value": 20.0, "error": "k must be >= 0",
                                               "hits": 0, "misses": 1}
    assert run_unit(unit_package, "middle")["value"] == 21.0
    got = run_unit(unit_package, "outer")
    assert got["value"] == 22.0 and got["error"] == "k must be >= 0"


def test_a_caller_of_a_unit_is_loaded_from_the_cache_in_a_new_process(unit_package):
    """The second process loads ``outer`` from the cache (nothing compiled), which binds the
    unit's entry point first; also when ``outer`` was compiled against a ``middle`` that was
    itself loaded from the cache."""
    first = run_unit(unit_package, "outer")
    assert first["misses"] == 1 and first["hits"] == 0
    again = run_unit(unit_package, "outer")
    assert again == {**first, "hits": 1, "misses": 0}
    other = unit_package / "other"
    other.mkdir()
    (other / "unitmod.py").write_text(UNIT_MODULE)
    (other / "run_unit.py").write_text(RUN_UNIT)
    assert run_unit(other, "middle")["misses"] == 1
    assert run_unit(other, "outer")["misses"] == 1  # compiled, with middle from the cache
    assert run_unit(other, "outer") == {**first, "hits": 1, "misses": 0}


def test_a_callers_code_calls_the_unit_instead_of_containing_it(unit_package, monkeypatch):
    import numpy as np

    monkeypatch.syspath_prepend(str(unit_package))
    import unitmod

    assert unitmod.outer(np.arange(5.0), 2) == 22.0
    (ir,) = unitmod.middle.inspect_llvm().values()
    assert any(line.startswith("declare") and "fastd3pg.unit." in line for line in ir.splitlines())
    assert "k must be >= 0" not in ir  # the unit's code (its error message) is not in the caller


def test_a_unit_must_be_defined_at_module_level():
    from fastd3pg._jit import unit

    with pytest.raises(TypeError, match="module level"):
        @unit
        def local(x):
            return x


def test_compiled_division_by_zero_follows_numpy_and_ieee():
    import numpy as np

    from fastd3pg._jit import jit

    @jit
    def ratios(x, y, out):
        for k in range(x.shape[0]):
            out[k] = x[k] / y[k]

    out = np.zeros(4)
    ratios(np.array([1.0, -1.0, 0.0, 6.0]), np.array([0.0, 0.0, 0.0, 3.0]), out)
    assert out[0] == np.inf and out[1] == -np.inf and np.isnan(out[2])  # not ZeroDivisionError
    assert out[3] == 2.0


# -- processes sharing the cache ------------------------------------------------------------------
HOLD_LOCK = '''
import sys
from fastd3pg._jit import file_lock
with file_lock(sys.argv[1]) as held:
    print("held" if held else "not held", flush=True)
    sys.stdin.readline()
'''


class LockHolder:
    """Another process holding the lock on ``path`` until :meth:`release`."""

    def __init__(self, path):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "held"

    def release(self):
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        assert self.proc.wait(timeout=60) == 0


def test_a_file_lock_excludes_other_processes_and_is_reentrant_within_one(tmp_path):
    from fastd3pg._jit import file_lock

    path = tmp_path / "lock"
    holder = LockHolder(path)
    with file_lock(str(path), blocking=False) as held:
        assert not held
    holder.release()
    with file_lock(str(path), blocking=False) as held:
        assert held
        with file_lock(str(path), blocking=False) as again:
            assert again
        # Still held after the inner release: another process cannot take it.
        out = subprocess.run([sys.executable, "-c", "import sys; from fastd3pg._jit import "
                              "file_lock\nwith file_lock(sys.argv[1], blocking=False) as h: "
                              "print(h)", str(path)], capture_output=True, text=True, timeout=60)
        assert out.stdout.strip() == "False", out.stderr


def test_a_cache_save_waits_for_the_lock_on_its_index(unit_package, monkeypatch):
    """Numba picks a data file's name from the index it just read, so two processes saving two
    signatures of one function at once could take the same name: saves hold the index's lock."""
    import threading
    import time

    import numpy as np

    monkeypatch.syspath_prepend(str(unit_package))
    import unitmod

    cache_file = unitmod.outer._cache._cache_file
    index = cache_file._index_path
    holder = LockHolder(index + ".lock")
    x = np.arange(3, dtype=np.float32)  # a signature no other test compiles
    worker = threading.Thread(target=unitmod.outer, args=(x, 2))
    worker.start()
    sig = (unitmod.outer.typeof_pyval(x), unitmod.outer.typeof_pyval(2))
    deadline = time.monotonic() + 240
    while sig not in unitmod.outer.overloads and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sig in unitmod.outer.overloads  # compiled; Numba saves it after that
    time.sleep(1.0)  # a save takes milliseconds: this one must be waiting
    saved = len(cache_file._load_index())
    assert worker.is_alive()
    holder.release()
    worker.join(timeout=120)
    assert not worker.is_alive()
    assert len(cache_file._load_index()) == saved + 1


def test_compile_ahead_skips_the_units_another_process_is_compiling(unit_package, monkeypatch):
    import numpy as np

    from fastd3pg import _jit

    monkeypatch.syspath_prepend(str(unit_package))
    import unitmod

    plan = [(unitmod.inner, (np.arange(4, dtype=np.int32), 3))]
    key = _jit.unit_key(*plan[0])
    assert key not in _jit.bound_units()
    lock = os.path.join(_jit.cache_dir(), "locks", _jit._symbol(*key))
    holder = LockHolder(lock)
    assert _jit.compile_ahead(plan) == 0
    assert key not in _jit.bound_units() and key[2] not in unitmod.inner.compiled.overloads
    holder.release()
    assert _jit.compile_ahead(plan, backwards=True) == 1
    assert key in _jit.bound_units()

