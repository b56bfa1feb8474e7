"""Mutation testing of simcomp: a curated list of plausible bugs, the suite run against each.

Each mutant is one small, plausible bug (a comparison turned, an index
slipped, a cast dropped, a stream swapped) written as an exact snippet of a
source file and its replacement.  For every mutant the script

1. copies the repository (this checkout, as it is on disk: sources, tests,
   docs) once per job slot into a scratch directory, never touching the
   working tree;
2. applies the mutant there (the snippet must occur exactly once; a snippet
   that is not found, or found more than once, makes the mutant *stale*: it is
   not run, not counted, named on stderr and in the report, and the script
   exits with status 1 -- a stale mutant is a broken check, never a pass;
   update its text after a refactoring);
3. drops the numba cache entries that could hold the mutated code or code
   compiled against it (see below);
4. runs ``pytest -x`` on the test files most related to the mutated module
   and, if they all pass, the whole suite; the mutant is *killed* when a
   test fails (or the run times out: a hang is a detected bug), *survived*
   when the whole suite passes;
5. restores the file.

Why a curated list and not mutmut or cosmic-ray: both rewrite a module and
run the tests in place, and numba's on-disk cache does not notice that a
callee in another file changed (a cached caller keeps the old callee
compiled into it), so a mutant in a kernel would silently run the unmutated
code and "survive".  Here every slot has its own ``NUMBA_CACHE_DIR``; before
and after each mutant the cache entries of the mutated file and of every
simcomp module that imports it (transitively) are deleted, so that they are
compiled from the mutated source during the run and from the restored
source afterwards.  Entries of unrelated modules stay warm.

Usage (from the repository root)::

    python benchmarks/mutation.py            # everything; writes docs/testing.md
    python benchmarks/mutation.py --list     # the mutants and whether they apply
    python benchmarks/mutation.py --only ID [--only ID ...]
    python benchmarks/mutation.py --jobs 2   # two mutants at a time
    python benchmarks/mutation.py --quick    # related tests only (no whole-suite pass)

Every run without --only writes docs/testing.md (saying whether it was --quick).
The mutants themselves are listed in ``benchmarks/mutants.py``; the page is
written by ``benchmarks/mutation_report.py``.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures as cf
import hashlib
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "testing.md"

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutants import EQUIVALENT, MUTANTS, Mutant  # noqa: E402
from mutation_report import Outcome, render  # noqa: E402


# --------------------------------------------------------------------------- applying


def status_of(mutant: Mutant, root: Path = ROOT) -> str:
    """'ok' when the snippet occurs exactly once, else 'stale (...)'."""
    path = root / mutant.file
    if not path.exists():
        return "stale (file missing)"
    count = path.read_text(encoding="utf-8").count(mutant.old)
    if count == 1:
        return "ok"
    return "stale (snippet not found)" if count == 0 else f"stale (snippet found {count} times)"


def stale_report(chosen: list[Mutant], root: Path = ROOT) -> dict[str, Outcome]:
    """The stale mutants among ``chosen`` and the equivalent ones, as outcomes; each is
    named on stderr as an error."""
    out = {}
    for mut in chosen + [m for m, _ in EQUIVALENT]:
        status = status_of(mut, root)
        if status != "ok":
            kind = "equivalent mutant" if mut not in chosen else "mutant"
            print(f"mutation.py: error: {kind} {mut.id} is {status} in {mut.file}; "
                  "update its text in benchmarks/mutants.py", file=sys.stderr)
            out[mut.id] = Outcome(mut, "stale", status)
    return out


def _module_of(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """simcomp module -> the simcomp modules it imports (absolute and relative imports)."""
    graph: dict[str, set[str]] = {}
    files = {_module_of(p, root): p for p in (root / "simcomp").rglob("*.py")}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        package = mod if is_pkg else mod.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            deps.update(n for n in names if n in files)
        graph[mod] = deps - {mod}
    return graph


def affected_stems(rel: str, root: Path) -> set[tuple[str, str]]:
    """(directory name, file stem) of the mutated module and everything importing it."""
    graph = import_graph(root)
    target = _module_of(root / rel, root)
    hit, changed = {target}, True
    while changed:
        changed = False
        for mod, deps in graph.items():
            if mod not in hit and deps & hit:
                hit.add(mod)
                changed = True
    out = set()
    for mod in hit:
        parts = mod.split(".")
        path = root.joinpath(*parts)
        if path.is_dir():
            out.add((parts[-1], "__init__"))
        else:
            out.add((parts[-2], parts[-1]))
    return out


def drop_cache(cache: Path, stems: set[tuple[str, str]]) -> int:
    """Delete numba cache files of the given (directory, stem) pairs; returns how many.

    numba names a cache subdirectory ``<source dir name>_<hash of its path>`` and
    the files in it ``<file stem>.<function>-<line>.py<ver>.nb[ic]``.
    """
    removed = 0
    if not cache.exists():
        return 0
    for sub in cache.rglob("*"):
        if not sub.is_file() or sub.suffix not in (".nbi", ".nbc"):
            continue
        dirname = sub.parent.name.rpartition("_")[0]
        stem = sub.name.split(".", 1)[0]
        if (dirname, stem) in stems:
            sub.unlink()
            removed += 1
    return removed


def _tree_files(root: Path) -> dict[str, Path]:
    skip = {".git", "__pycache__", ".pytest_cache", ".hypothesis", "build", "dist"}
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip and not d.endswith(".egg-info")]
        for name in filenames:
            if name.endswith((".nbi", ".nbc", ".pyc")):
                continue
            path = Path(dirpath) / name
            out[path.relative_to(root).as_posix()] = path
    return out


def sync_tree(src: Path, dst: Path) -> list[str]:
    """Make ``dst`` a copy of ``src`` (modification times kept); returns the changed paths."""
    want, have = _tree_files(src), (_tree_files(dst) if dst.exists() else {})
    changed = []
    for rel, path in want.items():
        target = dst / rel
        if rel in have and have[rel].read_bytes() == path.read_bytes():
            if have[rel].stat().st_mtime_ns != path.stat().st_mtime_ns:
                shutil.copystat(path, target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        changed.append(rel)
    for rel in set(have) - set(want):
        have[rel].unlink()
        changed.append(rel)
    return changed


class Slot:
    """A scratch copy of the repository with its own numba cache.

    The copy and the cache persist between invocations (in ``--scratch``), so
    a second run does not compile everything again: at start the copy is
    synchronised with this checkout, and the cache entries of every simcomp
    module that changed (and of its importers) are deleted.
    """

    def __init__(self, base: Path, index: int):
        self.dir = base / f"slot{index}"
        self.repo = self.dir / "repo"
        self.cache = self.dir / "numba-cache"
        self.cache.mkdir(parents=True, exist_ok=True)
        changed = sync_tree(ROOT, self.repo)
        stems: set[tuple[str, str]] = set()
        for rel in changed:
            if rel.startswith("simcomp/") and rel.endswith(".py"):
                if (self.repo / rel).exists():
                    stems |= affected_stems(rel, self.repo)
                else:  # a removed module: drop its own entries
                    parts = Path(rel).with_suffix("").parts
                    stems.add((parts[-2], parts[-1]))
        if stems:
            drop_cache(self.cache, stems)

    def env(self) -> dict:
        env = dict(os.environ, NUMBA_CACHE_DIR=str(self.cache), PYTHONDONTWRITEBYTECODE="1",
                   PYTHONHASHSEED="0")
        env.pop("PYTHONPATH", None)
        return env

    def pytest(self, files, timeout: float) -> tuple[int, str, float]:
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
               "-o", "addopts=-rf", *files]
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=self.repo, env=self.env(), capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return -1, f"timed out after {timeout:.0f} s", time.perf_counter() - start
        return proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - start


def _first_failure(output: str) -> str:
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" - ")[0].split(" ", 1)[1]
    tail = [line for line in output.splitlines() if line.strip()][-1:]
    return tail[0][:120] if tail else "no output"


def run_mutant(slot: Slot, mutant: Mutant, quick: bool, timeout: float) -> Outcome:
    status = status_of(mutant, slot.repo)
    if status != "ok":
        return Outcome(mutant, "stale", status)
    path = slot.repo / mutant.file
    original = path.read_text(encoding="utf-8")
    stat = path.stat()
    stems = affected_stems(mutant.file, slot.repo)
    start = time.perf_counter()
    try:
        drop_cache(slot.cache, stems)
        path.write_text(original.replace(mutant.old, mutant.new, 1), encoding="utf-8")
        if mutant.timeout is not None:
            timeout = min(timeout, mutant.timeout)
        code, out, _ = slot.pytest(mutant.tests, timeout)
        phase = "related"
        if code == 0 and not quick:
            code, out, _ = slot.pytest([], timeout)
            phase = "full"
        seconds = time.perf_counter() - start
        if code == 0:
            return Outcome(mutant, "survived", "", phase, seconds)
        if code == -1:
            return Outcome(mutant, "killed", out, phase, seconds)
        if code in (1,):
            return Outcome(mutant, "killed", _first_failure(out), phase, seconds)
        # 2-5: interrupted, internal error, usage error, no tests: a broken run, not a kill
        if "error" in out.lower() and code == 2:
            return Outcome(mutant, "killed", "collection error: " + _first_failure(out),
                           phase, seconds)
        return Outcome(mutant, "error", f"pytest exit {code}: {_first_failure(out)}", phase,
                       seconds)
    finally:
        path.write_text(original, encoding="utf-8")
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        drop_cache(slot.cache, stems)


def tree_digest(root: Path, prefix: str) -> str:
    """SHA-256 over the files under ``prefix`` (paths and contents)."""
    h = hashlib.sha256()
    for rel, path in sorted(_tree_files(root).items()):
        if rel.startswith(prefix):
            h.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def mutant_key(m: Mutant) -> str:
    """What identifies a mutant's code change (its test list is only an order hint)."""
    return hashlib.sha256(repr((m.file, m.old, m.new)).encode()).hexdigest()[:16]


