"""The loop IR evaluated with torch tensors: differentiable to every order.

Reverse mode for `Model.to_torch()` (see docs/torch.md): the values of a model
come from its backend; their vector-Jacobian products are torch autograd through
this evaluation of the same IR. It is the reference interpreter
(`runtime/interpreter.py`) with the floating-point values held as torch tensors:
everything about integers (index values, label lookups, block and sample
positions, masks, missing entries) is computed by the interpreter itself, in
numpy, on *payloads*: arrays holding the position (plus one) of each entry in
its storage. A read of positions, of a parameter or of a block access gives the
positions it reads, and the torch values are gathered at them. So the structure
is the interpreter's, entry for entry, and only arithmetic runs in torch:

- `+ - * / ^ %`, `?:`, the elementary functions, `norm`, `dot`: torch ops;
- comparisons, `and`, `or`, `not`: numpy booleans of the detached values (piecewise
  constant: no derivative, as in mtdsl/ir/passes/autodiff.py);
- sums: `torch.einsum` and `index_add` over the CSR segments of `P.from(i)`;
- `sph`, `soap_radial`, `cosine_cutoff`, `gto`: torch formulas (the harmonics'
  recurrences of mtdsl/math/sph.py, the cubic Hermite table of the radial
  spline), so their derivatives of every order are torch autograd's; `cg` is a
  constant.

Kernels are assembled by `runtime/assemble.evaluate_kernel` on a payload body
(the flat position of each point), then the torch body is gathered into the
blocks: same labels, same order, same zeros as the backends.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mtdsl.ir import nodes as ir
from mtdsl.math.radial import soap_radial_spline
from mtdsl.math.sph import _normalization, e3nn_change_of_basis, recurrences
from mtdsl.tensor import TensorBlock, TensorMap

from .assemble import evaluate_kernel, kernel_domain
from .bindings import Bindings, RunError
from .interpreter import _BINARY, Interpreter, _contract, _letter
from .named import VECTOR_AXIS, Named, apply, merge_missing, union_axes

#: float fields of systems and pairs, and whether they are vectors (an xyz axis)
FLOAT_FIELDS = {"positions": True, "cell": False, "vector": True, "distance": False}

_NOT_DIFFERENTIABLE = ("eq", "ne", "lt", "le", "gt", "ge", "and", "or")

_TORCH_BINARY = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "div": torch.true_divide,
    "mod": torch.remainder,  # floored, as numpy's and Python's %
    "pow": torch.pow,
}


#: the scalar functions of mtdsl.math.functions' tables, in torch (derivatives by autograd: floor and
#: round have derivative 0, as in mtdsl/ir/passes/autodiff.py)
_TORCH_FUNCTIONS = {
    "erf": torch.erf,
    "erfc": torch.erfc,
    "acos": torch.acos,
    "asin": torch.asin,
    "floor": torch.floor,
    "round": torch.round,  # half to even, as numpy
    "softplus": lambda x: torch.logaddexp(x, torch.zeros_like(x)),
    "atan2": torch.atan2,
}


def _from_numpy(array):
    """A tensor sharing a writable, contiguous copy of `array` only where needed."""
    return torch.from_numpy(np.require(array, requirements=("C", "W")))


def is_tensor(value) -> bool:
    return isinstance(value, torch.Tensor)


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
    while the first aliases it) holds the same variable: its diagonal, as the interpreter's
    assembly reads it."""
    while len(set(names)) != len(names):
        second = next(k for k, a in enumerate(names) if names.index(a) != k)
        first = names.index(names[second])
        size = max(data.shape[first], data.shape[second])
        shape = list(data.shape)
        shape[first] = shape[second] = size
        data = torch.diagonal(data.expand(shape), dim1=first, dim2=second)
        names = [a for k, a in enumerate(names) if k not in (first, second)] + [names[first]]
    return data, names


