"""Smoke test of benchmarks/speed.py: its --quick variant runs and writes its page.

No timing is checked (numbers depend on the machine and its load); the
script itself refuses to time anything unless simcomp's step agrees with
its NumPy step to 1e-12.
"""

import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.slow  # about 50 s: the benchmark script end to end
def test_quick_speed_benchmark_writes_its_page(tmp_path):
    sys.path.insert(0, str(BENCH))
    try:
        import speed
    finally:
        sys.path.remove(str(BENCH))
    out = tmp_path / "performance.md"
    result = speed.main(["--quick", "--no-torch", "--out", str(out)])
    assert [s["size"] for s in result["sizes"]] == ["small", "default", "large"]
    assert all(s["check_error"] <= 1e-12 for s in result["sizes"])
    assert all("torch_s" not in s for s in result["sizes"])
    text = out.read_text()
    assert set(result["methods"]["ratio"]) >= {"none", "ogm", "ogm_ge", "mmpareto", "umt"}
    assert result["methods"]["ratio"]["none"] == 1.0
    for heading in ("## Machine", "## Time per GD step", "## Targets", "## Training rules",
                    "## Sweep throughput",
                    "## Start-up", "## A `simulate` step against a training step",
                    "## Reproduce"):
        assert heading in text
    # the simulate step's breakdown names both noise-aware dynamics with their cost
    step = result["simulate_step"]
    assert all(math.isfinite(step[f"{kind}_dynamics_step_s"]) for kind in ("predicted",
                                                                              "tracked"))
    assert "(`predicted_*`" in text and "(`tracked_*`" in text
    assert "PyTorch: not installed (skipped)" in text or "PyTorch" in text


def test_the_fusion_grid_block_survives_a_rewrite_of_the_page(tmp_path):
    """benchmarks/fusion.py writes its block into performance.md; speed.py, which renders the
    whole page, puts it back (before '## Reproduce') instead of dropping it."""
    sys.path.insert(0, str(BENCH))
    try:
        import fusion
        import speed
    finally:
        sys.path.remove(str(BENCH))
    page = tmp_path / "performance.md"
    page.write_text("# Performance\n\n## Targets\n\nx\n\n## Reproduce\n\nrun it\n")
    lines = fusion.performance_section(30.0, 29.0, 5000.0, 3000.0, 360, 40000, "2.13.0", False)
    assert fusion.write_section(page, lines, fusion.FUSION_BEGIN, fusion.FUSION_END)
    first = page.read_text()
    assert first.index(fusion.FUSION_BEGIN) < first.index("## Reproduce")
    assert "**30.0 s**" in first and "100x slower" in first
    # a second write replaces the block, never duplicates it
    lines = fusion.performance_section(31.0, 29.0, 5000.0, None, 360, 40000, None, False)
    fusion.write_section(page, lines, fusion.FUSION_BEGIN, fusion.FUSION_END)
    second = page.read_text()
    assert second.count(fusion.FUSION_BEGIN) == 1 and "**31.0 s**" in second
    assert "not importable" in second
    rendered = "# Performance\n\nnew numbers\n\n## Reproduce\n\nrun it\n"
    kept = speed.keep_foreign_blocks(page, rendered)
    assert "new numbers" in kept and kept.count(fusion.FUSION_BEGIN) == 1
    assert kept.index(fusion.FUSION_END) < kept.index("## Reproduce")
    assert not fusion.write_section(tmp_path / "absent.md", lines, fusion.FUSION_BEGIN,
                                    fusion.FUSION_END)


def test_every_marked_section_of_other_scripts_survives_a_rewrite(tmp_path):
    """A full speed.py rewrite keeps each marked section it does not render itself
    (fusion.py's two, sweep_throughput.py --first-sweep's), once, before '## Reproduce',
    and replaces the ones it renders."""
    sys.path.insert(0, str(BENCH))
    try:
        import speed
        import sweep_throughput
    finally:
        sys.path.remove(str(BENCH))
    first = {"workers": 2, "simulate_seconds": 20.0, "cold_seconds": 3.0, "cold_notes": 1,
             "cold_cpu_seconds": 4.0, "warm_seconds": 1.0, "warm_cpu_seconds": 2.0, "warm_notes": 0,
             "ratio": 3.0, "cpu_ratio": 2.0, "load_after": 1.0, "cpu_count": 2}
    section = sweep_throughput.first_sweep_section(first)
    assert "3.00x wall" in section and "NOT met" in section  # 3x is over the 2x target
    blocks = {name: f"<!-- BEGIN {name} -->\n{name} text\n<!-- END {name} -->"
              for name in ("fusion_grid", "fusion_methods", "first_sweep", "simulate_step")}
    page = tmp_path / "performance.md"
    page.write_text("# Performance\n\nold\n\n" + "\n\n".join(blocks.values())
                    + "\n\n## Reproduce\n\nrun it\n")
    rendered = ("# Performance\n\nnew\n\n<!-- BEGIN simulate_step -->\nfresh\n"
                "<!-- END simulate_step -->\n\n## Reproduce\n\nrun it\n")
    kept = speed.keep_foreign_blocks(page, rendered)
    for name in ("fusion_grid", "fusion_methods", "first_sweep"):
        assert kept.count(blocks[name]) == 1
        assert kept.index(blocks[name]) < kept.index("## Reproduce")
    assert "fresh" in kept and "simulate_step text" not in kept and "old" not in kept


@pytest.mark.slow  # compiles or loads every training rule
def test_only_methods_writes_its_section(tmp_path):
    sys.path.insert(0, str(BENCH))
    try:
        import speed
    finally:
        sys.path.remove(str(BENCH))
    from simcomp.kernels.rule_spec import METHOD_NAMES

    out = tmp_path / "performance.md"
    out.write_text("# Performance\n\n## Reproduce\n\nrun it\n")
    res = speed.main(["--quick", "--only-methods", "--out", str(out)])
    assert list(res["ratio"]) == list(METHOD_NAMES) and res["ratio"]["none"] == 1.0
    text = out.read_text()
    assert text.index("## Training rules, measured alone") < text.index("## Reproduce")
    for name in METHOD_NAMES[1:]:
        assert f"| `{name}` | {res['ratio'][name]:.2f} |" in text
    res = speed.main(["--quick", "--only-methods", "--out", str(out)])  # replaced, not appended
    assert out.read_text().count("## Training rules, measured alone") == 1
    hooks = out.read_text()
    assert hooks.count("## Methods with work between segments") == 1  # replaced too
    assert hooks.index("## Methods with work between segments") < hooks.index("## Reproduce")
    assert set(res["hooks"]["ratio"]) == {"relearning", "gblending"}
    for name in ("relearning", "gblending"):
        assert f"| `{name}` | {res['hooks']['ratio'][name]:.2f} |" in hooks
