"""Sweeps: the executors (a Dask cluster, its failures, a scheduler that is not one) and the
command line end to end.
"""

from __future__ import annotations

import json
import signal
import sys
import time

import pytest

from simcomp.cli import main
from simcomp.config_file import build_config

from sweep_helpers import GRID, base, local_cluster_arguments, read_csv, sets, spawn_cli, sw, table


# --------------------------------------------------------------------------- Dask


def test_dask_local_cluster_gives_the_same_table(tmp_path):
    distributed = pytest.importorskip("distributed")
    plan = sw.plan_sweep(base(), GRID, 2)
    sw.run_sweep(plan, tmp_path / "local", workers=2, executor="threads")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        result = sw.run_sweep(plan, tmp_path / "dask", scheduler=client, batch_size=3)
        assert client.status == "running"  # a Client passed in is left open
        # by address, as --scheduler ADDRESS does
        by_address = sw.run_sweep(plan, tmp_path / "addr", scheduler=cluster.scheduler_address)
    assert result.executor == "dask" and result.ran == 8 and by_address.ran == 8
    meta = json.loads((tmp_path / "addr" / "sweep.json").read_text())
    assert meta["execution"]["scheduler"] == cluster.scheduler_address
    for name in ("dask", "addr"):
        assert table(tmp_path / name / "results.csv") == \
            table(tmp_path / "local" / "results.csv")


