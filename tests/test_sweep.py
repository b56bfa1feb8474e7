"""Sweeps: grid parsing, seed derivation, the results table, resuming, executors, the CLI."""

from __future__ import annotations

import csv
import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from simcomp import columns as result_csv
from simcomp import results
from simcomp import sweep as sw
from simcomp.cli import main
from simcomp.config import ConfigError
from simcomp.config_file import build_config
from simcomp.experiment import run_experiment, summarize
from simcomp.outputs import OutputError

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


# --------------------------------------------------------------------------- grid parsing


def test_linspace_floats_and_lists():
    axis = sw.parse_grid("data.modality.0.beta=1:2:5")
    assert axis.key == "data.modality.0.beta" and axis.spec == "1:2:5"
    assert axis.values == (1.0, 1.25, 1.5, 1.75, 2.0)
    assert all(type(v) is float for v in axis.values)
    assert sw.parse_grid("model.q=3:3:1").values == (3.0,)
    assert sw.parse_grid("data.modality.1.presence=0.5, 1").values == (0.5, 1)
    assert sw.parse_grid("train.mode=joint,compare").values == ("joint", "compare")
    assert sw.parse_grid('model.learner="symmetric","class_banks"').values == (
        "symmetric", "class_banks")
    assert sw.parse_grid("data.population=true,false").values == (True, False)
    assert sw.parse_grid("train.steps=40").values == (40,)


def test_linspace_integer_settings_give_exact_ints():
    for text, expected in [("train.steps=100:500:5", (100, 200, 300, 400, 500)),
                           ("data.n_train=10:20:3", (10, 15, 20)),
                           ("data.modality.1.dim=4:8:3", (4, 6, 8)),
                           ("model.width=1:4:4", (1, 2, 3, 4)),
                           ("train.steps=1e2:3e2:3", (100, 200, 300))]:
        values = sw.parse_grid(text).values
        assert values == expected
        assert all(type(v) is int for v in values)


@pytest.mark.parametrize("text, words", [
    ("train.steps=100:200:4", ["train.steps", "integer", "133.333"]),
    ("data.modality.0.dim=1.5:3.5:3", ["data.modality.0.dim", "integer"]),
    ("model.learner=1:2:3", ["model.learner", "numeric"]),
    ("model.nonsense=1:2:3", ["model.nonsense", "not a config setting"]),
    ("data.modality.0.beta=a:2:3", ["data.modality.0.beta", "START"]),
    ("data.modality.0.beta=1:2:0", ["data.modality.0.beta", "NUM"]),
    ("data.modality.0.beta=1:2:2.5", ["data.modality.0.beta", "NUM"]),
    ("data.modality.0.beta=1:2:1", ["data.modality.0.beta", "START = STOP"]),
    ("data.modality.0.beta=", ["data.modality.0.beta", "no values"]),
    ("data.modality.0.beta=1,,2", ["data.modality.0.beta", "empty value"]),
    ("data.modality.0.beta=[1,2]", ["data.modality.0.beta", "numbers, strings or booleans"]),
    ("nokey", ["KEY=START:STOP:NUM"]),
    ("seed=1,2", ["--seeds"]),
])
def test_bad_grid_text_is_refused_naming_the_key(text, words):
    with pytest.raises(sw.SweepError) as err:
        sw.parse_grid(text)
    assert isinstance(err.value, ConfigError)  # exit code 2 in the CLI
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize("grids, words", [
    (["data.modality.0.beta=1,-1"], ["data.modality.0.beta", "-1", "> 0"]),
    (["train.stepz=1,2"], ["train.stepz", "unknown config key"]),
    (["train.mode=joint,sideways"], ["train.mode", "sideways"]),
    (["data.modality.0.beta=1,2", "data.modality.0.beta=3"], ["more than once"]),
    (["data.modality.0.beta=1,1.0"], ["data.modality.0.beta", "appears more than once"]),
    (["data.modality.1.name=B,C"], ["modality names", "data.modality.1.name"]),
    (["data.modality.0.dim=4,8", "data.modality.0.distractors=0,6"],
     ["data.modality.0.dim=4", "data.modality.0.distractors=6", "distractors"]),
    (["data.modality"], ["KEY="]),
])
def test_bad_grid_values_fail_before_anything_runs(grids, words):
    with pytest.raises(ConfigError) as err:
        sw.plan_sweep(base(), grids, 2)
    for word in words:
        assert word in str(err.value)


