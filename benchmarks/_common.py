"""What the side-by-side benchmarks share: the interleaved timing, the silicon crystal and
featomic's SOAP hypers. Imports nothing heavy at the top, so that a script can set its
thread counts (RAYON_NUM_THREADS, OMP_NUM_THREADS) before torch or featomic loads."""

from __future__ import annotations

import argparse
import os
import time

#: the species of the alloy
ALLOY_SPECIES = [29, 47, 79]


def timing_parser(doc: str, repeats: int) -> argparse.ArgumentParser:
    """A parser (described by the first line of ``doc``) with the options every side-by-side
    script takes: ``--threads`` and ``--repeats``; the script adds its own."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=repeats)
    return parser


def pin_threads(threads: int) -> None:
    """featomic's (rayon) and OpenMP's thread counts; before featomic or torch is imported."""
    os.environ["RAYON_NUM_THREADS"] = str(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)


def best_wall(function, repeats: int) -> float:
    """The best wall time of ``repeats`` calls of ``function`` (no warm-up call)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def side_by_side(functions, repeats: int) -> list[tuple[float, float]]:
    """The best (wall, CPU) time of each function, calls interleaved so that load on a shared
    machine hits all alike; each is called once first (caches, page faults, first-call set-up).

    CPU time is the process's (every thread), the less load-sensitive of the two on a busy machine.
    """
    for function in functions:
        function()
    walls = [[] for _ in functions]
    cpus = [[] for _ in functions]
    for _ in range(repeats):
        for k, function in enumerate(functions):
            start, start_cpu = time.perf_counter(), time.process_time()
            function()
            walls[k].append(time.perf_counter() - start)
            cpus[k].append(time.process_time() - start_cpu)
    return [(min(w), min(c)) for w, c in zip(walls, cpus)]


def silicon(n_atoms: int, seed: int = 0):
    """Diamond silicon, ``n_atoms`` (8 n^3) atoms in cubic cells, rattled."""
    import ase.build

    cells = round((n_atoms / 8) ** (1 / 3))
    if 8 * cells**3 != n_atoms:
        raise SystemExit(f"{n_atoms} atoms is not 8 n^3")
    atoms = ase.build.bulk("Si", "diamond", a=5.43, cubic=True) * (cells, cells, cells)
    atoms.rattle(0.05, seed=seed)
    return atoms


def alloy(n_atoms: int, seed: int = 0):
    """fcc Cu/Ag/Au, ``n_atoms`` (a multiple of 100) atoms in 5 x 5 x n cubic cells, the
    species spread evenly at random, rattled."""
    import ase.build
    import numpy as np

    if n_atoms % 100:
        raise SystemExit(f"{n_atoms} atoms is not a multiple of 100")
    atoms = ase.build.bulk("Cu", "fcc", a=3.9, cubic=True) * (5, 5, n_atoms // 100)
    rng = np.random.default_rng(seed)
    atoms.numbers = rng.permutation(np.resize(ALLOY_SPECIES, len(atoms)))
    atoms.rattle(0.05, seed=seed)
    return atoms


def soap_hypers(cutoff: float, n_radial: int, max_angular: int, width: float, center_atom_weight: float) -> dict:
    """featomic's hypers of the SOAP the example programs compute (cosine smoothing 0.5, GTOs)."""
    return {
        "cutoff": {"radius": cutoff, "smoothing": {"type": "ShiftedCosine", "width": 0.5}},
        "density": {"type": "Gaussian", "width": width, "center_atom_weight": center_atom_weight},
        "basis": {"type": "TensorProduct", "max_angular": max_angular,
                  "radial": {"type": "Gto", "max_radial": n_radial - 1}, "spline_accuracy": 1e-12},
    }
