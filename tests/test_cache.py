"""Compiled kernels are cached on disk: a second process loads them instead of compiling.

Each test runs fresh Python processes with their own, initially empty
``NUMBA_CACHE_DIR``, so it neither reads nor disturbs the cache of the
installed package. The first process compiles (and writes the cache), the
second must load every kernel it calls from the cache and give bit-identical
results -- through the serial, the parallel and the batched path. The
parallel path loaded from a warm cache is what numba issue #8578 breaks
(a cached function calling a ``parallel=True`` one crashes when loaded from
the cache); the Python wrappers in ``simcomp.kernels.api`` work around it, and
this test is what shows that they do, in a fresh process.

A first process caches only the parallel GD segment, so that the second
compiles the other kernels against cached callees: a cached serial
``loss_and_grad`` compiled that way crashed when called before the threading
layer was started (fixed in its wrapper), which a single cold process would
not show. Only float64 and a tiny problem are compiled, to keep the cold
compile short.
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = r"""
import hashlib, json, sys, time
start = time.perf_counter()
import numba
import numpy as np
import simcomp.train as train
from simcomp import kernels as kern
from simcomp.config_file import build_config
from simcomp.data import make_experiment_data

cfg = build_config(None, [
    "data.n_train=300", "data.n_test=30", "data.modality.0.dim=6", "data.modality.1.dim=6",
    "model.width=2", "train.steps=40", "train.trace_every=10", "train.threads=2"])
data = make_experiment_data(cfg)
digest = hashlib.sha256()

X0 = np.ascontiguousarray(np.stack(data.train.X))
W0 = np.ascontiguousarray(np.stack(data.init))
g0 = np.zeros_like(W0)
if sys.argv[1:] == ["prime"]:
    # Only the parallel GD segment: its callees (the parallel gradient
    # among them) are cached, and compiled later callers link them from
    # the cache -- the mix that made a cached serial call crash once.
    kern.gd_segment(X0, np.array([6, 6]), data.train.y, data.train.weight, W0.copy(), 0, 3.0,
                    1.0, 1.0, np.stack(data.signals), np.ones(2), 1.0,
                    -np.ones((2, 1), np.int64), 0, 2, 0.0, True, g0)
    from simcomp.kernels import gradient
    # The chunk and scratch indices the parallel gradient passes: int64 like the
    # serial one's, so that both paths share one compiled chunk.
    chunk = gradient._chunk.signatures
    print(json.dumps({"chunk_variants": len(chunk),
                      "chunk_indices": [str(chunk[0][5]), str(chunk[0][6])]}))
    sys.exit(0)

# First compiled call of the process: the serial loss, whose compiled
# function also holds the parallel path (the case of numba issue #8578).
loss0 = kern.loss_and_grad(X0, np.array([6, 6]), data.train.y, data.train.weight, W0, 0, 3.0,
                           1.0, g0)
digest.update(np.float64(loss0).tobytes() + g0.tobytes())

def add(run):
    for w in run.final_weights:
        digest.update(np.ascontiguousarray(w).tobytes())
    for value in run.trace.arrays().values():
        digest.update(np.ascontiguousarray(value).tobytes())
    digest.update(run.learned_step_bank.tobytes())

serial = train.train_run(cfg, data, "joint", [0, 1])
train._PARALLEL_MIN_WORK = 0  # let train_run use the parallel gradient on this tiny run
parallel = train.train_run(cfg, data, "joint", [0, 1])
assert parallel.parallel == (numba.config.NUMBA_NUM_THREADS > 1) and not serial.parallel
# The parallel kernel called directly, whatever the number of threads.
X = np.ascontiguousarray(np.stack(data.train.X))
W = np.ascontiguousarray(np.stack(data.init))
grad = np.zeros_like(W)
learned = -np.ones((2, 1), np.int64)
out = kern.gd_segment(X, np.array([6, 6]), data.train.y, data.train.weight, W, 0, 3.0, 1.0, 1.0,
                      np.stack(data.signals), np.ones(2), 1.0, learned, 0, 7, 0.0, True, grad)
