"""Gradient terms as ordinary IR kernels, so that every renderer compiles them.

A `Term` of a gradient kernel (`mtdsl/ir/passes/autodiff.py`) is

    dE/dx[t, d...] = sum over its binders (where it holds) of [target == t] * coefficient(d...)

Two lowerings, both appended to the module before rendering (`extended_module`):

- `scatter_kernel` (the fused path): a kernel over the gradient block's own
  layout `(row, directions, columns)` whose body sums the coefficient over the
  term's binders and the other kernel indices, the row bound by equality from a
  row map computed before the run (`runtime/gradients.py`): each contribution is
  added straight into its gradient entry during the pass over pairs (or over the
  rows of a gradient it reads);
- `term_kernel` (when a tensor's terms do not all have a scatter kernel): a
  kernel whose indices are the term's binders, the kernel indices that no alias
  fixes, and the direction variables, whose body is the coefficient with the
  aliases substituted and whose `where` is the kernel's and the term's
  condition. Its dense buffer is exactly the interpreter's contracted term over
  the same axes, so `runtime/gradients.py` scatters it to the gradient rows with
  the labels it computes anyway. The reference evaluator runs the same kernel
  (`dense_reads=False`: gradients read as blocks) over the term's scope.

A renderer fills either like any other kernel: the pair loop, the `sph` /
`soap_radial` tables and their derivatives, sums over `P.from(i)` accumulated
per centre.

The derivative nodes of autodiff are lowered to IR that renderers know:

- `GradRows(T, wrt)` (the rows of T's gradient blocks) is a runtime range, written
  as a `PairsDomain` of the reserved name `rows_source(T, wrt)` (its size is the
  number of rows; it is never a neighbour list);
- `GradLabel` is an integer `Data` read of that source, its field a typed
  `RowField` (mtdsl/ir/roles.py): `key` (a label), `sample` (a slot), `target`,
  and `block` / `local` (the block of a row, its position in the block);
- `GradValue` is a block access to `grad_tensor(T, wrt)`: a TensorMap built at run
  time from T's gradient blocks, one block per block of T (key `block`), samples
  `row` (the local row), components the gradient's (directions in stored order,
  then T's), properties T's;
- `dot(X, s e[d])` is `s X_d`, with `X_d` the component `d` of `X`: `d_sph(v, l, m, d)`
  (four arguments: the scalar component), `P.vector[p, d]`, `[d == c]` for a
  unit vector...; a dot of two vector derivative expressions is the sum of
  three component products, taken apart through `?:` (a branchwise derivative's
  `c ? e[d] : 0.0`, the zero a zero vector) and vector-valued sums (a sum of
  components).

That covers every term the derivative pass makes from the language's vectors
(consumed by `dot`, `norm`, `sph`, `to_irrep`, `cross`), so the reference
evaluator runs every term as its kernel (`runtime/gradients/run.py`).
Anything else (a vector-valued coefficient, a derivative node in a place this
lowering does not know) raises `Unsupported`: the native runner then leaves
the term to the evaluator, for which it is an error naming the term.

The same lowering gives the *product kernels* (`mtdsl/ir/passes/products.py`) of `runtime/gradients/native_products.py`
(`docs/gradients.md`, "Reverse products"): `vjp_kernel` contracts a term with a
cotangent read at the kernel's own entry (from the grid of the stand-in
`cotangent_kernel`) into atoms x 3 / systems x 3 x 3 rows bound by `·target ==
target`; `jvp_kernel` contracts it with a tangent (the stand-in `tangent_kernel`)
into the kernel's own layout. Through computed tensors: `tensor_vjp_kernel` turns a
term of `autodiff.differentiate_tensor` (its target an entry of the tensor read) and
the reader's cotangent into the cotangent of the tensor read, in that tensor's own
layout (a gather where the access names its indices plainly, else a one-row `·out·`
scatter); `tensor_jvp_kernel` turns the tangent of the tensor read into the reader's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from mtdsl.errors import Unsupported
from mtdsl.ir import nodes as ir

from . import autodiff as ad
from ..derivative_nodes import GradLabel, GradRows, GradValue, GradientKernel, Term, UnitVector
from ..walk import children, free_vars
from ..roles import DenseValues, GradientBlocks, GradientRows, GradientValues, RowField, RowMap, ScatterKernel, TermKernel


def rows_source(tensor: str, wrt: str) -> GradientRows:
    """The rows of `tensor`'s gradient w.r.t. `wrt` (a run-time range and a data source)."""
    return GradientRows(tensor, wrt)