def as_torch(data, dtype):
    if is_tensor(data):
        return data
    array = np.require(data, requirements=("C", "W"))
    if array.dtype.kind == "f":
        return torch.from_numpy(array).to(dtype)
    return torch.from_numpy(array)


def tapply(torch_function, numpy_function, *arrays: Named, dtype=torch.float64) -> Named:
    """`named.apply` in torch when any operand holds torch data, else in numpy."""
    if not any(is_tensor(a.data) for a in arrays):
        return apply(numpy_function, *arrays)
    axes = union_axes(*arrays)
    data = torch_function(*(as_torch(expand(a, axes), dtype) for a in arrays))
    if data.ndim != len(axes):
        data = data.reshape((1,) * len(axes))
    return Named(axes, data, merge_missing(*arrays))


def detached(named: Named) -> Named:
    if not is_tensor(named.data):
        return named
    return Named(named.axes, named.data.detach().numpy(), named.missing)


class TorchInterpreter(Interpreter):
    """The reference interpreter with torch values for positions, cells, pairs, parameters and tensors.

    `floats[(source, field)]` are the torch arrays of the float data of systems
    and pairs, `params[name]` the parameters, `flats[name]` the values of a
    tensor's blocks concatenated (the order of `runtime/blocks.BlockTable`);
    `bindings` hold the payloads in their place.
    """

    def __init__(self, module, bindings, floats: dict, params: dict, dtype, memo: "StructureMemo | None" = None):
        super().__init__(module, bindings)
        self.floats = floats
        self.torch_params = params
        self.flats: dict = {}
        self.dtype = dtype
        self._payload = False
        self.memo = memo if memo is not None else StructureMemo()
        self._occurrences: dict = {}

    # -- reads: the interpreter on payloads, then a gather ----------------------------------------
    def _gather(self, values, payload: Named, one_based: bool) -> Named:
        return self._gather_at(values, (payload.axes, _from_numpy(payload.data.astype(np.int64)), payload.missing),
                               one_based)

    @staticmethod
    def _gather_at(values, index, one_based: bool) -> Named:
        axes, positions, missing = index
        flat = values.reshape(-1)
        if one_based:
            flat = torch.cat([flat.new_zeros(1), flat])
        return Named(axes, flat[positions], missing)

    def _remembered(self, key, compute):
        """`compute()` (a payload's gather positions: structure only), or what it gave at the same
        occurrence of `key` in an earlier evaluation of the same structure (`StructureMemo`)."""
        occurrence = self._occurrences.get(key, 0)
        self._occurrences[key] = occurrence + 1
        return self.memo.get((key, occurrence), compute)

    def _eval_Data(self, expr: ir.Data, scope) -> Named:
        values = self.floats.get((expr.source, expr.field))
        if values is None:
            return super()._eval_Data(expr, scope)
        self._payload = True
        try:
            payload = super()._eval_Data(expr, scope)
        finally:
            self._payload = False
        return self._gather(values, payload, one_based=False)

    def _data_array(self, expr: ir.Data):
        if self._payload and (expr.source, expr.field) in self.floats:  # not an index (`P.first[p]`) of it
            values = self.floats[(expr.source, expr.field)]
            return np.arange(values.numel(), dtype=np.float64).reshape(tuple(values.shape)), FLOAT_FIELDS[expr.field]
        return super()._data_array(expr)

    def _eval_ParamRef(self, expr: ir.ParamRef, scope) -> Named:
        positions = self._param_positions(expr, scope)
        values = self.torch_params[expr.name]
        gathered = _gather_by_dimension(values, positions)
        if gathered is None:  # bindings.params hold positions
            payload = np.asarray(self.bindings.params[expr.name])
            gathered = self._gather(values, apply(lambda *p: payload[tuple(p)], *positions), one_based=False)
        return gathered

    def _eval_BlockRef(self, expr: ir.BlockRef, scope) -> Named:
        def positions():
            payload = super(TorchInterpreter, self)._eval_BlockRef(expr, scope)  # positions + 1, 0 if missing
            return payload.axes, _from_numpy(payload.data.astype(np.int64)), payload.missing

        tensor = self.bindings.tensors[expr.tensor]
        shapes = tuple(tuple(b.values.shape) for b in tensor.blocks())  # the same labels, in practice
        index = self._remembered(("block", id(expr), expr.tensor, shapes), positions)
        return self._gather_at(self.flats[expr.tensor], index, one_based=True)

    # -- arithmetic ---------------------------------------------------------------------------------
    def _eval_Unary(self, expr: ir.Unary, scope) -> Named:
        operand = self.evaluate(expr.operand, scope)
        if expr.op == "neg":
            return tapply(torch.neg, np.negative, operand, dtype=self.dtype)
        return apply(np.logical_not, detached(operand))

    def _eval_Binary(self, expr: ir.Binary, scope) -> Named:
        left, right = self.evaluate(expr.left, scope), self.evaluate(expr.right, scope)
        if expr.op in _NOT_DIFFERENTIABLE:
            return apply(_BINARY[expr.op], detached(left), detached(right))
        return tapply(_TORCH_BINARY[expr.op], _BINARY[expr.op], left, right, dtype=self.dtype)

    def _eval_Select(self, expr: ir.Select, scope) -> Named:
        condition = detached(self.evaluate(expr.condition, scope))
        if_true, if_false = self.evaluate(expr.if_true, scope), self.evaluate(expr.if_false, scope)
        result = tapply(lambda c, a, b: torch.where(c.bool(), a, b), np.where, condition, if_true, if_false,
                        dtype=self.dtype)
        missing = None
        if if_true.missing is not None or if_false.missing is not None:
            false = Named.scalar(False)
            missing = apply(np.where, condition, if_true.missing or false, if_false.missing or false)
            missing = Named(missing.axes, missing.data.astype(bool))
        return Named(result.axes, result.data, missing)

    # -- built-in functions -------------------------------------------------------------------------
    def _unary(self, function, numpy_function, x):
        return tapply(function, numpy_function, x, dtype=self.dtype)

    def _call_sqrt(self, expr, x):
        return self._unary(torch.sqrt, np.sqrt, x)

    def _call_exp(self, expr, x):
        return self._unary(torch.exp, np.exp, x)

    def _call_log(self, expr, x):
        return self._unary(torch.log, np.log, x)

    def _call_sin(self, expr, x):
        return self._unary(torch.sin, np.sin, x)

    def _call_cos(self, expr, x):
        return self._unary(torch.cos, np.cos, x)

    def _call_tanh(self, expr, x):
        return self._unary(torch.tanh, np.tanh, x)

    def _call_sigmoid(self, expr, x):
        if not is_tensor(x.data):
            return super()._call_sigmoid(expr, x)
        return self._unary(lambda v: 0.5 * (1.0 + torch.tanh(0.5 * v)), None, x)

    def _call_silu(self, expr, x):
        if not is_tensor(x.data):
            return super()._call_silu(expr, x)
        return self._unary(lambda v: v * 0.5 * (1.0 + torch.tanh(0.5 * v)), None, x)

    def _call_abs(self, expr, x):
        return self._unary(torch.abs, np.abs, x)

    def _call_scalar(self, expr, *args):
        if not any(is_tensor(a.data) for a in args):
            return super()._call_scalar(expr, *args)
        return tapply(_TORCH_FUNCTIONS[expr.function], None, *args, dtype=self.dtype)

    def _call_cross(self, expr, u, v):
        if not (is_tensor(u.data) or is_tensor(v.data)):
            return super()._call_cross(expr, u, v)
        return tapply(lambda a, b: torch.linalg.cross(*torch.broadcast_tensors(a, b), dim=-1), None, u, v,
                      dtype=self.dtype)

    def _call_to_irrep(self, expr, v, m):
        if not is_tensor(v.data):
            return super()._call_to_irrep(expr, v, m)
        if VECTOR_AXIS not in v.axes:
            raise RunError("to_irrep() needs a vector as its first argument")
        axes = tuple(a for a in union_axes(v, m) if a != VECTOR_AXIS)
        values = expand(v, axes + (VECTOR_AXIS,))
        order = np.asarray(ir.IRREP1_AXES[self.convention])
        axis = order[np.clip(m.expand(axes).astype(np.int64) + 1, 0, 2)]
        shape = tuple(np.broadcast_shapes(tuple(values.shape[:-1]), axis.shape))
        values = values.expand(shape + (3,))
        index = _from_numpy(np.ascontiguousarray(np.broadcast_to(axis, shape))[..., None])
        return Named(axes, torch.gather(values, -1, index)[..., 0], merge_missing(v, m))

    def _call_norm(self, expr, v):
        if not is_tensor(v.data):
            return super()._call_norm(expr, v)
        return _reduce_vector(v, lambda d: torch.sqrt(torch.sum(d * d, dim=-1)))

    def _call_dot(self, expr, u, v):
        if not (is_tensor(u.data) or is_tensor(v.data)):
            return super()._call_dot(expr, u, v)
        product = tapply(torch.mul, np.multiply, u, v, dtype=self.dtype)
        return _reduce_vector(product, lambda d: torch.sum(d, dim=-1))

    def _call_gto(self, expr, r, n):
        if not is_tensor(r.data):
            return super()._call_gto(expr, r, n)
        width = float(expr.option("width"))
        return tapply(lambda rr, nn: rr**nn * torch.exp(-(rr * rr) / (2.0 * width * width)), None, r, n,
                      dtype=self.dtype)

    def _call_cosine_cutoff(self, expr, r):
        if not is_tensor(r.data):
            return super()._call_cosine_cutoff(expr, r)
        cutoff, width = float(expr.option("cutoff")), float(expr.option("width"))
        return self._unary(lambda rr: cosine_cutoff(rr, cutoff, width), None, r)

    def _call_sph(self, expr, v, l, m):
        if not is_tensor(v.data):
            return super()._call_sph(expr, v, l, m)
        if VECTOR_AXIS not in v.axes:
            raise RunError("sph() needs a vector as its first argument")
        l_max = max(int(np.max(l.data)) if l.data.size else 0, 0)
        table = spherical_harmonics(v.data.reshape(-1, 3), l_max, self.convention)
        table = table.reshape(tuple(v.data.shape[:-1]) + (table.shape[-1],))
        lm_axes = union_axes(l, m)
        ll, mm = np.broadcast_arrays(l.expand(lm_axes), m.expand(lm_axes))
        valid = (np.abs(mm) <= ll) & (ll >= 0)
        column = _from_numpy(np.where(valid, ll * ll + ll + mm, 0))
        gathered = table[..., column] * _from_numpy(valid).to(table.dtype)
        return Named(v.axes[:-1] + lm_axes, gathered, merge_missing(v, l, m))

    def _call_soap_radial(self, expr, r, n, l):
        if not is_tensor(r.data):
            return super()._call_soap_radial(expr, r, n, l)
        n_radial = int(expr.option("n_radial"))
        cutoff = float(expr.option("cutoff"))
        width = float(expr.option("density_width"))
        l_max = max(int(np.max(l.data)) if l.data.size else 0, 0)
        spline = soap_radial_spline(l_max, n_radial, cutoff, width)
        table = radial_spline(spline, r.data.reshape(-1))
        table = table.reshape(tuple(r.data.shape) + tuple(table.shape[1:]))
        nl_axes = union_axes(n, l)
        nn, ll = np.broadcast_arrays(n.expand(nl_axes), l.expand(nl_axes))
        data = table[..., _from_numpy(ll), _from_numpy(nn)]
        return Named(r.axes + nl_axes, data, merge_missing(r, n, l))

    # -- reductions ---------------------------------------------------------------------------------
    def _index_value(self, expr, scope) -> Named:
        return detached(self.evaluate(expr, scope))

    def _as_float(self, mask: Named) -> Named:
        return Named(mask.axes, np.asarray(mask.data).astype(np.float64), mask.missing)

    def _reduce(self, values, masks, reduced, scope) -> Named:
        if any(is_tensor(v.data) for v in values):
            return self._contract(values, masks, reduced, scope)
        return _contract(values, masks, reduced, scope, self.bindings.dtype)

    def _contract(self, values, masks, reduced, scope) -> Named:
        """`interpreter._contract` with torch.einsum; missing entries from the numpy version."""
        factors = values + masks
        axes = union_axes(*factors)
        for name in reduced:
            if name not in axes:
                factors = factors + [Named((name,), np.ones(len(scope.values[name])))]
                axes = axes + (name,)
        kept = tuple(a for a in axes if a not in reduced)
        letters = {axis: _letter(k) for k, axis in enumerate(axes)}
        sizes = {}
        for factor in factors:
            for axis, size in zip(factor.axes, tuple(factor.data.shape)):
                if size != 1:
                    sizes[axis] = size
        operands, specs = [], []
        for factor in factors:
            data = as_torch(factor.data, self.dtype)
            if not data.is_floating_point():
                data = data.to(self.dtype)
            operands.append(data.expand(tuple(sizes.get(a, 1) for a in factor.axes)))
            specs.append("".join(letters[a] for a in factor.axes))
        data = torch.einsum(",".join(specs) + "->" + "".join(letters[a] for a in kept), *operands)
        missing = None
        if merge_missing(*values) is not None:
            numpy_values = [Named(v.axes, np.zeros((1,) * len(v.axes)), v.missing) for v in values]
            missing = _contract(numpy_values, masks, reduced, scope, np.float64).missing
        return Named(kept, data, missing)

    def _segment_sum(self, value: Named, pair_axis: str, atom: str, pairs_name: str) -> Named:
        if not is_tensor(value.data):
            return super()._segment_sum(value, pair_axis, atom, pairs_name)
        pairs = self.bindings.pairs[pairs_name]
        n_atoms = pairs.batch.n_atoms
        others = tuple(a for a in value.axes if a != pair_axis)
        missing = None
        if value.missing is not None:  # the interpreter's bookkeeping, on zeros
            missing = super()._segment_sum(
                Named(value.axes, np.zeros((1,) * len(value.axes)), value.missing), pair_axis, atom, pairs_name
            ).missing
        if pair_axis not in value.axes:
            counts = _from_numpy(np.diff(np.asarray(pairs.offsets))).to(value.data.dtype)
            data = counts.reshape((n_atoms,) + (1,) * len(others)) * expand(value, others)[None]
            return Named((atom,) + others, data, missing)
        data = expand(value, (pair_axis,) + others)
        data = data.expand((pairs.n_pairs,) + tuple(data.shape[1:]))
        first = _from_numpy(np.asarray(pairs.first, dtype=np.int64))
        summed = data.new_zeros((n_atoms,) + tuple(data.shape[1:])).index_add(0, first, data)
        return Named((atom,) + others, summed, missing)


