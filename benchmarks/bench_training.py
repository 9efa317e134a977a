"""One training step of the SOAP energy model: mtdsl's `to_torch()` against featomic-torch, side by side.

    .venv/bin/python benchmarks/bench_training.py [--threads 2] [--repeats 3] [--atoms 1000]

A step is what examples/train_soap_energy.py does per batch: the energy of a
1,000-atom structure (fcc, 5 x 5 x 10 cubic cells of Cu with a third of the
sites Ag and a third Au, rattled), the forces `-dE/dpositions` by autograd with
`create_graph=True`, a loss on both, `loss.backward(inputs=parameters)` (the
parameters' gradient only, as the training example does: no second derivatives
with respect to the positions, which featomic-torch does not compute either).
The model is the same on both sides: a SOAP power spectrum (cutoff 5.5,
cosine smoothing 0.5, 5 radial functions, max_angular 4, Gaussian width 0.3,
no central-atom contribution) and per-species linear weights plus per-species
energies.

- mtdsl: `mtdsl.compile("examples/soap_energy.mt", species=[29, 47, 79], ...)
  .to_torch()` (the cpp backend forward; in the VJPs the power spectrum by its
  native VJP / JVP kernels, the energy by torch autograd through the IR,
  docs/torch.md);
- peer: `featomic.torch.SoapPowerSpectrum` (featomic-torch, which differentiates
  the power spectrum through its own position gradients), keys moved to
  properties with metatensor-torch, then one `torch.nn.Linear(features, 1)` per
  central species (its bias is the per-species energy).

Both take their parameters from the same random draw. Prints the best wall time
of each (calls interleaved), of the forward alone and of the whole step, the
ratio mtdsl / featomic-torch of wall-clock and of process CPU time (all
threads); the two energies and losses are printed to show that the models
agree. The positions require grad in both forwards: featomic-torch computes
its position gradients there, mtdsl only when the backward asks.
"""

from __future__ import annotations

import os
import sys

from _common import ALLOY_SPECIES, alloy, pin_threads, side_by_side, soap_hypers, timing_parser


def parse():
    parser = timing_parser(__doc__, repeats=3)
    parser.add_argument("--atoms", type=int, default=1000, help="a multiple of 100")
    return parser.parse_args()


ARGS = parse() if __name__ == "__main__" else None
if ARGS is not None:
    pin_threads(ARGS.threads)

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import mtdsl  # noqa: E402

PROGRAM = os.path.join(os.path.dirname(__file__), "..", "examples", "soap_energy.mt")
SPECIES = ALLOY_SPECIES
CUTOFF, N_RADIAL, MAX_ANGULAR, WIDTH = 5.5, 5, 4, 0.3
HYPERS = soap_hypers(CUTOFF, N_RADIAL, MAX_ANGULAR, WIDTH, center_atom_weight=1.0)


def step(energy_function, parameters, atoms, reference_energy, reference_forces, backward=True):
    """One training step's autograd work: energy, forces (create_graph), loss, backward."""
    positions = torch.tensor(atoms.positions, dtype=torch.float64, requires_grad=True)
    energy = energy_function(positions)
    if not backward:
        return energy.detach()
    forces = -torch.autograd.grad(energy, positions, create_graph=True)[0]
    loss = (energy - reference_energy) ** 2 / len(atoms) + torch.mean((forces - reference_forces) ** 2)
    for parameter in parameters:
        parameter.grad = None
    loss.backward(inputs=parameters)  # the parameters only: no second derivatives w.r.t. positions
    return loss.detach()


class Ours:
    def __init__(self, atoms, w, e0):
        model = mtdsl.compile(PROGRAM, species=SPECIES, cutoff=CUTOFF, n_radial=N_RADIAL,
                              max_angular=MAX_ANGULAR, atomic_width=WIDTH, threads=ARGS.threads)
        self.module = model.to_torch()
        with torch.no_grad():
            self.module.w.copy_(torch.from_numpy(w))
            self.module.e0.copy_(torch.from_numpy(e0))
        self.atoms = atoms

    def __call__(self, positions):
        atoms = self.atoms
        system = mtdsl.System(torch.tensor(atoms.numbers), positions,
                              torch.tensor(atoms.cell.array, dtype=torch.float64), torch.tensor(atoms.pbc))
        return self.module([system])["energy"].block().values.sum()


