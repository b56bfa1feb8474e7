"""simcomp calibrate: measurements in, the toy's answers out (docs/calibration.md)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from simcomp.calibrate import CalibrationError, calibrate, measurements_from_dict
from simcomp.calibrate.answers import VERDICT_RULE, answer, sample_candidates, verdict
from simcomp.calibrate.mapping import presence_from_accuracy, to_user, union_accuracy
from simcomp.calibrate.measurements import half_epoch_from_curve
from simcomp.calibrate.search import search
from simcomp.cli import main

CREMA = {"classes": 6, "modality": [{"name": "audio", "accuracy": 59.38},
                                    {"name": "visual", "accuracy": 58.10}],
         "joint": {"accuracy": 65.50}}


def _with(**changes):
    raw = json.loads(json.dumps(CREMA))
    for key, value in changes.items():
        where = raw
        parts = key.split("__")
        for part in parts[:-1]:
            where = where[int(part)] if part.isdigit() else where[part]
        if value is _DROP:
            del where[parts[-1]]
        else:
            where[parts[-1]] = value
    return raw


_DROP = object()


def _write_curve(tmp_path, name, rows):
    path = tmp_path / name
    path.write_text("epoch,accuracy\n" + "\n".join(f"{e},{a}" for e, a in rows) + "\n")
    return name


# --------------------------------------------------------------------------- parsing


def test_percent_and_fraction_give_the_same_measurements():
    pct = measurements_from_dict(CREMA)
    frac = measurements_from_dict(_with(modality__0__accuracy=0.5938, modality__1__accuracy=0.5810,
                                        joint__accuracy=0.655))
    assert pct.percent and not frac.percent
    assert pct.joint == pytest.approx(frac.joint)
    assert [m.accuracy for m in pct.modalities] == pytest.approx([m.accuracy for m in frac.modalities])
    assert pct.chance == pytest.approx(1 / 6)


@pytest.mark.parametrize("raw, key", [
    (_with(modality__0__accuracy=10.0), "modality.0.accuracy"),          # below chance (16.7)
    (_with(modality__1__accuracy=16.0), "modality.1.accuracy"),
    (_with(joint__accuracy=101.0), "joint.accuracy"),                    # above 100 percent
    (_with(modality=_DROP), "modality"),                                 # missing keys
    (_with(joint=_DROP), "joint"),
    (_with(joint__accuracy=_DROP), "joint.accuracy"),
    (_with(modality__0__accuracy=_DROP), "modality.0.accuracy"),
    (_with(classes=_DROP), "classes"),
    (_with(modality__0__accuracy="high"), "modality.0.accuracy"),        # not a number
    (_with(modality__0__accuracy=float("nan")), "modality.0.accuracy"),
    (_with(classes=1), "classes"),
    (_with(chance=10.0), "chance"),                                      # below 1/classes
    (_with(joint__all_wrong=50.0), "joint.all_wrong"),                   # above the best error
    (_with(modality__0__colour=3), "modality.0.colour"),                 # unknown key
    (_with(modality=[{"accuracy": 60.0}]), "modality"),                  # one modality only
    (_with(modality__0__half_epoch=-2), "modality.0.half_epoch"),
    (_with(methods={"ogm": -1.0}), "methods.ogm"),
    (_with(methods={"nonsense": 1.0}), "methods.nonsense"),
    (_with(scale="permille"), "scale"),
])
def test_bad_measurements_name_the_key(raw, key):
    with pytest.raises(CalibrationError) as exc:
        measurements_from_dict(raw)
    message = str(exc.value)
    assert key in message and "\n" not in message


def test_mixed_scale_is_refused_as_below_chance():
    # 0.58 in a percent file is 0.58 percent: below chance, named
    with pytest.raises(CalibrationError, match="modality.1.accuracy"):
        measurements_from_dict(_with(modality__1__accuracy=0.58))


def test_truly_ambiguous_values_are_refused_and_scale_settles_them():
    raw = {"classes": 1000, "modality": [{"accuracy": 0.5}, {"accuracy": 0.4}],
           "joint": {"accuracy": 0.6}}
    with pytest.raises(CalibrationError, match="ambiguous"):
        measurements_from_dict(raw)
    assert measurements_from_dict({**raw, "scale": "fraction"}).joint == pytest.approx(0.6)
    assert measurements_from_dict({**raw, "scale": "percent"}).joint == pytest.approx(0.006)
    # with 6 classes 0.5 as a percentage would be below chance: not ambiguous
    assert not measurements_from_dict({**raw, "classes": 6}).percent


@pytest.mark.parametrize("rows, match", [
    ([(1, 30.0), (2, "nan"), (3, 59.0)], "non-finite"),
    ([(1, 30.0), (2, "abc"), (3, 59.0)], "not numeric"),
    ([(1, 30.0), (1, 40.0), (3, 59.0)], "increase"),
    ([(1, 30.0), (2, 40.0), (3, 45.0)], "contradicts"),       # ends far from the accuracy
])
def test_bad_curves_are_refused(tmp_path, rows, match):
    name = _write_curve(tmp_path, "audio.csv", rows)
    with pytest.raises(CalibrationError, match=match) as exc:
        measurements_from_dict(_with(modality__0__curve=name), base=tmp_path)
    assert "modality.0.curve" in str(exc.value)


def test_curve_gives_the_half_epoch_and_contradicting_half_epoch_is_refused(tmp_path):
    name = _write_curve(tmp_path, "audio.csv", [(0, 16.7), (1, 20.0), (2, 30.0), (3, 45.0),
                                                (4, 55.0), (5, 59.0), (6, 59.4)])
    meas = measurements_from_dict(_with(modality__0__curve=name), base=tmp_path)
    expected = half_epoch_from_curve(meas.modalities[0].curve, 1 / 6)
    assert meas.modalities[0].half_epoch == pytest.approx(expected)
    assert 2.0 < expected < 3.0  # half-way (38.0) lies between epochs 2 (30) and 3 (45)
    with pytest.raises(CalibrationError, match="modality.0.half_epoch .*contradicts"):
        measurements_from_dict(_with(modality__0__curve=name, modality__0__half_epoch=9),
                               base=tmp_path)


# --------------------------------------------------------------------------- mapping


def test_mapping_of_accuracies():
    ch = 1 / 6
    # a network that knows nothing scores chance, one that knows all scores 1
    assert to_user(0.5, ch) == pytest.approx(ch)
    assert to_user(1.0, ch) == pytest.approx(1.0)
    # a modality with presence p alone: toy accuracy p + (1 - p) / 2
    p = presence_from_accuracy(0.5938, ch)
    assert to_user(p + (1 - p) / 2, ch) == pytest.approx(0.5938)
    assert union_accuracy(0.0, ch) == 1.0 and union_accuracy(1.0, ch) == pytest.approx(ch)


@pytest.mark.parametrize("low, median, high, expected", [
    (0.5, 2.0, 3.0, "helps"), (-3.0, -2.0, -0.5, "hurts"), (-0.5, 0.1, 0.9, "no measurable effect"),
    (-2.0, 1.0, 3.0, "cannot tell"), (0.2, 0.5, 3.0, "cannot tell"), (None, None, None, "cannot tell"),
])
def test_verdict_rule(low, median, high, expected):
    assert verdict(low, median, high, 1.0) == expected


def test_the_verdict_rule_states_the_tolerance_once():
    from simcomp.calibrate import _with_tolerance
    one = _with_tolerance(VERDICT_RULE, 1.0)
    assert one.startswith(VERDICT_RULE) and one.endswith("the tolerance: 1 point")
    assert _with_tolerance(VERDICT_RULE, 0.5).endswith("the tolerance: 0.5 points")
    assert one.count("point") == 1


# --------------------------------------------------------------------------- search


def test_round_trip_a_toy_configuration_calibrates_back_to_a_set_containing_it():
    # one seed and one correlation (0.2 where simcomp models it) keep it fast
    found = search(measurements_from_dict(CREMA), seeds=(0,), correlations=(0.2,))
    assert found.count > 0
    cand = found.candidates[len(found.candidates) // 2]
    own = {"chance": 100 / 6, "tolerance": 0.5,
           "modality": [{"name": nm, "accuracy": 100 * float(a)} for nm, a in
                        zip(("audio", "visual"), cand.uni)],
           "joint": {"accuracy": 100 * cand.joint}}
    again = search(measurements_from_dict(own), seeds=(0,), correlations=(cand.c,))
    ratio = cand.beta[1] / cand.beta[0]

    def same(c):
        return (np.allclose(c.presence, cand.presence, atol=5e-3)
                and math.isclose(c.beta[1] / c.beta[0], ratio, rel_tol=1e-6)
                and c.horizon == cand.horizon and c.decision_scale == cand.decision_scale
                and c.seed == cand.seed and c.c == cand.c)

    assert any(same(c) for c in again.candidates)
    for c in again.candidates:  # and everything in it reproduces the numbers
        assert abs(c.joint - cand.joint) <= 0.005 + 1e-9


def test_unreachable_measurements_give_no_fit_and_say_why():
    raw = {"classes": 2, "modality": [{"accuracy": 55.0}, {"accuracy": 55.0}],
           "joint": {"accuracy": 99.0}}
    cal = calibrate(raw, simulate=0, sample=2, methods=["ume"], correlations=[0.0])
    assert not cal.consistent
    cs = cal.json["consistent_set"]
    assert cs["count"] == 0 and "joint.accuracy" in cs["reason"]
    assert cal.json["methods"] == [] and cal.json["potential"] == {"low": None, "high": None}
    assert "NO TOY CONFIGURATION" in cal.report()


# --------------------------------------------------------------------------- answers, JSON


def test_json_layout():
    cal = calibrate(CREMA, simulate=0, sample=3, methods=["ogm", "ume"], correlations=[0.0])
    obj = json.loads(json.dumps(cal.json))
    assert {"potential", "competition_cost", "methods", "consistent_set"} <= set(obj)
    assert set(obj["potential"]) == {"low", "high"} == set(obj["competition_cost"])
    assert obj["potential"]["low"] <= obj["potential"]["high"]
    assert obj["competition_cost"]["low"] == pytest.approx(obj["potential"]["low"] - 65.5, abs=0.02)
    assert [(m["method"], m["which"]) for m in obj["methods"]] == [
        ("ogm", "given"), ("ogm", "best"), ("ume", "given"), ("ume", "best")]
    for m in obj["methods"]:
        assert set(m) == {"method", "which", "setting", "gain_median", "gain_low", "gain_high",
                          "verdict", "sensitivity"}
        assert m["verdict"] in ("helps", "hurts", "no measurable effect", "cannot tell")
        assert m["gain_low"] <= m["gain_median"] <= m["gain_high"]
    assert obj["methods"][0]["setting"] == {"alpha": 0.1, "start": 0.0}
    cs = obj["consistent_set"]
    assert cs["count"] > 0 and cs["simulated"] == 0 and cs["methods_sampled"] == 3
    assert set(cs["ranges"]) >= {"presence", "beta_ratio", "correlation", "horizon"}


@pytest.mark.slow
def test_a_gain_range_is_the_median_min_and_max_of_the_configurations_gains():
    # Each sampled configuration alone gives its own gain (median = low = high); over all of
    # them the answer is their median (not the mean: the gains here are skewed), min and max.
    meas = measurements_from_dict(CREMA)
    found = search(meas, seeds=(0,), correlations=(0.0,))
    chosen = sample_candidates(found.candidates, 5)
    assert len(chosen) == 5

    def ogm(cands):
        got = answer(meas, dataclasses.replace(found, candidates=cands), methods=["ogm"],
                     sample=len(cands))
        return got.methods[0]  # ("ogm", "given")

    alone = []
    for c in chosen:
        one = ogm([c])
        assert one.gain_low == one.gain_median == one.gain_high
        alone.append(one.gain_median)
    assert abs(np.mean(alone) - np.median(alone)) > 0.5  # skewed: mean and median differ
    whole = ogm(chosen)
    assert whole.gain_median == pytest.approx(float(np.median(alone)), abs=1e-9)
    assert whole.gain_low == pytest.approx(min(alone), abs=1e-9)
    assert whole.gain_high == pytest.approx(max(alone), abs=1e-9)


def test_given_setting_is_used():
    cal = calibrate(_with(methods={"ogm": {"alpha": 0.8, "start": 0.25}}), simulate=0, sample=2,
                    methods=["ogm"], correlations=[0.0])
    assert cal.json["methods"][0]["setting"] == {"alpha": 0.8, "start": 0.25}


def test_calibrate_package_does_not_import_the_api():
    root = Path(__file__).resolve().parents[1] / "simcomp" / "calibrate"
    for path in root.glob("*.py"):
        text = path.read_text()
        assert "from ..api" not in text and "simcomp.api" not in text.replace(
            "simcomp.api`", ""), path.name


# --------------------------------------------------------------------------- CLI


def _toml(tmp_path, text):
    path = tmp_path / "m.toml"
    path.write_text(text)
    return str(path)


GOOD = """classes = 6
[[modality]]
name = "audio"
accuracy = 59.38
[[modality]]
name = "visual"
accuracy = 58.10
[joint]
accuracy = 65.50
"""


@pytest.mark.parametrize("text, key", [
    (GOOD.replace("59.38", "12.0"), "modality.0.accuracy"),
    (GOOD.replace("accuracy = 65.50", ""), "joint.accuracy"),
    (GOOD.replace("classes = 6", ""), "classes"),
    (GOOD + 'curve = "joint.csv"\n', "joint.curve"),
    (GOOD + "all_wrong = 60\n", "joint.all_wrong"),
    ("classes = [", "not valid TOML"),
])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, text, key):
    (tmp_path / "joint.csv").write_text("epoch,accuracy\n1,30\n2,nan\n")
    rc = main(["calibrate", _toml(tmp_path, text), "--no-out"])
    err = capsys.readouterr().err
    assert rc == 2
    assert key in err and "Traceback" not in err and err.count("\n") == 1


def test_cli_missing_file_exits_2(tmp_path, capsys):
    assert main(["calibrate", str(tmp_path / "none.toml"), "--no-out"]) == 2
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_json_and_output_directory(tmp_path, capsys):
    path = _toml(tmp_path, GOOD)
    out = tmp_path / "cal"
    rc = main(["calibrate", path, "--json", "--out", str(out), "--method", "ume", "--simulate", "0",
               "--no-figure", "--quiet"])
    assert rc == 0
    obj = json.loads(capsys.readouterr().out)
    assert [m["method"] for m in obj["methods"]] == ["ume", "ume"]
    assert sorted(p.name for p in out.iterdir()) == ["calibration.json", "report.txt"]
    # an existing output is refused without --force, replaced with it
    assert main(["calibrate", path, "--out", str(out), "--method", "ume", "--simulate", "0",
                 "--quiet"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["calibrate", path, "--out", str(out), "--method", "ume", "--simulate", "0",
                 "--quiet", "--force"]) == 0
    assert (out / "calibration.png").is_file()
    # a directory simcomp did not write is never replaced
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    assert main(["calibrate", path, "--out", str(foreign), "--quiet", "--force"]) == 2
    assert (foreign / "notes.txt").read_text() == "keep"


def test_half_epochs_pin_the_learn_time_ratio():
    free = search(measurements_from_dict(CREMA), seeds=(0,), correlations=(0.0,))
    pinned = search(measurements_from_dict(_with(modality__0__half_epoch=3,
                                                 modality__1__half_epoch=6)), seeds=(0,),
                    correlations=(0.0,))
    assert 0 < pinned.count < free.count
    lo, hi = 2.5 / 3.5 / 1.25, 6.5 / 2.5 * 1.25  # (h1 -+ 0.5) / (h0 +- 0.5), widened by 1.25
    for c in pinned.candidates:
        assert lo <= c.t_alone[1] / c.t_alone[0] <= hi
    assert any(not lo <= c.t_alone[1] / c.t_alone[0] <= hi for c in free.candidates)


def test_a_curve_pins_the_horizon(tmp_path):
    # half-way at epoch 2.5 of a 5-epoch run: T is about twice the learn time (within 1.5x)
    name = _write_curve(tmp_path, "audio.csv", [(1, 20.0), (2, 30.0), (3, 45.0), (4, 55.0),
                                                (5, 59.38)])
    meas = measurements_from_dict(_with(modality__0__curve=name), base=tmp_path)
    found = search(meas, seeds=(0,), correlations=(0.0,))
    ratio = 5 / meas.modalities[0].half_epoch
    assert found.count > 0
    for c in found.candidates:
        assert ratio / 1.5 <= c.steps / c.t_alone[0] <= ratio * 1.5


@pytest.mark.slow
def test_correlation_is_searched_or_reported_as_not_modelled():
    from simcomp.calibrate.search import correlation_supported

    cal = calibrate(_with(joint__all_wrong=20.0), simulate=0, sample=1, methods=["ume"])
    corr = cal.json["consistent_set"]["ranges"]["correlation"]
    if correlation_supported():
        free = calibrate(CREMA, simulate=0, sample=1, methods=["ume"])
        lo, hi = free.json["consistent_set"]["ranges"]["correlation"]
        assert lo <= corr[0] <= corr[1] <= hi and (corr[0], corr[1]) != (lo, hi)
    else:
        assert corr == "not modelled"
        assert any("not modelled" in note for note in cal.json["notes"])


def test_correlations_are_checked():
    with pytest.raises(CalibrationError, match="correlations"):
        calibrate(CREMA, correlations=[1.5])
    with pytest.raises(CalibrationError, match="correlations"):
        calibrate(CREMA, correlations="high")


@pytest.mark.slow
def test_cli_json_only(tmp_path, capsys):
    rc = main(["calibrate", _toml(tmp_path, GOOD), "--json", "--no-out", "--method", "ume",
               "--simulate", "0", "--quiet"])
    assert rc == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["format"] == "simcomp.calibrate/1" and len(obj["methods"]) == 2


# VGGSound as published by BalanceBenchmark (benchmarks/data/real_baselines.csv): the union of
# its two modalities equals the joint accuracy at a correlation near 0.71, between two points
# of the correlation grid (0.6 and 0.8), each more than a point away from the joint accuracy.
VGGSOUND = {"classes": 309, "modality": [{"name": "audio", "accuracy": 41.27},
                                         {"name": "visual", "accuracy": 30.43}],
            "joint": {"accuracy": 48.08}}


@pytest.mark.slow
def test_the_overlap_picture_is_searched_when_the_grid_misses_it():
    # Overlapping modalities that are both learned reproduce any joint accuracy their union
    # reaches; the consistent set must contain that picture (competition cost within the
    # tolerance) even when no correlation of the grid lands within the tolerance of it.
    from simcomp.calibrate.search import _c_grid, correlation_supported
    from simcomp.presence import pattern_probabilities

    if not correlation_supported():
        pytest.skip("this simcomp does not model the presence correlation")
    meas = measurements_from_dict(VGGSOUND)
    ch = meas.chance
    p = [presence_from_accuracy(m.accuracy, ch) for m in meas.modalities]
    union = [float(union_accuracy(pattern_probabilities(p, c)[0], ch)) for c in _c_grid(2)]
    assert all(abs(u - meas.joint) > meas.tolerance for u in union)  # the grid misses it
    found = search(meas, seeds=(0,))
    # at the measured presences (the middle of the presence band), both modalities learned
    overlap = [c for c in found.candidates if np.allclose(c.presence, p, atol=1e-9)
               and c.potential - c.joint <= meas.tolerance]
    assert overlap
    assert all(abs(c.potential - meas.joint) <= meas.tolerance for c in overlap)


@pytest.mark.slow
def test_a_method_that_diverges_at_the_toy_step_is_run_at_a_finer_step():
    # umt's published weight (10) is past the stability limit of gradient descent at the toy's
    # step size on some consistent configurations (docs/methods.md, "A stability limit of
    # umt"); the step size is the toy's unit of time, not a property of the real network, so
    # such a member is run at a finer step (the same gradient flow) instead of being dropped.
    cal = calibrate(CREMA, simulate=0, methods=["umt"], correlations=[0.9],
                    settings={"umt": {"distill_weight": 10.0}})
    given = next(m for m in cal.json["methods"] if m["which"] == "given")
    notes = [n for n in cal.json["notes"] if n.startswith("umt (distill_weight 10)")]
    assert len(notes) == 1 and "finer step" in notes[0]  # some member diverged at the toy step
    assert given["gain_median"] is not None
    assert given["gain_low"] <= given["gain_median"] <= given["gain_high"]
    # both members of a refined gain ran at the same step: no gain exceeds the potential
    assert given["gain_high"] <= cal.json["potential"]["high"] - 65.5 + 1.0


@pytest.mark.slow
def test_umt_past_its_stability_limit_is_run_at_a_step_inside_it():
    # At this overlap VGGSound's union equals its joint accuracy: every consistent picture has
    # both modalities learned and nothing to gain or lose, and distilling them towards their
    # (learned) uni-modal teachers costs nothing once the gradient flow is followed closely.
    # Past the stability limit lambda < B m / (eta pi_r beta_r^2) (docs/methods.md) the
    # dynamics oscillate without always overflowing, and such a member used to report a loss
    # of several points.
    cal = calibrate(VGGSOUND, simulate=0, methods=["umt"], correlations=[0.7064],
                    settings={"umt": {"distill_weight": 10.0}})
    assert cal.json["competition_cost"]["high"] <= 1.0
    given = next(m for m in cal.json["methods"] if m["which"] == "given")
    assert given["gain_low"] >= -1.0  # no loss from an oscillating run
    assert any(n.startswith("umt (distill_weight 10)") for n in cal.json["notes"])


@pytest.mark.slow
def test_pmr_is_refused_because_its_pull_vanishes_for_the_symmetric_learner():
    # With calibrate's symmetric learner a modality's features and its class prototypes lie
    # on one line through the origin, where PMR's pull is zero (docs/theory.md 15.4): on a
    # consistent picture with a starved modality pmr trains like plain training while aux
    # rescues the modality, so a pmr "gain" would be the toy's geometry, not PMR.
    from simcomp.calibrate.answers import sample_candidates
    from simcomp.calibrate.mapping import readout_accuracy
    from simcomp.calibrate.search import _psi_sum, toy_config
    from simcomp.data import make_experiment_data
    from simcomp.theory.mitigation import method_dynamics
    from simcomp.trace import geometry

    found = search(measurements_from_dict(CREMA), seeds=(0,), correlations=(0.0,))
    cand = max(sample_candidates(found.candidates, 8), key=lambda c: c.potential - c.joint)
    assert cand.potential - cand.joint > 0.05  # a starved modality
    cfg = toy_config(("audio", "visual"), cand.presence, cand.beta, 0.0, cand.seed, cand.steps)
    data = make_experiment_data(cfg)
    tr = data.train
    a0 = geometry(data.init, data.dictionaries)[0]
    m = cfg.model
    acc = {}
    for name, params in (("none", {}), ("pmr", {"alpha": 2.0}), ("aux", {})):
        dyn = method_dynamics(a0, cand.beta, tr.y, tr.presence.astype(np.int8), tr.weight, m.q,
                              m.rho, cfg.train.lr, cand.steps, name, params,
                              threshold=m.threshold, record_every=cand.steps)
        psi = _psi_sum(dyn.final_alignment[None], cand.beta, m.q, m.rho)[0]
        acc[name] = float(readout_accuracy(psi @ tr.presence.T.astype(float), tr.weight,
                                           cand.decision_scale * m.rho / m.q))
    assert abs(acc["pmr"] - acc["none"]) < 0.01 < acc["aux"] - acc["none"]
    cal = calibrate(CREMA, simulate=0, sample=1, methods=["pmr"], correlations=[0.0])
    assert cal.json["methods"] == []
    assert "prototype" in cal.json["methods_refused"]["pmr"]
