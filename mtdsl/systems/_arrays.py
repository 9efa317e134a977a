"""Small helpers that treat numpy arrays and torch tensors alike.

torch is never imported here: a value is a tensor only when torch is already
loaded (``sys.modules``) and the value is an instance of ``torch.Tensor``, so
numpy-only users do not pay for importing torch.
"""

from __future__ import annotations

import sys

import numpy as np

from ..tensor._array import dtype_name as _dtype_name
from ..tensor._array import is_torch, to_numpy  # noqa: F401 - one definition for the whole package


def torch_module():
    """The torch module if it is already imported, else ``None``."""
    return sys.modules.get("torch")


def like(value, reference, dtype=None):
    """``value`` (numpy-like) as an array of the same library and device as
    ``reference``; ``dtype`` is a numpy dtype, translated for torch."""
    if is_torch(reference):
        torch = torch_module()
        array = np.asarray(value, dtype=dtype)
        return torch.from_numpy(np.ascontiguousarray(array)).to(reference.device)
    return np.asarray(value, dtype=dtype)


def dtype_name(value) -> str:
    """``"float64"``, ``"int32"``...: the dtype of an array without its library prefix."""
    return _dtype_name(value.dtype)


def concatenate(arrays, reference):
    """Concatenate along the first axis, keeping autograd for tensors."""
    if is_torch(reference):
        return torch_module().cat(list(arrays))
    return np.concatenate(list(arrays))


def stack(arrays, reference):
    if is_torch(reference):
        return torch_module().stack(list(arrays))
    return np.stack(list(arrays))


class PositionsArrays:
    """What a ``System`` and a ``SystemBatch`` read alike from their arrays:
    the positions decide the atom count, the library, the dtype and the device."""

    __slots__ = ()

    @property
    def types(self):
        """Atomic numbers, int32, shape ``[n_atoms]``."""
        return self._types

    @property
    def positions(self):
        """Positions, shape ``[n_atoms, 3]``."""
        return self._positions

    @property
    def cell(self):
        """Lattice vectors as rows, same dtype as positions."""
        return self._cell

    @property
    def pbc(self):
        """Periodicity along a, b, c (bool)."""
        return self._pbc

    @property
    def n_atoms(self) -> int:
        return int(self._positions.shape[0])

    @property
    def is_torch(self) -> bool:
        return is_torch(self._positions)

    @property
    def dtype(self):
        """The positions' dtype (a numpy dtype or a torch dtype)."""
        return self._positions.dtype

    @property
    def device(self):
        """The torch device, or ``"cpu"`` for numpy systems."""
        return self._positions.device if self.is_torch else "cpu"
