"""Lowering: the checked, resolved `Program` of the front end to the loop IR.

What lowering decides:
- names: every index variable gets a name unique in its kernel (`l`, `l_2`...);
- `let`s are inlined (their indices substituted; each use gets fresh binders);
- hypers are constants already, and `c ? a : b` whose condition depends on
  hypers only is folded to its branch; compile-time options of built-ins (widths,
  cutoffs, `n_radial`) become `Call.options`;
- signature slots become entries: an `atoms(S)` sample expands to `system, atom`,
  a pairs sample to the six pair labels;
- dependent `irrep(l)` domains get the largest degree `l` can take;
- species dimensions carry the species fixed at compile time, if any.
"""

from __future__ import annotations

import itertools
from typing import Optional

from mtdsl import builtins
from mtdsl.errors import LoweringError  # defined with the other errors; importable from here as before
from mtdsl.lang import program as P
from mtdsl.lang.evaluate import UNKNOWN, evaluate

from . import nodes as ir

_BINARY = {
    "+": "add", "-": "sub", "*": "mul", "/": "div", "%": "mod", "^": "pow",
    "==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge", "and": "and", "or": "or",
}


def lower(program: P.Program, species: Optional[tuple[int, ...]] = None) -> ir.Module:
    """The IR module of a checked program; `species` fixes every `species(S)` dimension."""
    return _Lowering(program, tuple(sorted(species)) if species else None).module()


