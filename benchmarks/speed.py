"""Speed of one gradient-descent step: simcomp against NumPy, PyTorch and the machine's limits.

For three problem sizes (K = 2 modalities, symmetric learner, q = 3):

=========  =======  =====  ========  ===========================
size       d        m      n         note
=========  =======  =====  ========  ===========================
small      32       4      128       one run of a typical sweep
default    128      8      512       spec section 6
large      1024     16     4096      X is 64 MiB: memory matters
=========  =======  =====  ========  ===========================

it measures the time per full-batch GD step (forward, loss derivative,
backward, update) of

* simcomp, one thread (the serial kernel) and all threads (the parallel
  kernel), and, for the small size, many runs per compiled call (the batched
  kernel a sweep uses, all threads);
* a plain vectorised NumPy implementation of the same step (two matmuls and
  element-wise work, float64, the BLAS with its default threads), defined in
  this file;
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
import subprocess
import sys
import tempfile
import time
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

import numba  # noqa: E402
import numpy as np  # noqa: E402

from simcomp import kernels as kern  # noqa: E402

SIZES = {
    "small": dict(K=2, d=32, m=4, n=128),
    "default": dict(K=2, d=128, m=8, n=512),
    "large": dict(K=2, d=1024, m=16, n=4096),
}
Q, RHO, ETA = 3.0, 1.0, 0.5


# --------------------------------------------------------------------------- problems


def make_problem(K, d, m, n, seed=0):
    """Spec-like data (signal on coordinate 0, noise 0.02) and small random weights."""
    rng = np.random.default_rng(seed)
    y = rng.choice(np.array([-1.0, 1.0]), n)
    X = 0.02 * rng.standard_normal((K, n, d))
    for r, beta in enumerate((2.0, 1.0)[:K]):
        X[r, :, 0] += y * beta * (rng.random(n) < (0.8, 1.0)[r])
    W = 0.3 * rng.standard_normal((K, 1, m, d)) / np.sqrt(d)
    W[:, 0, :, 0] += 0.5  # some neurons beyond rho: every srelu piece is used
    signal = np.zeros((K, d))
    signal[:, 0] = 1.0
    return dict(X=X, packed=kern.pack_samples(X), dims=np.full(K, d, np.int64), y=y,
                omega=np.full(n, 1.0 / n), W=W, signal=signal, beta=np.ones(K))


def numpy_step(X, y, omega, W, q=Q, rho=RHO, eta=ETA):
    """One GD step of the symmetric learner in plain NumPy; W (K, m, d) is updated in place.

    Pre-activations by one batched matmul, psi and psi' element-wise, the
    loss derivative, the gradient by a second batched matmul.
    """
    Z = np.matmul(X, W.transpose(0, 2, 1))  # (K, n, m)
    A = np.abs(Z)
    T = np.minimum(A * (1.0 / rho), 1.0)
    P = T ** (q - 1.0)  # psi'(z)
    V = np.where(A > rho, A - (1.0 - 1.0 / q) * rho, (rho / q) * T * P)
    f = np.sum(np.copysign(V, Z), axis=(0, 2))
    lprime = omega * (-y) / (1.0 + np.exp(y * f))
    G = np.matmul((P * lprime[None, :, None]).transpose(0, 2, 1), X)  # (K, m, d)
    W -= eta * G
    return f


def numpy_loss(X, y, omega, W, q=Q, rho=RHO):
    Z = np.matmul(X, W.transpose(0, 2, 1))
    A = np.abs(Z)
    T = np.minimum(A / rho, 1.0)
    V = np.where(A > rho, A - (1.0 - 1.0 / q) * rho, (rho / q) * T ** q)
    f = np.sum(np.copysign(V, Z), axis=(0, 2))
    return float(omega @ np.logaddexp(0.0, -y * f))


def torch_step_factory(torch):
    def step(X, y, omega, W, q=Q, rho=RHO, eta=ETA):
        Z = torch.matmul(X, W.transpose(1, 2))
        A = Z.abs()
        T = torch.clamp(A * (1.0 / rho), max=1.0)
        P = T ** (q - 1.0)
        V = torch.where(A > rho, A - (1.0 - 1.0 / q) * rho, (rho / q) * T * P)
        f = torch.copysign(V, Z).sum(dim=(0, 2))
        lprime = omega * (-y) / (1.0 + torch.exp(y * f))
        G = torch.matmul((P * lprime[None, :, None]).transpose(1, 2), X)
        W.sub_(eta * G)
        return f
    return step


def simcomp_steps(p, W, steps, parallel):
    g = np.zeros_like(W)
    learned = -np.ones((W.shape[0], 1), np.int64)
    kern.gd_segment(p["X"], p["dims"], p["y"], p["omega"], W, 0, Q, RHO, ETA, p["signal"],
                    p["beta"], 1e9, learned, 0, steps, 0.0, parallel, g,
                    packed=p["packed"])


def check_agreement(p) -> float:
    """One simcomp step against one NumPy step: max relative difference of W and of the loss."""
    W0 = p["W"].copy()
    Ws = W0.copy()
    simcomp_steps(p, Ws, 1, False)
    Wn = W0[:, 0].copy()
    numpy_step(p["X"], p["y"], p["omega"], Wn)
    g = np.zeros_like(W0)
    loss = kern.loss_and_grad(p["X"], p["dims"], p["y"], p["omega"], W0, 0, Q, RHO, g,
                              packed=p["packed"])
    loss_np = numpy_loss(p["X"], p["y"], p["omega"], W0[:, 0])
    # The step W0 - eta G: compare the updates, relative to the gradient's scale.
    err_w = np.max(np.abs((Ws[:, 0] - W0[:, 0]) - (Wn - W0[:, 0]))) / np.max(np.abs(ETA * g))
    err_l = abs(loss - loss_np) / abs(loss_np)
    err = max(err_w, err_l)
    if not err <= 1e-12:
        raise SystemExit(f"simcomp and NumPy disagree: relative error {err:.3e} > 1e-12")
    return err


# --------------------------------------------------------------------------- timing


def best_of(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


PAUSE = 0.2
"""Seconds of rest before each timing. A multi-threaded library's idle worker
threads keep spinning for a while after its last call (OpenBLAS up to about
0.1 s, OpenMP runtimes less) before they sleep; without the rest, each method
would be timed while the previous one's threads still hold the cores, which
halves the speed of whichever parallel method comes next."""


def interleaved(methods: dict, repeats: int, pause: float = PAUSE, clock=time.perf_counter) -> dict:
    """Best time of each method, repetitions interleaved so that load affects all alike."""
    best = {name: float("inf") for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            time.sleep(pause)
            t = clock()
            fn()
            best[name] = min(best[name], clock() - t)
    return best


def machine_limits(quick: bool) -> dict:
    size = 1024 if quick else 2048
    a = np.random.default_rng(1).random((size, size))
    b = np.random.default_rng(2).random((size, size))
    a @ b
    t = best_of(lambda: a @ b, 3 if quick else 7)
    dgemm = 2.0 * size**3 / t
    big = np.ones((4 if quick else 32) * 1024 * 1024)  # 32 or 256 MiB
    big.sum()
    t = best_of(big.sum, 3 if quick else 7)
    return {"dgemm_flops": dgemm, "dgemm_size": size, "read_bytes_per_s": big.nbytes / t,
            "read_mib": big.nbytes // 2**20}


def measure_size(name, dims, torch, repeats, quick):
    K, d, m, n = dims["K"], dims["d"], dims["m"], dims["n"]
    p = make_problem(K, d, m, n)
    err = check_agreement(p)
    flops = 4.0 * n * K * 1 * m * d
    target = 0.02 if quick else 0.1  # seconds per timed repetition
    steps = max(2, int(target / max(flops / 20e9, 1e-6)))
    threads = numba.config.NUMBA_NUM_THREADS
    p32 = dict(p, X=p["X"].astype(np.float32), packed=kern.pack_samples(p["X"].astype(np.float32)),
               y=p["y"].astype(np.float32), omega=p["omega"].astype(np.float32),
               signal=p["signal"].astype(np.float32))
    W32 = p["W"].astype(np.float32)
    simcomp_steps(p32, W32.copy(), 1, False)  # compile / load before timing
    simcomp_steps(p, p["W"].copy(), 1, True)
    Wn = p["W"][:, 0].copy()

    def sc(parallel, prob=p, W0=p["W"]):
        def run():
            numba.set_num_threads(threads if parallel else 1)
            simcomp_steps(prob, W0.copy(), steps, parallel)
        return run

    def np_run():
        W = Wn.copy()
        for _ in range(steps):
            numpy_step(p["X"], p["y"], p["omega"], W)

    methods = {"simcomp_1t": sc(False), "simcomp_all": sc(True),
               "simcomp_f32_1t": sc(False, p32, W32), "numpy": np_run}
    if torch is not None:
        tX, ty, tom = (torch.from_numpy(p[k]) for k in ("X", "y", "omega"))
        tW0 = torch.from_numpy(Wn)
        tstep = torch_step_factory(torch)

        def torch_run():
            W = tW0.clone()
            for _ in range(steps):
                tstep(tX, ty, tom, W)
        torch_run()
        methods["torch"] = torch_run
    best = interleaved(methods, repeats, 0.01 if quick else PAUSE)
    numba.set_num_threads(threads)
    out = {"size": name, "K": K, "d": d, "m": m, "n": n, "flops_per_step": flops,
           "bytes_per_step": p["X"].nbytes, "steps_per_timing": steps, "check_error": err}
    out.update({f"{key}_s": value / steps for key, value in best.items()})
    return out


def measure_small_batch(torch_unused, repeats, quick):
    """Small runs through the batched kernel: R runs per call on all threads."""
    dims = SIZES["small"]
    R = 16 if quick else 128
    steps = 20 if quick else 200
    probs = [make_problem(dims["K"], dims["d"], dims["m"], dims["n"], seed=s) for s in range(R)]
    batch = {key: np.stack([pr[key] for pr in probs]) for key in
             ("dims", "y", "omega", "W", "signal", "beta")}
    batch["Xf"] = np.stack([pr["packed"][0] for pr in probs])
    batch["Xb"] = np.stack([pr["packed"][1] for pr in probs])
    W0 = batch["W"]

    def run():
        W = W0.copy()
        learned = -np.ones((R, dims["K"], 1), np.int64)
        out = np.zeros(R, np.int64), np.zeros(R, np.int64), np.zeros(R)
        kern.gd_segment_batch(batch["Xf"], batch["Xb"], batch["dims"], batch["y"],
                              batch["omega"], W, 0, Q, RHO, np.full(R, ETA), batch["signal"],
                              batch["beta"], np.full(R, 1e9), learned, np.zeros(R, np.int64),
                              np.full(R, steps, np.int64), np.zeros(R), *out)
    run()
    t = best_of(run, repeats)
    return {"runs": R, "steps": steps, "run_steps_per_s": R * steps / t,
            "threads": numba.config.NUMBA_NUM_THREADS}


METHOD_TARGETS = {"mmpareto": 2.2, "umt": 1.6}
"""Cost per step relative to ``none``: at most 1.3x, except these."""


def measure_methods(repeats, quick):
    """Per-step cost of each training rule relative to ``none``: the default size, one thread,
    the serial kernel (umt's teachers not included: their unit values are given)."""
    from simcomp.kernels.rules import METHOD_NAMES, make_rule

    dims = SIZES["default"]
    K, m, n = dims["K"], dims["m"], dims["n"]
    p = make_problem(K, dims["d"], m, n)
    steps = 20 if quick else 150
    teacher = 0.1 * np.random.default_rng(0).random((K, 1, m, n))
    extra = {"dropout": {"drop": [0.3, 0.3]}, "umt": {"teacher_units": teacher}}

    def runner(name):
        def run():
            W = p["W"].copy()
            kern.gd_segment(p["X"], p["dims"], p["y"], p["omega"], W, 0, Q, RHO, ETA,
                            p["signal"], p["beta"], 1e9, -np.ones((K, 1), np.int64), 0, steps,
                            0.0, False, np.zeros_like(W), packed=p["packed"],
                            rule=make_rule(name, K, key=7, **extra.get(name, {})))
        return run

    methods = {name: runner(name) for name in METHOD_NAMES}
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        for run in methods.values():  # compile / load before timing
            run()
        # CPU time of the process (one thread): time the run waits for a core
        # while other work holds it does not count, so the ratios hold on a
        # loaded machine too.
        best = interleaved(methods, repeats, 0.01 if quick else 0.05, clock=time.process_time)
    finally:
        numba.set_num_threads(threads)
    return {"steps": steps, "none_s": best["none"] / steps,
            "ratio": {name: best[name] / best["none"] for name in METHOD_NAMES}}


# --------------------------------------------------------------------------- sweep, start-up


def sweep_configs(runs, steps):
    from simcomp.config_file import build_config

    base = ["data.modality.0.dim=32", "data.modality.1.dim=32", "model.width=4",
            "data.n_train=128", f"train.steps={steps}"]
    return [build_config(None, base + [
        f"seed={s}", f"data.modality.0.beta={1.0 + (s % 10) / 9:.6g}",
        f"data.modality.0.presence={(0.6, 0.7, 0.8, 0.9)[(s // 10) % 4]}"]) for s in range(runs)]


def measure_sweep(quick):
    """400 small compare-mode runs of 2000 steps: data, batched training, end-point tracing."""
    from simcomp.data import make_experiment_data
    from simcomp.experiment import predict_run
    from simcomp.train import train_batch

    runs, steps = (16, 200) if quick else (400, 2000)
    cfgs = sweep_configs(runs, steps)
    start = time.perf_counter()
    datas = [make_experiment_data(cfg) for cfg in cfgs]
    t_data = time.perf_counter() - start
    results = train_batch(cfgs, datas, record=False)
    t_total = time.perf_counter() - start
    # Predictions (theory.predict: the reduced dynamics in NumPy) on a sample, extrapolated.
    sample = max(1, runs // 20)
    t = time.perf_counter()
    for cfg, data, res in list(zip(cfgs, datas, results))[:sample]:
        for run in res:
            predict_run(cfg, data, run.trained, run.initial_alignment)
    t_pred = (time.perf_counter() - t) * runs / sample
    trainings = sum(len(res) for res in results)
    return {"runs": runs, "steps": steps, "trainings": trainings, "seconds": t_total,
            "data_seconds": t_data, "train_seconds": t_total - t_data,
            "run_steps_per_s": trainings * steps / (t_total - t_data),
            "predict_seconds_extrapolated": t_pred, "predict_sample": sample,
            "threads": numba.config.NUMBA_NUM_THREADS}


_STARTUP_CHILD = r"""
import sys, time
import simcomp.kernels as k
first = []
orig = k.gd_segment
def wrapped(*args, **kw):
    if not first:
        first.append(time.time())
        print("FIRST-STEP", repr(first[0]), file=sys.stderr, flush=True)
    return orig(*args, **kw)
k.gd_segment = wrapped
from simcomp.cli import main
sys.exit(main(["simulate", "--out", sys.argv[1], "--quiet"]))
"""


def _simulate_once(cache_dir):
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
        t0 = time.time()
        proc = subprocess.run([sys.executable, "-c", _STARTUP_CHILD, str(Path(tmp) / "o")],
                              capture_output=True, text=True, env=env, cwd=ROOT)
        t1 = time.time()
    if proc.returncode != 0:
        raise RuntimeError(f"simcomp simulate failed: {proc.stderr[-2000:]}")
    first = [ln for ln in proc.stderr.splitlines() if ln.startswith("FIRST-STEP")]
    return {"first_step_s": float(first[0].split()[1]) - t0, "total_s": t1 - t0,
            "announced": "compiling kernels for this machine" in proc.stderr}


def measure_startup(repeats):
    """``simcomp simulate`` (default config) in fresh processes: one with an empty numba
    cache (its own NUMBA_CACHE_DIR, so the user's cache is untouched), then ``repeats``
    with the cache that run wrote."""
    with tempfile.TemporaryDirectory() as cache:
        cold = _simulate_once(cache)
        warm = [_simulate_once(cache) for _ in range(repeats)]
    return {"cold": cold, "warm": warm}


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
    lines += ["", "## Reproduce", "", "```bash",
              "python benchmarks/speed.py          # this page (about 2 minutes)",
              "python benchmarks/speed.py --quick  # smoke run, prints only", "```", "",
              "PyTorch is measured only when installed (`pip install torch`; it is not a "
              "dependency). threadpoolctl, when installed, names the BLAS kernel. How the "
              "kernels reach these numbers is described in the module notes of "
              "`simcomp/kernels/`.", ""]
    history = ROOT / "benchmarks" / "kernel_history.md"
    if history.exists():  # design notes and past measurements, kept as written then
        lines += [history.read_text().rstrip(), ""]
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fast smoke variant")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"markdown output (default {DOC.relative_to(ROOT)}; "
                             "--quick writes only when given)")
    parser.add_argument("--repeats", type=int, default=None, help="timing repetitions")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated sizes")
    args = parser.parse_args(argv)
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
    args.load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    result = {"machine": info, "limits": limits, "sizes": sizes, "batch": batch,
              "sweep": sweep, "startup": startup, "methods": methods}
    if out is not None and set(s["size"] for s in sizes) == set(SIZES):
        text = render(info, limits, sizes, batch, sweep, startup, args, methods)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(text)
        tmp.replace(out)
        log(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