def dense_source(tensor: str, wrt: str) -> GradientValues:
    """`tensor`'s gradient buffer as written by its scatter kernels (a data source)."""
    return GradientValues(tensor, wrt)


def grad_tensor(tensor: str, wrt: str) -> GradientBlocks:
    """The run-time TensorMap holding `tensor`'s gradient blocks for block accesses."""
    return GradientBlocks(tensor, wrt)


def term_kernel_name(kernel: str, wrt: str, k: int) -> TermKernel:
    return TermKernel(kernel, wrt, k)


#: stored axis of each direction (see runtime/gradients.py: strain [a, b], cell [a, x] for directions (x, a))
STORED_ORDER = {"positions": (0,), "strain": (0, 1), "cell": (1, 0)}


def gradient_term_kernels(module: ir.Module, gradients: dict) -> list[tuple[tuple, ir.TensorKernel]]:
    """`((kernel name, wrt, term index), term kernel)` for every term that lowers; the others are absent."""
    kernels = {k.name: k for k in module.kernels}
    result = []
    for wrt, by_kernel in gradients.items():
        for name, gradient in by_kernel.items():
            for k, term in enumerate(gradient.terms):
                try:
                    lowered = term_kernel(module, kernels[name], gradient, k, term)
                except Unsupported:
                    continue
                result.append(((name, wrt, k), lowered))
    return result


def term_kernel(module: ir.Module, kernel: ir.TensorKernel, gradient: GradientKernel, k: int,
                term: Term, dense_reads: bool = True) -> ir.TensorKernel:
    """The kernel filling term `k` of `gradient` over (binders, free kernel indices, directions).

    `dense_reads`: a read tensor's gradient is read from the buffer its scatter kernels wrote
    where its columns allow (`dense_grad_value`: the native runner's); False reads the gradient
    blocks always (the reference evaluator's, which scatters gradients into blocks)."""
    lowering = _Lowering(module, dense_reads)
    resolved: dict = {}
    for name, expr in term.aliases:
        resolved[name] = ad.substitute(expr, resolved)
    aliased = set(resolved)
    indices = []
    for binder in term.binders:
        indices.append(ir.Binder(binder.name, lowering.domain(binder.domain)))
    for binder in kernel.indices:
        if binder.name in aliased:
            continue
        domain = binder.domain
        if isinstance(domain, ir.IrrepDomain):
            domain = ir.IrrepDomain(lowering.lower(ad.substitute(domain.degree, resolved)), domain.max_degree)
        indices.append(ir.Binder(binder.name, domain))
    for name in gradient.directions:
        indices.append(ir.Binder(name, ir.XyzDomain()))
    where = ad._and(kernel.where, term.where)
    body = lowering.lower(ad.substitute(term.coefficient, resolved))
    if lowering.is_vector(body):
        raise Unsupported("a vector-valued gradient coefficient")
    where = lowering.lower(ad.substitute(where, resolved)) if where is not None else None
    return ir.TensorKernel(term_kernel_name(kernel.name, gradient.wrt, k), tuple(indices), (), (), (), (), body, where)


