"""The TorchScript module inside an exported model (runtime/export/atomistic.py): metatomic's
`ModelInterface` over the `mtdsl_export::energy` operator (runtime/export/ops.py).

Imported only by the export and by exported models' users: it imports metatomic.
"""

from typing import List, Tuple

import torch
from metatomic.torch import System

from mtdsl.runtime.export.outputs import EnergyInterface


class ExportedEnergy(EnergyInterface):
    """Energy (per system, or per atom when the program has a per-atom output) of a compiled
    model, from the neighbour lists the engine computes for `requested_neighbor_lists()`."""

    def __init__(self, blob: torch.Tensor, key: str, output: str, cutoffs: List[float], per_atom: bool):
        super().__init__(output, cutoffs)
        self.register_buffer("blob", blob)
        self.key = key
        self.has_per_atom = per_atom

    def _energies(self, system: System, selected: torch.Tensor, per_atom: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        pairs: List[torch.Tensor] = []
        for options in self._neighbors:
            pairs.append(system.get_neighbor_list(options).samples.values.to(torch.int64))
        result = torch.ops.mtdsl_export.energy(self.blob, self.key, system.positions, system.cell,
                                               system.types, system.pbc, pairs, selected, per_atom)
        if per_atom:
            atoms = torch.nonzero(selected).reshape(-1)
            return result[0][atoms], atoms
        return result[0], torch.zeros(0, dtype=torch.int64)
