"""Shared plumbing of the benchmark scripts: running configs, files, docs sections, fits.

Every benchmark script builds a list of configs, runs them through
:func:`simcomp.sweep.run_batch` (the one place where the sweep machinery
trains and predicts a run) on a local process pool, and then writes

* ``benchmarks/results/<name>.csv``: one row per run (or per evaluated cell),
* ``docs/figures/<name>*.png``,
* its own section of ``docs/results.md``, between ``<!-- BEGIN name -->`` and
  ``<!-- END name -->``, replaced atomically so scripts can run independently.

Nothing in the docs is typed by hand: every number comes from the run.
"""

from __future__ import annotations

import atexit
import csv
import math
import multiprocessing
import os
import re
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
FIG_DIR = ROOT / "docs" / "figures"
DOC_PATH = ROOT / "docs" / "results.md"

# Canonical order of the sections in docs/results.md (a missing section is
# inserted at its place in this order).
SECTION_ORDER = (
    "summary",
    "winner_boundary",
    "learn_time",
    "colearning",
    "performance_gap",
    "theory_limits",
    "sweep_throughput",
    "noise_theory",
)

DOC_HEADER = """# Simulation against theory

Every number on this page is measured by a script in `benchmarks/` and written
here by that script (each one replaces only its own section, delimited by
HTML comments named after the script). Regenerate everything with

```bash
python benchmarks/run_all.py
```

or one section with `python benchmarks/<name>.py`; `python benchmarks/run_all.py --only
<name>` also replaces that benchmark's rows of the summary, and
`python benchmarks/mitigations.py --summary-only` reruns only the mitigation rows
(the population check and the costs, without the lab's grid). The per-run data are in
`benchmarks/results/<name>.csv`, the figures in `docs/figures/`. The theory
(docs/model.md section 5) is used exactly as `simcomp.theory` implements it; nothing
is tuned to the simulation.
"""


# --------------------------------------------------------------------------- configs

from simcomp.config import Config, config_from_dict  # noqa: E402
from simcomp.config_file import load_config  # noqa: E402
from simcomp.overrides import apply_overrides  # noqa: E402
from simcomp.outputs import write_text_atomic  # noqa: E402


def small_config(K: int = 2, dim: int = 32, n_train: int = 256, n_test: int = 512, width: int = 8,
                 steps: int = 300, trace_every: int = 50, mode: str = "joint",
                 sets: dict[str, Any] | None = None) -> Config:
    """A small K-modality problem of the sizes the benchmarks use (one numba thread per run).

    Starts from the embedded default (so unspecified keys keep their default
    values), sets K modalities of dimension ``dim`` without noise, then
    applies ``sets`` (dotted keys, e.g. ``{"data.modality.1.beta": 1.5}``).
    """
    raw = load_config(None)
    base_mod = dict(raw["data"]["modality"][0])
    mods = []
    for r in range(K):
        known = raw["data"]["modality"]
        mod = dict(known[r]) if r < len(known) else dict(base_mod)
        mod.pop("name", None)
        mod.update({"dim": dim, "noise": 0.0})
        mods.append(mod)
    raw["data"]["modality"] = mods
    raw["data"].update({"n_train": n_train, "n_test": n_test})
    raw["model"]["width"] = width
    raw["train"].update({"steps": steps, "trace_every": trace_every, "mode": mode, "threads": 1})
    raw = apply_overrides(raw, list((sets or {}).items()))
    return config_from_dict(raw)


# --------------------------------------------------------------------------- running

_POOL: ProcessPoolExecutor | None = None
_POOL_WORKERS = 0


def parse_args(doc: str | None, argv=None):
    """The arguments every benchmark script takes: ``--quick`` and ``--workers``."""
    import argparse

    parser = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny version (smoke test)")
    parser.add_argument("--workers", type=int, default=None, help="parallel processes")
    return parser.parse_args(argv)


def workers_default() -> int:
    return max(1, os.cpu_count() or 1)


def _shutdown_pool() -> None:
    global _POOL
    if _POOL is not None:
        _POOL.shutdown(wait=True, cancel_futures=True)
        _POOL = None


def _get_pool(workers: int) -> ProcessPoolExecutor:
    """One spawn-context pool per process, reused by every script that run_all imports."""
    global _POOL, _POOL_WORKERS
    if _POOL is not None and _POOL_WORKERS != workers:
        _shutdown_pool()
    if _POOL is None:
        _POOL = ProcessPoolExecutor(max_workers=workers,
                                    mp_context=multiprocessing.get_context("spawn"))
        _POOL_WORKERS = workers
        atexit.register(_shutdown_pool)
    return _POOL


