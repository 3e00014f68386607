"""Tier 1: every entry of the mutation check (tests/mutants.py, run by hand: minutes) still names code that
exists, once; a stale entry would otherwise be found only by the next person who runs it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location("mutants", Path(__file__).with_name("mutants.py"))
mutants = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mutants)


def test_every_mutant_names_text_that_occurs_once_in_its_file():
    entries = [m for group, _ in mutants.GROUPS.values() for m in group]
    assert len({name for _, name, _, _ in entries}) == len(entries)  # names are unique
    assert mutants.stale_entries(entries) == []


def test_a_stale_entry_is_reported():
    assert mutants.stale_entries([("src/models/mde.py", "gone", "text that is not in mde.py (x7q)", "")]) == [
        "mutant 'gone': its text occurs 0 times in src/models/mde.py"
    ]
