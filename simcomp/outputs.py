"""Output directories that appear whole or not at all, JSON that scripts can trust, provenance.

Everything is first written into a hidden sibling directory and renamed into
place at the end, so an interrupted command never leaves a directory that
looks complete, and an existing result is replaced only when asked to.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ._version import __version__

__all__ = [
    "OutputError",
    "DamagedOutputError",
    "provenance",
    "to_jsonable",
    "dumps_json",
    "write_text_atomic",
    "SIMULATE_FORMAT",
    "refuse_cwd_or_parent",
    "is_simcomp_output",
    "check_output_dir",
    "check_output_file",
    "AtomicDirectory",
]


class OutputError(RuntimeError):
    """An output path cannot be used (exists, not a directory, not writable)."""


class DamagedOutputError(OutputError, ValueError):
    """A simcomp output directory whose files are damaged, do not match, or are not simcomp's.

    Both an :class:`OutputError` (what ``simcomp.load`` has always raised)
    and a ``ValueError`` (bad input).
    """


def provenance() -> dict[str, Any]:
    """Versions and machine facts recorded in every output."""
    # Imported here, not at the top: the commands that write no output (config, theory, a
    # refused input) then never load numba; the ones that do have loaded it already.
    import numba

    return {
        "simcomp_version": __version__,
        "numpy_version": np.__version__,
        "numba_version": numba.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]) if sys.argv else "",
    }


def to_jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars and arrays unwrapped, NaN and infinities as null."""
    if isinstance(value, dict):
        return {str(key): to_jsonable(val) for key, val in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(val) for val in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def dumps_json(obj: Any) -> str:
    return json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | Path, text: str, fsync: bool = True) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename.

    The file gets the permissions of an ordinary new file (mkstemp's are
    owner-only).  ``fsync=False`` skips the flush to disk, for many small
    records where a lost one is simply recomputed.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


SIMULATE_FORMAT = "simcomp.simulate/1"
"""The ``format`` key of a ``simulate`` output's summary.json: simcomp's marker."""

# What a simulate output directory holds; --force replaces a directory only if
# it holds nothing else (besides a summary.json that is simcomp's).
_SIMULATE_ENTRIES = ("config.toml", "summary.json", "figures", "joint")
_SIMULATE_PREFIXES = ("unimodal-",)
_MARKER_MAX_BYTES = 64 << 20
# What simcomp writes inside them: a run directory holds its trace; figures/ the figure
# (and, after a killed `simcomp plot`, the hidden temporary of save_figure_atomic).
_RUN_FILES = ("trace.npz",)
# (total_weight.png: the figure of a fusion-engine run.)
_FIGURE_FILES = ("alignment.png", "total_weight.png")
_FIGURE_TEMPORARY = re.compile(r"\.(alignment|total_weight)\.png\.[A-Za-z0-9_]+\.partial\.png")


def _shown(path: str | Path) -> str:
    return repr(str(path))


def refuse_cwd_or_parent(path: str | Path, option: str = "--out") -> None:
    """Refuse the working directory, any directory above it, or the root as an output.

    Replacing such a directory would delete the place simcomp runs in (and
    everything the user keeps there), so it is refused whatever ``--force``.
    """
    try:
        resolved = Path(path).resolve()
        cwd = Path.cwd().resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop, a vanished cwd
        raise OutputError(f"{option} {_shown(path)}: cannot resolve the path ({exc})") from None
    if resolved == cwd or resolved in cwd.parents or resolved.parent == resolved:
        what = ("the working directory" if resolved == cwd
                else "a directory containing the working directory")
        raise OutputError(
            f"{option} {_shown(path)} is {what}; simcomp never replaces it (whatever --force): "
            "give a new subdirectory, e.g. --out simcomp-out"
        )


def is_simcomp_output(path: str | Path) -> bool:
    """Whether ``path`` is a directory a ``simcomp simulate`` wrote, and nothing else.

    Its summary.json must be a JSON object whose ``format`` is simcomp's (or,
    from simcomp versions before the marker, that carries ``simcomp_version``
    and ``runs``), and every entry must be one simcomp writes there
    (config.toml, summary.json, figures/alignment.png, joint/trace.npz,
    unimodal-*/trace.npz): a file of the user's anywhere in it makes it
    not simcomp's, so ``--force`` never deletes it.
    """
    return _foreign_reason(Path(path)) is None


