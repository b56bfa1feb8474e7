"""Smoke test of the benchmark scripts: each one's --quick version runs and writes its outputs.

The real measurements are made by ``python benchmarks/run_all.py``; here every
script runs a tiny grid, in this process (one worker), into a scratch
directory, so that docs/results.md and docs/figures are never touched.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

SCRIPTS = ("winner_boundary", "learn_time", "colearning", "performance_gap", "theory_limits",
           "noise_theory", "sweep_throughput")


@pytest.fixture()
def scratch(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMCOMP_BENCH_SCRATCH", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("name", SCRIPTS)
def test_quick_version_runs_and_writes_its_outputs(name, scratch):
    module = importlib.import_module(name)
    result = module.main(["--quick", "--workers", "1"])
    assert isinstance(result, dict)
    assert (scratch / f"{name}.csv").stat().st_size > 0
    if name != "sweep_throughput":
        assert (scratch / f"{name}.png").stat().st_size > 0
    doc = (scratch / "results.md").read_text()
    assert doc.count(f"<!-- BEGIN {name} -->") == 1 and doc.count(f"<!-- END {name} -->") == 1
    rows = module.summary_rows(result)
    assert rows and all(len(row) == 4 for row in rows)


def test_sgd_vs_gd_quick_writes_its_csv_figure_and_page(scratch):
    """sgd_vs_gd writes its own page (docs/sgd.md; here into the scratch directory)."""
    module = importlib.import_module("sgd_vs_gd")
    result = module.main(["--quick", "--workers", "1"])
    rows = result["rows"]
    assert {row["batch_size"] for row in rows} == {0, 32} and len(rows) == 4
    assert all(row["status"] == "ok" for row in rows)
    assert (scratch / "sgd_vs_gd.csv").read_text().startswith("batch_size,seed,")
    assert (scratch / "sgd_vs_gd.png").stat().st_size > 0
    page = (scratch / "sgd.md").read_text()
    assert "| SGD b = 32 |" in page and "| GD (full batch, n = 512) |" in page
    assert [s["batch_size"] for s in result["summary"]] == [0, 32]
    assert all(len(row) == 4 for row in module.summary_rows(result))


def test_mitigations_quick_version_writes_its_page_and_figures(scratch):
    module = importlib.import_module("mitigations")
    result = module.main(["--quick", "--workers", "1"])
    assert (scratch / "mitigations.csv").stat().st_size > 0
    for fig in ("mitigations_trajectories.png", "mitigations_region.png"):
        assert (scratch / fig).stat().st_size > 10_000
    page = (scratch / "mitigations.md").read_text()
    assert "## Targets" in page and "Which fixes help" in page and "`umt`" in page
    assert result["exact"]["population"] <= 1e-10 and result["exact"]["ume"]
    rows = module.summary_rows(result)
    assert rows and all(len(row) == 4 for row in rows)


def test_update_section_replaces_only_its_own_block(tmp_path):
    import _common as C

    doc = tmp_path / "results.md"
    C.update_section("learn_time", "first", doc)
    C.update_section("winner_boundary", "wb", doc)
    C.update_section("learn_time", "second", doc)
    text = doc.read_text()
    assert "first" not in text and text.count("second") == 1 and "wb" in text
    # Canonical order: winner_boundary before learn_time, whatever order they were written in.
    assert text.index("BEGIN winner_boundary") < text.index("BEGIN learn_time")
    assert not list(tmp_path.glob(".*.tmp"))


def test_logistic_fit_finds_a_known_boundary():
    import _common as C

    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, 4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-(x - 0.3) / 0.2))).astype(float)
    loc, width, *_ = C.logistic_fit(x, y)
    assert abs(loc - 0.3) < 0.03 and abs(width - 0.2) < 0.03
