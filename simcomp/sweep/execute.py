"""Executing the runs of a sweep: one batch function, a local pool, the calling process, Dask."""

from __future__ import annotations

import logging
import math
import numbers
import os
import signal
import threading
import time
from typing import Any, Sequence

import numpy as np

from ..config import Config
from ..columns import result_row
from .grid import SweepError
from .cost import estimate_seconds
from .plan import SweepRun

__all__ = ["SweepRunError", "CONNECT_TIMEOUT", "run_batch", "default_batch_size"]

# What a batch of runs should take, in seconds, when --batch-size is not given.
_BATCH_SECONDS = 3.0
# At least this many batches per worker, so that the last batches do not leave cores idle.
_BATCHES_PER_WORKER = 4
# Seconds to reach a dask scheduler and complete its handshake (--connect-timeout).
CONNECT_TIMEOUT = 30.0


class SweepRunError(RuntimeError):
    """Runs could not be executed (a worker died, a batch failed on the cluster)."""


def run_batch(configs: list[Config]) -> list[dict[str, Any]]:
    """Train and predict every config of a batch; one result row per config, in order.

    The single point where a sweep executes runs (local pools and Dask
    workers call it).  Runs of equal shape across the batch train together
    inside compiled calls (:func:`simcomp.train.train_batch`), traced only at
    their first and last step: a row needs nothing in between.
    """
    import warnings

    with warnings.catch_warnings():
        # A diverging run overflows in NumPy; its row's status says so.  Worker processes
        # do not inherit the command's filters, so without this the warnings reach stderr.
        warnings.simplefilter("ignore", RuntimeWarning)
        return _run_batch(list(configs))


def _run_batch(configs: list[Config]) -> list[dict[str, Any]]:
    """:func:`run_batch` without its warning filter."""
    from ..experiment import run_experiments
    from ..fusion_config import uses_fusion_engine
    from .warm import batched_loop_ready

    fusion = [i for i, cfg in enumerate(configs) if uses_fusion_engine(cfg.model)]
    original = [i for i in range(len(configs)) if i not in set(fusion)]
    rows: list = [None] * len(configs)
    if original:
        start = time.perf_counter()
        # Run by run while the parent compiles the batched loop (simcomp.sweep.warm): same rows.
        experiments = run_experiments([configs[i] for i in original], record=False,
                                      batched=batched_loop_ready())
        share = (time.perf_counter() - start) / len(experiments)
        for i, exp in zip(original, experiments):
            rows[i] = result_row(exp, share)
    if fusion:
        for i, row in zip(fusion, _fusion_rows([configs[i] for i in fusion])):
            rows[i] = row
    return rows


def _fusion_rows(configs: list[Config]) -> list[dict[str, Any]]:
    """Result rows of fusion-engine configs: same-shape runs train in one compiled call."""
    from ..fusion_result import fusion_prediction
    from ..fusion_train import prepare, train_fusion
    from ..results import fusion_experiment

    start = time.perf_counter()
    runs = [prepare(cfg) for cfg in configs]
    results = train_fusion(configs, runs)
    share = (time.perf_counter() - start) / len(configs)
    return [result_row(fusion_experiment(cfg, res, fusion_prediction(cfg, run)), share)
            for cfg, run, res in zip(configs, runs, results)]


# --------------------------------------------------------------------------- batch size


