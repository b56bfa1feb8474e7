"""Speed of one gradient-descent step: simcomp against NumPy, PyTorch and the machine's limits.

For three problem sizes (K = 2 modalities, symmetric learner, q = 3):

=========  =======  =====  ========  ===========================
size       d        m      n         note
=========  =======  =====  ========  ===========================
small      32       4      128       one run of a typical sweep
default    128      8      512       docs/model.md section 6
large      1024     16     4096      X is 64 MiB: memory matters
=========  =======  =====  ========  ===========================

it measures the time per full-batch GD step (forward, loss derivative,
backward, update) of

* simcomp, one thread (the serial kernel) and all threads (the parallel
  kernel), and, for the small size, many runs per compiled call (the batched
  kernel a sweep uses, all threads);
* a plain vectorised NumPy implementation of the same step (two matmuls and
  element-wise work, float64, the BLAS with its default threads), defined in
  ``speed_measure.py`` with the other measurements;
* PyTorch eager on the CPU, when torch is installed (it is not a dependency
  of simcomp; the benchmark skips it otherwise);

and puts them against the machine: its measured dgemm rate (a large NumPy
matmul) for FLOPs = 4 n K B m D per step, and its measured memory read
bandwidth (summing a large array) for reading X once per step. All numbers
of one table come from one run, repetitions interleaved, best of N. Before
anything is timed, one simcomp step is checked against the NumPy step
(agreement to 1e-12 relative).

It also measures the sweep throughput (400 small runs of 2000 steps in
compare mode through ``simcomp.train.train_batch``, data generation and
tracing included; the theory predictions a sweep row also needs are timed
on a sample and extrapolated) and the start-up of ``simcomp simulate`` (time
to the first GD step and total, with a warm numba cache).

OpenBLAS reads OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE at load time; when
either is set, this script re-executes itself without them (for its own
process only) so that NumPy runs the kernel it would pick by itself.

Run:  python benchmarks/speed.py            (writes docs/performance.md, ~10 min)
      python benchmarks/speed.py --quick    (smoke run; prints, writes only with --out)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"
_SCRUBBED = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_REEXEC_FLAG = "SIMCOMP_SPEED_REEXECED"


def _reexec_without_openblas_overrides() -> dict:
    """Re-run this script without the OpenBLAS overrides; returns what was removed."""
    removed = {key: os.environ[key] for key in _SCRUBBED if key in os.environ}
    if os.environ.get(_REEXEC_FLAG):
        return json.loads(os.environ[_REEXEC_FLAG])
    if removed:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
        env[_REEXEC_FLAG] = json.dumps(removed)
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    return removed


if __name__ == "__main__":
    _REMOVED_ENV = _reexec_without_openblas_overrides()
else:  # imported (e.g. by a test): measure as the environment is
    _REMOVED_ENV = {}

if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))
if str(ROOT / "benchmarks") not in sys.path:  # its measurements module, when imported
    sys.path.insert(0, str(ROOT / "benchmarks"))

import numba  # noqa: E402
import numpy as np  # noqa: E402

from speed_measure import (  # noqa: E402
    METHOD_TARGETS,
    PAUSE,
    SIZES,
    machine_limits,
    measure_dispatch,
    measure_hook_methods,
    measure_methods,
    measure_size,
    measure_small_batch,
    measure_simulate_step,
    measure_startup,
    measure_sweep,
)


# --------------------------------------------------------------------------- report


def machine_info() -> dict:
    cpu = platform.processor() or "unknown"
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu in ("unknown", "", "x86_64"):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line
    except OSError:
        pass
    simd = [f for f in ("avx512f", "avx2", "fma") if f" {f}" in flags]
    info = {"cpu": cpu, "simd": simd, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "numba": numba.__version__,
            "numba_threads": numba.config.NUMBA_NUM_THREADS,
            "threading_layer": None, "blas": None, "torch": None, "removed_env": _REMOVED_ENV}
    import llvmlite.binding as llvm

    info["llvm_cpu"] = llvm.get_host_cpu_name()
    try:
        import threadpoolctl

        info["blas"] = [
            {k: v for k, v in lib.items() if k in ("internal_api", "version", "architecture",
                                                   "num_threads", "threading_layer")}
            for lib in threadpoolctl.threadpool_info() if lib.get("user_api") == "blas"]
    except ImportError:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        info["blas"] = [{"name": blas.get("name"), "version": blas.get("version"),
                         "note": "threadpoolctl not installed: kernel not known"}]
    return info


def fmt_t(seconds):
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def _cold_start_lines(startup) -> list[str]:
    """Where the cold run's time went: each kernel's compile time, as that run measured it."""
    compiled = startup["cold"].get("compiled") or {}
    if not compiled:
        return []
    total = startup["cold"]["total_s"]
    spent = sum(compiled.values())
    warm = min(s["total_s"] for s in startup["warm"])
    lines = ["", f"Compilation in the cold run, by kernel the run calls (what a kernel calls "
             f"is compiled inside it): {spent:.1f} s of its {total:.1f} s; the other "
             f"{total - spent:.1f} s are the run itself ({warm:.2f} s warm) and numba's "
             f"first-use set-up.", "", "| kernel | compile time |", "|---|---|"]
    for name, seconds in sorted(compiled.items(), key=lambda kv: -kv[1]):
        if seconds >= 0.05:
            lines.append(f"| `{name}` | {seconds:.2f} s |")
    top, top_s = max(compiled.items(), key=lambda kv: kv[1])
    lines += ["", f"`{top}` alone compiles for {top_s:.1f} s"
              + (f", longer than 4 warm runs ({4 * warm:.1f} s)" if top_s > 4 * warm else "")
              + ": numba compiles it, with the register tiles, the units and the "
              "training-rule stage it calls, for the run's types on this CPU. What was cut: the run compiles one specialisation "
              "of each level of the gradient (literal arguments had made numba compile "
              "two or three), only the serial gradient at the default size, and no "
              "shape-error formatting in the theory kernels. The 4x target would need "
              "machine code shipped with the package (numba's cache is specific to the "
              "CPU and to the installed source files) or a first run on other arithmetic "
              "than later runs, which would break bit-for-bit reproducibility from the "
              "seed; neither is done."]
    return lines


def render(info, limits, sizes, batch, sweep, startup, args, methods) -> str:
    lines = ["# Performance", "",
             "Generated by `python benchmarks/speed.py` -- every number below is measured by",
             "that script in one run; nothing is typed by hand. Times are the best of "
             f"{args.repeats} interleaved repetitions (wall clock), each after a "
             f"{PAUSE:g} s rest so that no library is timed while another's idle worker "
             "threads still spin on the cores.", ""]
    lines += ["## Machine", "",
              f"- CPU: {info['cpu']} ({info['llvm_cpu']} for LLVM), {info['cores']} cores, "
              f"SIMD: {', '.join(info['simd']) or 'none found'}",
              f"- Python {info['python']}, NumPy {info['numpy']}, numba {info['numba']} "
              f"({info['numba_threads']} threads, layer {info['threading_layer']})",
              f"- BLAS: {json.dumps(info['blas'])}",
              f"- PyTorch: {info['torch'] or 'not measured (not installed, or --no-torch)'}",
              "- OpenBLAS overrides removed for this run: "
              f"{info['removed_env'] or 'none were set'}",
              f"- load average (1 min) at start / end: {args.load_start:.2f} / "
              f"{args.load_end:.2f} -- other work on the machine slows every column alike, "
              "but not always equally (multi-threaded code suffers most)",
              f"- measured dgemm rate ({limits['dgemm_size']}^2 matmul, BLAS default threads): "
              f"{limits['dgemm_flops'] / 1e9:.1f} GFLOP/s",
              f"- measured memory read bandwidth (sum of {limits['read_mib']} MiB): "
              f"{limits['read_bytes_per_s'] / 1e9:.1f} GB/s", ""]
    has_torch = any("torch_s" in s for s in sizes)
    lines += ["## Time per GD step", "",
              "One full-batch step of the symmetric learner (q = 3), K = 2 modalities, float64 "
              "unless noted. simcomp 1t is the serial kernel, all-t the parallel kernel on "
              f"{info['numba_threads']} threads; f32 is simcomp in float32.", ""]
    head = "| size (d, m, n) | simcomp 1t | simcomp all-t | simcomp f32 1t | NumPy |"
    sep = "|---|---|---|---|---|"
    if has_torch:
        head += " PyTorch |"
        sep += "---|"
    head += " NumPy / simcomp | GFLOP/s (% of dgemm) | GB/s read (% of bandwidth) |"
    sep += "---|---|---|"
    lines += [head, sep]
    for s in sizes:
        best = min(s["simcomp_1t_s"], s["simcomp_all_s"])
        row = (f"| {s['size']} ({s['d']}, {s['m']}, {s['n']}) | {fmt_t(s['simcomp_1t_s'])} | "
               f"{fmt_t(s['simcomp_all_s'])} | {fmt_t(s['simcomp_f32_1t_s'])} | "
               f"{fmt_t(s['numpy_s'])} |")
        if has_torch:
            row += f" {fmt_t(s['torch_s'])} |" if "torch_s" in s else " - |"
        gf = s["flops_per_step"] / best
        bw = s["bytes_per_step"] / best
        row += (f" {s['numpy_s'] / best:.1f}x | {gf / 1e9:.1f} "
                f"({100 * gf / limits['dgemm_flops']:.0f}%) | {bw / 1e9:.1f} "
                f"({100 * bw / limits['read_bytes_per_s']:.0f}%) |")
        lines.append(row)
    lines += ["", "FLOPs per step = 4 n K B m D (forward and backward multiply-adds); bytes per "
              "step = X read once. The ratio and the rates use simcomp's faster column. Before "
              "timing, one simcomp step was checked against the NumPy step: max relative "
              "difference " + ", ".join(f"{s['size']} {s['check_error']:.1e}" for s in sizes)
              + " (must be <= 1e-12).", ""]
    small = next(s for s in sizes if s["size"] == "small")
    lines += ["### Small runs in batches", "",
              f"{batch['runs']} small runs of {batch['steps']} steps per call of the batched "
              f"kernel on {batch['threads']} threads: {batch['run_steps_per_s']:.3g} run-steps/s, "
              f"{batch['run_steps_per_s'] * small['numpy_s']:.1f}x the NumPy throughput "
              f"(one run at a time: {1 / small['numpy_s']:.3g} steps/s)"
              + (f", {batch['run_steps_per_s'] * small['torch_s']:.1f}x PyTorch's"
                 if "torch_s" in small else "") + ".", ""]
    lines += ["## Targets", "", "| target | measured | met |", "|---|---|---|"]
    by = {s["size"]: s for s in sizes}

    def best(s):
        return min(s["simcomp_1t_s"], s["simcomp_all_s"])

    def target(label, value, ok):
        lines.append(f"| {label} | {value} | {'yes' if ok else 'no'} |")

    r = by["default"]["numpy_s"] / best(by["default"])
    target("default size >= 3x faster per step than NumPy", f"{r:.1f}x", r >= 3)
    r = by["large"]["numpy_s"] / best(by["large"])
    target("large size >= 1.5x faster than NumPy", f"{r:.1f}x", r >= 1.5)
    frac = by["large"]["flops_per_step"] / best(by["large"]) / limits["dgemm_flops"]
    target("large size >= 50% of measured dgemm rate", f"{100 * frac:.0f}%", frac >= 0.5)
    r = batch["run_steps_per_s"] * by["small"]["numpy_s"]
    target("small size >= 10x the NumPy throughput (batched)", f"{r:.1f}x", r >= 10)
    target(f"{sweep['runs']}-run small sweep of {sweep['steps']} steps <= 60 s "
           "(data, training, tracing)", f"{sweep['seconds']:.1f} s", sweep["seconds"] <= 60)
    if has_torch:
        beaten = all(best(s) < s["torch_s"] for s in sizes if "torch_s" in s)
        worst = max(best(s) / s["torch_s"] for s in sizes if "torch_s" in s)
        target("PyTorch CPU beaten at every size", f"simcomp/PyTorch time <= {worst:.2f}",
               beaten)
    for name, ratio in methods["ratio"].items():
        if name == "none":
            continue
        limit = METHOD_TARGETS.get(name, 1.3)
        target(f"method `{name}`: cost per step <= {limit:g}x `none`", f"{ratio:.2f}x",
               ratio <= limit)
    warm = min(s["total_s"] for s in startup["warm"])
    cold = startup["cold"]["total_s"]
    target("warm `simcomp simulate` (default config, whole run) <= 1.5 s", f"{warm:.2f} s",
           warm <= 1.5)
    target("cold `simcomp simulate` (empty numba cache) <= 4x a warm one",
           f"{cold:.1f} s = {cold / warm:.1f}x", cold <= 4 * warm)
    lines += ["", "## Training rules", "",
              "Cost per GD step of each method (the training rules of the kernels) relative "
              f"to `none`, at the default size on one thread (serial kernel, {methods['steps']} "
              "steps per timing, best CPU time of the process, so that waiting for a core "
              f"does not count; `none` takes {fmt_t(methods['none_s'])} per step; umt's "
              "teachers are not included; dropout at drop 0.3):", "",
              "| method | " + " | ".join(methods["ratio"]) + " |",
              "|---|" + "---|" * len(methods["ratio"]),
              "| cost / none | " + " | ".join(f"{v:.2f}" for v in methods["ratio"].values())
              + " |"]
    lines += ["", "## Sweep throughput", "",
              f"{sweep['runs']} small runs (K = 2, d = 32, m = 4, n = 128 training and 4096 "
              f"test samples), compare mode ({sweep['trainings']} trainings), {sweep['steps']} "
              "steps each, through `simcomp.train.train_batch(..., record=False)` on "
              f"{sweep['threads']} threads:", "",
              f"- total {sweep['seconds']:.1f} s: data generation {sweep['data_seconds']:.1f} s, "
              f"training and tracing {sweep['train_seconds']:.1f} s "
              f"({sweep['run_steps_per_s']:.3g} run-steps/s);",
              f"- the theory predictions of a sweep row (`theory.predict`, one run at a time) "
              f"would add about {sweep['predict_seconds_extrapolated']:.1f} s on one core "
              f"(measured on {sweep['predict_sample']} runs, extrapolated); they are not part "
              "of the target above.", ""]
    large, default = by["large"], by["default"]
    per_core = limits["dgemm_flops"] / max(info["numba_threads"], 1)
    default_rate = default["flops_per_step"] / default["simcomp_1t_s"]
    large_bw = 2 * large["bytes_per_step"] / large["simcomp_all_s"]
    lines += ["## What limits each size", "",
              f"- default: the forward and backward products run as register tiles of fused "
              f"multiply-adds at {default_rate / 1e9:.0f} "
              f"GFLOP/s on one core (the machine's dgemm: {per_core / 1e9:.0f} per core); "
              "the rest of a step (nonlinearity, loss derivative, update, checks) and, on "
              "two threads, the reduction of the per-chunk gradients and the fork/join of "
              "every step.",
              f"- large: X is {large['bytes_per_step'] / 2**20:.0f} MiB and each step reads two "
              f"packed copies of it ({large_bw / 1e9:.0f} "
              "GB/s on all threads, prefetched ahead of the tiles), so two threads share the "
              "memory bandwidth; one thread computes at "
              f"{large['flops_per_step'] / large['simcomp_1t_s'] / 1e9:.0f} GFLOP/s.",
              "- small: a step is a few microseconds, so fixed costs per step (the "
              "nonlinearity of 1024 units, one exp per sample, the checks) weigh as much "
              "as the products; the parallel kernel cannot help (128 samples are one block), "
              "which is why small runs go through the batched kernel, one run per thread.",
              "",
              "How (details in the module notes of the `simcomp/kernels/` package): register tiles "
              "written in LLVM IR (`llvm.fma`, eight 512-bit accumulators), X packed once per "
              "run into a forward and a backward layout that the tiles stream in order, L2 "
              "prefetch for data beyond the caches, one vectorised exp per sample shared by the "
              "loss and its derivative, the loss's log1p only at steps whose loss is used, and "
              "a run-time choice between the serial and the parallel gradient (bit-identical) "
              "by timing both on the run.", ""]
    lines += ["## Start-up", "",
              "`simcomp simulate` with the default config in a fresh process (time from "
              "starting the process): first with an empty numba cache (compiling every kernel "
              "the run needs), then with the cache that run wrote.", "",
              "| run | cache | first GD step | total (incl. figures) |", "|---|---|---|---|"]
    c = startup["cold"]
    lines.append(f"| 1 | cold{' (announced on stderr)' if c['announced'] else ''} | "
                 f"{c['first_step_s']:.2f} s | {c['total_s']:.2f} s |")
    for i, s in enumerate(startup["warm"], 2):
        lines.append(f"| {i} | warm | {s['first_step_s']:.2f} s | {s['total_s']:.2f} s |")
    lines += _cold_start_lines(startup)
    lines += ["", "## Reproduce", "", "```bash",
              "python benchmarks/speed.py          # this page (about 2 minutes)",
              "python benchmarks/speed.py --quick  # smoke run, prints only",
              "python benchmarks/speed.py --only-methods  # the methods' costs alone (a section)",
              "```", "",
              "PyTorch is measured only when installed (`pip install torch`; it is not a "
              "dependency). threadpoolctl, when installed, names the BLAS kernel. How the "
              "kernels reach these numbers is described in the module notes of "
              "`simcomp/kernels/`.", ""]
    history = ROOT / "benchmarks" / "kernel_history.md"
    if history.exists():  # design notes and past measurements, kept as written then
        lines += [history.read_text().rstrip(), ""]
    return "\n".join(lines)


SIMULATE_TARGET = 1.2
_SIM_BEGIN, _SIM_END = "<!-- BEGIN simulate_step -->", "<!-- END simulate_step -->"


def simulate_step_section(res: dict, load: float) -> str:
    """The page's section on a simulate step against a training step (between markers)."""
    t1, t2 = res["steps"]
    ok = res["ratio"] <= SIMULATE_TARGET
    lines = [_SIM_BEGIN, "## A `simulate` step against a training step", "",
             f"The default config (compare mode: the joint and both uni-modal runs), warm, "
             f"in one process: the whole experiment (`simcomp.experiment.run_experiment`: "
             f"data, training and tracing, every prediction -- race, reduced dynamics, the "
             f"distribution-level noise-aware dynamics and the tracked check --, the expected "
             f"test errors) and the training of the same runs alone (`train_run`), each at "
             f"T = {t1} and T = {t2} steps, best process CPU time of {res['repeats']} "
             f"interleaved repetitions (waiting for a core does not count). The cost of a step is the "
             f"difference divided by {t2 - t1} (fixed costs cancel).", "",
             "| | per step |", "|---|---|",
             f"| simulate (everything) | {fmt_t(res['simulate_step_s'])} |",
             f"| training alone | {fmt_t(res['train_step_s'])} |",
             f"| ratio | {res['ratio']:.2f}x |", "",
             "Inside a simulate step, the noise-aware dynamics alone (same clock and "
             "horizons, summed over the three runs; their expected errors are fixed costs):",
             "", "| dynamics | per step |", "|---|---|",
             f"| distribution-level prediction (`predicted_*`, on its quadrature nodes) | "
             f"{fmt_t(res['predicted_dynamics_step_s'])} |",
             f"| tracked check (`tracked_*`, on the training set) | "
             f"{fmt_t(res['tracked_dynamics_step_s'])} |", "",
             "A neuron's step in both is two vectorised passes over the samples: the update "
             "of its noise pre-activations with its alignment drive summed in 32 vector "
             "partial sums (`simcomp/theory/drive.py`, LLVM IR), then its forward pass; the "
             "loss coefficients' exponentials are taken on vectors "
             "(`simcomp/theory/coefficients.py`).", "",
             f"Target: a simulate step costs at most {SIMULATE_TARGET:g}x a training step -- "
             f"{'met' if ok else '**not met**'} ({res['ratio']:.2f}x). 1-minute load average "
             f"during the measurement: {load:.1f} (2 cores; above 2 the machine was shared).",
             _SIM_END]
    return "\n".join(lines)


