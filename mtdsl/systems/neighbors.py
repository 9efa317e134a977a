"""Neighbour lists through vesin: ``Pairs``, ``neighbors`` and ``pair_vectors``.

Conventions (the same as featomic and metatensor):

- a pair ``(first, second, cell_shift)`` joins atom ``first`` to the periodic
  image of atom ``second`` translated by ``cell_shift`` (integers, in lattice
  vectors), and its vector points from first to second:
  ``vector = positions[second] - positions[first] + cell_shift @ cell``;
- a pair is in the list when ``0 < distance < cutoff``: an atom is never its
  own neighbour in its own cell, but may be one through a periodic image;
- a full list holds both ``(i, j, S)`` and ``(j, i, -S)``; a half list holds
  one of them, chosen as featomic does: ``i < j``, or for an atom and its own
  image (``i == j``) the shift with a positive sum, or a zero sum and a
  positive last non-zero component;
- pairs are sorted by system, first atom, second atom, then cell shift, so
  the pairs whose first atom is ``i`` are the CSR segment
  ``offsets[i]:offsets[i + 1]``.
"""

from __future__ import annotations

import math

import numpy as np

from ._arrays import is_torch, like, to_numpy, torch_module
from .batch import SystemBatch, as_batch
from .limits import UnsafeSystemError, check_before_search, check_overlaps

#: label names of a pairs set, in the order of ``Pairs.label_values()``
PAIR_LABEL_NAMES = (
    "system",
    "first_atom",
    "second_atom",
    "cell_shift_a",
    "cell_shift_b",
    "cell_shift_c",
)


class Pairs:
    """A neighbour list over a ``SystemBatch``.

    With ``N`` atoms in the batch and ``P`` pairs:

    - ``first``, ``second`` ``[P]`` int64: batch-global atom indices (rows of
      ``batch.positions``);
    - ``system`` ``[P]`` int64: the system of each pair;
    - ``first_atom``, ``second_atom`` ``[P]`` int64: atom indices inside the
      system (the ``first_atom``/``second_atom`` labels);
    - ``cell_shifts`` ``[P, 3]`` int32: lattice translations of the second atom;
    - ``vectors`` ``[P, 3]`` float: ``positions[second] - positions[first] +
      cell_shifts @ cell[system]``, recomputed from the batch's arrays (so a
      torch batch's vectors carry autograd to positions and cell);
    - ``distances`` ``[P]`` float: the norms of ``vectors``;
    - ``offsets`` ``[N + 1]`` int64: CSR offsets, the pairs whose first atom
      is ``i`` are ``offsets[i]:offsets[i + 1]``.

    Arrays are numpy for a numpy batch and torch tensors (on the batch's
    device) for a torch batch.
    """

    __slots__ = (
        "_batch",
        "_cutoff",
        "_full",
        "_first",
        "_second",
        "_system",
        "_cell_shifts",
        "_vectors",
        "_distances",
        "_offsets",
    )

    def __init__(self, batch, cutoff, full, first, second, cell_shifts):
        reference = batch.positions
        system = to_numpy(batch.system)[first] if len(first) else np.zeros(0, dtype=np.int64)
        counts = np.bincount(first, minlength=batch.n_atoms)
        offsets = np.zeros(batch.n_atoms + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])

        self._batch = batch
        self._cutoff = cutoff
        self._full = full
        self._first = like(first, reference, dtype=np.int64)
        self._second = like(second, reference, dtype=np.int64)
        self._system = like(system, reference, dtype=np.int64)
        self._cell_shifts = like(cell_shifts, reference, dtype=np.int32)
        self._offsets = like(offsets, reference, dtype=np.int64)
        self._vectors = pair_vectors(
            batch.positions, batch.cell, self._first, self._second, self._cell_shifts, self._system
        )
        self._distances = _norm(self._vectors)

    @property
    def batch(self) -> SystemBatch:
        return self._batch

    @property
    def cutoff(self) -> float:
        return self._cutoff

    @property
    def full(self) -> bool:
        return self._full

    @property
    def first(self):
        return self._first

    @property
    def second(self):
        return self._second

    @property
    def system(self):
        return self._system

    @property
    def first_atom(self):
        return self._first - self._batch.atom_offsets[self._system]

    @property
    def second_atom(self):
        return self._second - self._batch.atom_offsets[self._system]

    @property
    def cell_shifts(self):
        return self._cell_shifts

    @property
    def vectors(self):
        return self._vectors

    @property
    def distances(self):
        return self._distances

    @property
    def offsets(self):
        return self._offsets

    @property
    def n_pairs(self) -> int:
        return int(self._first.shape[0])

    def __len__(self) -> int:
        return self.n_pairs

    def from_atom(self, atom: int) -> slice:
        """The pairs whose first atom is ``atom`` (batch-global index): the
        language's ``P.from(i)``, a CSR segment."""
        if not 0 <= atom < self._batch.n_atoms:
            raise IndexError(f"atom {atom} is out of range for {self._batch.n_atoms} atoms")
        return slice(int(self._offsets[atom]), int(self._offsets[atom + 1]))

    def label_values(self) -> np.ndarray:
        """The ``[P, 6]`` int32 label values, columns ``PAIR_LABEL_NAMES``."""
        columns = [self._system, self.first_atom, self.second_atom]
        values = np.empty((self.n_pairs, 6), dtype=np.int32)
        for index, column in enumerate(columns):
            values[:, index] = to_numpy(column)
        values[:, 3:] = to_numpy(self._cell_shifts)
        return values

    def __repr__(self) -> str:
        kind = "full" if self._full else "half"
        return (
            f"Pairs({kind}, cutoff={self._cutoff}, n_pairs={self.n_pairs}, "
            f"n_atoms={self._batch.n_atoms}, n_systems={self._batch.n_systems})"
        )


