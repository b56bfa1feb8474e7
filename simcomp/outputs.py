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
import shutil
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numba
import numpy as np

from ._version import __version__

__all__ = [
    "OutputError",
    "provenance",
    "to_jsonable",
    "dumps_json",
    "write_text_atomic",
    "AtomicDirectory",
]


class OutputError(RuntimeError):
    """An output path cannot be used (exists, not a directory, not writable)."""


def provenance() -> dict[str, Any]:
    """Versions and machine facts recorded in every output."""
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


def check_output_dir(path: str | Path, force: bool) -> Path:
    """Refuse a path that holds something unless ``force``; never accept a file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"output path {str(path)!r} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise OutputError(
            f"output directory {str(path)!r} exists and is not empty; "
            "choose another --out or pass --force to replace it"
        )
    parent = path.absolute().parent
    if not parent.is_dir():
        raise OutputError(f"cannot create {str(path)!r}: parent directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot create {str(path)!r}: {str(parent)!r} is not writable")
    return path


class AtomicDirectory:
    """A directory built in a temporary sibling and renamed into place on :meth:`commit`.

    Use as a context manager; leaving the block without commit (an error, a
    Ctrl-C) removes the temporary directory, and a previous result at the
    target survives untouched until the new one is complete.
    """

    def __init__(self, target: str | Path, force: bool = False):
        self.target = check_output_dir(target, force)
        self.force = force
        parent = self.target.absolute().parent
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.partial-", dir=parent))
        self.committed = False

    def __enter__(self) -> "AtomicDirectory":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.committed:
            shutil.rmtree(self.path, ignore_errors=True)

    def commit(self) -> Path:
        """Move the finished directory to its target, replacing an old one only if forced."""
        check_output_dir(self.target, self.force)
        os.chmod(self.path, 0o777 & ~_umask())  # mkdtemp's directory is owner-only
        old = None
        if self.target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.old-", dir=self.path.parent))
            os.rmdir(old)
            os.replace(self.target, old)
        os.replace(self.path, self.target)
        self.committed = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.target
