"""Compiling a sweep's kernels once, for all of its worker processes.

Worker processes share numba's on-disk cache but not what a sibling is
compiling: started on a cold cache (e.g. right after ``simcomp simulate``,
which compiles the single-run loop, not the batched one a sweep uses), each
of them compiled the same kernels at the same time -- several times the CPU,
and the compile note once per worker.  Instead the calling process compiles,
by training tiny copies of each kind of run of the sweep through the batched
loop the workers use (:func:`compiled_once`):

* if the single-run loop is in the cache already (the usual case: a sweep
  after ``simcomp simulate``), in a background thread while the workers
  start at once, training their runs one by one through that loop (bit for
  bit what the batched loop gives) until the batched loop is ready;
* else (nothing compiled yet) before the workers start: they would need to
  compile the single-run loop themselves.

Either way the note that kernels are being compiled is written once.

A short sweep does not compile the batched loop at all (:func:`batched_loop_pays`):
in a worker process, one thread each, it trains a batch no faster than the
single-run loop trains its runs one by one (the same rows, bit for bit), so
its compile (about 9 CPU-seconds on the 2-core reference machine, more than
a 4-run sweep's whole work) only pays back over a long sweep.  The workers
of a short sweep are told to keep to the single-run loop, which ``simcomp
simulate`` has usually compiled already: a first sweep then compiles nothing.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from typing import Iterator, Sequence

from ..config import Config, ConfigError
from .cost import estimate_seconds

__all__ = ["compiled_once", "compile_once", "batched_loop_ready", "batched_loop_pays",
           "COMPILING_ENV", "SINGLE_ENV"]

# In the environment of a sweep's worker processes while their parent compiles the batched
# loop: the path of a marker file, removed as soon as the loop is in numba's cache.
COMPILING_ENV = "SIMCOMP_BATCH_COMPILING"
# In the environment of the worker processes of a sweep too short to pay for compiling the
# batched loop: they train every run through the single-run loop.
SINGLE_ENV = "SIMCOMP_SINGLE_RUN_LOOP"
# Estimated single-thread seconds of work (simcomp.sweep.execute's batch sizing estimate)
# from which a sweep compiles the batched loop when it is not cached: several times the
# compile (about 9 CPU-s on the reference machine), which the batched loop, in a worker of
# one thread, wins back only through fewer calls from Python.
BATCH_PAYS_SECONDS = 60.0


def batched_loop_ready() -> bool:
    """False while the parent of this worker is compiling the batched loop for it."""
    if os.environ.get(SINGLE_ENV):
        return False
    marker = os.environ.get(COMPILING_ENV)
    return not (marker and os.path.exists(marker))


def batched_loop_pays(configs: Sequence[Config]) -> bool:
    """Whether the runs of ``configs`` are long enough to pay for compiling the batched loop
    (an estimate of their single-thread work of at least :data:`BATCH_PAYS_SECONDS`)."""
    return sum(estimate_seconds(cfg) for cfg in configs) >= BATCH_PAYS_SECONDS


@contextlib.contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    """``os.environ[name] = value`` inside (inherited by the processes started there)."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def _tiny(cfg: Config) -> Config:
    """``cfg`` trained for one step: the same compiled specialisations, almost no work."""
    try:
        return cfg.replace(**{"train.steps": 1, "train.trace_every": 1})
    except ConfigError:  # a setting tied to the number of steps: the run as it is
        return cfg


def _kinds(configs: Sequence[Config]) -> list[Config]:
    """Two tiny configs per (dtype, method), the arguments that select a specialisation:
    two, so that their runs of equal shape form a batch, as in a sweep's batches."""
    kinds: dict = {}
    for cfg in configs:
        kinds.setdefault((cfg.train.dtype, cfg.method.name), cfg)
    return [_tiny(cfg).replace(**{"seed": cfg.seed + k}) for cfg in kinds.values()
            for k in range(2)]


def _compile(configs: Sequence[Config], single: bool = False, batched: bool = True) -> None:
    """Train the tiny runs of ``configs`` through the batched loop (unless not ``batched``),
    compiling what they need; with ``single`` also one per kind through the single-run loop
    (a sweep's run that has no twin of its shape in its batch takes that loop)."""
    from ..experiment import run_experiments

    tiny = _kinds(configs)
    if batched:
        run_experiments(tiny, record=False, batched=True)  # whatever the marker says
    if single:
        run_experiments(tiny[::2], record=False, batched=False)


def compile_once(configs: Sequence[Config]) -> bool:
    """Compile here, now, what the runs of ``configs`` need, if the batched loop is not cached.

    Two tiny runs per (dtype, method) among ``configs`` go through the
    batched loop, as in :func:`simcomp.sweep.execute.run_batch`.  Returns
    True if it compiled.
    """
    if not configs:
        return False
    from ..kernels.api import cache_is_cold

    if not cache_is_cold("batch"):
        return False
    _compile(configs)
    return True


@contextlib.contextmanager
def compiled_once(configs: Sequence[Config]) -> Iterator[str]:
    """Run a sweep's worker processes inside this: their kernels are compiled once, here.

    Yields what was done: ``"warm"`` (the batched loop was cached: nothing),
    ``"single"`` (a sweep too short to pay for the batched loop: the workers
    keep to the single-run loop, compiled here first if it is not cached),
    ``"first"`` (compiled before the workers, see the module docstring) or
    ``"background"`` (compiled while the workers train run by run; waited
    for when the sweep ends, so that the next one finds it, but abandoned
    at once when it is interrupted).
    """
    from ..fusion_config import uses_fusion_engine
    from ..kernels.api import cache_is_cold

    # The fusion engine's runs have their own compiled loop: left to the workers.
    configs = [cfg for cfg in configs if not uses_fusion_engine(cfg.model)]
    if not configs or not cache_is_cold("batch"):
        yield "warm"
        return
    if not batched_loop_pays(configs):
        if cache_is_cold("serial"):
            try:
                _compile(configs, single=True, batched=False)
            except Exception:  # best effort: the workers compile, and report any error
                pass
        with _environ(SINGLE_ENV, "1"):
            yield "single"
        return
    if cache_is_cold("serial"):
        try:
            _compile(configs, single=True)
        except Exception:  # best effort: the workers compile, and report any error, themselves
            pass
        yield "first"
        return
    fd, marker = tempfile.mkstemp(prefix="simcomp-compiling-")
    os.close(fd)
    previous = os.environ.get(COMPILING_ENV)
    os.environ[COMPILING_ENV] = marker  # inherited by the workers started from here on

    def compile_then_release():
        try:
            _compile(configs)
        except Exception:  # the workers stay on the single-run loop; they report errors
            pass
        finally:
            with contextlib.suppress(OSError):
                os.unlink(marker)

    def restore():
        if previous is None:
            os.environ.pop(COMPILING_ENV, None)
        else:
            os.environ[COMPILING_ENV] = previous

    thread = threading.Thread(target=compile_then_release, name="simcomp-compile", daemon=True)
    thread.start()
    try:
        yield "background"
    except BaseException:  # Ctrl-C, a failed sweep: stop at once, the compile is abandoned
        restore()
        with contextlib.suppress(OSError):
            os.unlink(marker)
        raise
    thread.join()
    restore()
