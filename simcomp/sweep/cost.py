"""A rough single-thread cost of a run, for sizing a sweep's batches and its compile choices.

Its own module so that the execution (``execute``) and the compile-once logic (``warm``) can
both use it without importing each other.
"""

from __future__ import annotations

from ..config import Config

__all__ = ["estimate_seconds"]

# Rough single-thread speed of the training loop (multiply-adds per second) and fixed costs,
# measured on the default config; rough on purpose.
_MADDS_PER_SECOND = 1.2e9
_SECONDS_PER_RUN = 0.02
_SECONDS_PER_STEP = 1e-4


def estimate_seconds(cfg: Config) -> float:
    """A rough single-thread cost of one run of ``cfg``, in seconds (sizes batches and decides
    whether compiling the batched loop pays)."""
    from ..train import run_plan

    n_train = 2 ** (cfg.K + 1) if cfg.data.population else cfg.data.n_train
    n_test = 0 if cfg.data.population else cfg.data.n_test
    per_neuron = cfg.model.banks * cfg.model.width
    records = cfg.train.steps / cfg.train.trace_every + 1
    madds, plan = 0.0, run_plan(cfg)
    for _, trained in plan:
        width = max(cfg.data.modality[r].dim for r in trained)
        unit = len(trained) * width * per_neuron
        madds += 2.0 * cfg.train.steps * n_train * unit + records * (n_train + n_test) * unit
    return (madds / _MADDS_PER_SECOND + len(plan) * (_SECONDS_PER_RUN + cfg.train.steps
                                                    * _SECONDS_PER_STEP))