def write_simulate_section(out: Path, text: str) -> None:
    """Replace the simulate-step section of ``out`` (or insert it before '## Reproduce')."""
    write_marked_section(out, text, _SIM_BEGIN, _SIM_END)


_DISPATCH_BEGIN, _DISPATCH_END = "<!-- BEGIN dispatch -->", "<!-- END dispatch -->"


def dispatch_section(res: dict, load: float) -> str:
    """The page's section on how the compiled loop reaches a method's stage (between markers)."""
    names = res["methods"]
    chain_total = sum(res["compile_chain_s"].values())
    own_total = sum(res["compile_own_s"].values())
    ratios = [res["step_ratio"][n] for n in names]
    lines = [_DISPATCH_BEGIN, "## Method dispatch: one branch chain or one loop per method", "",
             "How the compiled loop reaches a method's stage, measured in one run "
             "(`python benchmarks/speed.py --only-dispatch`) in a fresh process with an empty "
             "numba cache, default size, one thread. *Chain*: the rule's code is an int64 "
             "and the stages are one chain of branches on it, so one compilation serves every "
             "method (what simcomp does). *Own loop*: the code is part of the rule's type "
             "(what passing each method's stage functions into the loop amounts to), so "
             "the loop is compiled once per method with the other methods' branches gone. "
             "Plain training compiles without any rule code either way "
             f"({res['compile_plain_s']:.1f} s first call).", "",
             "| method | first call, chain | first call, own loop | step, own / chain |",
             "|---|---|---|---|"]
    for n in names:
        lines.append(f"| `{n}` | {res['compile_chain_s'][n]:.2f} s | "
                     f"{res['compile_own_s'][n]:.2f} s | {res['step_ratio'][n]:.3f} |")
    faster = [1.0 - r for r in ratios]
    lines += ["", f"Compiling every method: {chain_total:.1f} s through the chain (the first "
              f"method pays it, the others reuse it) against {own_total:.1f} s with a loop per "
              f"method ({own_total / chain_total:.1f}x). Per step, the own loop costs "
              f"{min(ratios):.3f}x to {max(ratios):.3f}x the chain (median "
              f"{sorted(ratios)[len(ratios) // 2]:.3f}x): removing the other methods' "
              f"branches gains at most {100 * max(faster):.1f}% of a step, while every "
              f"method's first run on a machine would pay a compilation of its own. simcomp "
              "keeps the single chain: a sweep over methods, or a user trying one method after "
              "another, compiles once. 1-minute load average during the measurement: "
              f"{load:.1f} (2 cores; above 2 the machine was shared, which inflates the "
              "compile times of both sides alike).", _DISPATCH_END]
    return "\n".join(lines)