class _Lowering:
    def __init__(self, program: P.Program, species):
        self.program = program
        self.species = species
        self.tables: dict = {}  # species-indexed table hypers: (hyper, systems) -> keys

    def module(self) -> ir.Module:
        program = self.program
        kernels = tuple(self.kernel(tensor) for tensor in _dependency_order(program))
        return ir.Module(
            name=program.name,
            systems=tuple(ir.SystemsInput(name) for name in program.systems),
            tensormaps=tuple(self.tensormap_input(t) for t in program.tensormaps.values()),
            pairs=tuple(self.pairs(p) for p in program.pairs.values()),
            params=tuple(self.param(p) for p in program.params.values()),
            kernels=kernels,
            outputs=tuple(ir.Output(o.tensor.name, tuple(o.gradients)) for o in program.outputs.values()),
            convention=program.convention,
            tables=tuple(ir.SpeciesTable(hyper, systems, keys) for (hyper, systems), keys in self.tables.items()),
        )

    # -- declarations -----------------------------------------------------------------------
    def tensormap_input(self, source: P.TensorMapInput) -> ir.TensorMapInput:
        def labels(slots):
            return tuple(label for slot in slots for label in slot.labels)

        return ir.TensorMapInput(source.name, tuple(source.keys), labels(source.samples),
                                 labels(source.components), labels(source.properties))

    def pairs(self, pairs: P.Pairs) -> ir.PairsDecl:
        cutoff = self.constant(pairs.cutoff, f"the cutoff of pairs {pairs.name}")
        return ir.PairsDecl(pairs.name, pairs.systems, float(cutoff), bool(pairs.full))

    def param(self, param: P.Param) -> ir.ParamDecl:
        names = _Names()
        domains = tuple(self.domain(index.dim, names) for index in param.indices)
        return ir.ParamDecl(param.name, domains, (param.init.name, tuple(float(a) for a in param.init.args)))

    def constant(self, expr: P.Expr, what: str):
        value = evaluate(expr)
        if value is UNKNOWN:
            raise LoweringError(f"{what} must be a compile-time constant ({expr.span})")
        return value

    # -- domains ------------------------------------------------------------------------------
    def domain(self, dim: P.Dim, names: "_Names"):
        if isinstance(dim, P.RangeDim):
            return ir.RangeDomain(dim.name, dim.start, dim.stop)
        if isinstance(dim, P.SpeciesDim):
            return ir.SpeciesDomain(dim.systems, self.species)
        if isinstance(dim, P.AtomsDim):
            return ir.AtomsDomain(dim.systems)
        if isinstance(dim, P.SystemsDim):
            return ir.SystemsDomain(dim.systems)
        if isinstance(dim, P.PairsDim):
            return ir.PairsDomain(dim.pairs)
        if isinstance(dim, P.XyzDim):
            return ir.XyzDomain()
        if isinstance(dim, P.IrrepDim):
            return ir.IrrepDomain(self.expr(dim.degree, names), _max_degree(dim.degree))
        raise LoweringError(f"indices of {dim} cannot be iterated over yet")

    # -- tensors --------------------------------------------------------------------------------
    def kernel(self, tensor: P.Tensor) -> ir.TensorKernel:
        names = _Names()
        binders = tuple(ir.Binder(names.of(index), self.domain(index.dim, names)) for index in tensor.indices)
        keys = tuple(ir.Entry(k.label, "value", self.expr(k.value, names)) for k in tensor.keys)
        if not keys:
            keys = (ir.Entry("_", "value", ir.Const(0)),)
        return ir.TensorKernel(
            name=tensor.name,
            indices=binders,
            keys=keys,
            samples=tuple(self.entry(slot, names) for slot in tensor.samples),
            components=tuple(self.entry(slot, names) for slot in tensor.components),
            properties=tuple(self.entry(slot, names) for slot in tensor.properties),
            body=self.expr(tensor.body, names),
            where=self.expr(tensor.where, names) if tensor.where is not None else None,
        )

    def entry(self, slot: P.Slot, names: "_Names") -> ir.Entry:
        kind, source = _slot_kind(slot.dim)
        value = self.expr(slot.value, names)
        if kind == "atoms" or kind == "pairs":
            return ir.Entry(slot.labels[0], kind, value, source)
        return ir.Entry(slot.labels[0], "value", value)

    # -- expressions ------------------------------------------------------------------------------
    def expr(self, expr: P.Expr, names: "_Names", substitutions: Optional[dict] = None) -> ir.Expr:
        substitutions = substitutions or {}
        lower = lambda e: self.expr(e, names, substitutions)  # noqa: E731
        if isinstance(expr, P.Const):
            if isinstance(expr.value, (bool, int, float)):
                return ir.Const(expr.value)
            raise LoweringError(f"{P.describe(expr)} is not a number ({expr.span})")
        if isinstance(expr, P.IndexRef):
            if expr.index in substitutions:
                return substitutions[expr.index]
            return ir.Var(names.of(expr.index))
        if isinstance(expr, P.HyperItem):
            return self.hyper_item(expr, lower)
        if isinstance(expr, P.Unary):
            return ir.Unary("neg" if expr.op == "-" else "not", lower(expr.operand))
        if isinstance(expr, P.Binary):
            return ir.Binary(_BINARY[expr.op], lower(expr.left), lower(expr.right))
        if isinstance(expr, P.Ternary):
            condition = evaluate(expr.cond)
            if isinstance(condition, bool):  # on hypers only: folded, the dead branch never runs
                return lower(expr.then) if condition else lower(expr.otherwise)
            return ir.Select(lower(expr.cond), lower(expr.then), lower(expr.otherwise))
        if isinstance(expr, P.Call):
            return self.call(expr, lower)
        if isinstance(expr, P.ParamRef):
            return ir.ParamRef(expr.param.name, tuple(lower(i) for i in expr.indices))
        if isinstance(expr, P.LetRef):
            inner = dict(substitutions)
            inner.update({index: lower(value) for index, value in zip(expr.let.indices, expr.indices)})
            return self.expr(expr.let.body, names.fresh_scope(), inner)
        if isinstance(expr, P.BlockRef):
            return self.block_ref(expr, lower)
        if isinstance(expr, P.SystemData):
            return ir.Data(expr.systems, expr.field, tuple(lower(i) for i in expr.indices))
        if isinstance(expr, P.PairData):
            return ir.Data(expr.pairs, expr.field, tuple(lower(i) for i in expr.indices))
        if isinstance(expr, P.Sum):
            binders = []
            for binder in expr.binders:
                name = names.of(binder.index)
                if isinstance(binder.domain, P.PairsFrom):
                    domain = ir.PairsFrom(binder.domain.pairs, lower(binder.domain.atom))
                else:
                    domain = self.domain(binder.domain.dim, names)
                binders.append(ir.Binder(name, domain))
            where = lower(expr.where) if expr.where is not None else None
            return ir.Reduce(tuple(binders), lower(expr.body), where)
        raise LoweringError(f"cannot lower {type(expr).__name__} ({getattr(expr, 'span', '')})")

    def hyper_item(self, expr: P.HyperItem, lower) -> ir.Expr:
        """`widths[k]`: a constant, or a chain of selects on the index (the list is short and fixed).
        A table (`radius[S.type[i]]`) selects on its keys; a key it lacks reads NaN, and a species
        index records the table so that the runtime names a species it lacks (`ir.SpeciesTable`)."""
        if expr.keys is not None:
            value = evaluate(expr)
            if value is not UNKNOWN:
                return ir.Const(value)
            dim = expr.index.type.dim
            if isinstance(dim, P.SpeciesDim):
                self.tables[(expr.hyper, dim.systems)] = tuple(expr.keys)
            index = lower(expr.index)
            result = ir.Const(float("nan"))
            for key, value in reversed(list(zip(expr.keys, expr.values))):
                result = ir.Select(ir.Binary("eq", index, ir.Const(key)), ir.Const(value), result)
            return result
        values = [ir.Const(v) for v in expr.values]
        position = evaluate(expr.index)
        if position is not UNKNOWN:
            return values[int(position)]
        index = lower(expr.index)
        result = values[-1]
        for k in range(len(values) - 2, -1, -1):
            result = ir.Select(ir.Binary("eq", index, ir.Const(k)), values[k], result)
        return result

    def call(self, expr: P.Call, lower) -> ir.Call:
        """A call; its compile-time options become `Call.options`, and a built-in defined by other
        IR (min, max, clamp, relu: selects, mtdsl/builtins/) is replaced by its definition, so every
        backend has it and its derivative is branchwise (mtdsl/ir/passes/autodiff.py)."""
        builtin = builtins.get(expr.function)
        args, options = [], []
        for param, arg in zip(builtin.params, expr.args):
            if param.option:
                options.append((param.name, self.constant(arg, f"`{param.name}` of {expr.function}()")))
            else:
                args.append(lower(arg))
        if builtin.definition is not None:
            return builtin.definition(*args)
        return ir.Call(expr.function, tuple(args), tuple(options))

    def block_ref(self, expr: P.BlockRef, lower) -> ir.BlockRef:
        source = expr.source
        slots = []
        for slot, value in zip(source.slots, expr.indices):
            kind, name = _slot_kind(slot.dim)
            if kind == "value" and slot.labels == ("system", "atom"):
                kind, name = "atoms", next(iter(self.program.systems), "")
            slots.append(ir.Slot(kind, lower(value), name))
        n_samples, n_components = len(source.samples), len(source.components)
        return ir.BlockRef(
            source.name,
            tuple((label, lower(value)) for label, value in expr.keys),
            tuple(slots[:n_samples]),
            tuple(slots[n_samples : n_samples + n_components]),
            tuple(slots[n_samples + n_components :]),
        )


