"""The public Python API: what it returns, that it equals the CLI, and `simcomp plot`."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import simcomp
from simcomp.cli import main
from simcomp.phase import typed_cell

SMALL = {"data.n_train": 64, "data.n_test": 64, "data.modality.0.dim": 8,
         "data.modality.1.dim": 6, "model.width": 2, "train.steps": 40, "train.trace_every": 10}
# Fields of summary.json that describe the machine and the moment, not the result.
VOLATILE = ("created", "command", "platform", "python_version", "numpy_version",
            "numba_version", "simcomp_version")
RUN_VOLATILE = ("seconds", "threads", "parallel")


def sets(overrides):
    out = []
    for key, value in overrides.items():
        out += ["--set", f"{key}={json.dumps(value)}"]
    return out


def stable(summary):
    """A summary without its timing and provenance fields."""
    out = {k: v for k, v in summary.items() if k not in VOLATILE}
    out["runs"] = {name: {k: v for k, v in run.items() if k not in RUN_VOLATILE}
                   for name, run in summary["runs"].items()}
    return out


def test_public_names_and_version():
    for name in ("build_config", "simulate", "load", "predict", "sweep", "Result",
                 "ConfigError", "OutputError", "Config"):
        assert getattr(simcomp, name).__doc__, name
    assert simcomp.__version__ == simcomp._version.__version__
    assert set(simcomp.__all__) >= {"__version__", "build_config", "simulate", "load", "predict",
                                    "sweep"}


def test_simcomp_sweep_is_the_api_function_and_the_package_stays_importable():
    code = ("import simcomp, inspect; from simcomp.sweep import parse_grid; "
            "from simcomp import sweep as sw; import simcomp.api as api; "
            "assert sw is simcomp.sweep is api.sweep; print(parse_grid.__name__, "
            "list(inspect.signature(sw).parameters)[:3])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(simcomp.__file__).parent.parent, check=True)
    assert out.stdout.strip() == "parse_grid ['config', 'grid', 'seeds']"
    assert simcomp.api.sweep.__doc__.startswith("Run a grid")


def test_import_is_light():
    code = ("import sys, simcomp; heavy = [m for m in ('numba', 'matplotlib', 'dask', "
            "'simcomp.train', 'simcomp.theory') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(simcomp.__file__).parent.parent, check=True)
    assert out.stdout.strip() == "[]"


def test_build_config_takes_a_dict_strings_or_pairs():
    a = simcomp.build_config(overrides={"train.steps": 40, "data.modality.0.beta": 1.5})
    b = simcomp.build_config(overrides=["train.steps=40", "data.modality.0.beta=1.5"])
    c = simcomp.build_config(None, [("train.steps", 40), ("data.modality.0.beta", 1.5)])
    assert a == b == c and a.train.steps == 40 and a.data.modality[0].beta == 1.5
    with pytest.raises(simcomp.ConfigError, match="train.steps"):
        simcomp.build_config(overrides={"train.steps": -1})


def test_simulate_equals_the_cli_and_saves_the_same_directory(tmp_path):
    cfg = simcomp.build_config(overrides=SMALL)
    result = simcomp.simulate(cfg)
    assert result.config == cfg
    assert set(result.traces) == {"joint", "unimodal-A", "unimodal-B"} == set(result.predictions)
    assert result.summary["format"] == "simcomp.simulate/1"
    joint = result.summary["runs"]["joint"]
    # "never" is None in the API, as in summary.json's null
    steps = list(joint["learned_step"].values()) + list(joint["predicted_learned_step"].values())
    for step in steps:
        assert step is None or isinstance(step, int)
    assert isinstance(result.traces["joint"]["test_error"], np.ndarray)
    assert result.traces["joint"]["steps"].tolist() == [0, 10, 20, 30, 40]

    assert main(["simulate", "--quiet", "--out", str(tmp_path / "cli")] + sets(SMALL)) == 0
    cli = json.loads((tmp_path / "cli" / "summary.json").read_text())
    assert stable(cli) == stable(result.summary)
    assert stable(json.loads(json.dumps(result.summary))) == stable(result.summary)

    saved = result.save(tmp_path / "api")
    assert sorted(p.name for p in saved.iterdir()) == sorted(p.name for p in
                                                             (tmp_path / "cli").iterdir())
    assert (saved / "figures" / "alignment.png").stat().st_size > 10_000
    assert (saved / "config.toml").read_text() == (tmp_path / "cli" / "config.toml").read_text()
    with pytest.raises(simcomp.OutputError, match="not empty"):
        result.save(tmp_path / "api")
    result.save(tmp_path / "api", force=True)

    loaded = simcomp.load(tmp_path / "cli")
    assert loaded.config == cfg
    assert stable(loaded.summary) == stable(result.summary)
    for name, arrays in result.traces.items():
        assert set(loaded.traces[name]) == set(arrays)
        for key, value in arrays.items():
            np.testing.assert_array_equal(loaded.traces[name][key], value)
    # predictions of a loaded result are recomputed from the config: the same numbers
    for name, pred in result.predictions.items():
        again = loaded.predictions[name]
        np.testing.assert_array_equal(again.predicted_learned_step, pred.predicted_learned_step)
        np.testing.assert_allclose(again.kappa, pred.kappa)
        np.testing.assert_array_equal(again.reduced.leading_alignment,
                                      pred.reduced.leading_alignment)


def test_load_refuses_what_is_not_a_simulate_directory(tmp_path):
    with pytest.raises(simcomp.OutputError, match="not a simcomp simulate directory"):
        simcomp.load(tmp_path)
    (tmp_path / "summary.json").write_text('{"format": "other"}')
    with pytest.raises(simcomp.OutputError, match="not a simcomp simulate directory"):
        simcomp.load(tmp_path)


def test_predict_equals_the_theory_command(capsys):
    cfg = simcomp.build_config(overrides=SMALL)
    predicted = simcomp.predict(cfg)
    assert main(["theory", "--json"] + sets(SMALL)) == 0
    cli = json.loads(capsys.readouterr().out)
    assert [row["run"] for row in cli["runs"]] == list(predicted)
    for row in cli["runs"]:
        entry = predicted[row["run"]]
        # every quantity both give is the same (the command may add its own, e.g. a method's)
        shared = [key for key in entry if key != "prediction" and key in row]
        assert {"presence_fraction", "initial_leading_alignment"} <= set(shared)
        for key in shared:
            assert row[key] == entry[key], key
        if "prediction" in row:
            assert row["prediction"]["predicted_learned_step"] == entry["predicted_learned_step"]
        names = list(entry["presence_fraction"])
        assert entry["prediction"].trained == [cfg.names.index(n) for n in names]
    # and the same numbers the simulation reports for the quantities known before training
    summary = simcomp.simulate(cfg).summary
    for name, entry in predicted.items():
        for key, value in entry.items():
            if key not in ("prediction", "method_prediction"):  # (summary: method_*)
                assert summary["runs"][name][key] == value, (name, key)


def _csv_rows(path):
    with open(path, newline="") as handle:
        return [{k: typed_cell(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def test_sweep_rows_equal_the_cli_sweep_and_its_csv(tmp_path, capsys):
    cfg = simcomp.build_config(overrides=SMALL)
    grid = {"data.modality.0.beta": [1.0, 2.0], "data.modality.0.presence": "0.6:1:2"}
    rows = simcomp.sweep(cfg, grid=grid, seeds=2, out=tmp_path / "api", workers=1)
    assert len(rows) == 8
    assert rows[0]["data.modality.0.beta"] == 1.0 and rows[0]["repeat"] == 0
    assert all(r["status"] == "ok" for r in rows)
    assert any(r["learned_step_joint_B"] is None for r in rows)  # "never" is None
    assert all(isinstance(r["learned_by_horizon_joint_A"], bool) for r in rows)
    assert (tmp_path / "api" / "figures" / "phase.png").stat().st_size > 10_000

    cli_args = ["sweep", "--quiet", "--workers", "1", "--seeds", "2", "--out",
                str(tmp_path / "cli"), "--grid", "data.modality.0.beta=1.0,2.0",
                "--grid", "data.modality.0.presence=0.6:1:2"] + sets(SMALL)
    assert main(cli_args) == 0
    assert (tmp_path / "cli" / "figures" / "phase.png").is_file()
    csv_rows = _csv_rows(tmp_path / "cli" / "results.csv")
    assert (tmp_path / "cli" / "results.csv").read_text() == \
        (tmp_path / "api" / "results.csv").read_text()
    assert len(csv_rows) == len(rows)
    for api_row, csv_row in zip(rows, csv_rows):
        assert list(api_row) == list(csv_row)
        for key, value in api_row.items():
            expected = csv_row[key]
            if isinstance(value, bool):
                value = int(value)  # a CSV cell holds 1/0
            assert value == expected, key
    # without out, nothing is left behind and the rows are the same
    again = simcomp.sweep(cfg, grid=grid, seeds=2, workers=1)
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in again] == \
        [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_plot_command_on_sweep_and_simulate_directories(tmp_path, capsys):
    cfg = simcomp.build_config(overrides=SMALL)
    simcomp.sweep(cfg, grid=["data.modality.0.beta=1.0,2.0", "data.modality.1.beta=0.5,1.0",
                             "train.mode=compare"], seeds=1, out=tmp_path / "sw", workers=1,
                  plot=False)
    assert not (tmp_path / "sw" / "figures").exists()
    assert main(["plot", str(tmp_path / "sw")]) == 0
    assert (tmp_path / "sw" / "figures" / "phase.png").stat().st_size > 10_000
    out = tmp_path / "p.png"
    assert main(["plot", str(tmp_path / "sw"), "--x", "data.modality.1.beta", "--y",
                 "data.modality.0.beta", "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
    assert main(["plot", str(tmp_path / "sw"), "--out", str(out)]) == 2  # exists, no --force
    assert "--force" in capsys.readouterr().err
    for bad, why in ((["--x", "model.width"], "not a grid axis"),
                     (["--x", "train.mode"], "not numbers"),
                     (["--x", "data.modality.0.beta", "--y", "data.modality.0.beta"],
                      "two different")):
        assert main(["plot", str(tmp_path / "sw")] + bad) == 2
        err = capsys.readouterr().err.strip()
        assert why in err and err.count("\n") == 0 and err.startswith("simcomp: error:")

    sim = simcomp.simulate(cfg).save(tmp_path / "sim")
    (sim / "figures" / "alignment.png").unlink()
    assert main(["plot", str(sim)]) == 0
    assert (sim / "figures" / "alignment.png").stat().st_size > 10_000
    assert main(["plot", str(sim), "--x", "seed"]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["plot", str(tmp_path / "empty")]) == 2
    assert "neither" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "nothing")]) == 2


def test_phase_figure_cells_from_rows():
    """The measured winner, co-learning fraction and gap of a cell are those of its rows."""
    from simcomp.phase import _cells

    def row(beta, winner, a, b, gap, coord):
        return {"x": beta, "winner_joint": winner, "learned_by_horizon_joint_A": a,
                "learned_by_horizon_joint_B": b, "predicted_learned_by_horizon_joint_A": 1,
                "predicted_learned_by_horizon_joint_B": b, "gap": gap,
                "winner_coordinate_joint": coord, "predicted_winner_joint": "A"}

    rows = [row(1.0, "B", 1, 1, 0.0, 1.0), row(1.0, "B", 1, 0, 0.1, 2.0),
            row(1.0, "A", 1, 0, None, 3.0), row(2.0, None, 0, 0, 0.2, -1.0)]
    cells = _cells(rows, {"key": "x", "values": [1.0, 2.0]}, None, ["A", "B"])
    assert cells["winner"][:, 0].tolist() == [1, -1]  # B on 2 of 3 seeds; none learned
    assert cells["colearned"][:, 0].tolist() == pytest.approx([1 / 3, 0.0])
    assert cells["gap"][:, 0].tolist() == pytest.approx([0.05, 0.2])  # None left out
    assert cells["coordinate"][:, 0].tolist() == pytest.approx([2.0, -1.0])
    assert cells["predicted_colearned"][:, 0].tolist() == pytest.approx([1 / 3, 0.0])


def test_phase_cells_group_the_rows_once(monkeypatch):
    """Drawing is linear in the runs: each row is placed on each axis once (issue 16, 11:
    every cell used to scan every row, 254 s for 14 400 runs).  Counted, not timed."""
    from simcomp import phase

    calls = []
    real = phase._same
    monkeypatch.setattr(phase, "_same", lambda a, b: calls.append(1) or real(a, b))
    xs, ys = [0.1 * i for i in range(30)], [float(j) for j in range(30)]
    rows = [{"x": x, "y": y, "winner_joint": "A", "gap": 0.1, "winner_coordinate_joint": 1.0}
            for x in xs for y in ys for _ in range(2)]
    rows.append({"x": 0.1 * 7 * (1 + 1e-15), "y": 3.0, "gap": 0.5})  # read back with rounding
    cells = phase._cells(rows, {"key": "x", "values": xs}, {"key": "y", "values": ys}, ["A"])
    assert len(calls) <= 2 * len(xs)  # only the rounded value falls back to comparisons
    assert cells["gap"][7, 3] == pytest.approx((0.1 + 0.1 + 0.5) / 3)
    assert np.isfinite(cells["winner"]).all()


def test_every_modality_has_its_own_winner_colour():
    """Modalities 11 and up used to share tab10's last colour (issue 16, 16)."""
    from simcomp.config import MAX_MODALITIES
    from simcomp.phase import winner_colours

    palette = [tuple(round(c, 6) for c in colour) for colour in winner_colours(MAX_MODALITIES)]
    assert len(palette) == MAX_MODALITIES
    assert len(set(palette)) == MAX_MODALITIES
    assert (0.827451, 0.827451, 0.827451, 1.0) not in palette  # "none" is light grey


