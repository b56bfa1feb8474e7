"""The measurements of benchmarks/speed.py: problems, the reference steps, timing, sweep, start-up.

Every function returns plain numbers (dicts of seconds and rates); turning
them into docs/performance.md is ``speed.py``'s job.  Imported by ``speed.py``
after it has (re-)executed itself without the OpenBLAS overrides, so NumPy is
loaded here with the BLAS kernel it picks by itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

from simcomp import kernels as kern

ROOT = Path(__file__).resolve().parent.parent

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
    from simcomp.kernels.rule_spec import METHOD_NAMES, make_rule

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
                            rule=make_rule(name, K, key=7, shape=(1, m, n, p["W"].shape[3]),
                                           **extra.get(name, {})))
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


def measure_hook_methods(repeats, quick):
    """Per-step cost of the methods that work between compiled segments (held-out probes,
    resets: a registry ``hook``), their work included, relative to ``none``: whole training
    runs (``train_run``, default config, joint run, one thread, no tracing) of 1 step and of
    the default horizon, the difference divided by the extra steps (fixed costs cancel, every
    probe round and reset of a default run counts); best process CPU time of interleaved
    repetitions."""
    from simcomp.config_file import build_config
    from simcomp.data import make_experiment_data
    from simcomp.experiment import run_rule
    from simcomp.registry import REGISTRY
    from simcomp.train import train_run

    names = ["none"] + [n for n, spec in REGISTRY.items() if spec.hook is not None]
    t1, t2 = (1, 100) if quick else (1, 300)

    def runner(name, steps):
        cfg = build_config(None, [f"method.name={name}", f"train.steps={steps}",
                                  "train.threads=1", "train.mode=joint"])
        data = make_experiment_data(cfg)

        def run():
            train_run(cfg, data, "joint", [0, 1], record=False,
                      rule=run_rule(cfg, "joint", [0, 1]))
        return run

    runs = {(n, T): runner(n, T) for n in names for T in (t1, t2)}
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        for run in runs.values():  # compile / load before timing
            run()
        best = interleaved(runs, max(2, repeats // 3), 0.01 if quick else 0.05,
                           clock=time.process_time)
    finally:
        numba.set_num_threads(threads)
    per_step = {n: (best[(n, t2)] - best[(n, t1)]) / (t2 - t1) for n in names}
    return {"steps": (t1, t2), "none_s": per_step["none"],
            "ratio": {n: per_step[n] / per_step["none"] for n in names if n != "none"}}


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
import json, sys, time
from numba.core import event
from simcomp.cli import main  # first, as the console script: it sets BLAS threads before NumPy
import simcomp.kernels as k

# Compile time of each kernel the run calls from Python (the outermost
# compilations; what they call is compiled inside them).
compiled, stack = {}, []
class Compiles(event.Listener):
    def on_start(self, ev):
        stack.append(time.perf_counter())
    def on_end(self, ev):
        seconds = time.perf_counter() - stack.pop()
        if not stack:
            fn = ev.data["dispatcher"].py_func
            name = f"{fn.__module__}.{fn.__qualname__}"
            compiled[name] = compiled.get(name, 0.0) + seconds
event.register("numba:compile", Compiles())
first = []
orig = k.gd_segment
def wrapped(*args, **kw):
    if not first:
        first.append(time.time())
        print("FIRST-STEP", repr(first[0]), file=sys.stderr, flush=True)
    return orig(*args, **kw)
k.gd_segment = wrapped
try:
    code = main(["simulate", "--out", sys.argv[1], "--quiet"])
finally:
    print("COMPILED", json.dumps(compiled), file=sys.stderr, flush=True)
sys.exit(code)
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
    compiled = [ln for ln in proc.stderr.splitlines() if ln.startswith("COMPILED ")]
    return {"first_step_s": float(first[0].split()[1]) - t0, "total_s": t1 - t0,
            "announced": "compiling kernels for this machine" in proc.stderr,
            "compiled": json.loads(compiled[-1][len("COMPILED "):]) if compiled else {}}


def measure_startup(repeats):
    """``simcomp simulate`` (default config) in fresh processes: one with an empty numba
    cache (its own NUMBA_CACHE_DIR, so the user's cache is untouched), then ``repeats``
    with the cache that run wrote."""
    with tempfile.TemporaryDirectory() as cache:
        cold = _simulate_once(cache)
        warm = [_simulate_once(cache) for _ in range(repeats)]
    return {"cold": cold, "warm": warm}


def measure_simulate_step(steps=(300, 1300), repeats=5, overrides=None) -> dict:
    """Marginal cost of one GD step of ``simcomp.simulate`` against training alone.

    Default config (compare mode), warm process: the whole experiment
    (data, every run's training and tracing, predictions, expected errors,
    summary) at two horizons T1 < T2, and the training of the same runs
    alone (``train_run``, traced, as simulate trains them), best process
    CPU time of ``repeats`` interleaved repetitions each. Per-step cost = (time(T2) - time(T1)) / (T2 - T1), so
    fixed costs (data, compilation, the expected errors of the final
    weights) cancel. Returns both per-step costs and their ratio.
    """
    import simcomp
    from simcomp.data import make_experiment_data
    from simcomp.experiment import run_experiment
    from simcomp.train import run_plan, train_run

    overrides = dict(overrides or {})
    out = {"steps": list(steps), "repeats": int(repeats)}
    sim, train = {}, {}
    for T in steps:
        cfg = simcomp.build_config(overrides={**overrides, "train.steps": T})
        data = make_experiment_data(cfg)
        run_experiment(cfg, data=data)  # warm: compiled, caches filled

        def whole(cfg=cfg, data=data):
            run_experiment(cfg, data=data)

        def training(cfg=cfg, data=data):
            for name, trained in run_plan(cfg):
                train_run(cfg, data, name, trained)

        # CPU time of the process, best of the repeats, interleaved: waiting for a core on a
        # shared machine does not count, and both sides see the same machine state
        sim[T], train[T] = float("inf"), float("inf")
        for _ in range(repeats):
            for fn, store in ((whole, sim), (training, train)):
                clock = time.process_time()
                fn()
                store[T] = min(store[T], time.process_time() - clock)
    t1, t2 = steps
    out["simulate_step_s"] = (sim[t2] - sim[t1]) / (t2 - t1)
    out["train_step_s"] = (train[t2] - train[t1]) / (t2 - t1)
    out["ratio"] = out["simulate_step_s"] / out["train_step_s"]
    out["simulate_s"] = sim
    out["train_s"] = train
    out.update(_noisy_dynamics_steps(steps, repeats, overrides))
    return out


def _noisy_dynamics_steps(steps, repeats, overrides) -> dict:
    """Per-step cost of the noise-aware dynamics inside a simulate step, summed over the
    runs of the default config: the distribution-level prediction's (on its quadrature
    nodes, ``predicted_*``) and the tracked check's (on the training set, ``tracked_*``),
    each the dynamics alone (no expected error), same two horizons and clock."""
    import simcomp
    from simcomp import theory
    from simcomp.data import empirical_patterns, make_experiment_data
    from simcomp.theory.distribution import distribution_nodes
    from simcomp.theory.noisy_dynamics import noise_aware_dynamics
    from simcomp.trace import geometry
    from simcomp.train import run_plan

    cost = {"predicted": {}, "tracked": {}}
    for T in steps:
        cfg = simcomp.build_config(overrides={**overrides, "train.steps": T})
        data = make_experiment_data(cfg)
        calls = {"predicted": [], "tracked": []}
        for _name, trained in run_plan(cfg):
            if not theory.noise_aware_regime(cfg, trained):
                continue
            a0 = geometry([data.init[r] for r in trained],
                          [data.dictionaries[r] for r in trained])[0]
            y_pat, s_pat, w_pat = empirical_patterns(data.train, trained)
            grams = [theory.weight_geometry(data.init[r], data.signals[r]) for r in trained]
            y, pres, w, nodes = distribution_nodes(cfg, trained, y_pat, s_pat, w_pat, grams)
            calls["predicted"].append(lambda cfg=cfg, t=trained, a0=a0, y=y, p=pres, w=w,
                                      nz=nodes: noise_aware_dynamics(cfg, t, a0, y, p, nz,
                                                                     weight=w))
            tr = data.train
            noise = [theory.training_noise(tr.X[r], tr.y, tr.presence[:, r],
                                           cfg.data.modality[r].beta, data.signals[r],
                                           data.init[r]) for r in trained]
            calls["tracked"].append(lambda cfg=cfg, t=trained, a0=a0, tr=tr, nz=noise:
                                    noise_aware_dynamics(cfg, t, a0, tr.y, tr.presence[:, t],
                                                         nz, weight=tr.weight))
        for kind, fns in calls.items():
            for fn in fns:  # warm
                fn()
            best = float("inf")
            for _ in range(repeats):
                clock = time.process_time()
                for fn in fns:
                    fn()
                best = min(best, time.process_time() - clock)
            cost[kind][T] = best
    t1, t2 = steps
    return {f"{kind}_dynamics_step_s": (c[t2] - c[t1]) / (t2 - t1) for kind, c in cost.items()}


# --------------------------------------------------------------------------- method dispatch

_DISPATCH_CHILD = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, {root!r})
sys.path.insert(0, {bench!r})
from speed_measure import dispatch_child
print("DISPATCH " + json.dumps(dispatch_child({quick!r})))
"""