_METHODS_BEGIN, _METHODS_END = "<!-- BEGIN methods alone -->", "<!-- END methods alone -->"


def methods_section(methods: dict, load: float) -> str:
    """The cost of every training rule measured on its own (``--only-methods``), between markers."""
    ratio = methods["ratio"]
    lines = [_METHODS_BEGIN, "## Training rules, measured alone", "",
             "The method-cost measurement of the full run, repeated on its own "
             "(`python benchmarks/speed.py --only-methods`, the same timing: default size, one "
             f"thread, serial kernel, {methods['steps']} steps per timing, best CPU time of the "
             f"process; `none` takes {fmt_t(methods['none_s'])} per step; every method at its "
             "defaults but dropout at drop 0.3; 1-minute load average "
             f"{load:.1f} on 2 cores, so the ratios carry a few percent of noise):", "",
             "| method | cost / none | target | met |", "|---|---|---|---|"]
    for name, r in ratio.items():
        if name == "none":
            continue
        limit = METHOD_TARGETS.get(name, 1.3)
        lines.append(f"| `{name}` | {r:.2f} | <= {limit:g} | {'yes' if r <= limit else 'no'} |")
    lines.append(_METHODS_END)
    return "\n".join(lines)


_HOOKS_BEGIN, _HOOKS_END = "<!-- BEGIN hook methods -->", "<!-- END hook methods -->"


