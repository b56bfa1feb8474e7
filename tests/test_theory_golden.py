"""The reduced dynamics and the noisy race are unchanged bit for bit.

``tests/data/theory_golden.npz`` was recorded by ``tests/theory_golden_gen.py``
from the single-module theory before it was split into a package; the
compiled loop and its NumPy reference must still give exactly those arrays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from theory_golden_gen import cases, record

GOLDEN = Path(__file__).parent / "data" / "theory_golden.npz"


@pytest.fixture(scope="module")
def now():
    return record()


def test_golden_covers_every_case(now):
    stored = np.load(GOLDEN)
    assert sorted(stored.files) == sorted(now)
    assert len(cases()) == 6


@pytest.mark.parametrize("key", sorted(np.load(GOLDEN).files))
def test_theory_output_bit_identical(now, key):
    stored = np.load(GOLDEN)[key]
    got = now[key]
    assert got.dtype == stored.dtype and got.shape == stored.shape
    assert np.array_equal(got, stored, equal_nan=True)
    # equal_nan aside, equal arrays of floats are equal bit for bit unless -0.0 vs 0.0
    assert got.tobytes() == stored.tobytes()
