"""Phase-diagram drawing time against the number of runs of a sweep.

A synthetic complete sweep directory (sweep.json and results.csv with every
column a real sweep of two modalities writes, values drawn at random) of
14 400 runs (120 x 120 grid points) and of 90 000 runs (300 x 300), each
drawn with ``simcomp.phase.phase_figures`` as ``simcomp plot DIR`` does.
The two times are measured in one run of this script, so their ratio shows
how drawing scales (linear in the runs: about 6 for 6.25 times the runs; the
figure itself adds a constant).  Before the rows were grouped once, 14 400
runs took 254 s.

Run:  python benchmarks/phase_speed.py
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simcomp.config_file import build_config  # noqa: E402
from simcomp.phase import phase_figures  # noqa: E402
from simcomp.sweep import FORMAT_VERSION, plan_sweep  # noqa: E402


def make_sweep(root: Path, side: int) -> int:
    """A complete sweep directory of ``side`` x ``side`` grid points, one seed each."""
    cfg = build_config(None, [])
    xs = np.linspace(1.0, 2.0, side).tolist()
    ys = np.linspace(0.5, 1.0, side).tolist()
    plan = plan_sweep(cfg, [], 1)  # the columns of a sweep of this config
    keys = ["data.modality.0.beta", "data.modality.0.presence"]
    columns = keys + ["repeat", "seed"] + plan.result_columns
    meta = {"format": FORMAT_VERSION, "definition": {
        "base_config": cfg.to_dict(), "seeds": 1,
        "grids": [{"key": keys[0], "spec": f"1:2:{side}", "values": xs},
                  {"key": keys[1], "spec": f"0.5:1:{side}", "values": ys}]}}
    root.mkdir()
    (root / "sweep.json").write_text(json.dumps(meta))
    rng = np.random.default_rng(0)
    with open(root / "results.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for x in xs:
            for y in ys:
                row = {keys[0]: x, keys[1]: y, "repeat": 0, "seed": 1,
                       "winner_joint": "AB"[rng.integers(2)], "gap": rng.normal(0, 0.05),
                       "winner_coordinate_joint": rng.normal(),
                       "predicted_winner_joint": "AB"[rng.integers(2)]}
                for m in "AB":
                    row[f"learned_by_horizon_joint_{m}"] = int(rng.integers(2))
                    row[f"predicted_learned_by_horizon_joint_{m}"] = int(rng.integers(2))
                writer.writerow([row.get(col, "") for col in columns])
    return side * side


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        times = {}
        for side in (120, 300):
            root = Path(tmp) / f"s{side}"
            runs = make_sweep(root, side)
            start = time.perf_counter()
            phase_figures(root)
            times[runs] = time.perf_counter() - start
            print(f"{runs:6d} runs: phase diagrams drawn in {times[runs]:6.1f} s", flush=True)
        (small, t_small), (big, t_big) = sorted(times.items())
        print(f"ratio {t_big / t_small:.2f} for {big / small:.2f} times the runs")


if __name__ == "__main__":
    main()