def _gather_by_dimension(values: torch.Tensor, positions: list[Named]):
    """`values[p_0, p_1, ...]` where each position `p_d` runs over axes of its own, by one
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
        result = result.index_select(dim, _from_numpy(data.reshape(-1)))
        result = result.reshape(tuple(result.shape[:dim]) + data.shape + tuple(result.shape[dim + 1:]))
        axes += list(position.axes)
        dim += data.ndim
    return Named(tuple(axes), result)


def _reduce_vector(value: Named, function) -> Named:
    if VECTOR_AXIS not in value.axes:
        raise RunError("norm() and dot() need vector arguments")
    axes = tuple(a for a in value.axes if a != VECTOR_AXIS)
    return Named(axes, function(expand(value, axes + (VECTOR_AXIS,))), value.missing)


# ---- built-ins in torch ------------------------------------------------------------------------------


def cosine_cutoff(r, cutoff: float, width: float):
    """mtdsl.math.functions.cosine_cutoff in torch."""
    inside = (r > cutoff - width) & (r < cutoff)
    s = math.pi * (r - cutoff + width) / width
    smooth = 0.5 * (1.0 + torch.cos(torch.where(inside, s, torch.zeros_like(s))))
    return torch.where(r <= cutoff - width, torch.ones_like(r), torch.where(inside, smooth, torch.zeros_like(r)))


def spherical_harmonics(vectors, l_max: int, convention: str = "metatensor"):
    """mtdsl.math.sph.spherical_harmonics in torch: `[n, (l_max + 1)^2]`, differentiable to every order."""
    squared = torch.sum(vectors * vectors, dim=1)
    nonzero = squared > 0.0
    # (the square root of ones where the vector is zero: no infinite derivative to mask)
    safe = torch.sqrt(torch.where(nonzero, squared, torch.ones_like(squared)))
    u = vectors / safe[:, None]
    x, y, z = u[:, 0], u[:, 1], u[:, 2]
    c, s, q = recurrences(x, y, z, l_max, torch.ones_like(x), torch.zeros_like(x))
    columns = []
    for l in range(l_max + 1):
        row = [None] * (2 * l + 1)
        for m in range(0, l + 1):
            norm = _normalization(l, m)
            if m == 0:
                row[l] = norm * q[l][0]
            else:
                row[l + m] = norm * q[l][m] * c[m]
                row[l - m] = norm * q[l][m] * s[m]
        if l > 0:
            row = [torch.where(nonzero, value, torch.zeros_like(value)) for value in row]
        block = torch.stack(row, dim=1)
        if convention == "e3nn":
            block = block @ _from_numpy(e3nn_change_of_basis(l).T).to(block.dtype)
        columns.append(block)
    return torch.cat(columns, dim=1)


def radial_spline(spline, r):
    """`RadialSpline.evaluate(r)` in torch: `[len(r), max_angular + 1, n_radial]`, the cubic Hermite
    table (distances beyond the cutoff, which pairs never have, extend the last interval)."""
    dtype = r.dtype
    values = _from_numpy(spline.values).to(dtype)
    derivatives = _from_numpy(spline.derivatives).to(dtype) * spline.step
    x = r / spline.step
    k = torch.clamp(torch.floor(x.detach()).to(torch.int64), 0, spline.n_intervals - 1)
    t = (x - k.to(dtype))[:, None, None]
    t2 = t * t
    t3 = t2 * t
    p0, p1 = values[k], values[k + 1]
    m0, m1 = derivatives[k], derivatives[k + 1]
    return (2 * t3 - 3 * t2 + 1) * p0 + (t3 - 2 * t2 + t) * m0 + (-2 * t3 + 3 * t2) * p1 + (t3 - t2) * m1


# ---- kernels and tensors ------------------------------------------------------------------------------


def payload_tensormap(tensor: TensorMap):
    """A TensorMap with the labels of `tensor` whose values are their flat position + 1 (float64),
    and the torch values of `tensor` concatenated in that order."""
    blocks, flats, base = [], [], 0
    for block in tensor.blocks():
        size = int(np.prod(tuple(block.values.shape), dtype=np.int64))
        payload = (np.arange(size, dtype=np.float64) + base + 1).reshape(tuple(block.values.shape))
        blocks.append(TensorBlock(payload, block.samples, block.components, block.properties))
        flats.append(block.values.reshape(-1))
        base += size
    flat = torch.cat(flats) if flats else torch.zeros(0, dtype=torch.float64)
    return TensorMap(tensor.keys, blocks), flat


def evaluate_kernel_torch(interpreter: TorchInterpreter, kernel: ir.TensorKernel) -> TensorMap:
    """The kernel's TensorMap with torch values: assembled on a payload body, then gathered."""
    scope, axes, sizes, _ = kernel_domain(interpreter, kernel)
    body = interpreter.evaluate(kernel.body, scope)
    shape = tuple(sizes[a] for a in axes)
    data = as_torch(expand(body, axes), interpreter.dtype)
    if not data.is_floating_point():
        data = data.to(interpreter.dtype)
    flat = torch.cat([data.new_zeros(1), data.expand(shape).reshape(-1)])
    n_points = int(np.prod(shape, dtype=np.int64))
    payload = Named(axes, np.arange(1, n_points + 1, dtype=np.float64).reshape(shape), body.missing)
    structure = evaluate_kernel(interpreter, kernel, body=payload)
    blocks = []
    for block in structure.blocks():
        index = _from_numpy(np.asarray(block.values).astype(np.int64))
        blocks.append(TensorBlock(flat[index], block.samples, block.components, block.properties))
    return TensorMap(structure.keys, blocks)


