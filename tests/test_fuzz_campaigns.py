"""A short seeded sample of each fuzz campaign (fuzz/, docs/reliability.md); `make fuzz` is the
long run. Damaged cache entries: tests/codegen/test_cache_integrity.py."""

from __future__ import annotations

from fuzz import mts, programs
from fuzz.run import run_chunk


def test_mutated_programs_sample():
    tally = programs.campaign(300, seed=17)
    assert tally.tried == 300 and tally.errors > 150
    assert tally.clean, tally.examples


def test_mutated_mts_sample():
    tally = mts.campaign(600, seed=17)
    assert tally.tried == 600 and tally.errors > 300
    assert tally.clean, tally.examples


def test_bad_structures_sample():
    # in a child under a 4 GiB address-space limit: a regression is a crash, not a machine out of memory
    tally = run_chunk("structures", 40, seed=17, memory_gib=4.0, timeout=300)
    assert tally.tried == 40 and tally.errors > 20
    assert tally.clean, tally.examples
