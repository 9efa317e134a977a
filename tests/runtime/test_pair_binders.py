"""Sums over two pair binders in one `sum(...)`: a second `P.from(...)` binder reads the atom
where the earlier binders are bound (the first pair's centre, or `P.second[p]`), in every
backend, against numpy on the neighbour list."""

import ase
import ase.build
import numpy as np
import pytest

import mtdsl
from mtdsl.systems import as_batch, neighbors

PROGRAM = """
model two_pairs
hyper cutoff = 3.0
input S : systems
pairs P = neighbors(S, cutoff = cutoff)
index i : atoms(S)
index k : range(2)

tensor h
    samples (i)
    properties (k)
  = sum(p in P.from(i)) exp(-P.distance[p] * (k + 1))

tensor squared
    samples (i)
    properties (k)
  = h[i, k] * sum(p in P.from(i), q in P.from(i)) exp(-P.distance[p] - P.distance[q])

tensor paths
    samples (i)
  = sum(p in P.from(i), q in P.from(P.second[p])) exp(-P.distance[p] - 2.0 * P.distance[q])

output squared
output paths
"""


def frames():
    crystal = ase.build.bulk("Si", "diamond", a=5.43)
    crystal.rattle(0.05, seed=1)
    water = ase.Atoms("OH2", positions=[[0, 0, 0], [0.757, 0.586, 0.1], [-0.757, 0.586, -0.05]])
    return [water, crystal]


def expected():
    batch = as_batch(frames())
    pairs = neighbors(batch, 3.0, full=True)
    first, second = np.asarray(pairs.first), np.asarray(pairs.second)
    distance = np.asarray(pairs.distances)
    n = batch.n_atoms
    h = np.stack([np.bincount(first, np.exp(-distance * (k + 1)), minlength=n) for k in range(2)], axis=1)
    single = np.bincount(first, np.exp(-distance), minlength=n)
    onward = np.bincount(first, np.exp(-2.0 * distance), minlength=n)  # sum over q from an atom
    paths = np.bincount(first, np.exp(-distance) * onward[second], minlength=n)
    return h * single[:, None] ** 2, paths


@pytest.mark.parametrize("backend", ["interpreter", "cpp", "llvm"])
def test_two_pair_binders_in_one_sum(tmp_path, backend):
    path = tmp_path / "two_pairs.mt"
    path.write_text(PROGRAM)
    outputs = mtdsl.compile(path, backend=backend)(frames())
    squared, paths = expected()
    np.testing.assert_allclose(np.asarray(outputs["squared"].block().values), squared, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(outputs["paths"].block().values)[:, 0], paths, rtol=1e-12)
