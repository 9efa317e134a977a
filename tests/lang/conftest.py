"""Helpers for the front-end tests: write programs to files, find positions."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtdsl.lang import check

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# a prelude of declarations shared by the small test programs
PRELUDE = """\
hyper n_radial = 4
hyper lmax = 2
input S : systems
pairs P = neighbors(S, cutoff = 4.0)
dim radial = range(n_radial)
dim angular = range(lmax + 1)
dim species = species(S)
index n, n1, n2 : radial
index l, l1, l2, L : angular
index m : irrep(l)
index m1 : irrep(l1)
index m2 : irrep(l2)
index M : irrep(L)
index i : atoms(S)
index s : systems(S)
index a, b : species
index p : P
index x : xyz
"""


def position(text: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based (line, col) of the ``occurrence``-th ``needle`` in ``text``."""
    start = -1
    for _ in range(occurrence):
        start = text.index(needle, start + 1)
    line = text.count("\n", 0, start) + 1
    col = start - (text.rfind("\n", 0, start) + 1) + 1
    return line, col


class Checked:
    def __init__(self, path: Path, text: str):
        self.path = path
        self.text = text
        self.diagnostics = check(str(path))

    @property
    def codes(self) -> list[str]:
        return [d.code for d in self.diagnostics]

    def at(self, code: str, needle: str, occurrence: int = 1, offset: int = 0):
        """The diagnostic with ``code`` at the position of ``needle`` (plus ``offset``
        columns); fails otherwise."""
        line, col = position(self.text, needle, occurrence)
        col += offset
        for diagnostic in self.diagnostics:
            if diagnostic.code == code and (diagnostic.line, diagnostic.col) == (line, col):
                return diagnostic
        found = "\n".join(f"  {d}" for d in self.diagnostics) or "  (none)"
        raise AssertionError(f"no {code} at {line}:{col} ({needle!r}); diagnostics:\n{found}")

    def clean(self) -> None:
        assert self.diagnostics == [], "\n".join(str(d) for d in self.diagnostics)


@pytest.fixture
def program(tmp_path):
    """``program(text, name="model.mt", prelude=True, files={})`` writes and checks a program."""

    def make(text: str, name: str = "model.mt", prelude: bool = True, files: dict | None = None) -> Checked:
        for other, content in (files or {}).items():
            target = tmp_path / other
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        full = (PRELUDE + text) if prelude else text
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(full)
        return Checked(path, full)

    return make
