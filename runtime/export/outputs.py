"""What the two TorchScript modules of an exported model share (runtime/export/module.py,
runtime/export/native_module.py): the atoms an engine selected in one system, and the energy
TensorMap metatomic expects back. TorchScript: scripted together with the module calling them.

Imported only by the export and by exported models' users: it imports metatensor-torch.
"""

from typing import Dict, List, Optional

import torch
from metatensor.torch import Labels, TensorBlock, TensorMap


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
