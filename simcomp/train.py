"""Full-batch gradient descent in the modes joint, unimodal and compare (spec section 3).

Python only runs between trace points: each segment of ``trace_every`` steps
is one call of the compiled ``gd_segment`` kernel, which also watches for the
learned step at every step, the early stop and non-finite losses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numba
import numpy as np

from . import _kernels
from .config import Config
from .data import Dataset, ExperimentData, make_experiment_data
from .trace import Trace, geometry, weighted_error

__all__ = [
    "RunResult",
    "run_plan",
    "train_run",
    "train_experiment",
    "KIND_CODES",
    "STATUS_OK",
    "STATUS_STOP_LOSS",
    "STATUS_NONFINITE",
]

# Codes shared with the kernels.
KIND_CODES = {("symmetric", "srelu"): 0, ("class_banks", "srelu"): 1, ("class_banks", "relu"): 2}
STATUS_OK, STATUS_STOP_LOSS, STATUS_NONFINITE = 0, 1, 2

# Below this many multiply-adds per step (the default problem has 2**20) a
# parallel step gains at most 1.7x on an idle 2-core machine and loses 30-50x
# when another process holds a core (OpenMP threads wait for each other at
# every step), so small runs go serial.
_PARALLEL_MIN_WORK = 1 << 23


@dataclass
class RunResult:
    """One trained network: its trace, its learned steps and where it ended.

    ``learned_step`` is per trained modality (min over banks), -1 when never
    learned; ``status`` is "ok", "stop_loss" or "nonfinite" (then
    ``failed_step`` names the step whose loss was not finite).
    """

    name: str
    trained: list
    trace: Trace
    learned_step: np.ndarray
    learned_step_bank: np.ndarray
    initial_alignment: np.ndarray
    final_weights: list
    steps_run: int
    status: str
    failed_step: int | None
    seconds: float
    threads: int
    parallel: bool

    @property
    def winner(self) -> int | None:
        """Index (into ``trained``) of the modality learned first; ties go to the lower index."""
        learned = [(step, k) for k, step in enumerate(self.learned_step) if step >= 0]
        return min(learned)[1] if learned else None


def run_plan(cfg: Config) -> list[tuple[str, list[int]]]:
    """The runs of ``cfg.train.mode``: (name, trained modality indices)."""
    joint = [("joint", list(range(cfg.K)))]
    unimodal = [(f"unimodal-{name}", [r]) for r, name in enumerate(cfg.names)]
    return {"joint": joint, "unimodal": unimodal, "compare": joint + unimodal}[cfg.train.mode]


def _pad(arrays: list, width: int, dtype) -> np.ndarray:
    """Stack arrays whose last axes differ into one zero-padded C-contiguous array."""
    out = np.zeros((len(arrays),) + arrays[0].shape[:-1] + (width,), dtype=dtype)
    for k, arr in enumerate(arrays):
        out[k, ..., : arr.shape[-1]] = arr
    return out


def _threads(cfg: Config) -> int:
    wanted = cfg.train.threads or numba.config.NUMBA_NUM_THREADS
    return max(1, min(wanted, numba.config.NUMBA_NUM_THREADS))


class _Evaluator:
    """Forward passes on a fixed, padded dataset for losses and errors."""

    def __init__(self, data: Dataset, trained: list, width: int, dtype, kind: int, q, rho):
        self.X = _pad([data.X[r] for r in trained], width, dtype)
        self.y = data.y.astype(dtype)
        self.weight = data.weight.astype(dtype)
        self.y64, self.weight64 = data.y, data.weight
        self.kind, self.q, self.rho = kind, q, rho
        self.f = np.empty(data.n, dtype=dtype)
        self.phi = np.empty((data.n, len(trained)), dtype=dtype)

    def __call__(self, W: np.ndarray, dims: np.ndarray):
        _kernels.forward(self.X, dims, W, self.kind, self.q, self.rho, self.f, self.phi)
        f = self.f.astype(np.float64)
        loss = float(np.dot(self.weight64, np.logaddexp(0.0, -self.y64 * f)))
        error = weighted_error(self.y64, f, self.weight64)
        per_modality = np.array(
            [weighted_error(self.y64, self.phi[:, k].astype(np.float64), self.weight64)
             for k in range(self.phi.shape[1])]
        )
        return loss, error, per_modality


def train_run(
    cfg: Config,
    data: ExperimentData,
    name: str,
    trained: list[int],
    progress: Callable[[int], None] | None = None,
) -> RunResult:
    """Train the late-fusion network on the modalities ``trained`` and trace it.

    Parameters
    ----------
    cfg : Config
        The experiment.
    data : ExperimentData
        Dictionaries, training and test sets and initial weights (shared by
        every run of an experiment, so uni-modal runs start from the joint
        run's encoder weights).
    name : str
        Run name ("joint", "unimodal-A", ...).
    trained : list of int
        Indices of the trained modalities; the other encoders are absent.
    progress : callable, optional
        Called with the number of GD steps just done, after each segment.
    """
    start = time.perf_counter()
    dtype = np.dtype(cfg.train.dtype)
    mods = [cfg.data.modality[r] for r in trained]
    width = max(mod.dim for mod in mods)
    dims = np.array([mod.dim for mod in mods], dtype=np.int64)
    kind = KIND_CODES[(cfg.model.learner, cfg.model.activation)]
    q, rho = float(cfg.model.q), float(cfg.model.rho)

    train_eval = _Evaluator(data.train, trained, width, dtype, kind, q, rho)
    test_eval = train_eval if data.test is data.train else _Evaluator(
        data.test, trained, width, dtype, kind, q, rho)
    W = _pad([data.init[r] for r in trained], width, dtype)
    signal = _pad([data.signals[r] for r in trained], width, dtype)
    beta = np.array([mod.beta for mod in mods], dtype=np.float64)
    learned = np.full((len(trained), cfg.model.banks), -1, dtype=np.int64)
    grad_buf = np.zeros_like(W)
    dictionaries = [data.dictionaries[r] for r in trained]

    threads = _threads(cfg)
    work = data.train.n * width * len(trained) * cfg.model.banks * cfg.model.width
    parallel = threads > 1 and work >= _PARALLEL_MIN_WORK
    numba.set_num_threads(threads)

    trace = Trace(banks=cfg.model.banks)

    def record(step: int) -> bool:
        """Append a trace record at ``step``; False (and nothing recorded) if the loss is not finite."""
        loss, train_err, _ = train_eval(W, dims)
        if not (np.isfinite(loss) and np.all(np.isfinite(W))):
            return False
        weights = [W[k, :, :, : mod.dim] for k, mod in enumerate(mods)]
        alignment, distractor, orthogonal = geometry(weights, dictionaries)
        _, test_err, modality_err = test_eval(W, dims)
        trace.append(step, alignment, distractor, orthogonal, loss, train_err, test_err,
                     modality_err)
        return True

    initial_alignment = geometry([W[k, :, :, : mod.dim] for k, mod in enumerate(mods)],
                                 dictionaries)[0]
    step, status, failed_step = 0, STATUS_OK, None
    if not record(0):
        status, failed_step = STATUS_NONFINITE, 0
    total = cfg.train.steps
    while step < total and status != STATUS_NONFINITE:
        segment = min(cfg.train.trace_every - step % cfg.train.trace_every, total - step)
        status, t_stop, _ = _kernels.gd_segment(
            train_eval.X, dims, train_eval.y, train_eval.weight, W, kind, q, rho,
            float(cfg.train.lr), signal, beta, float(cfg.model.threshold), learned,
            step, segment, float(cfg.train.stop_loss), parallel, grad_buf,
        )
        if progress is not None:
            progress(int(t_stop) - step)
        if status == STATUS_NONFINITE:
            failed_step = int(t_stop)
            step = int(t_stop)
            break
        step = int(t_stop)
        if not record(step):
            status, failed_step = STATUS_NONFINITE, step
            break
        if status == STATUS_STOP_LOSS:
            break

    return RunResult(
        name=name,
        trained=list(trained),
        trace=trace,
        learned_step=_min_learned(learned),
        learned_step_bank=learned.copy(),
        initial_alignment=initial_alignment,
        final_weights=[W[k, :, :, : mod.dim].astype(np.float64) for k, mod in enumerate(mods)],
        steps_run=step,
        status={STATUS_OK: "ok", STATUS_STOP_LOSS: "stop_loss", STATUS_NONFINITE: "nonfinite"}[
            int(status)],
        failed_step=failed_step,
        seconds=time.perf_counter() - start,
        threads=threads,
        parallel=parallel,
    )


def _min_learned(learned: np.ndarray) -> np.ndarray:
    """A modality's learned step is its first bank's; -1 stays for never."""
    masked = np.where(learned >= 0, learned, np.iinfo(np.int64).max)
    first = masked.min(axis=1)
    return np.where(first == np.iinfo(np.int64).max, -1, first).astype(np.int64)


def train_experiment(
    cfg: Config,
    data: ExperimentData | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[ExperimentData, list[RunResult]]:
    """Draw the data of ``cfg`` (unless given) and train every run of its mode."""
    if data is None:
        data = make_experiment_data(cfg)
    runs = [train_run(cfg, data, name, trained, progress) for name, trained in run_plan(cfg)]
    return data, runs
