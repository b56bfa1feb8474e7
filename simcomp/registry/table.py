"""The table of methods in docs/methods.md, generated from the registry.

``python -m simcomp.registry.table`` prints it; ``--write PATH`` replaces the
table between its markers in PATH (tests/test_registry.py checks that
docs/methods.md holds exactly this table).  ``--calibration`` does the same for the
table of ``simcomp calibrate``'s main parameters in docs/calibration.md
(tests/test_methods_more.py checks it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import REGISTRY
from .spec import Setting

__all__ = ["methods_table", "calibration_table", "BEGIN", "END", "CAL_BEGIN", "CAL_END"]

BEGIN, END = "<!-- BEGIN methods table (python -m simcomp.registry.table) -->", \
    "<!-- END methods table -->"
CAL_BEGIN = "<!-- BEGIN calibration table (python -m simcomp.registry.table --calibration) -->"
CAL_END = "<!-- END calibration table -->"


def _default(s: Setting) -> str:
    if s.kind == "stop":
        return "never"
    if s.kind == "steps":
        return "train.steps"
    if s.kind == "count":
        return "see its section"
    if s.kind == "modality":
        return f"all {s.default:g}"
    if s.kind == "bool":
        return "true" if s.default else "false"
    return f"{s.default:g}"


def _bounds(s: Setting) -> str:
    if s.lo is None and s.hi is None:
        return ""
    if s.hi is None:
        return f" {'>' if s.lo_open else '>='} {s.lo:g}"
    return f" in {'(' if s.lo_open else '['}{s.lo:g}, {s.hi:g}{')' if s.hi_open else ']'}"


def methods_table() -> str:
    """The markdown table: every method, its keys (bounds, default) and flags, its source."""
    lines = [BEGIN, "| method | keys (default) | flags | source (published default) |",
             "|---|---|---|---|"]
    for name, spec in REGISTRY.items():
        keys = ", ".join(f"`{s.key}`{_bounds(s)}"
                         f"{' per modality' if s.kind == 'modality' else ''}"
                         f"{' (one or per modality)' if s.kind == 'either' else ''}"
                         f" ({_default(s)})" for s in spec.settings) or "--"
        flags = ", ".join(f for f, on in (("analogue", spec.analogue),
                                          ("stochastic", spec.stochastic),
                                          ("no joint run", not spec.trains_joint),
                                          ("expected-update theory", not spec.exact_reduction))
                          if on) or "--"
        lines.append(f"| `{name}` | {keys} | {flags} | {spec.source} ({spec.published_default}) |")
    lines.append(END)
    return "\n".join(lines)


def calibration_table() -> str:
    """The markdown table of calibrate's methods: main parameter, given value, grid, or why not."""
    lines = [CAL_BEGIN, '| method | main parameter | default ("given") | grid for "best" | '
             'where the default comes from |', "|---|---|---|---|---|"]
    for name, spec in REGISTRY.items():
        c = spec.calibration
        if c is None:
            continue
        shown = f"`{name}`" + (" (an analogue)" if spec.analogue else "")
        if c.refused:
            lines.append(f"| {shown} | not predicted: {c.refused} | | | |")
            continue
        if c.param is None:
            lines.append(f"| {shown} | none | -- | -- | {c.note or '--'} |")
            continue
        param = f"`{c.param}`" + (" (+ `start`)" if c.has_start else "")
        grid = ", ".join(f"{v:g}" for v in c.grid)
        lines.append(f"| {shown} | {param} | {c.given:g} | {grid} | {c.note} |")
    lines.append(CAL_END)
    return "\n".join(lines)


def write(path: Path, calibration: bool = False) -> None:
    begin, end = (CAL_BEGIN, CAL_END) if calibration else (BEGIN, END)
    table = calibration_table() if calibration else methods_table()
    page = path.read_text()
    if begin not in page or end not in page:
        raise SystemExit(f"{path} has no {'calibration' if calibration else 'methods'}-table "
                         f"markers")
    head, rest = page.split(begin, 1)
    page = head + table + rest.split(end, 1)[1]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(page)
    tmp.replace(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", type=Path, help="replace the table in this markdown file")
    parser.add_argument("--calibration", action="store_true",
                        help="the table of calibrate's main parameters (docs/calibration.md)")
    args = parser.parse_args(argv)
    if args.write:
        write(args.write, calibration=args.calibration)
    else:
        print(calibration_table() if args.calibration else methods_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
