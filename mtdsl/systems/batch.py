"""``SystemBatch``: many systems concatenated into flat arrays for kernels."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ._arrays import PositionsArrays, concatenate, dtype_name, like, stack, to_numpy
from ._pyg import is_pyg, systems_from_pyg
from .system import System

#: label names of the atoms of a batch, in the order of ``atom_label_values()``
ATOM_LABEL_NAMES = ("system", "atom")


class SystemBatch(PositionsArrays):
    """Systems concatenated along their atoms, as plain arrays.

    With ``N`` atoms in ``S`` systems (all numpy, or all torch on one device,
    with one float dtype):

    - ``types`` ``[N]`` int32: atomic number of each atom;
    - ``positions`` ``[N, 3]`` float: positions (concatenated, autograd kept);
    - ``system`` ``[N]`` int64: system index of each atom;
    - ``atom`` ``[N]`` int64: index of each atom inside its system;
    - ``cell`` ``[S, 3, 3]`` float: cell of each system, lattice vectors as rows;
    - ``pbc`` ``[S, 3]`` bool: periodicity of each system;
    - ``atom_offsets`` ``[S + 1]`` int64: the atoms of system ``s`` are
      ``atom_offsets[s]:atom_offsets[s + 1]``.

    Integer arrays are numpy arrays for a numpy batch, torch tensors on the
    batch's device for a torch batch.

    Atom ``i`` of the batch is atom ``atom[i]`` of system ``system[i]``, and
    ``i == atom_offsets[system[i]] + atom[i]``.
    """

    __slots__ = (
        "_systems",
        "_types",
        "_positions",
        "_system",
        "_atom",
        "_cell",
        "_pbc",
        "_atom_offsets",
    )

    def __init__(self, systems: Iterable[System]):
        systems = tuple(systems)
        for index, system in enumerate(systems):
            if not isinstance(system, System):
                raise TypeError(
                    f"batch entry {index} is a {type(system).__name__}, expected a System"
                )
        _check_compatible(systems)
        self._systems = systems

        if not systems:
            self._positions = np.zeros((0, 3), dtype=np.float64)
            self._types = np.zeros(0, dtype=np.int32)
            self._cell = np.zeros((0, 3, 3), dtype=np.float64)
            self._pbc = np.zeros((0, 3), dtype=bool)
        else:
            self._positions = concatenate([s.positions for s in systems], systems[0].positions)
            self._types = concatenate([s.types for s in systems], systems[0].types)
            self._cell = stack([s.cell for s in systems], systems[0].cell)
            self._pbc = stack([s.pbc for s in systems], systems[0].pbc)

        counts = np.array([s.n_atoms for s in systems], dtype=np.int64)
        offsets = np.zeros(len(systems) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        system = np.repeat(np.arange(len(systems), dtype=np.int64), counts)
        atom = np.arange(offsets[-1], dtype=np.int64) - offsets[system]
        self._atom_offsets = like(offsets, self._positions)
        self._system = like(system, self._positions)
        self._atom = like(atom, self._positions)

    @property
    def systems(self) -> tuple[System, ...]:
        return self._systems

    @property
    def system(self):
        return self._system

    @property
    def atom(self):
        return self._atom

    @property
    def atom_offsets(self):
        return self._atom_offsets

    @property
    def n_systems(self) -> int:
        return len(self._systems)

    def __len__(self) -> int:
        return self.n_systems

    def __getitem__(self, index: int) -> System:
        return self._systems[index]

    def __iter__(self):
        return iter(self._systems)

    @property
    def species(self) -> np.ndarray:
        """The atomic numbers present in the batch, sorted, int32 (numpy)."""
        return np.unique(to_numpy(self._types)).astype(np.int32)

    def atom_label_values(self) -> np.ndarray:
        """The ``[N, 2]`` int32 label values of the atoms, columns
        ``ATOM_LABEL_NAMES`` (``system, atom``)."""
        values = np.empty((self.n_atoms, 2), dtype=np.int32)
        values[:, 0] = to_numpy(self._system)
        values[:, 1] = to_numpy(self._atom)
        return values

    @property
    def sources(self) -> list[str | None]:
        return [s.source for s in self._systems]

    def __repr__(self) -> str:
        library = "torch" if self.is_torch else "numpy"
        return (
            f"SystemBatch(n_systems={self.n_systems}, n_atoms={self.n_atoms}, "
            f"{library} {dtype_name(self._positions)})"
        )


def as_batch(frames) -> SystemBatch:
    """A ``SystemBatch`` from a batch, a ``System``, an ``ase.Atoms``, an
    iterable of ``System`` and ``ase.Atoms`` (converted with ``System.from_ase``),
    or a PyTorch Geometric ``Data`` / ``Batch`` (its graphs, ``systems/_pyg.py``)."""
    if isinstance(frames, SystemBatch):
        return frames
    if is_pyg(frames):  # a PyTorch Geometric Data or Batch: its graphs are the frames
        frames = systems_from_pyg(frames)
    if isinstance(frames, System) or _is_atoms(frames):
        frames = [frames]
    elif isinstance(frames, (str, bytes)) or not isinstance(frames, Iterable):
        raise TypeError(
            "expected a System, an ase.Atoms, or a list of them, "
            f"got {type(frames).__name__}"
        )
    systems = []
    for index, frame in enumerate(frames):
        if isinstance(frame, System):
            systems.append(frame)
        elif _is_atoms(frame):
            systems.append(System.from_ase(frame))
        else:
            raise TypeError(
                f"frame {index} is a {type(frame).__name__}, expected a System or an ase.Atoms"
            )
    return SystemBatch(systems)


def _is_atoms(value) -> bool:
    import ase

    return isinstance(value, ase.Atoms)


def _check_compatible(systems: tuple[System, ...]):
    if not systems:
        return
    first = systems[0]
    for index, system in enumerate(systems[1:], start=1):
        if system.is_torch != first.is_torch:
            libraries = {True: "torch", False: "numpy"}
            raise TypeError(
                f"systems of a batch must use one array library: system 0 uses "
                f"{libraries[first.is_torch]}, system {index} {libraries[system.is_torch]}"
            )
        if system.dtype != first.dtype:
            raise TypeError(
                f"systems of a batch must have one dtype: system 0 is "
                f"{dtype_name(first.positions)}, system {index} {dtype_name(system.positions)}"
            )
        if first.is_torch and system.device != first.device:
            raise TypeError(
                f"systems of a batch must be on one device: system 0 is on "
                f"{first.device}, system {index} on {system.device}"
            )
