"""The ``simcomp`` command: a parser factory, one runner per subcommand, ``main(argv=None)``.

Exit codes (docs/reliability.md): 0 success; 1 a run failed (non-finite loss)
after its outputs were saved, or the system failed the command (disk full, out
of memory); 2 bad input refused before any work (config, arguments, output
path, resource limits); 130 interrupted, 143 terminated.  Every failure is a
one-line message, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import warnings
from pathlib import Path

from . import _blas_threads  # noqa: F401 (first: it must run before NumPy is imported)
from ._version import __version__
from .config import ConfigError
from .config_file import build_config, config_to_toml
from .interrupts import command_ended, guard, raised_signal, signal_of
from .registry import REGISTRY, label
from .outputs import (
    AtomicDirectory,
    OutputError,
    check_output_dir,
    check_output_file,
    dumps_json,
    write_text_atomic,
)

__all__ = ["get_parser", "main"]


class UsageError(Exception):
    """Bad command-line input that the parser itself cannot catch."""


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE",
        help="TOML experiment file (default: the embedded default, docs/model.md section 6)",
    )
    parser.add_argument(
        "--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
        help="override one config value by its dotted path, e.g. train.steps=2000 or "
        "data.modality.0.beta=1.1 (repeatable); the next index adds a modality, a copy of the "
        "last one but its name",
    )


# --------------------------------------------------------------------------- simulate

_SIZE_HINT = ("fewer data.n_train / data.n_test, a smaller data.modality.N.dim or model.width, "
              "fewer train.steps or a larger train.trace_every")


def _warn_noop(cfg) -> None:
    """One stderr line for a method set to do nothing; the API's warning is then silenced."""
    import warnings

    from .method_config import MethodNoOpWarning

    reason = cfg.method.noop_reason()
    if reason is not None:
        print(f"simcomp: warning: {reason}: the joint run trains exactly as with method none",
              file=sys.stderr)
    warnings.simplefilter("ignore", MethodNoOpWarning)


def run_simulate(args) -> int:
    from .api import simulate
    from .preflight import check, estimate_simulate
    from .report import simulate_report

    cfg = build_config(args.config, args.overrides)
    check_output_dir(args.out, args.force)
    check(estimate_simulate(cfg), out=args.out, hint=_SIZE_HINT)
    _warn_noop(cfg)
    # The output directory is claimed (as a hidden temporary) before training, and renamed
    # into place once complete: the same files as Result.save writes.
    with AtomicDirectory(args.out, force=args.force) as out:
        result = simulate(cfg, progress=not args.quiet)
        result._write_files(out.path)
        out.commit()
    failed = [run for run in result.runs if run.status in ("nonfinite", "diverged")]
    if not args.quiet and result.summary.get("engine") == "fusion":
        from .fusion_result import fusion_report

        print(fusion_report(result.summary, str(args.out)))
    elif not args.quiet:
        print(simulate_report(result.summary, str(args.out)))
        print(f"(seed {cfg.seed} is one draw of the data and the initial weights; `simcomp sweep "
              f"--seeds 16 --out DIR` with the same --config/--set shows the spread over seeds)")
    if failed:
        print(divergence_message(failed, result.traces, str(args.out), cfg), file=sys.stderr)
    return 1 if failed else 0




def _method_setting(cfg) -> str:
    """The joint run's method and its settings, as ``umt (distill_weight 10, ...)``."""
    fields = {k: v for k, v in cfg.method.to_dict().items() if k != "name" and v is not None}
    text = ", ".join(f"{k} {v if not isinstance(v, (list, tuple)) else list(v)}"
                     for k, v in fields.items())
    return label(cfg.method.name) + (f" ({text})" if text else "")


