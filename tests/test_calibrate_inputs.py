"""simcomp calibrate: hostile files and values are refused in one line; no hang, no crash."""

from __future__ import annotations

import os

import pytest

from simcomp.calibrate import CalibrationError, load_measurements, measurements_from_dict
from simcomp.cli import main

GOOD = ('classes = 6\n[[modality]]\nname = "audio"\naccuracy = 59.38\n{curve}'
        '[[modality]]\nname = "visual"\naccuracy = 58.10\n[joint]\naccuracy = 65.50\n')
CREMA = {"classes": 6, "modality": [{"name": "audio", "accuracy": 59.38},
                                    {"name": "visual", "accuracy": 58.10}],
         "joint": {"accuracy": 65.50}}


def _cli_error(capsys, *argv) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1
    return err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize("where", ["file", "curve"])
def test_a_pipe_is_refused_without_reading_it(tmp_path, monkeypatch, capsys, where):
    # Reading a FIFO nobody writes to would block forever.
    monkeypatch.chdir(tmp_path)
    os.mkfifo("pipe")
    if where == "file":
        target = "pipe"
    else:
        (tmp_path / "m.toml").write_text(GOOD.format(curve='curve = "pipe"\n'))
        target = "m.toml"
    err = _cli_error(capsys, "calibrate", target, "--no-out")
    assert "pipe" in err and "regular file" in err


def test_a_device_curve_is_refused(tmp_path, capsys):
    # A device is refused before it is opened (/dev/zero would be read until memory runs
    # out; /dev/null stands in for it here so that a regression cannot exhaust memory).
    path = tmp_path / "m.toml"
    path.write_text(GOOD.format(curve='curve = "/dev/null"\n'))
    with pytest.raises(CalibrationError, match="modality.0.curve.*regular file"):
        load_measurements(path)


def test_an_oversized_curve_is_refused(tmp_path):
    (tmp_path / "big.csv").write_text("epoch,accuracy\n" + "1,30\n" * 2_000_000)
    path = tmp_path / "m.toml"
    path.write_text(GOOD.format(curve='curve = "big.csv"\n'))
    with pytest.raises(CalibrationError, match="modality.0.curve.*bytes"):
        load_measurements(path)