def hooks_section(hooks: dict, load: float) -> str:
    """The cost per step of the methods that work between compiled segments, their work
    included (``--only-methods``), between markers."""
    t1, t2 = hooks["steps"]
    lines = [_HOOKS_BEGIN, "## Methods with work between segments", "",
             "Methods that also work between compiled segments (their registry module's "
             "`hook`: held-out probes, resets), per step of a whole training run with that work "
             "included (`python benchmarks/speed.py --only-methods`; default config, joint run, "
             f"one thread, no tracing; runs of {t1} and {t2} steps, the difference per extra "
             "step, so that fixed costs cancel and every probe round and reset of the run "
             f"counts; `none` {fmt_t(hooks['none_s'])} per step; 1-minute load average "
             f"{load:.1f} on 2 cores):", "",
             "| method | cost / none, hook included |", "|---|---|"]
    for n, r in hooks["ratio"].items():
        lines.append(f"| `{n}` | {r:.2f} |")
    lines += ["", "`gblending` trains K + 1 probe copies for `probe_steps` steps every `every` "
              "steps and evaluates each on the training set and the held-out sample: about "
              "1 + (K + 1) probe_steps / every x the work of a step at the defaults plus the "
              "evaluations, inherent to the method (the published one trains K + 1 extra models "
              "per super-epoch). `relearning` diagnoses `count` times in a run (unit outputs of "
              "both sets and a 2-means, in NumPy), a cost amortised over the run.", _HOOKS_END]
    return "\n".join(lines)


