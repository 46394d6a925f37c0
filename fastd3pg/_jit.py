"""The two decorators every compiled kernel of the package uses: :func:`jit`, and :func:`unit`
for a kernel that is compiled on its own and called through its entry point.

``jit`` is ``numba.njit(cache=True)`` with two differences. The on-disk cache lives in a
directory keyed by a hash of the package's own source. Numba's cache checks only the source
file of the function it loads, not the files of the kernels that function calls and inlines,
so after an edit to, say, a simulator, a cached training loop would silently keep the old
physics. Keying the directory on the whole package's source makes every edit (and every
version) compile afresh, and never reuse stale machine code. And division follows NumPy's
error model: a float divided by zero is ±inf or NaN, as IEEE 754 says, where Python's model
raises ``ZeroDivisionError``. Python's model tests every divisor, and that branch keeps LLVM
from vectorizing any loop that divides (Adam's update ran at half speed); every quotient that
is not a division by zero is the same under both models.

``NUMBA_CACHE_DIR``, if the user sets it, is honoured as the root of that directory.

Compile target. Numba compiles for the host processor by default, and the kernels use fastmath
``contract``/``reassoc``: with AVX-512 a reduction is split over 8 lanes, with AVX2 over 4, so the
same run gives different bits on different processors, and chaotic training turns one ulp into
a different learning curve. On x86-64 the package therefore pins the target to ``x86-64-v3``
(AVX2 + FMA, which nearly every x86 processor of the last ten years has), when the host supports
it. Then a run's numbers are the same on every such machine, given the same versions of this
package, Numba/llvmlite and the C math library. ``FASTD3PG_CPU=host`` keeps Numba's own choice
(the host's full instruction set), and a ``NUMBA_CPU_NAME`` set by the user always wins. The
target is a process-wide Numba setting: it is applied when this module is imported, before any
kernel is compiled, and only if no Numba function was compiled before (otherwise the host's
target stays, and :func:`compile_target` says so). ``config.json`` records :func:`compile_target`.

Processes sharing the cache. Numba's cache is not safe for two processes saving signatures of
one function at the same moment (see :func:`_locked_saves`): here every save holds a lock on
its index. A unit is compiled under a lock of its own, so processes that start together
compile each unit once (the others wait for it, then load it); :func:`compile_ahead` builds on
that to compile a cold run's units in several processes at once
(:mod:`fastd3pg.control.parallel_compile`).
"""

import functools
import hashlib
import importlib
import os
import platform
import types as types_module
import time
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: no locks between processes (and no parallel compiling)
    fcntl = None

import llvmlite.binding as llvm_binding
import numba
from numba import types
from numba.core import cgutils
from numba.core import compiler as _numba_compiler
from numba.core import config as _numba_config
from numba.core.typing.templates import AbstractTemplate, infer_global, signature
from numba.extending import lower_builtin

_PACKAGE_DIR = Path(__file__).resolve().parent
_cache_dir: str | None = None

PORTABLE_CPU = "x86-64-v3"
# What x86-64-v3 code needs of the processor (x86-64-v2's features, then AVX, AVX2, BMI1/2,
# F16C, FMA, LZCNT, MOVBE, XSAVE), in LLVM's feature names.
_PORTABLE_FEATURES = ("cx16", "popcnt", "sahf", "sse3", "sse4.1", "sse4.2", "ssse3", "avx",
                      "avx2", "bmi", "bmi2", "f16c", "fma", "lzcnt", "movbe", "xsave")


def _choose_target() -> str:
    """Pin Numba's compile target (see the module docstring); returns why it is what it is."""
    if os.environ.get("NUMBA_CPU_NAME"):
        return "NUMBA_CPU_NAME"
    if os.environ.get("FASTD3PG_CPU", "").lower() == "host":
        return "FASTD3PG_CPU=host"
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return "host (not x86-64)"
    from numba.core.registry import cpu_target

    if "_toplevel_target_context" in vars(cpu_target):
        return "host (Numba compiled code before fastd3pg was imported)"
    import llvmlite.binding as ll

    features = ll.get_host_cpu_features()
    if not all(features.get(f, False) for f in _PORTABLE_FEATURES):
        return "host (the processor lacks part of x86-64-v3)"
    _numba_config.CPU_NAME = PORTABLE_CPU
    _numba_config.CPU_FEATURES = ""  # only what the target name implies
    return "portable"


_TARGET_REASON = _choose_target()


def _processor() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def compile_target() -> dict:
    """The target the kernels are compiled for, why, and the processor running them."""
    import llvmlite.binding as ll

    cpu = _numba_config.CPU_NAME or ll.get_host_cpu_name()
    return {"cpu_name": cpu, "reason": _TARGET_REASON, "processor": _processor(),
            "numba": numba.__version__}


