"""Time per MD step (energy + forces) of the SOAP energy model, three ways, side by side:

(a) mtdsl's `model.as_calculator()` (ASE);
(b) the same model exported (`model.export(..., runtime="cpp")`: its C++ operator, no Python of
    mtdsl in the step) and run by metatomic's ASE calculator (`metatomic_ase.MetatomicCalculator`);
(c) the model as metatensor users build it today: featomic-torch's `SoapPowerSpectrum` and a
    linear layer per central species (the same weights) in a TorchScript metatomic
    `AtomisticModel`, under the same metatomic calculator.

    .venv/bin/python benchmarks/bench_md.py [--threads 2] [--repeats 3] [--atoms 1000]

On 1000-atom silicon (diamond) and a 1000-atom copper/silver/gold alloy (fcc); each step moves
the atoms (a new geometry: neighbour lists, energy, forces and stress, as an ASE MD step asks).
Calls are interleaved and the best of `--repeats` kept. Prints the three energies and the largest
relative differences of energies and forces against (a), the times and the ratios (a)/(c) and
(b)/(c). Exits with status 1 when (b) or (c) differ from (a) by more than `AGREEMENT` (relative):
the ratios would then compare different computations. All three share the hypers below,
`center_atom_weight` included (the example's and featomic's default 1.0: a run before this check
gave featomic 0.0 and mtdsl 1.0, energies differing by ~0.1%).
"""

import os
import sys
import tempfile

from _common import alloy, pin_threads, side_by_side, silicon, soap_hypers, timing_parser


def parse():
    parser = timing_parser(__doc__, repeats=3)
    parser.add_argument("--atoms", type=int, default=1000, help="a multiple of 8 (silicon) and of 100 (alloy)")
    return parser.parse_args()


ARGS = parse() if __name__ == "__main__" else None
if ARGS is not None:
    pin_threads(ARGS.threads)

import warnings  # noqa: E402
from typing import Dict, List, Optional  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import mtdsl  # noqa: E402
from metatensor.torch import Labels, TensorBlock, TensorMap  # noqa: E402
from metatomic.torch import AtomisticModel, ModelCapabilities, ModelMetadata, ModelOutput, System  # noqa: E402

PROGRAM = os.path.join(os.path.dirname(__file__), "..", "examples", "soap_energy.mt")
CUTOFF, N_RADIAL, MAX_ANGULAR, WIDTH = 5.0, 5, 4, 0.3
# the central atom's weight in its own density: passed to both mtdsl.compile and featomic
CENTER_ATOM_WEIGHT = 1.0
AGREEMENT = 1e-8
HYPERS = soap_hypers(CUTOFF, N_RADIAL, MAX_ANGULAR, WIDTH, center_atom_weight=CENTER_ATOM_WEIGHT)


class SoapLinear(torch.nn.Module):
    """(c): featomic-torch's power spectrum + a linear layer per central species."""

    def __init__(self, species, w, e0):
        import featomic.torch

        super().__init__()
        self.calculator = featomic.torch.SoapPowerSpectrum(**HYPERS)
        self.layers = torch.nn.ModuleDict()
        # the (b1 <= b2) neighbour pairs, moved to properties in this order (absent pairs as zeros);
        # each block's own properties are (l, n_1, n_2), l slowest: w[a, b1, b2] flattened
        pairs = [(b1, b2) for b1 in range(len(species)) for b2 in range(b1, len(species))]
        self.pairs = Labels(["neighbor_1_type", "neighbor_2_type"],
                            torch.tensor([[species[b1], species[b2]] for b1, b2 in pairs], dtype=torch.int32))
        for a, center in enumerate(species):
            columns = [w[a, b1, b2].reshape(-1) for b1, b2 in pairs]
            layer = torch.nn.Linear(sum(c.size for c in columns), 1, dtype=torch.float64)
            with torch.no_grad():
                layer.weight.copy_(torch.from_numpy(np.concatenate(columns))[None])
                layer.bias.fill_(float(e0[a]))
            self.layers[str(center)] = layer

    def forward(self, systems: List[System], outputs: Dict[str, ModelOutput],
                selected_atoms: Optional[Labels] = None) -> Dict[str, TensorMap]:
        ps = self.calculator(systems, selected_samples=selected_atoms)
        ps = ps.keys_to_properties(self.pairs)
        energies = torch.zeros(len(systems), 1, dtype=torch.float64)
        for name, layer in self.layers.items():
            block = ps.block({"center_type": int(name)})
            systems_index = block.samples.column("system").to(torch.int64)
            energies = energies.index_add(0, systems_index, layer(block.values))
        block = TensorBlock(energies, Labels(["system"], torch.arange(len(systems), dtype=torch.int32)[:, None]),
                            [], Labels(["energy"], torch.tensor([[0]], dtype=torch.int32)))
        return {"energy": TensorMap(Labels(["_"], torch.tensor([[0]], dtype=torch.int32)), [block])}


