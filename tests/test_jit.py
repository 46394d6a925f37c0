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
