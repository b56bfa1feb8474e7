"""Reliability with real processes: signals, the machine's own limits, the largest K.

Marked slow (each test starts a Python process that imports numba); CI runs
them too.  The cheap regression tests are in test_reliability.py.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TINY = ["data.n_train=32", "data.n_test=32", "data.modality.0.dim=6", "data.modality.1.dim=5",
        "model.width=2"]


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    for key in ("SIMCOMP_MEMORY_LIMIT", "SIMCOMP_DISK_LIMIT"):
        env.pop(key, None)
    env.update(extra)
    return env


def _cli(*args, sets=()):
    argv = [sys.executable, "-m", "simcomp.cli", *args]
    for item in sets:
        argv += ["--set", item]
    return argv


def _run(argv, cwd, timeout=120):
    return subprocess.run(argv, cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("sig, code, word", [(signal.SIGTERM, 143, "terminated"),
                                             (signal.SIGINT, 130, "interrupted")])
def test_signal_during_simulate_leaves_no_debris(tmp_path, sig, code, word):
    """Killed while training: the documented exit code, one line, no .DIR.partial-* left."""
    argv = _cli("simulate", "--quiet", "--out", "o",
                sets=TINY + ["train.steps=100000000", "train.trace_every=1000000"])
    # The child takes Ctrl-C whatever its parent ignores: a shell starts background
    # jobs with SIGINT ignored and children inherit that, so without the default
    # handler the simulated Ctrl-C would never arrive when pytest runs in the background.
    proc = subprocess.Popen(argv, cwd=tmp_path, env=_env(SIMCOMP_MEMORY_LIMIT="off"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 90
        while not list(tmp_path.glob(".o.partial-*")):  # training has started
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.1)
        time.sleep(1.0)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err
    assert word in _one_line(err)
    assert list(tmp_path.iterdir()) == []


def test_machine_limits_refuse_enormous_sizes_at_once(tmp_path):
    """With the machine's own limits (no override), impossible sizes are exit 2 in seconds."""
    for sets in (["data.n_train=1000000000"], ["data.modality.0.dim=10000000"]):
        for command in (["simulate", "--out", "o"], ["theory"]):
            proc = _run(_cli(*command, sets=sets), tmp_path, timeout=60)
            assert proc.returncode == 2, proc.stderr
            line = _one_line(proc.stderr)
            assert "would need about" in line and "of the available memory" in line
    assert list(tmp_path.iterdir()) == []


def test_config_from_a_device_does_not_hang(tmp_path):
    proc = _run(_cli("simulate", "--config", "/dev/zero", "--out", "o"), tmp_path, timeout=60)
    assert proc.returncode == 2 and "not a regular file" in _one_line(proc.stderr)


