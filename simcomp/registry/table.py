"""The table of methods in docs/methods.md, generated from the registry.

``python -m simcomp.registry.table`` prints it; ``--write PATH`` replaces the
table between its markers in PATH (tests/test_registry.py checks that
docs/methods.md holds exactly this table).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import REGISTRY
from .spec import Setting

__all__ = ["methods_table", "BEGIN", "END"]

BEGIN, END = "<!-- BEGIN methods table (python -m simcomp.registry.table) -->", \
    "<!-- END methods table -->"


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


def write(path: Path) -> None:
    page = path.read_text()
    if BEGIN not in page or END not in page:
        raise SystemExit(f"{path} has no methods-table markers")
    head, rest = page.split(BEGIN, 1)
    page = head + methods_table() + rest.split(END, 1)[1]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(page)
    tmp.replace(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", type=Path, help="replace the table in this markdown file")
    args = parser.parse_args(argv)
    if args.write:
        write(args.write)
    else:
        print(methods_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
