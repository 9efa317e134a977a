"""Bad structures through the neighbour search and a model: refused with a clear error
(`MtdslError`, or the `TypeError` / `ValueError` of `System`'s own checks), or run with
finite results; never another exception, never a NaN or infinity handed back, never a
signal or the memory limit (counted as crashes by `fuzz.run`, which runs this under
`RLIMIT_AS`).

Cases: huge, NaN and infinite coordinates; tiny, degenerate, zero and inverted
cells with any periodicity; overlapping atoms and an atom on its own image; bad
species (0, negative, beyond 118, floats, booleans); bad shapes; huge, tiny and
non-finite cutoffs; extxyz files with such values read through `read_structures`.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import traceback

import numpy as np

from .common import Tally, main

PROGRAM = """model fuzz_structures

input S : systems
pairs P = neighbors(S, cutoff = 3.0)
index i : atoms(S)

tensor e
    samples (i)
  = sum(p in P.from(i)) exp(-P.distance[p]) / P.distance[p]

output e with gradients(positions)
"""
HUGE = [1e7, -1e9, 1e15, 1e300, -1e308, 1.7e308, float("nan"), float("inf"), -float("inf")]


def _value(rng: random.Random) -> float:
    return rng.choice(HUGE) if rng.random() < 0.5 else rng.uniform(-5, 5)


def bad_system(rng: random.Random) -> dict:
    """Keyword arguments of a `System` with one or more defects (or a sane one, now and then)."""
    n = rng.randint(1, 6)
    types = [rng.choice([1, 6, 8]) for _ in range(n)]
    positions = np.array([[rng.uniform(0, 4) for _ in range(3)] for _ in range(n)])
    cell = np.diag([rng.uniform(3, 6) for _ in range(3)])
    pbc = [rng.random() < 0.7 for _ in range(3)]
    for _ in range(rng.randint(1, 3)):
        defect = rng.choice(["coordinate", "tiny cell", "degenerate", "zero vector", "inverted", "overlap",
                             "image overlap", "species", "shape", "scale", "sane"])
        if defect == "coordinate":
            positions[rng.randrange(n), rng.randrange(3)] = _value(rng)
        elif defect == "tiny cell":
            cell = np.diag([10 ** rng.uniform(-4, 0) for _ in range(3)])
        elif defect == "degenerate":
            cell[2] = cell[0] * rng.choice([1, -2]) + cell[1] + rng.choice([0, 1e-12, 1e-9, 1e-6])
        elif defect == "zero vector":
            cell[rng.randrange(3)] = 0.0
        elif defect == "inverted":
            cell[0] = -cell[0]
        elif defect == "overlap" and n > 1:
            positions[1] = positions[0] + rng.choice([0.0, 1e-12, 1e-6, 1e-4])
        elif defect == "image overlap":
            cell[rng.randrange(3)] *= rng.choice([1e-3, 1e-6])
        elif defect == "species":
            types[rng.randrange(n)] = rng.choice([0, -1, 119, 1000, 2**40, 1.5, True, float("nan")])
        elif defect == "scale":
            cell = cell * rng.choice([1e-6, 1e5, 1e7])
        elif defect == "shape":  # the last defect: the others index positions
            positions = rng.choice([positions[:, :2], positions.reshape(-1), positions[None], np.zeros((0, 3))])
            break
    return {"types": types, "positions": positions, "cell": cell, "pbc": pbc}


def _xyz(arguments: dict) -> str:
    positions = np.asarray(arguments["positions"], dtype=float).reshape(-1, 3) if np.size(arguments["positions"]) % 3 == 0 \
        else np.zeros((0, 3))
    cell = " ".join(repr(float(v)) for v in np.ravel(arguments["cell"]))
    pbc = " ".join("T" if p else "F" for p in arguments["pbc"])
    lines = [str(len(positions)), f'Lattice="{cell}" pbc="{pbc}" Properties=species:S:1:pos:R:3']
    symbols = {1: "H", 6: "C", 8: "O"}
    for k, row in enumerate(positions):
        z = arguments["types"][k] if k < len(arguments["types"]) else 1
        lines.append(f"{symbols.get(z, 'Xx')} {row[0]!r} {row[1]!r} {row[2]!r}")
    return "\n".join(lines) + "\n"


def _refusal(error: Exception) -> bool:
    """A clear refusal: an `MtdslError`, or a `TypeError` / `ValueError` that `System` raised."""
    from mtdsl.errors import MtdslError

    if isinstance(error, MtdslError):
        return True
    if isinstance(error, (TypeError, ValueError)):
        frames = traceback.extract_tb(error.__traceback__)
        return bool(frames) and frames[-1].filename.endswith(os.path.join("systems", "system.py"))
    return False


def campaign(n: int, seed: int) -> Tally:
    import mtdsl
    from mtdsl.io.structures import read_structures
    from mtdsl.systems import System, neighbors

    rng = random.Random(seed)
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="mtdsl-fuzz-structures-") as directory:
        program = os.path.join(directory, "fuzz.mt")
        with open(program, "w") as handle:
            handle.write(PROGRAM)
        model = mtdsl.compile(program, backend="interpreter")
        for trial in range(n):
            arguments = bad_system(rng)
            route = ("model", "neighbors", "file")[trial % 3]
            tally.tried += 1
            try:
                with np.errstate(all="ignore"):
                    if route == "file":
                        path = os.path.join(directory, "frame.xyz")
                        with open(path, "w") as handle:
                            handle.write(_xyz(arguments))
                        results = [np.asarray(block.values) for block in model(read_structures(path))["e"].blocks()]
                    else:
                        system = System(**arguments)
                        if route == "model":
                            output = model([system], gradients=["positions"])["e"]
                            results = [np.asarray(b.values) for b in output.blocks()]
                            results += [np.asarray(g.values) for b in output.blocks() for _, g in b.gradients()]
                        else:
                            cutoff = rng.choice([3.0, 1e-9, 1e7, 1e300, 0.5, -1.0, math.nan, math.inf])
                            pairs = neighbors(system, cutoff)
                            results = [np.asarray(pairs.distances), np.asarray(pairs.vectors)]
            except Exception as error:  # noqa: BLE001 - counted, never raised
                if _refusal(error):
                    tally.errors += 1
                else:
                    tally.note("escapes", f"{route}: {type(error).__name__}: {error}")
                continue
            if not all(np.all(np.isfinite(r)) for r in results):
                tally.note("silent", f"{route}: non-finite results for {arguments}")
    return tally


if __name__ == "__main__":
    main(campaign)
