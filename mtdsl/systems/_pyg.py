"""PyTorch Geometric `Data` / `Batch` objects as mtdsl systems, without importing torch_geometric.

A PyG object is recognised only when torch_geometric is already imported (`sys.modules`), so
code that never uses PyG pays nothing; its fields are read as attributes. The graphs of a
`Batch` are the systems, in order: graph `g` is atoms `ptr[g]:ptr[g + 1]`. The fields read are
those `mtdsl.pyg.to_data` writes: `pos` `[N, 3]`, `z` `[N]` (atomic numbers), and optionally
`cell` `[G, 3, 3]` and `pbc` `[G, 3]` (absent: no cell, not periodic). Positions are sliced,
never copied to numpy, so torch autograd flows back to `data.pos`.
"""

from __future__ import annotations

import sys

from .system import System


def is_pyg(value) -> bool:
    """Whether `value` is a PyG `Data` or `Batch` (a `Batch` is a `Data`)."""
    torch_geometric = sys.modules.get("torch_geometric")
    if torch_geometric is None:
        return False
    return isinstance(value, torch_geometric.data.Data)


def graph_offsets(data) -> list[int]:
    """`[0, n_0, n_0 + n_1, ...]`: where each graph's nodes start (one graph for a `Data`)."""
    ptr = getattr(data, "ptr", None)
    if ptr is not None:
        return [int(v) for v in ptr]
    return [0, int(data.num_nodes)]


def systems_from_pyg(data, numpy: bool = False) -> list[System]:
    """The systems of a PyG `Data` (one) or `Batch` (one per graph, in order); with `numpy`,
    numpy systems (detached: for the numpy backends, which read them once)."""
    where = type(data).__name__
    for field in ("pos", "z"):
        if getattr(data, field, None) is None:
            raise ValueError(f"the PyG {where} has no {field!r}: mtdsl reads positions from 'pos' and atomic "
                             "numbers from 'z' (as mtdsl.pyg.to_data writes them)")
    offsets = graph_offsets(data)
    n_graphs = len(offsets) - 1
    convert = (lambda value: value.detach().cpu().numpy()) if numpy else (lambda value: value)
    positions_all, types_all = convert(data.pos), convert(data.z)
    cells = _per_graph(data, "cell", (3, 3), n_graphs, where, convert)
    pbcs = _per_graph(data, "pbc", (3,), n_graphs, where, convert)
    systems = []
    for graph in range(n_graphs):
        start, stop = offsets[graph], offsets[graph + 1]
        positions = positions_all[start:stop]
        cell = cells[graph].astype(positions.dtype) if numpy and cells is not None else \
            cells[graph].to(positions.dtype) if cells is not None else None
        systems.append(System(types_all[start:stop], positions, cell, pbcs[graph] if pbcs is not None else None))
    return systems


def _per_graph(data, field: str, shape: tuple, n_graphs: int, where: str, convert):
    value = getattr(data, field, None)
    if value is None:
        return None
    value = convert(value).reshape(-1, *shape)
    if value.shape[0] != n_graphs:
        raise ValueError(f"the PyG {where}'s {field!r} has {value.shape[0]} entries of shape {list(shape)} for "
                         f"{n_graphs} graphs")
    return value
