"""Tests of mtdsl.systems: System, SystemBatch, neighbour lists."""

from pathlib import Path

import ase
import ase.build
import ase.io
import ase.neighborlist
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mtdsl.systems import (
    ATOM_LABEL_NAMES,
    PAIR_LABEL_NAMES,
    Pairs,
    System,
    SystemBatch,
    as_batch,
    neighbors,
    pair_vectors,
    systems_from_ase,
)

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"


def silicon():
    atoms = ase.build.bulk("Si", "diamond", a=5.43, cubic=True) * (2, 2, 2)
    atoms.rattle(0.05, seed=0)
    return atoms


def water():
    atoms = ase.build.molecule("H2O")
    atoms.rattle(0.01, seed=1)
    return atoms


def shipped(name):
    return ase.io.read(DATA / name, ":")


# -- System --------------------------------------------------------------------


def test_system_numpy_layout():
    system = System([8, 1, 1], [[0, 0, 0], [0, 0, 1], [0, 1, 0]])
    assert system.types.dtype == np.int32
    assert system.positions.dtype == np.float64
    assert system.cell.shape == (3, 3) and not system.cell.any()
    assert system.pbc.dtype == bool and not system.pbc.any()
    assert len(system) == system.n_atoms == 3
    assert not system.is_torch and system.source is None


def test_system_keeps_float32():
    positions = np.zeros((2, 3), dtype=np.float32)
    system = System(np.array([1, 1]), positions, np.eye(3) * 3, True)
    assert system.positions is positions
    assert system.cell.dtype == np.float32
    assert system.pbc.tolist() == [True, True, True]


def test_system_torch_keeps_autograd():
    positions = torch.rand(4, 3, dtype=torch.float64, requires_grad=True)
    cell = (torch.eye(3, dtype=torch.float64) * 4).requires_grad_()
    system = System(torch.tensor([14, 14, 14, 14]), positions, cell, [True, True, True])
    assert system.positions is positions and system.cell is cell
    assert system.is_torch
    assert system.types.dtype == torch.int32
    assert system.pbc.dtype == torch.bool
    # numpy types and a numpy cell are converted to torch
    other = System(np.array([1, 1, 1, 1]), positions, np.eye(3), True)
    assert other.types.dtype == torch.int32 and other.cell.dtype == torch.float64


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        (([1], np.zeros((1, 2))), ValueError, r"positions must have shape \[n_atoms, 3\], got \[1, 2\]"),
        (([1], np.zeros((1, 3), dtype=np.int64)), TypeError, "positions must be float32 or float64, got int64"),
        (([1], [[0, np.nan, 0]]), ValueError, "positions contain NaN or infinite values"),
        (([1, 1], [[0, 0, 0]]), ValueError, "types has 2 entries but positions has 1 atoms"),
        (([1.0], [[0, 0, 0]]), TypeError, r"types must be integers \(atomic numbers\), got float64"),
        (([0], [[0, 0, 0]]), ValueError, "types must be atomic numbers between 1 and 118, got 0 for atom 0"),
        (([1, 119], [[0, 0, 0], [1, 0, 0]]), ValueError, "got 119 for atom 1"),
        (([1], [[0, 0, 0]], np.eye(2)), ValueError, r"cell must have shape \[3, 3\], got \[2, 2\]"),
        (([1], [[0, 0, 0]], None, [1, 0, 1]), TypeError, "pbc must be booleans, got int64"),
        (([1], [[0, 0, 0]], None, [True, False]), ValueError, "pbc must be one bool or three"),
        (([1], [[0, 0, 0]], np.diag([1.0, 1.0, 0.0]), True), ValueError,
         "pbc is True along c but the cell vector c is zero"),
        (([1], [[0, 0, 0]], [[1, 0, 0], [2, 0, 0], [0, 0, 1]], True), ValueError,
         "the periodic cell vectors are linearly dependent"),
    ],
)
def test_system_errors(arguments, error, message):
    with pytest.raises(error, match=message):
        System(*arguments)