class _Lowering:
    def __init__(self, module: ir.Module, dense_reads: bool = True):
        self.module = module
        self.kernels = {k.name: k for k in module.kernels}
        self.dense_reads = dense_reads

    def dense_grad_value(self, expr: GradValue):
        """`T`'s gradient read from the buffer its scatter kernels filled (`[row, directions, columns]`,
        columns padded like T's indices) when every component and property is a plain index of
        the same domain as T's column there: `Data(dense_source(T, wrt), DenseValues(*sizes), positions)`.
        The runtime provides that buffer only when T's gradient was written by scatter kernels."""
        kernel = self.kernels.get(expr.tensor)
        columns = column_indices(kernel) if kernel is not None else None
        if columns is None or len(columns) != len(expr.components) + len(expr.properties):
            return None
        domains = {b.name: b.domain for b in kernel.indices}
        order = STORED_ORDER[expr.wrt]
        positions, sizes = [self.lower(expr.row)], []
        for stored in range(len(expr.directions)):
            positions.append(self.lower(expr.directions[order.index(stored)]))
            sizes.append(3)
        for name, slot in zip(columns, expr.components + expr.properties):
            domain = domains[name]
            if slot.kind != "value":
                return None
            value = self.lower(slot.expr)
            if isinstance(domain, ir.RangeDomain):
                positions.append(ir.Binary("sub", value, ir.Const(domain.start)))
                sizes.append(domain.stop - domain.start)
            elif isinstance(domain, ir.IrrepDomain):
                positions.append(ir.Binary("add", value, ir.Const(domain.max_degree)))
                sizes.append(2 * domain.max_degree + 1)
            else:
                return None
        return ir.Data(dense_source(expr.tensor, expr.wrt), DenseValues(*sizes), tuple(positions))

    def domain(self, domain):
        if isinstance(domain, GradRows):
            return ir.PairsDomain(rows_source(domain.tensor, domain.wrt))
        if isinstance(domain, ir.PairsFrom):
            return ir.PairsFrom(domain.pairs, self.lower(domain.atom))
        if isinstance(domain, ir.IrrepDomain):
            return ir.IrrepDomain(self.lower(domain.degree), domain.max_degree)
        return domain

    # -- types -----------------------------------------------------------------------------------
    def is_vector(self, expr) -> bool:
        if isinstance(expr, UnitVector):
            return True
        if isinstance(expr, ir.Call):
            return (expr.function == "d_sph" and len(expr.args) == 3) or expr.function == "cross"
        if isinstance(expr, ir.Data):
            return expr.field in ("positions", "vector") and len(expr.index) == 1
        if isinstance(expr, ir.Unary):
            return expr.op == "neg" and self.is_vector(expr.operand)
        if isinstance(expr, ir.Binary):
            if expr.op in ("add", "sub", "mul", "div"):
                return self.is_vector(expr.left) or self.is_vector(expr.right)
            return False
        if isinstance(expr, ir.Select):
            return self.is_vector(expr.if_true) or self.is_vector(expr.if_false)
        if isinstance(expr, ir.Reduce):
            return self.is_vector(expr.body)
        return False

    def component(self, expr, c):
        """Component `c` (an integer expression) of the vector expression `expr`, as a scalar expression."""
        if isinstance(expr, UnitVector):
            return ir.Select(ir.Binary("eq", self.lower(expr.direction), c), ir.Const(1.0), ir.Const(0.0))
        if isinstance(expr, ir.Call) and expr.function == "d_sph":
            return ir.Call("d_sph", tuple(self.lower(a) for a in expr.args) + (c,), expr.options)
        if isinstance(expr, ir.Call) and expr.function == "cross":
            # (u x v)_c = u_(c+1) v_(c+2) - u_(c+2) v_(c+1), axes modulo 3
            u, v = expr.args
            first, second = (ir.Binary("mod", ir.Binary("add", c, ir.Const(k)), ir.Const(3)) for k in (1, 2))
            return ir.Binary("sub", ir.Binary("mul", self.component(u, first), self.component(v, second)),
                             ir.Binary("mul", self.component(u, second), self.component(v, first)))
        if isinstance(expr, ir.Data):
            return ir.Data(expr.source, expr.field, (self.lower(expr.index[0]), c))
        if isinstance(expr, ir.Unary):
            return ir.Unary("neg", self.component(expr.operand, c))
        if isinstance(expr, ir.Binary):
            left_vec, right_vec = self.is_vector(expr.left), self.is_vector(expr.right)
            if expr.op in ("add", "sub"):
                return ir.Binary(expr.op, self.component(expr.left, c), self.component(expr.right, c))
            if expr.op == "mul" and left_vec != right_vec:
                if left_vec:
                    return ir.Binary("mul", self.component(expr.left, c), self.lower(expr.right))
                return ir.Binary("mul", self.lower(expr.left), self.component(expr.right, c))
            if expr.op == "div" and left_vec and not right_vec:
                return ir.Binary("div", self.component(expr.left, c), self.lower(expr.right))
        if isinstance(expr, ir.Select) and not self.is_vector(expr.condition):
            return ir.Select(self.lower(expr.condition), self.component(expr.if_true, c),
                             self.component(expr.if_false, c))
        if isinstance(expr, ir.Const) and expr.value == 0:
            # the zero a branchwise derivative puts in a vector's place (`c ? e[a] : 0.0`)
            return expr
        if isinstance(expr, ir.Reduce) and self.is_vector(expr.body):
            # a vector-valued sum, component by component (`norm(sum(p ...) P.vector[p])`)
            binders = tuple(ir.Binder(b.name, self.domain(b.domain)) for b in expr.binders)
            where = self.lower(expr.where) if expr.where is not None else None
            return ir.Reduce(binders, self.component(expr.body, c), where)
        raise Unsupported(f"a component of the vector {expr}")

    def unit_form(self, expr):
        """`(scale, direction)` when `expr` is `scale * e[direction]`, else None."""
        if isinstance(expr, UnitVector):
            return ir.Const(1.0), expr.direction
        if isinstance(expr, ir.Unary) and expr.op == "neg":
            inner = self.unit_form(expr.operand)
            return None if inner is None else (ir.Unary("neg", inner[0]), inner[1])
        if isinstance(expr, ir.Binary) and expr.op in ("mul", "div"):
            left_vec, right_vec = self.is_vector(expr.left), self.is_vector(expr.right)
            if left_vec and not right_vec:
                inner = self.unit_form(expr.left)
                if inner is not None:
                    return ir.Binary(expr.op, inner[0], expr.right), inner[1]
            if right_vec and not left_vec and expr.op == "mul":
                inner = self.unit_form(expr.right)
                if inner is not None:
                    return ir.Binary("mul", expr.left, inner[0]), inner[1]
        return None

    def dot(self, u, v):
        for a, b in ((u, v), (v, u)):
            form = self.unit_form(b)
            if form is not None:
                scale, direction = form
                return ir.Binary("mul", self.lower(scale), self.component(a, self.lower(direction)))
        if not self.has_derivative(u) and not self.has_derivative(v):
            return ir.Call("dot", (self.lower(u), self.lower(v)))
        total = None
        for c in range(3):
            product = ir.Binary("mul", self.component(u, ir.Const(c)), self.component(v, ir.Const(c)))
            total = product if total is None else ir.Binary("add", total, product)
        return total

    def has_derivative(self, expr) -> bool:
        if isinstance(expr, (UnitVector, GradLabel, GradValue)):
            return True
        if isinstance(expr, ir.Call) and expr.function == "d_sph":
            return True
        if isinstance(expr, ir.Reduce):
            return self.has_derivative(expr.body) or (expr.where is not None and self.has_derivative(expr.where))
        return any(self.has_derivative(child) for child in children(expr))

    # -- lowering --------------------------------------------------------------------------------
    def lower(self, expr):
        if isinstance(expr, (ir.Const, ir.Var)):
            return expr
        if isinstance(expr, UnitVector):
            raise Unsupported("a unit vector outside a dot product")
        if isinstance(expr, GradLabel):
            field = RowField(expr.what, {"key": expr.label, "sample": expr.slot, "target": ""}[expr.what])
            return ir.Data(rows_source(expr.tensor, expr.wrt), field, (self.lower(expr.row),))
        if isinstance(expr, GradValue):
            return self.grad_value(expr)
        if isinstance(expr, ir.Call):
            if expr.function == "dot" and len(expr.args) == 2:
                return self.dot(expr.args[0], expr.args[1])
            if expr.function == "to_irrep" and self.has_derivative(expr.args[0]):
                axis = ir.irrep1_axis(self.lower(expr.args[1]), self.module.convention)
                return self.component(expr.args[0], axis)
            if expr.function == "cross" and (self.has_derivative(expr.args[0]) or self.has_derivative(expr.args[1])):
                raise Unsupported("a vector cross product of derivatives outside a dot product or to_irrep")
            if expr.function == "d_sph" and len(expr.args) == 3:
                raise Unsupported("a vector d_sph outside a dot product")
            return ir.Call(expr.function, tuple(self.lower(a) for a in expr.args), expr.options)
        if isinstance(expr, ir.Data):
            return ir.Data(expr.source, expr.field, tuple(self.lower(i) for i in expr.index))
        if isinstance(expr, ir.ParamRef):
            return ir.ParamRef(expr.name, tuple(self.lower(i) for i in expr.index))
        if isinstance(expr, ir.BlockRef):
            def slot(s):
                return ir.Slot(s.kind, self.lower(s.expr), s.source)
            return ir.BlockRef(expr.tensor, tuple((k, self.lower(v)) for k, v in expr.keys),
                               tuple(map(slot, expr.samples)), tuple(map(slot, expr.components)),
                               tuple(map(slot, expr.properties)))
        if isinstance(expr, ir.Unary):
            return ir.Unary(expr.op, self.lower(expr.operand))
        if isinstance(expr, ir.Binary):
            return ir.Binary(expr.op, self.lower(expr.left), self.lower(expr.right))
        if isinstance(expr, ir.Select):
            return ir.Select(self.lower(expr.condition), self.lower(expr.if_true), self.lower(expr.if_false))
        if isinstance(expr, ir.Reduce):
            binders = tuple(ir.Binder(b.name, self.domain(b.domain)) for b in expr.binders)
            if any(isinstance(b.domain, ir.PairsDomain) and isinstance(b.domain.pairs, GradientRows) for b in binders):
                raise Unsupported("a sum over gradient rows")
            where = self.lower(expr.where) if expr.where is not None else None
            return ir.Reduce(binders, self.lower(expr.body), where)
        raise Unsupported(f"gradient node {type(expr).__name__}")

    def grad_value(self, expr: GradValue):
        dense = self.dense_grad_value(expr) if self.dense_reads else None
        if dense is not None:
            return dense
        order = STORED_ORDER[expr.wrt]
        directions = [None] * len(expr.directions)
        for k, direction in enumerate(expr.directions):
            directions[order[k]] = ir.Slot("value", self.lower(direction))
        row = self.lower(expr.row)
        source = rows_source(expr.tensor, expr.wrt)
        return ir.BlockRef(
            grad_tensor(expr.tensor, expr.wrt),
            (("block", ir.Data(source, RowField("block"), (row,))),),
            (ir.Slot("value", ir.Data(source, RowField("local"), (row,))),),
            tuple(directions) + tuple(ir.Slot(s.kind, self.lower(s.expr), s.source) for s in expr.components),
            tuple(ir.Slot(s.kind, self.lower(s.expr), s.source) for s in expr.properties),
        )


