"""Pre-flight resource estimates: refuse a command that cannot fit before doing any work.

A run holds its data (the training and test sets, the zero-padded copy of
each and the packed copies the kernels read), its weights, and the trace it
records; the theory enumerates the 2^(K+1) label-and-presence patterns of
the data.  :func:`estimate_simulate` and :func:`estimate_theory` add these
up from the config alone (nothing is drawn or allocated), and
:func:`check` compares the total with what the machine has: a fraction of
the available memory and the free space on the output's file system.

The estimates are upper bounds of the large arrays, not of the Python
interpreter, numba or matplotlib (together about 300 MB), which are
counted as a fixed allowance.

Overrides (documented in docs/reliability.md):

``SIMCOMP_MEMORY_LIMIT``
    The memory a command may plan to use, e.g. ``64G``, ``500M`` or a
    number of bytes; ``off`` disables the memory check.
``SIMCOMP_DISK_LIMIT``
    The same for disk space on the output's file system.
"""

from __future__ import annotations

import math
import os
import re
import resource
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .config import Config, ConfigError

__all__ = [
    "ResourceError",
    "Estimate",
    "estimate_simulate",
    "estimate_theory",
    "estimate_sweep_planning",
    "check_sweep",
    "SIZE_HINT",
    "THEORY_HINT",
    "memory_limit",
    "disk_limit",
    "check",
    "format_bytes",
    "MEMORY_FRACTION",
    "FIXED_OVERHEAD",
    "SWEEP_POINT_BYTES",
]

MEMORY_FRACTION = 0.8
"""Share of the available memory (MemAvailable) a command may plan to use."""

DISK_FRACTION = 0.9
"""Share of the free disk space an output may plan to take."""

FIXED_OVERHEAD = 300 << 20
"""Interpreter, numpy, numba and matplotlib: counted once for every command."""

SWEEP_POINT_BYTES = 8 << 10
"""Planning memory of one sweep run (its config, row and bookkeeping), an upper bound."""

SIZE_HINT = ("fewer data.n_train / data.n_test, a smaller data.modality.N.dim or model.width, "
             "fewer train.steps or a larger train.trace_every")
"""The config keys that make a simulate (or a sweep's run) smaller, for the messages."""

THEORY_HINT = ("fewer data.n_train / data.n_test, a smaller data.modality.N.dim or model.width, "
               "fewer train.steps or method.teacher_steps, or a larger train.trace_every")
"""The same for ``simcomp theory``."""

_FIGURE_BYTES = 4 << 20  # one PNG, an upper bound
_PY_OBJECT = 120  # bytes of a small numpy array or tuple object beyond its data


class ResourceError(ConfigError):
    """A command would need more memory or disk than the limit (exit code 2).

    A :class:`~simcomp.config.ConfigError`, so every caller that reports bad
    input in one line (and exit code 2) reports this too.
    """


@dataclass
class Estimate:
    """Bytes a command needs, by part (memory and disk)."""

    what: str
    memory: dict = field(default_factory=dict)
    disk: dict = field(default_factory=dict)

    @property
    def memory_bytes(self) -> int:
        return int(sum(self.memory.values()))

    @property
    def disk_bytes(self) -> int:
        return int(sum(self.disk.values()))

    def largest(self, part: str = "memory") -> str:
        parts = self.memory if part == "memory" else self.disk
        return max(parts, key=parts.get) if parts else ""


def format_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``; powers of 1024."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024.0 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n:.1f} PiB"  # pragma: no cover


# --------------------------------------------------------------------------- estimates


def _runs(cfg: Config) -> list[list[int]]:
    """Trained modality indices of each run of the mode (as ``train.run_plan``, not imported)."""
    joint = [list(range(cfg.K))]
    alone = [[r] for r in range(cfg.K)]
    return {"joint": joint, "unimodal": alone, "compare": joint + alone}[cfg.train.mode]


def _sizes(cfg: Config) -> tuple[int, int]:
    if cfg.data.population:
        return 2 ** (cfg.K + 1), 0  # the test set is the training set
    return cfg.data.n_train, cfg.data.n_test


def _record_bytes(cfg: Config, k: int) -> int:
    """One trace record of a run training ``k`` modalities (numbers and object overhead)."""
    neurons = k * cfg.model.banks * cfg.model.width
    numbers = 2 * neurons + 3 * k + 4  # alignment, orthogonal norm; leading, distractor, errors
    return 8 * numbers + 9 * _PY_OBJECT


def _records(cfg: Config, record: bool) -> int:
    if not record:
        return 2
    return cfg.train.steps // cfg.train.trace_every + 2