def _slot_kind(dim) -> tuple[str, str]:
    if isinstance(dim, P.AtomsDim):
        return "atoms", dim.systems
    if isinstance(dim, P.PairsDim):
        return "pairs", dim.pairs
    if isinstance(dim, P.SystemsDim):
        return "systems", dim.systems
    return "value", ""


def _max_degree(degree: P.Expr) -> int:
    """The largest value the degree of an irrep can take over its indices' domains."""
    indices = sorted(P.index_refs(degree), key=lambda index: index.uid)
    ranges = []
    for index in indices:
        if not isinstance(index.dim, P.RangeDim):
            raise LoweringError(f"the degree of irrep({P.describe(degree)}) must depend on range indices only")
        ranges.append(range(index.dim.start, index.dim.stop))
    best = None
    for values in itertools.product(*ranges):
        value = evaluate(degree, dict(zip(indices, values)))
        if value is not UNKNOWN and (best is None or value > best):
            best = value
    if best is None:
        raise LoweringError(f"the degree of irrep({P.describe(degree)}) is not known at compile time")
    return int(best)


def _dependency_order(program: P.Program) -> list[P.Tensor]:
    """Tensors ordered so that each comes after the tensors it reads."""
    order, seen = [], set()

    def visit(tensor: P.Tensor):
        if id(tensor) in seen:
            return
        seen.add(id(tensor))
        for dependency in _read_tensors(tensor):
            visit(dependency)
        order.append(tensor)

    for tensor in program.tensors.values():
        visit(tensor)
    return order


def _read_tensors(tensor: P.Tensor) -> list[P.Tensor]:
    found = []

    def walk(node, lets_seen):
        if isinstance(node, P.BlockRef) and isinstance(node.source, P.Tensor):
            found.append(node.source)
        if isinstance(node, P.LetRef) and id(node.let) not in lets_seen:
            walk(node.let.body, lets_seen | {id(node.let)})
        for child in P.children(node):
            walk(child, lets_seen)

    walk(tensor.body, frozenset())
    if tensor.where is not None:
        walk(tensor.where, frozenset())
    return found


class _Names:
    """Readable, unique names for the index variables of one kernel."""

    def __init__(self, taken: Optional[dict] = None, used: Optional[set] = None):
        self.taken = taken if taken is not None else {}
        self.used = used if used is not None else set()

    def of(self, index: P.Index) -> str:
        if index.uid not in self.taken:
            name = index.name
            for k in itertools.count(2):
                if name not in self.used:
                    break
                name = f"{index.name}_{k}"
            self.taken[index.uid] = name
            self.used.add(name)
        return self.taken[index.uid]

    def fresh_scope(self) -> "_Names":
        # a let body's own binders are new variables at every use
        return _Names(dict(self.taken), self.used)
