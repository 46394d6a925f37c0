"""Call a task's compiled kernels from compiled code, by the kernels' addresses.

A compiled loop (the batch loops below, the training loops of :mod:`fastd3pg.control`) takes a
:class:`TaskKernels`: the machine addresses of one task's ``reset``, ``step`` and ``step_jac``
(see :mod:`fastd3pg.physics.base`), compiled on their own for the fixed array signature below,
and the task's sizes. :func:`reset`, :func:`step` and :func:`step_jac` call through those
addresses with Numba's own calling convention.

Why addresses. The loops are compiled once, for every task, and cached across processes: an
address is an ordinary integer argument, so nothing task-specific is compiled into a loop, and
a run compiles only the kernels of its own task (HalfCheetah's contact solver is not compiled
into a Pendulum run). Passing the compiled functions themselves would specialize every loop on
each task, and Numba does not reuse the cache of a function that takes another compiled
function as an argument; branching on an integer id compiles every task into every loop. A
kernel is a real call here, not inlined: about 60 ns more per step than an inlined kernel
(CartPole's batch loop), nothing against a training update, but a third of a cheap task's step
in a batch loop.

Adding a task needs nothing here: :func:`kernels` compiles the class's own kernels.

The arrays must be C-contiguous float64 (``rng`` uint64) of the task's sizes; the calls check
the sizes (a mismatch raises ``ValueError``), as the kernels behind them do not.
"""

import functools
from typing import NamedTuple

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from fastd3pg._jit import jit

_VEC = types.float64[::1]
_MAT = types.float64[:, ::1]
_RNG = types.uint64[::1]
_STEP_RESULT = types.Tuple((types.float64, types.boolean))

# The one signature each kernel is compiled for: (p, rng, out); (p, s, a, out);
# (p, s, a, out, J_s, J_a, dr_ds, dr_da).
RESET_SIGNATURE = types.none(_VEC, _RNG, _VEC)
STEP_SIGNATURE = _STEP_RESULT(_VEC, _VEC, _VEC, _VEC)
STEP_JAC_SIGNATURE = _STEP_RESULT(_VEC, _VEC, _VEC, _VEC, _MAT, _MAT, _VEC, _VEC)


class TaskKernels(NamedTuple):
    """One task's compiled kernels as compiled code calls them: their addresses (valid in this
    process only) and the task's sizes."""

    reset: int
    step: int
    step_jac: int
    state_dim: int  # n
    action_dim: int  # m
    n_params: int  # len(p)


def _address(kernel, signature) -> int:
    """``kernel`` compiled (or loaded from the cache) for ``signature``; its entry point."""
    kernel.compile(signature)
    # An earlier call from Python may have compiled these argument types already, with the
    # return type Numba inferred (``Literal[bool](False)`` for a task that never terminates):
    # the call below needs that type to have the same machine representation.
    compiled = kernel.overloads[signature.args]
    ctx = kernel.targetctx
    if ctx.get_return_type(compiled.signature.return_type) != ctx.get_return_type(signature.return_type):
        raise TypeError(f"{kernel.py_func.__qualname__} returns {compiled.signature.return_type}; "
                        f"dispatch calls it as returning {signature.return_type}")
    return compiled.library.get_pointer_to_function(compiled.fndesc.llvm_func_name)


@functools.cache
def _kernels_of(cls) -> TaskKernels:
    return TaskKernels(
        reset=_address(cls.reset_kernel, RESET_SIGNATURE),
        step=_address(cls.step_kernel, STEP_SIGNATURE),
        step_jac=_address(cls.step_jac_kernel, STEP_JAC_SIGNATURE),
        state_dim=int(cls.state_dim),
        action_dim=int(cls.action_dim),
        n_params=len(cls.default_params),
    )


def kernels(task) -> TaskKernels:
    """The :class:`TaskKernels` of an ``Env`` subclass (or instance), compiling its kernels on
    first use in this process."""
    return _kernels_of(task if isinstance(task, type) else type(task))