def write_marked_section(out: Path, text: str, begin: str, end: str) -> None:
    """Replace the marked section of ``out`` (or insert it before '## Reproduce')."""
    page = out.read_text() if out.exists() else ""
    if begin in page and end in page:
        head, rest = page.split(begin, 1)
        page = head + text + rest.split(end, 1)[1]
    elif "## Reproduce" in page:
        head, rest = page.split("## Reproduce", 1)
        page = head + text + "\n\n## Reproduce" + rest
    else:
        page = page.rstrip("\n") + "\n\n" + text + "\n"
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page)
    tmp.replace(out)


def keep_foreign_blocks(out: Path, text: str) -> str:
    """``text`` with every marked section (``<!-- BEGIN x -->`` ... ``<!-- END x -->``) of the
    current page that ``text`` lacks put back before '## Reproduce': sections written by other
    scripts (benchmarks/fusion.py, sweep_throughput.py --first-sweep) or measured apart."""
    page = out.read_text() if out.exists() else ""
    for match in re.finditer(r"<!-- BEGIN (.+?) -->.*?<!-- END \1 -->", page, re.S):
        block = match.group(0)
        if f"<!-- BEGIN {match.group(1)} -->" in text:
            continue
        if "## Reproduce" in text:
            head, rest = text.split("## Reproduce", 1)
            text = head + block + "\n\n## Reproduce" + rest
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
    return text


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fast smoke variant")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"markdown output (default {DOC.relative_to(ROOT)}; "
                             "--quick writes only when given)")
    parser.add_argument("--repeats", type=int, default=None, help="timing repetitions")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated sizes")
    parser.add_argument("--only-simulate-step", action="store_true",
                        help="measure only a simulate step against a training step and update "
                        "that section of the page")
    parser.add_argument("--only-dispatch", action="store_true",
                        help="measure only the method dispatch (branch chain against a loop "
                        "per method) and update that section of the page")
    parser.add_argument("--only-methods", action="store_true",
                        help="measure only the cost of every training rule and update that "
                        "section of the page")
    args = parser.parse_args(argv)
    if args.only_methods:
        res = measure_methods(args.repeats or (2 if args.quick else 15), args.quick)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        text = methods_section(res, load)
        print(text)
        target = args.out if args.out is not None else (None if args.quick else DOC)
        if target is not None:
            write_marked_section(target, text, _METHODS_BEGIN, _METHODS_END)
            print(f"wrote the methods section of {target}")
        hooks = measure_hook_methods(args.repeats or (2 if args.quick else 9), args.quick)
        text = hooks_section(hooks, load)
        print(text)
        if target is not None:
            write_marked_section(target, text, _HOOKS_BEGIN, _HOOKS_END)
        if target == DOC:  # the repository's page: the raw numbers beside it
            raw = ROOT / "benchmarks" / "results" / "method_cost.json"
            raw.write_text(json.dumps({"methods": res, "hooks": hooks, "load": load},
                                      indent=1) + "\n")
        return {**res, "hooks": hooks}
    if args.only_dispatch:
        res = measure_dispatch(args.quick)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        text = dispatch_section(res, load)
        print(text)
        target = args.out if args.out is not None else (None if args.quick else DOC)
        if target is not None:
            write_marked_section(target, text, _DISPATCH_BEGIN, _DISPATCH_END)
            raw = ROOT / "benchmarks" / "results" / "dispatch.json"
            raw.write_text(json.dumps({**res, "load": load}, indent=1) + "\n")
            print(f"wrote the dispatch section of {target} and {raw.relative_to(ROOT)}")
        return res
    if args.only_simulate_step:
        res = measure_simulate_step(steps=(100, 300) if args.quick else (300, 1300))
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"simulate step {fmt_t(res['simulate_step_s'])}, training step "
              f"{fmt_t(res['train_step_s'])}: ratio {res['ratio']:.2f}")
        target = args.out if args.out is not None else (None if args.quick else DOC)
        if target is not None:
            write_simulate_section(target, simulate_step_section(res, load))
            print(f"wrote the simulate-step section of {target}")
        return res
    args.repeats = args.repeats or (2 if args.quick else 15)
    out = args.out if args.out is not None else (None if args.quick else DOC)
    args.load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    torch = None
    if not args.no_torch:
        try:
            import torch  # noqa: F811
        except ImportError:
            torch = None
    info = machine_info()
    if torch is not None:
        info["torch"] = f"{torch.__version__} ({torch.get_num_threads()} threads)"
    log = print
    log(f"machine: {info['cpu']}, {info['cores']} cores, BLAS {info['blas']}")
    limits = machine_limits(args.quick)
    log(f"dgemm {limits['dgemm_flops'] / 1e9:.1f} GFLOP/s, "
        f"read {limits['read_bytes_per_s'] / 1e9:.1f} GB/s")
    sizes = []
    for name in args.sizes.split(","):
        res = measure_size(name, SIZES[name], torch, args.repeats, args.quick)
        sizes.append(res)
        log(f"{name}: " + ", ".join(f"{k[:-2]} {fmt_t(v)}" for k, v in res.items()
                                     if k.endswith("_s")))
    info["threading_layer"] = numba.threading_layer()
    batch = measure_small_batch(torch, args.repeats, args.quick)
    log(f"small batched: {batch['run_steps_per_s']:.3g} run-steps/s")
    methods = measure_methods(args.repeats, args.quick)
    log("methods: " + ", ".join(f"{k} {v:.2f}" for k, v in methods["ratio"].items()))
    sweep = measure_sweep(args.quick)
    log(f"sweep: {sweep['seconds']:.1f} s for {sweep['runs']} runs")
    startup = measure_startup(1 if args.quick else 3)
    log(f"startup: {startup}")
    simulate_step = measure_simulate_step(steps=(100, 300) if args.quick else (300, 1300))
    log(f"simulate step / training step: {simulate_step['ratio']:.2f}")
    args.load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    result = {"machine": info, "limits": limits, "sizes": sizes, "batch": batch,
              "sweep": sweep, "startup": startup, "methods": methods,
              "simulate_step": simulate_step}
    if out is not None and set(s["size"] for s in sizes) == set(SIZES):
        text = render(info, limits, sizes, batch, sweep, startup, args, methods)
        # sections measured apart (--only-dispatch, --only-methods) or by other scripts
        text = keep_foreign_blocks(out, text)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(text)
        tmp.replace(out)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        write_simulate_section(out, simulate_step_section(simulate_step, load))
        # the full run measured every rule itself: its own section replaces a partial one
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        write_marked_section(out, methods_section(methods, load), _METHODS_BEGIN, _METHODS_END)
        log(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
