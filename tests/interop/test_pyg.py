"""mtdsl.pyg: frames as PyG Data, batches as model inputs, outputs as node / graph features."""

import ase.build
import ase.neighborlist
import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

import mtdsl
import mtdsl.pyg
from tests.torch._helpers import PROGRAMS, atoms, compiled, features


def frames():
    """The test systems plus methane in a periodic box: three graphs of different sizes."""
    box = ase.build.molecule("CH4")
    box.cell = [6.0, 6.5, 7.0]
    box.pbc = True
    box.positions += 1.0
    return atoms() + [box]


def edges(data):
    """{(centre, neighbour, shift)} of a Data's edges."""
    target, source = data.edge_index[1].numpy(), data.edge_index[0].numpy()
    return {(int(i), int(j), tuple(int(s) for s in shift)) for i, j, shift in
            zip(target, source, data.edge_shift.numpy())}


@pytest.mark.parametrize("frame", range(3))
def test_to_data_edges_are_our_and_ases_neighbour_lists(frame):
    atoms_ = frames()[frame]
    cutoff = 3.0
    data = mtdsl.pyg.to_data(atoms_, cutoff=cutoff)
    assert data.pos.dtype == torch.float64 and data.z.tolist() == atoms_.numbers.tolist()
    assert data.cell.shape == (1, 3, 3) and data.pbc.shape == (1, 3)
    pairs = mtdsl.neighbors(atoms_, cutoff)
    ours = {(int(i), int(j), tuple(int(s) for s in shift)) for i, j, shift in
            zip(pairs.first, pairs.second, pairs.cell_shifts)}
    i, j, shifts = ase.neighborlist.primitive_neighbor_list("ijS", atoms_.pbc, atoms_.cell.array, atoms_.positions,
                                                            cutoff, self_interaction=False)
    theirs = {(int(a), int(b), tuple(int(s) for s in shift)) for a, b, shift in zip(i, j, shifts)}
    assert edges(data) == ours == theirs and len(theirs) > 0
    # the documented vector of an edge: source - target + shift @ cell
    vectors = (data.pos[data.edge_index[0]] - data.pos[data.edge_index[1]]
               + data.edge_shift.to(torch.float64) @ data.cell[0])
    assert float(vectors.norm(dim=1).max()) < cutoff


@pytest.mark.parametrize("program", PROGRAMS)
def test_model_of_a_batch_is_model_of_the_frames(program):
    model = compiled(program)
    inputs = features(program)
    inputs = {name: tensor.to(arrays="numpy") for name, tensor in inputs.items()}
    frames_ = atoms()
    batch = Batch.from_data_list([mtdsl.pyg.to_data(f) for f in frames_])
    expected = model(frames_, **inputs)
    found = model(batch, **inputs)
    assert set(found) == set(expected)
    for name in expected:
        assert found[name].keys == expected[name].keys
        for ours, theirs in zip(found[name].blocks(), expected[name].blocks()):
            assert ours.samples == theirs.samples and ours.properties == theirs.properties
            np.testing.assert_array_equal(mtdsl.tensor._array.to_numpy(ours.values), theirs.values)


def test_torch_module_takes_a_batch_and_backpropagates_to_pos():
    model = compiled("soap_energy")
    module = model.to_torch()
    frames_ = atoms()
    datas = [mtdsl.pyg.to_data(f) for f in frames_]
    batch = Batch.from_data_list(datas)
    batch.pos.requires_grad_(True)
    energies, _ = mtdsl.pyg.graph_features(module(batch)["energy"], batch)  # autograd through it
    energies.sum().backward()
    expected = model(frames_, gradients=["positions"])["energy"].block().gradient("positions")
    forces = np.zeros((len(batch.pos), 3))
    offsets = np.cumsum([0] + [len(f) for f in frames_])
    for (sample, system, atom), row in zip(expected.samples.array, expected.values[:, :, 0]):
        forces[offsets[system] + atom] += row
    np.testing.assert_allclose(batch.pos.grad.numpy(), forces, rtol=1e-10, atol=1e-12)


