"""Compiling a sweep's kernels once, in the calling process, before its workers start.

Worker processes share numba's on-disk cache but not what a sibling is
compiling: started on a cold cache (e.g. right after ``simcomp simulate``,
which compiles the single-run loop, not the batched one a sweep uses), each
of them compiled the same kernels at the same time -- several times the CPU,
and the compile notice once per worker.  :func:`compile_once` trains one
tiny copy of each kind of run of the sweep here first, through the very
function the workers call, so that they load everything from the cache.
"""

from __future__ import annotations

from typing import Sequence

from ..config import Config, ConfigError

__all__ = ["compile_once"]


def _tiny(cfg: Config) -> Config:
    """``cfg`` trained for one step: the same compiled specialisations, almost no work."""
    try:
        return cfg.replace(**{"train.steps": 1, "train.trace_every": 1})
    except ConfigError:  # a setting tied to the number of steps: the run as it is
        return cfg


def compile_once(configs: Sequence[Config]) -> bool:
    """Compile, in this process, what the runs of ``configs`` need, if the cache lacks it.

    One tiny run per (dtype, method) among ``configs`` (the arguments that
    select a compiled specialisation) goes through
    :func:`simcomp.sweep.execute.run_batch`; the usual note that kernels are
    being compiled is then written once, here.  Does nothing when the
    batched training loop is in the cache already (a warm sweep pays only
    this check).

    Returns
    -------
    bool
        True if the runs were compiled here.
    """
    if not configs:
        return False
    from ..kernels.api import cache_is_cold

    if not cache_is_cold("batch"):
        return False
    from .execute import run_batch

    kinds: dict = {}
    for cfg in configs:
        kinds.setdefault((cfg.train.dtype, cfg.method.name), cfg)
    run_batch([_tiny(cfg) for cfg in kinds.values()])
    return True
