"""The TorchScript module of a model exported with its C++ operator (runtime/export/atomistic.py,
codegen/torch_op.py): metatomic's `ModelInterface` computing, from the engine's system and full
neighbour lists, the structure arrays the operator's tapes read (`runtime/export/tape.py`:
`STRUCTURE_FIELDS`), then calling `torch.ops.NAMESPACE.energy`, whose autograd gives forces and
virials. No Python of mtdsl runs: the module is TorchScript, the operator C++.

`NAMESPACE` is replaced by the library's own (`mtdsl_<sha>`) before scripting (runtime/export/atomistic.py).
Imported only by the export: it imports metatomic.
"""

from typing import List, Tuple

import torch
from metatomic.torch import System

from mtdsl.runtime.export.outputs import EnergyInterface


class ExportedNative(EnergyInterface):
    def __init__(self, output: str, cutoffs: List[float], full: List[bool], structure: List[List[int]],
                 constants: List[torch.Tensor], energy_tape: int, per_atom_tape: int, threads: int):
        super().__init__(output, cutoffs)
        self.cutoffs = cutoffs
        self.full = full
        # per structure input: [kind (0 systems, 1 pairs), pairs list, field number]
        self.structure = structure
        self.constants = constants
        self.energy_tape = energy_tape
        self.per_atom_tape = per_atom_tape  # -1: no per-atom output
        self.threads = threads

    def _pairs(self, system: System, k: int) -> List[torch.Tensor]:
        """`[first, second, shifts, vectors]` of the program's k-th pair list: the engine's full
        list cut at the cutoff, oriented as mtdsl's half lists when the program asks for one,
        sorted as mtdsl sorts (first, second, shifts)."""
        samples = system.get_neighbor_list(self._neighbors[k]).samples.values.to(torch.int64)
        first, second, shifts = samples[:, 0], samples[:, 1], samples[:, 2:5]
        positions, cell = system.positions.detach(), system.cell.detach()
        vectors = positions[second] - positions[first] + shifts.to(positions.dtype) @ cell
        distance = torch.linalg.norm(vectors, dim=1)
        keep = (distance < self.cutoffs[k]) & (distance > 0)
        first, second, shifts = first[keep], second[keep], shifts[keep]
        if not self.full[k]:
            total = shifts.sum(dim=1)
            negative = (total < 0) | ((total == 0) & ((shifts[:, 2] < 0) | ((shifts[:, 2] == 0) & (shifts[:, 1] < 0))))
            flip = (first > second) | ((first == second) & negative)
            own_first = torch.where(flip, second, first)
            own_shifts = torch.where(flip.unsqueeze(1), -shifts, shifts)
            own = (own_first == first) & (own_shifts == shifts).all(dim=1)
            first, second, shifts = first[own], second[own], shifts[own]
        order = torch.arange(first.shape[0])
        for column in [shifts[:, 2], shifts[:, 1], shifts[:, 0], second, first]:  # a lexsort: stable sorts
            order = order[torch.sort(column[order], stable=True)[1]]
        first, second, shifts = first[order], second[order], shifts[order]
        vectors = positions[second] - positions[first] + shifts.to(positions.dtype) @ cell
        return [first, second, shifts, vectors]

    def _values(self, system: System, which: int) -> torch.Tensor:
        positions = system.positions
        n_atoms = positions.shape[0]
        real = positions.dtype
        lists = [self._pairs(system, k) for k in range(len(self.cutoffs))]
        inputs: List[torch.Tensor] = []
        for kind_list_field in self.structure:
            kind, k, field = kind_list_field[0], kind_list_field[1], kind_list_field[2]
            if kind == 0:  # systems: types, positions, system, atom, atom_offsets
                if field == 0:
                    inputs.append(system.types.to(torch.int32))
                elif field == 1:
                    inputs.append(positions.detach().to(real))
                elif field == 2:
                    inputs.append(torch.zeros(n_atoms, dtype=torch.int64))
                elif field == 3:
                    inputs.append(torch.arange(n_atoms, dtype=torch.int64))
                else:
                    inputs.append(torch.tensor([0, n_atoms], dtype=torch.int64))
            else:  # pairs: first, second, system, first_atom, second_atom, cell_shifts, vectors, distances, offsets
                first, second, shifts, vectors = lists[k][0], lists[k][1], lists[k][2], lists[k][3]
                if field == 0 or field == 3:
                    inputs.append(first)
                elif field == 1 or field == 4:
                    inputs.append(second)
                elif field == 2:
                    inputs.append(torch.zeros_like(first))
                elif field == 5:
                    inputs.append(shifts.to(real))
                elif field == 6:
                    inputs.append(vectors)
                elif field == 7:
                    inputs.append(torch.linalg.norm(vectors, dim=1))
                else:
                    offsets = torch.zeros(n_atoms + 1, dtype=torch.int64)
                    offsets[1:] = torch.cumsum(torch.bincount(first, minlength=n_atoms), dim=0)
                    inputs.append(offsets)
        counts = [n_atoms, 1] + [int(pairs[0].shape[0]) for pairs in lists]
        return torch.ops.NAMESPACE.energy(positions, system.cell, inputs, self.constants, counts, which,
                                          self.threads)

    def _energies(self, system: System, selected: torch.Tensor, per_atom: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        if bool(selected.all()) and not per_atom:
            return self._values(system, self.energy_tape).reshape(1), torch.zeros(0, dtype=torch.int64)
        if self.per_atom_tape < 0:
            raise ValueError("per-atom energies or a selection of atoms need a per-atom output: the program "
                             "has none (docs/simulation.md)")
        energies = self._values(system, self.per_atom_tape)
        atoms = torch.nonzero(selected).reshape(-1)
        if per_atom:
            return energies[atoms], atoms
        return energies[atoms].sum().reshape(1), atoms
