"""Stored reference arrays and the machine they were computed on.

The compiled kernels are built by numba for the processor it targets
(``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` when set, else the host's):
vector width, the instructions chosen for ``llvm.fma`` and the math library
follow it, and with them the last bits of a result.  NumPy dispatches its
own vectorised loops by the processor and its version.  So a reference file
records the *signature* it was written with -- numba's target CPU name and
feature string, and the NumPy, numba and llvmlite versions -- and a test
compares

* bit for bit where the signature is the one of this process (the file is
  then what this machine computes: any difference is a change of the code);
* within a tight relative tolerance elsewhere (a different rounding of the
  same computation: see :data:`RTOL_FLOAT64`, :data:`RTOL_FLOAT32`).

Integer arrays (learned steps, steps run, status codes) are compared exactly
everywhere: a rounding difference may only move one if a value sits within
the tolerance of a threshold, which the stored cases avoid.
"""

from __future__ import annotations

import numpy as np

# The signature's keys inside a reference .npz file (not reference arrays themselves).
SIGNATURE_KEYS = ("_cpu/name", "_cpu/features", "_cpu/versions")

# Float64 traces of a few dozen GD steps (and the theory's recursions): a different
# rounding of each operation (about 1e-16 relative) grows by at most a few orders of
# magnitude over these short, non-chaotic runs; 1e-12 leaves room and still catches any
# change of the computation (a changed formula moves values far more).
RTOL_FLOAT64 = 1e-12
# Float32 runs round every operation to about 6e-8; over 40 steps that can grow to a few
# 1e-6, so 1e-5 (still far below any change of the computation).
RTOL_FLOAT32 = 1e-5


def cpu_signature() -> dict[str, str]:
    """The signature of the code this process compiles and runs (see the module docstring)."""
    import llvmlite
    import llvmlite.binding as ll
    import numba
    from numba.core import config
    from numba.core.codegen import get_host_cpu_features

    name = config.CPU_NAME if config.CPU_NAME is not None else ll.get_host_cpu_name()
    features = (config.CPU_FEATURES if config.CPU_FEATURES is not None
                else get_host_cpu_features())
    versions = f"numpy {np.__version__}, numba {numba.__version__}, llvmlite {llvmlite.__version__}"
    return {"_cpu/name": str(name), "_cpu/features": str(features), "_cpu/versions": versions}


def signature_arrays() -> dict[str, np.ndarray]:
    """The signature as arrays, to be saved beside the reference arrays."""
    return {key: np.array(value) for key, value in cpu_signature().items()}


def split(stored) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(reference arrays, signature) of a loaded .npz (an empty signature if it has none)."""
    arrays = {key: stored[key] for key in stored.files if key not in SIGNATURE_KEYS}
    signature = {key: str(stored[key]) for key in stored.files if key in SIGNATURE_KEYS}
    return arrays, signature


def same_machine(signature: dict[str, str]) -> bool:
    """Whether a file with ``signature`` was written by code compiled as this process's is."""
    return signature == cpu_signature()


def assert_reproduces(got: np.ndarray, want: np.ndarray, exact: bool, what: str = "") -> None:
    """``got`` equals the stored ``want``: bit for bit if ``exact``, else within the tolerance
    of its dtype (relative to the array's largest magnitude, so that entries near zero are
    held to the same absolute accuracy as the rest); NaN where NaN."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, what
    if exact or want.dtype.kind not in "fc":
        assert np.array_equal(got, want, equal_nan=want.dtype.kind in "fc"), what
        return
    rtol = RTOL_FLOAT32 if want.dtype == np.float32 else RTOL_FLOAT64
    finite = np.isfinite(want)
    assert np.array_equal(np.isfinite(got), finite), what
    assert np.array_equal(got[~finite], want[~finite], equal_nan=True), what  # inf, nan alike
    if finite.any():
        scale = float(np.max(np.abs(want[finite])))
        np.testing.assert_allclose(got[finite], want[finite], rtol=rtol, atol=rtol * scale,
                                   err_msg=what)
