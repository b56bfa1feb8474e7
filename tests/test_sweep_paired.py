"""Paired comparisons (method axes share seeds), grids that grow in place, the report's spread."""

from __future__ import annotations

import json

import pytest

from simcomp.cli import main
from simcomp.sweep import SweepError, plan_sweep

from sweep_helpers import base, read_csv, sets


def test_method_axes_share_seeds_by_default():
    plan = plan_sweep(base(), ["method.name=none,aux", "data.modality.0.beta=1.5,2.5"], 2)
    by = {}
    for run in plan.runs:
        point = dict(run.point)
        by.setdefault((point["data.modality.0.beta"], run.repeat), set()).add(run.seed)
    assert all(len(seeds) == 1 for seeds in by.values())  # none and aux: the same draws
    assert len({next(iter(s)) for s in by.values()}) == len(by)  # beta and repeats: distinct
    assert plan.paired == ("method.name",)
    unpaired = plan_sweep(base(), ["method.name=none,aux"], 1, paired=False)
    assert unpaired.runs[0].seed != unpaired.runs[1].seed
    explicit = plan_sweep(base(), ["data.modality.0.beta=1.5,2.5"], 1,
                          paired=["data.modality.0.beta"])
    assert explicit.runs[0].seed == explicit.runs[1].seed
    with pytest.raises(SweepError, match="not a grid axis"):
        plan_sweep(base(), ["data.modality.0.beta=1.5,2.5"], 1, paired=["train.lr"])


def test_a_grid_grows_in_place_and_keeps_the_finished_runs(tmp_path, capsys):
    out = tmp_path / "s"
    common = ["sweep", "--out", str(out), "--workers", "1", "--quiet", "--seeds", "2"]
    assert main(common + ["--grid", "data.modality.0.beta=1.5,2.5"] + sets()) == 0
    first = {p.name: p.read_bytes() for p in (out / "runs").iterdir()}
    _, rows = read_csv(out / "results.csv")
    old = {tuple(r[:3]): r for r in rows}
    assert main(common + ["--grid", "data.modality.0.beta=1.5,2.5,3.5"] + sets()) == 0
    now = {p.name: p.read_bytes() for p in (out / "runs").iterdir()}
    assert len(now) == 6 and all(now[name] == data for name, data in first.items())
    _, rows = read_csv(out / "results.csv")
    assert len(rows) == 6
    for r in rows:  # the kept runs' rows are unchanged
        if tuple(r[:3]) in old:
            assert r == old[tuple(r[:3])]
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["definition"]["grids"][0]["values"] == [1.5, 2.5, 3.5]
    # dropping a value is still a different sweep
    assert main(common + ["--grid", "data.modality.0.beta=1.5"] + sets()) == 2
    assert "would be dropped" in capsys.readouterr().err
    assert len(list((out / "runs").iterdir())) == 6


def test_report_shows_spread_and_colearned_fraction(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sweep", "--out", str(out), "--workers", "1", "--seeds", "3", "--grid",
                 "method.name=none,aux"] + sets("train.mode=compare")) == 0
    printed = capsys.readouterr().out
    assert "mean gap +- se" in printed and "co-learned" in printed
    line = next(ln for ln in printed.splitlines() if ln.startswith("all"))
    assert "+-" in line and "/6" in line
    _, rows = read_csv(out / "results.csv")
    seeds = {}
    for r in rows:
        seeds.setdefault(r[1], []).append(r[2])  # repeat -> seeds of none and aux
    assert all(len(set(s)) == 1 for s in seeds.values())
