"""Atomic systems, batches of them, and neighbour lists (through vesin)."""

from .batch import ATOM_LABEL_NAMES, SystemBatch, as_batch
from .limits import UnsafeSystemError
from .neighbors import PAIR_LABEL_NAMES, Pairs, neighbors, pair_vectors
from .system import MAX_ATOMIC_NUMBER, System, systems_from_ase

__all__ = [
    "ATOM_LABEL_NAMES",
    "MAX_ATOMIC_NUMBER",
    "PAIR_LABEL_NAMES",
    "Pairs",
    "System",
    "SystemBatch",
    "UnsafeSystemError",
    "as_batch",
    "neighbors",
    "pair_vectors",
    "systems_from_ase",
]
