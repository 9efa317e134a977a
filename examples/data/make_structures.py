"""Write the small structures shipped in examples/data/ (deterministic).

    python examples/data/make_structures.py

- water.xyz: two non-periodic frames, a cluster of four water molecules and a
  single molecule;
- silicon.xyz: periodic bulk silicon, the 2x2x2 supercell of the conventional
  diamond cell (64 atoms), rattled;
- mixed.xyz: periodic SrTiO3 perovskite, 2x2x2 supercell (40 atoms, three
  species) in a slightly sheared (triclinic) cell, rattled.
"""

from pathlib import Path

import ase.build
import ase.io
import numpy as np

HERE = Path(__file__).resolve().parent


def water() -> list[ase.Atoms]:
    rng = np.random.default_rng(0)
    cluster = ase.Atoms()
    for centre in ([0.0, 0.0, 0.0], [2.9, 0.3, 0.0], [0.2, 2.8, 0.6], [2.7, 2.9, -0.4]):
        molecule = ase.build.molecule("H2O")
        molecule.rotate(rng.uniform(0, 360), rng.normal(size=3), center="COP")
        molecule.translate(centre)
        cluster += molecule
    cluster.rattle(0.02, seed=1)
    single = ase.build.molecule("H2O")
    single.rattle(0.02, seed=2)
    return [cluster, single]


def silicon() -> ase.Atoms:
    atoms = ase.build.bulk("Si", "diamond", a=5.43, cubic=True) * (2, 2, 2)
    atoms.rattle(0.05, seed=3)
    return atoms


def mixed() -> ase.Atoms:
    a = 3.905
    atoms = ase.Atoms(
        "SrTiO3",
        scaled_positions=[
            [0.0, 0.0, 0.0],
            [0.5, 0.5, 0.5],
            [0.5, 0.5, 0.0],
            [0.5, 0.0, 0.5],
            [0.0, 0.5, 0.5],
        ],
        cell=np.eye(3) * a,
        pbc=True,
    )
    atoms = atoms * (2, 2, 2)
    shear = np.array([[1.0, 0.0, 0.0], [0.04, 1.0, 0.0], [0.02, -0.03, 1.0]])
    atoms.set_cell(np.round(atoms.cell.array @ shear, 6), scale_atoms=True)
    atoms.rattle(0.05, seed=4)
    return atoms


def main():
    ase.io.write(HERE / "water.xyz", water(), format="extxyz")
    ase.io.write(HERE / "silicon.xyz", silicon(), format="extxyz")
    ase.io.write(HERE / "mixed.xyz", mixed(), format="extxyz")


if __name__ == "__main__":
    main()
