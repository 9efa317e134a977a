"""The reference interpreter: the living definition of the loop IR.

Every expression evaluates to a `Named` array over the index variables it
depends on, vectorized with numpy (one array operation per IR node, not one per
element). Dependent `irrep(l)` dimensions are padded to `-max..max`: entries with
`|m| > l` are zeros in every built-in, and masked wherever they could count.
A reduction over `P.from(i)` gathers `i` as the first atom of each pair and sums
each CSR segment with a sparse matrix product: pairs are never scanned per atom.

The compiled backends are tested against this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from mtdsl.ir import nodes as ir
from mtdsl.ir.roles import BinderMask
from mtdsl.math import functions as math_functions
from mtdsl.math.cg import cg as cg_block
from mtdsl.math.radial import soap_radial_spline
from mtdsl.math.sph import spherical_harmonics

from .bindings import Bindings, RunError
from .blocks import BlockTable
from .named import VECTOR_AXIS, Named, apply, merge_missing, union_axes


@dataclass
class Scope:
    """Index variables in scope: their values along their axis, and aliases.

    An alias replaces a variable by an array over other axes: inside
    `sum(p in P.from(i))`, `i` is the first atom of `p`.
    """

    values: dict[str, np.ndarray] = field(default_factory=dict)
    domains: dict[str, object] = field(default_factory=dict)
    aliases: dict[str, Named] = field(default_factory=dict)

    def bind(self, name: str, domain, values: np.ndarray) -> "Scope":
        scope = Scope(dict(self.values), dict(self.domains), dict(self.aliases))
        scope.values[name] = values
        scope.domains[name] = domain
        scope.aliases.pop(name, None)
        return scope

    def alias(self, name: str, value: Named) -> "Scope":
        scope = Scope(dict(self.values), dict(self.domains), dict(self.aliases))
        scope.aliases[name] = value
        return scope


class Interpreter:
    """Evaluates the expressions of one module against `Bindings`."""

    def __init__(self, module: ir.Module, bindings: Bindings):
        self.module = module
        self.bindings = bindings
        self.convention = module.convention
        self._tables: dict[str, BlockTable] = {}

    # -- helpers ----------------------------------------------------------------------
    def table(self, name: str) -> BlockTable:
        if name not in self._tables:
            self._tables[name] = BlockTable(name, self.bindings.tensors[name])
        return self._tables[name]

    def validity(self, name: str, scope: Scope) -> Optional[Named]:
        """For an irrep variable, the mask `|m| <= degree`; None for other variables."""
        domain = scope.domains.get(name)
        if not isinstance(domain, ir.IrrepDomain):
            return None
        degree = self.evaluate(domain.degree, scope)
        m = Named((name,), scope.values[name])
        return apply(lambda mm, ll: np.abs(mm) <= ll, m, degree)

    # -- expressions ----------------------------------------------------------------------
    def evaluate(self, expr, scope: Scope) -> Named:
        method = getattr(self, f"_eval_{type(expr).__name__}")
        return method(expr, scope)

    def _eval_Const(self, expr: ir.Const, scope: Scope) -> Named:
        return Named.scalar(expr.value)

    def _eval_Var(self, expr: ir.Var, scope: Scope) -> Named:
        if expr.name in scope.aliases:
            return scope.aliases[expr.name]
        return Named((expr.name,), scope.values[expr.name])

    def _eval_Data(self, expr: ir.Data, scope: Scope) -> Named:
        indices = [self.evaluate(e, scope) for e in expr.index]
        array, vector = self._data_array(expr)
        first = indices[0]
        if len(indices) == 2:  # a vector field read at one xyz component
            return apply(lambda i, c: array[i, c], first, indices[1])
        data = array[first.data]
        axes = first.axes + ((VECTOR_AXIS,) if vector else ())
        if expr.field == "cell":
            raise RunError("S.cell can only be read at one entry, as S.cell[s, a, b]")
        return Named(axes, data, first.missing)

    def _data_array(self, expr: ir.Data) -> tuple[np.ndarray, bool]:
        bindings = self.bindings
        if expr.source in bindings.systems:
            batch = bindings.systems[expr.source]
            arrays = {
                "positions": (batch.positions, True),
                "type": (batch.types, False),
                "system": (batch.system, False),
                "cell": (batch.cell, False),
                "pbc": (batch.pbc, True),
            }
        else:
            pairs = bindings.pairs[expr.source]
            arrays = {
                "first": (pairs.first, False),
                "second": (pairs.second, False),
                "vector": (pairs.vectors, True),
                "distance": (pairs.distances, False),
                "cell_shift": (pairs.cell_shifts, True),  # read as P.cell_shift[p, a] by gradients
            }
        array, vector = arrays[expr.field]
        array = np.asarray(array)
        if array.dtype.kind == "f":
            array = array.astype(self.bindings.dtype, copy=False)
        return array, vector

    def _eval_ParamRef(self, expr: ir.ParamRef, scope: Scope) -> Named:
        values = np.asarray(self.bindings.params[expr.name], dtype=self.bindings.dtype)
        return apply(lambda *p: values[tuple(p)], *self._param_positions(expr, scope))

    def _param_positions(self, expr: ir.ParamRef, scope: Scope) -> list[Named]:
        """The position along each dimension of the param that `expr` reads."""
        declaration = next(p for p in self.module.params if p.name == expr.name)
        indices = [self.evaluate(e, scope) for e in expr.index]
        positions = []
        for index, domain in zip(indices, declaration.domains):
            where, bad = self.bindings.positions_in_domain(domain, index.data)
            if np.any(bad):
                value = index.data[bad].flat[0]
                raise RunError(f"parameter {expr.name}: index value {value} is outside {domain}")
            positions.append(Named(index.axes, where, index.missing))
        return positions

    def _eval_BlockRef(self, expr: ir.BlockRef, scope: Scope) -> Named:
        keys = [(label, self.evaluate(e, scope)) for label, e in expr.keys]
        slots = [
            (slot, self.evaluate(slot.expr, scope))
            for slot in expr.samples + expr.components + expr.properties
        ]
        groups = (len(expr.samples), len(expr.components), len(expr.properties))
        return self.table(expr.tensor).gather(keys, slots, groups, self.bindings)

    def _eval_Unary(self, expr: ir.Unary, scope: Scope) -> Named:
        operand = self.evaluate(expr.operand, scope)
        if expr.op == "neg":
            return apply(np.negative, operand)
        return apply(np.logical_not, operand)

    def _eval_Binary(self, expr: ir.Binary, scope: Scope) -> Named:
        left, right = self.evaluate(expr.left, scope), self.evaluate(expr.right, scope)
        return apply(_BINARY[expr.op], left, right)

    def _eval_Select(self, expr: ir.Select, scope: Scope) -> Named:
        condition = self.evaluate(expr.condition, scope)
        if_true, if_false = self.evaluate(expr.if_true, scope), self.evaluate(expr.if_false, scope)
        result = apply(np.where, condition, if_true, if_false)
        missing = None
        if if_true.missing is not None or if_false.missing is not None:
            # a branch's missing entries matter only where that branch is taken
            false = Named.scalar(False)
            missing = apply(
                np.where, condition, if_true.missing or false, if_false.missing or false
            )
            missing = Named(missing.axes, missing.data.astype(bool))
        return Named(result.axes, result.data, missing)

    def _eval_Call(self, expr: ir.Call, scope: Scope) -> Named:
        args = [self.evaluate(a, scope) for a in expr.args]
        method = getattr(self, f"_call_{expr.function}", None)
        if method is None:  # a scalar function of mtdsl.math.functions' tables
            return self._call_scalar(expr, *args)
        return method(expr, *args)

    def _call_scalar(self, expr, *args):
        name = expr.function
        function = (math_functions.ELEMENTARY.get(name) or math_functions.BINARY[name])[0]
        return apply(function, *args)

    def _call_cross(self, expr, u, v):
        return apply(lambda a, b: np.cross(a, b, axis=-1), u, v)

    def _call_to_irrep(self, expr, v, m):
        """Component `m` of irrep 1 of `v`: its Cartesian axis `IRREP1_AXES[convention][m + 1]`."""
        if VECTOR_AXIS not in v.axes:
            raise RunError("to_irrep() needs a vector as its first argument")
        axes = tuple(a for a in union_axes(v, m) if a != VECTOR_AXIS)
        values = v.expand(axes + (VECTOR_AXIS,))
        order = np.asarray(ir.IRREP1_AXES[self.convention])
        axis = order[np.clip(m.expand(axes).astype(np.int64) + 1, 0, 2)]
        shape = np.broadcast_shapes(values.shape[:-1], axis.shape)
        values = np.broadcast_to(values, shape + (3,))
        gathered = np.take_along_axis(values, np.broadcast_to(axis, shape)[..., None], axis=-1)[..., 0]
        return Named(axes, gathered, merge_missing(v, m))

    # -- built-in functions ----------------------------------------------------------------
    def _call_sqrt(self, expr, x):
        return apply(np.sqrt, x)

    def _call_exp(self, expr, x):
        return apply(np.exp, x)

    def _call_log(self, expr, x):
        return apply(np.log, x)

    def _call_sin(self, expr, x):
        return apply(np.sin, x)

    def _call_cos(self, expr, x):
        return apply(np.cos, x)

    def _call_tanh(self, expr, x):
        return apply(np.tanh, x)

    def _call_sigmoid(self, expr, x):
        return apply(lambda v: 0.5 * (1.0 + np.tanh(0.5 * v)), x)

    def _call_silu(self, expr, x):
        return apply(lambda v: v * 0.5 * (1.0 + np.tanh(0.5 * v)), x)

    def _call_abs(self, expr, x):
        return apply(np.abs, x)

    def _call_norm(self, expr, v):
        return _reduce_vector(v, lambda d: np.sqrt(np.sum(d * d, axis=-1)))

    def _call_dot(self, expr, u, v):
        product = apply(np.multiply, u, v)
        return _reduce_vector(product, lambda d: np.sum(d, axis=-1))

    def _call_gto(self, expr, r, n):
        width = float(expr.option("width"))
        return apply(lambda rr, nn: rr**nn * np.exp(-(rr * rr) / (2.0 * width * width)), r, n)

    def _call_cosine_cutoff(self, expr, r):
        cutoff, width = float(expr.option("cutoff")), float(expr.option("width"))
        return apply(lambda rr: math_functions.cosine_cutoff(rr, cutoff, width), r)

    def _call_sph(self, expr, v, l, m):
        if VECTOR_AXIS not in v.axes:
            raise RunError("sph() needs a vector as its first argument")
        l_max = int(np.max(l.data)) if l.data.size else 0
        points = v.data.reshape(-1, 3)
        table = spherical_harmonics(points, max(l_max, 0), convention=self.convention)
        table = table.reshape(v.data.shape[:-1] + (table.shape[-1],)).astype(self.bindings.dtype, copy=False)
        point_axes = v.axes[:-1]
        lm_axes = union_axes(l, m)
        ll, mm = np.broadcast_arrays(l.expand(lm_axes), m.expand(lm_axes))
        valid = (np.abs(mm) <= ll) & (ll >= 0)
        column = np.where(valid, ll * ll + ll + mm, 0)
        gathered = table[..., column] * valid  # axes: point axes + lm axes
        return Named(point_axes + lm_axes, gathered, merge_missing(v, l, m))

    def _call_cg(self, expr, l1, m1, l2, m2, L, M):
        arrays = [l1, m1, l2, m2, L, M]
        axes = union_axes(*arrays)
        values = np.broadcast_arrays(*(a.expand(axes) for a in arrays))
        degrees = {int(x) for a in (values[0], values[2], values[4]) for x in np.unique(a)}
        top = max(degrees) if degrees else 0
        size = 2 * top + 1
        table = np.zeros((top + 1,) * 3 + (size,) * 3)
        for a in range(top + 1):
            for b in range(top + 1):
                for c in range(abs(a - b), min(a + b, top) + 1):
                    block = cg_block(a, b, c, self.convention)
                    table[a, b, c, top - a : top + a + 1, top - b : top + b + 1, top - c : top + c + 1] = block
        d1, e1, d2, e2, d3, e3 = values
        valid = (np.abs(e1) <= d1) & (np.abs(e2) <= d2) & (np.abs(e3) <= d3)
        data = table[d1, d2, d3, np.clip(e1 + top, 0, size - 1), np.clip(e2 + top, 0, size - 1),
                     np.clip(e3 + top, 0, size - 1)] * valid
        return Named(axes, data.astype(self.bindings.dtype), merge_missing(*arrays))

    def _call_soap_radial(self, expr, r, n, l):
        n_radial = int(expr.option("n_radial"))
        cutoff = float(expr.option("cutoff"))
        width = float(expr.option("density_width"))
        l_max = int(np.max(l.data)) if l.data.size else 0
        spline = soap_radial_spline(max(l_max, 0), n_radial, cutoff, width)
        table = spline.evaluate(r.data.reshape(-1)).reshape(r.data.shape + (l_max + 1, n_radial))
        nl_axes = union_axes(n, l)
        nn, ll = np.broadcast_arrays(n.expand(nl_axes), l.expand(nl_axes))
        data = table[..., ll, nn].astype(self.bindings.dtype, copy=False)
        return Named(r.axes + nl_axes, data, merge_missing(r, n, l))

    # -- derivative built-ins (forward-mode gradients, see mtdsl/ir/passes/autodiff.py) ---------------
    def _call_d_sph(self, expr, v, l, m):
        """d sph(v, l, m) / d v: vector-valued."""
        if VECTOR_AXIS not in v.axes:
            raise RunError("d_sph() needs a vector as its first argument")
        l_max = int(np.max(l.data)) if l.data.size else 0
        points = v.data.reshape(-1, 3)
        _, grads = spherical_harmonics(points, max(l_max, 0), convention=self.convention, gradients=True)
        grads = np.moveaxis(grads, 1, -1)  # [points, lm, xyz]
        grads = grads.reshape(v.data.shape[:-1] + grads.shape[1:]).astype(self.bindings.dtype, copy=False)
        point_axes = v.axes[:-1]
        lm_axes = union_axes(l, m)
        ll, mm = np.broadcast_arrays(l.expand(lm_axes), m.expand(lm_axes))
        valid = (np.abs(mm) <= ll) & (ll >= 0)
        column = np.where(valid, ll * ll + ll + mm, 0)
        gathered = grads[..., column, :] * valid[..., None]
        return Named(point_axes + lm_axes + (VECTOR_AXIS,), gathered, merge_missing(v, l, m))

    def _call_d_soap_radial(self, expr, r, n, l):
        """d soap_radial(r, n, l) / d r."""
        n_radial = int(expr.option("n_radial"))
        cutoff = float(expr.option("cutoff"))
        width = float(expr.option("density_width"))
        l_max = int(np.max(l.data)) if l.data.size else 0
        spline = soap_radial_spline(max(l_max, 0), n_radial, cutoff, width)
        _, table = spline.evaluate(r.data.reshape(-1), derivative=True)
        table = table.reshape(r.data.shape + (spline.max_angular + 1, n_radial))
        nl_axes = union_axes(n, l)
        nn, ll = np.broadcast_arrays(n.expand(nl_axes), l.expand(nl_axes))
        data = table[..., ll, nn].astype(self.bindings.dtype, copy=False)
        return Named(r.axes + nl_axes, data, merge_missing(r, n, l))

    def _call_d_cosine_cutoff(self, expr, r):
        """d cosine_cutoff(r) / d r."""
        cutoff, width = float(expr.option("cutoff")), float(expr.option("width"))
        return apply(lambda rr: math_functions.cosine_cutoff(rr, cutoff, width, derivative=True)[1], r)

    def _call_d_gto(self, expr, r, n):
        """d gto(r, n) / d r = (n r^(n-1) - r^(n+1) / w^2) exp(-r^2 / (2 w^2))."""
        width = float(expr.option("width"))

        def derivative(rr, nn):
            lower = np.where(nn > 0, nn * rr ** np.maximum(nn - 1, 0), 0.0)
            return (lower - rr ** (nn + 1) / (width * width)) * np.exp(-(rr * rr) / (2.0 * width * width))

        return apply(derivative, r, n)

    # -- reductions ---------------------------------------------------------------------------
    def _eval_Reduce(self, expr: ir.Reduce, scope: Scope) -> Named:
        inner, segment, masks = self.reduce_scope(expr, scope)
        values = [self.evaluate(f, inner) for f in _factors(expr.body)]
        reduced = [b.name for b in expr.binders if not (segment and b.name == segment[0])]
        result = self._reduce(values, [self._as_float(m) for m in masks], reduced, inner)
        if segment is not None:
            result = self._segment_sum(result, *segment)
        return result

    def reduce_scope(self, expr: ir.Reduce, scope: Scope):
        """The scope inside a reduction, its `P.from(i)` segment `(pair axis, atom, pairs)` or
        None, and the masks of its terms (`where`, general `P.from` atoms, `|m| <= l`)."""
        inner = scope
        segment = None  # (pair axis, atom variable) of a P.from(i) binder
        for binder in expr.binders:
            domain = binder.domain
            if isinstance(domain, ir.PairsFrom):
                pairs = self.bindings.pairs[domain.pairs]
                inner = inner.bind(binder.name, ir.PairsDomain(domain.pairs), np.arange(pairs.n_pairs))
                first = Named((binder.name,), np.asarray(pairs.first))
                if isinstance(domain.atom, ir.Var) and domain.atom.name not in scope.aliases and segment is None:
                    inner = inner.alias(domain.atom.name, first)
                    segment = (binder.name, domain.atom.name, domain.pairs)
                else:  # general atom expression (or a second P.from binder): a dense mask, with the
                    # atom read where the earlier binders are bound (`i` is the first pair's centre)
                    atom = self._index_value(domain.atom, inner)
                    mask = apply(np.equal, first, atom)
                    inner = inner.alias(BinderMask(binder.name), mask)
            else:
                inner = inner.bind(binder.name, domain, self.bindings.domain_values(domain))

        masks = []
        if expr.where is not None:
            masks.append(self._index_value(expr.where, inner))
        masks += [alias for name, alias in inner.aliases.items() if isinstance(name, BinderMask)]
        for binder in expr.binders:
            valid = self.validity(binder.name, inner)
            if valid is not None:
                masks.append(valid)
        return inner, segment, masks

    def _index_value(self, expr, scope: Scope) -> Named:
        """A value that selects (an atom of `P.from`, a `where` condition): never differentiated."""
        return self.evaluate(expr, scope)

    def _as_float(self, mask: Named) -> Named:
        return Named(mask.axes, mask.data.astype(self.bindings.dtype), mask.missing)

    def _reduce(self, values: list[Named], masks: list[Named], reduced: list[str], scope: Scope) -> Named:
        return _contract(values, masks, reduced, scope, self.bindings.dtype)

    def _segment_sum(self, value: Named, pair_axis: str, atom: str, pairs_name: str) -> Named:
        """Sum over the pairs of each first atom: a CSR matrix [atoms, pairs] times the values."""
        pairs = self.bindings.pairs[pairs_name]
        n_atoms = pairs.batch.n_atoms
        others = tuple(a for a in value.axes if a != pair_axis)
        if pair_axis not in value.axes:  # the body does not depend on the pair: count pairs
            counts = np.diff(np.asarray(pairs.offsets)).astype(value.data.dtype)
            data = counts.reshape((n_atoms,) + (1,) * len(others)) * value.expand(others)[None]
            return Named((atom,) + others, data)
        data = value.expand((pair_axis,) + others)
        data = np.broadcast_to(data, (pairs.n_pairs,) + data.shape[1:])
        matrix = csr_matrix(
            (np.ones(pairs.n_pairs, dtype=data.dtype), np.arange(pairs.n_pairs), np.asarray(pairs.offsets)),
            shape=(n_atoms, pairs.n_pairs),
        )
        width = int(np.prod(data.shape[1:], dtype=np.int64))
        summed = np.asarray(matrix @ data.reshape(pairs.n_pairs, width)).reshape((n_atoms,) + data.shape[1:])
        missing = None
        if value.missing is not None and pair_axis in value.missing.axes:
            mask_axes = tuple(a for a in value.missing.axes if a != pair_axis)
            mask = value.missing.expand((pair_axis,) + mask_axes).reshape(value.missing.data.shape[value.missing.axes.index(pair_axis)], -1)
            hits = np.asarray(matrix @ mask.astype(np.float64)) > 0
            missing = Named((atom,) + mask_axes, hits.reshape((n_atoms,) + tuple(value.missing.shape_of(a) for a in mask_axes)))
        return Named((atom,) + others, summed, missing)


def _reduce_vector(value: Named, function) -> Named:
    if VECTOR_AXIS not in value.axes:
        raise RunError("norm() and dot() need vector arguments")
    axes = tuple(a for a in value.axes if a != VECTOR_AXIS)
    return Named(axes, function(value.expand(axes + (VECTOR_AXIS,))), value.missing)


def _factors(expr) -> list:
    """The factors of a product tree (so a reduction can contract them without the full product)."""
    if isinstance(expr, ir.Binary) and expr.op == "mul":
        return _factors(expr.left) + _factors(expr.right)
    return [expr]


def _contract(values: list[Named], masks: list[Named], reduced: list[str], scope: Scope, dtype) -> Named:
    """The product of `values` and `masks` summed over the `reduced` axes, as one einsum.

    Missing entries of the values count only where every mask holds.
    """
    factors = values + masks
    axes = union_axes(*factors)
    for name in reduced:
        if name not in axes:  # the body does not depend on a summed index: multiply by its size
            factors = factors + [Named((name,), np.ones(len(scope.values[name]), dtype=dtype))]
            axes = axes + (name,)
    kept = tuple(a for a in axes if a not in reduced)
    letters = {axis: _letter(k) for k, axis in enumerate(axes)}
    sizes = {}
    for factor in factors:
        for axis, size in zip(factor.axes, np.shape(factor.data)):
            if size != 1:
                sizes[axis] = size
    operands, specs = [], []
    for factor in factors:
        data = np.asarray(factor.data)
        if data.dtype.kind == "b":
            data = data.astype(dtype)
        # size-1 axes broadcast in einsum only when expanded explicitly
        operands.append(np.broadcast_to(data, tuple(sizes.get(a, 1) for a in factor.axes)))
        specs.append("".join(letters[a] for a in factor.axes))
    output = "".join(letters[a] for a in kept)
    data = np.einsum(",".join(specs) + "->" + output, *operands, optimize="greedy")
    missing = merge_missing(*values)
    if missing is not None:
        mask_axes = union_axes(missing, *masks)
        hit = missing.expand(mask_axes)
        for mask in masks:
            hit = hit & (mask.expand(mask_axes) != 0)
        reduce_axes = tuple(i for i, a in enumerate(mask_axes) if a in reduced)
        hit = np.any(hit, axis=reduce_axes) if reduce_axes else hit
        missing = Named(tuple(a for a in mask_axes if a not in reduced), np.asarray(hit))
    return Named(kept, np.asarray(data), missing)


def _letter(k: int) -> str:
    return "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"[k]


_BINARY = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": lambda a, b: np.true_divide(a, b),
    "mod": np.mod,  # floored, as Python's %
    "pow": lambda a, b: np.power(np.asarray(a, dtype=np.float64) if np.asarray(b).dtype.kind == "i" and np.any(np.asarray(b) < 0) else a, b),
    "eq": np.equal,
    "ne": np.not_equal,
    "lt": np.less,
    "le": np.less_equal,
    "gt": np.greater,
    "ge": np.greater_equal,
    "and": np.logical_and,
    "or": np.logical_or,
}


def csr_matrix(*args, **kwargs):
    """scipy's CSR matrix, imported on first use (scipy.sparse costs ~0.2 s to import)."""
    import scipy.sparse

    return scipy.sparse.csr_matrix(*args, **kwargs)