def run_configs(configs: Sequence[Config], workers: int | None = None,
                label: str = "runs", batches_per_worker: int = 6) -> list[dict[str, Any]]:
    """Rows of :func:`simcomp.sweep.run_batch` for every config, in order, on a process pool.

    Each run uses one numba thread (``train.threads = 1``); the pool runs
    ``workers`` runs at a time.  Batches are made longest-first so that the
    pool does not wait on one long batch at the end.
    """
    from simcomp.sweep import run_batch

    configs = [c if c.train.threads == 1 else c.replace(**{"train.threads": 1}) for c in configs]
    workers = workers_default() if workers is None else workers
    start = time.perf_counter()
    if workers == 1 or len(configs) <= 1:
        rows = run_batch(list(configs))
    else:
        # Cost estimate: steps x runs per config; interleave big and small into batches.
        cost = [c.train.steps * (3 if c.train.mode == "compare" else 1) for c in configs]
        order = sorted(range(len(configs)), key=lambda i: -cost[i])
        n_batches = min(len(configs), workers * batches_per_worker)
        batches: list[list[int]] = [[] for _ in range(n_batches)]
        loads = [0.0] * n_batches
        for i in order:  # greedy: biggest remaining run to the lightest batch
            b = min(range(n_batches), key=loads.__getitem__)
            batches[b].append(i)
            loads[b] += cost[i]
        batches.sort(key=lambda b: -sum(cost[i] for i in b))
        pool = _get_pool(workers)
        futures = [(idx, pool.submit(run_batch, [configs[i] for i in idx]))
                   for idx in batches if idx]
        rows_by_index: dict[int, dict[str, Any]] = {}
        for idx, future in futures:
            for i, row in zip(idx, future.result()):
                rows_by_index[i] = row
        rows = [rows_by_index[i] for i in range(len(configs))]
    seconds = time.perf_counter() - start
    print(f"  {label}: {len(configs)} experiments in {seconds:.1f} s ({workers} workers)",
          flush=True)
    return rows


# --------------------------------------------------------------------------- files


def write_csv(name: str, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
              path: Path | None = None) -> Path:
    """Write rows to ``benchmarks/results/<name>.csv`` (atomically); None becomes an empty cell."""
    path = path or RESULTS_DIR / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    if columns is None:
        columns = []
        for row in rows:
            for key in row:
                if key not in columns:
                    columns.append(key)

    def cell(v):
        if v is None:
            return ""
        if isinstance(v, bool):
            return "1" if v else "0"
        if isinstance(v, (float, np.floating)):
            v = float(v)
            return "" if math.isnan(v) else repr(v)  # inf is written as inf
        return str(v)

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(columns)
            for row in rows:
                writer.writerow([cell(row.get(c)) for c in columns])
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


_SECTION_RE = re.compile(r"^<!-- BEGIN (\w+) -->$.*?^<!-- END \1 -->$\n?", re.S | re.M)


def update_section(name: str, body: str, path: Path | None = None) -> Path:
    """Replace the text between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` (docs/results.md).

    A missing file gets the page header; a missing section is inserted at its
    place in :data:`SECTION_ORDER`.  The file is written through a temporary
    file and a rename, so a reader never sees half a page.
    """
    path = path or DOC_PATH
    block = f"<!-- BEGIN {name} -->\n{body.rstrip()}\n<!-- END {name} -->\n"
    text = path.read_text(encoding="utf-8") if path.exists() else DOC_HEADER
    own = next((m for m in _SECTION_RE.finditer(text) if m.group(1) == name), None)
    if own is not None:
        text = text[:own.start()] + block + text[own.end():]
    else:
        rank = SECTION_ORDER.index(name) if name in SECTION_ORDER else len(SECTION_ORDER)
        insert_at = None
        for match in _SECTION_RE.finditer(text):
            other = match.group(1)
            other_rank = (SECTION_ORDER.index(other) if other in SECTION_ORDER
                          else len(SECTION_ORDER))
            if other_rank > rank:
                insert_at = match.start()
                break
        if insert_at is None:
            text = text.rstrip("\n") + "\n\n" + block
        else:
            text = text[:insert_at] + block + "\n" + text[insert_at:]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)
    return path


def fig_path(name: str) -> Path:
    FIG_DIR.mkdir(parents=True, exist_ok=True)
    return FIG_DIR / f"{name}.png"


def fig_link(name: str, alt: str) -> str:
    """Markdown image link from docs/results.md to docs/figures/<name>.png."""
    return f"![{alt}](figures/{name}.png)"


def output_paths(quick: bool, name: str) -> dict[str, Path | None]:
    """Where a script writes: the real places, or a scratch directory for --quick."""
    if not quick:
        return {"csv": RESULTS_DIR / f"{name}.csv", "fig_dir": FIG_DIR, "doc": DOC_PATH}
    scratch = Path(os.environ.get("SIMCOMP_BENCH_SCRATCH")
                   or tempfile.mkdtemp(prefix="simcomp-bench-"))
    scratch.mkdir(parents=True, exist_ok=True)
    return {"csv": scratch / f"{name}.csv", "fig_dir": scratch, "doc": scratch / "results.md"}


# --------------------------------------------------------------------------- statistics