def test_bad_seeds_refused():
    for seeds in (0, -1, 1.5, True):
        with pytest.raises(sw.SweepError, match="--seeds"):
            sw.plan_sweep(base(), [], seeds)


def test_cartesian_product_order_and_normalised_values():
    plan = sw.plan_sweep(base(), ["data.modality.0.beta=1,2,3", "train.mode=joint,compare"], 4)
    assert len(plan.points) == 6 and len(plan.runs) == 24
    assert plan.axes[0].values == (1.0, 2.0, 3.0)  # ints normalised to the float setting
    assert [dict(p) for p in plan.points[:3]] == [
        {"data.modality.0.beta": 1.0, "train.mode": "joint"},
        {"data.modality.0.beta": 1.0, "train.mode": "compare"},
        {"data.modality.0.beta": 2.0, "train.mode": "joint"}]
    assert [r.repeat for r in plan.runs[:5]] == [0, 1, 2, 3, 0]
    for run in plan.runs:
        point = dict(run.point)
        assert run.cfg.data.modality[0].beta == point["data.modality.0.beta"]
        assert run.cfg.train.mode == point["train.mode"]
        assert run.cfg.seed == run.seed
    assert len({r.run_id for r in plan.runs}) == 24
    assert len(sw.plan_sweep(base(), [], 3).runs) == 3  # no grid: one point, N seeds


# --------------------------------------------------------------------------- seeds


def reference_seed(base_seed, point, repeat):
    """The rule of docs/sweeps.md, written out independently."""
    text = json.dumps({"base_seed": base_seed, "point": sorted([k, v] for k, v in point.items()),
                       "repeat": repeat}, sort_keys=True, separators=(",", ":"))
    entropy = int(hashlib.sha256(text.encode()).hexdigest(), 16)
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0]) >> 1


def test_seed_rule_is_the_documented_one():
    point = {"data.modality.0.beta": 1.5, "train.steps": 30}
    for repeat in range(3):
        assert sw.derive_seed(0, point, repeat) == reference_seed(0, point, repeat)
    assert sw.derive_seed(0, {}, 0) == reference_seed(0, {}, 0)
    # pinned: changing the rule would reseed every stored sweep
    assert sw.derive_seed(0, point, 0) == 6587154392326367645
    assert sw.derive_seed(0, {}, 0) == 8717395936649211693
    assert "SHA-256" in sw.SEED_RULE


def test_seed_depends_on_content_not_position():
    point = {"data.modality.0.beta": 1.5, "train.mode": "joint"}
    seed = sw.derive_seed(7, point, 1)
    assert 0 <= seed < 2**63
    assert sw.derive_seed(7, dict(reversed(list(point.items()))), 1) == seed
    assert sw.derive_seed(7, point, 0) != seed
    assert sw.derive_seed(8, point, 1) != seed
    assert sw.derive_seed(7, {**point, "data.modality.0.beta": 1.25}, 1) != seed

    a = sw.plan_sweep(base(), ["data.modality.0.beta=1,2", "train.mode=joint,compare"], 2)
    b = sw.plan_sweep(base(), ["train.mode=compare,joint", "data.modality.0.beta=3,2,1.5,1"], 3)
    seeds_b = {(frozenset(r.point), r.repeat): (r.seed, r.run_id) for r in b.runs}
    for run in a.runs:
        assert seeds_b[(frozenset(run.point), run.repeat)] == (run.seed, run.run_id)
    again = sw.plan_sweep(base(), ["data.modality.0.beta=1,2", "train.mode=joint,compare"], 2)
    assert [r.seed for r in again.runs] == [r.seed for r in a.runs]


def test_run_id_ignores_threads_only():
    cfg = base()
    assert sw.run_id(cfg) == sw.run_id(cfg.replace(**{"train.threads": 4}))
    assert sw.run_id(cfg) != sw.run_id(cfg.replace(seed=1))
    assert sw.run_id(cfg) != sw.run_id(cfg.replace(**{"train.steps": 31}))
    assert len(sw.run_id(cfg)) == 16


# --------------------------------------------------------------------------- the table