# ---- scatter kernels: a term written straight into the gradient rows ------------------------------

def out_source(kernel: str, wrt: str, k: int) -> RowMap:
    """The gradient rows a scatter kernel writes (a run-time range and a data source: the row map)."""
    return RowMap(kernel, wrt, k)


def scatter_kernel_name(kernel: str, wrt: str, k: int) -> ScatterKernel:
    return ScatterKernel(kernel, wrt, k)


@dataclass(frozen=True)
class ScatterTerm:
    """How a scatter kernel is bound: its name, the variables its row map is indexed by (in that
    order) and the kernel indices of its columns (components then properties)."""

    name: str
    source: str
    row_vars: tuple[str, ...]
    columns: tuple[str, ...]


def column_indices(kernel: ir.TensorKernel) -> Optional[tuple[str, ...]]:
    """The kernel indices the components and properties are (one plain index per entry), or None."""
    names = {b.name for b in kernel.indices}
    columns = []
    for entry in kernel.components + kernel.properties:
        if entry.kind != "value" or not isinstance(entry.expr, ir.Var) or entry.expr.name not in names:
            return None
        if entry.expr.name in columns:
            return None
        columns.append(entry.expr.name)
    return tuple(columns)


def scatter_kernel(module: ir.Module, kernel: ir.TensorKernel, gradient: GradientKernel, k: int,
                   term: Term) -> tuple[ScatterTerm, ir.TensorKernel]:
    """Term `k` as a kernel over the gradient's own layout: indices `(row, columns..., directions)`.

    Its body sums the term over its binders and the other kernel indices; the row is bound by
    `row == rows[v...]`, a map over the variables the row's block, sample and target depend on,
    computed before the run (-1 where the term has no point); aliased columns (`l := key of g`)
    are bound by their alias. So the pass over pairs (or over the rows of a gradient it reads)
    adds each contribution where it belongs: no dense term buffer, no scatter afterwards.
    """
    columns = column_indices(kernel)
    if columns is None:
        raise Unsupported("components or properties that are not plain indices")
    lowering = _Lowering(module)
    resolved: dict = {}
    for name, expr in term.aliases:
        resolved[name] = ad.substitute(expr, resolved)
    substituted = {n: e for n, e in resolved.items() if n not in columns}
    labelled = [e.expr for e in kernel.keys + kernel.samples] + [term.target]
    row_vars = set()
    for expr in labelled:
        row_vars |= free_vars(ad.substitute(expr, resolved))
    if row_vars & set(columns) or row_vars & set(gradient.directions):
        raise Unsupported("a gradient row that depends on a column or a direction")
    binders = []
    for binder in term.binders:
        binders.append(ir.Binder(binder.name, lowering.domain(binder.domain)))
    for binder in kernel.indices:
        if binder.name in resolved or binder.name in columns:
            continue
        binders.append(ir.Binder(binder.name, _substituted_domain(lowering, binder.domain, substituted)))
    row_order = [b.name for b in binders if b.name in row_vars]
    if set(row_order) != row_vars:
        raise Unsupported("a gradient row that depends on a variable that is not summed")
    source = out_source(kernel.name, gradient.wrt, k)
    row = "·row"
    # the gradient block's own layout: row, directions (in their stored order), columns
    indices = [ir.Binder(row, ir.PairsDomain(source))]
    order = STORED_ORDER[gradient.wrt]
    for stored in range(len(gradient.directions)):
        indices.append(ir.Binder(gradient.directions[order.index(stored)], ir.XyzDomain()))
    for name in columns:
        binder = next(b for b in kernel.indices if b.name == name)
        indices.append(ir.Binder(name, _substituted_domain(lowering, binder.domain, substituted)))
    conditions = [kernel.where, term.where]
    conditions = [lowering.lower(ad.substitute(c, substituted)) for c in conditions if c is not None]
    for name in columns:  # an aliased column is bound by its alias
        if name in resolved:
            conditions.append(ir.Binary("eq", ir.Var(name), lowering.lower(ad.substitute(resolved[name], substituted))))
    rows = ir.Data(source, "row", tuple(ir.Var(v) for v in row_order))
    conditions.append(ir.Binary("eq", ir.Var(row), rows))
    where = conjunction(conditions)
    body = _into_sums(lowering.lower(ad.substitute(term.coefficient, substituted)))
    if lowering.is_vector(body):
        raise Unsupported("a vector-valued gradient coefficient")
    name = scatter_kernel_name(kernel.name, gradient.wrt, k)
    result = ir.TensorKernel(name, tuple(indices), (), (), (), (), ir.Reduce(tuple(binders), body, where), None)
    return ScatterTerm(name, source, tuple(row_order), columns), result


