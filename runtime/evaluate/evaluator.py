"""The reference evaluator: the living definition of the loop IR, over numpy or torch values.

Every expression evaluates to a `Named` array over the index variables it
depends on (one array operation per IR node, not one per element). Dependent
`irrep(l)` dimensions are padded to `-max..max`: entries with `|m| > l` are
zeros in every built-in, and masked wherever they could count. A reduction over
`P.from(i)` gathers `i` as the first atom of each pair and sums each CSR
segment: pairs are never scanned per atom.

The values are numpy arrays, or torch tensors where the run gives them
(positions, cells, pair vectors, parameters, the values of input and computed
TensorMaps: `runtime/evaluate/torch_values.py`): every operation goes through
`dispatch`, so the same walk is the numpy interpreter that the compiled
backends are tested against and the torch evaluation whose autograd gives
`Model.to_torch()` its derivatives of every order. Index values, label lookups,
masks and missing entries are numpy in both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from mtdsl.ir import nodes as ir
from mtdsl.ir.roles import BinderMask, GradientBlocks, GradientRows

from ..bindings import Bindings, RunError
from ..blocks import BlockTable
from ..named import VECTOR_AXIS, Named, merge_missing, union_axes
from . import dispatch as xp
from . import rows
from .builtins import BuiltinCalls
from .derivatives import DerivativeNodes
from .dispatch import apply, csr_matrix  # noqa: F401 - csr_matrix: importable from here


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


class StructureMemo:
    """What an evaluation computed from the structure alone (the positions that block accesses
    gather, found by label lookups), for later evaluations of the same structure: the orders of
    one call of `TorchModel` (forces, then the backward of a force loss) evaluate the same
    program on the same systems and neighbour lists, with other torch values. Entries are keyed
    by the IR node, the tensor's block shapes and the occurrence of the node in the evaluation
    (the evaluation order depends on the structure only)."""

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


class Evaluator(BuiltinCalls, DerivativeNodes):
    """Evaluates the expressions of one module against `Bindings`.

    `torch_values`: parameters and TensorMap values that are torch tensors in the bindings are
    read as they are (else as numpy), and `floats[(source, field)]` are torch values of the
    float fields of systems and pairs (positions, cell, pair vectors and distances) that replace
    the bindings'. `memo`: a `StructureMemo` shared with earlier evaluations of the same
    structure, or None. `gradients`: `{(tensor, wrt): GradientTable}`, the gradient rows of the
    computed tensors that the derivative nodes read (`derivatives.py`; a gradient run fills it
    as it goes). `over_rows`: the expressions are gradient terms over the rows of gradients:
    blocks and sums are read by the row rules of `rows.py`.
    """

    def __init__(self, module: ir.Module, bindings: Bindings, floats: dict | None = None,
                 memo: StructureMemo | None = None, torch_values: bool = False,
                 gradients: dict | None = None, over_rows: bool = False):
        self.module = module
        self.bindings = bindings
        self.convention = module.convention
        self.floats = floats or {}
        self.memo = memo
        self.torch_values = torch_values
        self.gradients = gradients
        self.over_rows = over_rows
        self._occurrences: dict = {}
        self._tables: dict[str, BlockTable] = {}

    # -- helpers ----------------------------------------------------------------------
    def table(self, name: str) -> BlockTable:
        if name not in self._tables:
            self._tables[name] = BlockTable(name, self.bindings.tensors[name], self.torch_values)
        return self._tables[name]

    def validity(self, name: str, scope: Scope) -> Optional[Named]:
        """For an irrep variable, the mask `|m| <= degree`; None for other variables."""
        domain = scope.domains.get(name)
        if not isinstance(domain, ir.IrrepDomain):
            return None
        degree = self.evaluate(domain.degree, scope)
        m = Named((name,), scope.values[name])
        return apply(lambda mm, ll: np.abs(mm) <= ll, m, degree)

    def _remembered(self, key, compute):
        """`compute()` (structure only), or what it gave at the same occurrence of `key` in an
        earlier evaluation of the same structure (`StructureMemo`)."""
        if self.memo is None:
            return compute()
        occurrence = self._occurrences.get(key, 0)
        self._occurrences[key] = occurrence + 1
        return self.memo.get((key, occurrence), compute)

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
        if isinstance(expr.source, GradientRows):
            return self.gradient_rows_field(expr, scope)
        indices = [self.evaluate(e, scope) for e in expr.index]
        array, vector = self._data_array(expr)
        first = indices[0]
        if len(indices) == 2:  # a vector field read at one xyz component
            return apply(lambda i, c: xp.at(array, i, c), first, indices[1])
        data = xp.at(array, first.data)
        axes = first.axes + ((VECTOR_AXIS,) if vector else ())
        if expr.field == "cell":
            raise RunError("S.cell can only be read at one entry, as S.cell[s, a, b]")
        return Named(axes, data, first.missing)

    def _data_array(self, expr: ir.Data):
        """The array of a field (torch values from `floats` where given), and whether it is a vector."""
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
        given = self.floats.get((expr.source, expr.field))
        if given is not None:
            return given, vector
        array = np.asarray(array)
        if array.dtype.kind == "f":
            array = array.astype(self.bindings.dtype, copy=False)
        return array, vector

    def _eval_ParamRef(self, expr: ir.ParamRef, scope: Scope) -> Named:
        values = self.bindings.params[expr.name]
        if self.torch_values and xp.is_tensor(values):
            positions = self._param_positions(expr, scope)
            found = xp.gather_by_dimension(values, positions)
            return found if found is not None else apply(lambda *p: xp.at(values, *p), *positions)
        values = np.asarray(values, dtype=self.bindings.dtype)
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
        if isinstance(expr.tensor, GradientBlocks):
            return self.gradient_blocks_read(expr, scope)
        if self.over_rows:
            return rows.gather_rows(self, expr, scope)
        table = self.table(expr.tensor)

        def locate():
            keys = [(label, self.evaluate(e, scope)) for label, e in expr.keys]
            slots = [
                (slot, self.evaluate(slot.expr, scope))
                for slot in expr.samples + expr.components + expr.properties
            ]
            groups = (len(expr.samples), len(expr.components), len(expr.properties))
            return table.locate(keys, slots, groups, self.bindings)

        if self.memo is None:
            return table.read(locate())
        shapes = tuple(tuple(b.values.shape) for b in table.tensor.blocks())  # the same labels, in practice
        return table.read(self._remembered(("block", id(expr), expr.tensor, shapes), locate))

    def _eval_Unary(self, expr: ir.Unary, scope: Scope) -> Named:
        operand = self.evaluate(expr.operand, scope)
        if expr.op == "neg":
            return apply(xp.negative, operand)
        return apply(xp.logical_not, operand)

    def _eval_Binary(self, expr: ir.Binary, scope: Scope) -> Named:
        left, right = self.evaluate(expr.left, scope), self.evaluate(expr.right, scope)
        return apply(xp.BINARY[expr.op], left, right)

    def _eval_Select(self, expr: ir.Select, scope: Scope) -> Named:
        condition = xp.detached(self.evaluate(expr.condition, scope))
        if_true, if_false = self.evaluate(expr.if_true, scope), self.evaluate(expr.if_false, scope)
        result = apply(xp.where, condition, if_true, if_false)
        missing = None
        if if_true.missing is not None or if_false.missing is not None:
            # a branch's missing entries matter only where that branch is taken
            false = Named.scalar(False)
            missing = apply(
                np.where, condition, if_true.missing or false, if_false.missing or false
            )
            missing = Named(missing.axes, missing.data.astype(bool))
        return Named(result.axes, result.data, missing)

    # -- reductions ---------------------------------------------------------------------------
    def _eval_Reduce(self, expr: ir.Reduce, scope: Scope) -> Named:
        if self.over_rows:
            by_rows = rows.reduce_over_rows(self, expr, scope)
            if by_rows is not None:
                return by_rows
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
                inner = inner.bind(binder.name, domain, self.domain_values(domain))

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
        return xp.detached(self.evaluate(expr, scope))

    def _as_float(self, mask: Named) -> Named:
        return Named(mask.axes, np.asarray(mask.data).astype(self.bindings.dtype), mask.missing)

    def _reduce(self, values: list[Named], masks: list[Named], reduced: list[str], scope: Scope) -> Named:
        return _contract(values, masks, reduced, scope, self.bindings.dtype)

    def _segment_sum(self, value: Named, pair_axis: str, atom: str, pairs_name: str) -> Named:
        """Sum over the pairs of each first atom (a CSR matrix [atoms, pairs] times the values in
        numpy, `index_add` in torch)."""
        pairs = self.bindings.pairs[pairs_name]
        n_atoms = pairs.batch.n_atoms
        others = tuple(a for a in value.axes if a != pair_axis)
        if pair_axis not in value.axes:  # the body does not depend on the pair: count pairs
            counts = xp.counts_like(np.diff(np.asarray(pairs.offsets)), value.data)
            data = counts.reshape((n_atoms,) + (1,) * len(others)) * xp.expand(value, others)[None]
            return Named((atom,) + others, data)
        data = xp.expand(value, (pair_axis,) + others)
        data = xp.broadcast_to(data, (pairs.n_pairs,) + tuple(data.shape[1:]))
        summed = xp.segment_sum(data, np.asarray(pairs.first), np.asarray(pairs.offsets), n_atoms)
        missing = None
        if value.missing is not None and pair_axis in value.missing.axes:
            matrix = csr_matrix(
                (np.ones(pairs.n_pairs), np.arange(pairs.n_pairs), np.asarray(pairs.offsets)),
                shape=(n_atoms, pairs.n_pairs),
            )
            mask_axes = tuple(a for a in value.missing.axes if a != pair_axis)
            mask = value.missing.expand((pair_axis,) + mask_axes).reshape(value.missing.data.shape[value.missing.axes.index(pair_axis)], -1)
            hits = np.asarray(matrix @ mask.astype(np.float64)) > 0
            missing = Named((atom,) + mask_axes, hits.reshape((n_atoms,) + tuple(value.missing.shape_of(a) for a in mask_axes)))
        return Named((atom,) + others, summed, missing)


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
    specs = ["".join(letters[a] for a in factor.axes) for factor in factors]
    spec = ",".join(specs) + "->" + "".join(letters[a] for a in kept)
    data = xp.einsum(spec, [f.data for f in factors], [tuple(sizes.get(a, 1) for a in f.axes) for f in factors], dtype)
    missing = merge_missing(*values)
    if missing is not None:
        mask_axes = union_axes(missing, *masks)
        hit = missing.expand(mask_axes)
        for mask in masks:
            hit = hit & (mask.expand(mask_axes) != 0)
        reduce_axes = tuple(i for i, a in enumerate(mask_axes) if a in reduced)
        hit = np.any(hit, axis=reduce_axes) if reduce_axes else hit
        missing = Named(tuple(a for a in mask_axes if a not in reduced), np.asarray(hit))
    return Named(kept, data, missing)


def _letter(k: int) -> str:
    return "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"[k]