digest.update(np.array(out[:2], np.int64).tobytes() + np.float64(out[2]).tobytes())
digest.update(W.tobytes() + grad.tobytes() + learned.tobytes())
batched = train.train_batch([cfg, cfg.replace(seed=1)],
                            [data, make_experiment_data(cfg.replace(seed=1))])
add(serial); add(parallel)
for runs in batched:
    for run in runs:
        add(run)
stats = {}
from simcomp.kernels import api, gd
for mod, name in ((api, "_loss_and_grad"), (gd, "_gd_serial"), (gd, "_gd_parallel"),
                  (gd, "_gd_batch"), (api, "_forward")):
    s = getattr(mod, name).stats
    stats[name] = [sum(s.cache_hits.values()), sum(s.cache_misses.values())]
# The serial and the parallel gradient share one compiled chunk and the loop one
# gradient: a literal argument (0, True) would add a specialisation each.
from simcomp.kernels import gradient
variants = {name: len(getattr(mod, name).signatures)
            for mod, name in ((gradient, "_chunk"), (gradient, "_lg_serial"),
                              (gradient, "_lg_parallel"), (gd, "_gd_loop"))}
print(json.dumps({"digest": digest.hexdigest(), "stats": stats, "variants": variants,
                  "seconds": time.perf_counter() - start}))
"""


def run_fresh(cache_dir: Path, *args: str) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    env.pop("NUMBA_DISABLE_JIT", None)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-3000:])
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]), stderr=proc.stderr)


def cache_files(cache_dir: Path) -> dict:
    return {str(p.relative_to(cache_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(cache_dir.rglob("*")) if p.suffix in (".nbi", ".nbc")}


@pytest.mark.slow
def test_second_process_loads_every_kernel_from_the_cache(tmp_path):
    cache_dir = tmp_path / "numba-cache"
    primed = run_fresh(cache_dir, "prime")  # caches the parallel segment alone
    assert primed["chunk_variants"] == 1
    assert primed["chunk_indices"] == ["int64", "int64"]
    first = run_fresh(cache_dir)  # compiles the rest, linking cached callees
    written = cache_files(cache_dir)
    assert any(name.endswith(".nbi") for name in written)
    assert any("_gd_batch" in name for name in written)
    for name, (hits, misses) in first["stats"].items():
        if name != "_gd_parallel":
            assert misses >= 1 and hits == 0, (name, hits, misses)  # compiled here
    # The serial path was cold: said once, before compiling.
    assert first["stderr"].count("simcomp: compiling kernels for this machine") == 1
    # The serial loop (the parallel one was loaded), each level compiled once.
    assert first["variants"] == {"_chunk": 1, "_lg_serial": 1, "_lg_parallel": 0,
                                 "_gd_loop": 1}, first["variants"]

    second = run_fresh(cache_dir)
    assert second["digest"] == first["digest"]  # same results, every path
    for name, (hits, misses) in second["stats"].items():
        assert hits >= 1 and misses == 0, (name, hits, misses)  # loaded, not compiled
    assert cache_files(cache_dir) == written  # nothing compiled, nothing rewritten
    assert "compiling kernels" not in second["stderr"]  # warm: nothing to announce


def test_cold_cache_is_announced_once_per_process(monkeypatch, capsys):
    from simcomp.kernels import api
    looked = []

    def cold(body):
        looked.append(body)
        return False

    monkeypatch.setattr(api, "_cached", cold)
    monkeypatch.setattr(api, "_checked", set())
    monkeypatch.setattr(api, "_said", [])
    assert api.announce_compile("serial") is True
    err = capsys.readouterr().err
    assert err == ("simcomp: compiling kernels for this machine (first run only, about "
                   f"{api.COLD_START_SECONDS} s)\n")
    assert api.announce_compile("serial") is False  # not even looked at again
    assert looked == [api._gd_serial]
    assert api.announce_compile("batch") is False  # cold too, but already said
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(api, "_checked", set())
    monkeypatch.setattr(api, "_said", [])
    monkeypatch.setattr(api, "_cached", lambda body: True)
    assert api.announce_compile("parallel") is False  # warm: nothing to say
    assert capsys.readouterr().err == ""


def test_a_sweeps_batched_loop_is_not_announced_as_the_first_run(monkeypatch, capsys):
    # A sweep compiles the batched loop after `simcomp simulate` has compiled its own:
    # "first run only" would be read as a second first run.
    from simcomp.kernels import api
    monkeypatch.setattr(api, "_cached", lambda body: False)
    monkeypatch.setattr(api, "_checked", set())
    monkeypatch.setattr(api, "_said", [])
    assert api.announce_compile("batch") is True
    err = capsys.readouterr().err
    assert err.startswith("simcomp: compiling kernels for this machine (") and err.count("\n") == 1
    assert "first run" not in err and "batched" in err


FUSION_SCRIPT = r"""
import hashlib, json
import numpy as np
import simcomp
from simcomp.fusion_train import train_fusion
from simcomp.kernels import fusion_net

