"""Molecular dynamics with the SOAP energy model: ASE through `as_calculator()`, then the same
model exported to metatomic and run by metatomic's own ASE calculator.

    .venv/bin/python examples/md_soap_energy.py [--params out/training/soap_energy.npz] [--steps 100]

1. Loads the trained parameters of examples/train_soap_energy.py (`--params`, a file of
   `model.save_parameters`); when the file is missing, trains a small model first (the training
   example with `--structures 60 --epochs 8`, about a minute).
   The hypers are those the file was saved with.
2. Builds a copper/silver/gold alloy (fcc, `--repeat`^3 cubic cells, 108 atoms by default, one
   atom in four silver or gold), velocities at `--temperature` K.
3. Runs NVE molecular dynamics (velocity Verlet, `--timestep` fs) with `model.as_calculator()`.
4. Exports the model (`model.export("soap_energy.pt", extensions_directory=...)`) and runs the
   same dynamics from the same start with `metatomic_ase.MetatomicCalculator`.
5. Prints, for both, the drift of the total energy per atom (largest |E(t) - E(0)|) and the
   time per step, and the largest difference of the two trajectories' energies.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import ase.build
import numpy as np
from ase import units
from ase.md.velocitydistribution import thermalize_momenta
from ase.md.verlet import VelocityVerlet

import mtdsl

HERE = pathlib.Path(__file__).resolve().parent
SPECIES = [29, 47, 79]


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=pathlib.Path, default=HERE.parent / "out" / "training" / "soap_energy.npz")
    parser.add_argument("--output", type=pathlib.Path, default=HERE.parent / "out" / "md")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--timestep", type=float, default=2.0, help="fs")
    parser.add_argument("--temperature", type=float, default=300.0, help="K, initial velocities")
    parser.add_argument("--repeat", type=int, default=3, help="fcc cubic cells along each axis")
    return parser.parse_args(argv)


def trained_model(args, log):
    from mtdsl.runtime.parameters import read_parameters

    if not args.params.exists():
        import train_soap_energy

        log(f"{args.params} not found: training a small model first")
        train_soap_energy.main(["--structures", "60", "--epochs", "8", "--output", str(args.params.parent)],
                               log=log)
    meta, _ = read_parameters(args.params)  # compiled with the hypers and species it was trained with
    return mtdsl.compile(HERE / "soap_energy.mt", species=meta["species"], parameters=args.params,
                         **meta["hypers"])


def alloy(temperature: float, repeat: int) -> ase.Atoms:
    atoms = ase.build.bulk("Cu", "fcc", a=3.75, cubic=True).repeat((repeat, repeat, repeat))
    rng = np.random.default_rng(0)
    others = rng.choice(len(atoms), size=len(atoms) // 4, replace=False)
    atoms.numbers[others] = rng.choice([47, 79], size=len(others))
    thermalize_momenta(atoms, temperature_K=temperature, rng=np.random.default_rng(1))
    return atoms


def run(atoms, calculator, steps: int, timestep: float):
    """(total energies along the run, seconds per step)"""
    atoms.calc = calculator
    totals = [atoms.get_total_energy()]
    dynamics = VelocityVerlet(atoms, timestep=timestep * units.fs)
    start = time.perf_counter()
    for _ in range(steps):
        dynamics.run(1)
        totals.append(atoms.get_total_energy())
    return np.asarray(totals), (time.perf_counter() - start) / steps


def main(argv=None, log=print):
    import sys

    sys.path.insert(0, str(HERE))
    args = parse(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    model = trained_model(args, log)
    start = alloy(args.temperature, args.repeat)
    log(f"{len(start)} atoms ({', '.join(f'{(start.numbers == z).sum()} Z={z}' for z in SPECIES)}), "
        f"{args.steps} NVE steps of {args.timestep} fs from {args.temperature} K")

    totals, seconds = run(start.copy(), model.as_calculator(), args.steps, args.timestep)
    drift = np.abs(totals - totals[0]).max() / len(start)
    log(f"as_calculator():      drift {drift:.2e} eV/atom, {seconds * 1e3:.1f} ms/step")

    from mtdsl._coexist import import_module_with_metatensor_torch

    MetatomicCalculator = import_module_with_metatensor_torch("metatomic_ase").MetatomicCalculator

    path = args.output / "soap_energy.pt"
    extensions = args.output / "extensions"
    model.export(path, extensions_directory=extensions)
    exported = start.copy()
    totals_exported, seconds_exported = run(exported, MetatomicCalculator(str(path), extensions_directory=str(extensions)),
                                            args.steps, args.timestep)
    drift_exported = np.abs(totals_exported - totals_exported[0]).max() / len(start)
    log(f"exported (metatomic): drift {drift_exported:.2e} eV/atom, {seconds_exported * 1e3:.1f} ms/step "
        f"({path})")
    log(f"largest difference of the two runs' total energies: {np.abs(totals - totals_exported).max():.1e} eV")
    return {"drift": drift, "seconds": seconds, "drift_exported": drift_exported, "seconds_exported": seconds_exported}


if __name__ == "__main__":
    main()