def default_batch_size(runs: Sequence[SweepRun], workers: int) -> int:
    """Runs per batch: about :data:`_BATCH_SECONDS` of work, but enough batches for every worker."""
    if not runs:
        return 1
    sample = runs[:: max(1, len(runs) // 200)]  # grids may change the cost (steps, n, dim)
    per_run = max(sum(estimate_seconds(run.cfg) for run in sample) / len(sample), 1e-3)
    by_time = max(1, int(_BATCH_SECONDS / per_run))
    by_balance = max(1, math.ceil(len(runs) / (_BATCHES_PER_WORKER * max(workers, 1))))
    return max(1, min(by_time, by_balance))


# --------------------------------------------------------------------------- executors


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def _worker_init(parent: int) -> None:
    """Worker processes leave Ctrl-C to the parent and exit when the parent dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _execute_serial(batches, on_done) -> None:
    """Run the batches one after the other, in a helper thread of this process.

    The compiled kernels release the GIL, so the main thread stays free to
    take Ctrl-C and SIGTERM at once: it stops waiting and abandons the batch
    in flight (a daemon thread, gone when the process exits).
    """
    for batch in batches:
        box: dict[str, Any] = {}

        def work(configs=[run.cfg for run in batch]):
            try:
                box["rows"] = run_batch(configs)
            except BaseException as exc:  # handed to the main thread
                box["error"] = exc

        thread = threading.Thread(target=work, name="simcomp-sweep", daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(0.1)
        if "error" in box:
            raise box["error"]
        on_done(batch, box["rows"])


def _execute_pool(batches, workers: int, kind: str, on_done) -> None:
    import concurrent.futures as cf
    import multiprocessing

    if kind == "threads":
        pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="simcomp-sweep")
    else:
        # spawn: numba's thread pools are not fork-safe, and a fresh process costs ~1 s once.
        pool = cf.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init, initargs=(os.getpid(),),
        )
    futures: dict = {}
    try:
        futures = {pool.submit(run_batch, [run.cfg for run in batch]): batch for batch in batches}
        for future in cf.as_completed(futures):
            try:
                rows = future.result()
            except cf.process.BrokenProcessPool:
                raise SweepRunError(
                    "a worker process died (killed? out of memory? or, from a Python script, a "
                    "missing `if __name__ == '__main__':` guard: workers are started with spawn); "
                    "the runs recorded so far are kept, rerun the same command to resume"
                ) from None
            on_done(futures[future], rows)
    except BaseException:
        # Abandon the runs in flight: terminate the workers (shutdown() forgets them, so first).
        processes = list((getattr(pool, "_processes", None) or {}).values())
        for future in futures:
            future.cancel()
        for proc in processes:
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise SweepError(
            "--scheduler needs dask.distributed, which is not installed: pip install "
            "'dask[distributed]' (or, in simcomp's source directory, pip install '.[distributed]')"
        ) from None
    return distributed


# The longest --connect-timeout accepted: an hour is far past any real handshake, and
# bigger numbers overflow the socket and timer APIs (1e308 s).
MAX_CONNECT_TIMEOUT = 3600.0
# A scheduler's greeting is a few dozen bytes; more is not a dask handshake.
_MAX_HANDSHAKE_BYTES = 1 << 16
_MAX_HANDSHAKE_FRAMES = 64


def check_connect_timeout(timeout: Any) -> float:
    """``timeout`` as a float of seconds in (0, :data:`MAX_CONNECT_TIMEOUT`]; else SweepError."""
    if isinstance(timeout, (bool, np.bool_)) or not isinstance(timeout, numbers.Real) or not (
            0 < float(timeout) <= MAX_CONNECT_TIMEOUT):
        raise SweepError(f"--connect-timeout must be a number of seconds > 0 and <= "
                         f"{MAX_CONNECT_TIMEOUT:g}, got {timeout!r}")
    return float(timeout)


def _split_address(address: str) -> tuple[str, str, int]:
    """``'tcp://host:8786'`` -> ``('tcp', 'host', 8786)``; tcp://, tls:// and (a scheduler in
    this process) inproc:// are spoken."""
    scheme, sep, text = address.partition("://")
    if not sep:
        scheme, text = "tcp", address
    scheme = scheme.lower()
    if scheme == "inproc":  # a scheduler in this very process (LocalCluster(processes=False))
        return scheme, text, 0
    if scheme not in ("tcp", "tls"):
        raise SweepError(
            f"--scheduler {address}: simcomp sweep connects to tcp:// or tls:// scheduler "
            f"addresses (inproc:// from Python, or 'local'); for {scheme}:// connect a distributed.Client yourself and "
            f"pass it as simcomp.sweep(..., scheduler=client)")
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise SweepError(f"--scheduler {address}: expected HOST:PORT with a port from 1 to "
                         f"65535, e.g. tcp://10.0.0.5:8786")
    return scheme, host, int(port)


def _read_exactly(sock, count: int, deadline: float) -> bytes:
    """``count`` bytes from ``sock``, every read bounded by the overall ``deadline``."""
    data = b""
    while len(data) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        sock.settimeout(left)
        chunk = sock.recv(min(count - len(data), 65536))
        if not chunk:
            raise ConnectionError("the connection was closed during the handshake")
        data += chunk
    return data


def _is_handshake(body: bytes) -> bool:
    """Whether ``body`` (the bytes after the length) is a dask handshake: framed msgpack
    of a dict naming the peer's Python version."""
    import struct

    if len(body) < 16:
        return False
    frames = struct.unpack_from("<Q", body)[0]
    if not 1 <= frames <= _MAX_HANDSHAKE_FRAMES or len(body) < 8 * (1 + frames):
        return False
    lengths = struct.unpack_from(f"<{frames}Q", body, 8)
    start = 8 * (1 + frames)
    if start + sum(lengths) != len(body):
        return False
    try:
        import msgpack
    except ImportError:  # pragma: no cover - a dependency of distributed
        return True
    for length in lengths:
        frame, start = body[start:start + length], start + length
        try:
            message = msgpack.loads(frame, raw=False)
        except Exception:  # any malformed frame: not a handshake
            continue
        if isinstance(message, dict) and "python" in message:
            return True
    return False


def _probe(address: str, timeout: float) -> None:
    """Check within ``timeout`` seconds that a dask scheduler answers at a tcp address.

    A dask listener sends its handshake as soon as it accepts a connection:
    a little-endian byte count, then frames of msgpack naming its Python
    version.  The whole greeting is read and checked, every read bounded by
    one deadline: an endpoint that accepts and stays silent (a hung process,
    an HTTP server waiting for a request), that stops halfway or that sends
    something else is not a scheduler; ``distributed.Client`` itself waits
    without bound for a greeting that does not complete, and allocates
    whatever the first bytes spell.  For tls:// only the connection is
    checked here (the greeting is encrypted).
    """
    import socket
    import struct

    scheme, host, port = _split_address(address)
    if scheme == "inproc":
        return  # nothing to probe: the Client below is bounded by the same deadline
    deadline = time.monotonic() + timeout
    not_one = (f"--scheduler {address}: the server there is not a dask scheduler (its greeting "
               f"is not a dask handshake); give the scheduler's address, usually "
               f"tcp://HOST:8786")
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if scheme == "tls":
                return
            head = _read_exactly(sock, 8, deadline)
            size = struct.unpack("<Q", head)[0]
            if not 16 <= size <= _MAX_HANDSHAKE_BYTES or head.startswith(b"HTTP"):
                raise SweepError(not_one.replace("its greeting is", f"it answered {head!r},"))
            if not _is_handshake(_read_exactly(sock, size, deadline)):
                raise SweepError(not_one)
    except SweepError:
        raise  # already the whole message (a ValueError, so not re-wrapped below)
    except (TimeoutError, socket.timeout):
        raise SweepError(
            f"--scheduler {address}: no dask scheduler answered within {timeout:g} s; the "
            f"address accepts connections but does not greet as a scheduler does (an HTTP "
            f"server such as the dashboard, or a hung process?): give the scheduler's address, "
            f"usually tcp://HOST:8786") from None
    except (OSError, ConnectionError, OverflowError, ValueError) as exc:
        raise SweepError(f"--scheduler {address}: cannot connect to a dask scheduler there: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None


def _connect(address: str, timeout: float = CONNECT_TIMEOUT):
    """A Client of the dask scheduler at ``address`` within ``timeout`` s; else SweepError.

    The probe and the Client share one deadline.  The Client is made in a
    helper thread that is abandoned when the deadline passes: its own
    handshake has no bound of its own (a peer may answer the probe and then
    hang), and no failure of it may escape as a traceback.
    """
    timeout = check_connect_timeout(timeout)
    distributed = _import_distributed()
    deadline = time.monotonic() + timeout
    _probe(address, timeout)
    box: dict[str, Any] = {}

    def make() -> None:
        try:
            box["client"] = distributed.Client(
                address, timeout=f"{max(deadline - time.monotonic(), 0.1)}s")
        except BaseException as exc:  # handed to the calling thread
            box["error"] = exc

    thread = threading.Thread(target=make, name="simcomp-connect", daemon=True)
    thread.start()
    thread.join(max(deadline - time.monotonic(), 0.0) + 1.0)
    if thread.is_alive():
        raise SweepError(f"--scheduler {address}: the scheduler did not complete its handshake "
                         f"within {timeout:g} s (a hung process?); check it, or give a longer "
                         f"--connect-timeout")
    if "error" in box:
        exc = box["error"]
        if not isinstance(exc, Exception):
            raise exc
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise SweepError(f"--scheduler {address}: cannot connect to a dask scheduler there: "
                         f"{text}") from None
    return box["client"]


def _execute_dask(batches, scheduler, workers: int, on_done, own_client: bool) -> None:
    """Run the batches on ``scheduler`` ("local" or a Client; closed after if ``own_client``)."""
    distributed = _import_distributed()
    cluster = None
    if scheduler == "local":
        # Its own processes log only errors: an interrupted sweep's cancelled tasks and the
        # nanny killing a busy worker are warnings that said nothing the one line does not.
        cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        client, own_client = distributed.Client(cluster), True
    else:
        client = scheduler
    futures = []
    try:
        by_key = {}
        for batch in batches:
            future = client.submit(run_batch, [run.cfg for run in batch], retries=2, pure=False)
            futures.append(future)
            by_key[future.key] = batch
        for future in distributed.as_completed(futures):
            try:
                rows = future.result()
            except Exception as exc:
                raise SweepRunError(
                    f"a batch failed on the cluster after 2 retries ({type(exc).__name__}: {exc}); "
                    f"the runs recorded so far are kept, rerun the same command to resume"
                ) from exc
            on_done(by_key[future.key], rows)
    finally:
        for future in futures:
            if not future.done():
                future.cancel()
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()
