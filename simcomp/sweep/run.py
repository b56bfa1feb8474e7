"""Running a planned sweep into its directory: skip what is recorded, run the rest, tabulate."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..outputs import provenance
from .execute import (
    CONNECT_TIMEOUT,
    SweepRunError,
    _connect,
    _execute_dask,
    _execute_pool,
    _execute_serial,
    _import_distributed,
    check_connect_timeout,
    default_batch_size,
)
from .grid import SweepError
from .plan import SweepPlan, SweepRun
from .store import FORMAT_VERSION, Store, results_text
from .warm import compiled_once

__all__ = ["SweepResult", "run_sweep"]


@dataclass
class SweepResult:
    """What :func:`run_sweep` did: counts, the rows in plan order, the files written."""

    plan: SweepPlan
    out: Path
    total: int
    done_before: int
    ran: int
    seconds: float
    rows: list = field(default_factory=list)  # full CSV rows (dicts), plan order, when complete
    results_path: Path | None = None
    sweep_json_path: Path | None = None
    executor: str = ""
    workers: int = 1
    batch_size: int = 1

    @property
    def not_ok(self) -> int:
        return sum(1 for row in self.rows if row.get("status") != "ok")


def run_sweep(
    plan: SweepPlan,
    out: str | Path,
    *,
    workers: int | None = None,
    scheduler: Any = None,
    batch_size: int | None = None,
    force: bool = False,
    executor: str = "processes",
    progress: Callable[[int], None] | None = None,
    log: Callable[[str], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> SweepResult:
    """Run the missing runs of ``plan`` into ``out`` and write results.csv once all are recorded.

    Parameters
    ----------
    plan : SweepPlan
        From :func:`plan_sweep`.
    out : path
        The sweep directory; an existing one must hold the same sweep
        (else :class:`OutputError`) unless ``force``, which deletes its runs.
    workers : int, optional
        Parallel workers (default ``os.cpu_count()``); with more than one,
        each run uses one numba thread (``train.threads = 1``).
    scheduler : str or distributed.Client, optional
        A dask scheduler address, ``"local"`` for a LocalCluster of
        ``workers`` single-threaded processes, or a connected Client.
    batch_size : int, optional
        Runs per dispatched batch (default: :func:`default_batch_size`).
    executor : {"processes", "threads"}
        The local pool when ``workers > 1`` and no scheduler is given.
    progress : callable, optional
        Called with the number of runs just recorded, after each batch.
    log : callable, optional
        Receives one-line status messages (resume counts).
    on_start : callable, optional
        Called with (runs already recorded, runs to do) before running.
    connect_timeout : float
        Seconds to reach a scheduler given by address and complete its
        handshake (default 30).

    Raises
    ------
    KeyboardInterrupt
        Passed on after the in-flight runs are abandoned; every recorded run
        stays, and sweep.json says how many.
    """
    start = time.perf_counter()
    if executor not in ("processes", "threads"):
        raise SweepError(f"executor must be 'processes' or 'threads', got {executor!r}")
    workers = (os.cpu_count() or 1) if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise SweepError(f"--workers must be a positive integer, got {workers!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size < 1):
        raise SweepError(f"--batch-size must be a positive integer, got {batch_size!r}")
    if not (scheduler is None or isinstance(scheduler, str) or hasattr(scheduler, "submit")):
        raise SweepError(f"scheduler must be a dask scheduler address (tcp://HOST:PORT), 'local' "
                         f"or a distributed.Client, got {scheduler!r} "
                         f"({type(scheduler).__name__})")
    connect_timeout = check_connect_timeout(connect_timeout)
    _preflight(plan, workers, batch_size, scheduler, executor)  # before any connection or file
    own_client = False
    scheduler_text = _scheduler_text(scheduler)
    if scheduler is not None:
        _import_distributed()  # fail before touching the directory
        if isinstance(scheduler, str) and scheduler != "local":
            scheduler, own_client = _connect(scheduler, connect_timeout), True

    try:
        store = Store.open(out, plan, force)
    except BaseException:
        if own_client:
            scheduler.close()
        raise
    try:
        records: dict[str, dict[str, Any]] = {}  # run id -> recorded row
        for run in plan.runs:
            record = store.load(run, log)
            if record is not None:
                records[run.run_id] = record["row"]
        pending = [run for run in plan.runs if run.run_id not in records]
        done_before = len(plan.runs) - len(pending)
        if scheduler is not None:
            kind = "dask"
        elif workers == 1 or len(pending) <= 1:
            kind = "serial"
        else:
            kind = executor
        if batch_size is None:
            batch_size = default_batch_size(pending, workers)
        batches = [pending[i:i + batch_size] for i in range(0, len(pending), batch_size)]
        if kind in ("threads", "processes") or scheduler == "local":
            workers = max(1, min(workers, len(batches)))  # no idle worker processes
        if kind != "serial":
            # Parallelism is across runs: one numba thread per run.
            batches = [[_single_threaded(run) for run in batch] for batch in batches]

        def counts(complete: bool) -> dict[str, Any]:
            return {
                "grid_points": len(plan.points),
                "seeds": plan.seeds,
                "runs": len(plan.runs),
                "done": len(records),
                "done_before": done_before,
                "ran": len(records) - done_before,
                "complete": complete,
            }

        def sweep_json(complete: bool) -> dict[str, Any]:
            out_obj = {"format": FORMAT_VERSION, "definition": plan.definition(),
                       "columns": plan.columns, "counts": counts(complete)}
            out_obj["execution"] = {"executor": kind, "workers": workers, "batch_size": batch_size,
                                    "scheduler": scheduler_text}
            out_obj["provenance"] = provenance()
            return out_obj

        if pending:
            store.remove_results()  # results.csv exists only for a complete sweep
        store.write_sweep_json(sweep_json(complete=not pending))
        if log is not None:
            if done_before and pending:
                log(f"{done_before}/{len(plan.runs)} runs already done, running {len(pending)}")
            elif not pending:
                log(f"all {len(plan.runs)} runs already done; rebuilding results.csv")
            else:
                log(f"running {len(plan.runs)} runs ({len(plan.points)} grid "
                    f"point{'s' * (len(plan.points) != 1)} x {plan.seeds} "
                    f"seed{'s' * (plan.seeds != 1)}), {kind}"
                    + ("" if kind == "serial" else f", {workers} workers")
                    + f", batches of {batch_size}")
        def on_done(batch: list[SweepRun], rows: list[dict[str, Any]]) -> None:
            if len(rows) != len(batch):
                raise SweepRunError(f"run_batch returned {len(rows)} rows for {len(batch)} runs")
            for run, row in zip(batch, rows):
                records[run.run_id] = store.write(run, row)["row"]
            if progress is not None:
                progress(len(batch))

        # Worker processes on this machine would each compile on a cold cache: compiled once
        # here instead, announced once (a remote cluster compiles on its own machines).
        local_workers = kind == "processes" or (kind == "dask" and scheduler == "local")
        try:
            with compiled_once([run.cfg for batch in batches for run in batch]
                               if local_workers else []):
                if on_start is not None:
                    on_start(done_before, len(pending))
                if not batches:
                    pass
                elif kind == "serial":
                    _execute_serial(batches, on_done)
                elif kind == "dask":
                    owned, own_client = own_client, False  # _execute_dask closes it
                    _execute_dask(batches, scheduler, workers, on_done, owned)
                else:
                    _execute_pool(batches, workers, kind, on_done)
        except BaseException:
            store.write_sweep_json(sweep_json(complete=False))
            raise

        store.write_results(results_text(plan, records))
        store.write_sweep_json(sweep_json(complete=True))
    finally:
        store.close()
        if own_client:  # connected, but nothing was left to run on it
            scheduler.close()
    rows = []
    for run in plan.runs:
        row = dict(run.point)
        row.update({"repeat": run.repeat, "seed": run.seed})
        row.update({col: records[run.run_id].get(col) for col in plan.result_columns})
        rows.append(row)
    return SweepResult(
        plan=plan, out=Path(out), total=len(plan.runs), done_before=done_before,
        ran=len(plan.runs) - done_before, seconds=time.perf_counter() - start,
        rows=rows, results_path=Path(out) / Store.RESULTS,
        sweep_json_path=Path(out) / Store.SWEEP_JSON, executor=kind, workers=workers,
        batch_size=batch_size,
    )


def _preflight(plan: SweepPlan, workers: int, batch_size: int | None, scheduler: Any,
               executor: str) -> None:
    """The memory pre-flight of a sweep (:func:`simcomp.preflight.check_sweep`), up front.

    Runs executed here (a local pool, the calling process, a LocalCluster) are
    checked against this machine's limit: one run of every grid point, and
    as many runs at once as the workers hold in their batches.  Runs sent to
    a scheduler elsewhere are left to that cluster's machines; only the
    planning is checked then.
    """
    from ..preflight import SIZE_HINT, check_sweep

    local = scheduler is None or scheduler == "local"
    size = batch_size if batch_size is not None else default_batch_size(plan.runs, workers)
    size = max(1, min(size, len(plan.runs)))  # a batch holds at most every run
    parallel = max(1, min(workers, math.ceil(len(plan.runs) / size)))
    serial = scheduler is None and parallel == 1
    processes = parallel if scheduler == "local" or (
        scheduler is None and executor == "processes" and not serial) else 0
    points = ((", ".join(f"{k}={v!r}" for k, v in run.point) or "(the base config)", run.cfg)
              for run in (plan.runs[::max(plan.seeds, 1)] if local else []))
    check_sweep(points, len(plan.runs), concurrent=(1 if serial else parallel) * size,
                processes=processes, hint=SIZE_HINT)


def _scheduler_text(scheduler: Any) -> str | None:
    if scheduler is None or isinstance(scheduler, str):
        return scheduler
    return getattr(getattr(scheduler, "scheduler", None), "address", None) or repr(scheduler)


def _single_threaded(run: SweepRun) -> SweepRun:
    if run.cfg.train.threads == 1:
        return run
    return SweepRun(index=run.index, point=run.point, repeat=run.repeat, seed=run.seed,
                    cfg=run.cfg.replace(**{"train.threads": 1}), run_id=run.run_id)
