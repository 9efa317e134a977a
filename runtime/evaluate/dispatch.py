"""The array operations of the evaluator, each for numpy or torch arrays (metatensor-operations' `_dispatch`).

The evaluator (`evaluator.py`, `builtins.py`) is written once over these: an
operation whose operands are all numpy runs the numpy function (so a numpy run
is the reference interpreter, bit for bit, and never imports torch); as soon as
one operand is a torch tensor, it runs the torch function on every operand
(numpy ones converted, floats to the tensor's dtype), so torch autograd flows
through the evaluation. What decides structure (comparisons, `and`/`or`/`not`,
conditions, index values) is always numpy: on the detached values for torch
operands, piecewise constant, as in mtdsl/ir/passes/autodiff.py.
"""

from __future__ import annotations

import numpy as np

from mtdsl import builtins
from mtdsl.tensor._array import is_torch

from ..named import Named, merge_missing, union_axes


def _torch():
    import torch

    return torch


def is_tensor(value) -> bool:
    """True for a torch tensor (numpy arrays and scalars answer without importing torch)."""
    return not isinstance(value, (np.ndarray, np.generic)) and is_torch(value)


def any_tensor(*values) -> bool:
    return any(is_tensor(v) for v in values)


def _dtype_of(values):
    return next(v.dtype for v in values if is_tensor(v) and v.is_floating_point())


def from_numpy(array):
    """A torch tensor sharing a writable, contiguous copy of `array` only where needed."""
    return _torch().from_numpy(np.require(array, requirements=("C", "W")))


def as_torch(value, dtype):
    """`value` as a torch tensor, numpy floats converted to `dtype`."""
    if is_tensor(value):
        return value
    array = np.require(value, requirements=("C", "W"))
    if array.dtype.kind == "f":
        return _torch().from_numpy(array).to(dtype)
    return _torch().from_numpy(array)


def _torch_operands(values):
    dtype = _dtype_of(values)
    return [as_torch(v, dtype) for v in values]


def to_numpy(value):
    """Detached numpy values of a tensor (a numpy array as it is)."""
    if is_tensor(value):
        return value.detach().numpy()
    return value


def detached(named: Named) -> Named:
    if not is_tensor(named.data):
        return named
    return Named(named.axes, named.data.detach().numpy(), named.missing)


def expand(named: Named, axes: tuple):
    """`Named.expand` for numpy or torch data."""
    if not is_tensor(named.data):
        return named.expand(axes)
    data, names = _diagonal(named.data, list(named.axes))
    order = [names.index(a) for a in axes if a in names]
    data = data.permute(order) if order != list(range(len(order))) else data
    shape = [data.shape[order.index(names.index(a))] if a in names else 1 for a in axes]
    return data.reshape(shape)


def _diagonal(data, names: list):
    """An axis named twice (a sum over a second `P.from(i)` whose mask reads the outer `i`,
    while the first aliases it) holds the same variable: its diagonal, as the assembly reads it."""
    torch = _torch()
    while len(set(names)) != len(names):
        second = next(k for k, a in enumerate(names) if names.index(a) != k)
        first = names.index(names[second])
        size = max(data.shape[first], data.shape[second])
        shape = list(data.shape)
        shape[first] = shape[second] = size
        data = torch.diagonal(data.expand(shape), dim1=first, dim2=second)
        names = [a for k, a in enumerate(names) if k not in (first, second)] + [names[first]]
    return data, names


def apply(function, *arrays: Named) -> Named:
    """`function` applied elementwise on arrays aligned by axis name (`named.apply` for numpy or
    torch data: `function` is written with this module's operations, which take mixed operands)."""
    axes = union_axes(*arrays)
    data = function(*(expand(a, axes) for a in arrays))
    if is_tensor(data):
        if data.ndim != len(axes):
            data = data.reshape((1,) * len(axes))
    else:
        data = np.asarray(data)
        if data.ndim != len(axes):
            data = np.broadcast_to(data, tuple(1 for _ in axes)) if data.ndim == 0 else data
    return Named(axes, data, merge_missing(*arrays))


# ---- elementwise -----------------------------------------------------------------------------------


def _elementwise(numpy_function, torch_name: str):
    def function(*values):
        if any_tensor(*values):
            return getattr(_torch(), torch_name)(*_torch_operands(values))
        return numpy_function(*values)

    function.__name__ = torch_name
    return function