def featomic_model(species, w, e0):
    capabilities = ModelCapabilities(outputs={"energy": ModelOutput(unit="eV", sample_kind="system")},
                                     atomic_types=list(species), interaction_range=CUTOFF, length_unit="angstrom",
                                     supported_devices=["cpu"], dtype="float64")
    return AtomisticModel(SoapLinear(species, w, e0).eval(), ModelMetadata(name="featomic-soap-linear"), capabilities)


def step_function(atoms, calculator):
    """One MD step's force evaluation: the atoms moved, then energy and forces (and stress)."""
    atoms = atoms.copy()
    atoms.calc = calculator
    rng = np.random.default_rng(1)

    def step():
        atoms.positions += rng.normal(scale=1e-3, size=atoms.positions.shape)
        return atoms.get_potential_energy(), atoms.get_forces()

    return step


def compare(name, atoms, directory):
    from metatomic_ase import MetatomicCalculator

    species = sorted(set(int(z) for z in atoms.numbers))
    model = mtdsl.compile(PROGRAM, species=species, cutoff=CUTOFF, n_radial=N_RADIAL, max_angular=MAX_ANGULAR,
                          atomic_width=WIDTH, center_atom_weight=CENTER_ATOM_WEIGHT, threads=ARGS.threads)
    rng = np.random.default_rng(2)
    model.parameters = {"w": 1e-3 * rng.normal(size=model.parameters["w"].shape),
                        "e0": rng.normal(size=model.parameters["e0"].shape)}
    ours = model.as_calculator()
    # featomic-torch's extension stays where pip put it (loaded in this process already)
    peer_path = os.path.join(directory, f"{name}-featomic.pt")
    featomic_model(species, model.parameters["w"], model.parameters["e0"]).save(peer_path)
    peer = MetatomicCalculator(peer_path)
    exported_path = os.path.join(directory, f"{name}-mtdsl.pt")
    model.export(exported_path, extensions_directory=os.path.join(directory, "mtdsl-extensions"), runtime="cpp")
    exported = MetatomicCalculator(exported_path, extensions_directory=os.path.join(directory, "mtdsl-extensions"))
    calculators = [ours, exported, peer]
    energies, forces = [], []
    for calculator in calculators:
        copy = atoms.copy()
        copy.calc = calculator
        energies.append(copy.get_potential_energy())
        forces.append(copy.get_forces())
    times = [wall for wall, _ in side_by_side([step_function(atoms, c) for c in calculators], ARGS.repeats)]
    print(f"{name}: {len(atoms)} atoms; energies (a) {energies[0]:.8f} (b) {energies[1]:.8f} (c) {energies[2]:.8f}")
    worst = check_agreement(energies, forces)
    print(f"  (a) as_calculator() {times[0] * 1e3:8.1f} ms/step   (a)/(c) {times[0] / times[2]:.2f}")
    print(f"  (b) exported (C++)  {times[1] * 1e3:8.1f} ms/step   (b)/(c) {times[1] / times[2]:.2f}")
    print(f"  (c) featomic-torch  {times[2] * 1e3:8.1f} ms/step")
    return worst


def check_agreement(energies, forces) -> float:
    """Print the largest relative differences of (b) and (c) against (a); return the worst."""
    worst = 0.0
    for k, label in ((1, "(b)"), (2, "(c)")):
        energy = abs(energies[k] - energies[0]) / abs(energies[0])
        force = np.abs(forces[k] - forces[0]).max() / np.abs(forces[0]).max()
        print(f"  {label} vs (a): energy {energy:.1e}, forces {force:.1e} (relative)")
        worst = max(worst, energy, force)
    return worst


def main():
    import featomic

    warnings.filterwarnings("ignore")
    torch.set_num_threads(ARGS.threads)
    print(f"threads {ARGS.threads}, best of {ARGS.repeats}; featomic-torch {featomic.__version__}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as directory:
        worst = max(compare("silicon", silicon(ARGS.atoms), directory),
                    compare("CuAgAu", alloy(ARGS.atoms), directory))
    if worst > AGREEMENT:
        print(f"the three computations disagree ({worst:.1e} > {AGREEMENT:.0e} relative): the ratios are not comparable")
        sys.exit(1)


if __name__ == "__main__":
    main()
