"""Regressions found while re-checking the fixes of issues 16 and 21 from outside (the CLI as a
user runs it): signals around the command's own life, a sweep whose figures cannot be drawn,
and messages that named the wrong setting or option."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from simcomp.cli import divergence_message, main
from simcomp.config_file import build_config
from simcomp.interrupts import guard
from sweep_helpers import sets

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, sighup=signal.SIG_DFL, timeout: float = 60.0):
    """Run ``code`` in a fresh interpreter that imports simcomp as the ``simcomp`` command does
    (``sys.argv[0] == "-m"``), with SIGINT at its default and SIGHUP as given."""
    def child():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, sighup)

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=env, preexec_fn=child)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
def test_an_ignored_sighup_stays_ignored_under_the_guard():
    """`nohup simcomp sweep ...`: the terminal closing must not stop the command (the guard
    used to install its handler over nohup's SIG_IGN and end the run with exit 129)."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with guard():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.2)  # a handler would have raised HungUp here
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
@pytest.mark.parametrize("signum, code, what", [
    (signal.SIGTERM, 143, "terminated (SIGTERM)"), (signal.SIGHUP, 129, "hung up (SIGHUP)")])
def test_sigterm_and_sighup_while_importing_are_one_line(signum, code, what):
    """Before the command's own handlers are in place, SIGTERM and SIGHUP killed the process
    silently (exit -15/-1, no line); now as Ctrl-C: one line and the documented code."""
    proc = _python(f"""
        import os, sys, time
        sys.argv = ["-m"]
        import simcomp  # what `python -m simcomp.cli` imports first
        os.kill(os.getpid(), {int(signum)})
        time.sleep(5)
        print("the signal never arrived")
        """)
    assert proc.returncode == code, proc.stderr
    assert proc.stderr == f"simcomp: {what}; no complete output was written\n"
    # under nohup, SIGHUP stays ignored
    if signum == signal.SIGHUP:
        proc = _python("""
            import os, signal, sys, time
            sys.argv = ["-m"]
            import simcomp
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.2)
            """, sighup=signal.SIG_IGN)
        assert proc.returncode == 0 and proc.stderr == ""


def test_a_signal_after_the_command_ended_keeps_its_code(tmp_path):
    """A Ctrl-C that lands after the command has finished (while the interpreter shuts down)
    used to print "interrupted; no complete output was written" and exit 130 although the
    output was complete; now the command's own code stands and nothing more is said."""
    out = tmp_path / "c.toml"
    proc = _python(f"""
        import os, signal, sys, time
        sys.argv = ["-m"]
        import simcomp
        from simcomp.cli import main
        code = main(["config", "--out", {str(out)!r}])
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
        print("the signal never arrived")
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and "never arrived" not in proc.stdout
    assert out.stat().st_size > 0


def test_a_method_whose_loss_overflows_is_named_with_its_setting():
    """umt at distill_weight 1e6 makes the joint loss overflow straight to inf: the advice was
    "try a smaller train.lr" (issue 16, 26 held only for losses past 1e12)."""
    cfg = build_config(None, ["method.name=umt", "method.distill_weight=1000000.0"])
    runs = [SimpleNamespace(name="joint", status="nonfinite", failed_step=51)]
    line = divergence_message(runs, {"joint": {"steps": np.array([0, 50])}}, "o", cfg)
    assert "joint under method umt (distill_weight 1000000.0" in line
    assert line.endswith("lower the method's weight (method.distill_weight) or train.lr")
    # without a method, train.lr is still the advice
    plain = build_config(None, [])
    line = divergence_message(runs, {"joint": {"steps": np.array([0, 50])}}, "o", plain)
    assert "under method" not in line and line.endswith("try a smaller train.lr")


def test_a_sweep_whose_figures_cannot_be_drawn_is_one_line(tmp_path, capsys):
    """A `figures` file of the user's in a sweep directory: the runs are done, then drawing
    failed with "File exists ...; no complete output was written" and exit 1 (and a sweep
    directory removed meanwhile gave a PlotError traceback)."""
    out = tmp_path / "s"
    args = ["sweep", "--out", str(out), "--grid", "data.modality.0.beta=1.5,2.5",
            "--workers", "1", "--quiet"] + sets()
    assert main(args) == 0
    (out / "figures" / "phase.png").unlink()
    (out / "figures").rmdir()
    (out / "figures").write_text("mine\n")
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "runs are done and recorded" in err and f"simcomp plot {out}" in err
    assert (out / "figures").read_text() == "mine\n"
    assert (out / "results.csv").stat().st_size > 0

    import simcomp.api
    from simcomp.phase import PlotError

    def vanished(path):
        raise PlotError(f"{str(path)!r} is not a sweep directory (no readable sweep.json)")

    original = simcomp.api.draw_sweep_figures
    simcomp.api.draw_sweep_figures = vanished
    try:
        assert main(args) == 2
    finally:
        simcomp.api.draw_sweep_figures = original
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no readable sweep.json" in err


def test_a_control_character_in_grid_names_grid(tmp_path, capsys):
    """The refusal of a newline in --grid told the user to give one KEY=VALUE "per --set"."""
    assert main(["sweep", "--out", str(tmp_path / "s"), "--grid",
                 "train.steps=5,6\nseed=3"]) == 2
    err = capsys.readouterr().err
    assert "per --grid" in err and "per --set" not in err
    assert not (tmp_path / "s").exists()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_report_that_cannot_be_printed_does_not_disown_the_outputs(tmp_path):
    """`simcomp simulate > /dev/full`: the output directory was complete, yet the command said
    "the disk is full; no complete output was written" (exit 1), and a report that failed
    in the middle of a command stopped its work.  A closed pipe or a failed write of the
    report: the command finishes its work, then one line (exit 1) says what was lost."""
    args = [sys.executable, "-m", "simcomp.cli", "simulate", "--out"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    small = [x for item in ["train.steps=30", "data.n_train=64", "data.n_test=64",
                            "model.width=2"] for x in ("--set", item)]
    # the reader of the pipe ends before simcomp prints its report
    proc = subprocess.Popen(args + [str(tmp_path / "a")] + small, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    proc.stdout.close()
    err = proc.communicate(timeout=120)[1].decode()
    assert proc.returncode == 1, err
    assert err == ("simcomp: error: the standard output was closed before the report was "
                   "complete (broken pipe); the files written are complete\n")
    assert (tmp_path / "a" / "summary.json").is_file()
    with open("/dev/full", "w") as full:
        proc = subprocess.run(args + [str(tmp_path / "b")] + small, stdout=full,
                              stderr=subprocess.PIPE, env=env, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "standard output could not be written (the disk is full)" in proc.stderr
    assert "no complete output" not in proc.stderr
    assert (tmp_path / "b" / "summary.json").is_file()


@pytest.mark.parametrize("value", ["0", "-1", "abc", ""])
def test_a_bad_numba_num_threads_is_one_line(value):
    """numba reads NUMBA_NUM_THREADS on import: 0 gave a ValueError traceback from inside numba,
    text a warning with numba's own traceback (and the run went on)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_NUM_THREADS=value)
    proc = subprocess.run([sys.executable, "-m", "simcomp.cli", "theory", "--set",
                           "train.steps=10"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == (f"simcomp: error: NUMBA_NUM_THREADS={value!r} is not a positive "
                           f"integer: give the number of threads numba may use (e.g. 2), or "
                           f"unset it (default: the number of cores)\n")


def test_sweep_arguments_of_the_wrong_kind_are_value_errors(tmp_path):
    """From Python, ``grid=5`` and ``paired=5`` raised "TypeError: 'int' object is not
    iterable", and ``paired="KEY"`` was read letter by letter ("paired key 't' is not a grid
    axis").  Like ``scheduler=5`` (issue 16, 15): a ValueError naming the argument."""
    import simcomp

    cfg = build_config(None, ["train.steps=20", "data.n_train=32", "data.n_test=32",
                              "model.width=2"])
    with pytest.raises(ValueError, match=r"grid must be .* got 5 \(int\)"):
        simcomp.sweep(cfg, grid=5, progress=False)
    with pytest.raises(ValueError, match=r"paired must be .* got 5 \(int\)"):
        simcomp.sweep(cfg, grid={"train.lr": [0.1]}, paired=5, progress=False)
    with pytest.raises(ValueError, match="paired key 'model.width' is not a grid axis"):
        simcomp.sweep(cfg, grid={"train.lr": [0.1]}, paired="model.width", progress=False)
    rows = simcomp.sweep(cfg, grid={"train.lr": [0.1, 0.2]}, paired="train.lr", workers=1,
                         progress=False)
    assert len({row["seed"] for row in rows}) == 1  # the paired axis shares its seed


def test_a_peer_that_is_not_a_scheduler_is_named_once(tmp_path, capsys):
    """The probe's own verdict was wrapped a second time: "--scheduler A: cannot connect to a
    dask scheduler there: --scheduler A: the server there is not a dask scheduler ..."."""
    import socket
    import struct
    import threading

    pytest.importorskip("distributed")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(20)
    port = server.getsockname()[1]

    def answer():
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            conn.sendall(struct.pack("<Q", 2))  # a count too small for a greeting
            time.sleep(1)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        code = main(["sweep", "--out", str(tmp_path / "s"), "--grid", "train.lr=0.1",
                     "--scheduler", f"tcp://127.0.0.1:{port}", "--connect-timeout", "5",
                     "--quiet"] + sets())
    finally:
        thread.join(5)
        server.close()
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.count("--scheduler") == 1
    assert "is not a dask scheduler" in err


def test_a_local_cluster_logs_only_errors(tmp_path, monkeypatch):
    """Ctrl-C during `sweep --scheduler local --quiet` printed four distributed WARNING lines
    (cancelled tasks, "Worker process still alive after 4.0 seconds, killing") besides the one
    line; the cluster's processes now log only errors."""
    import logging

    from sweep_helpers import local_cluster_arguments

    started = local_cluster_arguments(monkeypatch, tmp_path, workers=2)
    assert started.get("silence_logs") is not None and started["silence_logs"] >= logging.ERROR


@pytest.mark.slow
def test_ctrl_c_in_a_quiet_local_cluster_sweep_is_one_line(tmp_path):
    from sweep_helpers import spawn_cli

    out = tmp_path / "s"
    proc = spawn_cli(["sweep", "--out", str(out), "--quiet", "--scheduler", "local",
                      "--workers", "2", "--batch-size", "1", "--grid",
                      "train.steps=20000000,20000001"] + sets())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out / "sweep.json").exists():
        time.sleep(0.1)
    time.sleep(3)  # the workers are inside runs of hours
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err == (f"simcomp: sweep interrupted; the finished runs are recorded in {out}/runs, "
                   f"rerun the same command to resume\n")


def test_a_sweep_says_nothing_about_trace_strides_it_does_not_record(monkeypatch, capsys):
    """`sweep --quiet` with many steps per trace point printed "train.trace_every = 1 would
    record ... points" three times for every run (joint and uni-modal), from every worker,
    although a sweep's runs record only their first and last step."""
    import simcomp.trace as trace_mod
    from simcomp.sweep.execute import run_batch
    from simcomp.train import train_run
    from simcomp.data import make_experiment_data

    monkeypatch.setattr(trace_mod, "MAX_TRACE_POINTS", 4)
    cfg = build_config(None, ["train.steps=40", "train.trace_every=1", "data.n_train=32",
                              "data.n_test=32", "model.width=2"])
    rows = run_batch([cfg])
    assert len(rows) == 1 and rows[0]["status"] == "ok"
    assert "recording every" not in capsys.readouterr().err
    # a run that records its trace still caps it and says so
    run = train_run(cfg, make_experiment_data(cfg), "joint", [0, 1])
    assert run.trace.arrays()["steps"].tolist() == [0, 10, 20, 30, 40]
    assert "recording every 10 steps instead" in capsys.readouterr().err
