"""The embedded default tells its story on every one of the 16 seeds (docs/model.md section 6).

At full size: jointly only A is learned by T; alone, B is learned by 0.75 T; the
best uni-modal network beats the joint one by more than 0.02; the theory (the
reduced dynamics' learned-by-horizon) predicts the same.  The criteria are those
of ``benchmarks/default_seeds.py``, which writes the table of docs/model.md.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from default_seeds import CHOSEN, EARLY, GAP, TARGETS, seed_checks  # noqa: E402

from simcomp.config_file import default_config  # noqa: E402
from simcomp.sweep import run_batch  # noqa: E402


@pytest.mark.slow  # about 15 s: sixteen default runs
def test_the_default_meets_its_targets_on_seeds_0_to_15():
    base = default_config()
    rows = run_batch([base.replace(seed=s) for s in CHOSEN])
    assert [row["seed"] for row in rows] == list(CHOSEN)
    checks = [seed_checks(row, base.train.steps) for row in rows]
    counts = {key: sum(c[key] for c in checks) for key in TARGETS}
    assert counts["only_A"] >= TARGETS["only_A"], counts
    assert counts["B_alone_early"] == 16, counts
    assert counts["gap_over"] >= TARGETS["gap_over"], counts
    assert counts["theory"] >= TARGETS["theory"], counts
    # what the criteria read, stated once more on the rows themselves
    for row, check in zip(rows, checks):
        if check["B_alone_early"]:
            assert row["learned_step_alone_B"] <= EARLY * base.train.steps
        if check["gap_over"]:
            assert row["test_error_joint"] - row["best_unimodal_test_error"] > GAP
        if check["only_A"]:
            assert row["learned_step_joint_A"] is not None and row["learned_step_joint_B"] is None


def test_seed_checks_read_the_row():
    row = {"learned_by_horizon_joint_A": True, "learned_by_horizon_joint_B": False,
           "learned_step_alone_B": 225, "gap": 0.021, "predicted_learned_by_horizon_joint_A": True,
           "predicted_learned_by_horizon_joint_B": False, "predicted_learned_step_alone_B": 200}
    assert seed_checks(row, 300) == {"only_A": True, "B_alone_early": True, "gap_over": True,
                                     "theory": True}
    late = dict(row, learned_step_alone_B=226, gap=0.02, learned_by_horizon_joint_B=True,
                predicted_learned_step_alone_B=None)
    assert seed_checks(late, 300) == {"only_A": False, "B_alone_early": False, "gap_over": False,
                                      "theory": False}
    assert not seed_checks(dict(row, learned_step_alone_B=None, gap=None), 300)["gap_over"]


@pytest.mark.slow  # 3-6 s: the benchmark script on four seeds
def test_the_benchmark_quick_version_writes_its_table(tmp_path, monkeypatch):
    import default_seeds

    monkeypatch.setenv("SIMCOMP_BENCH_SCRATCH", str(tmp_path))
    result = default_seeds.main(["--quick", "--workers", "1"])
    doc = (tmp_path / "results.md").read_text()
    assert doc.count("<!-- BEGIN default_seeds -->") == 1 and "joint learns only A" in doc
    assert (tmp_path / "default_seeds.csv").stat().st_size > 0
    (label, st), = [(k, v) for k, v in result.items() if k != "met"]
    assert st["n"] == 4 and result["met"] == all(st[k] == 4 for k in TARGETS)
