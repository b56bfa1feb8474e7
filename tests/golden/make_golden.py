"""Record the golden traces that tests/test_golden.py compares against.

Run from the repository root, only when plain training is *meant* to change:

    python tests/golden/make_golden.py

Each case trains a few small runs through the public trainer (single runs,
the batched path, the parallel gradient) and stores, per run, every trace
array, the learned steps per bank, the final weights, the number of steps
run and the status in ``tests/golden/<case>.npz``, with the signature of the
machine's compiled code (tests/reference_files.py). The test requires the
current code to reproduce every array bit for bit on a machine of that
signature, and within a tight tolerance on any other.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
for _path in (ROOT, ROOT / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from simcomp import train as train_mod  # noqa: E402
from simcomp.config_file import build_config  # noqa: E402
from simcomp.data import make_experiment_data  # noqa: E402
from simcomp.train import run_plan, train_batch, train_run  # noqa: E402
from reference_files import signature_arrays  # noqa: E402

HERE = Path(__file__).resolve().parent

# The modality values of the embedded default when the goldens were recorded, pinned so that a
# change of the default does not change these cases.
BASE = ["data.n_train=200", "data.n_test=64", "data.modality.0.dim=10",
        "data.modality.1.dim=7", "model.width=3", "train.steps=40", "train.trace_every=7",
        "data.modality.0.beta=2.0", "data.modality.0.presence=0.8", "data.modality.0.noise=0.02",
        "data.modality.1.beta=1.0", "data.modality.1.presence=1.0", "data.modality.1.noise=0.02"]
K3 = ["data.modality.2.dim=12", "data.modality.2.beta=1.5", "data.modality.2.noise=0.05",
      "data.modality.0.dim=9", "data.modality.1.dim=5", "model.width=4"]

# name -> overrides; every case is a compare-mode experiment (joint + uni-modal runs).
SINGLE = {
    "symmetric_srelu": [],
    "banks_srelu": ["model.learner=class_banks"],
    "banks_relu": ["model.learner=class_banks", "model.activation=relu",
                   "model.learned_threshold=0.5"],
    "symmetric_q2p5": ["model.q=2.5", "model.rho=0.7"],
    "k3_symmetric_q4": K3 + ["model.q=4"],
    "k3_banks": K3 + ["model.learner=class_banks", "train.lr=2.0"],
    "population": ["data.population=true", "data.modality.0.noise=0",
                   "data.modality.1.noise=0"],
    "float32_symmetric": ["train.dtype=float32"],
    "float32_banks_k3": K3 + ["train.dtype=float32", "model.learner=class_banks"],
    "stop_loss": ["train.stop_loss=0.55", "train.lr=3.0", "train.steps=200"],
}

# The parallel gradient (forced on for a small problem of three blocks).
PARALLEL = {
    "parallel_symmetric": ["data.n_train=300", "train.threads=2"],
    "parallel_banks_f32": ["data.n_train=300", "train.threads=2", "model.learner=class_banks",
                           "train.dtype=float32"],
}

# Batched: experiments of one shape, differing in seed, lr and steps.
BATCH = {
    "batch_symmetric": ([], True),
    "batch_banks_norecord": (["model.learner=class_banks"], False),
}


def cfg_of(overrides):
    return build_config(None, BASE + list(overrides))


def run_arrays(prefix: str, run) -> dict:
    out = {f"{prefix}/{key}": value for key, value in run.trace.arrays().items()}
    out[f"{prefix}/learned_step_bank"] = run.learned_step_bank
    for k, w in enumerate(run.final_weights):
        out[f"{prefix}/final_weights_{k}"] = w
    out[f"{prefix}/steps_run"] = np.int64(run.steps_run)
    out[f"{prefix}/status"] = np.array(run.status)
    return out


def single_case(overrides) -> dict:
    cfg = cfg_of(overrides)
    data = make_experiment_data(cfg)
    out = {}
    for name, trained in run_plan(cfg):
        out.update(run_arrays(name, train_run(cfg, data, name, trained)))
    return out


def parallel_case(overrides) -> dict:
    saved = train_mod._PARALLEL_MIN_WORK
    train_mod._PARALLEL_MIN_WORK = 0  # force the timed serial/parallel chooser on
    try:
        out = single_case(overrides)
    finally:
        train_mod._PARALLEL_MIN_WORK = saved
    return out


def batch_configs(overrides):
    return [cfg_of(overrides + [f"seed={s}", f"train.lr={1.0 + 0.25 * s}",
                                f"train.steps={30 + 5 * s}"]) for s in range(4)]


def batch_case(overrides, record) -> dict:
    cfgs = batch_configs(overrides)
    datas = [make_experiment_data(cfg) for cfg in cfgs]
    out = {}
    for e, runs in enumerate(train_batch(cfgs, datas, record=record, threads=2)):
        for run in runs:
            out.update(run_arrays(f"{e}/{run.name}", run))
    return out


def all_cases() -> dict:
    cases = {name: (single_case, (ov,)) for name, ov in SINGLE.items()}
    cases.update({name: (parallel_case, (ov,)) for name, ov in PARALLEL.items()})
    cases.update({name: (batch_case, args) for name, args in BATCH.items()})
    return cases


def main() -> None:
    for name, (fn, args) in all_cases().items():
        arrays = fn(*args)
        np.savez_compressed(HERE / f"{name}.npz", **arrays, **signature_arrays())
        print(name, len(arrays), "arrays")


if __name__ == "__main__":
    main()