def test_theory_at_the_largest_supported_k(tmp_path):
    """K = 16 (2^17 patterns) predicts; K = 17 is refused in one line."""
    sets = ["train.mode=joint", "data.n_train=64", "data.n_test=64"]
    for r in range(16):
        sets += [f"data.modality.{r}.dim=3", f"data.modality.{r}.noise=0"]
    proc = _run(_cli("theory", "--json", sets=sets), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert '"predicted_winner"' in proc.stdout
    proc = _run(_cli("theory", sets=sets + ["data.modality.16.dim=3"]), tmp_path)
    assert proc.returncode == 2
    assert "at most 16 are supported" in _one_line(proc.stderr)


def _signal_child(argv, sig, cwd, started, settle=1.0):
    """Start ``argv``, wait until ``started()`` (bounded), send ``sig``; (returncode, stderr)."""
    proc = subprocess.Popen(argv, cwd=cwd, env=_env(SIMCOMP_MEMORY_LIMIT="off"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 90
        while not started():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the command never reached the phase"
            time.sleep(0.05)
        time.sleep(settle)
        proc.send_signal(sig)
        # a hang guard only: the command ends within about a second of the signal
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


# The child announces each phase by creating a file, so the signal is sent while it runs.
_IN_THEORY = """
import sys, signal
from pathlib import Path
import simcomp.theory.noisy_dynamics as nd, simcomp.theory.reduced as rd, simcomp.theory.race as rc
from simcomp.cli import main
for module, name in ((nd, "_noisy_kernel"), (rd, "_reduced_kernel"), (rc, "_noisy_race_kernel")):
    real = getattr(module, name)
    def marked(*args, _real=real):
        Path("in-kernel").touch()
        return _real(*args)
    setattr(module, name, marked)
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"),
                                             (signal.SIGINT, 130, "interrupted"),
                                             (signal.SIGINT, 130, "interrupted"),
                                             (signal.SIGTERM, 143, "terminated")])
def test_signal_during_the_theory_kernels_ends_cleanly(tmp_path, sig, code, word):
    """A million-step theory stopped by a signal: the documented exit code and one line, never a
    segmentation fault or a SystemError (the compiled loops run in short pieces)."""
    argv = [sys.executable, "-c", _IN_THEORY, "theory", "--set", "train.steps=1000000"]
    rc, err = _signal_child(argv, sig, tmp_path, lambda: (tmp_path / "in-kernel").exists())
    assert rc == code, err
    assert word in _one_line(err)


_IN_FIGURE = """
import sys
from pathlib import Path
import time
import simcomp.api as api
real = api.theory_curves
def marked(*args):
    Path("in-figure").touch()
    # A figure phase of at least 3 s of real (compiled) theory work, however fast the
    # theory is, so that the signal surely arrives within it.
    start = time.monotonic()
    while time.monotonic() - start < 3.0:
        real(*args)
    return real(*args)
api.theory_curves = marked
from simcomp.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("settle", [0.0, 0.5])
def test_signal_during_the_figure_phase_ends_cleanly(tmp_path, settle):
    """Ctrl-C while simulate computes and draws its figure: exit 130, one line, no debris."""
    argv = [sys.executable, "-c", _IN_FIGURE, "simulate", "--quiet", "--out", "o"]
    for item in TINY + ["train.steps=200000", "train.trace_every=1000", "train.mode=joint"]:
        argv += ["--set", item]
    rc, err = _signal_child(argv, signal.SIGINT, tmp_path,
                            lambda: (tmp_path / "in-figure").exists(), settle=settle)
    assert rc == 130, err
    assert "interrupted" in _one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in-figure"]


# The child runs the `simcomp` command as the console script does and announces, by creating
# a file, the moment simcomp's package has taken Ctrl-C over (its first import after installing
# the handler).  Timing the signal from there, not from the child's birth, keeps Python's own
# start-up (runpy, site: before simcomp can do anything, and slower on a loaded machine) out of
# the window under test.
_AFTER_HANDLER = """
import pathlib, runpy, sys
marker = pathlib.Path(sys.argv[1])
class _Announce:
    def find_spec(self, name, path=None, target=None):
        if name == "simcomp._version":
            marker.touch()
        return None
sys.meta_path.insert(0, _Announce())
sys.argv = [str(marker.parent / "simcomp")] + sys.argv[2:]
runpy.run_module("simcomp.cli", run_name="__main__", alter_sys=False)
"""


@pytest.mark.parametrize("delay", [0.0, 0.03, 0.06, 0.1, 0.2])
def test_ctrl_c_during_the_imports_is_one_line(tmp_path, tmp_path_factory, delay):
    """Ctrl-C in the first tenth of a second of simcomp's imports (NumPy, ...): exit 130 and
    one line, no KeyboardInterrupt traceback."""
    marker = tmp_path_factory.mktemp("marker") / "handler-installed"
    argv = [sys.executable, "-c", _AFTER_HANDLER, str(marker)]
    argv += _cli("simulate", "--quiet", "--out", "o", sets=TINY)[3:]
    proc = subprocess.Popen(argv, cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "simcomp was never imported"
            time.sleep(0.002)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in _one_line(err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("signals, code", [
    ((signal.SIGINT, signal.SIGINT), 130), ((signal.SIGINT, signal.SIGINT), 130),
    ((signal.SIGTERM, signal.SIGINT), 143), ((signal.SIGHUP,), 129),
    ((signal.SIGHUP, signal.SIGHUP), 129),
])
def test_repeated_signals_and_sighup_leave_nothing_behind(tmp_path, signals, code):
    """Two signals within a few ms (an impatient Ctrl-C Ctrl-C), or SIGHUP (the terminal closed):
    the hidden .o.partial-* is removed, one line, no traceback."""
    argv = _cli("simulate", "--quiet", "--out", "o",
                sets=TINY + ["train.steps=100000000", "train.trace_every=1000000"])
    proc = subprocess.Popen(argv, cwd=tmp_path, env=_env(SIMCOMP_MEMORY_LIMIT="off"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 90
        while not list(tmp_path.glob(".o.partial-*")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.05)
        time.sleep(0.5)
        for sig in signals:
            proc.send_signal(sig)
            time.sleep(0.002)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The first signal ends the command (SIGINT is handled before SIGTERM when both are
    # pending at once); a second one sent after the process has finished its cleanup and
    # left Python may find the default action back and end it itself (-N): still one line.
    allowed = {code, 128 + signals[-1], -signals[-1]}
    assert proc.returncode in allowed, err
    _one_line(err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("settle", [1.0, 4.0])
def test_ctrl_c_during_the_cold_compile(tmp_path, settle):
    """An empty NUMBA_CACHE_DIR (the first run on a machine): Ctrl-C while the kernels compile
    is exit 130 and one line after the compile note, never a traceback."""
    cache = tmp_path / "cache"
    proc = subprocess.Popen(_cli("simulate", "--out", "o", sets=TINY), cwd=tmp_path,
                            env=_env(NUMBA_CACHE_DIR=str(cache)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        note = proc.stderr.readline()  # "compiling kernels for this machine": compiling now
        time.sleep(settle)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "compiling" in note, note
    assert proc.returncode == 130, err
    assert "interrupted" in _one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_a_damaged_numba_cache_file_is_recompiled(tmp_path):
    """A truncated compiled-code cache file (.nbi index, .nbc data): the command notes it once,
    deletes that kernel's own cache files, compiles again, and gives the same output."""
    cache = tmp_path / "cache"
    env = _env(NUMBA_CACHE_DIR=str(cache))
    argv = _cli("theory", "--json", sets=TINY + ["train.steps=50"])

    def run():
        proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300, check=False)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        return proc

    first = run()
    index = sorted(cache.rglob("*_reduced_kernel*.nbi"))
    data = sorted(cache.rglob("*_noisy_race_kernel*.nbc"))
    assert index and data
    others = {p: p.read_bytes() for p in cache.rglob("*.nb*")  # other kernels' files: untouched
              if "_reduced_kernel" not in p.name and "_noisy_race_kernel" not in p.name}
    index[0].write_bytes(index[0].read_bytes()[:10])
    data[0].write_bytes(data[0].read_bytes()[:100])
    second = run()
    notes = [line for line in second.stderr.splitlines() if "cache file" in line]
    assert len(notes) == 2, second.stderr
    assert any(str(index[0]) in line and "_reduced_kernel again" in line for line in notes)
    assert second.stdout == first.stdout
    assert all(p.read_bytes() == content for p, content in others.items() if p.exists())
    third = run()
    assert "cache file" not in third.stderr and third.stdout == first.stdout
