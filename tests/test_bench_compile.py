"""The compile section's per-function seconds: own time plus what was compiled inside."""

import numba
import numpy as np

from fastd3pg.bench.compile import compile_times


def test_compile_times_split_a_callers_time_into_its_own_and_its_callees():
    @numba.njit
    def inner(x):
        return x[0] + x[1] + x[2]  # nothing that compiles a library function

    @numba.njit
    def outer(x):
        return inner(x) + 1.0

    with compile_times() as times:
        assert outer(np.ones(3)) == 4.0
        assert outer(np.ones(3)) == 4.0  # compiled once
    names = {name.rsplit(".", 1)[-1]: row for name, row in times.items()}
    own_o, total_o, count_o = names["outer"]
    own_i, total_i, count_i = names["inner"]
    assert count_o == 1 and count_i == 1
    assert own_i == total_i > 0  # inner compiles nothing of its own
    assert 0 < own_o < total_o
    # outer's total holds inner's and those of the library functions compiled inside it.
    inside_outer = sum(own for name, (own, _, _) in times.items() if not name.endswith(".outer"))
    assert abs(total_o - (own_o + inside_outer)) < 1e-6 * max(1.0, total_o)


def test_compile_times_stops_listening_after_the_block():
    @numba.njit
    def later(x):
        return x + 1

    with compile_times() as times:
        pass
    later(1)
    assert times == {}
