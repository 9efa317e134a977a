"""Train examples/soap_energy.mt on EMT energies and forces of Cu, Ag and Au.

    .venv/bin/python examples/train_soap_energy.py [--epochs 60] [--structures 200] [--output out/training]

1. Makes `--structures` small periodic structures (fixed seed): fcc bulk of Cu,
   Ag and Au in 8-atom cells and (111) and (100) slabs of 12 atoms with vacuum,
   each strained (symmetric strain up to 3 %, in the plane for slabs) and
   rattled (0.02 to 0.12 A), labelled with ASE's EMT calculator.
2. Splits them 80 / 20 into training and validation sets (fixed seed).
3. Baselines on the validation set: a zero-force model (force RMSE = RMS of
   the forces) and a per-species constant energy (`E = sum_a n_a e_a`, `e_a`
   least-squares fitted on the training energies).
4. Compiles examples/soap_energy.mt (cutoff 5.5, 5 radial, max_angular 4),
   takes `model.to_torch()` and trains its two parameters, `w` (linear
   weights on the power spectrum `ps`) and `e0` (per-species energies), with
   Adam on energies and forces, the forces being `-dE/dpositions` by autograd
   (`create_graph=True`). The loss is
   `mean((dE / n_atoms)^2) / sigma_E^2 + mean(dF^2) / sigma_F^2`, where
   `sigma_E` is the baseline's RMS error per atom and `sigma_F` the RMS force on
   the training set: both terms start near 1, whatever the units.
   Adam works in centred coordinates: it trains `w` and `u`, with
   `e0[a] = u[a] - sum(w[a] * mean_ps[a])` (`mean_ps[a]`: the mean power
   spectrum of the training atoms of species `a`), so that moving `w` does not
   move every energy by `w . mean_ps`; `u` starts at the baseline's `e_a`, `w`
   at zero. The module's own `e0` is set from `u` and `w` at the end. (Without
   the centring, the same number of steps gives energies about twice as far
   off.)
5. Prints the validation energy MAE and force RMSE next to the baselines,
   writes `parity.png` (predicted against EMT energies and force components on
   the validation set, and the validation errors along training) and
   `metrics.json`, saves the trained parameters (`soap_energy.pt`, a
   `state_dict`, and `soap_energy.npz`, the file `mtdsl.compile(parameters=)` reads), loads them into a freshly compiled module and checks that it
   predicts the same energies and forces.

A progress bar (tqdm) shows only when stderr is a terminal.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import ase
import ase.build
import numpy as np
import torch
from ase.calculators.emt import EMT
from tqdm import tqdm

import mtdsl

HERE = pathlib.Path(__file__).resolve().parent
PROGRAM = HERE / "soap_energy.mt"

# fcc lattice constants (A) near EMT's equilibrium
METALS = {"Cu": 3.61, "Ag": 4.09, "Au": 4.08}
SPECIES = sorted(ase.data.atomic_numbers[name] for name in METALS)


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structures", type=int, default=200, help="structures made (80 %% trained on)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32, help="structures per Adam step")
    parser.add_argument("--lr", type=float, default=0.1, help="initial learning rate")
    parser.add_argument("--final-lr", type=float, default=0.01, help="learning rate of the last epoch (exponential decay)")
    parser.add_argument("--cutoff", type=float, default=5.5)
    parser.add_argument("--n-radial", type=int, default=5)
    parser.add_argument("--max-angular", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=pathlib.Path, default=HERE.parent / "out" / "training")
    return parser.parse_args(argv)


# ---- data -------------------------------------------------------------------------------------


def make_structures(count: int, seed: int) -> list[ase.Atoms]:
    """Strained, rattled fcc bulk and slabs of each metal in turn, with EMT energies and forces
    in `atoms.info["energy"]` and `atoms.arrays["forces"]`."""
    rng = np.random.default_rng(seed)
    names = list(METALS)
    frames = []
    for index in range(count):
        metal = names[index % len(names)]
        a = METALS[metal]
        kind = index // len(names) % 3
        if kind == 0:
            atoms = ase.build.bulk(metal, "fcc", a=a, cubic=True) * (1, 1, 2)
        else:
            build = ase.build.fcc111 if kind == 1 else ase.build.fcc100
            atoms = build(metal, size=(2, 2, 3), a=a, vacuum=5.0, periodic=True)
        strain = rng.uniform(-0.03, 0.03, size=(3, 3))
        strain = (strain + strain.T) / 2
        if kind != 0:
            strain[2, :] = strain[:, 2] = 0.0  # slabs: strained in the surface plane only
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + strain), scale_atoms=True)
        atoms.rattle(rng.uniform(0.02, 0.12), seed=int(rng.integers(2**31)))
        atoms.calc = EMT()
        atoms.info["energy"] = atoms.get_potential_energy()
        atoms.arrays["forces"] = atoms.get_forces()
        atoms.calc = None
        frames.append(atoms)
    return frames


def split(count: int, seed: int, validation: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices, a fixed random permutation."""
    order = np.random.default_rng(seed + 1).permutation(count)
    n_validation = max(1, round(validation * count))
    return np.sort(order[n_validation:]), np.sort(order[:n_validation])


