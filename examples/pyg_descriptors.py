"""An mtdsl descriptor feeding a PyTorch Geometric model, trained on energies.

    .venv/bin/python examples/pyg_descriptors.py [--structures 40] [--epochs 30]

The SOAP power spectrum (examples/soap_power_spectrum.mt) of every atom becomes the node
features `x` of PyG graphs (`mtdsl.pyg.to_data`, `mtdsl.pyg.node_features`); a per-atom MLP
summed over each graph (`global_add_pool`) predicts the EMT energy of rattled Cu/Au cells.
"""

from __future__ import annotations

import argparse
import pathlib

import ase.build
import numpy as np
import torch
from ase.calculators.emt import EMT
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader
from torch_geometric.nn import MLP, global_add_pool

import mtdsl
import mtdsl.pyg

PROGRAM = pathlib.Path(__file__).resolve().parent / "soap_power_spectrum.mt"


def structures(count: int, seed: int = 0) -> list:
    """Rattled 4-atom fcc cells of Cu or Au (with one atom swapped), labelled with EMT energies."""
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(count):
        atoms = ase.build.bulk(["Cu", "Au"][index % 2], "fcc", a=3.9, cubic=True)
        atoms.numbers[rng.integers(4)] = [79, 29][index % 2]
        atoms.rattle(0.1, seed=int(rng.integers(1 << 30)))
        atoms.calc = EMT()
        atoms.info["energy"] = atoms.get_potential_energy()
        frames.append(atoms)
    return frames


def main(argv=None, log=print) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structures", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args(argv)
    torch.manual_seed(0)

    frames = structures(args.structures)
    graphs = [mtdsl.pyg.to_data(atoms) for atoms in frames]
    descriptor = mtdsl.compile(PROGRAM, backend="cpp", cutoff=4.0, n_radial=3, max_angular=2)
    everything = Batch.from_data_list(graphs)
    x, columns = mtdsl.pyg.node_features(descriptor(everything)["ps"], everything)  # the model takes the batch
    x = (x - x.mean(0)) / (x.std(0) + 1e-12)
    for index, graph in enumerate(graphs):
        graph.x = x[everything.ptr[index]:everything.ptr[index + 1]].float()
        graph.y = torch.tensor([frames[index].info["energy"]], dtype=torch.float32)
    mean = float(torch.cat([g.y for g in graphs]).mean())

    mlp = MLP([x.shape[1], 16, 1], norm=None)
    optimizer = torch.optim.Adam(mlp.parameters(), lr=2e-3)
    def energies(batch):
        return global_add_pool(mlp(batch.x), batch.batch).squeeze(-1) + mean

    def full_loss() -> float:
        with torch.no_grad():
            full = Batch.from_data_list(graphs)
            return torch.mean((energies(full) - full.y) ** 2).item()

    history = [full_loss()]  # before training, then after each epoch
    for epoch in range(args.epochs):
        for batch in DataLoader(graphs, batch_size=8, shuffle=True):
            loss = torch.mean((energies(batch) - batch.y) ** 2)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        history.append(full_loss())
        log(f"epoch {epoch:3d}  energy MSE {history[-1]:.5f} eV^2  ({len(columns)} features per atom)")
    return {"history": history, "features": len(columns)}


if __name__ == "__main__":
    main()