def _foreign_reason(path: Path) -> str | None:
    """Why ``path`` is not a simcomp simulate output (None if it is one)."""
    summary = path / "summary.json"
    try:
        if summary.is_symlink() or not summary.is_file():
            return "it has no summary.json written by simcomp"
        if summary.stat().st_size > _MARKER_MAX_BYTES:
            return "its summary.json is too large to be simcomp's"
        content = json.loads(summary.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return "its summary.json is not one written by simcomp"
    if not isinstance(content, dict):
        return "its summary.json is not one written by simcomp"
    fmt = content.get("format")
    legacy = fmt is None and "simcomp_version" in content and isinstance(content.get("runs"), dict)
    if not (legacy or (isinstance(fmt, str) and fmt.startswith("simcomp.simulate/"))):
        return "its summary.json has no simcomp format key"
    try:
        entries = sorted(os.listdir(path))
    except OSError as exc:
        return f"it cannot be listed ({exc.strerror})"
    for name in entries:
        if name not in _SIMULATE_ENTRIES and not name.startswith(_SIMULATE_PREFIXES):
            return f"it holds {name!r}, which simcomp does not write"
        if name in ("config.toml", "summary.json"):
            continue
        # figures/, joint/ and unimodal-*/ are replaced whole by --force: every file in them
        # must be one simcomp writes there, or the user's file would be deleted with them.
        inner = path / name
        if inner.is_symlink() or not inner.is_dir():
            return f"it holds {name!r}, which is not a directory simcomp wrote"
        allowed = _FIGURE_FILES if name == "figures" else _RUN_FILES
        try:
            children = sorted(os.listdir(inner))
        except OSError as exc:
            return f"{name!r} cannot be listed ({exc.strerror})"
        for child in children:
            full = inner / child
            ours = child in allowed or (name == "figures" and _FIGURE_TEMPORARY.fullmatch(child))
            if not ours or full.is_symlink() or not full.is_file():
                return f"it holds {name + '/' + child!r}, which simcomp does not write"
    return None


def _unremovable(path: Path) -> str | None:
    """A directory inside ``path`` whose entries cannot be deleted (None if all can)."""
    for root, _dirs, _files in os.walk(path, onerror=None):
        if not os.access(root, os.W_OK | os.X_OK):
            return root
    return None


def check_output_dir(path: str | Path, force: bool) -> Path:
    """Check a ``simulate`` output directory before any work; return it as a Path.

    Refused (:class:`OutputError`): a symbolic link, a file, the working
    directory or one of its parents, a non-empty directory that is not a
    simcomp output (whatever ``force``), a simcomp output without ``force``,
    one whose contents could not be deleted, and a missing or read-only
    parent.
    """
    path = Path(path)
    refuse_cwd_or_parent(path)
    if path.is_symlink():
        raise OutputError(
            f"--out {_shown(path)} is a symbolic link; simcomp does not replace links: give the "
            "directory itself (or a new path)"
        )
    if path.exists() and not path.is_dir():
        raise OutputError(f"output path {_shown(path)} exists and is not a directory")
    if path.is_dir():
        try:
            empty = not any(path.iterdir())
        except OSError as exc:
            raise OutputError(
                f"cannot list output directory {_shown(path)}: {exc.strerror}") from None
        if not empty:
            reason = _foreign_reason(path)
            if reason is not None:
                raise OutputError(
                    f"output directory {_shown(path)} is not empty and is not a simcomp output "
                    f"({reason}); simcomp replaces only its own outputs, even with --force: "
                    "choose another --out"
                )
            if not force:
                raise OutputError(
                    f"output directory {_shown(path)} exists and is not empty; "
                    "choose another --out or pass --force to replace it"
                )
            stuck = _unremovable(path)
            if stuck is not None:
                raise OutputError(
                    f"--force cannot replace {_shown(path)}: {_shown(stuck)} is not writable, so "
                    "its contents could not be deleted; nothing was changed"
                )
    parent = path.absolute().parent
    if not parent.is_dir():
        raise OutputError(
            f"cannot create {_shown(path)}: parent directory {_shown(parent)} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot create {_shown(path)}: {_shown(parent)} is not writable")
    return path


def check_output_file(path: str | Path, force: bool, option: str,
                      suffix: str | None = None) -> Path:
    """Check a single output file (``config --out``, ``theory --plot``) before any work.

    Refused: a directory or a symbolic link (whatever ``force``), an existing
    file without ``force``, a missing or read-only parent directory, and a
    name not ending in ``suffix`` when one is given.
    """
    path = Path(path)
    if path.is_symlink():
        raise OutputError(f"{option} {_shown(path)} is a symbolic link; give a plain file path")
    if path.is_dir():
        raise OutputError(f"{option} {_shown(path)} is a directory; give a file path")
    if suffix is not None and path.suffix.lower() != suffix:
        raise OutputError(f"{option} {_shown(path)}: the file name must end in {suffix}")
    if path.exists() and not path.is_file():
        raise OutputError(f"{option} {_shown(path)} exists and is not a regular file")
    if path.exists() and not force:
        raise OutputError(f"{option} {_shown(path)} exists; choose another file or pass --force")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise OutputError(f"{option} {_shown(path)}: directory {_shown(parent)} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {_shown(path)}: directory {_shown(parent)} is not writable")
    return path


class AtomicDirectory:
    """A directory built in a temporary sibling and renamed into place on :meth:`commit`.

    Use as a context manager; leaving the block without commit (an error, a
    Ctrl-C, a SIGTERM turned into an exception by the CLI) removes the
    temporary directory, and a previous result at the target survives
    untouched until the new one is complete.  The target is checked by
    :func:`check_output_dir` on entry and again at commit.
    """

    def __init__(self, target: str | Path, force: bool = False):
        self.target = check_output_dir(target, force)
        self.force = force
        parent = self.target.absolute().parent
        try:
            self.path = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.partial-", dir=parent))
        except OSError as exc:
            raise OutputError(f"cannot create a directory next to {_shown(self.target)}: "
                              f"{exc.strerror}") from None
        self.committed = False

    def __enter__(self) -> "AtomicDirectory":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.committed:
            shutil.rmtree(self.path, ignore_errors=True)

    def commit(self) -> Path:
        """Move the finished directory to its target, replacing an old one only if forced.

        The old result is moved aside and deleted before the new one takes
        its place; if it cannot be deleted completely, what is left of it
        goes back to the target, no ``.NAME.old-*`` remains, and
        :class:`OutputError` says so.
        """
        check_output_dir(self.target, self.force)
        os.chmod(self.path, 0o777 & ~_umask())  # mkdtemp's directory is owner-only
        if self.target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.old-", dir=self.path.parent))
            os.rmdir(old)
            os.replace(self.target, old)
            try:
                shutil.rmtree(old)
            except OSError as exc:
                os.replace(old, self.target)
                raise OutputError(
                    f"--force could not delete the old output {_shown(self.target)} "
                    f"({exc.strerror or exc}: {exc.filename}); what is left of it stays there and "
                    "the new result was not saved"
                ) from None
        os.replace(self.path, self.target)
        self.committed = True
        return self.target
