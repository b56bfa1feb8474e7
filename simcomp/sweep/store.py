"""The sweep directory: sweep.json, one checksummed record per run, results.csv, a lock.

Records are written through a temporary file and a rename, so a killed sweep
leaves only whole records; each carries a SHA-256 checksum of its content,
and a record that fails it (edited, damaged) is recomputed, never trusted.
``--force`` replaces only a sweep that simcomp wrote (a ``sweep.json`` with
a ``format`` key) and deletes nothing before it knows it can write there.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable

from ..outputs import OutputError, dumps_json, write_text_atomic
from ..columns import csv_cell
from .plan import SweepPlan, SweepRun, _canonical_json

__all__ = ["FORMAT_VERSION", "Store", "record_checksum", "results_text", "read_results"]

# A run record is <16 hex digits>.json; write_text_atomic's temporaries are .<name>.<random>.tmp.
_RECORD_NAME = re.compile(r"[0-9a-f]{16}\.json")
_TEMP_NAME = re.compile(r"\.[0-9a-f]{16}\.json\.[A-Za-z0-9_]+\.tmp")

# 2: result columns named as in summary.json, modality settings, checksummed records.
FORMAT_VERSION = 2


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.update(_flatten(value, f"{prefix}{key}."))
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            out.update(_flatten(value, f"{prefix}{index}."))
    else:
        out[prefix[:-1]] = obj
    return out


def _comparable(definition: dict[str, Any]) -> dict[str, Any]:
    """The parts of a definition that decide the runs (not the grid text, not train.threads)."""
    base = json.loads(json.dumps(definition.get("base_config")))
    if isinstance(base, dict) and isinstance(base.get("train"), dict):
        base["train"].pop("threads", None)
    return {
        "base_config": base,
        "grids": [[g.get("key"), g.get("values")] for g in definition.get("grids", [])],
        "seeds": definition.get("seeds"),
        "seed_rule": definition.get("seed_rule"),
        "paired": definition.get("paired", []),
    }


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable differences between two comparable definitions (stored vs. now)."""
    out = []
    if old["seeds"] != new["seeds"]:
        out.append(f"--seeds {old['seeds']} (stored) vs {new['seeds']} (now)")
    old_keys = [g[0] for g in old["grids"]]
    new_keys = [g[0] for g in new["grids"]]
    if old_keys != new_keys:
        out.append(f"grid keys {', '.join(old_keys) or '(none)'} (stored) vs "
                   f"{', '.join(new_keys) or '(none)'} (now)")
    else:
        for (key, old_vals), (_, new_vals) in zip(old["grids"], new["grids"]):
            # a grid may grow: new values are computed, the stored ones kept
            kept = [json.dumps(v, sort_keys=True) for v in new_vals or []]
            lost = [v for v in old_vals or [] if json.dumps(v, sort_keys=True) not in kept]
            if lost:
                out.append(f"grid {key} values {old_vals} (stored) vs {new_vals} (now): "
                           f"{lost} would be dropped (a grid may only grow)")
    if old.get("paired", []) != new.get("paired", []):
        out.append(f"paired keys {old.get('paired', [])} (stored) vs {new.get('paired', [])} "
                   f"(now)")
    if old["base_config"] != new["base_config"]:
        flat_old, flat_new = _flatten(old["base_config"]), _flatten(new["base_config"])
        for key in sorted(set(flat_old) | set(flat_new)):
            if flat_old.get(key, "(unset)") != flat_new.get(key, "(unset)"):
                out.append(f"base config {key} = {flat_old.get(key, '(unset)')!r} (stored) vs "
                           f"{flat_new.get(key, '(unset)')!r} (now)")
    if old["seed_rule"] != new["seed_rule"]:
        out.append("the seed derivation rule (the directory was made by another simcomp version)")
    return out