def test_dask_retries_a_failed_batch(tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    plan = sw.plan_sweep(base(), ["data.modality.0.beta=1.5,2.5"], 2)
    sw.run_sweep(plan, tmp_path / "local", workers=1)
    real, log = sw.run_batch, tmp_path / "calls.txt"  # dask copies the function: count on disk

    def flaky(configs):  # the first attempt of every batch dies, as a lost worker would
        with open(log, "a") as handle:
            handle.write(f"{configs[0].seed}\n")
        if log.read_text().split().count(str(configs[0].seed)) == 1:
            raise OSError("worker lost")
        return real(configs)

    monkeypatch.setattr(sw.execute, "run_batch", flaky)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        result = sw.run_sweep(plan, tmp_path / "dask", scheduler=client, batch_size=2)
    assert result.ran == 4 and len(log.read_text().split()) == 4  # two batches, tried twice each
    assert table(tmp_path / "dask" / "results.csv") == \
        table(tmp_path / "local" / "results.csv")


@pytest.mark.slow  # about 5 s: a Dask cluster whose worker is killed
def test_dask_survives_a_worker_process_dying(tmp_path):
    """A worker process exits mid-sweep: its batches are rerun elsewhere, the table is whole."""
    import os

    distributed = pytest.importorskip("distributed")
    plan = sw.plan_sweep(base("train.steps=300"), GRID, 2)
    sw.run_sweep(plan, tmp_path / "local", workers=1)
    killed = []
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:

        def kill_a_worker(amount):
            if not killed:  # after the first finished batch, while others are in flight
                pids = client.run(os.getpid)
                victim = sorted(pids)[0]
                os.kill(pids[victim], signal.SIGKILL)
                killed.append(victim)

        result = sw.run_sweep(plan, tmp_path / "dask", scheduler=client, batch_size=1,
                              progress=kill_a_worker)
    assert killed and result.ran == 8
    assert table(tmp_path / "dask" / "results.csv") == table(tmp_path / "local" / "results.csv")


def test_dask_cli_local_scheduler(tmp_path, capsys):
    pytest.importorskip("distributed")
    out = tmp_path / "s"
    assert main(["sweep", "--out", str(out), "--grid", "data.modality.0.beta=1.5,2.5",
                 "--scheduler", "local", "--workers", "1", "--quiet"] + sets()) == 0
    header, rows = read_csv(out / "results.csv")
    assert len(rows) == 2
    assert json.loads((out / "sweep.json").read_text())["execution"]["executor"] == "dask"


def test_missing_distributed_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    out = tmp_path / "s"
    assert main(["sweep", "--out", str(out), "--scheduler", "local", "--quiet"] + sets()) == 2
    err = capsys.readouterr().err
    # the advice must be installable: simcomp itself is installed from its source directory
    assert "pip install 'dask[distributed]'" in err and err.count("\n") == 1
    assert "pip install 'simcomp[" not in err
    assert not out.exists()


class _Silent:
    """A TCP server on 127.0.0.1 that accepts connections and answers ``reply`` (or nothing)."""

    def __init__(self, reply=None):
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.reply, self.conns = reply, []
        self.address = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.reply is not None:  # a banner, as an SSH or SMTP server sends
                try:
                    conn.sendall(self.reply)
                except OSError:
                    pass

    def close(self):
        for conn in self.conns:
            conn.close()
        self.sock.close()


@pytest.mark.parametrize("server", ["silent", "banner", "http"])
def test_scheduler_that_is_not_one_exits_2(tmp_path, capsys, server):
    """An address that accepts but is not a dask scheduler: exit 2 within the timeout."""
    pytest.importorskip("distributed")
    if server == "http":  # e.g. the dashboard's port given by mistake
        import http.server
        import threading

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                http.server.SimpleHTTPRequestHandler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        address, close = f"tcp://127.0.0.1:{httpd.server_address[1]}", httpd.shutdown
        words = ["no dask scheduler answered within 1 s", "dashboard"]
    else:
        fake = _Silent(b"SSH-2.0-OpenSSH_9.6\r\n" if server == "banner" else None)
        address, close = fake.address, fake.close
        words = (["not a dask scheduler", "8786"] if server == "banner"
                 else ["no dask scheduler answered within 1 s"])
    try:
        out = tmp_path / "s"
        assert main(["sweep", "--out", str(out), "--scheduler", address,
                     "--connect-timeout", "1", "--quiet"] + sets()) == 2
        err = capsys.readouterr().err
        assert err.startswith("simcomp: error: --scheduler") and err.count("\n") == 1
        for word in words:
            assert word in err
        assert not out.exists()
    finally:
        close()


def _handshake() -> bytes:
    """A dask scheduler's greeting: a byte count, one frame, msgpack naming the Python version."""
    import struct

    msgpack = pytest.importorskip("msgpack")
    frame = msgpack.dumps({"compression": None, "python": [3, 11, 7], "pickle-protocol": 5})
    body = struct.pack("<QQ", 1, len(frame)) + frame
    return struct.pack("<Q", len(body)) + body


class _Scripted:
    """A loopback TCP server answering its n-th connection with ``replies[n]`` (the last one
    for any later connection) and then silence.

    It serves at most 8 connections and stops by itself once no connection
    comes for ``lifetime`` seconds (its accept has a timeout), whatever the
    test does.
    """

    def __init__(self, replies, lifetime=20.0):
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(lifetime)
        self.replies, self.conns = list(replies), []
        self.address = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        for n in range(8):
            reply = self.replies[min(n, len(self.replies) - 1)]
            try:
                conn, _ = self.sock.accept()
            except OSError:
                break
            self.conns.append(conn)
            try:
                conn.sendall(reply)
            except OSError:
                pass
        self.sock.close()

    def close(self):
        for conn in self.conns:
            conn.close()
        self.sock.close()


@pytest.mark.parametrize("case", ["eight_bytes_then_silence", "garbage_after_eight",
                                  "truncated_frames", "greets_then_hangs"])
def test_every_wait_of_the_handshake_is_bounded(tmp_path, capsys, case):
    """A peer that starts a plausible greeting and stops, sends garbage after the first 8 bytes,
    or greets the probe and hangs on the next connection: exit 2 within the timeout, one line."""
    import struct

    pytest.importorskip("distributed")
    good = _handshake()
    replies = {"eight_bytes_then_silence": [good[:8]],
               "garbage_after_eight": [struct.pack("<Q", 58) + bytes(range(200, 256)) + b"xx"],
               "truncated_frames": [struct.pack("<Q", 58) + good[8:30]],
               "greets_then_hangs": [good, good[:8]]}[case]
    fake = _Scripted(replies)
    try:
        out = tmp_path / "s"
        start = time.monotonic()
        code = main(["sweep", "--out", str(out), "--scheduler", fake.address,
                     "--connect-timeout", "1", "--quiet"] + sets())
        elapsed = time.monotonic() - start
        err = capsys.readouterr().err
        assert code == 2, err
        assert err.startswith(f"simcomp: error: --scheduler {fake.address}") and \
            err.count("\n") == 1, err
        assert elapsed < 30  # the timeout is 1 s; without a bound this hangs for minutes
        assert not out.exists()
    finally:
        fake.close()


def test_a_real_greeting_passes_the_probe():
    """The probe accepts the greeting a scheduler of the installed distributed sends."""
    import asyncio

    distributed = pytest.importorskip("distributed")
    from simcomp.sweep.execute import _probe

    async def check():
        async with distributed.Scheduler(port=0, dashboard_address=None) as scheduler:
            address = scheduler.address
            await asyncio.get_running_loop().run_in_executor(None, _probe, address, 10.0)

    asyncio.run(check())


@pytest.mark.parametrize("address, words", [
    ("tls://127.0.0.1:1", ["cannot connect"]),
    ("ucx://127.0.0.1:1", ["tcp:// or tls://", "scheduler=client"]),
    ("inproc://x", ["cannot connect"]),  # no such scheduler in this process
    ("tcp://127.0.0.1:99999", ["port from 1 to 65535"]),
    ("tcp://127.0.0.1:", ["HOST:PORT"]),
])
def test_unsupported_or_unreachable_schedulers_exit_2(tmp_path, capsys, address, words):
    pytest.importorskip("distributed")
    out = tmp_path / "s"
    assert main(["sweep", "--out", str(out), "--scheduler", address, "--connect-timeout", "2",
                 "--quiet"] + sets()) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"simcomp: error: --scheduler {address}") and err.count("\n") == 1, err
    for word in words:
        assert word in err
    assert not out.exists()


