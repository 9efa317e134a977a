"""``System``: one atomic system (types, positions, cell, periodicity).

Arrays keep their library: a system built from numpy arrays holds numpy
arrays, one built from torch tensors holds torch tensors (positions and cell
may require grad; they are stored as given, never detached or copied).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ._arrays import PositionsArrays, dtype_name, is_torch, like, to_numpy, torch_module

#: the largest atomic number a type may hold (oganesson)
MAX_ATOMIC_NUMBER = 118

_FLOAT_DTYPES = ("float32", "float64")
_AXES = "abc"


class System(PositionsArrays):
    """One atomic system.

    :param types: atomic numbers, integers in ``[1, 118]``, shape ``[n_atoms]``
    :param positions: Cartesian positions (Å), float32 or float64, shape
        ``[n_atoms, 3]``; a numpy array or a torch tensor. It decides the array
        library, dtype and device of the system: the other arrays are
        converted to it.
    :param cell: unit cell, one lattice vector per row (``[[ax, ay, az],
        [bx, by, bz], [cx, cy, cz]]``), shape ``[3, 3]``; zeros (the default)
        for a non-periodic system.
    :param pbc: periodicity along each lattice vector: one bool or three; all
        ``False`` by default. A periodic direction needs a non-zero cell vector.
    :param source: where the system comes from, e.g. ``"water.xyz:3"``.
    """

    __slots__ = ("_types", "_positions", "_cell", "_pbc", "_source")

    def __init__(self, types, positions, cell=None, pbc=None, *, source=None):
        positions = _check_positions(positions)
        self._positions = positions
        self._types = _check_types(types, positions)
        self._cell = _check_cell(cell, positions)
        self._pbc = _check_pbc(pbc, positions)
        _check_periodic_cell(to_numpy(self._cell), to_numpy(self._pbc))
        if source is not None and not isinstance(source, str):
            raise TypeError(f"source must be a string or None, got {type(source).__name__}")
        self._source = source

    # -- data (types, positions, cell, pbc, n_atoms, dtype, device: PositionsArrays) --

    @property
    def source(self) -> str | None:
        """Provenance, e.g. ``"structures.xyz:3"`` (file and frame index)."""
        return self._source

    def __len__(self) -> int:
        return self.n_atoms

    def __repr__(self) -> str:
        counts = np.unique(to_numpy(self._types), return_counts=True)
        types = ", ".join(f"{t}: {c}" for t, c in zip(*counts))
        pbc = tuple(bool(p) for p in to_numpy(self._pbc))
        library = "torch" if self.is_torch else "numpy"
        source = f", source={self._source!r}" if self._source is not None else ""
        return (
            f"System(n_atoms={self.n_atoms}, types={{{types}}}, pbc={pbc}, "
            f"{library} {dtype_name(self._positions)}{source})"
        )

    # -- conversions -----------------------------------------------------------

    @classmethod
    def from_ase(cls, atoms, *, dtype=np.float64, source=None) -> System:
        """A numpy system from an ``ase.Atoms`` (positions copied as ``dtype``)."""
        import ase

        if not isinstance(atoms, ase.Atoms):
            raise TypeError(f"expected an ase.Atoms, got {type(atoms).__name__}")
        return cls(
            np.array(atoms.numbers, dtype=np.int32),
            np.array(atoms.positions, dtype=dtype),
            np.array(atoms.cell.array, dtype=dtype),
            np.array(atoms.pbc, dtype=bool),
            source=source,
        )

    def to_ase(self):
        """An ``ase.Atoms`` with the same types, positions, cell and pbc."""
        import ase

        atoms = ase.Atoms(
            numbers=to_numpy(self._types),
            positions=to_numpy(self._positions).astype(np.float64),
            cell=to_numpy(self._cell).astype(np.float64),
            pbc=to_numpy(self._pbc),
        )
        if self._source is not None:
            atoms.info["source"] = self._source
        return atoms

    def to_numpy(self) -> System:
        """The same system with numpy arrays (detached from autograd)."""
        if not self.is_torch:
            return self
        return System(
            to_numpy(self._types).copy(),
            to_numpy(self._positions).copy(),
            to_numpy(self._cell).copy(),
            to_numpy(self._pbc).copy(),
            source=self._source,
        )

    def to_torch(self, dtype=None, device=None) -> System:
        """The same system with torch tensors (``dtype`` a torch float dtype,
        the current one by default). Tensors already of that dtype and device
        are kept as they are, autograd included."""
        import torch

        if self.is_torch:
            positions = self._positions.to(dtype=dtype, device=device)
            cell = self._cell.to(dtype=positions.dtype, device=positions.device)
        else:
            positions = torch.from_numpy(np.array(self._positions)).to(dtype=dtype, device=device)
            cell = torch.from_numpy(np.array(self._cell)).to(positions.dtype).to(positions.device)
        return System(self._types, positions, cell, self._pbc, source=self._source)


def systems_from_ase(frames, *, dtype=np.float64) -> list[System]:
    """Numpy systems from an ``ase.Atoms`` or an iterable of them."""
    import ase

    if isinstance(frames, ase.Atoms):
        frames = [frames]
    elif not isinstance(frames, Iterable):
        raise TypeError(f"expected ase.Atoms or a list of them, got {type(frames).__name__}")
    return [System.from_ase(atoms, dtype=dtype) for atoms in frames]


# -- validation ----------------------------------------------------------------


def _check_positions(positions):
    if is_torch(positions):
        if dtype_name(positions) not in _FLOAT_DTYPES:
            raise TypeError(f"positions must be float32 or float64, got {dtype_name(positions)}")
    elif isinstance(positions, np.ndarray):
        if positions.dtype.name not in _FLOAT_DTYPES:
            raise TypeError(f"positions must be float32 or float64, got {positions.dtype.name}")
    else:
        try:
            positions = np.asarray(positions, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise TypeError(f"positions must be an array of numbers: {error}") from None
    if positions.ndim == 1 and positions.shape[0] == 0:
        positions = positions.reshape(0, 3)
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f"positions must have shape [n_atoms, 3], got {list(positions.shape)}")
    if not np.all(np.isfinite(to_numpy(positions))):
        raise ValueError("positions contain NaN or infinite values")
    return positions


def _check_types(types, positions):
    if is_torch(types):
        name = dtype_name(types)
        integer = not types.is_floating_point() and not types.is_complex() and name != "bool"
        values = to_numpy(types)
    else:
        values = np.asarray(types)
        if values.size == 0:
            values = values.astype(np.int32)
        name = values.dtype.name
        integer = values.dtype.kind in "iu"
    if not integer:
        raise TypeError(f"types must be integers (atomic numbers), got {name}")
    if values.ndim != 1:
        raise ValueError(f"types must have shape [n_atoms], got {list(values.shape)}")
    if values.shape[0] != positions.shape[0]:
        raise ValueError(
            f"types has {values.shape[0]} entries but positions has {positions.shape[0]} atoms"
        )
    bad = (values < 1) | (values > MAX_ATOMIC_NUMBER)
    if np.any(bad):
        raise ValueError(
            f"types must be atomic numbers between 1 and {MAX_ATOMIC_NUMBER}, "
            f"got {int(values[bad][0])} for atom {int(np.flatnonzero(bad)[0])}"
        )
    if is_torch(positions):
        torch = torch_module()
        if is_torch(types):
            return types.to(dtype=torch.int32, device=positions.device)
        return like(values, positions, dtype=np.int32)
    return values.astype(np.int32, copy=False)


def _check_cell(cell, positions):
    if cell is None:
        if is_torch(positions):
            return torch_module().zeros((3, 3), dtype=positions.dtype, device=positions.device)
        return np.zeros((3, 3), dtype=positions.dtype)
    if is_torch(cell) and not is_torch(positions):
        raise TypeError("cell is a torch tensor but positions is not: use one array library")
    if is_torch(cell):
        if dtype_name(cell) not in _FLOAT_DTYPES:
            raise TypeError(f"cell must be float32 or float64, got {dtype_name(cell)}")
    else:
        try:
            array = np.asarray(cell)
            if array.dtype.kind not in "iuf":
                raise TypeError(array.dtype.name)
        except (TypeError, ValueError) as error:
            raise TypeError(f"cell must be an array of numbers: {error}") from None
        cell = like(array, positions, dtype=np.float64)
    if tuple(cell.shape) != (3, 3):
        raise ValueError(f"cell must have shape [3, 3], got {list(cell.shape)}")
    if not np.all(np.isfinite(to_numpy(cell))):
        raise ValueError("cell contains NaN or infinite values")
    if is_torch(cell):
        if cell.dtype != positions.dtype or cell.device != positions.device:
            if cell.requires_grad:
                raise TypeError(
                    f"cell ({dtype_name(cell)} on {cell.device}) requires grad and does not "
                    f"match positions ({dtype_name(positions)} on {positions.device})"
                )
            cell = cell.to(dtype=positions.dtype, device=positions.device)
        return cell
    return cell.astype(positions.dtype, copy=False)


def _check_pbc(pbc, positions):
    if pbc is None:
        values = np.zeros(3, dtype=bool)
    else:
        values = to_numpy(pbc)
        if values.dtype != np.bool_:
            raise TypeError(f"pbc must be booleans, got {values.dtype.name}")
        if values.ndim == 0:
            values = np.repeat(values, 3)
        if values.shape != (3,):
            raise ValueError(f"pbc must be one bool or three, got shape {list(values.shape)}")
    return like(values, positions, dtype=bool)


def _check_periodic_cell(cell: np.ndarray, pbc: np.ndarray):
    for axis in range(3):
        if pbc[axis] and not np.any(cell[axis]):
            raise ValueError(
                f"pbc is True along {_AXES[axis]} but the cell vector {_AXES[axis]} is zero"
            )
    periodic = cell[pbc]
    if len(periodic) and np.linalg.matrix_rank(periodic) < len(periodic):
        raise ValueError("the periodic cell vectors are linearly dependent")