def divergence_message(failed, traces: dict, out: str, cfg=None) -> str:
    """One line for the runs whose loss turned non-finite or blew up: where each stopped,
    what was saved, and the method and setting of a joint run trained with one."""
    blown = [run for run in failed if run.status == "diverged"]
    overflowed = [run for run in failed if run.status != "diverged"]
    parts, at_start = [], False

    def under(run) -> str:
        return ("" if cfg is None or run.name != "joint" or cfg.method.name == "none"
                else f" under method {_method_setting(cfg)}")

    for run in overflowed:
        steps = traces[run.name]["steps"]
        if len(steps) == 0:
            at_start = True
            parts.append(f"{run.name}{under(run)} at step {run.failed_step} (its trace has no "
                         f"record)")
        else:
            parts.append(f"{run.name}{under(run)} at step {run.failed_step} (its trace is saved "
                         f"up to step {int(steps[-1])})")
    for run in blown:
        steps = traces[run.name]["steps"]
        parts.append(f"{run.name}{under(run)} diverged from step {run.failed_step} (weights or "
                     f"loss past 1e12; its trace is saved up to step "
                     f"{int(steps[-1]) if len(steps) else 0})")
    # The method acts on the joint run only: whether its loss blew up past 1e12 or straight
    # to inf/NaN (umt at distill_weight 1e6), the method's weight is the first suspect.
    joint_method = cfg is not None and cfg.method.name != "none" and any(
        run.name == "joint" for run in failed)
    if at_start:
        advice = ("the initial loss overflows: try a smaller model.init_scale, "
                  "data.modality.N.noise or beta")
    elif joint_method:
        advice = (f"lower the method's weight (method."
                  f"{REGISTRY[cfg.method.name].diverge_key or 'name'}) or train.lr")
    else:
        advice = "try a smaller train.lr"
    head = ("the training loss is not finite" if not blown else
            "the run diverged" if not overflowed else "runs diverged or overflowed")
    return f"simcomp: {head}: {'; '.join(parts)}; outputs in {out!r}; {advice}"


# --------------------------------------------------------------------------- theory


def run_theory(args) -> int:
    from .experiment import predict_experiment
    from .outputs import to_jsonable
    from .preflight import THEORY_HINT, check, estimate_theory
    from .report import theory_report

    cfg = build_config(args.config, args.overrides)
    from .fusion_config import uses_fusion_engine

    if uses_fusion_engine(cfg.model):
        return _fusion_theory(cfg, args)
    if args.plot is not None:
        check_output_file(args.plot, args.force, "--plot", suffix=".png")
    check(estimate_theory(cfg), hint=THEORY_HINT)
    _warn_noop(cfg)
    planned = predict_experiment(cfg)
    rows, comparison, predictions = planned.rows, planned.comparison, planned.predictions
    if args.json:
        print(dumps_json({"seed": cfg.seed, "config": cfg.to_dict(), "runs": to_jsonable(rows),
                          "comparison": comparison}), end="")
    else:
        print(theory_report(cfg, rows, comparison))
    if args.plot is not None:
        from .plots import reduced_dynamics_figure, save_figure_atomic

        target = check_output_file(args.plot, args.force, "--plot", suffix=".png")
        save_figure_atomic(reduced_dynamics_figure(cfg, predictions), target)
        if not args.json:
            print(f"reduced dynamics drawn in {target}")
    return 0


def _fusion_theory(cfg, args) -> int:
    """``simcomp theory`` for the fusion engine: the linear theory's numbers (no training)."""
    from .fusion_result import fusion_prediction
    from .fusion_train import prepare
    from .outputs import to_jsonable
    from .preflight import check, estimate_fusion

    if args.plot is not None:
        raise UsageError("--plot draws the reduced dynamics of the fixed-head late-fusion "
                         "learner; the fusion engine has none (simulate draws total weights)")
    check(estimate_fusion(cfg), hint="fewer data.n_train or a smaller data.modality.N.dim")
    pred = fusion_prediction(cfg, prepare(cfg))
    if args.json:
        print(dumps_json({"seed": cfg.seed, "config": cfg.to_dict(), "engine": "fusion",
                          "runs": [{"run": "joint", **to_jsonable(pred)}],
                          "comparison": None}), end="")
        return 0
    steps = pred["predicted_half_step"]
    shown = ", ".join(f"{n} {'-' if t is None else f'{t:.0f}'}" for n, t in steps.items())
    ratio, mis = pred["ratio"], pred["misattribution"]
    print(f"theory ({pred['formula']}): predicted_half_step {shown}; t_B/t_A "
          f"{'-' if ratio is None else f'{ratio:.3f}'}; misattribution "
          f"{'-' if mis is None else f'{mis:+.3f}'}")
    return 0


