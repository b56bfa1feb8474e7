"""Sweep throughput: how long a 400-run sweep of the default problem takes with `simcomp sweep`.

The default config of docs/model.md section 6 (d = 128, n = 512 training and 4096
test samples, m = 16, T = 300, compare mode: three networks per run) on a grid of
40 points x 10 seeds:

    simcomp sweep --grid data.modality.0.presence=0.6,0.7,0.8,0.9 \\
                  --grid data.modality.0.beta=1:2:10 --seeds 10 --out DIR

run through the real command (a subprocess of ``python -m simcomp.cli``, local
process pool, one worker per core), timed from the outside, so the figure
includes start-up, the worker processes and writing the run records.

First the 100 runs of the presence = 0.8 slice are timed (the same runs, with
the same derived seeds, as in the 400-run sweep, since a run's seed depends
only on its grid point and repeat).  If that projects the 400-run sweep to at
most ~4 minutes (``--budget``), the whole 400-run sweep is then run and timed;
otherwise the 400-run time is the 100-run time extrapolated x 4, and the
docs say so.  ``--full`` runs the 400 runs whatever the projection.

``--first-sweep`` measures instead what a newcomer meets first: in one empty
numba cache, ``simcomp simulate`` (compiling what it needs), then a 4-run
sweep of the default config (``--seeds 4``: cold after simulate), then the
same sweep again (warm); it prints both wall times, their ratio (target at
most 2x), the CPU seconds of each and how often the compile note was printed
(at most once; not at all when the sweep compiles nothing), and writes benchmarks/results/first_sweep.json.

Run:  python benchmarks/sweep_throughput.py [--quick] [--full] [--budget S] [--workers W]
      python benchmarks/sweep_throughput.py --first-sweep [--workers W]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

NAME = "sweep_throughput"
FULL_RUNS = 400


BUDGET_SECONDS = 240


def sweep_args(quick: bool, full: bool) -> tuple[list[str], int]:
    """The `simcomp sweep` arguments (without --out) and the number of runs they make."""
    if quick:
        sets = ["data.n_train=64", "data.n_test=64", "data.modality.0.dim=8",
                "data.modality.1.dim=8", "model.width=2", "train.steps=20"]
        args = [a for s in sets for a in ("--set", s)]
        return args + ["--grid", "data.modality.0.beta=1,2", "--seeds", "2"], 4
    presence = "0.6,0.7,0.8,0.9" if full else "0.8"
    runs = (4 if full else 1) * 10 * 10
    return ["--grid", f"data.modality.0.presence={presence}",
            "--grid", "data.modality.0.beta=1:2:10", "--seeds", "10"], runs


def measure(quick: bool, full: bool, workers: int | None):
    args, runs = sweep_args(quick, full)
    workers = workers or C.workers_default()
    with tempfile.TemporaryDirectory(prefix="simcomp-throughput-") as tmp:
        out = Path(tmp) / "sweep"
        cmd = [sys.executable, "-m", "simcomp.cli", "sweep", *args, "--out", str(out),
               "--workers", str(workers), "--quiet"]
        env = dict(os.environ)
        # This checkout's simcomp, installed or not (the command runs in a temporary directory).
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(C.ROOT), env.get("PYTHONPATH")]))
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"simcomp sweep failed ({proc.returncode}): {proc.stderr[-2000:]}")
        with open(out / "results.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        info = json.loads((out / "sweep.json").read_text())
        # Wall time per run: kept in each run's record (row.seconds), not in results.csv.
        per_run = []
        for record in (out / "runs").glob("*.json"):
            sec = json.loads(record.read_text()).get("row", {}).get("seconds")
            if sec is not None:
                per_run.append(float(sec))
    not_ok = sum(1 for r in rows if r["status"] != "ok")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {
        "command": "simcomp sweep " + " ".join(args) + f" --out DIR --workers {workers}",
        "runs": len(rows), "planned_runs": runs, "seconds": seconds,
        "runs_per_minute": 60.0 * len(rows) / seconds,
        "extrapolated_400_seconds": seconds * FULL_RUNS / len(rows),
        "measured_full": len(rows) == FULL_RUNS,
        "mean_run_seconds": statistics.mean(per_run) if per_run else float("nan"),
        "median_run_seconds": statistics.median(per_run) if per_run else float("nan"),
        "not_ok": not_ok, "workers": info["execution"]["workers"],
        "executor": info["execution"]["executor"], "batch_size": info["execution"]["batch_size"],
        "cpu_count": os.cpu_count(), "load_after": load,
        "gap_mean": statistics.mean(float(r["gap"]) for r in rows if r["gap"]),
        "winner_matches": sum(1 for r in rows
                              if r["winner_joint"] == r["predicted_winner_joint"]),
    }


def section(res, quick):
    minutes = res["extrapolated_400_seconds"] / 60
    ok = minutes < 60
    how = (f"measured on all 400 runs, after the 100-run slice took {res['slice_seconds']:.1f} s"
           if res["measured_full"] and "slice_seconds" in res else
           "measured on all 400 runs" if res["measured_full"] else
           f"measured on {res['runs']} runs (the presence = 0.8 slice: the same runs, with the "
           f"same derived seeds, as in the 400-run sweep) and extrapolated x "
           f"{FULL_RUNS / res['runs']:g}, since the projection exceeded ~4 minutes")
    lines = [
        "## Sweep throughput (`benchmarks/sweep_throughput.py`)", "",
        "**Swept:** the default config of docs/model.md section 6 (two modalities, d = 128, "
        "n_train = 512, n_test = 4096, m = 16, T = 300, trace every 5 steps, compare mode: "
        "three networks per run) on 40 grid points x 10 seeds = 400 runs:",
        "",
        "```",
        "simcomp sweep --grid data.modality.0.presence=0.6,0.7,0.8,0.9 \\",
        "              --grid data.modality.0.beta=1:2:10 --seeds 10 --out DIR",
        "```",
        "",
        f"timed from outside around the real command (`python -m simcomp.cli sweep ... "
        f"--workers {res['workers']} --quiet`: start-up, a pool of {res['workers']} "
        f"single-threaded worker {res['executor']}, batches of {res['batch_size']}, the run "
        f"records and results.csv) on this {res['cpu_count']}-core machine.",
        "",
        C.md_table(["measure", "value"], [
            ["runs timed", f"{res['runs']} ({res['not_ok']} not ok)"],
            ["wall time", f"{res['seconds']:.1f} s"],
            ["throughput", f"{res['runs_per_minute']:.1f} runs/minute"],
            ["one run (training + prediction, single thread), median",
             f"{res['median_run_seconds']:.2f} s"],
            ["400-run sweep", f"{minutes:.1f} minutes ({how})"],
            ["1-minute load average after the sweep", f"{res['load_after']:.1f}"],
        ]),
        "",
        f"Target 'minutes, not hours': {C.verdict(ok)} ({minutes:.1f} minutes for 400 runs)."
        + (" The load average was above the core count: the machine was shared with other "
           "work while this was measured, so the time overstates what an idle machine needs."
           if res["load_after"] > (res["cpu_count"] or 1) else ""),
    ]
    return "\n".join(lines)


def summary_rows(result):
    res = result["result"]
    minutes = res["extrapolated_400_seconds"] / 60
    how = "" if res["measured_full"] else f", extrapolated from {res['runs']} runs"
    return [["400-run sweep of the default config (compare mode)", "minutes, not hours",
             f"{minutes:.1f} min ({res['runs_per_minute']:.1f} runs/min{how})", minutes < 60]]


COMPILE_NOTE = "simcomp: compiling kernels for this machine"


def first_sweep(workers: int | None) -> dict:
    """Cold-after-simulate against warm 4-run sweeps of the default config, one cache."""
    import resource

    workers = workers or C.workers_default()
    with tempfile.TemporaryDirectory(prefix="simcomp-first-sweep-") as tmp:
        env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(tmp) / "numba-cache"),
                   MPLBACKEND="Agg")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(C.ROOT), env.get("PYTHONPATH")]))

        def timed(args):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "simcomp.cli", *args], env=env,
                                  cwd=tmp, capture_output=True, text=True)
            wall = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if proc.returncode != 0:
                raise RuntimeError(f"simcomp {args[0]} failed: {proc.stderr[-2000:]}")
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            return wall, cpu, proc.stderr.count(COMPILE_NOTE)

        sweep = ["sweep", "--seeds", "4", "--workers", str(workers), "--quiet"]
        sim = timed(["simulate", "--quiet", "--out", str(Path(tmp) / "sim")])
        cold = timed(sweep + ["--out", str(Path(tmp) / "cold")])
        warm = timed(sweep + ["--out", str(Path(tmp) / "warm")])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {"workers": workers, "simulate_seconds": sim[0],
            "cold_seconds": cold[0], "cold_cpu_seconds": cold[1], "cold_notes": cold[2],
            "warm_seconds": warm[0], "warm_cpu_seconds": warm[1], "warm_notes": warm[2],
            "ratio": cold[0] / warm[0], "cpu_ratio": cold[1] / max(warm[1], 1e-9),
            "cpu_count": os.cpu_count(), "load_after": load}


def first_sweep_section(res: dict) -> str:
    """The page's account of one ``--first-sweep`` measurement."""
    met = res["ratio"] <= 2.0 and res["cold_notes"] <= 1
    return "\n".join([
        "## The first sweep after `simcomp simulate`", "",
        f"A 4-run sweep of the default config ({res['workers']} workers) in the numba cache that "
        f"one `simcomp simulate` has just filled ({res['simulate_seconds']:.1f} s, compiling), "
        "against the same sweep run again (`python benchmarks/sweep_throughput.py "
        "--first-sweep`, one run):", "",
        C.md_table(["", "wall s", "CPU s", "compile notes"],
                   [["first (after simulate)", f"{res['cold_seconds']:.2f}",
                     f"{res['cold_cpu_seconds']:.2f}", res["cold_notes"]],
                    ["again (warm)", f"{res['warm_seconds']:.2f}",
                     f"{res['warm_cpu_seconds']:.2f}", res["warm_notes"]]]),
        "",
        f"Ratio {res['ratio']:.2f}x wall, {res['cpu_ratio']:.2f}x CPU: target at most 2x with "
        f"the compile note at most once, {'met' if met else 'NOT met'}. 1-minute load average "
        f"{res['load_after']:.1f} on {res['cpu_count']} cores after the measurement.",
    ])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny sweep (smoke test)")
    parser.add_argument("--full", action="store_true", help="run all 400 runs in any case")
    parser.add_argument("--budget", type=float, default=BUDGET_SECONDS,
                        help="run all 400 when the 100-run slice projects them to at most this "
                             f"many seconds (default {BUDGET_SECONDS})")
    parser.add_argument("--workers", type=int, default=None, help="parallel processes")
    parser.add_argument("--first-sweep", action="store_true",
                        help="time a 4-run sweep right after simulate (cold) against warm")
    args = parser.parse_args(argv)
    if args.first_sweep:
        res = first_sweep(args.workers)
        path = C.ROOT / "benchmarks" / "results" / "first_sweep.json"
        path.write_text(json.dumps(res, indent=1) + "\n")
        print(f"{NAME}: 4-run sweep of the default config ({res['workers']} workers) after "
              f"simulate: cold {res['cold_seconds']:.1f} s (CPU {res['cold_cpu_seconds']:.1f} s, "
              f"compile note printed {res['cold_notes']}x), warm {res['warm_seconds']:.1f} s "
              f"(CPU {res['warm_cpu_seconds']:.1f} s): ratio {res['ratio']:.2f}x wall, "
              f"{res['cpu_ratio']:.2f}x CPU (target <= 2x; the note at most once, none when "
              f"nothing is compiled); load "
              f"{res['load_after']:.1f} on {res['cpu_count']} cores")
        from speed import write_marked_section  # the page's one marked-section writer

        perf = C.ROOT / "docs" / "performance.md"
        begin, end = "<!-- BEGIN first_sweep -->", "<!-- END first_sweep -->"
        write_marked_section(perf, f"{begin}\n{first_sweep_section(res)}\n{end}", begin, end)
        print(f"{NAME}: wrote {path} and the first_sweep section of {perf}")
        return {"result": res}
    res = measure(args.quick, False, args.workers)
    projected = res["extrapolated_400_seconds"]
    if not args.quick and (args.full or projected <= args.budget):
        print(f"{NAME}: 100 runs in {res['seconds']:.1f} s; 400 projected to {projected:.0f} s "
              f"<= {args.budget:.0f} s: running all 400", flush=True)
        full = measure(args.quick, True, args.workers)
        full["slice_seconds"], full["slice_runs"] = res["seconds"], res["runs"]
        res = full
    paths = C.output_paths(args.quick, NAME)
    C.write_csv(NAME, [res], path=paths["csv"])
    C.update_section(NAME, section(res, args.quick), paths["doc"])
    print(f"{NAME}: {res['runs']} runs in {res['seconds']:.1f} s = {res['runs_per_minute']:.1f} "
          f"runs/minute; 400 runs: {res['extrapolated_400_seconds'] / 60:.1f} minutes"
          f"{'' if res['measured_full'] else ' (extrapolated)'}"
          f"{' [--quick: tiny runs, not the default config]' if args.quick else ''}")
    print(f"{NAME}: wrote {paths['csv']}, {paths['doc']}")
    return {"result": res}


if __name__ == "__main__":
    main()