def test_system_torch_errors():
    with pytest.raises(TypeError, match="cell is a torch tensor but positions is not"):
        System([1], np.zeros((1, 3)), torch.eye(3))
    cell = torch.eye(3, dtype=torch.float32, requires_grad=True)
    with pytest.raises(TypeError, match="requires grad and does not match positions"):
        System([1], torch.zeros(1, 3, dtype=torch.float64), cell)
    with pytest.raises(TypeError, match="positions must be float32 or float64, got int64"):
        System([1], torch.zeros(1, 3, dtype=torch.int64))


def test_system_non_periodic_directions_may_have_a_cell():
    system = System([1], [[0, 0, 0]], np.eye(3) * 5, [True, True, False])
    assert system.pbc.tolist() == [True, True, False]


def test_from_ase_and_back():
    atoms = silicon()
    system = System.from_ase(atoms, source="si")
    np.testing.assert_array_equal(system.types, atoms.numbers)
    np.testing.assert_array_equal(system.positions, atoms.positions)
    np.testing.assert_array_equal(system.cell, atoms.cell.array)
    np.testing.assert_array_equal(system.pbc, atoms.pbc)
    assert system.source == "si"
    back = system.to_ase()
    np.testing.assert_array_equal(back.positions, atoms.positions)
    np.testing.assert_array_equal(back.cell.array, atoms.cell.array)
    assert back.info["source"] == "si"
    with pytest.raises(TypeError, match="expected an ase.Atoms, got list"):
        System.from_ase([atoms])


def test_systems_from_ase():
    assert len(systems_from_ase(water())) == 1
    systems = systems_from_ase([water(), silicon()], dtype=np.float32)
    assert [len(s) for s in systems] == [3, 64]
    assert systems[1].positions.dtype == np.float32


def test_to_torch_and_back():
    system = System.from_ase(silicon())
    tensor = system.to_torch(dtype=torch.float32)
    assert tensor.is_torch and tensor.dtype == torch.float32
    assert tensor.types.dtype == torch.int32
    back = tensor.to_numpy()
    assert back.positions.dtype == np.float32
    np.testing.assert_allclose(back.positions, system.positions, atol=1e-5)
    assert system.to_numpy() is system
    assert "n_atoms=64" in repr(system)


# -- SystemBatch -----------------------------------------------------------------


def test_batch_layout():
    batch = as_batch([water(), silicon(), water()])
    assert isinstance(batch, SystemBatch)
    assert batch.n_systems == len(batch) == 3
    assert batch.n_atoms == 3 + 64 + 3
    np.testing.assert_array_equal(batch.atom_offsets, [0, 3, 67, 70])
    np.testing.assert_array_equal(batch.system, [0] * 3 + [1] * 64 + [2] * 3)
    np.testing.assert_array_equal(batch.atom[:5], [0, 1, 2, 0, 1])
    np.testing.assert_array_equal(
        np.arange(batch.n_atoms), batch.atom_offsets[batch.system] + batch.atom
    )
    assert batch.types.dtype == np.int32 and batch.system.dtype == np.int64
    assert batch.cell.shape == (3, 3, 3) and batch.pbc.shape == (3, 3)
    assert batch.pbc[:, 0].tolist() == [False, True, False]
    np.testing.assert_array_equal(batch.positions[3:67], silicon().positions)
    assert batch.species.tolist() == [1, 8, 14]
    assert ATOM_LABEL_NAMES == ("system", "atom")
    labels = batch.atom_label_values()
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, np.column_stack([batch.system, batch.atom]))
    assert as_batch(batch) is batch


def test_batch_torch_gradients_reach_each_system():
    first = System.from_ase(water()).to_torch()
    second = System.from_ase(silicon()).to_torch()
    first.positions.requires_grad_()
    second.positions.requires_grad_()
    batch = SystemBatch([first, second])
    assert batch.is_torch and batch.system.dtype == torch.int64
    (batch.positions**2).sum().backward()
    torch.testing.assert_close(first.positions.grad, 2 * first.positions.detach())
    torch.testing.assert_close(second.positions.grad, 2 * second.positions.detach())


