"""Damaged output directories: one line naming the damaged file, never a traceback.

A table of damage done to a ``simulate`` directory and to a ``sweep``
directory (truncated or garbled files, odd JSON structures, a renamed
modality, an edited config.toml, absurdly deep nesting); each must give exit
2 and one line naming the file from ``simcomp plot``, and a ValueError-family
exception with that message from ``simcomp.load`` / the sweep reader.
"""

import json
import os
import shutil

import numpy as np
import pytest

import simcomp
from simcomp.cli import main
from simcomp.outputs import DamagedOutputError, OutputError
from simcomp.phase import PlotError, read_sweep

SMALL = ["data.n_train=32", "data.n_test=32", "data.modality.0.dim=6", "data.modality.1.dim=5",
         "model.width=2", "train.steps=12", "train.trace_every=4"]


def sets(*extra):
    out = []
    for item in SMALL + list(extra):
        out += ["--set", item]
    return out


def one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


DEEP = "[" * 100000 + "]" * 100000


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "r"
    assert main(["simulate", "--quiet", "--out", str(out)] + sets()) == 0
    return out


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "s"
    assert main(["sweep", "--quiet", "--out", str(out), "--workers", "1", "--grid",
                 "data.modality.0.beta=1.5,2.5"] + sets()) == 0
    return out


def _edit_json(path, change):
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content))


def _truncate(path, fraction):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])


def _renamed_modality(r):
    (r / "unimodal-A").rename(r / "unimodal-Z")
    _edit_json(r / "summary.json", lambda s: s["runs"].__setitem__("unimodal-Z",
                                                                     s["runs"].pop("unimodal-A")))


def _trace(r, **arrays):
    path = r / "joint" / "trace.npz"
    with np.load(path) as data:
        content = {key: data[key] for key in data.files}
    for key, value in arrays.items():
        if value is None:
            content.pop(key)
        else:
            content[key] = value
    np.savez(path, **content)