def conjunction(conditions) -> Optional[ir.Expr]:
    """The conditions joined by `and`, left to right (None when there are none)."""
    where = None
    for condition in conditions:
        where = condition if where is None else ir.Binary("and", where, condition)
    return where


def _into_sums(expr):
    """`c * sum(b) X` as `sum(b) c * X` (c free of b): the sum's binders then become loops of the
    kernel's nest, ordered with the others (in the power spectrum's gradient, `m` outside the
    radial channels, so that `drho[m, n1]` is read once per `n1` and the innermost loop adds
    `rho[m, n2]` into contiguous entries), instead of a reduction inside the innermost loop."""
    if isinstance(expr, ir.Binary) and expr.op == "mul":
        left, right = _into_sums(expr.left), _into_sums(expr.right)
        for outer, inner in ((left, right), (right, left)):
            if isinstance(inner, ir.Reduce):
                names = {b.name for b in inner.binders}
                if not (free_vars(outer) & names):
                    body = ir.Binary("mul", outer, inner.body) if outer is left else ir.Binary("mul", inner.body, outer)
                    return ir.Reduce(inner.binders, body, inner.where)
        return ir.Binary("mul", left, right)
    return expr


def _substituted_domain(lowering, domain, mapping):
    if isinstance(domain, ir.IrrepDomain):
        return ir.IrrepDomain(lowering.lower(ad.substitute(domain.degree, mapping)), domain.max_degree)
    return domain
