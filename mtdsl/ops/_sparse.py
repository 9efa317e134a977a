"""A block-sparse TensorMap as one sparse matrix (scipy.sparse or torch.sparse), and back.

The matrix is the TensorMap densified by `keys_to_properties(components_to_properties(tensor,
all component names), all key names)`, storing only the entries that exist:

- rows: the union of the blocks' samples, sorted (`sparse_labels(tensor)[0]`);
- columns: for each block in key order, its (component..., property) entries in C order of
  `values[sample, components..., property]`, labelled (key names, component names, property
  names) (`sparse_labels(tensor)[1]`, the properties `keys_to_properties` gives);
- entries: every value of every block, at (its sample's row, its column); a sample a block
  lacks has no entry there (not a stored zero). Explicit zeros of the blocks are stored.

`from_sparse(matrix, samples, columns, keys=..., components=...)` rebuilds the TensorMap: the
blocks are the runs of columns with one key, a block's samples the rows with entries in its
columns. Gradient blocks are not part of the matrix (values only).
"""

from __future__ import annotations

import numpy as np

from ..errors import MetadataError
from ..tensor import Labels, TensorBlock, TensorMap
from ..tensor._array import is_torch, to_numpy
from ..tensor._reshape import _union_rows

FORMATS = ("coo", "csr")
LIBRARIES = ("scipy", "torch")


def sparse_labels(tensor: TensorMap) -> tuple[Labels, Labels]:
    """The (rows, columns) Labels of `to_sparse(tensor)`."""
    if not len(tensor):
        raise MetadataError("to_sparse: the TensorMap has no blocks")
    samples, _ = _union_rows([b.samples.array for b in tensor.blocks()], True)
    rows = Labels(tensor.sample_names, samples, assume_unique=True)
    parts = []
    for key, block in zip(tensor.keys.array, tensor.blocks()):
        grids = np.meshgrid(*[c.array[:, 0] for c in block.components], np.arange(len(block.properties)),
                            indexing="ij")
        flat = [g.reshape(-1) for g in grids]
        properties = block.properties.array[flat[-1]] if len(flat[-1]) else \
            np.zeros((0, len(block.properties.names)), np.int32)
        component_rows = np.stack(flat[:-1], axis=1) if block.components else np.zeros((len(flat[-1]), 0), np.int32)
        parts.append(np.concatenate([np.repeat(key[None, :], len(flat[-1]), axis=0), component_rows, properties],
                                    axis=1))
    names = tensor.keys.names + tensor.component_names + tensor.property_names
    columns = Labels(names, np.concatenate(parts).astype(np.int32).reshape(-1, len(names)))
    return rows, columns


def to_sparse(tensor: TensorMap, format: str = "coo", library: str = "scipy"):
    """`tensor`'s values as one sparse matrix (see the module's docstring): a scipy.sparse
    `coo_array` / `csr_array`, or a torch sparse COO / CSR tensor (torch values keep autograd)."""
    if format not in FORMATS:
        raise ValueError(f"to_sparse: format must be one of {list(FORMATS)}, got {format!r}")
    if library not in LIBRARIES:
        raise ValueError(f"to_sparse: library must be one of {list(LIBRARIES)}, got {library!r}")
    samples, block_rows = _union_rows([b.samples.array for b in tensor.blocks()], True) if len(tensor) else \
        (np.zeros((0, 0)), [])
    rows, cols, data = [], [], []
    start = 0
    for block, positions in zip(tensor.blocks(), block_rows):
        width = int(np.prod(block.values.shape[1:], dtype=np.int64))
        rows.append(np.repeat(positions, width))
        cols.append(np.tile(np.arange(start, start + width, dtype=np.int64), len(positions)))
        data.append(block.values.reshape(len(positions), width).reshape(-1))
        start += width
    shape = (len(samples), start)
    row = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    col = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    order = np.lexsort((col, row))  # canonical: sorted by row, then column
    row, col = row[order], col[order]
    if library == "torch":
        import torch

        values = torch.cat([d if is_torch(d) else torch.from_numpy(np.ascontiguousarray(d)) for d in data]) \
            if data else torch.zeros(0, dtype=torch.float64)
        values = values[torch.from_numpy(order).to(values.device)]
        indices = torch.from_numpy(np.stack([row, col])).to(values.device)
        matrix = torch.sparse_coo_tensor(indices, values, shape, is_coalesced=True)
        return matrix if format == "coo" else matrix.to_sparse_csr()
    import scipy.sparse

    values = np.concatenate([to_numpy(d) for d in data])[order] if data else np.zeros(0)
    matrix = scipy.sparse.coo_array((values, (row, col)), shape=shape)
    if format == "coo":
        return matrix
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=shape[0]), out=indptr[1:])
    return scipy.sparse.csr_array((values, col, indptr), shape=shape)  # keeps explicit zeros