def record_checksum(record: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of a record without its ``checksum`` key."""
    body = {key: value for key, value in record.items() if key != "checksum"}
    return hashlib.sha256(_canonical_json(body).encode("utf-8")).hexdigest()


def _checksum_or_none(record: dict[str, Any]) -> str | None:
    """:func:`record_checksum`, or None for a record that cannot be hashed (a damaged one)."""
    try:
        return record_checksum(record)
    except (TypeError, ValueError, RecursionError):
        return None


def _io_error(what: str, path: Path, exc: OSError) -> OutputError:
    return OutputError(f"cannot {what} {str(path)!r}: {exc.strerror or exc}")


class Store:
    """The sweep directory: sweep.json, runs/<run_id>.json records, results.csv, a lock."""

    SWEEP_JSON = "sweep.json"
    RESULTS = "results.csv"
    RUNS = "runs"
    LOCK = ".simcomp-sweep.lock"

    def __init__(self, path: Path):
        self.path = path
        self.runs_dir = path / self.RUNS
        self._lock_handle = None

    # ---- opening

    @classmethod
    def open(cls, path: str | Path, plan: SweepPlan, force: bool) -> "Store":
        """Check DIR against the plan and lock it; with ``force`` remove the old sweep's files.

        Refused (:class:`OutputError`): a path that is not a directory, a
        non-empty directory without simcomp's sweep.json (whatever ``force``),
        a different sweep (unless ``force``), a ``runs`` that is not a
        directory, a directory simcomp cannot write to.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise OutputError(f"output path {str(path)!r} exists and is not a directory")
        parent = path.absolute().parent
        if not parent.is_dir():
            raise OutputError(f"cannot create {str(path)!r}: parent directory {str(parent)!r} "
                              f"does not exist")
        store = cls(path)
        sweep_json = path / cls.SWEEP_JSON
        stored = None
        if path.is_dir() and (path / cls.LOCK).exists():
            # Lock first: a sweep that is just starting here (its runs/ made, its sweep.json
            # not yet written) must give the lock message, not look like a foreign directory.
            store._lock()
        if path.is_dir():
            try:
                stored = store._read_sweep_json()
                foreign = [p.name for p in path.iterdir() if p.name != cls.LOCK]
            except OSError as exc:
                store.close()
                raise _io_error("read", path, exc) from None
            except BaseException:
                store.close()
                raise
            if stored is None and foreign:
                store.close()
                raise OutputError(
                    f"output directory {str(path)!r} is not empty and holds no simcomp sweep (no "
                    f"sweep.json of simcomp's); simcomp writes a sweep only into a new or empty "
                    f"directory or its own sweep directory, even with --force: choose another --out"
                )
        try:
            path.mkdir(exist_ok=True)
        except OSError as exc:
            raise _io_error("create", path, exc) from None
        if store._lock_handle is None:
            store._lock()
        try:
            if store.runs_dir.is_symlink() or (store.runs_dir.exists()
                                               and not store.runs_dir.is_dir()):
                raise OutputError(f"{str(store.runs_dir)!r} exists and is not a directory; "
                                  f"simcomp keeps the run records there: move it away")
            if stored is not None and not force:
                new = _comparable(json.loads(dumps_json(plan.definition())))
                diffs = _differences(stored, new)
                if diffs:
                    shown = "; ".join(diffs[:4]) + ("; ..." if len(diffs) > 4 else "")
                    raise OutputError(
                        f"{str(path)!r} holds a different sweep: {shown}. Choose another --out, "
                        f"or pass --force to delete its runs and start over"
                    )
            store._check_writable()
            if force and stored is not None:
                cwd = Path.cwd().resolve()
                runs = store.runs_dir.resolve()
                if cwd == runs or runs in cwd.parents:
                    raise OutputError(f"--force would delete {str(store.runs_dir)!r}, which holds "
                                      f"the working directory; run from elsewhere")
                records = store._own_records()
                try:
                    for record in records:
                        record.unlink(missing_ok=True)
                    (path / cls.RESULTS).unlink(missing_ok=True)
                    sweep_json.unlink(missing_ok=True)
                except OSError as exc:
                    raise _io_error("delete the old runs in", path, exc) from None
            try:
                store.runs_dir.mkdir(exist_ok=True)
                for tmp in store.runs_dir.glob(".*.tmp"):  # left by a process killed mid-write
                    if _TEMP_NAME.fullmatch(tmp.name):
                        tmp.unlink(missing_ok=True)
            except OSError as exc:
                raise _io_error("write to", store.runs_dir, exc) from None
        except BaseException:
            store.close()
            raise
        return store

    def _read_sweep_json(self) -> dict[str, Any] | None:
        """The comparable definition of simcomp's sweep.json in DIR; None when there is none.

        A sweep.json that is not simcomp's (no ``format`` key, not JSON) is
        refused: it may be the user's.
        """
        sweep_json = self.path / self.SWEEP_JSON
        if not sweep_json.exists() and not sweep_json.is_symlink():
            return None
        try:
            if not sweep_json.is_file():  # a FIFO would block, a directory is not simcomp's
                raise ValueError("not a regular file")
            content = json.loads(sweep_json.read_text(encoding="utf-8"))
            if not isinstance(content, dict) or "format" not in content:
                raise ValueError("no format key")
            comparable = _comparable(content["definition"])
            if not all(isinstance(key, str) and isinstance(values, list)
                       for key, values in comparable["grids"]):
                raise ValueError("a grid axis without a key or values")
            return comparable
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            raise OutputError(
                f"{str(sweep_json)!r} is not a sweep.json written by simcomp; simcomp leaves the "
                f"directory alone (even with --force): choose another --out"
            ) from None

    def _own_records(self) -> list[Path]:
        """The files in runs/ that simcomp wrote (records and their temporaries), for --force.

        Anything else there (a file of the user's, a subdirectory, a link) is
        refused before anything is deleted: --force never deletes what
        simcomp did not write.
        """
        if not self.runs_dir.is_dir():
            return []
        try:
            entries = sorted(self.runs_dir.iterdir())
        except OSError as exc:
            raise _io_error("read", self.runs_dir, exc) from None
        for entry in entries:
            if (entry.is_symlink() or not entry.is_file()
                    or not (_RECORD_NAME.fullmatch(entry.name) or _TEMP_NAME.fullmatch(entry.name))):
                raise OutputError(
                    f"{str(entry)!r} was not written by simcomp; --force deletes only simcomp's "
                    f"run records and leaves the directory alone: move that file away, or "
                    f"choose another --out"
                )
        return entries

    def _check_writable(self) -> None:
        # Before --force deletes anything: a directory we cannot write to keeps its records.
        for where in (self.path, self.runs_dir):
            if not where.is_dir():
                continue
            try:
                fd, probe = tempfile.mkstemp(prefix=".simcomp-probe.", dir=where)
                os.close(fd)
                os.unlink(probe)
            except OSError as exc:
                raise _io_error("write to", where, exc) from None

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on POSIX
            return
        try:
            handle = open(self.path / self.LOCK, "a+")
        except OSError as exc:
            raise _io_error("write to", self.path, exc) from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise OutputError(
                f"another simcomp sweep is writing to {str(self.path)!r}; wait for it or choose "
                f"another --out"
            ) from None
        self._lock_handle = handle

    def close(self) -> None:
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None

    # ---- records

    def record_path(self, rid: str) -> Path:
        return self.runs_dir / f"{rid}.json"

    def load(self, run: SweepRun, log: Callable[[str], None] | None = None
             ) -> dict[str, Any] | None:
        """The record of a finished run, or None (missing, unreadable or tampered: run it again)."""
        path = self.record_path(run.run_id)
        try:
            if path.exists() and not path.is_file():  # a FIFO would block: recompute, replace
                raise ValueError("not a regular file")
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            record = None
        problem = None
        if not isinstance(record, dict):
            problem = "cannot be read"
        elif record.get("format") != FORMAT_VERSION:
            problem = "was written by another simcomp version"
        elif record.get("checksum") != _checksum_or_none(record):
            problem = "fails its checksum (edited or damaged)"
        elif record.get("run_id") != run.run_id or not isinstance(record.get("row"), dict):
            problem = "does not belong to this run"
        if problem is not None:
            if log is not None:
                log(f"record {self.RUNS}/{path.name} {problem}; recomputing that run")
            return None
        return record

    def write(self, run: SweepRun, row: dict[str, Any]) -> dict[str, Any]:
        record = json.loads(dumps_json({
            "format": FORMAT_VERSION,
            "run_id": run.run_id,
            "point": dict(run.point),
            "repeat": run.repeat,
            "seed": run.seed,
            "config": run.cfg.to_dict(),
            "row": row,
        }))  # exactly what a later invocation will read back
        record["checksum"] = record_checksum(record)
        self._write(self.record_path(run.run_id), dumps_json(record))
        return record

    def _write(self, path: Path, text: str) -> None:
        try:
            write_text_atomic(path, text)
        except OSError as exc:
            raise _io_error("write", path, exc) from None

    def write_sweep_json(self, content: dict[str, Any]) -> None:
        self._write(self.path / self.SWEEP_JSON, dumps_json(content))

    def write_results(self, text: str) -> None:
        self._write(self.path / self.RESULTS, text)

    def remove_results(self) -> None:
        try:
            (self.path / self.RESULTS).unlink(missing_ok=True)
        except OSError as exc:
            raise _io_error("delete", self.path / self.RESULTS, exc) from None


# --------------------------------------------------------------------------- results.csv


def results_text(plan: SweepPlan, rows: dict[str, dict[str, Any]]) -> str:
    """results.csv from the recorded rows (by run id), in plan order."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(plan.columns)
    result_cols = plan.result_columns
    for run in plan.runs:
        row = rows[run.run_id]
        cells = [csv_cell(v) for _, v in run.point] + [csv_cell(run.repeat), csv_cell(run.seed)]
        cells += [csv_cell(row.get(col)) for col in result_cols]
        writer.writerow(cells)
    return buf.getvalue()


def read_results(path: str | Path) -> list[dict[str, str]]:
    """results.csv as a list of dicts of strings (empty string = None)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