@pytest.mark.parametrize("value", ["1e308", "3601", "inf", "nan"])
def test_connect_timeout_range_is_checked(tmp_path, capsys, value):
    out = tmp_path / "s"
    try:
        code = main(["sweep", "--out", str(out), "--scheduler", "tcp://127.0.0.1:1",
                     "--connect-timeout", value, "--quiet"] + sets())
    except SystemExit as exc:  # argparse's own refusal is also a one-line exit 2
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and "--connect-timeout" in err and "Traceback" not in err
    with pytest.raises(sw.SweepError, match="connect-timeout must be"):
        sw.run_sweep(sw.plan_sweep(base(), [], 1), out, scheduler="tcp://127.0.0.1:1",
                     connect_timeout=float(value))
    assert not out.exists()


def test_connect_timeout_must_be_positive(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "--out", str(tmp_path / "s"), "--connect-timeout", "0"])
    assert exc.value.code == 2
    assert "--connect-timeout" in capsys.readouterr().err


# --------------------------------------------------------------------------- CLI


def test_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sweep", "--out", str(out), "--grid", "data.modality.0.beta=1.5:2.5:2",
                 "--grid", "train.steps=20,30", "--seeds", "2", "--workers", "2",
                 "--batch-size", "2"] + sets()) == 0
    captured = capsys.readouterr()
    assert "8 runs (4 grid points x 2 seeds)" in captured.out
    assert "as predicted" in captured.out and "mean gap" in captured.out
    assert str(out / "results.csv") in captured.out and "sweep.json" in captured.out
    assert "running 8 runs" in captured.err
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "figures", "results.csv", "runs", "sweep.json"]
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["phase.png"]
    header, rows = read_csv(out / "results.csv")
    assert header[:4] == ["data.modality.0.beta", "train.steps", "repeat", "seed"]
    assert [r[1] for r in rows] == ["20", "20", "30", "30"] * 2
    assert all(r[header.index("status")] == "ok" for r in rows)

    assert main(["sweep", "--out", str(out), "--grid", "data.modality.0.beta=1.5:2.5:2",
                 "--grid", "train.steps=20,30", "--seeds", "2"] + sets()) == 0
    captured = capsys.readouterr()
    assert "all 8 runs already done" in captured.err and "0 run now, 8 from earlier" in captured.out