class StructureMemo:
    """What an evaluation computed from the structure alone (the positions that block accesses
    gather, found by label lookups over the payloads), for later evaluations of the same
    structure: the orders of one call of `TorchModel` (forces, then the backward of a force
    loss) evaluate the same program on the same systems and neighbour lists, with other
    torch values. Entries are keyed by the IR node, the tensor's block shapes and the
    occurrence of the node in the evaluation (the evaluation order depends on the structure
    only)."""

    def __init__(self):
        self.entries: dict = {}
        self.hits = 0

    def get(self, key, compute):
        found = self.entries.get(key)
        if found is None:
            found = self.entries[key] = compute()
        else:
            self.hits += 1
        return found


def evaluate(module: ir.Module, batch, pairs: dict, positions, cell, params: dict, inputs: dict,
             precomputed: dict | None = None, skip=(), memo: StructureMemo | None = None) -> dict:
    """Every kernel of `module` with torch values; returns {tensor name: TensorMap}.

    `batch` and `pairs` give the structure (types, systems, neighbour lists); the
    float values come from `positions` [atoms, 3] and `cell` [systems, 3, 3], the
    parameters `params` {name: tensor} and the input TensorMaps `inputs` (torch values).
    The kernels of `precomputed` {name: TensorMap with torch values} are not evaluated:
    their tensors are those (the descriptors, runtime/torch_descriptors.py); the kernels of
    `skip` (read only by those) are not evaluated at all. `memo`: a `StructureMemo` of earlier
    evaluations of the same structure (a new one when None).
    """
    dtype = positions.dtype
    systems = module.systems[0].name
    floats = {(systems, "positions"): positions, (systems, "cell"): cell}
    system_index = _from_numpy(np.asarray(batch.system, dtype=np.int64))
    for declaration in module.pairs:
        pair = pairs[declaration.name]
        first = _from_numpy(np.asarray(pair.first, dtype=np.int64))
        second = _from_numpy(np.asarray(pair.second, dtype=np.int64))
        shifts = _from_numpy(np.asarray(pair.cell_shifts)).to(dtype)
        vectors = positions[second] - positions[first] + torch.einsum("pa,pab->pb", shifts, cell[system_index[first]])
        floats[(declaration.name, "vector")] = vectors
        floats[(declaration.name, "distance")] = torch.sqrt(torch.sum(vectors * vectors, dim=1))
    payload_params = {
        name: np.arange(value.numel(), dtype=np.float64).reshape(tuple(value.shape)) for name, value in params.items()
    }
    bindings = Bindings({systems: batch}, pairs, payload_params, dtype=np.float64)
    interpreter = TorchInterpreter(module, bindings, floats, params, dtype, memo)
    results = {}
    for name, tensor in inputs.items():
        bindings.tensors[name], interpreter.flats[name] = payload_tensormap(tensor)
    precomputed = precomputed or {}
    for kernel in module.kernels:
        if kernel.name in skip:
            continue
        tensor = precomputed.get(kernel.name)
        if tensor is None:
            tensor = evaluate_kernel_torch(interpreter, kernel)
        results[kernel.name] = tensor
        bindings.tensors[kernel.name], interpreter.flats[kernel.name] = payload_tensormap(tensor)
    return results