def _checked_args(name, signature, args):
    """``args``' types if they are what ``signature`` passes (dtype, dimensions, C layout);
    otherwise a typing error naming the first that is not."""
    for k, (given, wanted) in enumerate(zip(args, signature.args)):
        if not (isinstance(given, types.Array) and given.dtype == wanted.dtype
                and given.ndim == wanted.ndim and given.layout == "C"):
            raise TypeError(f"dispatch.{name}: argument {k + 1} must be a C-contiguous "
                            f"{wanted.ndim}-d {wanted.dtype} array, got {given}")
    return signature.args


def _call_through(name, signature, address, args):
    """The typing and code of an intrinsic ``f(address, *arrays)`` that calls the kernel at
    ``address`` (compiled for ``signature``) and propagates its status."""
    argtys = _checked_args(name, signature, args)
    if not isinstance(address, types.Integer):
        raise TypeError(f"dispatch.{name}: the address must be an integer, got {address}")

    def codegen(context, builder, sig, llargs):
        fnty = context.call_conv.get_function_type(signature.return_type, argtys)
        fn = builder.inttoptr(llargs[0], fnty.as_pointer())
        arrays = [context.cast(builder, v, t, w)
                  for v, t, w in zip(llargs[1:], sig.args[1:], argtys)]
        status, result = context.call_conv.call_function(builder, fn, signature.return_type,
                                                         argtys, arrays)
        with cgutils.if_unlikely(builder, status.is_error):
            context.call_conv.return_status_propagate(builder, status)
        return result

    return signature.return_type(address, *args), codegen


@intrinsic
def _reset(typingctx, address, p, rng, out):
    return _call_through("reset", RESET_SIGNATURE, address, (p, rng, out))


@intrinsic
def _step(typingctx, address, p, s, a, out):
    return _call_through("step", STEP_SIGNATURE, address, (p, s, a, out))


@intrinsic
def _step_jac(typingctx, address, p, s, a, out, J_s, J_a, dr_ds, dr_da):
    return _call_through("step_jac", STEP_JAC_SIGNATURE, address,
                         (p, s, a, out, J_s, J_a, dr_ds, dr_da))


@jit
def _check_vectors(k, p, s, a, out):
    if p.shape[0] != k.n_params or s.shape[0] != k.state_dim or out.shape[0] != k.state_dim \
            or a.shape[0] != k.action_dim:
        raise ValueError("dispatch: p, s, a or out does not have the task's size")


@jit
def reset(k, p, rng, out):
    """A start state into ``out`` from ``rng`` (``k.reset``)."""
    if p.shape[0] != k.n_params or out.shape[0] != k.state_dim or rng.shape[0] != 4:
        raise ValueError("dispatch.reset: p, rng or out does not have the task's size")
    _reset(k.reset, p, rng, out)


@jit
def step(k, p, s, a, out):
    """``(reward, terminated)`` of the step from ``s`` under ``a``, the next state into ``out``."""
    _check_vectors(k, p, s, a, out)
    return _step(k.step, p, s, a, out)


@jit
def step_jac(k, p, s, a, out, J_s, J_a, dr_ds, dr_da):
    """:func:`step` plus the step's Jacobians and reward derivatives."""
    _check_vectors(k, p, s, a, out)
    n, m = k.state_dim, k.action_dim
    if J_s.shape != (n, n) or J_a.shape != (n, m) or dr_ds.shape[0] != n or dr_da.shape[0] != m:
        raise ValueError("dispatch.step_jac: J_s, J_a, dr_ds or dr_da does not have the task's size")
    return _step_jac(k.step_jac, p, s, a, out, J_s, J_a, dr_ds, dr_da)


@jit
def step_batch(k, p, S, A, out, R, T):
    for b in range(S.shape[0]):
        R[b], T[b] = step(k, p, S[b], A[b], out[b])


@jit
def step_jac_batch(k, p, S, A, out, R, T, J_s, J_a, dr_ds, dr_da):
    for b in range(S.shape[0]):
        R[b], T[b] = step_jac(k, p, S[b], A[b], out[b], J_s[b], J_a[b], dr_ds[b], dr_da[b])
