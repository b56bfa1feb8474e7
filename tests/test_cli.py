"""The command line end to end: outputs, report, bad input, atomic writes."""

import json
import subprocess
import sys
import tomllib

import numpy as np
import pytest

from simcomp import experiment
from simcomp.cli import main
from simcomp.config import config_from_dict
from simcomp.config_file import build_config
from simcomp.trace import TRACE_KEYS, load_trace
from support import poisoned_data

SMALL = ["data.n_train=64", "data.n_test=64", "data.modality.0.dim=8", "data.modality.1.dim=6",
         "model.width=2", "train.steps=40", "train.trace_every=10"]


def sets(*extra):
    out = []
    for item in list(SMALL) + list(extra):
        out += ["--set", item]
    return out


def test_simulate_writes_documented_outputs(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["simulate", "--out", str(out)] + sets()) == 0
    printed = capsys.readouterr().out
    assert "joint" in printed and "unimodal-A" in printed and "gap" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "config.toml", "figures", "joint", "summary.json", "unimodal-A", "unimodal-B"]
    assert (out / "figures" / "alignment.png").stat().st_size > 10_000
    summary = json.loads((out / "summary.json").read_text())
    cfg = config_from_dict(tomllib.loads((out / "config.toml").read_text()))
    assert cfg == build_config(None, SMALL)
    assert summary["config"] == cfg.to_dict()
    assert summary["seed"] == 0
    for key in ("simcomp_version", "numpy_version", "numba_version"):
        assert summary[key]
    for name in ("joint", "unimodal-A", "unimodal-B"):
        trace = load_trace(out / name / "trace.npz")
        assert set(trace) == set(TRACE_KEYS)
        assert trace["steps"].tolist() == [0, 10, 20, 30, 40]
        run = summary["runs"][name]
        assert run["steps_run"] == 40
        assert run["test_error"] == pytest.approx(trace["test_error"][-1])
        for k, mod in enumerate(run["trained_modalities"]):
            assert run["final_leading_alignment"][mod] == pytest.approx(
                trace["leading_alignment"][-1, k])
    # no temporary directory left behind
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_output_is_reproducible(tmp_path):
    for name in ("a", "b"):
        assert main(["simulate", "--quiet", "--out", str(tmp_path / name)] + sets()) == 0
    for run in ("joint", "unimodal-A", "unimodal-B"):
        ta = load_trace(tmp_path / "a" / run / "trace.npz")
        tb = load_trace(tmp_path / "b" / run / "trace.npz")
        for key in ta:
            assert np.array_equal(ta[key], tb[key])


def test_config_file_and_overrides(tmp_path, capsys):
    conf = tmp_path / "exp.toml"
    assert main(["config", "--out", str(conf)] + sets("train.mode=joint")) == 0
    out = tmp_path / "o"
    assert main(["simulate", "--quiet", "--config", str(conf), "--set", "train.steps=20",
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["runs"]) == ["joint"]
    assert summary["runs"]["joint"]["steps_run"] == 20
    assert summary["comparison"] is None


def test_existing_output_refused_then_forced(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["simulate", "--quiet", "--out", str(out)] + sets("train.mode=joint")) == 0
    assert main(["simulate", "--quiet", "--out", str(out)] + sets()) == 2
    err = capsys.readouterr().err
    assert "exists and is not empty" in err and "--force" in err
    assert main(["simulate", "--quiet", "--force", "--out", str(out)] + sets()) == 0
    assert (out / "unimodal-A").is_dir() and (out / "summary.json").exists()
    # A directory simcomp did not write is never replaced, whatever --force.
    (out / "precious.txt").write_text("keep me")
    assert main(["simulate", "--quiet", "--force", "--out", str(out)] + sets()) == 2
    assert "is not a simcomp output" in capsys.readouterr().err
    assert (out / "precious.txt").read_text() == "keep me"


def test_interrupted_run_leaves_nothing(tmp_path, monkeypatch, capsys):
    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment, "run_experiment", boom)
    out = tmp_path / "o"
    assert main(["simulate", "--quiet", "--out", str(out)] + sets()) == 130
    assert list(tmp_path.iterdir()) == []