@pytest.mark.parametrize("text, key", [
    ("classes = " + "9" * 5000 + "\n", "not valid TOML"),        # int too long for Python
    ("x = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
])
def test_toml_the_parser_chokes_on_is_one_line(tmp_path, capsys, text, key):
    path = tmp_path / "m.toml"
    path.write_text(text)
    err = _cli_error(capsys, "calibrate", str(path), "--no-out")
    assert key in err


@pytest.mark.parametrize("change, key", [
    ({"joint": {"accuracy": 10 ** 400}}, "joint.accuracy"),
    ({"classes": 10 ** 400}, "classes"),
    ({"tolerance": 10 ** 400}, "tolerance"),
])
def test_integers_too_large_for_a_float_name_the_key(change, key):
    raw = {**CREMA, **change}
    with pytest.raises(CalibrationError, match=key):
        measurements_from_dict(raw)


def test_huge_integer_in_the_file_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "m.toml"
    path.write_text(GOOD.format(curve="").replace("65.50", "1" + "0" * 400))
    err = _cli_error(capsys, "calibrate", str(path), "--no-out")
    assert "joint.accuracy" in err


@pytest.mark.parametrize("curve", [[[0, 59.0], [5, 59.38]],      # half-way already at epoch 0
                                   [[-3, 20.0], [2, 59.38]]])   # negative epochs (inline)
def test_a_curve_that_cannot_give_a_positive_half_epoch_is_refused(curve):
    raw = {**CREMA, "modality": [{"name": "audio", "accuracy": 59.38, "curve": curve},
                                 {"name": "visual", "accuracy": 58.10}]}
    with pytest.raises(CalibrationError, match="modality.0.curve"):
        measurements_from_dict(raw)


def test_a_curve_at_epoch_zero_does_not_crash_the_cli(tmp_path, capsys):
    (tmp_path / "c.csv").write_text("epoch,acc\n0,59.0\n5,59.38\n")
    path = tmp_path / "m.toml"
    path.write_text(GOOD.format(curve='curve = "c.csv"\n'))
    assert "modality.0.curve" in _cli_error(capsys, "calibrate", str(path), "--no-out")


@pytest.mark.parametrize("change, key", [
    ({"classes": None, "chance": 0.2}, "chance"),            # 20 % forgotten as a fraction
    ({"joint": {"accuracy": 65.5, "all_wrong": 0.21}}, "joint.all_wrong"),
])
def test_a_fraction_beside_percent_accuracies_is_ambiguous(change, key):
    # Read as percent it would be silently a hundred times too small.
    raw = {k: v for k, v in {**CREMA, **change}.items() if v is not None}
    with pytest.raises(CalibrationError, match=f"{key} = .* ambiguous.*scale"):
        measurements_from_dict(raw)
    confirmed = measurements_from_dict({**raw, "scale": "percent"})
    assert (confirmed.chance if key == "chance" else confirmed.all_wrong) == \
        pytest.approx(change.get("chance", 0.21) / 100.0)


@pytest.mark.parametrize("change, attr, value", [
    ({"classes": None, "chance": 0.71}, "chance", 0.0071),   # 71 % would be above every accuracy
    ({"joint": {"accuracy": 65.5, "all_wrong": 0.0}}, "all_wrong", 0.0),
    ({"joint": {"accuracy": 65.5, "all_wrong": 21.0}}, "all_wrong", 0.21),
])
def test_unambiguous_values_beside_percent_accuracies_are_read(change, attr, value):
    raw = {k: v for k, v in {**CREMA, **change}.items() if v is not None}
    assert getattr(measurements_from_dict(raw), attr) == pytest.approx(value)


def test_numpy_scalars_are_numbers():
    # Values taken from a DataFrame are NumPy scalars; np.float64 was accepted, np.int64 not.
    import numpy as np

    raw = {**CREMA, "classes": np.int64(6),
           "modality": [{"name": "audio", "accuracy": np.int64(59)},
                        {"name": "visual", "accuracy": np.float32(58.1)}]}
    meas = measurements_from_dict(raw)
    assert meas.classes == 6 and meas.modalities[0].accuracy == pytest.approx(0.59)
    with pytest.raises(CalibrationError, match="classes"):
        measurements_from_dict({**CREMA, "classes": np.bool_(True)})


def test_mixed_scales_say_so():
    raw = {**CREMA, "modality": [{"name": "audio", "accuracy": 0.59},
                                 {"name": "visual", "accuracy": 58.10}]}
    with pytest.raises(CalibrationError, match="modality.0.accuracy.*all in percent"):
        measurements_from_dict(raw)


def test_one_method_name_as_a_string_is_one_method(monkeypatch):
    # methods="ogm" used to be read letter by letter ("unknown method 'o'").
    import simcomp.calibrate as cal

    seen = {}

    def stop(meas, found, *, methods=None, **kwargs):
        seen["methods"] = methods
        raise CalibrationError("stop")

    monkeypatch.setattr(cal, "search", lambda *a, **k: None)
    monkeypatch.setattr(cal, "answer", stop)
    with pytest.raises(CalibrationError, match="stop"):
        cal.calibrate(CREMA, methods="ogm")
    assert seen["methods"] == ["ogm"]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_an_unwritable_out_parent_is_refused_before_the_calibration(tmp_path, capsys,
                                                                     monkeypatch):
    # It was found only when writing, after the whole calibration had run.
    import simcomp.calibrate as cal

    monkeypatch.setattr(cal, "search", lambda *a, **k: pytest.fail("calibrated first"))
    path = tmp_path / "m.toml"
    path.write_text(GOOD.format(curve=""))
    assert main(["calibrate", str(path), "--out", "/proc/simcomp-calibration-test"]) == 2
    err = capsys.readouterr().err
    assert "cannot write in '/proc'" in err and err.count("\n") == 1