def test_batch_errors():
    numpy_system = System.from_ase(water())
    with pytest.raises(TypeError, match="system 0 uses numpy, system 1 torch"):
        SystemBatch([numpy_system, numpy_system.to_torch()])
    with pytest.raises(TypeError, match="system 0 is float64, system 1 float32"):
        SystemBatch([numpy_system, System.from_ase(water(), dtype=np.float32)])
    with pytest.raises(TypeError, match="frame 1 is a str, expected a System or an ase.Atoms"):
        as_batch([water(), "water.xyz"])
    with pytest.raises(TypeError, match="expected a System, an ase.Atoms, or a list of them"):
        as_batch("water.xyz")


def test_empty_batch():
    batch = as_batch([])
    assert batch.n_atoms == 0 and batch.n_systems == 0
    pairs = neighbors(batch, 3.0)
    assert len(pairs) == 0 and pairs.offsets.tolist() == [0]


# -- neighbour lists ---------------------------------------------------------------


def ase_pairs(atoms, cutoff):
    """{(i, j, shift): (vector, distance)} from ase.neighborlist."""
    i, j, shifts, vectors, distances = ase.neighborlist.neighbor_list("ijSDd", atoms, cutoff)
    return {
        (a, b, tuple(s)): (v, d)
        for a, b, s, v, d in zip(i.tolist(), j.tolist(), shifts.tolist(), vectors, distances)
    }


def our_pairs(pairs, system=None):
    if system is None:
        mask = np.ones(len(pairs), dtype=bool)
    else:
        mask = np.asarray(pairs.system) == system
    first = np.asarray(pairs.first_atom)[mask].tolist()
    second = np.asarray(pairs.second_atom)[mask].tolist()
    shifts = np.asarray(pairs.cell_shifts)[mask].tolist()
    vectors = np.asarray(pairs.vectors)[mask]
    distances = np.asarray(pairs.distances)[mask]
    return {
        (a, b, tuple(s)): (v, d)
        for a, b, s, v, d in zip(first, second, shifts, vectors, distances)
    }


def featomic_half(full):
    """featomic's half list (featomic/systems/ase.py) from a full list."""
    half = {}
    for (i, j, s), value in full.items():
        total = sum(s)
        if i < j or (
            i == j
            and not (total < 0 or (total == 0 and (s[2] < 0 or (s[2] == 0 and s[1] < 0))))
        ):
            half[(i, j, s)] = value
    return half


def assert_same_pairs(ours, reference):
    assert ours.keys() == reference.keys()
    for key, (vector, distance) in reference.items():
        np.testing.assert_allclose(ours[key][0], vector, rtol=0, atol=1e-10)
        np.testing.assert_allclose(ours[key][1], distance, rtol=0, atol=1e-10)


def slab():
    atoms = ase.build.fcc111("Cu", size=(2, 2, 3), vacuum=4.0)
    atoms.pbc = [True, True, False]
    atoms.rattle(0.03, seed=2)
    return atoms


def small_cell():
    """A cell much smaller than the cutoff: pairs with many images of each atom."""
    atoms = ase.build.bulk("Cu", "fcc", a=3.6)
    atoms.cell[1] += [0.3, 0.0, 0.1]
    return atoms


def unwrapped():
    """Atoms outside the unit cell: shifts follow the positions as given."""
    atoms = silicon()
    atoms.positions[0] += 1.3 * atoms.cell[0] - 2.2 * atoms.cell[2]
    atoms.positions[3] -= 0.7 * atoms.cell[1]
    return atoms


def scattered():
    """Atoms far outside a small cell, periodic along a only."""
    rng = np.random.default_rng(5)
    positions = rng.uniform(-10, 10, size=(20, 3))
    return ase.Atoms("H20", positions=positions, cell=np.eye(3) * 2, pbc=[True, False, False])


STRUCTURES = {
    "scattered, periodic along a": (scattered, 6.0),
    "unwrapped positions": (unwrapped, 4.0),
    "silicon": (lambda: shipped("silicon.xyz")[0], 5.0),
    "mixed": (lambda: shipped("mixed.xyz")[0], 5.0),
    "water": (lambda: shipped("water.xyz")[0], 3.5),
    "slab": (slab, 4.0),
    "small cell": (small_cell, 6.0),
    "molecule with zero cell": (water, 2.0),
}