# --------------------------------------------------------------------------- plot


def run_plot(args) -> int:
    """Redraw the figures of a simulate directory, or draw the phase diagrams of a sweep."""
    from .phase import PlotError, phase_figures

    root = Path(args.dir)
    if not root.is_dir():
        raise UsageError(f"{args.dir!r} is not a directory; give a simcomp simulate or sweep "
                         f"output directory")
    if args.out is not None:
        check_output_file(args.out, args.force, "--out", suffix=".png")
    if (root / "sweep.json").is_file():
        if args.out is None:
            _check_figure_target(root / "figures" / "phase.png")
        try:
            drawn = phase_figures(root, args.x, args.y, args.out)
        except PlotError as exc:
            raise UsageError(str(exc)) from None
        print(f"phase diagrams drawn in {', '.join(str(p) for p in drawn)}")
        return 0
    if (root / "summary.json").is_file():
        if args.x is not None or args.y is not None:
            raise UsageError(f"--x and --y choose grid axes of a sweep; {args.dir!r} is a "
                             f"simulate directory")
        from .api import load
        from .plots import save_figure_atomic

        result = load(root)
        target = Path(args.out) if args.out is not None else root / "figures" / "alignment.png"
        if args.out is None:
            _check_figure_target(target)
            target.parent.mkdir(exist_ok=True)
        save_figure_atomic(result.figure(), target)
        print(f"figure drawn in {target}")
        return 0
    raise UsageError(f"{args.dir!r} is neither a simcomp simulate directory (summary.json) "
                     f"nor a sweep directory (sweep.json)")


def _check_figure_target(target: Path) -> None:
    """DIR/figures/NAME.png, which plot replaces: refuse a figures/ or NAME.png of another kind."""
    figures = target.parent
    if figures.is_symlink() or (figures.exists() and not figures.is_dir()):
        raise UsageError(f"{str(figures)!r} is not a directory; simcomp draws the figure into it: "
                         f"move it away")
    if figures.is_dir():
        check_output_file(target, True, "the figure", suffix=".png")


# --------------------------------------------------------------------------- config


def run_config(args) -> int:
    cfg = build_config(args.config, args.overrides)
    text = config_to_toml(cfg)
    if args.out is None:
        print(text, end="")
        return 0
    write_text_atomic(check_output_file(args.out, args.force, "--out"), text)
    return 0


# --------------------------------------------------------------------------- sweep