class Featomic:
    def __init__(self, atoms, w, e0):
        import featomic.torch

        self.calculator = featomic.torch.SoapPowerSpectrum(**HYPERS)
        self.atoms = atoms
        self.layers = torch.nn.ModuleDict()
        # the same parameters: w[a, b1, b2, l, n1, n2] for b1 <= b2, in featomic's property order
        for a, center in enumerate(SPECIES):
            columns = []
            for b1 in range(len(SPECIES)):
                for b2 in range(b1, len(SPECIES)):
                    columns.append(w[a, b1, b2].reshape(-1))  # (l, n1, n2), n1 and n2 fastest
            layer = torch.nn.Linear(sum(c.size for c in columns), 1, dtype=torch.float64)
            with torch.no_grad():
                layer.weight.copy_(torch.from_numpy(np.concatenate(columns))[None])
                layer.bias.fill_(e0[a])
            self.layers[str(center)] = layer
        self.check_properties()

    def system(self, positions):
        from metatomic.torch import System

        atoms = self.atoms
        return System(types=torch.tensor(atoms.numbers, dtype=torch.int32), positions=positions,
                      cell=torch.tensor(atoms.cell.array, dtype=torch.float64), pbc=torch.tensor(atoms.pbc))

    def power_spectrum(self, positions):
        ps = self.calculator([self.system(positions)])
        return ps.keys_to_properties(["neighbor_1_type", "neighbor_2_type"])

    def check_properties(self):
        """The properties after keys_to_properties are (b1, b2, l, n1, n2), b1 <= b2, in the order above."""
        ps = self.power_spectrum(torch.tensor(self.atoms.positions, dtype=torch.float64))
        expected = [(b1, b2, l, n1, n2) for i, b1 in enumerate(SPECIES) for b2 in SPECIES[i:]
                    for l in range(MAX_ANGULAR + 1) for n1 in range(N_RADIAL) for n2 in range(N_RADIAL)]
        for block in ps.blocks():
            found = [tuple(int(v) for v in row) for row in block.properties.values]
            names = block.properties.names
            order = [names.index(n) for n in ("neighbor_1_type", "neighbor_2_type", "l", "n_1", "n_2")]
            found = [tuple(row[k] for k in order) for row in found]
            if found != expected:
                raise SystemExit("featomic's power spectrum properties are not in the expected order")

    def __call__(self, positions):
        ps = self.power_spectrum(positions)
        energy = positions.new_zeros(())
        for key, block in ps.items():
            energy = energy + self.layers[str(int(key[0]))](block.values).sum()
        return energy


def main():
    import featomic

    # featomic-torch warns that it drops second derivatives with respect to positions: the step
    # needs the mixed derivative (positions x parameters) only, which it has
    warnings.filterwarnings("ignore", message="second derivatives with respect to positions")

    torch.set_num_threads(ARGS.threads)
    atoms = alloy(ARGS.atoms)
    rng = np.random.default_rng(1)
    n = len(SPECIES)
    w = rng.normal(0.0, 1e-3, size=(n, n, n, MAX_ANGULAR + 1, N_RADIAL, N_RADIAL))
    e0 = rng.normal(-0.1, 0.1, size=n)
    reference_energy = torch.tensor(0.0, dtype=torch.float64)
    reference_forces = torch.zeros((len(atoms), 3), dtype=torch.float64)

    ours, theirs = Ours(atoms, w, e0), Featomic(atoms, w, e0)
    ours_parameters, their_parameters = list(ours.module.parameters()), list(theirs.layers.parameters())
    calls = {}
    for name, model, parameters in (("mtdsl", ours, ours_parameters), ("featomic", theirs, their_parameters)):
        for backward in (False, True):
            calls[name, backward] = (lambda m=model, p=parameters, b=backward:
                                     step(m, p, atoms, reference_energy, reference_forces, backward=b))

    energies = [float(calls[name, False]()) for name in ("mtdsl", "featomic")]
    losses = [float(calls[name, True]()) for name in ("mtdsl", "featomic")]
    print(f"{len(atoms)} atoms (fcc Cu/Ag/Au, rattled), cutoff {CUTOFF}, {N_RADIAL} radial, max_angular "
          f"{MAX_ANGULAR}, width {WIDTH}; {ARGS.threads} threads, best of {ARGS.repeats}; "
          f"featomic-torch {featomic.torch.__version__} (featomic {featomic.__version__}), torch {torch.__version__}")
    print(f"energy: mtdsl {energies[0]:.10f}, featomic-torch {energies[1]:.10f}; "
          f"loss: mtdsl {losses[0]:.10f}, featomic-torch {losses[1]:.10f}")
    print(f"{'':<44}{'mtdsl (s)':>11}{'featomic-torch (s)':>20}{'ratio':>8}{'CPU ratio':>11}")
    for backward, name in ((False, "forward (energy)"), (True, "training step (energy, forces, backward)")):
        (mine, mine_cpu), (theirs_time, theirs_cpu) = side_by_side(
            [calls["mtdsl", backward], calls["featomic", backward]], ARGS.repeats)
        print(f"{name:<44}{mine:>11.3f}{theirs_time:>20.3f}{mine / theirs_time:>7.2f}x"
              f"{mine_cpu / theirs_cpu:>10.2f}x")
    print("(wall: what a user waits; CPU: process time of all threads, steadier on a loaded machine)")


if __name__ == "__main__":
    main()
