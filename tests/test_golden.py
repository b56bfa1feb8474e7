"""Plain training is bit-identical to the recorded golden traces.

The files in tests/golden/ were written by tests/golden/make_golden.py from
the code before the kernels were reorganised and given a training rule;
every trace array, learned step, final weight and status must be reproduced
exactly (np.array_equal, not a tolerance).
"""

from pathlib import Path

import numpy as np
import pytest

from golden.make_golden import all_cases

HERE = Path(__file__).resolve().parent / "golden"
CASES = all_cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_trace_bit_identical(name):
    fn, args = CASES[name]
    got = fn(*args)
    with np.load(HERE / f"{name}.npz") as stored:
        want = {key: stored[key] for key in stored.files}
    assert sorted(got) == sorted(want)
    for key in want:
        assert got[key].dtype == want[key].dtype, key
        assert np.array_equal(got[key], want[key]), key