def cell(value):
    """What results.csv holds for a value of summary.json."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return repr(value) if isinstance(value, float) else str(value)


def check_row_against_summary(row, cfg, names):
    """Every result column equals its summary.json value, by the naming rule of simcomp.results.

    ``<q>_joint_<M>`` / ``<q>_alone_<M>`` are ``runs.joint.<q>.<M>`` /
    ``runs.unimodal-<M>.<q>``, ``<q>_<M>`` a value shared by the runs,
    comparison quantities keep their name; missing runs give empty cells.
    """
    summary = summarize(run_experiment(cfg))
    runs = summary["runs"]
    checked, empty = set(), 0
    for q in results.QUANTITIES:
        if not q.csv:
            continue
        if q.level == "comparison":
            comp = summary["comparison"]
            expected = {q.name: None if comp is None else comp[q.name]}
        else:
            expected = {}
            for name in names:
                joint, alone = runs.get("joint"), runs.get(f"unimodal-{name}")
                if q.csv == "shared":
                    holder = joint or alone
                    expected[f"{q.name}_{name}"] = holder[q.name][name]
                    continue
                pick = (lambda run: run[q.name][name]) if q.level == "modality" else (
                    lambda run: run[q.name])
                key = f"{q.name}_joint_{name}" if q.level == "modality" else f"{q.name}_joint"
                expected[key] = None if joint is None else pick(joint)
                if q.csv == "all":
                    expected[f"{q.name}_alone_{name}"] = None if alone is None else (
                        alone[q.name][name] if q.level == "modality" else alone[q.name])
        for column, value in expected.items():
            assert row[column] == cell(value), (column, row[column], value)
            checked.add(column)
            empty += value is None
    for s in result_csv.SETTINGS:
        for r, name in enumerate(names):
            assert row[f"{s}_{name}"] == cell(getattr(cfg.data.modality[r], s))
            checked.add(f"{s}_{name}")
    assert row["status"] == "ok"
    assert checked | {"status"} == set(result_csv.result_columns(names))  # every column checked
    assert "seconds" not in row
    return sum(1 for name in names if row[f"learned_step_joint_{name}"] == ""
               or row.get(f"learned_step_alone_{name}") == "")


def test_csv_columns_and_values_k2(tmp_path):
    plan = sw.plan_sweep(base(), ["data.modality.0.beta=1.5,2.5", "train.mode=compare,joint"], 1)
    result = sw.run_sweep(plan, tmp_path / "s", workers=1)
    header, rows = read_csv(tmp_path / "s" / "results.csv")
    assert header == sw.csv_columns(plan.grid_keys, ("A", "B")) == plan.columns
    assert header[:4] == ["data.modality.0.beta", "train.mode", "repeat", "seed"]
    assert header[4:8] == ["dim_A", "dim_B", "beta_A", "beta_B"]
    assert header[-9:] == ["best_unimodal", "best_unimodal_test_error", "gap", "expected_gap",
                           "predicted_best_unimodal", "predicted_gap", "ensemble_test_error",
                           "gap_to_ensemble", "status"]
    assert "learned_by_horizon_joint_B" in header and "race_learned_step_alone_A" in header
    assert len(rows) == 4 and result.ran == 4 and result.done_before == 0
    empties = 0
    for run, values in zip(plan.runs, rows):
        row = dict(zip(header, values))
        assert row["data.modality.0.beta"] == repr(dict(run.point)["data.modality.0.beta"])
        assert row["train.mode"] == dict(run.point)["train.mode"]
        assert row["repeat"] == str(run.repeat) and row["seed"] == str(run.seed)
        empties += check_row_against_summary(row, run.cfg, ("A", "B"))
    assert empties > 0  # a "never" was checked to be an empty cell
    assert sum(1 for v in rows if v[header.index("winner_coordinate_joint")]) >= 1


def test_csv_k3(tmp_path):
    plan = sw.plan_sweep(base(*THIRD), ["data.modality.2.beta=1.5"], 1)
    sw.run_sweep(plan, tmp_path / "s", workers=1)
    header, rows = read_csv(tmp_path / "s" / "results.csv")
    assert plan.names == ("A", "B", "C")
    assert header == plan.columns
    assert header[3:9] == ["dim_A", "dim_B", "dim_C", "beta_A", "beta_B", "beta_C"]
    row = dict(zip(header, rows[0]))
    check_row_against_summary(row, plan.runs[0].cfg, ("A", "B", "C"))
    assert row["winner_coordinate_joint"] == ""


def test_sweep_json_and_records(tmp_path):
    plan = sw.plan_sweep(base(), ["data.modality.0.beta=1:2:2"], 2)
    sw.run_sweep(plan, tmp_path / "s", workers=1)
    meta = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert meta["definition"]["base_config"] == base().to_dict()
    assert meta["definition"]["grids"] == [
        {"key": "data.modality.0.beta", "spec": "1:2:2", "values": [1.0, 2.0]}]
    assert meta["definition"]["seeds"] == 2
    assert meta["definition"]["seed_rule"] == sw.SEED_RULE
    assert meta["counts"] == {"grid_points": 2, "seeds": 2, "runs": 4, "done": 4, "done_before": 0,
                              "ran": 4, "complete": True}
    assert meta["provenance"]["numba_version"] and meta["columns"] == plan.columns
    records = sorted((tmp_path / "s" / "runs").iterdir())
    assert [p.name for p in records] == sorted(f"{r.run_id}.json" for r in plan.runs)
    record = json.loads((tmp_path / "s" / "runs" / f"{plan.runs[1].run_id}.json").read_text())
    assert record["seed"] == plan.runs[1].seed and record["repeat"] == 1
    assert record["config"] == plan.runs[1].cfg.to_dict()


# --------------------------------------------------------------------------- resuming


GRID = ["data.modality.0.beta=1.5,2.5", "data.modality.1.presence=0.9,1.0"]


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


@pytest.mark.parametrize("workers, executor", [(1, "processes"), (2, "threads"), (2, "processes")])
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


@pytest.fixture(params=["default", "ignored"])
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
    assert "simcomp[distributed]" in err and err.count("\n") == 1
    assert not out.exists()


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


# --------------------------------------------------------------------------- values and columns


def test_linspace_values_are_the_decimals_meant(tmp_path):
    axis = sw.parse_grid("data.modality.0.beta=1:2:6")
    assert axis.values == (1.0, 1.2, 1.4, 1.6, 1.8, 2.0)
    assert sw.parse_grid("data.modality.0.noise=0:0.3:4").values == (0.0, 0.1, 0.2, 0.3)
    assert sw.parse_grid("model.q=2.5:3.5:3").values == (2.5, 3.0, 3.5)
    plan = sw.plan_sweep(base(), ["data.modality.1.presence=0.7:0.9:3"], 1)
    sw.run_sweep(plan, tmp_path / "s", workers=1)
    header, rows = read_csv(tmp_path / "s" / "results.csv")
    assert [r[0] for r in rows] == ["0.7", "0.8", "0.9"]
    assert [r[header.index("presence_B")] for r in rows] == ["0.7", "0.8", "0.9"]


def test_every_modality_setting_is_a_column(tmp_path):
    plan = sw.plan_sweep(base("data.modality.1.noise=0.05"), ["data.modality.0.beta=1.5"], 1)
    sw.run_sweep(plan, tmp_path / "s", workers=1)
    rows = sw.read_results(tmp_path / "s" / "results.csv")
    cfg = plan.runs[0].cfg
    for setting in result_csv.SETTINGS:
        for r, name in enumerate("AB"):
            value = getattr(cfg.data.modality[r], setting)
            assert rows[0][f"{setting}_{name}"] == (repr(value) if isinstance(value, float)
                                                    else str(value))
    assert rows[0]["noise_B"] == "0.05" and rows[0]["beta_A"] == "1.5"
    assert rows[0]["beta_B"] == repr(cfg.data.modality[1].beta)  # not swept, still there


def test_sweep_report_names_the_measured_winner(tmp_path):
    plan = sw.plan_sweep(base(), ["data.modality.0.beta=1.5,2.5"], 2)
    result = sw.run_sweep(plan, tmp_path / "s", workers=1)
    text = sw.sweep_report(result)
    header = text.splitlines()[2]
    assert "winner" in header and "as predicted" in header and "joint loses" in header
    for p, point in enumerate(plan.points):
        rows = result.rows[p * 2:(p + 1) * 2]
        winners = [r["winner_joint"] or "none" for r in rows]
        top = max(sorted(set(winners)), key=winners.count)
        line = next(ln for ln in text.splitlines()
                    if ln.startswith(f"data.modality.0.beta={dict(point)['data.modality.0.beta']}"))
        assert f"{top} {winners.count(top)}/2" in line


# --------------------------------------------------------------------------- hardening


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


def test_runs_that_is_a_file_and_an_unwritable_directory(tmp_path, capsys, monkeypatch):
    plan = sw.plan_sweep(base(), ["data.modality.0.beta=1.5,2.5"], 1)
    out = tmp_path / "s"
    sw.run_sweep(plan, out, workers=1)
    records = sorted(p.name for p in (out / "runs").iterdir())

    # --force in a directory it cannot write to: refused before anything is deleted
    import simcomp.sweep.store as store

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


def test_connect_timeout_must_be_positive(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "--out", str(tmp_path / "s"), "--connect-timeout", "0"])
    assert exc.value.code == 2
    assert "--connect-timeout" in capsys.readouterr().err