def _pattern_bytes(cfg: Config) -> int:
    """The theory's 2^(K+1) patterns: a tuple per pattern while listing, then int/float arrays."""
    P = 2 ** (cfg.K + 1)
    return P * ((56 + 8 * (cfg.K + 1)) + 4 * 8 * (cfg.K + 1))


def _noise_aware(cfg: Config, trained: list[int]) -> bool:
    """Whether a run gets the noise-aware theory (as ``experiment.noise_aware_regime``)."""
    mods = [cfg.data.modality[r] for r in trained]
    return cfg.train.noise_theory and any(
        m.noise > 0.0 or (m.distractors > 0 and m.distractor_strength > 0.0) for m in mods)


_POINTS = 2048  # quasi-Monte Carlo points of an expected test error (experiment.EXPECTED_POINTS)


def _gaussian_error_bytes(cfg: Config, trained: list[int], weights: bool) -> int:
    """Scratch of one expected test error over the run's encoders (``points`` x neurons arrays,
    and, from trained ``weights``, each modality's encoder atoms and distractor draws)."""
    neurons = cfg.model.banks * cfg.model.width
    mods = [cfg.data.modality[r] for r in trained]
    total = 8 * _POINTS * len(trained) * neurons * 7 + 8 * _POINTS * len(trained) * neurons
    if weights:
        for mod in mods:
            total += 3 * 8 * neurons * mod.dim + 2 * 8 * neurons ** 2
            if mod.distractors > 0 and mod.distractor_strength > 0.0:
                total += 2 * 8 * _POINTS * mod.dim + 2 * 8 * _POINTS * mod.distractors * neurons
    return total


def _theory_run_bytes(cfg: Config, trained: list[int], joint: bool,
                      trained_weights: bool) -> tuple[int, int]:
    """(kept, scratch) bytes of the theory of one run: what its predictions keep until the
    command ends, and the largest temporary arrays while computing them.

    The reduced and the method dynamics record (K_run, B, m) alignments at every
    ``train.trace_every`` steps and the method dynamics four statistics at every
    step (umt's teachers too, for ``method.teacher_steps``); the noise-aware
    dynamics keeps (K_run, B, m, n_train) pre-activations and noise
    coordinates, and draws (n_train x dim) noise, an expected test error and
    the Gram matrices on the way.
    """
    k, B, m = len(trained), cfg.model.banks, cfg.model.width
    neurons = B * m
    n_train, _ = _sizes(cfg)
    steps, records = cfg.train.steps, cfg.train.steps // cfg.train.trace_every + 2
    P = 2 ** (k + 1)
    record = 8 * records * k * (neurons + 1)
    kept = record  # the reduced dynamics
    scratch = 8 * 8 * k * neurons * P  # pattern-wise encoder outputs and their derivatives
    if joint:
        methods = 2 if cfg.train.mode == "compare" else 1  # and the uni-modal ensemble's
        kept += methods * (record + 4 * 8 * steps * k)
        if cfg.method.name == "umt":
            t_steps = cfg.train.steps if cfg.method.teacher_steps is None \
                else cfg.method.teacher_steps
            scratch += 4 * 8 * t_steps * k + 2 * 8 * k * neurons
    if _noise_aware(cfg, trained):
        dim = max(cfg.data.modality[r].dim for r in trained)
        grid = 8 * k * neurons * n_train
        kept += 2 * grid + record + 8 * k * neurons ** 2
        scratch += max(2 * 8 * n_train * dim + 3 * 8 * neurons * dim,  # one modality's noise
                       6 * grid + 2 * 8 * neurons * n_train,  # the dynamics and its Grams
                       _gaussian_error_bytes(cfg, trained, weights=False))
        scratch += k * (grid + 8 * neurons ** 2 + 3 * 8 * n_train)  # the noise statistics
    if trained_weights and cfg.train.noise_theory:
        scratch = max(scratch, _gaussian_error_bytes(cfg, trained, weights=True))
    return kept, scratch


def _theory_bytes(cfg: Config, trained_weights: bool) -> int:
    """Every run's kept theory arrays, plus the largest scratch of one, plus the patterns."""
    kept, scratch = 0, 0
    for i, trained in enumerate(_runs(cfg)):
        joint = i == 0 and cfg.train.mode != "unimodal"
        run_kept, run_scratch = _theory_run_bytes(cfg, trained, joint, trained_weights)
        kept += run_kept
        scratch = max(scratch, run_scratch)
    return kept + scratch + _pattern_bytes(cfg)


