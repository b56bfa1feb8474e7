"""Sweeps: grids of configs times seeds, run in parallel, recorded run by run, resumable.

The Python API of sweeps is the function :func:`simcomp.api.sweep`, which is
also ``simcomp.sweep`` (the rows of results.csv as dicts); this package is
the machinery behind it and the command line, and never imports the API.
Its names are imported from it: ``from simcomp.sweep import plan_sweep``.

A sweep is a base config, a list of grid axes (``KEY=START:STOP:NUM`` or
``KEY=V1,V2,...``) and a number of seeds.  The cartesian product of the axes
gives the grid points; each point is run ``seeds`` times (repeats
``0..seeds-1``), every run with its own seed derived from the base seed, the
point's content and the repeat (:func:`derive_seed`).

Every configuration is built and validated before anything runs, so a bad
grid value stops the sweep at once with a message naming its key.

Each finished run is written as its own record ``DIR/runs/<run_id>.json``
(temporary file, then rename), ``run_id`` being a hash of the run's config.
Rerunning the same command skips the recorded runs; ``DIR/results.csv`` is
rebuilt from the records once every run is recorded, in plan order (grid
point, then repeat), so it does not depend on which invocation ran which run.

Execution: :func:`run_batch` is the single point where runs are trained;
batches of configs go to a local process pool (default), a thread pool, the
calling process (one worker) or a Dask cluster.  The format of the outputs
is documented in ``docs/sweeps.md``; the result columns are those of
:mod:`simcomp.columns`.

Modules, in import order: :mod:`.grid` (axes), :mod:`.plan` (seeds, ids, the
run plan), :mod:`.store` (the directory, records, results.csv),
:mod:`.execute` (the batch function and executors), :mod:`.warm` (compiling
once before the workers start), :mod:`.run`
(:func:`run_sweep`), :mod:`.report` (the printed table).  The command line
lives in :mod:`simcomp.cli`.
"""

from __future__ import annotations

from ..columns import result_columns, result_row
from .execute import CONNECT_TIMEOUT, SweepRunError, default_batch_size, run_batch
from .grid import GridAxis, SweepError, expand_grid, parse_grid
from .plan import (
    MAX_RUNS,
    SEED_RULE,
    SweepPlan,
    SweepRun,
    csv_columns,
    derive_seed,
    plan_sweep,
    run_id,
)
from .report import sweep_report
from .run import SweepResult, run_sweep
from .store import FORMAT_VERSION, read_results, record_checksum

__all__ = [
    "SweepError",
    "SweepRunError",
    "GridAxis",
    "SweepRun",
    "SweepPlan",
    "SweepResult",
    "SEED_RULE",
    "MAX_RUNS",
    "CONNECT_TIMEOUT",
    "FORMAT_VERSION",
    "parse_grid",
    "expand_grid",
    "derive_seed",
    "run_id",
    "plan_sweep",
    "result_columns",
    "csv_columns",
    "result_row",
    "record_checksum",
    "run_batch",
    "default_batch_size",
    "run_sweep",
    "read_results",
    "sweep_report",
]
