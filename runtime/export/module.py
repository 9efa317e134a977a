"""The TorchScript module inside an exported model (runtime/export/atomistic.py): metatomic's
`ModelInterface` over the `mtdsl_export::energy` operator (runtime/export/ops.py).

Imported only by the export and by exported models' users: it imports metatomic.
"""

from typing import Dict, List, Optional

import torch
from metatensor.torch import Labels, TensorMap
from metatomic.torch import ModelOutput, NeighborListOptions, System

from mtdsl.runtime.export.outputs import energy_map, selected_in


class ExportedEnergy(torch.nn.Module):
    """Energy (per system, or per atom when the program has a per-atom output) of a compiled
    model, from the neighbour lists the engine computes for `requested_neighbor_lists()`."""

    def __init__(self, blob: torch.Tensor, key: str, output: str, cutoffs: List[float], per_atom: bool):
        super().__init__()
        self.register_buffer("blob", blob)
        self.key = key
        self.output = output
        self.has_per_atom = per_atom
        # full lists always: the operator derives the program's half lists in its own orientation
        self._neighbors = [NeighborListOptions(cutoff=c, full_list=True, strict=True, requestor="mtdsl")
                           for c in cutoffs]

    def requested_neighbor_lists(self) -> List[NeighborListOptions]:
        return self._neighbors

    def forward(self, systems: List[System], outputs: Dict[str, ModelOutput],
                selected_atoms: Optional[Labels] = None) -> Dict[str, TensorMap]:
        if self.output not in outputs:
            return {}
        per_atom = outputs[self.output].sample_kind == "atom"
        values: List[torch.Tensor] = []
        samples: List[torch.Tensor] = []
        for index, system in enumerate(systems):
            n_atoms = system.positions.shape[0]
            selected = selected_in(selected_atoms, index, n_atoms)
            pairs: List[torch.Tensor] = []
            for options in self._neighbors:
                pairs.append(system.get_neighbor_list(options).samples.values.to(torch.int64))
            result = torch.ops.mtdsl_export.energy(self.blob, self.key, system.positions, system.cell,
                                                   system.types, system.pbc, pairs, selected, per_atom)
            if per_atom:
                atoms = torch.nonzero(selected).reshape(-1)
                values.append(result[0][atoms])
                samples.append(torch.stack([torch.full_like(atoms, index), atoms], dim=1))
            else:
                values.append(result[0])
                samples.append(torch.tensor([[index]], dtype=torch.int64))
        return energy_map(self.output, values, samples, per_atom)
