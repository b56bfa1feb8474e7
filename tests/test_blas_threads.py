"""The ``simcomp`` command runs BLAS on one thread unless the user chose a number."""

import os
import subprocess
import sys

import pytest

PROBE = ("import os, sys; import simcomp.cli; import numpy; "
         "print(os.environ.get('OPENBLAS_NUM_THREADS'), os.environ.get('MKL_NUM_THREADS'), "
         "'numpy' in sys.modules)")


def probe(env_update: dict) -> list[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(env_update)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    return out.stdout.split()


def test_one_blas_thread_by_default():
    assert probe({}) == ["1", "1", "True"]


@pytest.mark.parametrize("value", ["2", "4"])
def test_the_users_setting_wins(value):
    assert probe({"OPENBLAS_NUM_THREADS": value, "MKL_NUM_THREADS": value}) == [value, value,
                                                                                 "True"]


def test_set_before_numpy_is_imported():
    # BLAS reads the variable when NumPy loads it: the setting's module must be
    # done before the first NumPy module is imported (-X importtime lists
    # modules in the order their import completes, a package after its parts).
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import simcomp.cli"],
                         capture_output=True, text=True, timeout=120, check=True)
    names = [line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines()
             if line.startswith("import time:")]
    first_numpy = min(i for i, name in enumerate(names) if name.split(".")[0] == "numpy")
    assert names.index("simcomp._blas_threads") < first_numpy
