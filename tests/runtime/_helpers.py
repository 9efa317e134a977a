"""Structures shared by the runtime tests."""

from __future__ import annotations

import numpy as np


def spaced_positions(rng: np.random.Generator, count: int, half_width: float, min_distance: float) -> list:
    """`count` positions, the first at the origin, the others drawn uniformly in the cube of
    half-width `half_width` and kept when at least `min_distance` from every earlier one."""
    positions = [np.zeros(3)]
    while len(positions) < count:
        candidate = rng.uniform(-half_width, half_width, 3)
        if min(np.linalg.norm(candidate - p) for p in positions) > min_distance:
            positions.append(candidate)
    return positions


def spaced_cluster(species, count: int, half_width: float, min_distance: float, seed: int = 5):
    """A non-periodic cluster: `spaced_positions` with random species from `species`."""
    import ase

    rng = np.random.default_rng(seed)
    positions = spaced_positions(rng, count, half_width=half_width, min_distance=min_distance)
    return ase.Atoms(numbers=rng.choice(species, len(positions)), positions=positions)


def sheared_alloy(a: float):
    """A triclinic crystal of three species: two cubic fcc cells of Cu (lattice `a`), three of
    the sites Ag or Au, the cell sheared and the atoms rattled."""
    import ase.build

    atoms = ase.build.bulk("Cu", "fcc", a=a, cubic=True).repeat((2, 1, 1))
    atoms.numbers[[1, 4, 6]] = [47, 79, 47]
    atoms.set_cell(atoms.cell @ [[1.0, 0.03, 0.0], [0.0, 1.0, 0.0], [0.02, 0.0, 1.0]], scale_atoms=True)
    atoms.rattle(0.05, seed=6)
    return atoms


#: the start of a script for a Python in which mtdsl cannot be imported (a finder refusing it,
#: first on the path): what runs there uses the exported model's own operator, never mtdsl
_WITHOUT_MTDSL = """
import sys, json
class Hidden:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "mtdsl":
            raise ImportError("mtdsl is hidden from this engine")
sys.meta_path.insert(0, Hidden())
"""

_NEVER_IMPORTED = """
assert not any(name.split(".")[0] == "mtdsl" for name in sys.modules)
print(json.dumps(results))
"""


def run_without_mtdsl(script: str, argument: str, directory):
    """Run ``script`` (which fills ``results``; ``sys.argv[1]`` is ``argument``) in a fresh Python
    where mtdsl cannot be imported, in ``directory``; it must succeed without ever importing mtdsl.
    Returns ``results`` (as JSON)."""
    import json
    import subprocess
    import sys

    code = _WITHOUT_MTDSL + script + _NEVER_IMPORTED
    done = subprocess.run([sys.executable, "-c", code, argument], capture_output=True, text=True, cwd=directory)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