def test_cli_bad_grid_exits_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sweep", "--out", str(out), "--grid", "train.steps=10:20:4"] + sets()) == 2
    err = capsys.readouterr().err
    assert err.startswith("simcomp: error: --grid train.steps=10:20:4") and err.count("\n") == 1
    assert main(["sweep", "--out", str(out), "--grid", "data.modality.0.presence=0.5,1.5"]
                + sets()) == 2
    assert "data.modality.0.presence" in capsys.readouterr().err
    assert main(["sweep", "--out", str(out), "--workers", "0"] + sets()) == 2
    assert "--workers" in capsys.readouterr().err
    assert not out.exists()


def test_default_batch_size():
    plan = sw.plan_sweep(base(), ["data.modality.0.beta=1:2:40"], 1)
    small = sw.default_batch_size(plan.runs, workers=2)
    assert 1 <= small <= 5  # >= 4 batches per worker
    big = sw.plan_sweep(build_config(None, []), ["data.modality.0.beta=1:2:40"], 1)
    assert sw.default_batch_size(big.runs, workers=2) <= 2  # default-size runs take seconds
    assert sw.default_batch_size([], workers=2) == 1


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_one_worker_sweep_stops_at_once(tmp_path, how):
    """--workers 1: the run in flight is abandoned on Ctrl-C and SIGTERM, the records stay."""
    out = tmp_path / "s"
    proc = spawn_cli(["sweep", "--out", str(out), "--grid", "train.steps=30,20000000",
                      "--workers", "1", "--batch-size", "1", "--quiet"] + sets())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list((out / "runs").glob("*.json")):
        time.sleep(0.05)
    time.sleep(0.5)  # now inside the run of 20 million steps
    assert proc.poll() is None
    proc.send_signal(how)
    _, err = proc.communicate(timeout=60)  # the run itself would take hours
    assert proc.returncode == (130 if how == signal.SIGINT else 143)
    assert ("interrupted" if how == signal.SIGINT else "terminated") in err and "rerun" in err
    assert len(list((out / "runs").glob("*.json"))) == 1
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["counts"]["done"] == 1 and meta["counts"]["complete"] is False
    import fcntl

    with open(out / ".simcomp-sweep.lock", "a+") as handle:  # released by the dead process
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_run_batch_keeps_numpy_warnings_of_diverging_runs_to_itself():
    """Worker processes do not inherit the command's warning filters: a diverging run's
    RuntimeWarnings reached stderr under --quiet with --workers 2 (issue 16, 22).  The row's
    status reports the divergence."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = sw.run_batch([base("train.lr=1e308")])
    assert rows[0]["status"] != "ok"
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], caught


def test_local_cluster_starts_no_more_workers_than_batches(tmp_path, monkeypatch):
    """--scheduler local --workers 24 with 2 runs started 25 processes."""
    started = local_cluster_arguments(monkeypatch, tmp_path, workers=24)
    assert started["n_workers"] == 2


@pytest.mark.slow
def test_quiet_local_cluster_and_pool_print_nothing(tmp_path):
    """Under --quiet a sweep on a LocalCluster, or a process pool whose runs diverge, writes
    nothing to stderr: no distributed logs or tracebacks at exit, no worker warnings."""
    for i, extra in enumerate([["--scheduler", "local", "--workers", "24"],
                               ["--workers", "2", "--set", "train.lr=1e308"]]):
        proc = spawn_cli(["sweep", "--out", str(tmp_path / f"s{i}"), "--quiet", "--grid",
                          "data.modality.0.beta=1.5,2.5"] + extra + sets())
        out, err = proc.communicate(timeout=300)
        expected = "" if i == 0 else ("simcomp: 2 of 2 runs did not end ok (see the status "
                                      "column of results.csv)\n")
        assert proc.returncode == 0 and err == expected, err