base = {"model.head": "trainable", "data.kind": "gaussian", "train.mode": "joint",
        "data.modality.0.dim": 1, "data.modality.1.dim": 1, "model.width": 2,
        "data.modality.0.noise": 0.0, "data.modality.1.noise": 0.0, "data.n_train": 64,
        "train.steps": 30, "train.trace_every": 10, "model.init_scale": 0.1, "train.lr": 0.05,
        "data.modality.0.std": 2.0}
cfgs = [simcomp.build_config(overrides={**base, **extra, "seed": seed})
        for extra in ({"model.activation": "linear", "train.loss": "mse"},  # moment route
                      {"model.activation": "relu", "model.architecture": "deep_fusion",
                       "model.depth": 3, "model.fusion_layer": 2})  # sample route
        for seed in (0, 1)]
digest = hashlib.sha256()
routes = []
for res in train_fusion(cfgs):
    routes.append(res["route"])
    digest.update(np.ascontiguousarray(res["theta"]).tobytes())
    for key in ("steps", "total_weight", "loss"):
        digest.update(np.ascontiguousarray(res["trace"][key]).tobytes())
stats = {}
for name in ("_gd_moments_batch", "_gd_samples_batch"):
    s = getattr(fusion_net, name).stats
    stats[name] = [sum(s.cache_hits.values()), sum(s.cache_misses.values())]
print(json.dumps({"digest": digest.hexdigest(), "stats": stats, "routes": routes}))
"""


@pytest.mark.slow
def test_a_second_process_loads_the_fusion_kernels_from_the_cache(tmp_path):
    cache_dir = tmp_path / "numba-cache"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    env.pop("NUMBA_DISABLE_JIT", None)

    def run():
        proc = subprocess.run([sys.executable, "-c", FUSION_SCRIPT], capture_output=True,
                              text=True, env=env, timeout=900)
        assert proc.returncode == 0, (proc.returncode, proc.stderr[-3000:])
        return json.loads(proc.stdout.strip().splitlines()[-1])

    first = run()
    assert first["routes"] == ["moments", "moments", "samples", "samples"]
    for name, (hits, misses) in first["stats"].items():
        assert misses >= 1 and hits == 0, (name, hits, misses)  # compiled here
    written = cache_files(cache_dir)
    assert any("fusion_net" in name for name in written)
    second = run()
    assert second["digest"] == first["digest"]  # same results from the cached code
    for name, (hits, misses) in second["stats"].items():
        assert hits >= 1 and misses == 0, (name, hits, misses)  # loaded, not compiled
    assert cache_files(cache_dir) == written  # nothing compiled, nothing rewritten