def estimate_simulate(cfg: Config, record: bool = True) -> Estimate:
    """Memory and disk of ``simcomp simulate`` for ``cfg``.

    Parameters
    ----------
    cfg : Config
    record : bool
        True: every ``trace_every`` steps is recorded (``simulate``); False:
        only the first and the last step (what a sweep keeps).

    Returns
    -------
    Estimate
        memory parts: ``data`` (training and test sets, float64),
        ``data_temporaries`` (the largest draw's scratch), ``dictionaries``
        (random dictionaries, dense), ``run_arrays`` (the largest run's padded
        and packed copies: 1 + 2 of the training set, 1 + 1 of the test set,
        in ``train.dtype``), ``weights``, ``trace`` (every run's records,
        kept until they are saved, and their arrays), ``theory`` (the
        patterns) and ``fixed``; disk parts: ``traces`` (uncompressed upper
        bound), ``figures`` and ``summary``.  Fusion-engine configurations are
        estimated by :func:`estimate_fusion`.
    """
    from .fusion_config import uses_fusion_engine

    if uses_fusion_engine(cfg.model):
        return estimate_fusion(cfg, record)
    n_train, n_test = _sizes(cfg)
    mods = cfg.data.modality
    itemsize = 4 if cfg.train.dtype == "float32" else 8
    dims = [mod.dim for mod in mods]
    est = Estimate("simulate")
    est.memory["data"] = 8 * (n_train + n_test) * sum(dims)
    scratch = 0
    for mod in mods:
        n_max = max(n_train, n_test)
        copies = 2 if mod.distractors > 0 else (1 if mod.noise > 0 else 0)
        copies += 1 if mod.dictionary == "random" else 0
        scratch = max(scratch, 8 * n_max * mod.dim * copies)
    random_dims = [mod.dim for mod in mods if mod.dictionary == "random"]
    est.memory["data_temporaries"] = scratch + (3 * 8 * max(random_dims) ** 2 if random_dims else 0)
    est.memory["dictionaries"] = 8 * sum(d * d for d in random_dims)
    neurons = cfg.model.banks * cfg.model.width
    run_arrays, weights, trace, disk = 0, 8 * neurons * sum(dims), 0, 0
    records = _records(cfg, record)
    for trained in _runs(cfg):
        k, width = len(trained), max(dims[r] for r in trained)
        padded = k * width * itemsize
        run_arrays = max(run_arrays, (3 * n_train + 2 * n_test) * padded)
        weights += 3 * k * neurons * width * 8  # W, its gradient buffer, the final weights
        per_record = _record_bytes(cfg, k)
        trace += 2 * records * per_record  # the records, then their arrays for saving
        disk += records * (per_record - 9 * _PY_OBJECT)
    est.memory["run_arrays"] = run_arrays
    est.memory["weights"] = weights
    est.memory["trace"] = trace
    est.memory["theory"] = _theory_bytes(cfg, trained_weights=True)
    est.memory["fixed"] = FIXED_OVERHEAD
    est.disk["traces"] = disk
    est.disk["figures"] = _FIGURE_BYTES
    est.disk["summary"] = 64 << 10
    return est


def estimate_theory(cfg: Config) -> Estimate:
    """Memory of ``simcomp theory``: the data it draws, the weights and the patterns."""
    n_train, n_test = _sizes(cfg)
    dims = [mod.dim for mod in cfg.data.modality]
    random_dims = [mod.dim for mod in cfg.data.modality if mod.dictionary == "random"]
    est = Estimate("theory")
    est.memory["data"] = 8 * (n_train + n_test) * sum(dims)
    est.memory["data_temporaries"] = 2 * 8 * max(n_train, n_test) * max(dims)
    est.memory["dictionaries"] = 8 * sum(d * d for d in random_dims) + (
        3 * 8 * max(random_dims) ** 2 if random_dims else 0)
    est.memory["weights"] = 8 * cfg.model.banks * cfg.model.width * sum(dims)
    est.memory["theory"] = _theory_bytes(cfg, trained_weights=False)
    est.memory["fixed"] = FIXED_OVERHEAD
    return est