def test_numpy_scalars_are_taken_as_the_numbers_they_are(tmp_path):
    """np.float64 grid values, np.int64 seeds and the like (issue 16, 15); a scheduler that is
    none of the accepted kinds is a ValueError naming it, not an AttributeError."""
    small = {"data.n_train": 32, "data.n_test": 32, "model.width": 2, "train.steps": 6,
             "train.trace_every": 3}
    cfg = simcomp.build_config(overrides={**small, "train.lr": np.float32(0.5),
                                          "seed": np.uint64(2**63 - 1),
                                          "train.noise_theory": np.bool_(False),
                                          "data.modality.0.beta": np.float64(1.5)})
    assert cfg.train.lr == 0.5 and cfg.seed == 2**63 - 1 and cfg.train.noise_theory is False
    assert simcomp.build_config(overrides=[("seed", np.int64(3))]).seed == 3
    rows = simcomp.sweep(cfg, grid={"data.modality.0.beta": np.array([1.0, 2.0]),
                                    "train.steps": [np.int64(6)]},
                         seeds=np.int64(2), workers=np.int64(1), out=tmp_path / "s", plot=False)
    assert [row["data.modality.0.beta"] for row in rows] == [1.0, 1.0, 2.0, 2.0]
    with pytest.raises(ValueError, match=r"scheduler must be .* got 5 \(int\)"):
        simcomp.sweep(cfg, scheduler=5)
