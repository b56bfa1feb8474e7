"""What the sweep tests share: tiny runs, their configs and --set arguments, reading results."""

from __future__ import annotations

import csv
import importlib
import signal
import subprocess
import sys
from pathlib import Path

from simcomp.config_file import build_config

# The sweep package (machinery); the attribute ``simcomp.sweep`` is the API function, so the
# package is taken from the import system rather than ``from simcomp import sweep``.
sw = importlib.import_module("simcomp.sweep")

# Tiny runs; one numba thread so that every executor computes bit for bit the same.
SMALL = ["data.n_train=64", "data.n_test=64", "data.modality.0.dim=8", "data.modality.1.dim=8",
         "model.width=2", "train.steps=30", "train.trace_every=10", "train.threads=1"]
THIRD = ["data.modality.2.dim=8", "data.modality.2.beta=1.5", "data.modality.2.presence=0.9",
         "data.modality.2.noise=0.02"]


def base(*extra):
    return build_config(None, SMALL + list(extra))


def sets(*extra):
    out = []
    for item in SMALL + list(extra):
        out += ["--set", item]
    return out


def read_csv(path):
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def spawn_cli(args):
    """``python -m simcomp.cli ARGS`` as a child that takes Ctrl-C whatever its parent ignores.

    A shell starts background jobs with SIGINT ignored, and children inherit
    that: without restoring the default here, a simulated Ctrl-C would never
    arrive when pytest itself runs in the background.
    """
    return subprocess.Popen(
        [sys.executable, "-m", "simcomp.cli"] + args, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def table(path):
    """results.csv as bytes: wall times live only in the run records, so tables compare exactly."""
    return Path(path).read_bytes()


GRID = ["data.modality.0.beta=1.5,2.5", "data.modality.1.presence=0.9,1.0"]


def local_cluster_arguments(monkeypatch, tmp_path, workers):
    """The keyword arguments a two-run `--scheduler local` sweep gives dask's LocalCluster
    (intercepted: no cluster starts)."""
    import pytest

    distributed = pytest.importorskip("distributed")
    started = {}

    class Started(Exception):
        pass

    def fake_cluster(**kwargs):
        started.update(kwargs)
        raise Started

    monkeypatch.setattr(distributed, "LocalCluster", fake_cluster)
    plan = sw.plan_sweep(base(), ["data.modality.0.beta=1.5,2.5"], 1)
    with pytest.raises(Started):
        sw.run_sweep(plan, tmp_path / "s", scheduler="local", workers=workers)
    return started