def estimate_sweep_planning(n_runs: int, per_run: Estimate | None = None,
                            concurrent: int = 1, processes: int = 0) -> Estimate:
    """Memory of planning a sweep of ``n_runs`` runs, ``concurrent`` of them in memory at once.

    Planning keeps a config, a row and some bookkeeping per run
    (:data:`SWEEP_POINT_BYTES` each); ``per_run`` (e.g.
    ``estimate_simulate(cfg, record=False)`` of the largest point) adds the
    runs that are computed at the same time, without repeating the fixed
    allowance; each of ``processes`` worker processes adds its own fixed
    allowance (its interpreter, NumPy and numba).
    """
    est = Estimate("sweep")
    est.memory["planning"] = int(n_runs) * SWEEP_POINT_BYTES
    if per_run is not None:
        varying = per_run.memory_bytes - per_run.memory.get("fixed", 0)
        est.memory["concurrent_runs"] = max(1, int(concurrent)) * varying
    if processes:
        est.memory["worker_processes"] = int(processes) * FIXED_OVERHEAD
    est.memory["fixed"] = FIXED_OVERHEAD
    return est


def check_sweep(points, n_runs: int, concurrent: int, processes: int = 0,
                hint: str = "") -> None:
    """Refuse a sweep before any run starts: one run of each grid point must fit, and so must
    ``concurrent`` runs of the largest point at once, plus planning and worker processes.

    ``points`` yields ``(label, config)`` pairs, one per grid point (the seed does
    not change a run's size); ``label`` names the point in the message.  A run
    of a sweep records only its first and last step.  Garbage in
    ``SIMCOMP_MEMORY_LIMIT`` is refused here too.
    """
    limit, source = memory_limit()
    worst, worst_label = None, ""
    for label, cfg in points:
        est = estimate_simulate(cfg, record=False)
        if limit is not None and est.memory_bytes > limit:
            part = est.largest("memory")
            raise ResourceError(
                f"sweep: one run of grid point {label} would need about "
                f"{format_bytes(est.memory_bytes)} of memory (largest part: {part}, "
                f"{format_bytes(est.memory[part])}), more than the limit of "
                f"{format_bytes(limit)} ({source}); make it smaller"
                f"{' (' + hint + ')' if hint else ''}, or set SIMCOMP_MEMORY_LIMIT (e.g. 64G, "
                f"or off) if you know better")
        if worst is None or est.memory_bytes > worst.memory_bytes:
            worst, worst_label = est, label
    total = estimate_sweep_planning(n_runs, worst, concurrent, processes)
    if limit is not None and total.memory_bytes > limit:
        part = total.largest("memory")
        where = f" ({concurrent} at once of grid point {worst_label})" \
            if part == "concurrent_runs" else ""
        raise ResourceError(
            f"sweep would need about {format_bytes(total.memory_bytes)} of memory (largest part: "
            f"{part}{where}, {format_bytes(total.memory[part])}), more than the limit of "
            f"{format_bytes(limit)} ({source}); use fewer --workers or a smaller --batch-size, "
            f"make the runs smaller{' (' + hint + ')' if hint else ''}, or set "
            f"SIMCOMP_MEMORY_LIMIT (e.g. 64G, or off) if you know better")


# --------------------------------------------------------------------------- limits

_SUFFIXES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([KMGTP]?)(?:i?B)?", re.IGNORECASE)


def _parse_size(name: str, text: str) -> int | None:
    """``'64G'`` -> bytes; ``'off'`` -> None. Bad text is a ResourceError naming the variable."""
    text = text.strip()
    if text.lower() in ("off", "none", "unlimited"):
        return None
    match = _SIZE.fullmatch(text)
    amount = float(match[1]) * _SUFFIXES[match[2].upper()] if match else 0.0
    if not (math.isfinite(amount) and amount >= 1):
        raise ResourceError(f"{name}={text!r} is not a size: give e.g. 64G, 500M, a number of "
                            "bytes, or off")
    return int(amount)


def _available_memory() -> tuple[int | None, str]:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "available memory"
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "free memory"
    except (OSError, ValueError, AttributeError):
        return None, "unknown"


def memory_limit() -> tuple[int | None, str]:
    """The memory a command may plan to use and where the number comes from (None: no limit).

    ``SIMCOMP_MEMORY_LIMIT`` if set; else :data:`MEMORY_FRACTION` of the
    available memory, or the address-space limit (``ulimit -v``) if lower.
    """
    env = os.environ.get("SIMCOMP_MEMORY_LIMIT")
    if env is not None:
        return _parse_size("SIMCOMP_MEMORY_LIMIT", env), "SIMCOMP_MEMORY_LIMIT"
    available, source = _available_memory()
    limit = None if available is None else int(MEMORY_FRACTION * available)
    label = f"{MEMORY_FRACTION:.0%} of the {source}"
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (OSError, ValueError):
        soft = resource.RLIM_INFINITY
    if soft != resource.RLIM_INFINITY and (limit is None or soft < limit):
        limit, label = int(soft), "the address-space limit (ulimit -v)"
    return limit, label