SIMULATE_DAMAGE = {
    "trace empty": ("joint/trace.npz", lambda r: _truncate(r / "joint/trace.npz", 0)),
    "trace half": ("joint/trace.npz", lambda r: _truncate(r / "joint/trace.npz", 0.5)),
    "trace garbage": ("joint/trace.npz", lambda r: (r / "joint/trace.npz").write_bytes(b"\xff" * 99)),
    "trace missing": ("unimodal-B/trace.npz", lambda r: (r / "unimodal-B/trace.npz").unlink()),
    "trace a directory": ("joint/trace.npz", lambda r: ((r / "joint/trace.npz").unlink(),
                                                         (r / "joint/trace.npz").mkdir())),
    "run directory a file": ("joint/trace.npz", lambda r: (shutil.rmtree(r / "joint"),
                                                            (r / "joint").write_text("x"))),
    "trace a fifo": ("joint/trace.npz", lambda r: ((r / "joint/trace.npz").unlink(),
                                                    os.mkfifo(r / "joint/trace.npz"))),
    "trace without steps": ("joint/trace.npz", lambda r: _trace(r, steps=None)),
    "trace float steps": ("joint/trace.npz", lambda r: _trace(r, steps=np.zeros(4))),
    "trace 2-d steps": ("joint/trace.npz", lambda r: _trace(r, steps=np.zeros((4, 1), int))),
    "alignment wrong shape": ("joint/trace.npz", lambda r: _trace(r, alignment=np.zeros((4, 2)))),
    "alignment missing": ("joint/trace.npz", lambda r: _trace(r, alignment=None)),
    "alignment text": ("joint/trace.npz",
                       lambda r: _trace(r, alignment=np.full((4, 2, 2, 2), "x"))),
    "test_error wrong length": ("joint/trace.npz", lambda r: _trace(r, test_error=np.zeros(7))),
    "pickled object array": ("joint/trace.npz",
                             lambda r: _trace(r, test_error=np.array([{}, 1], dtype=object))),
    "summary empty": ("summary.json", lambda r: (r / "summary.json").write_text("")),
    "summary truncated": ("summary.json", lambda r: _truncate(r / "summary.json", 0.5)),
    "summary bad bytes": ("summary.json",
                          lambda r: (r / "summary.json").write_bytes(b'{"a": "\xff"}')),
    "summary deep": ("summary.json", lambda r: (r / "summary.json").write_text(DEEP)),
    "summary a list": ("summary.json", lambda r: (r / "summary.json").write_text("[1]")),
    "summary runs a list": ("summary.json", lambda r: _edit_json(
        r / "summary.json", lambda s: s.__setitem__("runs", []))),
    "summary runs empty": ("summary.json", lambda r: _edit_json(
        r / "summary.json", lambda s: s.__setitem__("runs", {}))),
    "summary run missing": ("summary.json", lambda r: _edit_json(
        r / "summary.json", lambda s: s["runs"].pop("joint"))),
    "summary extra run": ("summary.json", lambda r: _edit_json(
        r / "summary.json", lambda s: s["runs"].__setitem__("unimodal-C", s["runs"]["joint"]))),
    "summary run a string": ("summary.json", lambda r: _edit_json(
        r / "summary.json", lambda s: s["runs"].__setitem__("joint", "x"))),
    "summary trained wrong": ("summary.json", lambda r: _edit_json(
        r / "summary.json", lambda s: s["runs"]["joint"].__setitem__("trained_modalities",
                                                                      ["B", "A"]))),
    "summary trained null": ("summary.json", lambda r: _edit_json(
        r / "summary.json", lambda s: s["runs"]["joint"].__setitem__("trained_modalities",
                                                                      None))),
    "summary learned text": ("summary.json", lambda r: _edit_json(
        r / "summary.json", lambda s: s["runs"]["joint"]["learned_step"].__setitem__("A", "7"))),
    "summary learned a list": ("summary.json", lambda r: _edit_json(
        r / "summary.json", lambda s: s["runs"]["joint"].__setitem__("learned_step", [1, 2]))),
    "summary without config": ("summary.json", lambda r: _edit_json(
        r / "summary.json", lambda s: s.pop("config"))),
    "renamed modality": ("summary.json", _renamed_modality),
    "config garbage": ("config.toml", lambda r: (r / "config.toml").write_bytes(b"\xff[[[")),
    "config missing": ("config.toml", lambda r: (r / "config.toml").unlink()),
    "config a directory": ("config.toml", lambda r: ((r / "config.toml").unlink(),
                                                     (r / "config.toml").mkdir())),
    "config invalid value": ("config.toml", lambda r: (r / "config.toml").write_text(
        (r / "config.toml").read_text().replace("lr = ", "lr = -", 1))),
    "config modality renamed": ("config.toml", lambda r: (r / "config.toml").write_text(
        (r / "config.toml").read_text().replace('name = "A"', 'name = "Z"', 1))),
}


@pytest.mark.parametrize("case", sorted(SIMULATE_DAMAGE))
def test_damaged_simulate_directory(tmp_path, capsys, simulated, case):
    named, damage = SIMULATE_DAMAGE[case]
    r = shutil.copytree(simulated, tmp_path / "r")
    damage(r)
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert main(["plot", str(r)]) == 2
    line = one_line(capsys.readouterr().err)
    assert str(r / named) in line, line
    with pytest.raises(ValueError) as info:
        simcomp.load(r)
    assert isinstance(info.value, (DamagedOutputError, OutputError))
    assert str(r / named) in str(info.value) and "\n" not in str(info.value)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before


