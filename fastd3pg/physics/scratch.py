"""Scratch arrays on the call stack, for kernels that must not allocate.

The kernel contract (``step(p, s, a, out)``, see :mod:`fastd3pg.physics.base`) passes no
workspace, and dispatch's signatures are fixed, yet a task with internal stages (Acrobot's
RK4, RollingDie's event tangent, HalfCheetah's contact LCP) needs work arrays. A heap array
(``np.empty``) costs an allocation and a free on every step of a training loop; these arrays
live in the stack frame of the compiled function that creates them and cost nothing.

``stack_empty(SIZE, np.float64)`` is an uninitialised 1-D array of ``SIZE`` elements (a
module-level integer constant or a literal: Numba must know it at compile time, so
``2 * N`` has to be written as a constant of its own). Reshape a prefix for 2-D work arrays,
``stack_empty(SIZE, np.float64)[: n * k].reshape((n, k))`` (a view, no copy). Rules: call it
directly in the kernel that owns the memory (or in an ``inline="always"`` helper of it); the
array dies with that call, so never return it or store it; and it is not zeroed.
"""

from llvmlite import ir
from numba import carray, types
from numba.core import cgutils
from numba.extending import intrinsic

from fastd3pg._jit import jit


@intrinsic
def _stack_pointer(typingctx, size, dtype):
    """A pointer to ``size`` uninitialised elements of ``dtype`` in the caller's frame."""
    if not isinstance(size, types.IntegerLiteral) or not isinstance(dtype, types.NumberClass):
        return None
    count = size.literal_value
    element = dtype.dtype

    def codegen(context, builder, signature, args):
        data_type = context.get_data_type(element)
        # alloca_once puts the alloca in the function's entry block: one buffer per call,
        # however often the code that asks for it runs (e.g. inside a loop).
        buffer = cgutils.alloca_once(builder, ir.ArrayType(data_type, count))
        return builder.bitcast(buffer, data_type.as_pointer())

    return types.CPointer(element)(size, dtype), codegen


@jit(inline="always")
def stack_empty(size, dtype):
    """An uninitialised 1-D array of ``size`` (a compile-time constant) ``dtype`` elements in
    the calling kernel's stack frame (see the module docstring)."""
    return carray(_stack_pointer(size, dtype), (size,))
