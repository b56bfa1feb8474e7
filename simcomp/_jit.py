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
"""

import numba

__all__ = ["jit", "jit_parallel"]

_OPTIONS = dict(cache=True, error_model="numpy", nogil=True)


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
    return numba.njit(**_OPTIONS, **kw)


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
    return numba.njit(parallel=True, **_OPTIONS, **kw)
