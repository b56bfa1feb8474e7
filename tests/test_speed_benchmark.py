"""Smoke test of benchmarks/speed.py: its --quick variant runs and writes its page.

No timing is checked (numbers depend on the machine and its load); the
script itself refuses to time anything unless simcomp's step agrees with
its NumPy step to 1e-12.
"""

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
                    "## Start-up", "## Reproduce"):
        assert heading in text
    assert "PyTorch: not installed (skipped)" in text or "PyTorch" in text
