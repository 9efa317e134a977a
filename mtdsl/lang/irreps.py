"""Irreducible representations of O(3), as small immutable values (like e3nn's `o3`).

An :class:`Irrep` is a degree ``l`` and a parity ``p`` (+1 even, -1 odd), written
``"1o"``, ``"2e"``.  metatensor labels blocks with ``o3_lambda = l`` and
``o3_sigma``, the parity *relative to* ``(-1)^l``: ``p = o3_sigma * (-1)^l``, so
proper vectors and spherical harmonics have ``o3_sigma = 1``.

:class:`Irreps` is a direct sum with multiplicities, parsed from and printed as
``"2x0e + 1x1o"``.  ``Irrep * Irrep`` gives the irreps of the tensor product
(the triangle rule, parity product): the selection rule of `cg`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

_IRREP = re.compile(r"^\s*(\d+)\s*([eo])\s*$")
_TERM = re.compile(r"^\s*(?:(\d+)\s*x\s*)?(\d+\s*[eo])\s*$")


@dataclass(frozen=True, slots=True, order=True)
class Irrep:
    l: int  # noqa: E741 - the standard name of the degree
    p: int

    def __post_init__(self) -> None:
        if self.l < 0:
            raise ValueError(f"the degree of an irrep must be >= 0, got {self.l}")
        if self.p not in (1, -1):
            raise ValueError(f"the parity of an irrep is 1 or -1, got {self.p}")

    @classmethod
    def parse(cls, text: str) -> "Irrep":
        match = _IRREP.match(text)
        if match is None:
            raise ValueError(f"not an irrep: {text!r} (expected e.g. '1o' or '2e')")
        return cls(int(match.group(1)), 1 if match.group(2) == "e" else -1)

    @classmethod
    def from_sigma(cls, l: int, sigma: int) -> "Irrep":  # noqa: E741
        """The irrep of a metatensor block with ``o3_lambda = l, o3_sigma = sigma``."""
        return cls(l, sigma * (-1) ** l)

    @property
    def sigma(self) -> int:
        """metatensor's ``o3_sigma``: the parity relative to (-1)^l."""
        return self.p * (-1) ** self.l

    @property
    def dim(self) -> int:
        return 2 * self.l + 1

    @property
    def is_scalar(self) -> bool:
        return self.l == 0 and self.p == 1

    def __mul__(self, other: "Irrep") -> list["Irrep"]:
        """The irreps in the tensor product: |l1 - l2| <= L <= l1 + l2, parity p1 p2."""
        p = self.p * other.p
        return [Irrep(L, p) for L in range(abs(self.l - other.l), self.l + other.l + 1)]

    def couples_to(self, other: "Irrep", target: "Irrep") -> bool:
        return target in self * other

    def __str__(self) -> str:
        return f"{self.l}{'e' if self.p == 1 else 'o'}"


def triangle(l1: int, l2: int, L: int) -> bool:  # noqa: N803
    """The triangle rule of angular-momentum coupling."""
    return abs(l1 - l2) <= L <= l1 + l2


def cg_sigma(l1: int, l2: int, L: int) -> int:  # noqa: N803
    """o3_sigma contributed by coupling (l1) x (l2) -> (L): (-1)^(l1 + l2 + L)."""
    return (-1) ** (l1 + l2 + L)


@dataclass(frozen=True, slots=True)
class Irreps:
    """A direct sum of irreps with multiplicities, e.g. ``Irreps("2x0e + 1x1o")``."""

    terms: tuple[tuple[int, Irrep], ...]

    def __init__(self, value=()) -> None:
        if isinstance(value, str):
            terms = []
            text = value.strip()
            if text:
                for part in text.split("+"):
                    match = _TERM.match(part)
                    if match is None:
                        raise ValueError(f"not an irreps term: {part!r}")
                    terms.append((int(match.group(1) or 1), Irrep.parse(match.group(2).replace(" ", ""))))
        else:
            terms = [(1, item) if isinstance(item, Irrep) else (int(item[0]), item[1]) for item in value]
        object.__setattr__(self, "terms", tuple(terms))

    def __iter__(self) -> Iterator[tuple[int, Irrep]]:
        return iter(self.terms)

    def __len__(self) -> int:
        return len(self.terms)

    @property
    def dim(self) -> int:
        return sum(mul * irrep.dim for mul, irrep in self.terms)

    def simplify(self) -> "Irreps":
        merged: list[tuple[int, Irrep]] = []
        for mul, irrep in self.terms:
            if merged and merged[-1][1] == irrep:
                merged[-1] = (merged[-1][0] + mul, irrep)
            elif mul:
                merged.append((mul, irrep))
        return Irreps(merged)

    def __add__(self, other: "Irreps") -> "Irreps":
        return Irreps(self.terms + Irreps(other).terms if not isinstance(other, Irreps) else self.terms + other.terms)

    def __str__(self) -> str:
        return " + ".join(f"{mul}x{irrep}" for mul, irrep in self.terms)