def _power(a, b):
    if any_tensor(a, b):
        return _torch().pow(*_torch_operands((a, b)))
    exponent = np.asarray(b)
    if exponent.dtype.kind == "i" and np.any(exponent < 0):  # an integer to a negative power: a float
        a = np.asarray(a, dtype=np.float64)
    return np.power(a, b)


def _structural(numpy_function):
    """An operation that decides structure: numpy, on detached values."""

    def function(*values):
        return numpy_function(*(to_numpy(v) for v in values))

    return function


add = _elementwise(np.add, "add")
subtract = _elementwise(np.subtract, "sub")
multiply = _elementwise(np.multiply, "mul")
negative = _elementwise(np.negative, "neg")
sqrt = _elementwise(np.sqrt, "sqrt")
exp = _elementwise(np.exp, "exp")
log = _elementwise(np.log, "log")
sin = _elementwise(np.sin, "sin")
cos = _elementwise(np.cos, "cos")
tanh = _elementwise(np.tanh, "tanh")
absolute = _elementwise(np.abs, "abs")

#: the IR's binary operators (`ir.Binary.op`)
BINARY = {
    "add": add,
    "sub": subtract,
    "mul": multiply,
    "div": _elementwise(lambda a, b: np.true_divide(a, b), "true_divide"),
    "mod": _elementwise(np.mod, "remainder"),  # floored, as Python's %
    "pow": _power,
    "eq": _structural(np.equal),
    "ne": _structural(np.not_equal),
    "lt": _structural(np.less),
    "le": _structural(np.less_equal),
    "gt": _structural(np.greater),
    "ge": _structural(np.greater_equal),
    "and": _structural(np.logical_and),
    "or": _structural(np.logical_or),
}

logical_not = _structural(np.logical_not)


def scalar_function(name: str, *values):
    """The elementwise built-in `name` (mtdsl/builtins/): its numpy form, or its torch form on torch
    values (derivatives by autograd; piecewise constant ones have derivative 0, as in the passes)."""
    builtin = builtins.get(name)
    if any_tensor(*values):
        return builtin.torch(*_torch_operands(values))
    return builtin.numpy(*values)


def where(condition, if_true, if_false):
    """`if_true` where `condition` (numpy, structure) holds, else `if_false`."""
    if any_tensor(if_true, if_false):
        a, b = _torch_operands((if_true, if_false))
        return _torch().where(as_torch(condition, a.dtype).bool(), a, b)
    return np.where(condition, if_true, if_false)


def cross(a, b):
    if any_tensor(a, b):
        torch = _torch()
        return torch.linalg.cross(*torch.broadcast_tensors(*_torch_operands((a, b))), dim=-1)
    return np.cross(a, b, axis=-1)


def sum_last(values):
    """The sum over the last axis."""
    if is_tensor(values):
        return _torch().sum(values, dim=-1)
    return np.sum(values, axis=-1)


def take_last(values, index: np.ndarray):
    """`values[..., index[...]]` along the last axis, `index` (numpy) broadcast to the leading axes."""
    shape = tuple(np.broadcast_shapes(tuple(values.shape[:-1]), index.shape))
    if is_tensor(values):
        values = values.expand(shape + (values.shape[-1],))
        positions = from_numpy(np.ascontiguousarray(np.broadcast_to(index, shape))[..., None])
        return _torch().gather(values, -1, positions)[..., 0]
    values = np.broadcast_to(values, shape + (values.shape[-1],))
    return np.take_along_axis(values, np.broadcast_to(index, shape)[..., None], axis=-1)[..., 0]


def mask_as(values, valid: np.ndarray):
    """`values * valid` (a numpy boolean mask, broadcast)."""
    if is_tensor(values):
        return values * from_numpy(valid).to(values.dtype)
    return values * valid


# ---- contractions and gathers ------------------------------------------------------------------------