def _per_method(rule):
    """``rule`` whose compiled code is a tuple of ``code + 1`` int64 zeros: a type of its own
    per method, so the loop is compiled once per method with its code a constant (the
    design "each method's stage passed into the loop" compiles exactly this way)."""
    from simcomp.kernels.rule_spec import Rule

    class PerMethod(Rule):
        def kernel(self):
            return ((np.int64(0),) * (self.code + 1),) + super().kernel()[1:]

    return PerMethod(*rule)


def dispatch_child(quick: bool) -> dict:
    """In a process with an empty numba cache: the first-call (compile) time of plain
    training, of every rule through the one branch chain (codes as int64: one compile
    for all), and of every rule compiled on its own (per-method types); then the
    per-step CPU time of each rule both ways, one thread, default size."""
    from simcomp.kernels.rule_spec import METHOD_NAMES, make_rule

    dims = SIZES["default"]
    K, m, n = dims["K"], dims["m"], dims["n"]
    p = make_problem(K, dims["d"], m, n)
    teacher = 0.1 * np.random.default_rng(0).random((K, 1, m, n))
    extra = {"dropout": {"drop": [0.3, 0.3]}, "umt": {"teacher_units": teacher}}
    numba.set_num_threads(1)

    def run(rule, steps):
        W = p["W"].copy()
        kern.gd_segment(p["X"], p["dims"], p["y"], p["omega"], W, 0, Q, RHO, ETA,
                        p["signal"], p["beta"], 1e9, -np.ones((K, 1), np.int64), 0, steps,
                        0.0, False, np.zeros_like(W), packed=p["packed"], rule=rule)

    def rule(name, own):
        r = make_rule(name, K, key=7, **extra.get(name, {}))
        return _per_method(r) if own else r

    names = [name for name in METHOD_NAMES if name != "none"]
    out = {"methods": names, "compile_chain_s": {}, "compile_own_s": {}}
    t = time.perf_counter()
    run(make_rule("none", K), 1)
    out["compile_plain_s"] = time.perf_counter() - t
    for own, key in ((False, "compile_chain_s"), (True, "compile_own_s")):
        for name in names:
            t = time.perf_counter()
            run(rule(name, own), 1)
            out[key][name] = time.perf_counter() - t
    steps = 20 if quick else 150
    timed = {f"{name}/{'own' if own else 'chain'}": (lambda r=rule(name, own): run(r, steps))
             for name in names for own in (False, True)}
    best = interleaved(timed, 2 if quick else 9, 0.01 if quick else 0.03, clock=time.process_time)
    out["steps"] = steps
    out["step_ratio"] = {name: best[f"{name}/own"] / best[f"{name}/chain"] for name in names}
    out["step_chain_s"] = {name: best[f"{name}/chain"] / steps for name in names}
    return out


def measure_dispatch(quick: bool) -> dict:
    """:func:`dispatch_child` in a fresh process with its own empty NUMBA_CACHE_DIR (the
    user's cache is untouched, and every compile is a real one)."""
    bench = str(Path(__file__).resolve().parent)
    code = _DISPATCH_CHILD.format(root=str(Path(bench).parent), bench=bench, quick=quick)
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, check=True)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("DISPATCH ")][-1]
    return json.loads(line[len("DISPATCH "):])
