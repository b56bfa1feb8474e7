"""A notebook-style walk through simcomp's Python API, checked against the command line.

Reproduces the README tour (the default run and its spread over seeds), a
4 x 4 x 3 sweep (A's beta x A's presence x 3 seeds) and its phase diagrams,
through the documented API, and checks that the command line gives the same
results (summaries equal apart from timing and provenance; results.csv
byte-identical).  Run from a checkout or an installed simcomp:

    python examples/notebook.py [WORKDIR]
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import simcomp

VOLATILE = {"created", "command", "platform", "python_version", "numpy_version",
            "numba_version", "simcomp_version"}


def stable(summary):
    out = {k: v for k, v in summary.items() if k not in VOLATILE}
    out["runs"] = {name: {k: v for k, v in run.items() if k not in ("seconds", "threads",
                                                                    "parallel")}
                   for name, run in summary["runs"].items()}
    return out


def cli(*args):
    subprocess.run([sys.executable, "-m", "simcomp.cli", *args], check=True,
                   stdout=subprocess.DEVNULL)


def main(work: Path) -> None:
    # -- the README tour: the default run
    cfg = simcomp.build_config()
    result = simcomp.simulate(cfg)
    joint = result.summary["runs"]["joint"]
    print("joint learned steps:", joint["learned_step"], "winner:", joint["winner"])
    print("B alone learned at:", result.summary["runs"]["unimodal-B"]["learned_step"]["B"])
    print("comparison:", result.summary["comparison"])
    result.save(work / "api-run")
    cli("simulate", "--quiet", "--out", str(work / "cli-run"))
    from_cli = simcomp.load(work / "cli-run")
    assert stable(from_cli.summary) == stable(result.summary), "simulate: API != CLI"
    print("simulate: API and CLI summaries equal (apart from timing and provenance)")

    # -- the spread over 16 seeds
    rows = simcomp.sweep(cfg, seeds=16, out=work / "api-seeds16")
    gaps = [r["gap"] for r in rows]
    only_a = sum(r["learned_by_horizon_joint_A"] and not r["learned_by_horizon_joint_B"]
                 for r in rows)
    print(f"16 seeds: joint learns only A on {only_a}/16, gap min {min(gaps):.4f} "
          f"mean {sum(gaps) / len(gaps):.4f}")
    cli("sweep", "--quiet", "--seeds", "16", "--out", str(work / "cli-seeds16"))
    assert (work / "api-seeds16" / "results.csv").read_bytes() == \
        (work / "cli-seeds16" / "results.csv").read_bytes(), "sweep: API != CLI"

    # -- a 4 x 4 x 3 sweep and its phase diagrams
    grid = {"data.modality.0.beta": [0.8, 1.4, 2.2, 3.0],
            "data.modality.0.presence": [0.4, 0.6, 0.8, 1.0]}
    rows = simcomp.sweep(cfg, grid=grid, seeds=3, out=work / "api-grid")
    agree = sum(r["winner_joint"] == r["predicted_winner_joint"] for r in rows)
    print(f"4x4x3 sweep: {len(rows)} runs, measured winner as predicted on {agree}")
    cli("sweep", "--quiet", "--seeds", "3", "--out", str(work / "cli-grid"),
        "--grid", "data.modality.0.beta=0.8,1.4,2.2,3.0",
        "--grid", "data.modality.0.presence=0.4,0.6,0.8,1.0")
    assert (work / "api-grid" / "results.csv").read_bytes() == \
        (work / "cli-grid" / "results.csv").read_bytes(), "grid sweep: API != CLI"
    cli("plot", str(work / "cli-grid"))
    for d in ("api-grid", "cli-grid"):
        assert (work / d / "figures" / "phase.png").stat().st_size > 0
    print("sweeps: API and CLI results.csv byte-identical; phase diagrams in",
          work / "api-grid" / "figures" / "phase.png", "and", work / "cli-grid" / "figures")
    print(json.dumps({"work": str(work)}))


if __name__ == "__main__":
    target = (Path(sys.argv[1]) if len(sys.argv) > 1
              else Path(tempfile.mkdtemp(prefix="simcomp-nb-")))
    target.mkdir(parents=True, exist_ok=True)
    main(target)