@pytest.mark.parametrize("name", list(STRUCTURES))
@pytest.mark.parametrize("full", [True, False])
def test_pairs_equal_ase(name, full):
    make, cutoff = STRUCTURES[name]
    atoms = make()
    reference = ase_pairs(atoms, cutoff)
    if not full:
        reference = featomic_half(reference)
    pairs = neighbors(atoms, cutoff, full=full)
    assert len(pairs) == len(reference) > 0
    assert_same_pairs(our_pairs(pairs), reference)


def test_pairs_layout_and_order():
    batch = as_batch([shipped("water.xyz")[0], silicon(), small_cell()])
    pairs = neighbors(batch, 4.0)
    assert pairs.first.dtype == np.int64 and pairs.cell_shifts.dtype == np.int32
    assert pairs.vectors.shape == (len(pairs), 3) and pairs.distances.shape == (len(pairs),)
    assert pairs.offsets.shape == (batch.n_atoms + 1,)
    # sorted by (system, first, second, shift), without duplicates
    keys = np.column_stack([pairs.system, pairs.first, pairs.second, pairs.cell_shifts])
    order = np.lexsort(keys.T[::-1])
    np.testing.assert_array_equal(order, np.arange(len(pairs)))
    assert len(np.unique(keys, axis=0)) == len(pairs)
    # the system of a pair is the system of both its atoms
    np.testing.assert_array_equal(batch.system[pairs.first], pairs.system)
    np.testing.assert_array_equal(batch.system[pairs.second], pairs.system)
    # CSR segments
    for atom in range(batch.n_atoms):
        segment = pairs.from_atom(atom)
        assert np.all(pairs.first[segment] == atom)
        assert segment.stop - segment.start == np.count_nonzero(pairs.first == atom)
    with pytest.raises(IndexError, match="atom 200 is out of range for 77 atoms"):
        pairs.from_atom(200)
    # labels
    assert PAIR_LABEL_NAMES[:3] == ("system", "first_atom", "second_atom")
    labels = pairs.label_values()
    assert labels.dtype == np.int32 and labels.shape == (len(pairs), 6)
    np.testing.assert_array_equal(labels[:, 1], pairs.first - batch.atom_offsets[pairs.system])
    np.testing.assert_array_equal(labels[:, 3:], pairs.cell_shifts)
    # each system's pairs equal those of the system alone
    for index, atoms in enumerate([shipped("water.xyz")[0], silicon(), small_cell()]):
        assert_same_pairs(our_pairs(pairs, index), ase_pairs(atoms, 4.0))


def test_full_list_is_half_list_both_ways():
    atoms = small_cell()
    half = our_pairs(neighbors(atoms, 5.0, full=False))
    full = our_pairs(neighbors(atoms, 5.0, full=True))
    both = set(half) | {(j, i, tuple(-s for s in shift)) for i, j, shift in half}
    assert both == set(full)
    assert len(full) == 2 * len(half)


def test_vectors_point_from_first_to_second():
    system = System([1, 1], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.9]])
    pairs = neighbors(system, 1.0)
    np.testing.assert_array_equal(pairs.first, [0, 1])
    np.testing.assert_allclose(pairs.vectors, [[0, 0, 0.9], [0, 0, -0.9]])


@pytest.mark.parametrize("make", [small_cell, lambda: shipped("mixed.xyz")[0]])
@pytest.mark.parametrize("full", [True, False])
def test_same_convention_as_featomic(make, full):
    featomic = pytest.importorskip("featomic")
    atoms = make()
    calculator = featomic.NeighborList(cutoff=5.0, full_neighbor_list=full)
    reference = {}
    for block in calculator.compute(atoms).blocks():
        assert block.samples.names == list(PAIR_LABEL_NAMES)
        for row, vector in zip(block.samples.values, block.values):
            first, second, shift = int(row[1]), int(row[2]), tuple(int(x) for x in row[3:])
            vector = vector[:, 0]
            if not full and first > second:
                # featomic's NeighborList calculator orients half-list pairs
                # by atom types; its systems (and mtdsl) by atom index
                first, second = second, first
                shift, vector = tuple(-x for x in shift), -vector
            reference[(first, second, shift)] = vector
    ours = our_pairs(neighbors(atoms, 5.0, full=full))
    assert ours.keys() == reference.keys()
    for key, vector in reference.items():
        np.testing.assert_allclose(ours[key][0], vector, atol=1e-10)