def einsum(spec: str, operands: list, sizes: list, dtype):
    """One einsum of the operands, each broadcast to its `sizes` (size-1 axes broadcast in einsum
    only when expanded explicitly); booleans and, for torch, integers as floats of `dtype`."""
    if any_tensor(*operands):
        torch_dtype = _dtype_of(operands)
        prepared = []
        for data, shape in zip(operands, sizes):
            data = as_torch(data, torch_dtype)
            if not data.is_floating_point():
                data = data.to(torch_dtype)
            prepared.append(data.expand(shape))
        return _torch().einsum(spec, *prepared)
    prepared = []
    for data, shape in zip(operands, sizes):
        data = np.asarray(data)
        if data.dtype.kind == "b":
            data = data.astype(dtype)
        prepared.append(np.broadcast_to(data, shape))
    return np.asarray(np.einsum(spec, *prepared, optimize="greedy"))


def segment_sum(data, first: np.ndarray, offsets: np.ndarray, n_atoms: int):
    """`data` [pairs, ...] summed over the pairs of each first atom: [atoms, ...]."""
    n_pairs = len(first)
    if is_tensor(data):
        index = from_numpy(np.asarray(first, dtype=np.int64))
        return data.new_zeros((n_atoms,) + tuple(data.shape[1:])).index_add(0, index, data)
    matrix = csr_matrix((np.ones(n_pairs, dtype=data.dtype), np.arange(n_pairs), offsets), shape=(n_atoms, n_pairs))
    width = int(np.prod(data.shape[1:], dtype=np.int64))
    return np.asarray(matrix @ data.reshape(n_pairs, width)).reshape((n_atoms,) + data.shape[1:])


def counts_like(counts: np.ndarray, values):
    """Integer counts as an array of the values' kind and dtype."""
    if is_tensor(values):
        return from_numpy(counts).to(values.dtype)
    return counts.astype(values.dtype)


def gather_flat(flat, offset: np.ndarray):
    """`flat[offset]`: numpy or torch values at numpy positions."""
    if is_tensor(flat):
        return flat[from_numpy(np.asarray(offset, dtype=np.int64))]
    return flat[offset]


def zero_where(values, missing: np.ndarray):
    """`values` with 0 where `missing` holds."""
    if is_tensor(values):
        return _torch().where(from_numpy(np.ascontiguousarray(missing)), values.new_zeros(()), values)
    return np.where(missing, 0.0, values)


def concatenate_flat(arrays: list):
    """The arrays flattened and concatenated (numpy, or torch when one is a tensor)."""
    if any_tensor(*arrays):
        torch = _torch()
        dtype = _dtype_of(arrays)
        return torch.cat([as_torch(a, dtype).reshape(-1) for a in arrays])
    return np.concatenate([a.reshape(-1) for a in arrays]) if arrays else np.zeros(0)


def csr_matrix(*args, **kwargs):
    """scipy's CSR matrix, imported on first use (scipy.sparse costs ~0.2 s to import)."""
    import scipy.sparse

    return scipy.sparse.csr_matrix(*args, **kwargs)


def at(array, *index):
    """`array[index...]`: numpy or torch values at numpy positions."""
    if is_tensor(array):
        return array[tuple(from_numpy(np.asarray(i, dtype=np.int64)) for i in index)]
    return array[index if len(index) > 1 else index[0]]


def broadcast_to(data, shape: tuple):
    if is_tensor(data):
        return data.expand(shape)
    return np.broadcast_to(data, shape)


def gather_by_dimension(values, positions: list[Named]):
    """`values[p_0, p_1, ...]` (torch) where each position `p_d` runs over axes of its own, by one
    `index_select` per dimension (none for a dimension read in order): its backward adds whole
    slices, where a gather of every point adds entry by entry. None when two positions share an
    axis or some is missing (the caller gathers point by point)."""
    seen: set = set()
    for position in positions:
        if position.missing is not None or seen & set(position.axes):
            return None
        seen |= set(position.axes)
    result, axes, dim = values, [], 0
    for position in positions:
        data = np.asarray(position.data, dtype=np.int64)
        if not position.axes:
            result = result.select(dim, int(data))
            continue
        if data.ndim == 1 and len(data) == result.shape[dim] and np.array_equal(data, np.arange(len(data))):
            axes.append(position.axes[0])
            dim += 1
            continue
        result = result.index_select(dim, from_numpy(data.reshape(-1)))
        result = result.reshape(tuple(result.shape[:dim]) + data.shape + tuple(result.shape[dim + 1:]))
        axes += list(position.axes)
        dim += data.ndim
    return Named(tuple(axes), result)
