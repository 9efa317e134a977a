"""PyTorch Geometric bridge: frames as `torch_geometric.data.Data`, batches back as systems, and
model outputs as node / graph features. torch_geometric is imported only inside `to_data`.

    data = mtdsl.pyg.to_data(atoms, cutoff=5.0)          # pos, z, cell, pbc, edge_index, edge_shift
    batch = torch_geometric.data.Batch.from_data_list([data, ...])
    outputs = model(batch)                               # the batch's graphs are the frames, in order
    x, columns = mtdsl.pyg.node_features(outputs["ps"], batch)   # [num_nodes, F] and its Labels

Conventions (PyG's, `flow="source_to_target"`): edge `e` goes from the neighbour
`edge_index[0, e]` (source) to the centre `edge_index[1, e]` (target), the atom whose
environment the pair belongs to, which aggregates the messages. Its vector is
`pos[edge_index[0]] - pos[edge_index[1]] + edge_shift @ cell` (mtdsl's pair `(first=centre,
second=neighbour)` with `cell_shifts`). `cell` is stored `[1, 3, 3]` and `pbc` `[1, 3]` per
graph, so a `Batch` stacks them `[G, 3, 3]` and `[G, 3]`.
"""

from __future__ import annotations

import numpy as np

from .ops._sparse import sparse_labels
from .systems import System, as_batch, neighbors
from .systems._pyg import graph_offsets, is_pyg, systems_from_pyg
from .tensor import TensorMap
from .tensor._array import is_torch, to_numpy

__all__ = ["graph_features", "node_features", "to_data", "to_systems"]


def _torch_geometric():
    try:
        import torch_geometric.data
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("mtdsl.pyg needs PyTorch Geometric: pip install torch-geometric") from error
    return torch_geometric


def to_data(frame, cutoff: float | None = None, *, dtype=None):
    """A `torch_geometric.data.Data` of one `ase.Atoms` or `mtdsl.System`: `pos` `[N, 3]`, `z`
    `[N]` (int64), `cell` `[1, 3, 3]`, `pbc` `[1, 3]`; with `cutoff`, the full neighbour list of
    mtdsl (vesin) as `edge_index` `[2, E]` (row 0 the neighbour/source, row 1 the centre/target)
    and `edge_shift` `[E, 3]` (int64 cell shifts of the source). Torch positions are kept as they
    are (autograd included); numpy ones become float64 tensors (or `dtype`)."""
    import torch

    torch_geometric = _torch_geometric()
    if isinstance(frame, System):
        system = frame
    else:
        systems = as_batch(frame).systems
        if len(systems) != 1:
            raise ValueError(f"to_data converts one frame, got {len(systems)}: use [to_data(f) for f in frames]")
        system = systems[0]
    positions = system.positions if is_torch(system.positions) else torch.from_numpy(np.array(system.positions))
    if dtype is not None:
        positions = positions.to(dtype)
    fields = dict(
        pos=positions,
        z=torch.as_tensor(to_numpy(system.types).astype(np.int64)),
        cell=torch.as_tensor(to_numpy(system.cell)).to(positions.dtype).reshape(1, 3, 3),
        pbc=torch.as_tensor(to_numpy(system.pbc).astype(bool)).reshape(1, 3),
        num_nodes=system.n_atoms,
    )
    if cutoff is not None:
        pairs = neighbors([system.to_numpy()], cutoff, full=True)
        fields["edge_index"] = torch.from_numpy(np.stack([pairs.second, pairs.first]).astype(np.int64))
        fields["edge_shift"] = torch.from_numpy(np.asarray(pairs.cell_shifts).astype(np.int64))
    return torch_geometric.data.Data(**fields)


def to_systems(data) -> list[System]:
    """The `mtdsl.System`s of a PyG `Data` (one) or `Batch` (one per graph, in order); torch
    positions are slices of `data.pos`, so autograd flows back to it."""
    if not is_pyg(data):
        raise TypeError(f"to_systems expects a torch_geometric Data or Batch, got {type(data).__name__}")
    return systems_from_pyg(data)


def node_features(tensor: TensorMap, batch) -> tuple:
    """A per-atom output as node features of `batch` (a PyG `Data` or `Batch`): the torch tensor
    `[num_nodes, F]` whose row `ptr[s] + a` is atom `a` of graph `s` (samples `system, atom`), and
    the Labels of its `F` columns (keys, components, properties: the order of
    `mtdsl.ops.sparse_labels`). Atoms a block lacks are zeros. Torch values keep autograd."""
    offsets = np.asarray(graph_offsets(batch), dtype=np.int64)
    names = tensor.sample_names
    if names[:2] != ["system", "atom"] or len(names) != 2:
        raise ValueError(f"node_features needs per-atom samples ('system', 'atom'), got {names}")
    return _dense(tensor, lambda samples: offsets[samples[:, 0]] + samples[:, 1], int(offsets[-1]),
                  len(offsets) - 1, "node")


def graph_features(tensor: TensorMap, batch) -> tuple:
    """A per-system output as graph-level features of `batch`: `[num_graphs, F]` (row `s` is graph
    `s`, samples `system`) and the Labels of the columns, as `node_features`."""
    n_graphs = len(graph_offsets(batch)) - 1
    if tensor.sample_names != ["system"]:
        raise ValueError(f"graph_features needs per-system samples ('system'), got {tensor.sample_names}")
    return _dense(tensor, lambda samples: samples[:, 0].astype(np.int64), n_graphs, n_graphs, "graph")


def _dense(tensor: TensorMap, row_of, n_rows: int, n_graphs: int, what: str):
    import torch

    _, columns = sparse_labels(tensor)
    reference = tensor.block(0).values
    dtype = reference.dtype if is_torch(reference) else getattr(torch, np.dtype(reference.dtype).name)
    device = reference.device if is_torch(reference) else "cpu"
    result = torch.zeros((n_rows, len(columns)), dtype=dtype, device=device)
    start = 0
    for block in tensor.blocks():
        width = int(np.prod(block.values.shape[1:], dtype=np.int64))
        samples = block.samples.array
        if len(samples) and (samples[:, 0].max() >= n_graphs or samples[:, 0].min() < 0):
            raise ValueError(f"the TensorMap has samples of system {int(samples[:, 0].max())}, the batch has "
                             f"{n_graphs} graphs")
        rows = torch.from_numpy(row_of(samples)).to(device)
        values = block.values if is_torch(block.values) else torch.from_numpy(np.ascontiguousarray(block.values))
        result[rows, start:start + width] = values.reshape(len(samples), width).to(dtype)
        start += width
    return result, columns