def test_edited_config_is_detected(tmp_path, capsys, simulated):
    """config.toml edited by hand: plot says so (it would draw theory curves of another config)."""
    r = shutil.copytree(simulated, tmp_path / "r")
    text = (r / "config.toml").read_text()
    assert "\nlr = " in text
    (r / "config.toml").write_text(text.replace("\nlr = ", "\nlr = 0.5 # was ", 1))
    assert main(["plot", str(r)]) == 2
    line = one_line(capsys.readouterr().err)
    assert "config.toml" in line and "was edited" in line and "train.lr" in line
    # an untouched directory loads, and plot redraws it
    assert main(["plot", str(simulated)]) == 0
    assert simcomp.load(simulated).config.train.steps == 12


def _edit_sweep(s, change):
    _edit_json(s / "sweep.json", change)


def _csv(s, change):
    path = s / "results.csv"
    path.write_text(change(path.read_text()))


SWEEP_DAMAGE = {
    "csv bad byte": ("results.csv", lambda s: (s / "results.csv").write_bytes(
        (s / "results.csv").read_bytes() + b"\xff")),
    "csv truncated line": ("results.csv", lambda s: _truncate(s / "results.csv", 0.8)),
    "csv empty": ("results.csv", lambda s: (s / "results.csv").write_text("")),
    "csv header only": ("results.csv", lambda s: _csv(s, lambda t: t.splitlines()[0] + "\n")),
    "csv extra cell": ("results.csv", lambda s: _csv(s, lambda t: t.rstrip("\n") + ",x\n")),
    "csv text gap": ("results.csv", lambda s: _csv(s, lambda t: "\n".join(
        [t.splitlines()[0]] + [",".join("abc" if h == "gap" else c for h, c in
                                         zip(t.splitlines()[0].split(","), line.split(",")))
                               for line in t.splitlines()[1:]]) + "\n")),
    "csv grid column renamed": ("results.csv", lambda s: _csv(
        s, lambda t: t.replace("data.modality.0.beta", "beta", 1))),
    "csv a directory": ("results.csv", lambda s: ((s / "results.csv").unlink(),
                                                  (s / "results.csv").mkdir())),
    "json without definition": ("sweep.json", lambda s: _edit_sweep(
        s, lambda m: m.pop("definition"))),
    "json definition a list": ("sweep.json", lambda s: _edit_sweep(
        s, lambda m: m.__setitem__("definition", []))),
    "json null grid key": ("sweep.json", lambda s: _edit_sweep(
        s, lambda m: m["definition"]["grids"][0].__setitem__("key", None))),
    "json grids null": ("sweep.json", lambda s: _edit_sweep(
        s, lambda m: m["definition"].__setitem__("grids", None))),
    "json values empty": ("sweep.json", lambda s: _edit_sweep(
        s, lambda m: m["definition"]["grids"][0].__setitem__("values", []))),
    "json seeds text": ("sweep.json", lambda s: _edit_sweep(
        s, lambda m: m["definition"].__setitem__("seeds", "x"))),
    "json no modalities": ("sweep.json", lambda s: _edit_sweep(
        s, lambda m: m["definition"]["base_config"]["data"].pop("modality"))),
    "json modality names null": ("sweep.json", lambda s: _edit_sweep(
        s, lambda m: [mod.__setitem__("name", None)
                      for mod in m["definition"]["base_config"]["data"]["modality"]])),
}


@pytest.mark.parametrize("case", sorted(SWEEP_DAMAGE))
def test_damaged_sweep_directory(tmp_path, capsys, swept, case):
    named, damage = SWEEP_DAMAGE[case]
    s = shutil.copytree(swept, tmp_path / "s")
    damage(s)
    figure = (s / "figures" / "phase.png").read_bytes()
    assert main(["plot", str(s)]) == 2
    line = one_line(capsys.readouterr().err)
    assert str(s / named) in line, line
    with pytest.raises(PlotError, match="damaged|not complete"):
        read_sweep(s)
    assert (s / "figures" / "phase.png").read_bytes() == figure
    assert sorted(p.name for p in (s / "figures").iterdir()) == ["phase.png"]