def energies(frames) -> np.ndarray:
    return np.array([atoms.info["energy"] for atoms in frames])


def forces(frames) -> np.ndarray:
    return np.concatenate([atoms.arrays["forces"] for atoms in frames])


def species_counts(frames) -> np.ndarray:
    return np.array([[np.sum(atoms.numbers == z) for z in SPECIES] for atoms in frames], dtype=float)


def fit_species_energies(frames) -> np.ndarray:
    """Per-species energies `e_a` minimising `sum_s (E_s - sum_a n_sa e_a)^2` (least squares)."""
    return np.linalg.lstsq(species_counts(frames), energies(frames), rcond=None)[0]


# ---- the model ----------------------------------------------------------------------------------


def to_systems(frames) -> tuple[list[mtdsl.System], list[torch.Tensor]]:
    """Torch systems, their positions requiring grad (for the forces)."""
    systems, positions = [], []
    for atoms in frames:
        position = torch.tensor(atoms.positions, dtype=torch.float64, requires_grad=True)
        systems.append(mtdsl.System(torch.tensor(atoms.numbers), position,
                                    torch.tensor(atoms.cell.array, dtype=torch.float64), torch.tensor(atoms.pbc)))
        positions.append(position)
    return systems, positions


def predict(module, frames, create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Energies `[structures]` and forces `[atoms, 3]` (`-dE/dpositions`)."""
    systems, positions = to_systems(frames)
    block = module(systems)["energy"].block()
    rows = torch.as_tensor(np.asarray(block.samples.column("system"), dtype=np.int64))
    energy = torch.zeros(len(frames), dtype=torch.float64).index_add(0, rows, block.values[:, 0])
    gradient = torch.autograd.grad(energy.sum(), positions, create_graph=create_graph)
    if not create_graph:
        energy = energy.detach()
    return energy, -torch.cat(gradient)


def evaluate(module, frames, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Predicted energies and forces of `frames` (numpy), by batches."""
    predicted = [predict(module, frames[k:k + batch_size]) for k in range(0, len(frames), batch_size)]
    return (np.concatenate([e.numpy() for e, _ in predicted]),
            np.concatenate([f.detach().numpy() for _, f in predicted]))


def errors(frames, predicted_energies, predicted_forces) -> dict[str, float]:
    n_atoms = np.array([len(atoms) for atoms in frames])
    energy_error = predicted_energies - energies(frames)
    return {
        "energy_mae": float(np.mean(np.abs(energy_error))),
        "energy_mae_per_atom": float(np.mean(np.abs(energy_error) / n_atoms)),
        "force_rmse": float(np.sqrt(np.mean((predicted_forces - forces(frames)) ** 2))),
    }


def mean_power_spectrum(frames, args) -> np.ndarray:
    """The mean power spectrum of the atoms of each species, in the layout of the param
    `w[a, b1, b2, l, n1, n2]` (zero where b1 > b2, as `w` is used only for b1 <= b2)."""
    model = mtdsl.compile(HERE / "soap_power_spectrum.mt", cutoff=args.cutoff, n_radial=args.n_radial,
                          max_angular=args.max_angular)
    ps = model([mtdsl.System.from_ase(atoms) for atoms in frames])["ps"]
    position = {z: k for k, z in enumerate(SPECIES)}
    n = len(SPECIES)
    mean = np.zeros((n, n, n, args.max_angular + 1, args.n_radial, args.n_radial))
    for key, block in ps.items():
        a, b1, b2 = (position[int(key[name])] for name in ("center_type", "neighbor_1_type", "neighbor_2_type"))
        l, n1, n2 = (np.asarray(block.properties.column(name)) for name in ("l", "n_1", "n_2"))
        mean[a, b1, b2, l, n1, n2] = np.asarray(block.values).mean(axis=0)
    return mean


class CentredEnergy(torch.nn.Module):
    """The compiled module with `e0` given by `u - sum(w * mean_ps)` per species (see the docstring)."""

    def __init__(self, module, mean_ps: np.ndarray, species_energy: np.ndarray):
        super().__init__()
        self.module = module
        self.register_buffer("mean_ps", torch.from_numpy(mean_ps))
        self.u = torch.nn.Parameter(torch.from_numpy(species_energy).clone())
        with torch.no_grad():
            self.module.w.zero_()

    def e0(self) -> torch.Tensor:
        return self.u - (self.module.w * self.mean_ps).flatten(1).sum(1)

    def forward(self, systems):
        return torch.func.functional_call(self.module, {"e0": self.e0()}, (systems,))

    def trained_module(self):
        """The compiled module with its own `e0` set: what is saved and used for predictions."""
        with torch.no_grad():
            self.module.e0.copy_(self.e0())
        return self.module


def compile_module(args):
    model = mtdsl.compile(PROGRAM, species=SPECIES, cutoff=args.cutoff, n_radial=args.n_radial,
                          max_angular=args.max_angular)
    return model.to_torch()


# ---- training ----------------------------------------------------------------------------------


def train(module, frames, args, validation, log) -> list[dict]:
    """Adam on the normalised energy + force loss of the (centred) module; the history of the mean
    training loss per epoch and of the validation errors every few epochs."""
    n_atoms = torch.tensor([len(atoms) for atoms in frames], dtype=torch.float64)
    reference_energies = torch.tensor(energies(frames))
    species_energy = fit_species_energies(frames)
    sigma_energy = float(np.sqrt(np.mean(((species_counts(frames) @ species_energy - energies(frames))
                                          / n_atoms.numpy()) ** 2)))
    sigma_force = float(np.sqrt(np.mean(forces(frames) ** 2)))

    parameters = list(module.parameters())
    optimizer = torch.optim.Adam(parameters, lr=args.lr)
    decay = (args.final_lr / args.lr) ** (1 / max(args.epochs - 1, 1))
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, decay)
    rng = np.random.default_rng(args.seed + 2)
    report_every = max(1, args.epochs // 12)
    history = []
    progress = tqdm(total=args.epochs * -(-len(frames) // args.batch_size), disable=not sys.stderr.isatty(),
                    unit="step", desc="training")
    for epoch in range(1, args.epochs + 1):
        losses = []
        order = rng.permutation(len(frames))
        for start in range(0, len(frames), args.batch_size):
            batch = order[start:start + args.batch_size]
            chosen = [frames[k] for k in batch]
            energy, force = predict(module, chosen, create_graph=True)
            reference_force = torch.tensor(forces(chosen))
            energy_loss = torch.mean(((energy - reference_energies[batch]) / n_atoms[batch]) ** 2) / sigma_energy**2
            force_loss = torch.mean((force - reference_force) ** 2) / sigma_force**2
            loss = energy_loss + force_loss
            optimizer.zero_grad()
            # to the parameters only: the positions' second derivatives are not needed
            loss.backward(inputs=parameters)
            optimizer.step()
            losses.append(loss.item())
            progress.update()
            progress.set_postfix(loss=f"{loss.item():.4f}")
        scheduler.step()
        entry = {"epoch": epoch, "loss": float(np.mean(losses))}
        if epoch % report_every == 0 or epoch in (1, args.epochs):
            entry.update(errors(validation, *evaluate(module, validation, args.batch_size)))
            log(f"epoch {epoch:>4}/{args.epochs}: training loss {entry['loss']:.4f}, validation energy MAE "
                f"{entry['energy_mae']:.4f} eV, force RMSE {entry['force_rmse']:.4f} eV/A")
        history.append(entry)
    progress.close()
    return history


def parity_plot(path, frames, predicted_energies, predicted_forces, history, metrics):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_atoms = np.array([len(atoms) for atoms in frames])
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(13, 4.2))
    reference = energies(frames) / n_atoms
    left.scatter(reference, predicted_energies / n_atoms, s=12)
    left.set_xlabel("EMT energy (eV/atom)")
    left.set_ylabel("predicted energy (eV/atom)")
    left.set_title(f"energy: MAE {metrics['energy_mae'] * 1e3:.1f} meV/structure\n"
                   f"(per-species constant: {metrics['baseline_energy_mae'] * 1e3:.0f})", fontsize=10)
    reference = forces(frames).ravel()
    middle.scatter(reference, predicted_forces.ravel(), s=4, alpha=0.5)
    middle.set_xlabel("EMT force component (eV/A)")
    middle.set_ylabel("predicted (eV/A)")
    middle.set_title(f"forces: RMSE {metrics['force_rmse']:.3f} eV/A\n"
                     f"(zero force: {metrics['baseline_force_rmse']:.3f})", fontsize=10)
    for axis in (left, middle):
        low, high = axis.get_xlim()
        axis.plot([low, high], [low, high], color="grey", linewidth=0.8)
    evaluated = [h for h in history if "energy_mae" in h]
    epochs = [h["epoch"] for h in evaluated]
    right.semilogy(epochs, [h["energy_mae"] / metrics["baseline_energy_mae"] for h in evaluated], "o-",
                   label="energy MAE / baseline")
    right.semilogy(epochs, [h["force_rmse"] / metrics["baseline_force_rmse"] for h in evaluated], "s-",
                   label="force RMSE / baseline")
    right.axhline(0.1, color="C0", linestyle=":", linewidth=0.8)
    right.axhline(1 / 3, color="C1", linestyle=":", linewidth=0.8)
    right.set_xlabel("epoch")
    right.set_title("validation errors / baselines", fontsize=10)
    right.legend(fontsize=9)
    figure.suptitle(f"soap_energy.mt on EMT Cu, Ag, Au: {len(frames)} validation structures", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def main(argv=None, log=print) -> dict:
    args = parse(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    start = time.perf_counter()

    frames = make_structures(args.structures, args.seed)
    train_index, validation_index = split(len(frames), args.seed)
    training = [frames[k] for k in train_index]
    validation = [frames[k] for k in validation_index]
    log(f"{len(frames)} structures ({sum(len(a) for a in frames)} atoms) labelled with EMT: "
        f"{len(training)} for training, {len(validation)} for validation")

    species_energy = fit_species_energies(training)
    metrics = {
        "baseline_energy_mae": float(np.mean(np.abs(species_counts(validation) @ species_energy
                                                    - energies(validation)))),
        "baseline_force_rmse": float(np.sqrt(np.mean(forces(validation) ** 2))),
    }
    log(f"baselines on the validation set: per-species constant energy MAE {metrics['baseline_energy_mae']:.4f} eV, "
        f"zero-force RMSE {metrics['baseline_force_rmse']:.4f} eV/A")

    module = compile_module(args)
    log(f"compiled {PROGRAM.name} (cutoff {args.cutoff}, n_radial {args.n_radial}, max_angular {args.max_angular}): "
        f"{sum(p.numel() for p in module.parameters())} parameters")
    centred = CentredEnergy(module, mean_power_spectrum(training, args), species_energy)
    trained = time.perf_counter()
    history = train(centred, training, args, validation, log)
    trained = time.perf_counter() - trained
    module = centred.trained_module()

    predicted = evaluate(module, validation, args.batch_size)
    metrics.update(errors(validation, *predicted))
    metrics["energy_ratio"] = metrics["energy_mae"] / metrics["baseline_energy_mae"]
    metrics["force_ratio"] = metrics["force_rmse"] / metrics["baseline_force_rmse"]

    weights = args.output / "soap_energy.pt"
    torch.save(module.state_dict(), weights)
    module.save_parameters(args.output / "soap_energy.npz")  # for mtdsl.compile(parameters=), mtdsl export
    reloaded = compile_module(args)
    reloaded.load_state_dict(torch.load(weights))
    energy_again, force_again = evaluate(reloaded, validation, args.batch_size)
    metrics["reload_max_difference"] = float(max(np.max(np.abs(energy_again - predicted[0])),
                                                 np.max(np.abs(force_again - predicted[1]))))
    if metrics["reload_max_difference"] > 1e-10:
        raise SystemExit(f"the reloaded model predicts differently (by {metrics['reload_max_difference']:.3g})")

    parity_plot(args.output / "parity.png", validation, *predicted, history, metrics)
    metrics.update(structures=len(frames), training=len(training), validation=len(validation),
                   epochs=args.epochs, training_seconds=trained, history=history,
                   hypers={"cutoff": args.cutoff, "n_radial": args.n_radial, "max_angular": args.max_angular})
    (args.output / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")

    log(f"trained {args.epochs} epochs in {trained:.0f} s; validation ({len(validation)} structures):")
    log(f"  energy MAE {metrics['energy_mae']:.4f} eV ({metrics['energy_mae_per_atom'] * 1e3:.2f} meV/atom), "
        f"{metrics['energy_ratio']:.3f} x the per-species constant's {metrics['baseline_energy_mae']:.4f} eV")
    log(f"  force RMSE {metrics['force_rmse']:.4f} eV/A, "
        f"{metrics['force_ratio']:.3f} x the zero-force {metrics['baseline_force_rmse']:.4f} eV/A")
    log(f"saved {weights}, reloaded: same predictions (largest difference {metrics['reload_max_difference']:.1e}); "
        f"wrote {args.output / 'parity.png'} and {args.output / 'metrics.json'} "
        f"({time.perf_counter() - start:.0f} s in all)")
    return metrics


if __name__ == "__main__":
    main()