def logistic_fit(x: np.ndarray, y: np.ndarray, ridge: float = 1e-6, max_iter: int = 100):
    """Fit P(y = 1) = 1 / (1 + exp(-(b0 + b1 x))) by Newton's method (IRLS).

    A tiny ridge penalty on b1 keeps the fit finite when the classes are
    perfectly separated (then b1 is large and only the boundary location
    -b0/b1 is meaningful).  Returns ``(location, width, b0, b1, converged)``
    with ``location = -b0/b1`` and ``width = 1/b1`` (the x distance from 50%
    to 73% probability).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    scale = max(np.std(x), 1e-12)
    xs = (x - x.mean()) / scale
    Xd = np.column_stack([np.ones_like(xs), xs])
    beta = np.zeros(2)
    penalty = np.diag([0.0, ridge * len(x)])
    converged = False
    for _ in range(max_iter):
        eta = Xd @ beta
        p = 1.0 / (1.0 + np.exp(-np.clip(eta, -700, 700)))
        w = np.maximum(p * (1.0 - p), 1e-12)
        grad = Xd.T @ (y - p) - penalty @ beta
        hess = (Xd * w[:, None]).T @ Xd + penalty
        step = np.linalg.solve(hess, grad)
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10 * (1.0 + np.max(np.abs(beta))):
            converged = True
            break
    b1 = beta[1] / scale
    b0 = beta[0] - beta[1] * x.mean() / scale
    location = -b0 / b1 if b1 != 0 else float("nan")
    width = 1.0 / b1 if b1 != 0 else float("inf")
    return float(location), float(width), float(b0), float(b1), converged


def quantiles(values: Iterable[float], qs=(0.5, 0.9)) -> list[float]:
    arr = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if arr.size == 0:
        return [float("nan")] * len(qs)
    return [float(np.quantile(arr, q)) for q in qs]


def pct(x: float, digits: int = 1) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.{digits}f}%"


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; a '|' inside a cell is escaped so that it does not split the cell."""

    def cell(c):
        return str(c).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(cell(c) for c in row) + " |")
    return "\n".join(lines)


def sizes_text(cfg: Config, init: bool = True) -> str:
    """One line with the problem sizes of a config, for the docs."""
    mods = cfg.data.modality
    dims = sorted({m.dim for m in mods})
    return (f"d = {', '.join(map(str, dims))}, n_train = {cfg.data.n_train}, "
            f"n_test = {cfg.data.n_test}, width m = {cfg.model.width}"
            + (f", sigma_0 = {cfg.model.init_scale:g}" if init else "")
            + f", eta = {cfg.train.lr:g}, rho = {cfg.model.rho:g}")


# --------------------------------------------------------------------------- plotting


def plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    pyplot.rcParams.update({
        "figure.dpi": 110,
        "savefig.dpi": 150,
        "font.size": 10,
        "axes.titlesize": 11,
        "axes.labelsize": 10,
        "legend.fontsize": 8.5,
        "axes.grid": True,
        "grid.alpha": 0.3,
    })
    return pyplot


def save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    import matplotlib.pyplot as pyplot

    pyplot.close(fig)


class Timer:
    def __init__(self):
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


def script_main(fn: Callable[[list[str] | None], Any]) -> None:
    """Run a script's main under the spawn-safe guard, with a clean exit code."""
    sys.exit(0 if fn(None) is not False else 1)


# --------------------------------------------------------------------------- theory helpers


def initial_race(cfg: Config, trained: Sequence[int] | None = None):
    """The race of a run before it runs: (Gamma, kappa, race steps per modality).

    Draws the run's data and initial weights exactly as the simulator will
    (the same seed streams) and asks the theory's own prediction
    (:func:`simcomp.experiment.predict_run`), so it can size a run's horizon.
    """
    from simcomp.data import make_experiment_data
    from simcomp.experiment import predict_run
    from simcomp.trace import geometry

    trained = list(range(cfg.K)) if trained is None else list(trained)
    data = make_experiment_data(cfg.replace(**{"data.n_test": 1}))
    a0 = geometry([data.init[r] for r in trained], [data.dictionaries[r] for r in trained])[0]
    pred = predict_run(cfg, data, trained, a0, noise_aware=False)  # the race is all it needs
    return pred.gamma, pred.kappa, pred.race_learned_step


def horizon_for(cfg: Config, which: str = "min", factor: float = 1.5, pad: int = 10,
                cap: int = 4000, trained: Sequence[int] | None = None) -> int:
    """A horizon just long enough: factor x the race's step (first or last modality) + pad."""
    _, _, race = initial_race(cfg, trained)
    finite = race[np.isfinite(race)]
    if finite.size == 0:
        return cap
    t = finite.min() if which == "min" else finite.max()
    return int(min(cap, math.ceil(factor * t) + pad))


def winner_x(row: dict[str, Any], names=("A", "B")) -> float:
    """The row's winner coordinate; an empty one (a Gamma of 0: that modality never starts)
    becomes -inf or +inf."""
    x = row.get("winner_coordinate_joint")
    if x is not None:
        return float(x)
    g1 = row.get(f"initial_leading_alignment_{names[0]}") or 0.0
    g2 = row.get(f"initial_leading_alignment_{names[1]}") or 0.0
    if g2 <= 0 and g1 > 0:
        return -math.inf
    if g1 <= 0 and g2 > 0:
        return math.inf
    return math.nan