def run_sweep_command(args) -> int:
    """The runner of ``simcomp sweep``: exit 0 when every run is recorded (see docs/sweeps.md).

    Ctrl-C and SIGTERM stop the sweep at once (the finished runs stay
    recorded): exit 130 and 143.
    """
    from .api import draw_sweep_figures, run_sweep_into
    from .progress import ProgressBar
    from .sweep import SweepRunError, sweep_report

    base = build_config(args.config, args.overrides)

    def log(message: str) -> None:
        if not args.quiet:
            print(f"simcomp sweep: {message}", file=sys.stderr)

    bar = None

    def on_start(done_before: int, pending: int) -> None:
        # The bar counts the runs still to do, known once the directory is read.
        nonlocal bar
        bar = ProgressBar(pending, "sweep", enabled=not args.quiet and pending > 0)

    def progress(amount: int) -> None:
        if bar is not None:
            bar.update(amount)

    try:
        result = run_sweep_into(
            base, args.grids, args.seeds, args.out, max_runs=args.max_runs,
            paired=False if args.unpaired else (
                None if args.paired is None else [k for k in args.paired.split(",") if k]),
            workers=args.workers, scheduler=args.scheduler,
            batch_size=args.batch_size, force=args.force, progress=progress, log=log,
            on_start=on_start, connect_timeout=args.connect_timeout,
        )
    except KeyboardInterrupt as exc:  # SIGTERM and SIGHUP too: records kept, lock released
        if bar is not None:
            bar.close()
        signum = signal_of(exc)
        what = {signal.SIGTERM: "terminated", getattr(signal, "SIGHUP", -1): "hung up"}.get(
            signum, "interrupted")
        print(f"simcomp: sweep {what}; the finished runs are recorded in {args.out}/runs, "
              f"rerun the same command to resume", file=sys.stderr)
        return 128 + signum
    except SweepRunError as exc:
        if bar is not None:
            bar.close()
        print(f"simcomp: error: {exc}", file=sys.stderr)
        return 1
    if bar is not None:
        bar.close()
    if not args.quiet:
        print(sweep_report(result))
    try:
        drawn = draw_sweep_figures(args.out)
    except KeyboardInterrupt as exc:  # the sweep itself is complete: say so, not "nothing written"
        signum = signal_of(exc)
        what = {signal.SIGTERM: "terminated", getattr(signal, "SIGHUP", -1): "hung up"}.get(
            signum, "interrupted")
        print(f"simcomp: sweep {what} while drawing its phase diagrams; every run is recorded and "
              f"{args.out}/results.csv is complete; `simcomp plot {args.out}` draws the figures",
              file=sys.stderr)
        return 128 + signum
    except (ValueError, OSError) as exc:
        # The runs are done and recorded: a figure that cannot be drawn (a `figures` file of
        # the user's, the directory removed meanwhile, a full disk) is one line, not a
        # traceback nor "no complete output was written".
        text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        where = f" ({exc.filename})" if isinstance(exc, OSError) and exc.filename else ""
        print(f"simcomp: error: the sweep's runs are done and recorded in {args.out}, but its "
              f"phase diagrams could not be drawn: {text}{where}; once that is fixed, "
              f"`simcomp plot {args.out}` draws them", file=sys.stderr)
        return 2
    if drawn and not args.quiet:
        print(f"phase diagrams drawn in {', '.join(str(p) for p in drawn)}")
    if result.not_ok:
        print(f"simcomp: {result.not_ok} of {result.total} runs did not end ok (see the status "
              f"column of results.csv)", file=sys.stderr)
    return 0


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _add_sweep_parser(sub) -> argparse.ArgumentParser:
    from .sweep import CONNECT_TIMEOUT, MAX_RUNS

    parser = sub.add_parser(
        "sweep", help="run grids of configs times seeds in parallel (local or Dask), resumably",
        description="Run every grid point of the cartesian product of the --grid axes, --seeds "
        "times each, and tabulate measured against predicted in DIR/results.csv. Rerunning the "
        "same command resumes an interrupted sweep. See docs/sweeps.md.",
    )
    _add_config_arguments(parser)
    parser.add_argument(
        "--grid", metavar="KEY=START:STOP:NUM|KEY=V1,V2,...", action="append", default=[],
        dest="grids",
        help="a grid axis: NUM evenly spaced values from START to STOP, or a list of TOML values "
        "(repeatable; the sweep is the cartesian product)",
    )
    parser.add_argument("--seeds", type=int, default=1, metavar="N",
                        help="runs per grid point, each with its own derived seed (default: 1)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="sweep directory (results.csv, sweep.json, runs/); rerun to resume")
    parser.add_argument("--workers", type=int, default=None, metavar="W",
                        help="parallel local worker processes, or LocalCluster workers "
                        "(default: the number of cores)")
    parser.add_argument("--scheduler", metavar="ADDRESS|local",
                        help="run on a dask.distributed scheduler at ADDRESS, or 'local' for a "
                        "LocalCluster (needs dask.distributed: pip install 'dask[distributed]')")
    parser.add_argument("--connect-timeout", type=_positive_float, default=CONNECT_TIMEOUT,
                        metavar="S", help="seconds to reach the --scheduler and complete its "
                        "handshake (default: %(default)g)")
    parser.add_argument("--batch-size", type=int, default=None, metavar="B",
                        help="runs per dispatched batch (default: a few seconds of work)")
    parser.add_argument("--max-runs", type=int, default=MAX_RUNS, metavar="N",
                        help="refuse to plan a sweep of more runs than this "
                        "(default: %(default)d)")
    pairing = parser.add_mutually_exclusive_group()
    pairing.add_argument("--paired", metavar="KEY[,KEY...]", default=None,
                         help="grid axes whose values share seeds at a grid point, for paired "
                         "comparisons (default: the method.* axes)")
    pairing.add_argument("--unpaired", action="store_true",
                         help="every grid point gets its own seeds, method axes included")
    parser.add_argument("--force", action="store_true",
                        help="start over: delete the runs of a different (or the same) sweep "
                        "in DIR (only a sweep directory simcomp wrote)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, messages or table")
    parser.set_defaults(runner=run_sweep_command)
    return parser


# --------------------------------------------------------------------------- calibrate


def run_calibrate(args) -> int:
    """``simcomp calibrate FILE.toml``: measurements in, the toy's answers out (docs/calibration.md).

    Exit 0 with the answers, or with the report that no toy configuration is
    consistent with the measurements (it says which one could not be
    matched); 2 for bad or contradicting measurements.
    """
    from .calibrate import CalibrationError, calibrate
    from .calibrate.report import check_calibration_dir, write_directory

    if args.out is not None:
        check_calibration_dir(args.out, args.force)
    try:
        cal = calibrate(args.file, methods=args.methods or None, tolerance=args.tolerance,
                        simulate=args.simulate, progress=not args.quiet)
    except CalibrationError as exc:
        raise UsageError(str(exc)) from None
    if args.out is not None:
        write_directory(cal.json, args.out, force=args.force, figure=not args.no_figure)
    if args.json:
        print(dumps_json(cal.json), end="")
    elif not args.quiet:
        print(cal.report())
        if args.out is not None:
            print(f"written to {args.out}/ (calibration.json, report.txt"
                  f"{'' if args.no_figure else ', calibration.png'})")
    return 0


def _add_calibrate_parser(sub) -> argparse.ArgumentParser:
    # the registry, not simcomp.calibrate: building the parser (--help, config) must not
    # import NumPy and numba; these are the methods calibrate knows (METHOD_PARAMS)
    from .registry import REGISTRY

    calibrated = [name for name, spec in REGISTRY.items() if spec.calibration is not None]

    parser = sub.add_parser(
        "calibrate", help="map a real model's measured accuracies into the toy and predict what "
        "the balancing methods would gain",
        description="Read a TOML file of measured accuracies (uni-modal networks, the joint "
        "network; optional half-epochs, curves, all_wrong), find every toy configuration that "
        "reproduces them, and report the potential, the competition cost and every method's "
        "predicted gain as ranges. See docs/calibration.md.",
    )
    parser.add_argument("file", metavar="FILE.toml", help="the measurements")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of "
                        "the report")
    parser.add_argument("--out", metavar="DIR", default="simcomp-calibration",
                        help="write calibration.json, report.txt and calibration.png into DIR "
                        "(default: %(default)s); refused if not empty")
    parser.add_argument("--no-out", dest="out", action="store_const", const=None,
                        help="write no directory (print only)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out "
                        "directory that simcomp calibrate wrote")
    parser.add_argument("--method", dest="methods", action="append", default=[],
                        choices=calibrated, metavar="METHOD",
                        help="evaluate only this method (repeatable; default: all of "
                        + ", ".join(calibrated) + ")")
    parser.add_argument("--tolerance", type=float, default=None, metavar="POINTS",
                        help="accuracy points around every measurement (default: the file's, "
                        "else 1)")
    parser.add_argument("--simulate", type=int, default=2, metavar="N",
                        help="members of the consistent set confirmed by simulation (default: 2)")
    parser.add_argument("--no-figure", action="store_true", help="skip calibration.png")
    parser.add_argument("--quiet", action="store_true", help="no progress messages and no report")
    parser.set_defaults(runner=run_calibrate)
    return parser


