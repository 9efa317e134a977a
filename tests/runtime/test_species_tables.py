"""Table hypers: per-species constants `hyper radius = {1: 0.31, 6: 0.76, 8: 0.66}` read as
`radius[S.type[i]]`, on every backend, with their gradients, overrides and errors."""

import ase
import numpy as np
import pytest

import mtdsl
from mtdsl.compile import CompileError
from mtdsl.errors import MtdslError

from .test_gradients import assert_matches_finite_differences

PROGRAM = """
model table
hyper radius = {1: 0.31, 8: 0.66, 6: 0.76}
hyper weight = {0: 1.0, 1: 0.5, 2: 0.25}
input S : systems
pairs P = neighbors(S, cutoff = 3.0)
index i : atoms(S)
index k : range(3)
tensor t
    samples    (i)
    properties (k)
  = sum(p in P.from(i)) weight[k] * exp(-P.distance[p] / (radius[S.type[i]] + radius[S.type[P.second[p]]]))
output t with gradients(positions, strain)
"""

RADIUS = {1: 0.31, 6: 0.76, 8: 0.66}


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    path = tmp_path_factory.mktemp("tables") / "table.mt"
    path.write_text(PROGRAM)
    return path


def molecules():
    water = ase.Atoms("OH2", positions=[[0, 0, 0], [0.757, 0.586, 0.1], [-0.757, 0.586, -0.05]])
    methanol = ase.Atoms("COH4", positions=[[0, 0, 0], [1.4, 0, 0], [1.7, 0.9, 0], [-0.4, 1.0, 0.1],
                                            [-0.4, -0.5, 0.9], [-0.4, -0.5, -0.9]])
    return [water, methanol]


def reference(systems, radius, weights=(1.0, 0.5, 0.25)):
    rows = []
    for atoms in systems:
        distances = atoms.get_all_distances()
        for i in range(len(atoms)):
            total = 0.0
            for j in range(len(atoms)):
                if j != i and distances[i, j] < 3.0:
                    total += np.exp(-distances[i, j] / (radius[atoms.numbers[i]] + radius[atoms.numbers[j]]))
            rows.append([w * total for w in weights])
    return np.array(rows)


@pytest.mark.parametrize("backend", ["interpreter", "cpp", "llvm"])
def test_tables_read_the_value_of_each_species(path, backend):
    systems = molecules()
    model = mtdsl.compile(path, backend=backend)
    np.testing.assert_allclose(model(systems)["t"].block().values, reference(systems, RADIUS), rtol=1e-13)
    assert_matches_finite_differences(model, systems, "t", ["positions", "strain"])


def test_a_table_can_be_overridden(path):
    radius = {1: 0.5, 6: 0.9, 8: 0.7}
    systems = molecules()
    values = mtdsl.compile(path, radius=radius)(systems)["t"].block().values
    np.testing.assert_allclose(values, reference(systems, radius), rtol=1e-13)
    with pytest.raises(CompileError, match="E103"):
        mtdsl.compile(path, radius={"H": 0.3})


def test_a_species_missing_from_a_table_is_named(path):
    model = mtdsl.compile(path, backend="cpp")
    with pytest.raises(MtdslError, match=r"table hyper `radius` has no entry for species \[7\]"):
        model([ase.Atoms("NH3", positions=[[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])])


def test_a_range_index_must_find_every_key(tmp_path):
    path = tmp_path / "short.mt"
    path.write_text(PROGRAM.replace("{0: 1.0, 1: 0.5, 2: 0.25}", "{0: 1.0, 2: 0.25}"))
    with pytest.raises(CompileError, match=r"short.mt:12:32: error\[E201\]: index `k` of `range\(3\)` takes the values \[1\], which table hyper `weight`"):
        mtdsl.compile(path)


def test_tables_are_formatted_and_parsed_back():
    from mtdsl.lang.ast import deparse_module
    from mtdsl.lang.parse import parse

    text = deparse_module(parse(PROGRAM))
    assert "hyper radius = {1: 0.31, 8: 0.66, 6: 0.76}" in text
    assert deparse_module(parse(text)) == text
