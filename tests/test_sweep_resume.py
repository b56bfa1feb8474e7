"""Sweeps: resuming (rerun, interrupted, killed), a changed definition, and the sweep directory
(foreign, locked, read-only, tampered records).
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from simcomp.cli import main
from simcomp.outputs import OutputError

from sweep_helpers import GRID, base, read_csv, sets, spawn_cli, sw, table


# --------------------------------------------------------------------------- resuming


def test_rerun_and_deleted_records(tmp_path):
    plan = sw.plan_sweep(base(), GRID, 2)
    out = tmp_path / "s"
    sw.run_sweep(plan, out, workers=1)
    first = (out / "results.csv").read_bytes()
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()}

    again = sw.run_sweep(plan, out, workers=1)
    assert again.ran == 0 and again.done_before == 8
    assert (out / "results.csv").read_bytes() == first  # bit-identical
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()} == mtimes

    for run in (plan.runs[1], plan.runs[6]):
        (out / "runs" / f"{run.run_id}.json").unlink()
    (out / "runs" / f"{plan.runs[3].run_id}.json").write_text("{not json")  # a damaged record
    messages = []
    resumed = sw.run_sweep(plan, out, workers=1, log=messages.append)
    assert resumed.ran == 3 and resumed.done_before == 5
    assert "5/8 runs already done, running 3" in messages
    assert (out / "results.csv").read_bytes() == first  # recomputed runs: the same table


class Interrupt:
    def __init__(self, after):
        self.after, self.seen = after, 0

    def __call__(self, amount):
        self.seen += amount
        if self.seen >= self.after:
            raise KeyboardInterrupt


@pytest.mark.parametrize("workers, executor", [
    (1, "processes"), (2, "threads"),
    pytest.param(2, "processes", marks=pytest.mark.slow),  # about 7 s: two worker processes
])
def test_interrupted_sweep_resumes_to_the_same_table(tmp_path, workers, executor):
    plan = sw.plan_sweep(base(), GRID, 2)
    whole = tmp_path / "whole"
    sw.run_sweep(plan, whole, workers=1)

    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        sw.run_sweep(plan, part, workers=workers, executor=executor, batch_size=1,
                     progress=Interrupt(after=2))
    recorded = list((part / "runs").glob("*.json"))
    assert 2 <= len(recorded) < 8
    assert not (part / "results.csv").exists()
    meta = json.loads((part / "sweep.json").read_text())
    assert meta["counts"]["complete"] is False and meta["counts"]["done"] == len(recorded)

    resumed = sw.run_sweep(plan, part, workers=workers, executor=executor, batch_size=1)
    assert resumed.done_before == len(recorded) and resumed.ran == 8 - len(recorded)
    assert table(part / "results.csv") == table(whole / "results.csv")


# As from a background job: slow tier (the terminal case keeps the default tier's coverage).
@pytest.fixture(params=["default", pytest.param("ignored", marks=pytest.mark.slow)])
def parent_sigint(request):
    """Run a test as from a terminal, and as from a background job (SIGINT ignored)."""
    handler = signal.SIG_IGN if request.param == "ignored" else signal.default_int_handler
    previous = signal.signal(signal.SIGINT, handler)
    yield request.param
    signal.signal(signal.SIGINT, previous)


def test_killed_cli_sweep_resumes(tmp_path, parent_sigint):
    out = tmp_path / "s"
    args = ["sweep", "--out", str(out), "--seeds", "12",
            "--grid", "data.modality.0.beta=1.5,2.5", "--workers", "2", "--batch-size", "1",
            "--quiet"] + sets("train.steps=200")
    proc = spawn_cli(args)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list((out / "runs").glob("*.json"))) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "interrupted" in err and "rerun" in err
    done = len(list((out / "runs").glob("*.json")))
    assert 2 <= done < 24
    assert not list((out / "runs").glob(".*.tmp"))

    # resume in-process and compare with the same sweep run in one go
    assert main(["sweep", "--out", str(out), "--seeds", "12", "--grid",
                 "data.modality.0.beta=1.5,2.5", "--workers", "1", "--quiet"]
                + sets("train.steps=200")) == 0
    assert len(list((out / "runs").glob("*.json"))) == 24
    plan = sw.plan_sweep(base("train.steps=200"), ["data.modality.0.beta=1.5,2.5"], 12)
    whole = sw.run_sweep(plan, tmp_path / "whole", workers=1)
    assert whole.ran == 24
    assert table(out / "results.csv") == \
        table(tmp_path / "whole" / "results.csv")


def test_ctrl_c_abandons_the_runs_in_flight(tmp_path, parent_sigint):
    out = tmp_path / "s"
    args = ["sweep", "--out", str(out), "--seeds", "2",
            "--grid", "train.steps=30,20000000", "--workers", "2", "--batch-size", "1",
            "--quiet"] + sets()
    proc = spawn_cli(args)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list((out / "runs").glob("*.json"))) < 2:
        time.sleep(0.05)
    time.sleep(0.5)  # both workers are now inside a run of hours (20 million steps)
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)  # only the abandoned runs could have taken longer
    assert proc.returncode == 130
    assert len(list((out / "runs").glob("*.json"))) == 2
    assert json.loads((out / "sweep.json").read_text())["counts"]["done"] == 2


def test_different_definition_refused_and_force(tmp_path, capsys):
    out = tmp_path / "s"
    cmd = ["sweep", "--out", str(out), "--grid", "data.modality.0.beta=1.5,2.5", "--seeds", "2",
           "--workers", "1", "--quiet"]
    assert main(cmd + sets()) == 0
    capsys.readouterr()
    records = sorted(p.name for p in (out / "runs").iterdir())

    # the same sweep written another way is the same sweep
    assert main(["sweep", "--out", str(out), "--grid", "data.modality.0.beta=1.5, 2.50",
                 "--seeds", "2", "--workers", "1", "--quiet"] + sets("train.threads=2")) == 0

    beta = ["--grid", "data.modality.0.beta=1.5,2.5"]
    common = ["sweep", "--out", str(out), "--workers", "1", "--quiet"]
    for argv, words in [
        (common + beta + ["--seeds", "3"] + sets(), ["--seeds 2 (stored) vs 3 (now)"]),
        (common + beta + ["--seeds", "2"] + sets("train.steps=31"),
         ["base config train.steps = 30 (stored) vs 31 (now)"]),
        (common + ["--grid", "data.modality.0.beta=1.5,3.0", "--seeds", "2"] + sets(),
         ["grid data.modality.0.beta values", "[1.5, 2.5]", "[1.5, 3.0]"]),
        (common + beta + ["--grid", "data.modality.1.presence=0.9", "--seeds", "2"] + sets(),
         ["grid keys"]),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("simcomp: error: ") and err.count("\n") == 1
        assert "holds a different sweep" in err and "--force" in err
        for word in words:
            assert word in err
    assert sorted(p.name for p in (out / "runs").iterdir()) == records

    # --force validates the new sweep before deleting anything
    assert main(["sweep", "--out", str(out), "--force", "--quiet", "--grid",
                 "data.modality.0.beta=-1"] + sets()) == 2
    assert "data.modality.0.beta" in capsys.readouterr().err
    assert sorted(p.name for p in (out / "runs").iterdir()) == records
    assert main(["sweep", "--out", str(out), "--grid", "data.modality.0.beta=1.5,2.5",
                 "--seeds", "3", "--workers", "1", "--quiet", "--force"] + sets()) == 0
    header, rows = read_csv(out / "results.csv")
    assert len(rows) == 6 and len(list((out / "runs").iterdir())) == 6


def test_foreign_directory_and_lock(tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["sweep", "--out", str(out), "--quiet", "--workers", "1"] + sets()) == 2
    assert "no sweep.json" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["sweep", "--out", str(tmp_path / "file"), "--quiet"] + sets()) == 2
    assert "not a directory" in capsys.readouterr().err

    import fcntl

    plan = sw.plan_sweep(base(), [], 1)
    sw.run_sweep(plan, tmp_path / "s", workers=1)
    with open(tmp_path / "s" / ".simcomp-sweep.lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(OutputError, match="another simcomp sweep"):
            sw.run_sweep(plan, tmp_path / "s", workers=1)


def test_a_sweep_that_is_just_starting_gives_the_lock_message(tmp_path, capsys):
    """Two sweeps racing on one directory: the winner holds the lock and has made runs/ but not
    yet written sweep.json; the loser is told about the lock, not "holds no simcomp sweep"
    (issue 16, 17).  Once the lock is free the directory is seen for what it is again."""
    import fcntl

    out = tmp_path / "s"
    (out / "runs").mkdir(parents=True)
    with open(out / ".simcomp-sweep.lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(["sweep", "--out", str(out), "--quiet", "--workers", "1"] + sets()) == 2
        err = capsys.readouterr().err
        assert "another simcomp sweep is writing to" in err and err.count("\n") == 1
    assert main(["sweep", "--out", str(out), "--quiet", "--workers", "1"] + sets()) == 2
    assert "holds no simcomp sweep" in capsys.readouterr().err
    with open(out / ".simcomp-sweep.lock", "a+") as handle:  # the refusal released its lock
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


# --------------------------------------------------------------------------- the directory


def test_force_never_touches_a_directory_simcomp_did_not_write(tmp_path, capsys):
    out = tmp_path / "mine"
    (out / "runs").mkdir(parents=True)
    (out / "runs" / "keep.json").write_text("{}")
    (out / "results.csv").write_text("my,table\n")
    for extra in ([], ["--force"]):
        assert main(["sweep", "--out", str(out), "--quiet", "--workers", "1"] + extra
                    + sets()) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "holds no simcomp sweep" in err
    assert (out / "runs" / "keep.json").read_text() == "{}"
    assert (out / "results.csv").read_text() == "my,table\n"
    # a sweep.json that is not simcomp's (no format key) is the user's too
    (out / "sweep.json").write_text('{"definition": {}}')
    assert main(["sweep", "--out", str(out), "--quiet", "--force"] + sets()) == 2
    assert "not a sweep.json written by simcomp" in capsys.readouterr().err
    assert (out / "runs" / "keep.json").exists() and (out / "sweep.json").exists()
    # an empty directory is fine, with or without --force
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["sweep", "--out", str(empty), "--quiet", "--workers", "1", "--force"]
                + sets()) == 0


@pytest.mark.parametrize("name", ["notes.txt", "0123456789abcdef.json.bak", ".hidden.tmp",
                                  "sub/deep.json"])
def test_sweep_force_never_deletes_a_foreign_file_in_runs(tmp_path, capsys, name):
    """--force deletes only simcomp's records in DIR/runs: a file of the user's there is named
    and nothing is deleted (exit 2)."""
    plan = sw.plan_sweep(base(), ["data.modality.0.beta=1.5,2.5"], 1)
    out = tmp_path / "s"
    sw.run_sweep(plan, out, workers=1)
    foreign = out / "runs" / name
    foreign.parent.mkdir(exist_ok=True)
    foreign.write_text("mine")
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    assert main(["sweep", "--out", str(out), "--quiet", "--workers", "1", "--force", "--seeds",
                 "2"] + sets()) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "was not written by simcomp" in err
    assert str(out / "runs" / name.split("/")[0]) in err
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
    assert foreign.read_text() == "mine"
    # without the foreign file, --force starts over
    foreign.unlink()
    if foreign.parent != out / "runs":
        foreign.parent.rmdir()
    assert main(["sweep", "--out", str(out), "--quiet", "--workers", "1", "--force", "--seeds",
                 "2"] + sets()) == 0


def test_runs_that_is_a_file_and_an_unwritable_directory(tmp_path, capsys, monkeypatch):
    plan = sw.plan_sweep(base(), ["data.modality.0.beta=1.5,2.5"], 1)
    out = tmp_path / "s"
    sw.run_sweep(plan, out, workers=1)
    records = sorted(p.name for p in (out / "runs").iterdir())

    # --force in a directory it cannot write to: refused before anything is deleted
    from simcomp.sweep import store

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(store.tempfile, "mkstemp", refuse)
    with pytest.raises(OutputError, match="cannot write to .*Permission denied"):
        sw.run_sweep(plan, out, workers=1, force=True)
    monkeypatch.undo()
    assert sorted(p.name for p in (out / "runs").iterdir()) == records
    assert (out / "results.csv").exists()

    other = tmp_path / "t"
    other.mkdir()
    (other / "runs").write_text("not a directory")
    assert main(["sweep", "--out", str(other), "--quiet", "--workers", "1"] + sets()) == 2
    assert "holds no simcomp sweep" in capsys.readouterr().err
    sw.run_sweep(plan, tmp_path / "u", workers=1)
    import shutil

    shutil.rmtree(tmp_path / "u" / "runs")
    (tmp_path / "u" / "runs").write_text("not a directory")
    assert main(["sweep", "--out", str(tmp_path / "u"), "--grid", "data.modality.0.beta=1.5,2.5",
                 "--quiet", "--workers", "1"] + sets()) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "runs" in err and "not a directory" in err


@pytest.mark.skipif(hasattr(__import__("os"), "geteuid") and __import__("os").geteuid() == 0,
                    reason="root writes to read-only directories")
def test_read_only_sweep_directory(tmp_path, capsys):
    plan = sw.plan_sweep(base(), [], 1)
    out = tmp_path / "s"
    sw.run_sweep(plan, out, workers=1)
    records = sorted(p.name for p in (out / "runs").iterdir())
    out.chmod(0o555)
    (out / "runs").chmod(0o555)
    try:
        assert main(["sweep", "--out", str(out), "--quiet", "--force"] + sets()) == 2
        assert capsys.readouterr().err.count("\n") == 1
        assert sorted(p.name for p in (out / "runs").iterdir()) == records
    finally:
        (out / "runs").chmod(0o755)
        out.chmod(0o755)


def test_too_many_runs_are_refused_before_planning(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sweep", "--out", str(out), "--seeds", "100000000"] + sets()) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "100000000 runs" in err and "limit of 100000" in err
    assert "--max-runs" in err
    assert main(["sweep", "--out", str(out), "--grid", "data.modality.0.beta=1:2:100000000"]
                + sets()) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--max-runs" in err
    assert main(["sweep", "--out", str(out), "--grid", "data.modality.0.beta=1:2:400",
                 "--grid", "data.modality.1.beta=1:2:400"] + sets()) == 2
    assert "160000 runs (160000 grid points x 1 seed)" in capsys.readouterr().err
    assert main(["sweep", "--out", str(out), "--seeds", "3", "--max-runs", "2"] + sets()) == 2
    assert "3 runs" in capsys.readouterr().err
    assert not out.exists()
    assert main(["sweep", "--out", str(out), "--seeds", "2", "--max-runs", "2", "--quiet",
                 "--workers", "1"] + sets()) == 0
    with pytest.raises(sw.SweepError, match="--max-runs"):
        sw.plan_sweep(base(), [], 1, max_runs=0)


def test_tampered_record_is_recomputed(tmp_path):
    plan = sw.plan_sweep(base(), ["data.modality.0.beta=1.5,2.5"], 1)
    out = tmp_path / "s"
    sw.run_sweep(plan, out, workers=1)
    first = table(out / "results.csv")
    path = out / "runs" / f"{plan.runs[0].run_id}.json"
    record = json.loads(path.read_text())
    assert record["checksum"] == sw.record_checksum(record) and record["format"] == 2
    record["row"]["test_error_joint"] = 0.123  # a plausible, valid, wrong value
    path.write_text(json.dumps(record, indent=2))
    messages = []
    again = sw.run_sweep(plan, out, workers=1, log=messages.append)
    assert again.ran == 1 and again.done_before == 1
    assert any("fails its checksum" in m and plan.runs[0].run_id in m for m in messages)
    assert table(out / "results.csv") == first
    assert json.loads(path.read_text())["row"]["test_error_joint"] != 0.123


@pytest.mark.parametrize("how, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_while_a_complete_sweep_draws_says_results_are_complete(tmp_path, capsys,
                                                                        monkeypatch, how, code):
    """A signal after the last run, while the phase diagrams are drawn: the sweep is complete, so
    the message says results.csv is complete (not "no complete output was written")."""
    import os

    import simcomp.api

    def drawing(path):
        os.kill(os.getpid(), how)
        time.sleep(5)  # the signal arrives here
        raise AssertionError("the signal never arrived")

    monkeypatch.setattr(simcomp.api, "draw_sweep_figures", drawing)
    out = tmp_path / "s"
    assert main(["sweep", "--out", str(out), "--grid", "data.modality.0.beta=1.5,2.5",
                 "--workers", "1", "--quiet"] + sets()) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "results.csv is complete" in err and "no complete output" not in err
    header, rows = read_csv(out / "results.csv")
    assert len(rows) == 2
