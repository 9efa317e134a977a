"""Small systems and compiled reference programs for the torch module tests."""

import functools
import pathlib

import ase
import ase.build
import numpy as np
import torch

import mtdsl
from mtdsl.tensor import Labels, TensorBlock, TensorMap

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"

#: small hypers: few radial functions and degrees, a short cutoff
HYPERS = {
    "spherical_expansion": dict(cutoff=3.5, n_radial=2, max_angular=2),
    "soap_power_spectrum": dict(cutoff=3.5, n_radial=2, max_angular=2),
    "soap_energy": dict(cutoff=3.5, n_radial=2, max_angular=2, species=[1, 6, 8, 14]),
    "equivariant_convolution": dict(cutoff=3.5, lmax=1, width=2),
}
PROGRAMS = tuple(HYPERS)


@functools.lru_cache(maxsize=None)
def compiled(program: str, backend: str = "cpp"):
    """The program with random parameters (seeded), compiled once per test session."""
    model = mtdsl.compile(EXAMPLES / f"{program}.mt", backend=backend, **HYPERS[program])
    rng = np.random.default_rng(7)
    for name, value in model.parameters.items():
        model.parameters[name] = rng.normal(size=np.shape(value))
    return model


def atoms():
    """A water molecule (no cell) and a rattled two-atom periodic crystal of two species."""
    water = ase.Atoms("OH2", positions=[[0, 0, 0], [0.757, 0.586, 0.1], [-0.757, 0.586, -0.05]])
    crystal = ase.build.bulk("Si", "diamond", a=5.43)
    crystal.numbers[1] = 6
    crystal.rattle(0.1, seed=3)
    return [water, crystal]


def systems(positions=None, cells=None, requires_grad=False):
    """`mtdsl.System`s of `atoms()` with float64 torch positions and cells (given ones replace them)."""
    result = []
    for index, frame in enumerate(atoms()):
        position = torch.tensor(frame.positions) if positions is None else positions[index]
        cell = torch.tensor(frame.cell.array) if cells is None else cells[index]
        if requires_grad:
            position = position.detach().requires_grad_(True)
            cell = cell.detach().requires_grad_(True)
        result.append(mtdsl.System(torch.tensor(frame.numbers), position, cell, torch.tensor(frame.pbc)))
    return result


def features(program: str, seed: int = 0, requires_grad: bool = False) -> dict:
    """The convolution's input `h` (random, torch values) for `systems()`; no input for the others."""
    if program != "equivariant_convolution":
        return {}
    rng = np.random.default_rng(seed)
    frames = atoms()
    samples = Labels(["system", "atom"], np.array(
        [[s, a] for s, frame in enumerate(frames) for a in range(len(frame))], dtype=np.int32))
    width, lmax = HYPERS[program]["width"], HYPERS[program]["lmax"]
    blocks = []
    for l in range(lmax + 1):
        values = torch.tensor(rng.normal(size=(len(samples), 2 * l + 1, width)), requires_grad=requires_grad)
        blocks.append(TensorBlock(values, samples, [Labels(["o3_mu"], np.arange(-l, l + 1, dtype=np.int32)[:, None])],
                                  Labels(["q"], np.arange(width, dtype=np.int32)[:, None])))
    keys = Labels(["o3_lambda", "o3_sigma"], np.array([[l, 1] for l in range(lmax + 1)], dtype=np.int32))
    return {"h": TensorMap(keys, blocks)}


def flat_values(outputs: dict) -> torch.Tensor:
    return torch.cat([b.values.reshape(-1) for tensor in outputs.values() for b in tensor.blocks()])
