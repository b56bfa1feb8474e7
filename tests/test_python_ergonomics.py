"""The Python API's conveniences: load a sweep, DataFrames, signatures, short reprs."""

from __future__ import annotations

import inspect
import sys

import pytest

import simcomp

from sweep_helpers import SMALL


def test_load_opens_a_sweep_and_frames_convert(tmp_path):
    pd = pytest.importorskip("pandas")
    cfg = simcomp.build_config(overrides=SMALL)
    rows = simcomp.sweep(cfg, grid={"data.modality.0.beta": [1.5, 2.5]}, seeds=2,
                         out=tmp_path / "s", workers=1, plot=False)
    frame = rows.to_dataframe()
    assert isinstance(frame, pd.DataFrame) and len(frame) == 4
    loaded = simcomp.load(tmp_path / "s")
    assert isinstance(loaded, simcomp.api.SweepResults) and len(loaded) == 4
    assert loaded.rows == list(rows)
    assert loaded.to_dataframe()["data.modality.0.beta"].tolist() == [1.5, 1.5, 2.5, 2.5]
    assert "4 runs" in repr(loaded)


def test_result_and_trace_frames():
    pytest.importorskip("pandas")
    result = simcomp.simulate(simcomp.build_config(overrides=SMALL + ["train.mode=compare"]))
    frame = result.to_dataframe()
    assert set(frame["run"]) == {"joint", "unimodal-A", "unimodal-B"}
    joint = frame[frame["run"] == "joint"].set_index("modality")
    for m in "AB":
        assert joint.loc[m, "race_learned_step"] == \
            result.summary["runs"]["joint"]["race_learned_step"][m]
    trace = result.trace_frame("joint")
    assert trace["step"].tolist() == result.traces["joint"]["steps"].tolist()
    assert {"test_error", "leading_alignment_A", "leading_alignment_B"} <= set(trace.columns)
    with pytest.raises(KeyError, match="no run"):
        result.trace_frame("nope")


def test_missing_pandas_is_a_clear_import_error(monkeypatch):
    from simcomp.frames import records_frame

    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"pip install pandas") as caught:
        records_frame([{"a": 1}])
    # simcomp is installed from its source directory, not from a package index
    assert "pip install 'simcomp[" not in str(caught.value)


def test_sweep_shows_its_real_signature_and_docstring():
    params = inspect.signature(simcomp.sweep).parameters
    assert {"config", "grid", "seeds", "out", "paired"} <= set(params)
    assert "Run a grid of configs times seeds" in simcomp.sweep.__doc__


def test_python_callers_read_argument_names_not_flags(tmp_path):
    from simcomp.sweep import SweepError

    cfg = simcomp.build_config(overrides=SMALL)
    with pytest.raises(SweepError) as info:
        simcomp.sweep(cfg, seeds=0)
    assert "--" not in str(info.value) and "seeds" in str(info.value)
    with pytest.raises(SweepError) as info:
        simcomp.sweep(cfg, grid={"data.modality.0.beta": [1.0, 2.0]}, seeds=3,
                      workers=1, out=tmp_path / "s", plot=False, paired=["train.lr"])
    assert "--" not in str(info.value)