# --------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """argparse with simcomp's one-line errors (argparse prints the usage block first)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def get_parser() -> argparse.ArgumentParser:
    """The full argument parser (kept separate from :func:`main` for tests and docs)."""
    parser = _Parser(
        prog="simcomp",
        description="Simulate, measure and predict modality competition in late-fusion networks "
        "trained by gradient descent.",
    )
    parser.add_argument("--version", action="version", version=f"simcomp {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    sim = sub.add_parser(
        "simulate", help="train the joint and/or uni-modal networks of one config and trace them",
        description="Train and trace one experiment; without --config it runs the embedded default.",
    )
    _add_config_arguments(sim)
    sim.add_argument("--out", default="simcomp-out", metavar="DIR",
                     help="output directory (default: %(default)s); refused if not empty")
    sim.add_argument("--force", action="store_true", help="replace a non-empty --out directory")
    sim.add_argument("--quiet", action="store_true", help="no progress bar and no report")
    sim.set_defaults(runner=run_simulate)

    theo = sub.add_parser(
        "theory", help="predict learned steps, winner and test errors without simulating",
        description="The theory's predictions for a config and seed, from its initial weights.",
    )
    _add_config_arguments(theo)
    theo.add_argument("--plot", metavar="FILE.png", help="draw the reduced dynamics into FILE.png")
    theo.add_argument("--force", action="store_true", help="replace an existing --plot file")
    theo.add_argument("--json", action="store_true", help="print JSON instead of a table")
    theo.set_defaults(runner=run_theory)

    conf = sub.add_parser(
        "config", help="print the resolved config as TOML (a starting point for your own)",
        description="Print the resolved config (the embedded default or --config, with every "
        "--set applied) as TOML, which --config reads back.",
    )
    _add_config_arguments(conf)
    conf.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    conf.add_argument("--force", action="store_true", help="replace an existing --out file")
    conf.set_defaults(runner=run_config)

    _add_sweep_parser(sub)
    _add_calibrate_parser(sub)

    plot = sub.add_parser(
        "plot", help="draw a sweep's phase diagrams, or redraw a simulate directory's figure",
        description="For a sweep directory: phase diagrams over two numeric grid axes (the "
        "measured winner, the fraction of seeds that learn every modality by T, the mean gap), "
        "with the theory's boundaries on top; written to DIR/figures/phase.png. For a simulate "
        "directory: its figure, redrawn into DIR/figures/alignment.png.",
    )
    plot.add_argument("dir", metavar="DIR", help="a simcomp sweep or simulate output directory")
    plot.add_argument("--x", metavar="KEY", help="grid axis across (default: the first numeric "
                      "grid axis)")
    plot.add_argument("--y", metavar="KEY", help="grid axis up (default: the next numeric one)")
    plot.add_argument("--out", metavar="FILE.png", help="write the figure to FILE.png instead")
    plot.add_argument("--force", action="store_true", help="replace an existing --out file")
    plot.set_defaults(runner=run_plot)

    return parser