def neighbors(frames, cutoff: float, *, full: bool = True, max_pairs: int | None = None) -> Pairs:
    """The pairs of atoms closer than ``cutoff`` in each system of ``frames``.

    :param frames: a ``SystemBatch``, a ``System``, an ``ase.Atoms`` or a list
        of systems and atoms (see ``as_batch``)
    :param cutoff: spherical cutoff (Å); pairs with ``distance < cutoff``
    :param full: both ``i -> j`` and ``j -> i`` (default), or each pair once
    :param max_pairs: the most pairs (estimated before the search, periodic images
        included) the batch may have; ``$MTDSL_MAX_PAIRS`` or
        ``limits.DEFAULT_MAX_PAIRS`` when None
    :raises UnsafeSystemError: coordinates or cell beyond ``limits.MAX_COORDINATE``,
        a degenerate periodic cell, too many pairs for the limit or the memory, or two
        atoms closer than ``limits.min_distance()`` (see ``mtdsl.systems.limits``)
    """
    batch = as_batch(frames)
    cutoff = _check_cutoff(cutoff)
    import vesin

    calculator = vesin.NeighborList(cutoff=cutoff, full_list=bool(full))
    positions = to_numpy(batch.positions).astype(np.float64)
    cells = to_numpy(batch.cell).astype(np.float64)
    pbcs = to_numpy(batch.pbc)
    offsets = to_numpy(batch.atom_offsets)
    check_before_search(batch, positions, cells, pbcs, offsets, cutoff, max_pairs)

    firsts, seconds, shifts = [], [], []
    for index in range(batch.n_systems):
        start, stop = int(offsets[index]), int(offsets[index + 1])
        if stop == start:
            continue
        first, second, shift, distance = calculator.compute(
            positions[start:stop], cells[index], pbcs[index], quantities="ijSd"
        )
        check_overlaps(batch, first, second, shift, distance, index)
        first = first.astype(np.int64)
        second = second.astype(np.int64)
        shift = shift.astype(np.int32)
        if not full:
            first, second, shift = _canonical_half(first, second, shift)
        firsts.append(first + start)
        seconds.append(second + start)
        shifts.append(shift)

    if firsts:
        first = np.concatenate(firsts)
        second = np.concatenate(seconds)
        shift = np.concatenate(shifts)
    else:
        first = np.zeros(0, dtype=np.int64)
        second = np.zeros(0, dtype=np.int64)
        shift = np.zeros((0, 3), dtype=np.int32)
    order = np.lexsort((shift[:, 2], shift[:, 1], shift[:, 0], second, first))
    return Pairs(batch, cutoff, bool(full), first[order], second[order], shift[order])


def pair_vectors(positions, cell, first, second, cell_shifts, system=None):
    """``positions[second] - positions[first] + cell_shifts @ cell``, per pair.

    Works on numpy arrays and torch tensors alike (torch: differentiable with
    respect to positions and cell).

    :param positions: ``[N, 3]``
    :param cell: ``[3, 3]`` for one system, or ``[S, 3, 3]`` with ``system``
    :param first, second: ``[P]`` integer atom indices into ``positions``
    :param cell_shifts: ``[P, 3]`` integers
    :param system: ``[P]`` system index of each pair, when ``cell`` is ``[S, 3, 3]``
    """
    if is_torch(positions):
        torch = torch_module()
        first = torch.as_tensor(first, device=positions.device)
        second = torch.as_tensor(second, device=positions.device)
        shifts = torch.as_tensor(cell_shifts, device=positions.device).to(positions.dtype)
        if cell.dim() == 2:
            translations = shifts @ cell
        else:
            system = torch.as_tensor(system, device=positions.device)
            translations = torch.einsum("pa,pab->pb", shifts, cell[system])
    else:
        shifts = np.asarray(cell_shifts).astype(positions.dtype)
        cell = np.asarray(cell)
        if cell.ndim == 2:
            translations = shifts @ cell
        else:
            translations = np.einsum("pa,pab->pb", shifts, cell[np.asarray(system)])
    return positions[second] - positions[first] + translations


def _norm(vectors):
    if is_torch(vectors):
        return torch_module().linalg.vector_norm(vectors, dim=1)
    return np.linalg.norm(vectors, axis=1)


def _check_cutoff(cutoff) -> float:
    try:
        value = float(cutoff)
    except (TypeError, ValueError):
        raise TypeError(f"cutoff must be a number, got {type(cutoff).__name__}") from None
    if not (value > 0 and math.isfinite(value)):
        raise UnsafeSystemError(f"cutoff must be a positive finite number, got {cutoff}")
    return value


def _canonical_half(first, second, shift):
    """Orient each pair of a half list as featomic does (see the module doc)."""
    total = shift.sum(axis=1)
    negative_shift = (total < 0) | (
        (total == 0) & ((shift[:, 2] < 0) | ((shift[:, 2] == 0) & (shift[:, 1] < 0)))
    )
    flip = (first > second) | ((first == second) & negative_shift)
    first, second = np.where(flip, second, first), np.where(flip, first, second)
    shift = np.where(flip[:, None], -shift, shift)
    return first, second, shift