def test_forced_run_interrupted_keeps_old_result(tmp_path, monkeypatch):
    out = tmp_path / "o"
    assert main(["simulate", "--quiet", "--out", str(out)] + sets()) == 0
    before = (out / "summary.json").read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment, "run_experiment", boom)
    assert main(["simulate", "--quiet", "--force", "--out", str(out)] + sets()) == 130
    assert (out / "summary.json").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["o"]


class _ClosedPipe:
    """A standard output whose reader has gone (`simcomp simulate | head -1`)."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


def test_closed_stdout_after_the_outputs_is_one_true_line(tmp_path, monkeypatch, capsys):
    # simulate prints its report after the output directory is in place: a reader that
    # stops early must not be told that no complete output was written.
    out = tmp_path / "o"
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    code = main(["simulate", "--out", str(out)] + sets())
    err = capsys.readouterr().err
    assert code == 1
    assert (out / "summary.json").is_file() and (out / "joint" / "trace.npz").is_file()
    assert err.count("\n") == 1 and err.startswith("simcomp: ")
    assert "broken pipe" in err.lower() and "standard output" in err
    assert "no complete output was written" not in err


def test_nonfinite_run_exits_1_and_saves_trace(tmp_path, monkeypatch, capsys):
    real = experiment.make_experiment_data

    def poisoned(cfg):
        return poisoned_data(cfg, make=real)

    monkeypatch.setattr(experiment, "make_experiment_data", poisoned)
    out = tmp_path / "o"
    code = main(["simulate", "--quiet", "--out", str(out)] + sets("train.mode=joint"))
    assert code == 1
    err = capsys.readouterr().err
    assert "joint at step 1 (its trace is saved up to step 0)" in err and "not finite" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs"]["joint"]["status"] == "nonfinite"
    assert load_trace(out / "joint" / "trace.npz")["steps"].tolist() == [0]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--set", "train.colour=red"], "unknown config key train.colour; valid keys in train"),
        (["--set", "data.modality.0.presence=2"], "data.modality.0.presence must be >= 0 and <= 1"),
        (["--set", "model.activation=relu"], "needs model.learner = 'class_banks'"),
        (["--set", "data.population=true"], "population = true needs noise = 0"),
        (["--set", "train.steps=0"], "train.steps must be >= 1"),
        (["--set", "train.lr=inf"], "train.lr must be a finite number"),
        (["--config", "/nonexistent/x.toml"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, message):
    code = main(["simulate", "--out", str(tmp_path / "o")] + argv)
    assert code == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_malformed_toml(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nq = 3")
    assert main(["simulate", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "is not valid TOML" in capsys.readouterr().err


def test_theory_command(tmp_path, capsys):
    assert main(["theory"] + sets()) == 0
    printed = capsys.readouterr().out
    assert "predicted winner" in printed and "unimodal-B" in printed
    assert main(["theory", "--json"] + sets()) == 0
    data = json.loads(capsys.readouterr().out)
    assert [row["run"] for row in data["runs"]] == ["joint", "unimodal-A", "unimodal-B"]
    plot = tmp_path / "reduced.png"
    assert main(["theory", "--plot", str(plot)] + sets()) == 0
    assert plot.stat().st_size > 5_000
    assert main(["theory", "--plot", str(plot)] + sets()) == 2  # refuses to overwrite


def test_console_script_runs():
    proc = subprocess.run([sys.executable, "-m", "simcomp.cli", "--version"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "simcomp" in proc.stdout


def test_outputs_get_ordinary_permissions(tmp_path):
    import os
    import stat

    mask = os.umask(0o022)
    os.umask(mask)
    out = tmp_path / "o"
    assert main(["simulate", "--quiet", "--out", str(out)] + sets("train.mode=joint")) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~mask
    conf = tmp_path / "c.toml"
    assert main(["config", "--out", str(conf)]) == 0
    assert stat.S_IMODE(conf.stat().st_mode) == 0o666 & ~mask


@pytest.mark.parametrize("argv, named", [
    (["calibrate", "--method", "foo", "x.toml"], "--method"),
    (["sweep", "--workers", "x"], "--workers"),
    (["simulate", "--bogus"], "--bogus"),
    (["theory", "--set"], "--set"),
])
def test_usage_errors_are_one_line(argv, named, capsys):
    """argparse's own errors (unknown flag, bad choice, missing value) keep simcomp's promise:
    exit 2 and one line that names the offending argument and where help is."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and named in err and "--help" in err
    assert "usage:" not in err
