"""The one decorator every compiled kernel of the package uses.

``jit`` is ``numba.njit(cache=True)`` with one difference: the on-disk cache lives in a
directory keyed by a hash of the package's own source. Numba's cache checks only the source
file of the function it loads, not the files of the kernels that function calls and inlines,
so after an edit to, say, a simulator, a cached training loop would silently keep the old
physics. Keying the directory on the whole package's source makes every edit (and every
version) compile afresh, and never reuse stale machine code.

``NUMBA_CACHE_DIR``, if the user sets it, is honoured as the root of that directory.
"""

import hashlib
import os
from contextlib import contextmanager
from pathlib import Path

import numba
from numba.core import config as _numba_config

_PACKAGE_DIR = Path(__file__).resolve().parent
_cache_dir: str | None = None


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


def jit(fn=None, **options):
    """``numba.njit(cache=True, **options)``, cached under :func:`cache_dir`."""

    def wrap(f):
        with _numba_cache_dir(cache_dir()):
            return numba.njit(cache=True, **options)(f)

    return wrap if fn is None else wrap(fn)
