"""The curated mutants of benchmarks/mutation.py still apply to the sources they mutate.

A refactoring that moves or rewrites a mutated snippet makes its mutant *stale*: the
mutation benchmark would no longer test that bug. These checks fail at once (not at the
next mutation run), naming the mutant whose ``old`` text must be updated in
benchmarks/mutants.py; and the benchmark itself treats a stale mutant as an error.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import mutation  # noqa: E402
from mutants import EQUIVALENT, MUTANTS, Mutant  # noqa: E402

ALL = list(MUTANTS) + [m for m, _ in EQUIVALENT]


def test_mutant_ids_are_unique():
    ids = [m.id for m in ALL]
    assert sorted(set(ids)) == sorted(ids)


@pytest.mark.parametrize("mutant", ALL, ids=[m.id for m in ALL])
def test_every_mutant_applies_exactly_once(mutant):
    assert mutation.status_of(mutant) == "ok", (
        f"{mutant.id}: update its text in benchmarks/mutants.py ({mutant.file})")
    assert mutant.old != mutant.new


def test_every_test_a_mutant_names_exists():
    missing = []
    for m in ALL:
        for node in m.tests:
            path, _, name = node.partition("::")
            if not (ROOT / path).is_file():
                missing.append(f"{m.id}: {path}")
            elif name and not re.search(rf"^def {re.escape(name)}\(",
                                        (ROOT / path).read_text(encoding="utf-8"), re.M):
                missing.append(f"{m.id}: {node}")
    assert not missing


def test_a_stale_mutant_is_an_error_not_a_pass(monkeypatch, tmp_path, capsys):
    stale = Mutant("Z99-gone", "simcomp/data.py", "this text is not in simcomp/data.py",
                   "anything", "a snippet removed by a refactoring", ("tests/test_data.py",))
    monkeypatch.setattr(mutation, "MUTANTS", tuple(MUTANTS) + (stale,))
    assert mutation.main(["--list"]) == 1
    # --report with --only runs nothing and writes no page; the stale mutant still fails it
    assert mutation.main(["--report", "--only", "Z99", "--scratch", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Z99-gone is stale (snippet not found)" in err
    assert mutation.main(["--report", "--only", MUTANTS[0].id, "--scratch", str(tmp_path)]) == 0