def _source_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE_DIR.rglob("*.py")):
        digest.update(str(path.relative_to(_PACKAGE_DIR)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_dir() -> str:
    """Directory holding this source tree's compiled kernels."""
    global _cache_dir
    if _cache_dir is None:
        root = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"),
            "fastd3pg",
        )
        _cache_dir = os.path.join(root, "numba-" + _source_hash())
        try:
            os.makedirs(_cache_dir, exist_ok=True)
        except OSError:
            # Unwritable home: Numba then falls back to its own locations (next to the source).
            pass
    return _cache_dir


@contextmanager
def _numba_cache_dir(path: str):
    saved = _numba_config.CACHE_DIR
    _numba_config.CACHE_DIR = path
    try:
        yield
    finally:
        _numba_config.CACHE_DIR = saved


_held: dict = {}  # lock path -> [open file, depth] of the locks this process holds
LOCK_WAIT_S = 600.0  # longest wait for another process's lock; then go on without it


@contextmanager
def file_lock(path: str, blocking: bool = True):
    """An exclusive lock on the file ``path`` (created if missing), between processes
    (``flock``), re-entrant within one; yields whether it is held. Not blocking, it yields
    False at once when another process holds it. Blocking, it waits at most ``LOCK_WAIT_S``
    (a process holding a lock releases it when it exits, however it exits). Where locks
    are unavailable (no ``fcntl``, an unwritable directory) it yields False."""
    if path in _held:
        _held[path][1] += 1
        try:
            yield True
        finally:
            _held[path][1] -= 1
        return
    try:
        f = None if fcntl is None else open(path, "a")
    except OSError:
        f = None
    if f is None:
        yield False
        return
    with f:
        held, deadline = False, time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
                break
            except BlockingIOError:
                if not blocking or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
        if not held:
            yield False
            return
        _held[path] = [f, 1]
        try:
            yield True
        finally:
            del _held[path]
            fcntl.flock(f, fcntl.LOCK_UN)


def _locked_saves(dispatcher):
    """Make the dispatcher's cache saves hold a lock on its index. Numba's save reads the
    index, picks the first unused data-file number and writes both, so two processes saving
    different signatures of one function at once could both take the same number and leave
    the index naming the other's machine code."""
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    if cache_file is None or not hasattr(cache_file, "_index_path"):
        return
    save = cache_file.save

    def locked_save(key, data):
        with file_lock(cache_file._index_path + ".lock"):
            save(key, data)

    cache_file.save = locked_save


def jit(fn=None, **options):
    """``numba.njit(cache=True, error_model="numpy", **options)``, cached under
    :func:`cache_dir`, without the C callable wrapper that Numba otherwise compiles for every
    function (nothing in the package takes a kernel's C address: the tasks' kernels are called
    with Numba's own convention). Processes sharing the cache save to it one at a time
    (:func:`_locked_saves`)."""

    options.setdefault("error_model", "numpy")

    def wrap(f):
        with _numba_cache_dir(cache_dir()):
            dispatcher = numba.njit(cache=True, no_cfunc_wrapper=True, **options)(f)
        _locked_saves(dispatcher)
        return dispatcher

    return wrap if fn is None else wrap(fn)


def unit(fn=None, **options):
    """:func:`jit`, compiled as a unit of its own: compiled code calls it through its entry
    point instead of compiling (inlining) it into every caller.

    Why. Numba links a callee's code into each caller and optimizes and emits it again there,
    so a kernel deep in a training update was compiled once for every level above it, and once
    more for every combination of constant arguments it was called with. A unit is compiled
    once per (non-literal) argument types, and its callers only call it: a real call, tens of
    nanoseconds, nothing against a kernel that works on a minibatch. Hot inner loops stay
    plain :func:`jit` functions, inlined into the unit that runs them.

    How. The entry point is bound to a symbol named after the unit and its argument types
    when the unit is compiled or loaded from the cache, which happens first whenever a caller
    is compiled or loaded, so callers keep their own on-disk cache. Compiled code passes a
    unit's arguments by position; a unit must be defined at module level. Called from Python,
    a unit is its ``dispatcher``.
    """

    def wrap(f):
        if "<locals>" in f.__qualname__:
            raise TypeError(f"unit: {f.__qualname__} must be defined at module level (its cached "
                            "callers find it by name)")
        dispatcher = jit(f, **options)
        # What compiled callers call: the same function compiled without the wrapper that
        # converts Python arguments (for NamedTuples of arrays, much of a small kernel's code),
        # under a name of its own so that the two never share cache entries.
        alone = types_module.FunctionType(f.__code__, f.__globals__, f.__name__, f.__defaults__,
                                          f.__closure__)
        alone.__qualname__ = f.__qualname__ + "__unit"
        alone.__module__ = f.__module__
        compiled = jit(alone, no_cpython_wrapper=True, **options)

        @functools.wraps(f)
        def call(*args, **kwargs):
            return dispatcher(*args, **kwargs)

        call.dispatcher = dispatcher
        call.compiled = compiled

        name = (f.__module__, f.__qualname__)
        call.unit_name = name

        class CallTemplate(AbstractTemplate):
            key = call

            def generic(self, args, kws):
                if kws:
                    raise TypeError(f"{f.__qualname__}: compiled code passes a unit's "
                                    "arguments by position")
                argtys = tuple(types.unliteral(t) for t in args)
                return signature(_entry(*name, argtys)[1], *argtys)

        infer_global(call, types.Function(CallTemplate))

        @lower_builtin(call, types.VarArg(types.Any))
        def lower_call(context, builder, sig, args):
            symbol, restype = _entry(*name, sig.args)
            fnty = context.call_conv.get_function_type(restype, sig.args)
            fn = cgutils.get_or_insert_function(builder.module, fnty, symbol)
            status, result = context.call_conv.call_function(builder, fn, restype, sig.args, args)
            with cgutils.if_unlikely(builder, status.is_error):
                context.call_conv.return_status_propagate(builder, status)
            # A caller loaded from the cache binds the symbol again before its code is loaded.
            context.active_code_library._reload_init.add(
                functools.partial(_entry, *name, sig.args))
            return result

        return call

    return wrap if fn is None else wrap(fn)


def _symbol(module: str, qualname: str, argtys: tuple) -> str:
    key = f"{module}.{qualname}{argtys}".encode()
    return "fastd3pg.unit." + hashlib.sha256(key).hexdigest()[:24]


def _unit_lock(symbol: str, blocking: bool = True):
    """The lock a process holds while it compiles the unit ``symbol`` names, so that
    processes sharing the cache compile each unit once: the others wait, then load it."""
    locks = os.path.join(cache_dir(), "locks")
    try:
        os.makedirs(locks, exist_ok=True)
    except OSError:
        pass
    return file_lock(os.path.join(locks, symbol), blocking)


@functools.cache
def _entry(module: str, qualname: str, argtys: tuple):
    """The unit ``module.qualname`` compiled (or loaded) for ``argtys``, its entry point bound
    to a symbol named after them; the symbol and the return type."""
    dispatcher = getattr(importlib.import_module(module), qualname).compiled
    symbol = _symbol(module, qualname, argtys)
    with _numba_cache_dir(cache_dir()), _unit_lock(symbol):
        dispatcher.compile(argtys)
    compiled = dispatcher.overloads[argtys]
    address = compiled.library.get_pointer_to_function(compiled.fndesc.llvm_func_name)
    llvm_binding.add_symbol(symbol, address)
    _entry_keys.add((module, qualname, argtys))
    return symbol, compiled.signature.return_type


_entry_keys: set = set()


def unit_key(call, args) -> tuple:
    """``(module, qualname, argument types)``: what compiled code calling the unit ``call``
    with ``args`` (Python values of the types it passes) needs compiled."""
    argtys = tuple(types.unliteral(numba.typeof(a)) for a in args)
    return (*call.unit_name, argtys)


def bound_units() -> set:
    """The :func:`unit_key` of every unit this process has compiled or loaded for compiled
    callers."""
    return set(_entry_keys)


def compile_ahead(plan, backwards: bool = False) -> int:
    """Compile, for compiled callers, each unit of ``plan`` (``[(unit, args)]``) that no
    other process sharing the cache is compiling, from the last entry back if ``backwards``;
    returns how many it compiled or loaded. Units another process holds are skipped: a caller
    that needs them waits for that process and loads them from the cache."""
    done = 0
    for call, args in (reversed(plan) if backwards else plan):
        module, qualname, argtys = unit_key(call, args)
        with _unit_lock(_symbol(module, qualname, argtys), blocking=False) as free:
            if free:
                _entry(module, qualname, argtys)
                done += 1
    return done


def _keep_reload_hooks(rebuild):
    """Numba forgets, for a function loaded from its cache, what must run before code linked
    from it is loaded (``reload_init``), so a caller compiled later would not record it."""

    def rebuild_keeping_hooks(cls, target_context, *payload):
        result = rebuild.__func__(cls, target_context, *payload)
        result.library._reload_init.update(result.reload_init or ())
        return result

    return classmethod(rebuild_keeping_hooks)


_numba_compiler.CompileResult._rebuild = _keep_reload_hooks(_numba_compiler.CompileResult._rebuild)
