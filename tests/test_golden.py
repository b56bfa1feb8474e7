"""Plain training reproduces the recorded golden traces.

The files in tests/golden/ were written by tests/golden/make_golden.py from
the code before the kernels were reorganised and given a training rule,
each with the signature of the machine's compiled code. Every trace array,
learned step, final weight and status must be reproduced bit for bit
(np.array_equal) where this process compiles code of the same signature,
and within the tolerance of tests/reference_files.py on any other processor
(integers exactly everywhere).
"""

from pathlib import Path

import numpy as np
import pytest

from golden.make_golden import all_cases
from reference_files import SIGNATURE_KEYS, assert_reproduces, same_machine, split

HERE = Path(__file__).resolve().parent / "golden"
CASES = all_cases()


# Every test here reads stored reference files: CI runs them under another code generation
# too, the float32 cases included although they are in the slow tier (their first call
# compiles the float32 loops, which nothing else in the default tier needs).
pytestmark = pytest.mark.reference


def _tier(name):
    float32 = "f32" in name or "float32" in name
    return pytest.param(name, marks=[pytest.mark.slow] if float32 else [])


@pytest.mark.parametrize("name", [_tier(name) for name in sorted(CASES)])
def test_golden_trace_reproduced(name):
    fn, args = CASES[name]
    got = fn(*args)
    with np.load(HERE / f"{name}.npz") as stored:
        want, signature = split(stored)
    assert sorted(signature) == sorted(SIGNATURE_KEYS)  # every file says where it was written
    assert sorted(got) == sorted(want)
    exact = same_machine(signature)
    for key in want:
        assert_reproduces(got[key], want[key], exact, key)


def test_comparison_is_exact_on_the_same_machine_and_tight_elsewhere():
    want = np.array([1.0, -2.5, 0.0, np.nan, 3e-300])
    one_ulp = want.copy()
    one_ulp[1] = np.nextafter(-2.5, 0.0)
    with pytest.raises(AssertionError):
        assert_reproduces(one_ulp, want, exact=True)
    assert_reproduces(one_ulp, want, exact=False)  # another processor's rounding
    changed = want.copy()
    changed[0] *= 1 + 1e-9  # a change of the computation, however small
    with pytest.raises(AssertionError):
        assert_reproduces(changed, want, exact=False)
    with pytest.raises(AssertionError):  # NaN only where NaN
        assert_reproduces(np.where(np.isnan(want), 0.0, want), want, exact=False)
    f32 = np.array([1.0, 2.0], np.float32)
    assert_reproduces(f32 * np.float32(1 + 2**-22), f32, exact=False)
    with pytest.raises(AssertionError):
        assert_reproduces(f32 * np.float32(1.001), f32, exact=False)
    with pytest.raises(AssertionError):  # integers exactly, everywhere
        assert_reproduces(np.array([3, 4]), np.array([3, 5]), exact=False)


def test_the_signature_is_numbas_target():
    from numba.core import config

    from reference_files import cpu_signature

    signature = cpu_signature()
    assert signature["_cpu/name"] and "numba" in signature["_cpu/versions"]
    if config.CPU_NAME is not None:  # NUMBA_CPU_NAME set: the files were not written so
        assert signature["_cpu/name"] == config.CPU_NAME
    assert not same_machine({**signature, "_cpu/name": "another-cpu"})
    assert same_machine(signature)