def test_to_systems_keeps_order_and_autograd():
    frames_ = frames()
    batch = Batch.from_data_list([mtdsl.pyg.to_data(f) for f in frames_])
    systems = mtdsl.pyg.to_systems(batch)
    assert len(systems) == len(frames_)
    for system, frame in zip(systems, frames_):
        np.testing.assert_array_equal(system.positions.numpy(), frame.positions)
        np.testing.assert_array_equal(system.types.numpy(), frame.numbers)
        np.testing.assert_array_equal(system.cell.numpy(), frame.cell.array)
        np.testing.assert_array_equal(system.pbc.numpy(), frame.pbc)
    with pytest.raises(TypeError, match="expects a torch_geometric Data or Batch"):
        mtdsl.pyg.to_systems(frames_)
    bare = Batch.from_data_list([mtdsl.pyg.to_data(f) for f in frames_])
    del bare.z
    with pytest.raises(ValueError, match="has no 'z'"):
        mtdsl.pyg.to_systems(bare)


def test_to_data_keeps_torch_positions_and_neighbors_take_a_batch():
    positions = torch.tensor(atoms()[0].positions, requires_grad=True)
    data = mtdsl.pyg.to_data(mtdsl.System(torch.tensor([8, 1, 1]), positions), cutoff=2.0)
    assert data.pos is positions
    batch = Batch.from_data_list([data, mtdsl.pyg.to_data(atoms()[1], cutoff=2.0)])
    pairs = mtdsl.neighbors(batch, 2.0)
    np.testing.assert_array_equal(pairs.first.numpy(), batch.edge_index[1].numpy())
    np.testing.assert_array_equal(pairs.second.numpy(), batch.edge_index[0].numpy())
    pairs.distances.sum().backward()  # the batch's positions are the data's tensor: autograd reaches it
    assert positions.grad is not None and positions.grad.abs().sum() > 0


def test_node_features_rows_align_with_the_batch_nodes():
    model = compiled("soap_power_spectrum")
    frames_ = frames()
    batch = Batch.from_data_list([mtdsl.pyg.to_data(f) for f in frames_])
    ps = model(batch)["ps"]
    x, columns = mtdsl.pyg.node_features(ps, batch)
    assert x.shape == (batch.num_nodes, len(columns))
    assert columns.names[:3] == ps.keys.names
    # node n is atom n - ptr[g] of graph batch.batch[n]: its row is its own power spectrum
    for key, block in ps.items():
        column = columns.names.index("center_type")
        selected = np.flatnonzero(columns.array[:, column] == key["center_type"])
        mask = np.ones(len(columns), bool)
        for name in ps.keys.names:
            mask &= columns.array[:, columns.names.index(name)] == key[name]
        for (system, atom), values in zip(block.samples.array, block.values):
            node = int(batch.ptr[system]) + atom
            assert int(batch.batch[node]) == system and int(batch.z[node]) == key["center_type"]
            np.testing.assert_array_equal(x[node, mask].numpy(), values.reshape(-1))
        assert len(selected) >= mask.sum()
    # an atom has zeros in the columns of other centre types
    hydrogen = int(batch.ptr[0]) + 1
    other = columns.array[:, columns.names.index("center_type")] != 1
    assert not x[hydrogen, other].any() and x[hydrogen, ~other].any()


def test_graph_features_of_an_energy():
    model = compiled("soap_energy")
    frames_ = frames()
    batch = Batch.from_data_list([mtdsl.pyg.to_data(f) for f in frames_])
    energy = model(batch)["energy"]
    y, columns = mtdsl.pyg.graph_features(energy, batch)
    assert y.shape == (3, 1) and columns.names == ["_", "energy"]
    np.testing.assert_array_equal(y[:, 0].numpy(), energy.block().values[:, 0])
    with pytest.raises(ValueError, match="needs per-atom samples"):
        mtdsl.pyg.node_features(energy, batch)
