"""Progress where a person watches, a time left that makes sense, one compile per sweep.

No timing thresholds: the clock of the progress bar is replaced by a fake
one, and compiling is observed through what is called and printed.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import simcomp
from simcomp import progress as progress_mod
from simcomp.config_file import build_config

from sweep_helpers import sw

ROOT = Path(simcomp.__file__).resolve().parent.parent
SMALL = {"data.n_train": 64, "data.n_test": 64, "data.modality.0.dim": 8,
         "data.modality.1.dim": 6, "model.width": 2, "train.steps": 20, "train.trace_every": 10}
NOTE = "simcomp: compiling kernels for this machine"


class Terminal(io.StringIO):
    def isatty(self):
        return True


# --------------------------------------------------------------------------- who watches


def test_a_terminal_is_watched_a_file_or_pipe_is_not(monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert progress_mod.watched(Terminal())
    assert not progress_mod.watched(io.StringIO())  # redirected: a script, a log
    closed = io.StringIO()
    closed.close()  # isatty() raises
    assert not progress_mod.watched(closed)
    assert not progress_mod.watched(object())  # no isatty at all


def test_a_notebook_kernel_is_watched_a_plain_ipython_shell_by_its_terminal(monkeypatch):
    shell = types.SimpleNamespace(kernel=object())  # what ipykernel's shell has
    fake = types.SimpleNamespace(get_ipython=lambda: shell)
    monkeypatch.setitem(sys.modules, "IPython", fake)
    assert progress_mod.watched(io.StringIO())  # the kernel's stderr is shown under the cell
    shell_without_kernel = types.SimpleNamespace()
    monkeypatch.setitem(sys.modules, "IPython",
                        types.SimpleNamespace(get_ipython=lambda: shell_without_kernel))
    assert not progress_mod.watched(io.StringIO())
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    assert not progress_mod.watched(io.StringIO())


# --------------------------------------------------------------------------- time left


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_the_time_left_ignores_the_wait_before_the_first_run(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress_mod.time, "perf_counter", clock)
    stream = Terminal()
    bar = progress_mod.ProgressBar(4, "sweep", stream=stream)
    assert bar.enabled
    clock.now = 60.0  # workers started, kernels compiled, then the first run came back
    bar.update(1)
    assert bar.eta() is None
    assert "estimating" in bar.text(clock.now) and "left" not in bar.text(clock.now)
    clock.now = 70.0  # one run per 10 s since: two runs left
    bar.update(1)
    assert bar.eta() == pytest.approx(20.0)
    assert "20.0s left" in bar.text(clock.now)
    clock.now = 75.0
    bar.update(2)
    assert bar.eta() is None and "75.0s" in bar.text(clock.now)
    bar.close()
    assert stream.getvalue().endswith("\n") and "\r" in stream.getvalue()


def test_a_bar_nobody_watches_writes_nothing():
    stream = io.StringIO()
    with progress_mod.ProgressBar(3, "sweep", stream=stream) as bar:
        bar.update(3)
    assert stream.getvalue() == ""


# --------------------------------------------------------------------------- simcomp.sweep


@pytest.mark.parametrize("progress, watched, drawn", [
    (None, True, True),     # the default, on a terminal or in a notebook
    (None, False, False),   # the default, stderr redirected
    (False, True, False),   # asked not to
])
def test_sweep_shows_progress_by_default_where_someone_watches(monkeypatch, capsys, progress,
                                                               watched, drawn):
    monkeypatch.setattr(progress_mod, "watched", lambda stream=None: watched)
    cfg = build_config(None, [f"{k}={v}" for k, v in SMALL.items()])
    kwargs = {} if progress is None else {"progress": progress}
    rows = simcomp.sweep(cfg, grid={"data.modality.0.beta": [1.0, 2.0]}, workers=1, **kwargs)
    assert len(rows) == 2
    err = capsys.readouterr().err
    assert ("sweep [" in err and "2/2" in err) == drawn


# --------------------------------------------------------------------------- one compile


def test_compile_once_compiles_one_tiny_run_per_kind_and_only_on_a_cold_cache(monkeypatch):
    from simcomp import experiment
    from simcomp.kernels import api as kernels_api
    from simcomp.sweep import warm

    batches = []
    monkeypatch.setattr(experiment, "run_experiments",
                        lambda cfgs, record, batched: batches.append((list(cfgs), batched)))
    base = build_config(None, [f"{k}={v}" for k, v in SMALL.items()])
    configs = [base.replace(**{"seed": s}) for s in range(3)]
    configs += [base.replace(**{"train.dtype": "float32"}),
                base.replace(**{"method.name": "ogm"})]
    monkeypatch.setattr(kernels_api, "cache_is_cold", lambda path="batch": False)
    assert warm.compile_once(configs) is False and batches == []  # warm: only the check
    monkeypatch.setattr(kernels_api, "cache_is_cold", lambda path="batch": True)
    assert warm.compile_once(configs) is True
    assert len(batches) == 1 and batches[0][1] is True  # through the batched loop
    tiny = batches[0][0]
    kinds = [(c.train.dtype, c.method.name) for c in tiny]
    assert kinds == [("float64", "none")] * 2 + [("float32", "none")] * 2 + [("float64", "ogm")] * 2
    assert all(c.train.steps == 1 for c in tiny) and tiny[0].seed != tiny[1].seed
    assert warm.compile_once([]) is False


def _cold(monkeypatch, **cold):
    from simcomp.kernels import api as kernels_api

    monkeypatch.setattr(kernels_api, "cache_is_cold", lambda path="batch": cold[path])


def test_compiled_once_before_the_workers_when_nothing_is_compiled(monkeypatch):
    from simcomp.sweep import warm

    monkeypatch.setattr(warm, "batched_loop_pays", lambda configs: True)  # a long sweep
    batches = []
    monkeypatch.setattr(warm, "_compile",
                        lambda configs, single=False: batches.append((len(configs), single)))
    cfg = build_config(None, [f"{k}={v}" for k, v in SMALL.items()])
    _cold(monkeypatch, batch=False, serial=True)
    with warm.compiled_once([cfg]) as how:
        assert how == "warm" and batches == []
    _cold(monkeypatch, batch=True, serial=True)
    with warm.compiled_once([cfg]) as how:
        assert how == "first" and batches == [(1, True)]  # before the workers start, both loops
    with warm.compiled_once([]) as how:
        assert how == "warm"
    # the fusion engine's runs have their own loop: left to the workers
    early = cfg.replace(**{"model.architecture": "early_fusion", "train.mode": "joint"})
    with warm.compiled_once([early]) as how:
        assert how == "warm" and batches == [(1, True)]


def test_compiled_once_in_the_background_while_workers_train_run_by_run(monkeypatch):
    import threading

    from simcomp.sweep import warm

    release, started = threading.Event(), threading.Event()

    def slow_compile(configs):
        started.set()
        release.wait(30)

    monkeypatch.setattr(warm, "_compile", slow_compile)
    monkeypatch.setattr(warm, "batched_loop_pays", lambda configs: True)  # a long sweep
    monkeypatch.delenv(warm.COMPILING_ENV, raising=False)
    cfg = build_config(None, [f"{k}={v}" for k, v in SMALL.items()])
    _cold(monkeypatch, batch=True, serial=False)  # after `simcomp simulate`
    assert warm.batched_loop_ready()
    with warm.compiled_once([cfg]) as how:
        assert how == "background" and started.wait(30)
        marker = os.environ[warm.COMPILING_ENV]  # what the workers started now inherit
        assert os.path.exists(marker) and not warm.batched_loop_ready()
        release.set()
    assert not os.path.exists(marker) and warm.COMPILING_ENV not in os.environ
    # interrupted: out at once (the compile is abandoned), nothing left behind
    release.clear()
    with pytest.raises(KeyboardInterrupt):
        with warm.compiled_once([cfg]):
            assert started.wait(30)
            marker = os.environ[warm.COMPILING_ENV]
            raise KeyboardInterrupt
    assert not os.path.exists(marker) and warm.COMPILING_ENV not in os.environ
    release.set()


def test_a_short_sweep_keeps_to_the_single_run_loop_and_compiles_no_batched_loop(monkeypatch):
    from simcomp.sweep import warm

    calls = []
    monkeypatch.setattr(warm, "_compile", lambda configs, single=False, batched=True:
                        calls.append((len(configs), single, batched)))
    monkeypatch.delenv(warm.SINGLE_ENV, raising=False)
    monkeypatch.delenv(warm.COMPILING_ENV, raising=False)
    cfg = build_config(None, [f"{k}={v}" for k, v in SMALL.items()])
    four = [cfg.replace(**{"seed": s}) for s in range(4)]
    assert not warm.batched_loop_pays(four)
    assert warm.batched_loop_pays(four * 10 ** 5)  # the same runs, a long sweep
    _cold(monkeypatch, batch=True, serial=False)  # after `simcomp simulate`
    with warm.compiled_once(four) as how:
        assert how == "single" and calls == []  # nothing compiled
        assert os.environ[warm.SINGLE_ENV] and not warm.batched_loop_ready()  # for the workers
    assert warm.SINGLE_ENV not in os.environ and warm.batched_loop_ready()
    _cold(monkeypatch, batch=True, serial=True)  # nothing compiled yet: the single-run loop
    with warm.compiled_once(four) as how:
        assert how == "single" and calls == [(4, True, False)]
    with pytest.raises(KeyboardInterrupt):
        with warm.compiled_once(four):
            raise KeyboardInterrupt
    assert warm.SINGLE_ENV not in os.environ


def test_a_worker_trains_run_by_run_while_the_batched_loop_compiles(monkeypatch, tmp_path):
    from simcomp import experiment
    from simcomp.sweep import warm

    seen = []
    real = experiment.run_experiments

    def spy(cfgs, record=True, progress=None, batched=True):
        seen.append(batched)
        return real(cfgs, record=record, progress=progress, batched=batched)

    monkeypatch.setattr(experiment, "run_experiments", spy)
    cfg = build_config(None, [f"{k}={v}" for k, v in SMALL.items()])
    cfgs = [cfg.replace(**{"seed": s, "train.mode": "compare"}) for s in range(2)]
    marker = tmp_path / "compiling"
    marker.touch()
    monkeypatch.setenv(warm.COMPILING_ENV, str(marker))
    alone = sw.run_batch(cfgs)
    marker.unlink()
    batched = sw.run_batch(cfgs)
    assert seen == [False, True]
    drop = ("seconds",)
    assert [{k: v for k, v in row.items() if k not in drop} for row in alone] == \
        [{k: v for k, v in row.items() if k not in drop} for row in batched]


@pytest.mark.parametrize("workers, executor, called", [
    (2, "processes", True), (1, "processes", False), (2, "threads", False)])
def test_only_a_sweep_of_worker_processes_compiles_first_in_the_parent(
        monkeypatch, tmp_path, workers, executor, called):
    import contextlib

    calls = []

    @contextlib.contextmanager
    def recorded(configs):
        if configs:
            calls.append(len(configs))
        yield "warm"

    monkeypatch.setattr(sw.run, "compiled_once", recorded)

    def in_process(batches, workers, kind, on_done):  # the pool's work, without the processes
        for batch in batches:
            on_done(batch, sw.run_batch([run.cfg for run in batch]))

    monkeypatch.setattr(sw.run, "_execute_pool", in_process)
    cfg = build_config(None, [f"{k}={v}" for k, v in SMALL.items()])
    plan = sw.plan_sweep(cfg, ["data.modality.0.beta=1.0,2.0"], 2)
    result = sw.run_sweep(plan, tmp_path / "s", workers=workers, executor=executor,
                          batch_size=1)
    assert result.ran == 4
    assert calls == ([4] if called else [])


@pytest.mark.slow  # a cold numba cache: every kernel the sweep needs is compiled (about a minute)
def test_a_cold_sweep_of_two_workers_compiles_and_announces_once(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    sets = [arg for k, v in SMALL.items() for arg in ("--set", f"{k}={v}")]
    cmd = [sys.executable, "-m", "simcomp.cli", "sweep", "--quiet", "--workers", "2",
           "--batch-size", "1", "--seeds", "2", "--grid", "data.modality.0.beta=1.0,2.0",
           "--out", str(tmp_path / "s")] + sets
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count(NOTE) == 1, proc.stderr  # the parent's; the workers load
    # too short to pay for the batched loop: only the single-run loop is compiled
    compiled = {p.name.split("-")[0] for p in (tmp_path / "cache").rglob("*.nbi")}
    assert "gd._gd_serial" in compiled and "gd._gd_batch" not in compiled, sorted(compiled)
    again = subprocess.run(cmd[:-len(sets) - 1] + [str(tmp_path / "t")] + sets,
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert again.returncode == 0 and NOTE not in again.stderr