def _terminated(exc: BaseException) -> bool:
    """Whether an interrupt is, or was caused by, SIGTERM (the trainer re-raises an
    interrupt with the partial run attached, keeping the original as its cause)."""
    return signal_of(exc) == signal.SIGTERM


def _os_error_text(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk is full{where}; no complete output was written"
    return f"{exc.strerror or exc}{where}; no complete output was written"


class _ReaderGoneSafe:
    """``sys.stdout`` for one command, surviving the end of its reader.

    ``simcomp simulate | head -1`` closes the pipe while simcomp still
    prints its report (EPIPE), and ``> /dev/full`` fails its writes
    (ENOSPC): the command used to end there, in the middle of its work or
    with "no complete output was written" after its outputs were complete.
    The report is only a view of what is on disk: once it cannot be
    delivered, the rest goes to the null device, the command finishes its
    work, and the first failure, kept in :attr:`error`, is said in one line
    at the end.
    """

    def __init__(self, stream):
        self._stream = stream
        self.error: OSError | None = None

    def _reader_gone(self) -> None:
        # Later writes, and the interpreter's final flush, go to the null device: otherwise
        # Python prints "Exception ignored ... BrokenPipeError" at exit.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):  # no descriptor (a captured stream)
            pass

    def _failed(self, exc: OSError) -> None:
        if self.error is None:
            self.error = exc
        self._reader_gone()

    def write(self, text):
        try:
            return self._stream.write(text)
        except OSError as exc:
            self._failed(exc)
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            self._failed(exc)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``simcomp`` console script; returns the exit code.

    0: success.  1: the command ran but did not succeed: a run's loss turned
    non-finite (its outputs are saved), or the system failed it (disk full,
    out of memory, a write refused).  2: bad input, refused before any work
    (config, arguments, output path, resource limits).  130: interrupted
    (Ctrl-C); 143: terminated (SIGTERM); no complete output is written then
    and the hidden temporaries are removed.
    """
    stdout = sys.stdout
    safe = None if stdout is None else _ReaderGoneSafe(stdout)
    if safe is not None:
        sys.stdout = safe
    try:
        code = _main(argv)
        if safe is not None:
            safe.flush()
    finally:
        if safe is not None:
            sys.stdout = stdout
    if safe is not None and safe.error is not None:
        # The command ran to its end; only its report is lost: say so, not "nothing written".
        if isinstance(safe.error, BrokenPipeError):
            print("simcomp: error: the standard output was closed before the report was "
                  "complete (broken pipe); the files written are complete", file=sys.stderr)
        else:
            print(f"simcomp: error: standard output could not be written "
                  f"({_os_error_text(safe.error).split(';')[0]}); the report printed there is "
                  f"incomplete, the command itself ran to its end", file=sys.stderr)
        code = code or 1
    # A signal from here on (the interpreter's shutdown) must not say that nothing was written.
    command_ended(code)
    return code


def _environment_error() -> str | None:
    """What is wrong with the environment before numba is imported, or None.

    numba reads NUMBA_NUM_THREADS when it is imported: 0 or a negative number
    raised a ValueError traceback from inside numba, and text (``abc``, an
    empty value) printed numba's warning with a traceback of its own.
    """
    text = os.environ.get("NUMBA_NUM_THREADS")
    if text is None:
        return None
    value = text.strip()
    if not (value.isascii() and value.isdigit() and int(value) >= 1):
        return (f"NUMBA_NUM_THREADS={text!r} is not a positive integer: give the number of "
                f"threads numba may use (e.g. 2), or unset it (default: the number of cores)")
    return None


def _main(argv: list[str] | None = None) -> int:
    """The command itself, between parsing and exit (:func:`main`)."""
    problem = _environment_error()
    if problem is not None:
        print(f"simcomp: error: {problem}", file=sys.stderr)
        return 2
    parser = get_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "runner"):
        parser.print_help()
        return 2
    try:
        with guard(), warnings.catch_warnings():
            # Overflow in a diverging run is reported once, by the exit code and message.
            warnings.simplefilter("ignore", RuntimeWarning)
            return args.runner(args)
    except (ConfigError, OutputError, UsageError) as exc:
        print(f"simcomp: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        return _interrupted(signal_of(exc))
    except MemoryError:
        print("simcomp: error: out of memory; no complete output was written (the pre-flight "
              "limit is set by SIMCOMP_MEMORY_LIMIT, see docs/reliability.md)", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader of stdout went away (`simcomp simulate | head -1`). simulate prints
        # its report after renaming its directory into place, and every file is written
        # through a temporary and a rename, so whatever exists is complete.
        _drop_stdout()
        print("simcomp: error: the standard output was closed before the report was "
              "complete (broken pipe); the files written are complete", file=sys.stderr)
        return 1
    except OSError as exc:
        if raised_signal() is not None:
            return _interrupted(raised_signal())
        print(f"simcomp: error: {_os_error_text(exc)}", file=sys.stderr)
        return 1
    except Exception:
        # A signal raised inside a library (numba compiling a kernel) can leave it in a state
        # where the cleanup fails ("no compiled object yet"): still an interrupt, one line.
        if raised_signal() is not None:
            return _interrupted(raised_signal())
        raise


def _drop_stdout() -> None:
    """Point the process's stdout at /dev/null, so that flushing it at exit does not
    raise the broken pipe again (only for the real stdout, never a test's stand-in)."""
    if sys.stdout is not sys.__stdout__ or sys.stdout is None:
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _interrupted(signum: int) -> int:
    what = {signal.SIGTERM: "terminated (SIGTERM)",
            getattr(signal, "SIGHUP", -1): "hung up (SIGHUP)"}.get(signum, "interrupted")
    print(f"simcomp: {what}; no complete output was written", file=sys.stderr)
    return 128 + signum


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