def disk_limit(path: str | Path) -> tuple[int | None, str]:
    """Bytes an output under ``path`` may plan to take (None: no limit), and the source."""
    env = os.environ.get("SIMCOMP_DISK_LIMIT")
    if env is not None:
        return _parse_size("SIMCOMP_DISK_LIMIT", env), "SIMCOMP_DISK_LIMIT"
    path = Path(path).absolute()
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            try:
                free = shutil.disk_usage(candidate).free
            except OSError:
                return None, "unknown"
            source = f"{DISK_FRACTION:.0%} of the free space on {str(candidate)!r}"
            return int(DISK_FRACTION * free), source
    return None, "unknown"  # pragma: no cover - the root always exists


def check(est: Estimate, out: str | Path | None = None, hint: str = "") -> None:
    """Raise :class:`ResourceError` if ``est`` exceeds the memory limit or the disk limit at ``out``.

    The message gives the estimate, its largest part, the limit and its
    source, and how to override it; ``hint`` names the config keys that
    make the command smaller.
    """
    limit, source = memory_limit()
    how = (f"; make it smaller{' (' + hint + ')' if hint else ''}, or set SIMCOMP_MEMORY_LIMIT "
           "(e.g. 64G, or off) if you know better")
    if limit is not None and est.memory_bytes > limit:
        part = est.largest("memory")
        raise ResourceError(
            f"{est.what} would need about {format_bytes(est.memory_bytes)} of memory "
            f"(largest part: {part}, {format_bytes(est.memory[part])}), more than the limit of "
            f"{format_bytes(limit)} ({source}){how}"
        )
    if out is None or not est.disk:
        return
    limit, source = disk_limit(Path(out).absolute().parent)
    if limit is not None and est.disk_bytes > limit:
        part = est.largest("disk")
        raise ResourceError(
            f"{est.what} would write about {format_bytes(est.disk_bytes)} (largest part: {part}, "
            f"{format_bytes(est.disk[part])}), more than the limit of {format_bytes(limit)} "
            f"({source}); make it smaller{' (' + hint + ')' if hint else ''}, or set "
            "SIMCOMP_DISK_LIMIT (e.g. 100G, or off)"
        )


# --------------------------------------------------------------------------- fusion engine


def _fusion_params(cfg: Config) -> int:
    """Weights of the fusion engine's network (simcomp/models/chain.py's table, by arithmetic)."""
    from .fusion_config import fusion_layer

    m, L, dims = cfg.model.width, cfg.model.depth, [mod.dim for mod in cfg.data.modality]
    Lf = fusion_layer(cfg.model)
    encoders = sum(m * d + (Lf - 2) * m * m for d in dims) if Lf > 1 else 0
    fuse_in = sum(dims) if Lf == 1 else m * len(dims)
    fuse = (1 if Lf == L else m) * fuse_in
    shared = max(L - Lf - 1, 0) * m * m + (m if Lf < L else 0)
    return encoders + fuse + shared


def estimate_fusion(cfg: Config, record: bool = True) -> Estimate:
    """Memory and disk of a fusion-engine run (docs/architectures.md).

    memory parts: ``data`` (the training set; for sparse-coding data also the
    test set and the original model's weights, drawn with them),
    ``moments`` (second-moment matrix, probes, pseudo-inverse for the total
    weights: a few D x D arrays), ``weights`` (weights, gradient, final copy),
    ``trace`` (total weights and loss per record, twice while saving) and
    ``fixed``; disk: ``traces``, ``figures``, ``summary``.
    """
    dims = [mod.dim for mod in cfg.data.modality]
    D, K = sum(dims), cfg.K
    est = Estimate("simulate")
    if cfg.data.kind == "gaussian":
        n = 0 if cfg.data.population else cfg.data.n_train
        est.memory["data"] = 8 * n * (D + 2)
    else:
        est.memory["data"] = (8 * (cfg.data.n_train + cfg.data.n_test) * D
                              + 8 * cfg.model.banks * cfg.model.width * D)
    n = cfg.data.n_train
    probes = 2 * K if cfg.model.activation == "relu" else D
    est.memory["moments"] = 8 * (4 * D * D + probes * probes + probes * D + n * probes)
    est.memory["weights"] = 3 * 8 * _fusion_params(cfg)
    records = _records(cfg, record)
    est.memory["trace"] = 2 * 8 * records * (K + 2)
    est.memory["fixed"] = FIXED_OVERHEAD
    est.disk["traces"] = 8 * records * (K + 2)
    est.disk["figures"] = _FIGURE_BYTES
    est.disk["summary"] = 64 << 10
    return est
