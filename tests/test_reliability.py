"""Destructive flags, bad paths, extreme values and failures: each refused or reported in one line.

Every test here is a regression test of a defect that was found by trying
the command line as a careless user would (docs/reliability.md lists the
promises).  Slow ones (real signals, huge sizes) are in
test_reliability_slow.py.
"""

import errno
import json
import os
import re
import signal
import tempfile
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from simcomp import cli, experiment, outputs, preflight
from simcomp.cli import main
from simcomp.config import MAX_MODALITIES, NUMERIC_RANGES, ConfigError
from simcomp.config_file import MAX_CONFIG_BYTES, build_config
from simcomp.data import make_experiment_data
from simcomp.outputs import OutputError, is_simcomp_output
from simcomp.trace import Trace, geometry, load_trace
from simcomp.train import run_plan

SMALL = ["data.n_train=32", "data.n_test=32", "data.modality.0.dim=6", "data.modality.1.dim=5",
         "model.width=2", "train.steps=12", "train.trace_every=4"]


def sets(*extra):
    out = []
    for item in list(SMALL) + list(extra):
        out += ["--set", item]
    return out


def one_line_error(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def no_work(monkeypatch):
    """Make any attempt to train fail the test: a refusal must come before any work."""
    def forbidden(*args, **kwargs):
        raise AssertionError("training started although the command should have been refused")

    monkeypatch.setattr(experiment, "run_experiment", forbidden)
    monkeypatch.setattr(experiment, "make_experiment_data", forbidden)


@pytest.fixture
def fixed_limits(monkeypatch):
    """Limits that do not depend on the machine running the tests."""
    monkeypatch.setenv("SIMCOMP_MEMORY_LIMIT", "4G")
    monkeypatch.setenv("SIMCOMP_DISK_LIMIT", "10G")


# --------------------------------------------------------------------------- 1: --force


def test_force_never_replaces_a_directory_simcomp_did_not_write(tmp_path, capsys, no_work):
    out = tmp_path / "o"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    for flags in ([], ["--force"]):
        assert main(["simulate", "--quiet", "--out", str(out)] + flags + sets()) == 2
        line = one_line_error(capsys.readouterr().err)
        assert "is not a simcomp output" in line and "even with --force" in line
    assert (out / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]  # no hidden temporaries


def test_force_refuses_a_simcomp_output_with_a_foreign_file(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["simulate", "--quiet", "--out", str(out)] + sets("train.mode=joint")) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["format"] == outputs.SIMULATE_FORMAT
    assert is_simcomp_output(out)
    (out / "notes.txt").write_text("mine")
    assert not is_simcomp_output(out)
    assert main(["simulate", "--quiet", "--force", "--out", str(out)] + sets()) == 2
    assert "holds 'notes.txt', which simcomp does not write" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("where", ["figures/notes.txt", "joint/notes.txt", "joint/sub/x.npz",
                                   "unimodal-A/trace.npz.bak", "figures/phase.png"])
def test_force_never_deletes_a_foreign_file_inside_an_output(tmp_path, capsys, where):
    """--force replaces figures/, joint/ and unimodal-*/ whole: a file of the user's anywhere
    in them keeps the output from being replaced (exit 2, the file named)."""
    out = tmp_path / "o"
    assert main(["simulate", "--quiet", "--out", str(out)] + sets()) == 0
    assert is_simcomp_output(out)
    (out / where).parent.mkdir(parents=True, exist_ok=True)
    (out / where).write_text("mine")
    assert not is_simcomp_output(out)
    assert main(["simulate", "--quiet", "--force", "--out", str(out)] + sets()) == 2
    line = one_line_error(capsys.readouterr().err)
    first = where.split("/")[0] + "/" + where.split("/")[1]
    assert f"holds {first!r}, which simcomp does not write" in line
    assert (out / where).read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_force_replaces_a_directory_with_a_leftover_figure_temporary(tmp_path):
    out = tmp_path / "o"
    assert main(["simulate", "--quiet", "--out", str(out)] + sets("train.mode=joint")) == 0
    (out / "figures" / ".alignment.png.k3_x9q.partial.png").write_bytes(b"")  # a killed plot's
    assert is_simcomp_output(out)
    assert main(["simulate", "--quiet", "--force", "--out", str(out)] + sets()) == 0


@pytest.mark.parametrize("content, expected", [
    ({"format": "simcomp.simulate/1", "runs": {}}, True),
    ({"simcomp_version": "0.9", "runs": {}}, True),  # written before the marker existed
    ({"format": "something-else/1", "runs": {}}, False),
    ({"runs": {}}, False),
    ([1, 2], False),
])
def test_marker_is_simcomps_summary(tmp_path, content, expected):
    (tmp_path / "summary.json").write_text(json.dumps(content))
    assert is_simcomp_output(tmp_path) is expected


def test_marker_must_be_valid_json(tmp_path):
    (tmp_path / "summary.json").write_text("{not json")
    assert not is_simcomp_output(tmp_path)


@pytest.mark.parametrize("target", [".", "..", "CWD", "", "/"])
def test_working_directory_and_its_parents_are_never_outputs(tmp_path, monkeypatch, capsys,
                                                             no_work, target):
    work = tmp_path / "work"
    work.mkdir()
    (work / "precious.txt").write_text("keep me")
    monkeypatch.chdir(work)
    target = str(work) if target == "CWD" else target
    assert main(["simulate", "--quiet", "--force", "--out", target] + sets()) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "working directory" in line and "never replaces it" in line
    assert (work / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]


def test_file_outputs_refuse_directories_links_and_existing_files(tmp_path, capsys):
    existing = tmp_path / "c.toml"
    existing.write_text("mine")
    cases = [
        (["config", "--out", str(tmp_path), "--force"], "is a directory"),
        (["config", "--out", str(tmp_path / "missing" / "c.toml")], "does not exist"),
        (["config", "--out", str(existing)], "exists; choose another file or pass --force"),
        (["theory", "--plot", str(tmp_path), "--force"] + sets(), "is a directory"),
        (["theory", "--plot", str(tmp_path / "x.pdf")] + sets(), "must end in .png"),
        (["config", "--out", "/dev/full", "--force"], "not a regular file"),
    ]
    link = tmp_path / "link.toml"
    link.symlink_to(existing)
    cases.append((["config", "--out", str(link), "--force"], "is a symbolic link"))
    for argv, message in cases:
        assert main(argv) == 2, argv
        assert message in one_line_error(capsys.readouterr().err)
    assert existing.read_text() == "mine" and link.is_symlink()
    assert main(["config", "--out", str(existing), "--force"]) == 0
    assert existing.read_text().startswith("# simcomp resolved config")


# --------------------------------------------------------------------------- 3, 13: divergence


@pytest.mark.parametrize("override", ["data.modality.0.noise=1e308", "model.init_scale=1e308"])
def test_loss_not_finite_at_step_0_saves_the_trace_and_exits_1(tmp_path, capsys, override):
    out = tmp_path / "o"
    assert main(["simulate", "--quiet", "--out", str(out)] + sets(override)) == 1
    line = one_line_error(capsys.readouterr().err)
    assert "the training loss is not finite" in line
    assert "at step 0 (its trace has no record)" in line
    summary = json.loads((out / "summary.json").read_text())
    failed = [name for name, run in summary["runs"].items() if run["status"] == "nonfinite"]
    assert "joint" in failed and "unimodal-A" in failed
    for name in summary["runs"]:
        trace = load_trace(out / name / "trace.npz")
        if name in failed:
            assert trace["steps"].size == 0
    assert (out / "figures" / "alignment.png").stat().st_size > 1000


def test_divergence_message_names_the_last_saved_step(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["simulate", "--quiet", "--out", str(out)] + sets("train.lr=1e308")) == 1
    line = one_line_error(capsys.readouterr().err)
    found = re.findall(r"(\S+) at step (\d+) \(its trace is saved up to step (\d+)\)", line)
    assert found
    for name, stopped, saved in found:
        steps = load_trace(out / name / "trace.npz")["steps"]
        assert int(saved) == steps[-1] and int(stopped) >= int(saved)
        run = json.loads((out / "summary.json").read_text())["runs"][name]
        assert run["failed_step"] == int(stopped)


def _fake_run(name, trained):
    return SimpleNamespace(name=name, trained=trained, learned_step=np.full(len(trained), -1))


@pytest.mark.parametrize("records", [0, 1, 3])
def test_alignment_figure_copes_with_short_and_overflowing_traces(records):
    from simcomp.plots import alignment_figure, reduced_dynamics_figure, save_figure

    cfg = build_config(None, SMALL)
    runs = [_fake_run("joint", [0, 1]), _fake_run("unimodal-A", [0]), _fake_run("unimodal-B", [1])]
    traces = {}
    for run in runs:
        K = len(run.trained)
        alignment = np.full((records, K, 2), 1e308)
        if records:
            alignment[-1, 0, 0] = np.inf
            alignment[0, -1, -1] = np.nan
        traces[run.name] = {"steps": np.arange(records) * 4,
                            "alignment": alignment if records else np.zeros(0)}
    red = SimpleNamespace(steps=np.arange(records), learned_step=np.array([-1, 2]),
                          leading_alignment=np.full((records, 2), np.inf))
    preds = {"joint": SimpleNamespace(trained=[0, 1], reduced=red)}
    with tempfile.TemporaryDirectory() as tmp:
        save_figure(alignment_figure(cfg, runs, traces, preds), Path(tmp) / "a.png")
        save_figure(reduced_dynamics_figure(cfg, preds), Path(tmp) / "b.png")
        assert (Path(tmp) / "a.png").stat().st_size > 1000


def test_long_traces_are_thinned_for_the_figure():
    from simcomp.plots import _MAX_POINTS, _thin

    keep = _thin(np.arange(10 * _MAX_POINTS))
    assert len(keep) <= _MAX_POINTS and keep[0] == 0 and keep[-1] == 10 * _MAX_POINTS - 1
    assert np.array_equal(_thin(np.arange(5)), np.arange(5))


# --------------------------------------------------------------------------- 4: pre-flight


def test_huge_dimension_is_refused_before_any_work(tmp_path, capsys, no_work, fixed_limits):
    assert main(["simulate", "--quiet", "--out", str(tmp_path / "o"),
                 "--set", "data.modality.0.dim=100000"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "would need about" in line and "limit of 4.0 GiB (SIMCOMP_MEMORY_LIMIT)" in line
    assert "data.modality.N.dim" in line and "SIMCOMP_MEMORY_LIMIT" in line
    assert list(tmp_path.iterdir()) == []


def test_enormous_sample_counts_are_exit_2(tmp_path, capsys, no_work, fixed_limits):
    for value, message in [("100000000000000000000", "data.n_train must be >= 1 and <= 1000000000"),
                           ("1" + "0" * 400, "data.n_train must be >= 1 and <= 1000000000"),
                           ("1000000000", "would need about")]:
        assert main(["simulate", "--out", str(tmp_path / "o"),
                     "--set", f"data.n_train={value}"]) == 2
        assert message in one_line_error(capsys.readouterr().err)
        assert main(["theory", "--set", f"data.n_train={value}"]) == 2
        assert message in one_line_error(capsys.readouterr().err)


def test_long_trace_is_refused_with_the_trace_as_largest_part(tmp_path, capsys, no_work,
                                                               fixed_limits):
    assert main(["simulate", "--out", str(tmp_path / "o"), "--set", "train.steps=1000000000",
                 "--set", "train.trace_every=1"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "largest part: trace" in line and "train.trace_every" in line


def test_disk_limit_is_checked(tmp_path, capsys, no_work, monkeypatch):
    monkeypatch.setenv("SIMCOMP_DISK_LIMIT", "1K")
    assert main(["simulate", "--out", str(tmp_path / "o")] + sets()) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "would write about" in line and "SIMCOMP_DISK_LIMIT" in line


def test_limits_can_be_overridden(monkeypatch):
    monkeypatch.setenv("SIMCOMP_MEMORY_LIMIT", "off")
    huge = preflight.estimate_simulate(build_config(None, ["data.modality.0.dim=100000"]))
    preflight.check(huge)  # no limit: accepted
    monkeypatch.setenv("SIMCOMP_MEMORY_LIMIT", "lots")
    with pytest.raises(preflight.ResourceError, match="SIMCOMP_MEMORY_LIMIT='lots' is not a size"):
        preflight.check(huge)
    for text, value in [("64G", 64 << 30), ("500M", 500 << 20), ("1.5GiB", 3 << 29),
                        ("12345", 12345), ("2kb", 2048)]:
        monkeypatch.setenv("SIMCOMP_MEMORY_LIMIT", text)
        assert preflight.memory_limit() == (value, "SIMCOMP_MEMORY_LIMIT")


def test_default_limits_come_from_the_machine(monkeypatch):
    monkeypatch.delenv("SIMCOMP_MEMORY_LIMIT", raising=False)
    monkeypatch.delenv("SIMCOMP_DISK_LIMIT", raising=False)
    limit, source = preflight.memory_limit()
    assert limit is None or limit > 0
    assert "available memory" in source or "free memory" in source or "ulimit" in source
    disk, source = preflight.disk_limit(Path.cwd() / "no" / "such" / "dir")
    assert disk > 0 and "free space" in source


def _traced_peak(work) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# A grid of sizes: the data and their copies, the theory's (neurons x n_train) arrays of the
# noise-aware dynamics, long records, a method's per-step statistics and umt's teachers.
_MEASURED = {
    "distractors_random_dictionary": [
        "data.n_train=3000", "data.n_test=3000", "data.modality.0.dim=150",
        "data.modality.1.dim=100", "data.modality.0.distractors=3",
        "data.modality.0.distractor_strength=0.1", "train.steps=20", "train.trace_every=10",
        "data.modality.1.dictionary=random"],
    "wide_noise_aware": ["model.width=60", "data.n_train=1500", "data.n_test=500",
                         "data.modality.0.noise=0.5", "train.steps=60", "train.trace_every=10"],
    "long_records_ogm": ["model.width=20", "data.n_test=500", "train.steps=800",
                         "train.trace_every=1", "method.name=ogm"],
    "umt_long_teachers": ["model.width=20", "data.n_test=500", "train.steps=60",
                          "method.name=umt", "method.teacher_steps=800"],
}


@pytest.mark.parametrize("case", [pytest.param(case, marks=() if i == 0 else pytest.mark.slow)
                                  for i, case in enumerate(_MEASURED)])
def test_the_estimate_bounds_the_arrays_a_run_allocates(case, capsys):
    """tracemalloc sees numpy's buffers: the measured peak of `simulate` and of `theory` lies
    under their estimates and above a quarter of them (the estimate is not absurdly loose).

    Each command is run once before it is measured, with the same config: numba compiles
    on the first call of a kernel, and its compiler's Python objects are no array of the
    run (an empty numba cache put them into the measure: issue 21).
    """
    from simcomp import api

    overrides = _MEASURED[case]
    cfg = build_config(None, overrides)
    argv = ["theory"] + [a for item in overrides for a in ("--set", item)]
    for label, estimate, work in [
            ("simulate", preflight.estimate_simulate(cfg), lambda: api.simulate(cfg)),
            ("theory", preflight.estimate_theory(cfg), lambda: main(argv))]:
        work()  # compile outside the measure
        peak = _traced_peak(work)
        arrays = estimate.memory_bytes - estimate.memory["fixed"]
        assert peak <= arrays, (label, peak, estimate.memory)
        assert peak >= 0.25 * arrays, (label, peak, estimate.memory)
    capsys.readouterr()


def test_the_theory_of_wide_runs_on_many_samples_is_counted(capsys, no_work, monkeypatch):
    """width 2000 x n_train 20000: the noise-aware theory alone takes gigabytes (issue 16, 4);
    the estimate used to be 313 MiB, so the command ran out of memory instead of refusing."""
    monkeypatch.setenv("SIMCOMP_MEMORY_LIMIT", "4G")
    monkeypatch.setattr("simcomp.data.make_experiment_data", experiment.make_experiment_data)
    over = ["--set", "model.width=2000", "--set", "data.n_train=20000"]
    assert main(["theory"] + over) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "largest part: theory" in line and "model.width" in line
    assert main(["simulate", "--out", str(Path(tempfile.gettempdir()) / "never")] + over) == 2
    assert "largest part: theory" in one_line_error(capsys.readouterr().err)


@pytest.mark.parametrize("key", ["train.steps", "method.teacher_steps"])
def test_theory_with_a_trillion_steps_is_refused_up_front(capsys, no_work, monkeypatch, key):
    """The method dynamics keeps statistics of every step: 10^12 steps are refused (exit 2),
    not run out of memory (issue 16, 27)."""
    monkeypatch.setenv("SIMCOMP_MEMORY_LIMIT", "64G")
    monkeypatch.setattr("simcomp.data.make_experiment_data", experiment.make_experiment_data)
    assert main(["theory", "--set", "method.name=umt", "--set", f"{key}=1000000000000"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "largest part: theory" in line and key in line


@pytest.mark.parametrize("limit, grid, words", [
    ("1K", "data.modality.0.beta=1,2", ["grid point data.modality.0.beta=1.0", "1.0 KiB"]),
    ("garbage", "data.modality.0.beta=1,2", ["SIMCOMP_MEMORY_LIMIT='garbage' is not a size"]),
    ("4G", "data.n_train=32,1000000000", ["grid point data.n_train=1000000000",
                                          "would need about"]),
])
def test_sweep_runs_the_pre_flight_per_grid_point(tmp_path, capsys, monkeypatch, limit, grid,
                                                  words):
    """Before any run starts and before the directory is touched (issue 16, 5)."""
    from simcomp.sweep import execute

    def forbidden(*args, **kwargs):
        raise AssertionError("a run started although the sweep should have been refused")

    monkeypatch.setattr(execute, "run_batch", forbidden)
    monkeypatch.setenv("SIMCOMP_MEMORY_LIMIT", limit)
    out = tmp_path / "s"
    assert main(["sweep", "--out", str(out), "--grid", grid, "--workers", "1", "--quiet"]
                + sets()) == 2
    line = one_line_error(capsys.readouterr().err)
    for word in words:
        assert word in line
    assert not out.exists()


def test_sweep_pre_flight_counts_the_runs_in_flight(monkeypatch):
    """Each worker holds a batch of runs and its own interpreter: 4 workers x batches of 8."""
    from simcomp.sweep import plan_sweep, run_sweep

    plan = plan_sweep(build_config(None, SMALL), ["data.modality.0.beta=1:2:64"], 1)
    one = preflight.estimate_simulate(plan.runs[0].cfg, record=False)
    varying = one.memory_bytes - one.memory["fixed"]
    need = preflight.SWEEP_POINT_BYTES * 64 + 32 * varying + 5 * preflight.FIXED_OVERHEAD
    monkeypatch.setenv("SIMCOMP_MEMORY_LIMIT", str(need - 1))
    with pytest.raises(preflight.ResourceError, match=r"largest part: worker_processes"):
        run_sweep(plan, Path(tempfile.mkdtemp()) / "s", workers=4, batch_size=8)
    monkeypatch.setenv("SIMCOMP_MEMORY_LIMIT", str(need))
    from simcomp.sweep import run as sweep_run

    class Started(Exception):
        pass

    def started(batches, workers, kind, on_done):
        assert workers == 4 and max(len(batch) for batch in batches) == 8
        raise Started

    monkeypatch.setattr(sweep_run, "_execute_pool", started)
    with pytest.raises(Started):  # at the limit the check passes and the runs start
        run_sweep(plan, Path(tempfile.mkdtemp()) / "s", workers=4, batch_size=8)
    monkeypatch.setattr(sweep_run, "_execute_serial", lambda *a: (_ for _ in ()).throw(Started))
    with pytest.raises(Started):  # a batch larger than the sweep holds only the sweep's runs
        run_sweep(plan, Path(tempfile.mkdtemp()) / "s", workers=1, batch_size=10**6)


@pytest.mark.parametrize("noise", ["1e80", "1e100", "1e150"])
def test_huge_noise_never_raises_in_the_theory(tmp_path, capsys, noise):
    """sigma^2 times the weights' Gram overflows the covariance's eigen-decomposition: the
    expected error is reported as not available (null), the command and a sweep go on
    (issue 16, 6: a LinAlgError traceback that killed whole sweeps)."""
    from simcomp import api

    cfg = build_config(None, ["data.n_train=64", "data.n_test=64", "model.width=4",
                              "train.steps=20", f"data.modality.0.noise={noise}"])
    pred = api.predict(cfg)
    assert np.isnan(pred["joint"]["prediction"].noise_aware.test_error.fused)
    assert main(["theory", "--json"] + sets(f"data.modality.0.noise={noise}")) == 0
    rows = api.sweep(cfg, grid={"data.modality.0.noise": [0.05, float(noise)]},
                     out=tmp_path / "s", workers=1, plot=False)
    assert len(rows) == 2
    capsys.readouterr()


def test_sweep_planning_estimate():
    per_run = preflight.estimate_simulate(build_config(None, SMALL), record=False)
    est = preflight.estimate_sweep_planning(10**8, per_run, concurrent=2)
    assert est.memory["planning"] == 10**8 * preflight.SWEEP_POINT_BYTES
    assert est.memory["concurrent_runs"] == 2 * (per_run.memory_bytes - per_run.memory["fixed"])
    with pytest.raises(preflight.ResourceError, match="largest part: planning"):
        os.environ["SIMCOMP_MEMORY_LIMIT"] = "4G"
        try:
            preflight.check(est)
        finally:
            del os.environ["SIMCOMP_MEMORY_LIMIT"]


def test_too_many_modalities_for_the_theory(capsys, no_work):
    extra = [f"data.modality.{r}.dim=2" for r in range(2, MAX_MODALITIES + 1)]
    argv = ["theory"]
    for item in extra:
        argv += ["--set", item]
    assert main(argv) == 2
    line = one_line_error(capsys.readouterr().err)
    assert f"lists {MAX_MODALITIES + 1} modalities; at most {MAX_MODALITIES}" in line


@pytest.mark.parametrize("kind", ["device", "fifo", "big", "binary"])
def test_config_file_must_be_a_small_regular_text_file(tmp_path, capsys, kind):
    path = tmp_path / "c.toml"
    if kind == "device":
        path = Path("/dev/zero")
        message = "is not a regular file"
    elif kind == "fifo":
        os.mkfifo(path)  # opening it would block forever
        message = "is not a regular file"
    elif kind == "big":
        path.write_text("# " + "x" * MAX_CONFIG_BYTES + "\n")
        message = f"a config may have at most {MAX_CONFIG_BYTES} bytes"
    else:
        path.write_bytes(b"seed = 1\n\xff\xfe\n")
        message = "is not UTF-8 text"
    assert main(["config", "--config", str(path)]) == 2
    assert message in one_line_error(capsys.readouterr().err)


# --------------------------------------------------------------------------- 8: extreme values


_FLOAT_KEYS = {
    "data.modality.0.beta": "data.modality.beta",
    "data.modality.1.noise": "data.modality.noise",
    "data.modality.0.distractor_strength": "data.modality.distractor_strength",
    "data.modality.1.presence": "data.modality.presence",
    "data.presence_correlation": "data.presence_correlation",  # K = 2: the whole [-1, 1]
    "model.q": "model.q",
    "model.rho": "model.rho",
    "model.init_scale": "model.init_scale",
    "model.learned_threshold": "model.learned_threshold",
    "train.lr": "train.lr",
    "train.stop_loss": "train.stop_loss",
}


def _in_range(rng_key):
    lo, hi, lo_open = NUMERIC_RANGES[rng_key]
    hi = 1.7e308 if hi is None else hi
    inner = st.floats(min_value=lo, max_value=hi, exclude_min=lo_open, allow_nan=False,
                      allow_infinity=False)
    edges = [v for v in (lo, hi, 1e-300, 1e-8, 1.0, 1e8, 1e300) if lo <= v <= hi
             and not (lo_open and v == lo)]
    return st.one_of(inner, st.sampled_from(edges))


_VALUES = st.fixed_dictionaries({key: _in_range(rng) for key, rng in _FLOAT_KEYS.items()})


def _predict_every_run(cfg):
    data = make_experiment_data(cfg)
    for _, trained in run_plan(cfg):
        a0 = geometry([data.init[r] for r in trained], [data.dictionaries[r] for r in trained])[0]
        pred = experiment.predict_run(cfg, data, trained, a0)
        json.dumps(pred.to_json([cfg.names[r] for r in trained]), allow_nan=True)


@pytest.mark.slow  # about 45 s: 40 drawn configs simulated; its finds are regression tests
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=_VALUES, learner=st.sampled_from(["symmetric", "class_banks"]))
@example(values={**{k: 1.0 for k in _FLOAT_KEYS}, "model.q": 2.0, "data.modality.1.noise": 1e308,
                 "model.init_scale": 1e308, "train.lr": 1e308, "model.rho": 1e6,
                 "model.learned_threshold": 1e-6, "data.modality.0.beta": 1e6},
         learner="symmetric")
@example(values={**{k: 1.0 for k in _FLOAT_KEYS}, "model.q": 16.0, "model.rho": 1e-6,
                 "model.init_scale": 1e-300, "data.modality.0.beta": 1e-300,
                 "model.learned_threshold": 1e6, "data.modality.1.presence": 0.0},
         learner="class_banks")
@example(values={**{k: 0.0 for k in _FLOAT_KEYS}, "data.modality.0.beta": 1.4426950408889634,
                 "data.modality.1.presence": 0.63, "model.q": 2.0, "model.rho": 8.0,
                 "model.init_scale": 6.09e307, "model.learned_threshold": 527346.19,
                 "train.lr": 1.05e307},
         learner="symmetric")  # finite but huge alignments once broke the figure's axes
def test_every_valid_value_is_safe_downstream(values, learner):
    """Anything validation accepts runs through the theory and a tiny simulate: exit 0, 1 or 2."""
    overrides = SMALL + ["train.steps=3", "train.trace_every=1", "data.modality.0.distractors=1",
                         f"model.learner={learner}"]
    overrides += [f"{key}={value!r}" for key, value in values.items()]
    cfg = build_config(None, overrides)  # every value is in its documented range
    _predict_every_run(cfg)
    argv = []
    for item in overrides:
        argv += ["--set", item]
    with tempfile.TemporaryDirectory() as tmp:  # the report is printed too: it must cope
        assert main(["simulate", "--out", str(Path(tmp) / "o")] + argv) in (0, 1)
        assert main(["theory"] + argv) == 0


@pytest.mark.parametrize("key", sorted(NUMERIC_RANGES))
def test_out_of_range_messages_state_the_valid_range(key):
    lo, hi, lo_open = NUMERIC_RANGES[key]
    path = key.replace("data.modality.", "data.modality.0.")
    bad = (hi * 2 if isinstance(hi, float) else hi + 1) if hi is not None else (
        lo - 1 if isinstance(lo, int) else -1.0)
    if key == "data.modality.distractors":
        bad = 10**6
    with pytest.raises(ConfigError, match=re.escape(path) + r" must be >=? "):
        build_config(None, [f"{path}={bad!r}"])


# --------------------------------------------------------------------------- 9, 12: I/O


def test_full_disk_is_one_line_exit_1_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    def full(arrays, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    import simcomp.api

    monkeypatch.setattr(simcomp.api, "_save_trace", full)
    assert main(["simulate", "--quiet", "--out", str(tmp_path / "o")] + sets()) == 1
    line = one_line_error(capsys.readouterr().err)
    assert "the disk is full" in line and "no complete output was written" in line
    assert list(tmp_path.iterdir()) == []


def test_full_disk_for_config_and_plot(tmp_path, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cli, "write_text_atomic", full)
    assert main(["config", "--out", str(tmp_path / "c.toml")]) == 1
    assert "the disk is full" in one_line_error(capsys.readouterr().err)
    import simcomp.plots

    monkeypatch.setattr(simcomp.plots, "save_figure", full)
    assert main(["theory", "--plot", str(tmp_path / "p.png")] + sets()) == 1
    assert "the disk is full" in one_line_error(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_read_only_targets(tmp_path, capsys, monkeypatch):
    """A write the system refuses is one line.

    Root ignores file modes, so a refused os.access stands in for a read-only directory.
    """
    real = os.access
    monkeypatch.setattr(os, "access",
                        lambda p, mode: False if str(p) == str(tmp_path) else real(p, mode))
    assert main(["simulate", "--out", str(tmp_path / "o")] + sets()) == 2
    assert "is not writable" in one_line_error(capsys.readouterr().err)
    assert main(["config", "--out", str(tmp_path / "c.toml")]) == 2
    assert "is not writable" in one_line_error(capsys.readouterr().err)
    monkeypatch.setattr(os, "access", real)
    if Path("/sys").is_dir():  # sysfs refuses new files, even to root
        assert main(["config", "--out", "/sys/simcomp-test.toml"]) == 1
        one_line_error(capsys.readouterr().err)


def test_symlink_as_out_is_never_replaced(tmp_path, capsys, no_work):
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    for target in (dangling, link):
        assert main(["simulate", "--force", "--out", str(target)] + sets()) == 2
        assert "is a symbolic link" in one_line_error(capsys.readouterr().err)
        assert target.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "link", "real"]


def test_force_that_cannot_delete_leaves_no_old_directory(tmp_path, capsys, monkeypatch):
    out = tmp_path / "o"
    assert main(["simulate", "--quiet", "--out", str(out)] + sets("train.mode=joint")) == 0

    real_rmtree = outputs.shutil.rmtree

    def stuck(path, *args, **kwargs):
        if Path(path).name.startswith(".o.old-"):  # the old output, moved aside
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(outputs.shutil, "rmtree", stuck)
    assert main(["simulate", "--quiet", "--force", "--out", str(out)] + sets()) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "could not delete the old output" in line and "new result was not saved" in line
    assert [p.name for p in tmp_path.iterdir()] == ["o"]  # no .o.old-*, no .o.partial-*
    assert sorted(p.name for p in out.iterdir()) == ["config.toml", "figures", "joint",
                                                      "summary.json"]


def test_force_refuses_up_front_what_it_could_not_delete(tmp_path, capsys, monkeypatch, no_work):
    out = tmp_path / "o"
    out.mkdir()
    (out / "joint").mkdir()
    (out / "summary.json").write_text(json.dumps({"format": outputs.SIMULATE_FORMAT, "runs": {}}))
    real = os.access
    locked = str(out / "joint")
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == locked else real(p, mode))
    assert main(["simulate", "--force", "--out", str(out)] + sets()) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "is not writable" in line and "nothing was changed" in line


def test_sigterm_removes_the_partial_directory(tmp_path, capsys, monkeypatch):
    def killed(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
        raise AssertionError("SIGTERM was not turned into an exception")

    monkeypatch.setattr(experiment, "run_experiment", killed)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["simulate", "--quiet", "--out", str(tmp_path / "o")] + sets()) == 143
    assert "terminated (SIGTERM)" in one_line_error(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is the command's only


# --------------------------------------------------------------------------- 10, 11: parsing


@pytest.mark.parametrize("name, ok", [("x" * 64, True), ("x" * 65, False), ("x" * 300, False),
                                      ("a/b", False), ("ü", False), ("a b", False),
                                      ("A-1_b.c", True)])
def test_modality_names_are_checked_up_front(name, ok):
    if ok:
        assert build_config(None, [f'data.modality.0.name="{name}"']).names[0] == name
    else:
        with pytest.raises(ConfigError, match=r"1 to 64 letters \(a-z, A-Z\), digits"):
            build_config(None, [f'data.modality.0.name="{name}"'])


def test_long_modality_name_is_refused_before_training(tmp_path, capsys, no_work):
    assert main(["simulate", "--out", str(tmp_path / "o"),
                 "--set", f'data.modality.0.name="{"n" * 247}"']) == 2
    assert "(247 characters)" in one_line_error(capsys.readouterr().err)


@pytest.mark.parametrize("override, message", [
    ("data.modality.².beta=1", "expected an index (digits 0-9), got '²'"),
    ("data.modality.٣.beta=1", "expected an index (digits 0-9)"),
    ("data.modality." + "9" * 5000 + ".beta=1", "is out of range"),
    ("train.lr=" + "[" * 100000, "nested too deeply"),
])
def test_override_parser_never_raises_a_traceback(capsys, override, message):
    assert main(["config", "--set", override]) == 2
    assert message in one_line_error(capsys.readouterr().err)


def test_deeply_nested_toml_file(tmp_path, capsys):
    path = tmp_path / "deep.toml"
    path.write_text("a = " + "[" * 100000 + "\n")
    assert main(["simulate", "--config", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "nested too deeply" in one_line_error(capsys.readouterr().err)


def test_an_error_caused_by_the_interrupt_is_still_an_interrupt(tmp_path, capsys, monkeypatch):
    """Ctrl-C inside numba's compiler can leave a kernel half-made, so the cleanup fails with
    "RuntimeError: no compiled object yet": still exit 130 and one line, no traceback."""
    def compiling(*args, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the signal arrives here
        except KeyboardInterrupt:
            raise RuntimeError("no compiled object yet")
        raise AssertionError("the signal never arrived")

    monkeypatch.setattr(experiment, "run_experiment", compiling)
    assert main(["simulate", "--quiet", "--out", str(tmp_path / "o")] + sets()) == 130
    assert "interrupted" in one_line_error(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []
    # without a signal, an unexpected error is not disguised as an interrupt
    monkeypatch.setattr(experiment, "run_experiment",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        main(["simulate", "--quiet", "--out", str(tmp_path / "o")] + sets())


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """One small simulate directory (joint and uni-modal runs), copied by the tests that damage it."""
    out = tmp_path_factory.mktemp("sim") / "r"
    assert main(["simulate", "--quiet", "--out", str(out)] + sets()) == 0
    return out


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("damage, named", [
    (lambda r: ((r / "figures" / "alignment.png").unlink(),
                (r / "figures" / "alignment.png").mkdir()), "figures/alignment.png"),
    (lambda r: (__import__("shutil").rmtree(r / "figures"), (r / "figures").write_text("x")),
     "figures"),
])
def test_plot_names_the_figure_path_it_cannot_write(tmp_path, capsys, simulated, damage, named):
    """figures/alignment.png a directory (or figures/ a file): the message names that path, not
    the hidden temporary the figure is first written to; exit 2; nothing left behind."""
    r = _copy(simulated, tmp_path / "r")
    damage(r)
    assert main(["plot", str(r)]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert repr(str(r / named)) in line and ".partial" not in line
    assert not [p for p in (r / "figures").rglob(".*")] if (r / "figures").is_dir() else True


def test_save_figure_atomic_names_the_target(tmp_path):
    from simcomp.plots import new_figure, save_figure_atomic

    (tmp_path / "a.png").mkdir()
    with pytest.raises(OSError) as info:
        save_figure_atomic(new_figure(2, 2), tmp_path / "a.png")
    assert info.value.filename == str(tmp_path / "a.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


@pytest.mark.parametrize("option, text, char", [
    ("--set", "train.steps=5\nseed=3", "'\\n'"),
    ("--set", "train.st\x01eps=5", "'\\x01'"),
    ("--set", "data.modality.0.name=\"A\rB\"", "'\\r'"),
    ("--grid", "train.steps=5,6\nseed=3", "'\\n'"),
])
def test_control_characters_in_overrides_are_refused(tmp_path, capsys, no_work, option, text,
                                                     char):
    """TOML ends a value at a newline: everything after it was silently dropped (issue 16, 20)."""
    command = ["sweep", "--out", str(tmp_path / "s")] if option == "--grid" else ["config"]
    assert main(command + [option, text]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert f"control character {char}" in line and option in line
    with pytest.raises(ConfigError, match="control character"):
        build_config(None, [("train.steps\nseed", 5)])
    assert not (tmp_path / "s").exists()