def from_sparse(matrix, samples: Labels, columns: Labels, keys, components=()) -> TensorMap:
    """The TensorMap whose `to_sparse` is `matrix` (scipy.sparse or torch sparse, COO or CSR):
    `samples` and `columns` label its rows and columns (`sparse_labels`), `keys` are the names of
    `columns` that are key dimensions, `components` those that are components (in order);
    the other names are the properties."""
    keys, components = list(keys), list(components)
    names = columns.names
    properties = [n for n in names if n not in keys and n not in components]
    for name in keys + components:
        if name not in names:
            raise MetadataError(f"from_sparse: {name!r} is not a column dimension (they are {names})")
    row, col, values = _coo(matrix)
    shape = tuple(matrix.shape)
    if shape != (len(samples), len(columns)):
        raise MetadataError(f"from_sparse: the matrix is {shape[0]}x{shape[1]} but the labels give "
                            f"{len(samples)} rows and {len(columns)} columns")
    order = np.lexsort((row, col))  # by column, then row: each block's entries are contiguous
    row, col = row[order], col[order]
    key_values = columns.array[:, [names.index(n) for n in keys]]
    change = np.flatnonzero(np.any(key_values[1:] != key_values[:-1], axis=1)) + 1 if len(columns) else []
    bounds = [0, *change, len(columns)] if len(columns) else [0]
    blocks, block_keys = [], []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        where = np.searchsorted(col, [start, stop])
        entries = slice(int(where[0]), int(where[1]))
        rows_here = np.unique(row[entries])
        width = stop - start
        if (where[1] - where[0]) != len(rows_here) * width:
            key = ", ".join(f"{n}={int(v)}" for n, v in zip(keys, key_values[start]))
            raise MetadataError(f"from_sparse: block ({key}) has {where[1] - where[0]} entries, not "
                                f"{len(rows_here)} samples x {width} columns: not the matrix of a TensorMap")
        sub = columns.array[start:stop]
        component_labels = []
        for name in components:
            _, first = np.unique(sub[:, names.index(name)], return_index=True)
            component_labels.append(Labels([name], sub[np.sort(first), names.index(name)].reshape(-1, 1)))
        property_rows = sub[:, [names.index(n) for n in properties]]
        n_properties = width // max(int(np.prod([len(c) for c in component_labels], dtype=np.int64)), 1)
        property_labels = Labels(properties, property_rows[:n_properties])
        block_shape = (len(rows_here), *(len(c) for c in component_labels), n_properties)
        if int(np.prod(block_shape[1:], dtype=np.int64)) != width:
            raise MetadataError(f"from_sparse: columns {start}..{stop - 1} are not a product of components "
                                f"and properties")
        # entries sorted by column then row: transpose to sample-major
        taken = order[entries]
        block_values = values[taken] if not is_torch(values) else values[_torch_index(taken, values)]
        block_values = block_values.reshape(width, len(rows_here)).T.reshape(block_shape)
        blocks.append(TensorBlock(block_values, Labels(samples.names, samples.array[rows_here], assume_unique=True),
                                  component_labels, property_labels))
        block_keys.append(key_values[start])
    key_labels = Labels(keys, np.array(block_keys, dtype=np.int32).reshape(-1, len(keys)))
    return TensorMap(key_labels, blocks)


def _torch_index(indices: np.ndarray, like):
    import torch

    return torch.from_numpy(np.ascontiguousarray(indices)).to(like.device)


def _coo(matrix):
    """(row, col) int64 numpy arrays and the values (numpy, or torch keeping autograd)."""
    if is_torch(matrix):
        import torch

        if matrix.layout == torch.sparse_csr:
            crow, col = to_numpy(matrix.crow_indices()), to_numpy(matrix.col_indices())
            row = np.repeat(np.arange(len(crow) - 1), np.diff(crow))
            return row.astype(np.int64), col.astype(np.int64), matrix.values()
        if matrix.layout == torch.sparse_coo:
            matrix = matrix.coalesce()
            indices = to_numpy(matrix.indices())
            return indices[0].astype(np.int64), indices[1].astype(np.int64), matrix.values()
        raise TypeError(f"from_sparse: a torch sparse COO or CSR tensor is needed, got layout {matrix.layout}")
    import scipy.sparse

    if not scipy.sparse.issparse(matrix):
        raise TypeError(f"from_sparse: expected a scipy.sparse matrix or a torch sparse tensor, "
                        f"got {type(matrix).__name__}")
    if matrix.format == "csr":
        row = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
        return row.astype(np.int64), matrix.indices.astype(np.int64), np.asarray(matrix.data)
    coo = matrix.tocoo()
    return coo.row.astype(np.int64), coo.col.astype(np.int64), np.asarray(coo.data)
