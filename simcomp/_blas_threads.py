"""One BLAS thread for the ``simcomp`` command, unless the user sets otherwise.

Imported by ``simcomp.cli`` before anything imports NumPy (BLAS reads these
variables once, when it is loaded). simcomp's heavy arithmetic runs in its
own compiled kernels on numba's thread pool; what reaches BLAS are small
products (the theory, test errors) that are faster on one thread and, on a
busy machine, up to 100x slower on several (docs/performance.md). One
thread also keeps their results independent of the number of cores.
From Python, NumPy is usually imported before simcomp: the user's BLAS
settings are left as they are.
"""

import os

for _variable in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