def load_journal(path: Path, src: str, tests: str, quick: bool) -> dict[str, Outcome]:
    """Outcomes recorded by earlier runs that still hold for this source and these tests.

    A kill stands while simcomp/ is unchanged (tests are only ever added); a
    survival only while the tests are unchanged too, and a --quick survival only
    for another --quick run.
    """
    by_id = {m.id: m for m in MUTANTS}
    found: dict[str, Outcome] = {}
    if not path.exists():
        return found
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        m = by_id.get(e.get("id"))
        if m is None or e.get("key") != mutant_key(m) or e.get("src") != src:
            continue
        if e["result"] == "killed" or (e["result"] == "survived" and e.get("tests") == tests
                                       and (quick or not e.get("quick"))):
            found[m.id] = Outcome(m, e["result"], e["detail"], e["phase"], e["seconds"])
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", metavar="ID",
                        help="run only this mutant (repeatable; a prefix such as K0 works)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--jobs", type=int, default=1, choices=(1, 2),
                        help="mutants run at a time (default 1)")
    parser.add_argument("--quick", action="store_true",
                        help="related tests only: no whole-suite pass for survivors")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds per pytest call (default 3x the baseline run + 120)")
    parser.add_argument("--baseline", choices=("full", "related", "none"), default="full",
                        help="check the unmutated suite first: the whole suite (default), only "
                             "the chosen mutants' related files, or not at all")
    parser.add_argument("--resume", action="store_true",
                        help="reuse outcomes of earlier runs that still hold (kills while "
                             "simcomp/ is unchanged; survivals while the tests are unchanged too)")
    parser.add_argument("--report", action="store_true",
                        help="run nothing: write docs/testing.md from the recorded outcomes "
                             "(as --resume would reuse them; the others show as not run)")
    parser.add_argument("--merge", type=Path, action="append", default=[], metavar="JOURNAL",
                        help="also read the outcomes recorded in another scratch's "
                             "outcomes.jsonl (repeatable)")
    parser.add_argument("--scratch", type=Path, default=None,
                        help="where the scratch copies and their numba caches live (kept "
                             "between runs; default: a directory in the system's temp dir)")
    args = parser.parse_args(argv)

    ids = [m.id for m in MUTANTS] + [m.id for m, _ in EQUIVALENT]
    if len(set(ids)) != len(ids):
        raise SystemExit("mutation.py: duplicate mutant ids")
    if args.list:
        for m in MUTANTS:
            print(f"{m.id:28} {status_of(m):26} {m.file}: {m.why}")
        for m, _ in EQUIVALENT:
            print(f"{m.id:28} {'equivalent, ' + status_of(m):26} {m.file}: {m.why}")
        return 1 if stale_report(list(MUTANTS)) else 0
    chosen = list(MUTANTS)
    if args.only:
        chosen = [m for m in MUTANTS if any(m.id.startswith(p) for p in args.only)]
        if not chosen:
            print(f"mutation.py: no mutant matches {args.only}; see --list", file=sys.stderr)
            return 2
    # A mutant whose snippet no longer applies is an error (exit status 1 at the end), never
    # a silent pass: it is not run, and the report lists it.
    stale = stale_report(chosen)

    t0 = time.perf_counter()
    tag = hashlib.sha1(str(ROOT).encode()).hexdigest()[:8]
    base = args.scratch or Path(tempfile.gettempdir()) / f"simcomp-mutation-{tag}"
    slots = [] if args.report else [Slot(base, i) for i in range(args.jobs)]
    # Baseline: the unmutated tests must pass (this also fills each slot's numba cache).
    baseline = 0.0
    if args.baseline != "none" and not args.report:
        files = ([] if args.baseline == "full"
                 else sorted({f for m in chosen for f in m.tests}))
        print(f"baseline: {'whole suite' if not files else ' '.join(files)} "
              f"in {len(slots)} slot(s) ...", flush=True)
        with cf.ThreadPoolExecutor(len(slots)) as pool:
            base_runs = list(pool.map(lambda s: s.pytest(files, 7200), slots))
        for code, out, _ in base_runs:
            if code != 0:
                print(f"mutation.py: the unmutated tests fail ({_first_failure(out)}); "
                      "fix them first", file=sys.stderr)
                return 1
        baseline = max(sec for _, _, sec in base_runs)
    timeout = args.timeout or (3 * baseline + 120 if args.baseline == "full" else 3600)
    print(f"baseline {baseline:.0f} s; per-run timeout {timeout:.0f} s; scratch {base}",
          flush=True)

    free: queue.Queue = queue.Queue()
    for slot in slots:
        free.put(slot)

    def work(mutant: Mutant) -> Outcome:
        slot = free.get()
        try:
            return run_mutant(slot, mutant, args.quick, timeout)
        finally:
            free.put(slot)

    journal = base / "outcomes.jsonl"
    src, tests = tree_digest(ROOT, "simcomp/"), tree_digest(ROOT, "tests/")
    outcomes: dict[str, Outcome] = {}
    if args.resume or args.report:
        for path in args.merge + [journal]:
            outcomes.update(load_journal(path, src, tests, args.quick))
    outcomes = {k: v for k, v in outcomes.items()
                if any(m.id == k for m in chosen) and k not in stale}
    if outcomes:
        print(f"reusing {len(outcomes)} recorded outcome(s) (--resume)", flush=True)
    outcomes.update({k: v for k, v in stale.items() if any(m.id == k for m in chosen)})
    stale_equivalent = [o for k, o in stale.items() if not any(m.id == k for m in chosen)]

    def write_doc():
        if not args.only:
            ordered = [outcomes.get(m.id) or Outcome(m, "not run") for m in chosen]
            DOC.write_text(render(ordered, baseline, time.perf_counter() - t0, args.jobs,
                                  args.quick, args.report, stale_equivalent),
                           encoding="utf-8")

    todo = [] if args.report else [m for m in chosen if m.id not in outcomes]
    with cf.ThreadPoolExecutor(max(1, len(slots))) as pool:
        # Kernel mutants last: they recompile most of the kernels (the slowest part).
        order = sorted(todo, key=lambda m: m.file.startswith("simcomp/kernels/"))
        futures = {pool.submit(work, m): m for m in order}
        for done, fut in enumerate(cf.as_completed(futures), 1):
            o = fut.result()
            outcomes[o.mutant.id] = o
            with open(journal, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"id": o.mutant.id, "key": mutant_key(o.mutant),
                                         "src": src, "tests": tests, "quick": args.quick,
                                         "result": o.result, "detail": o.detail,
                                         "phase": o.phase, "seconds": o.seconds}) + "\n")
            print(f"[{done:2}/{len(todo)}] {o.mutant.id:28} {o.result:8} "
                  f"{o.phase:7} {o.seconds:5.0f} s  {o.detail[:90]}", flush=True)
            write_doc()
    ordered = [outcomes.get(m.id) or Outcome(m, "not run") for m in chosen]
    total = time.perf_counter() - t0
    killed = sum(o.result == "killed" for o in ordered)
    counted = sum(o.result in ("killed", "survived") for o in ordered)
    print(f"\nscore: {killed} / {counted} killed"
          + (f" = {100.0 * killed / counted:.1f}%" if counted else "")
          + f"; {total / 60:.1f} min")
    for o in ordered + stale_equivalent:
        if o.result != "killed":
            print(f"  {o.result}: {o.mutant.id} ({o.mutant.file}) {o.detail}")
    if not args.only:
        write_doc()
        print(f"wrote {DOC.relative_to(ROOT)}")
    broken = [o for o in ordered + stale_equivalent if o.result in ("stale", "error")]
    if broken:
        print(f"mutation.py: error: {len(broken)} mutant(s) stale or broken: "
              + ", ".join(o.mutant.id for o in broken), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
