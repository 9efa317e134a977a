"""What the two TorchScript modules of an exported model share (runtime/export/module.py,
runtime/export/native_module.py): metatomic's `ModelInterface` over one energy output
(`EnergyInterface`: the neighbour lists it asks for, and `forward` over the systems), the atoms an
engine selected in one system, and the energy TensorMap metatomic expects back. TorchScript:
scripted together with the module calling them.

Imported only by the export and by exported models' users: it imports metatensor-torch.
"""

from typing import Dict, List, Optional, Tuple

import torch
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import ModelOutput, NeighborListOptions, System


def selected_in(selected_atoms: Optional[Labels], system: int, n_atoms: int) -> torch.Tensor:
    """The mask of the atoms of system number `system` that the engine selected (all of them
    when it selected none)."""
    if selected_atoms is None:
        return torch.ones(n_atoms, dtype=torch.bool)
    selected = torch.zeros(n_atoms, dtype=torch.bool)
    rows = selected_atoms.values
    mine = rows[:, 0] == system
    selected[rows[mine][:, 1].to(torch.int64)] = True
    return selected


def energy_map(output: str, values: List[torch.Tensor], samples: List[torch.Tensor],
               per_atom: bool) -> Dict[str, TensorMap]:
    """`{output: energies}` as metatomic's energy output: one block, samples `system` (and
    `atom` per atom), one property."""
    names = ["system", "atom"] if per_atom else ["system"]
    block = TensorBlock(
        values=torch.cat(values).reshape(-1, 1),
        samples=Labels(names, torch.cat(samples).to(torch.int32)),
        components=[],
        properties=Labels(["energy"], torch.tensor([[0]], dtype=torch.int32)),
    )
    return {output: TensorMap(Labels(["_"], torch.tensor([[0]], dtype=torch.int32)), [block])}


class EnergyInterface(torch.nn.Module):
    """metatomic's `ModelInterface` for the energy `output` of an exported model: full neighbour
    lists at `cutoffs` (the operators derive the program's half lists in their own orientation),
    and `forward` over the systems; a subclass gives one system's energies (`_energies`)."""

    def __init__(self, output: str, cutoffs: List[float]):
        super().__init__()
        self.output = output
        self._neighbors = [NeighborListOptions(cutoff=c, full_list=True, strict=True, requestor="mtdsl")
                           for c in cutoffs]

    def requested_neighbor_lists(self) -> List[NeighborListOptions]:
        return self._neighbors

    def _energies(self, system: System, selected: torch.Tensor, per_atom: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        """`(values, atoms)`: the energy of the `selected` atoms of `system` (`atoms` empty), or
        with `per_atom` the energies of the selected `atoms`."""
        raise NotImplementedError("a subclass computes the energies")

    def forward(self, systems: List[System], outputs: Dict[str, ModelOutput],
                selected_atoms: Optional[Labels] = None) -> Dict[str, TensorMap]:
        if self.output not in outputs:
            return {}
        per_atom = outputs[self.output].sample_kind == "atom"
        values: List[torch.Tensor] = []
        samples: List[torch.Tensor] = []
        for index, system in enumerate(systems):
            selected = selected_in(selected_atoms, index, system.positions.shape[0])
            energies, atoms = self._energies(system, selected, per_atom)
            values.append(energies)
            if per_atom:
                samples.append(torch.stack([torch.full_like(atoms, index), atoms], dim=1))
            else:
                samples.append(torch.tensor([[index]], dtype=torch.int64))
        return energy_map(self.output, values, samples, per_atom)
