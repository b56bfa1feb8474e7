"""The reduced dynamics and the noisy race reproduce their recorded outputs.

``tests/data/theory_golden.npz`` was recorded by ``tests/theory_golden_gen.py``
from the single-module theory before it was split into a package, with the
signature of the machine's compiled code; the compiled loop and its NumPy
reference must still give exactly those arrays on a machine of that
signature (bit for bit, -0.0 against 0.0 included), and within the
tolerance of tests/reference_files.py on any other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reference_files import assert_reproduces, same_machine, split
from theory_golden_gen import cases, record

GOLDEN = Path(__file__).parent / "data" / "theory_golden.npz"
pytestmark = pytest.mark.reference  # CI runs these under another code generation too


def _stored():
    with np.load(GOLDEN) as stored:
        return split(stored)


STORED, SIGNATURE = _stored()


@pytest.fixture(scope="module")
def now():
    return record()


def test_golden_covers_every_case(now):
    assert SIGNATURE  # the file says where it was written
    assert sorted(STORED) == sorted(now)
    assert len(cases()) == 6


@pytest.mark.parametrize("key", sorted(STORED))
def test_theory_output_reproduced(now, key):
    stored, got = STORED[key], now[key]
    exact = same_machine(SIGNATURE)
    assert_reproduces(got, stored, exact, key)
    if exact:  # equal arrays of floats are equal bit for bit unless -0.0 vs 0.0
        assert got.tobytes() == stored.tobytes()