@pytest.mark.parametrize("case", ["sweep.json deep", "sweep.json truncated", "sweep.json bad byte",
                                  "sweep.json a fifo"])
def test_unreadable_sweep_json_is_one_line(tmp_path, capsys, swept, case):
    """A FIFO would block the reader forever: refused as not a regular file."""
    s = shutil.copytree(swept, tmp_path / "s")
    if case == "sweep.json a fifo":
        (s / "sweep.json").unlink()
        os.mkfifo(s / "sweep.json")
    elif case == "sweep.json deep":
        (s / "sweep.json").write_text(DEEP)
    elif case == "sweep.json truncated":
        _truncate(s / "sweep.json", 0.5)
    else:
        (s / "sweep.json").write_bytes(b'{"format": 2, "x": "\xff"}')
    # plot: not recognised as a sweep (no readable sweep.json), exit 2
    assert main(["plot", str(s)]) == 2
    assert "sweep.json" in one_line(capsys.readouterr().err)
    # resume: refused, the directory left alone, exit 2
    assert main(["sweep", "--quiet", "--out", str(s), "--workers", "1", "--grid",
                 "data.modality.0.beta=1.5,2.5"] + sets()) == 2
    assert "sweep.json" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("change", [
    lambda m: m["definition"]["grids"][0].__setitem__("key", None),
    lambda m: m["definition"]["grids"][0].__setitem__("values", None),
    lambda m: m["definition"].__setitem__("grids", [[1, 2]]),
    lambda m: m["definition"].__setitem__("grids", "x"),
])
def test_resuming_an_odd_sweep_json_is_one_line(tmp_path, capsys, swept, change):
    s = shutil.copytree(swept, tmp_path / "s")
    _edit_sweep(s, change)
    records = sorted(p.name for p in (s / "runs").iterdir())
    assert main(["sweep", "--quiet", "--out", str(s), "--workers", "1", "--grid",
                 "data.modality.0.beta=1.5,2.5"] + sets()) == 2
    assert "not a sweep.json written by simcomp" in one_line(capsys.readouterr().err)
    assert sorted(p.name for p in (s / "runs").iterdir()) == records


@pytest.mark.parametrize("content", [DEEP, "[1, 2]", "7", '{"format": 2, "checksum": [1e999]}',
                                     '{"format": 2, "checksum": "x", "row": ' + DEEP + "}"])
def test_resuming_over_a_damaged_record_recomputes_it(tmp_path, capsys, swept, content):
    s = shutil.copytree(swept, tmp_path / "s")
    first = (s / "results.csv").read_bytes()
    record = sorted((s / "runs").iterdir())[0]
    record.write_text(content)
    assert main(["sweep", "--out", str(s), "--workers", "1", "--grid",
                 "data.modality.0.beta=1.5,2.5"] + sets()) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "recomputing that run" in err
    assert (s / "results.csv").read_bytes() == first


def test_resuming_over_a_record_that_is_a_fifo_recomputes_it(tmp_path, capsys, swept):
    s = shutil.copytree(swept, tmp_path / "s")
    first = (s / "results.csv").read_bytes()
    record = sorted((s / "runs").iterdir())[0]
    record.unlink()
    os.mkfifo(record)
    assert main(["sweep", "--out", str(s), "--workers", "1", "--grid",
                 "data.modality.0.beta=1.5,2.5"] + sets()) == 0
    assert "recomputing that run" in capsys.readouterr().err
    assert record.is_file() and (s / "results.csv").read_bytes() == first


def test_plot_names_a_phase_png_that_is_a_directory(tmp_path, capsys, swept):
    s = shutil.copytree(swept, tmp_path / "s")
    (s / "figures" / "phase.png").unlink()
    (s / "figures" / "phase.png").mkdir()
    assert main(["plot", str(s)]) == 2
    line = one_line(capsys.readouterr().err)
    assert repr(str(s / "figures" / "phase.png")) in line and ".partial" not in line
