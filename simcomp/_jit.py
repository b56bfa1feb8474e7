"""The one place where numba compilation options are chosen.

Every compiled kernel in simcomp is decorated through :func:`jit` or
:func:`jit_parallel`, so that the options below hold everywhere and can be
reviewed in one place:

``cache=True``
    Compiled machine code is written next to the sources, so that only the
    first run (and the first run after a change) pays for compilation.
``error_model="numpy"``
    Division by zero gives ``inf``/``nan`` as in NumPy instead of raising.
    This keeps the check for a zero divisor out of the inner loops, and a
    diverging run is reported by the non-finite guard of the training loop
    rather than by an exception from deep inside a kernel.
``nogil=True``
    Kernels release the GIL, so independent runs can share one process on
    several threads.

``fastmath`` is deliberately never enabled: it lets the compiler assume
that no value is ``nan`` or ``inf`` (which would silently remove the
non-finite guards) and reassociate sums (which would make results depend on
the vector width of the machine that compiled them). Where the kernels need
what fastmath would give -- fused multiply-adds, sums kept in vector
registers -- they say so explicitly (the register tiles of
``simcomp.kernels.tile`` are written in LLVM IR with ``llvm.fma``), so the
order and rounding of every operation stay fixed by the source.

Compiled code is specialised on argument types: the public kernels are
Python wrappers that convert scalars to one fixed type each, so that a
Python int where a float is expected does not compile a second version.
The cache of every function is tested in ``tests/test_cache.py`` (a second
process loads it, with identical results).

A cache file that cannot be read (truncated by a full disk or a killed
process: numba's loader raises ``UnpicklingError`` or ``EOFError``) would make
every command fail.  So each kernel's cache is one that, on such a failure,
deletes that kernel's own index and data files (nothing else: only what numba
wrote for this function), says so once on stderr, and compiles again.
"""

import pickle
import sys
from pathlib import Path

import numba
from numba.core.caching import FunctionCache

__all__ = ["jit", "jit_parallel"]

_OPTIONS = dict(cache=True, error_model="numpy", nogil=True)


class _RecoveringCache(FunctionCache):
    """numba's cache of one function, which recovers from its own damaged files (see above)."""

    def load_overload(self, sig, target_context):
        try:
            return super().load_overload(sig, target_context)
        except Exception as exc:  # noqa: BLE001 - any failure to read a damaged file
            self._discard(exc)
            return None

    def save_overload(self, sig, data):
        try:
            super().save_overload(sig, data)
        except (EOFError, pickle.UnpicklingError, ValueError, TypeError) as exc:  # the index
            self._discard(exc)
            super().save_overload(sig, data)

    def _discard(self, exc: BaseException) -> None:
        cache_file = self._cache_file
        index = Path(cache_file._index_path)
        removed = []
        for path in [index] + sorted(index.parent.glob(index.stem + ".*.nbc")):
            try:
                path.unlink()
                removed.append(path)
            except FileNotFoundError:
                pass
            except OSError as err:
                raise OSError(err.errno, f"simcomp's compiled-code cache file is damaged "
                              f"({exc.__class__.__name__}) and cannot be deleted; delete it "
                              f"by hand", str(path)) from None
        if removed:
            print(f"simcomp: note: the compiled-code cache file {str(index)!r} (or its data) was "
                  f"damaged ({exc.__class__.__name__}); deleted it, compiling "
                  f"{getattr(self._py_func, '__name__', 'it')} again", file=sys.stderr)


def _recovering(dispatcher):
    if type(getattr(dispatcher, "_cache", None)) is FunctionCache:
        dispatcher._cache.__class__ = _RecoveringCache
    return dispatcher


def _decorator(options: dict):
    decorate = numba.njit(**options)

    def wrap(func):
        return _recovering(decorate(func))

    return wrap


def jit(**kw):
    """Return a ``numba.njit`` decorator with the project's options.

    Parameters
    ----------
    **kw
        Extra keyword options passed to :func:`numba.njit`.

    Returns
    -------
    callable
        The decorator.
    """
    return _decorator(dict(_OPTIONS, **kw))


def jit_parallel(**kw):
    """Return a ``numba.njit`` decorator with ``parallel=True`` added.

    Parameters
    ----------
    **kw
        Extra keyword options passed to :func:`numba.njit`.

    Returns
    -------
    callable
        The decorator.
    """
    return _decorator(dict(_OPTIONS, parallel=True, **kw))