def test_single_atoms_and_isolated_atoms():
    lone = System([6], [[0.0, 0.0, 0.0]])
    far = System([1, 1], [[0.0, 0.0, 0.0], [10.0, 0.0, 0.0]])
    periodic = System([6], [[0.0, 0.0, 0.0]], np.eye(3) * 2.5, True)
    pairs = neighbors([lone, far, periodic], 3.0)
    assert pairs.offsets.tolist() == [0, 0, 0, 0, 6]
    np.testing.assert_array_equal(pairs.first, [3] * 6)
    np.testing.assert_array_equal(pairs.second, [3] * 6)
    np.testing.assert_allclose(pairs.distances, 2.5)
    assert sorted(map(tuple, pairs.cell_shifts.tolist()))[0] == (-1, 0, 0)
    assert len(neighbors(periodic, 3.0, full=False)) == 3


def test_float32_systems():
    atoms = silicon()
    pairs = neighbors(System.from_ase(atoms, dtype=np.float32), 4.0)
    assert pairs.vectors.dtype == np.float32
    assert set(our_pairs(pairs)) == set(ase_pairs(atoms, 4.0))


def test_cutoff_errors():
    with pytest.raises(ValueError, match="cutoff must be a positive finite number, got -1"):
        neighbors(water(), -1)
    with pytest.raises(TypeError, match="cutoff must be a number, got str"):
        neighbors(water(), "big")


def test_pair_vectors_numpy():
    atoms = small_cell()
    pairs = neighbors(atoms, 5.0)
    vectors = pair_vectors(
        atoms.positions, atoms.cell.array, pairs.first, pairs.second, pairs.cell_shifts
    )
    np.testing.assert_allclose(vectors, pairs.vectors, atol=1e-12)


def test_torch_pairs_are_differentiable():
    atoms = small_cell()
    positions = torch.tensor(atoms.positions, requires_grad=True)
    cell = torch.tensor(atoms.cell.array, requires_grad=True)
    system = System(torch.tensor(atoms.numbers), positions, cell, True)
    pairs = neighbors(system, 4.0)
    assert isinstance(pairs, Pairs) and pairs.first.dtype == torch.int64
    reference = neighbors(atoms, 4.0)
    np.testing.assert_allclose(pairs.vectors.detach().numpy(), reference.vectors, atol=1e-12)

    def energy(positions, cell):
        vectors = pair_vectors(positions, cell, pairs.first, pairs.second, pairs.cell_shifts)
        return torch.exp(-vectors.norm(dim=1)).sum()

    assert torch.autograd.gradcheck(energy, (positions, cell))
    # the stored vectors carry the graph too
    pairs.distances.sum().backward()
    assert positions.grad is not None and cell.grad is not None


def test_torch_batch_pair_vectors():
    systems = [System.from_ase(a).to_torch() for a in (silicon(), small_cell())]
    batch = SystemBatch(systems)
    pairs = neighbors(batch, 4.0)
    vectors = pair_vectors(
        batch.positions, batch.cell, pairs.first, pairs.second, pairs.cell_shifts, pairs.system
    )
    torch.testing.assert_close(vectors, pairs.vectors)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n_atoms=st.integers(1, 6),
    pbc=st.lists(st.booleans(), min_size=3, max_size=3),
    cutoff=st.floats(1.0, 4.0),
)
def test_random_cells_match_ase(seed, n_atoms, pbc, cutoff):
    rng = np.random.default_rng(seed)
    cell = np.diag(rng.uniform(2.0, 4.0, size=3)) + rng.uniform(-0.5, 0.5, size=(3, 3))
    atoms = ase.Atoms(
        numbers=rng.integers(1, 10, size=n_atoms),
        scaled_positions=rng.uniform(size=(n_atoms, 3)),
        cell=cell,
        pbc=pbc,
    )
    for full in (True, False):
        reference = ase_pairs(atoms, cutoff)
        if not full:
            reference = featomic_half(reference)
        assert_same_pairs(our_pairs(neighbors(atoms, cutoff, full=full)), reference)
