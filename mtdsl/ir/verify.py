"""The IR verifier: what a module must satisfy after each stage (as tinygrad's `spec`).

`verify(module, stage)` checks a module after lowering (`stage="lowered"`), after the derivative
passes (`"derived"`: term, scatter and product kernels appended) or after fusion (`"fused"`:
`module.fused` filled), and raises `VerifyError` naming the kernel and the node at the first
broken rule:

- every `Var` is bound by the kernel's indices or by an enclosing `Reduce`, and every name read
  is declared (systems, neighbour lists, parameters with as many indices as slots, input
  tensormaps and kernels computed before the reader);
- domains are well formed (`start <= stop`, a non-negative maximal degree, `PairsFrom` only
  as a `Reduce` binder, binder names distinct) and no node of the derivative IR
  (`mtdsl/ir/derivative_nodes.py`: `GradRows`, `GradLabel`, `GradValue`, `UnitVector`, which only
  a gradient's terms hold) is left unlowered;
- the roles of `mtdsl/ir/roles.py` appear only where they may: none after lowering; the rows of a
  gradient (`GradientRows`, its labels read by a `RowField`), its values (`GradientValues`, read
  by a `DenseValues` at a row and one position per axis) and blocks (`GradientBlocks`) only in
  derived kernels; a `RowMap` range only as the first index of the scatter or product kernel it
  belongs to; cotangents only in VJP kernels, tangents only in JVP kernels; `FusedName` only as
  a fused kernel's name, whose members are kernels of the module;
- types agree: conditions (`where`, a select's, `and`/`or`/`not` operands) are boolean, `mod`
  takes integers, no comparison or call takes a bool or a vector where it needs a number,
  operators and functions are known.

`verify_gradients(module, gradients)` checks what autodiff gives (the "autodiff" stage), the one
place where the derivative nodes belong: the same rules over each term of each `GradientKernel`,
whose scope is its kernel's indices, the directions, its binders and its aliases, and whose
`GradRows`, `GradLabel` and `GradValue` read the gradients of kernels computed before.
"""

from __future__ import annotations

from typing import Optional

from mtdsl import builtins

from . import nodes as ir
from .derivative_nodes import DERIVATIVE_NODES, GradientKernel, GradLabel, GradRows, GradValue, UnitVector
from .roles import (BinderMask, Cotangent, DenseValues, DerivedKernel, FusedName, GradientBlocks, GradientRows,
                    GradientValues, JvpKernel, PresenceTable, RoleName, RowField, RowMap, ScatterKernel, Tangent,
                    TensorTangent, VjpKernel)

STAGES = ("lowered", "derived", "fused")

INT, BOOL, REAL, VEC = "int", "bool", "real", "vec"
_SYSTEMS_FIELDS = {"positions": VEC, "type": INT, "system": INT, "cell": REAL, "pbc": BOOL}
_PAIRS_FIELDS = {"first": INT, "second": INT, "vector": VEC, "distance": REAL, "cell_shift": VEC}
_VECTOR_FIELDS = {"positions", "vector", "cell_shift"}
_COMPARISONS = {"eq", "ne", "lt", "le", "gt", "ge"}
_ROW_MAP_OF = {ScatterKernel: "", VjpKernel: "vjp", JvpKernel: "jvp"}
#: the built-ins the IR calls (one defined by other IR, such as `min`, is replaced by its definition at
#: lowering), and the derivatives of built-ins the derivative passes call (`d_sph`, `d_soap_radial`, ...)
_CALLED = tuple(b.name for b in builtins.registered() if b.definition is None)
_FUNCTIONS = set(_CALLED) | {f"d_{name}" for name in _CALLED}
_UNLOWERED = ("a node of the derivative IR (derivative_nodes.py) left unlowered: only a gradient's terms hold them, "
              "and passes/terms.py lowers them")


class VerifyError(AssertionError):
    """A module that breaks a rule of the IR: a bug of the pass that produced it, not of the program."""


def verify(module: ir.Module, stage: str = "lowered") -> ir.Module:
    """Check `module` after `stage` (one of `STAGES`); return it unchanged, raise `VerifyError`."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}: one of {', '.join(STAGES)}")
    _Verifier(module, stage).module_()
    return module


def verify_gradients(module: ir.Module, gradients: dict) -> dict:
    """Check the gradient kernels autodiff gave for `module` (`{wrt: {kernel: GradientKernel}}`;
    the "autodiff" stage, the one where derivative nodes belong): each of a kernel of the module;
    in each term, every variable bound (the kernel's indices, the directions, the term's binders
    and aliases, enclosing sums); `GradRows`, `GradLabel` and `GradValue` of kernels computed
    before; a boolean condition; an integer target (an atom or a system) or an entry of a
    tensor read; no role. Return `gradients` unchanged, raise `VerifyError`."""
    verifier = _Verifier(module, "autodiff")
    for by_kernel in gradients.values():
        for gradient in by_kernel.values():
            verifier.gradient(gradient)
    return gradients


class _Verifier:
    def __init__(self, module: ir.Module, stage: str):
        self.module = module
        self.stage = stage
        self.systems = {s.name for s in module.systems}
        self.pairs = {p.name: p for p in module.pairs}
        self.params = {p.name: p for p in module.params}
        self.inputs = {t.name for t in module.tensormaps}
        self.kernel: Optional[ir.TensorKernel] = None
        self.done: set = set()  # the kernels before the one checked

    # -- reporting -------------------------------------------------------------------------------
    def fail(self, node, message: str):
        where = f"kernel {self.kernel.name}" if self.kernel is not None else f"module {self.module.name}"
        raise VerifyError(f"{where} ({self.stage}): {node}: {message}")

    # -- the module ------------------------------------------------------------------------------
    def module_(self):
        for declaration in self.module.params:
            for domain in declaration.domains:
                self.domain(domain, set(), declaration)
        names = set()
        for kernel in self.module.kernels:
            self.kernel = kernel
            if kernel.name in names:
                self.fail(kernel.name, "a second kernel of this name")
            names.add(kernel.name)
            self.kernel_(kernel)
            self.done.add(kernel.name)
        self.kernel = None
        for output in self.module.outputs:
            if output.name not in names:
                self.fail(output, "an output that no kernel computes")
        if self.module.fused and self.stage != "fused":
            self.fail(self.module.fused[0], f"a fused kernel before fusion")
        for fused in self.module.fused:
            if not isinstance(fused.name, FusedName):
                self.fail(fused, "a fused kernel whose name is not a FusedName")
            missing = [n for n in fused.names if n not in names]
            if missing or len(fused.kernels) < 2:
                self.fail(fused, f"members {missing} are not kernels of the module" if missing
                          else "a fused kernel of fewer than two kernels")

    # -- the gradient kernels of autodiff -------------------------------------------------------
    def gradient(self, gradient: GradientKernel):
        kernels = [k.name for k in self.module.kernels]
        self.kernel = None
        if gradient.kernel not in kernels:
            self.fail(gradient.kernel, "the gradient of no kernel of the module")
        self.kernel = self.module.kernels[kernels.index(gradient.kernel)]
        self.done = set(kernels[:kernels.index(gradient.kernel)])
        scope = {b.name for b in self.kernel.indices} | set(gradient.directions)
        for term in gradient.terms:
            inner = set(scope)
            for binder in term.binders:
                if binder.name in inner:
                    self.fail(binder, "a term's binder named as a variable of its scope")
                inner.add(binder.name)
            for binder in term.binders:
                self.domain(binder.domain, inner, binder)
            for name, alias in term.aliases:  # each alias may read the ones before it
                self.expect(alias, inner, INT, f"the alias of {name}")
                inner.add(name)
            if term.where is not None:
                self.expect(term.where, inner, BOOL, "a term's where")
            if not isinstance(term.target, ir.BlockRef):
                self.expect(term.target, inner, INT, "a term's target")
            self.expr(term.target, inner)
            self.expr(term.coefficient, inner)

    def derivative(self, expr, scope: set) -> str:
        """The type of a derivative node (only in a gradient's terms)."""
        if self.stage != "autodiff":
            self.fail(expr, f"{type(expr).__name__} is no expression of the IR: {_UNLOWERED}")
        if isinstance(expr, UnitVector):
            self.expect(expr.direction, scope, INT, "a direction")
            return VEC
        if expr.tensor not in self.done:
            self.fail(expr, f"the gradient of {expr.tensor!r}, not a kernel computed before")
        self.expect(expr.row, scope, INT, "a gradient row")
        if isinstance(expr, GradLabel):
            if expr.what not in ("key", "sample", "target"):
                self.fail(expr, f"a gradient row label of kind {expr.what!r}")
            return INT
        for direction in expr.directions:
            self.expect(direction, scope, INT, "a direction")
        for slot in expr.components + expr.properties:
            self.source(slot, slot.kind, slot.source)
            self.number(slot.expr, scope, "a slot")
        return REAL

    def kernel_(self, kernel: ir.TensorKernel):
        name = kernel.name
        if isinstance(name, RoleName):
            if self.stage == "lowered":
                self.fail(name, f"a {type(name).__name__} kernel after lowering (only the derivative passes add them)")
            if isinstance(name, (FusedName, BinderMask, GradientRows, GradientValues, GradientBlocks, RowMap)):
                self.fail(name, f"a {type(name).__name__} names no kernel")
            if isinstance(name, (Cotangent, Tangent, TensorTangent)) and kernel.body != ir.Const(0.0):
                self.fail(kernel.body, "a stand-in kernel computes nothing (its grid is filled by the runtime)")
        scope = set()
        for position, binder in enumerate(kernel.indices):
            if binder.name in scope:
                self.fail(binder, "a second index of this name")
            scope.add(binder.name)
        # the degree of a column's irrep in a scatter kernel may be a variable its row map sums
        # (`M in irrep(L)`, L a binder of the body's sum): checked by the renderers per point
        columns = scope | ({b.name for b in kernel.body.binders}
                           if isinstance(name, DerivedKernel) and isinstance(kernel.body, ir.Reduce) else set())
        for position, binder in enumerate(kernel.indices):
            if isinstance(binder.domain, ir.PairsFrom):
                self.fail(binder, "PairsFrom is only a Reduce binder")
            if isinstance(binder.domain, ir.PairsDomain) and isinstance(binder.domain.pairs, RowMap):
                self.row_map_index(binder, position)
            self.domain(binder.domain, columns, binder)
        for group in (kernel.keys, kernel.samples, kernel.components, kernel.properties):
            for entry in group:
                self.entry(entry, scope)
        if kernel.where is not None:
            self.expect(kernel.where, scope, BOOL, "a kernel's where")
        self.expr(kernel.body, scope)

    def row_map_index(self, binder: ir.Binder, position: int):
        row_map, name = binder.domain.pairs, self.kernel.name
        expected = _ROW_MAP_OF.get(type(name))
        if expected is None or row_map.product != expected or row_map.fields[:3] != name.fields:
            self.fail(binder, f"a RowMap range outside the scatter or product kernel it belongs to")
        if position != 0:
            self.fail(binder, "a RowMap range is the first index of its kernel (the gradient's rows)")

    def entry(self, entry: ir.Entry, scope: set):
        if entry.kind not in ("value", "atoms", "pairs"):
            self.fail(entry, f"an entry of kind {entry.kind!r}")
        self.source(entry, entry.kind, entry.source)
        self.expr(entry.expr, scope)

    def source(self, node, kind: str, source: str):
        if kind == "atoms" and source not in self.systems:
            self.fail(node, f"systems {source!r} are not an input")
        if kind == "pairs" and source not in self.pairs:
            self.fail(node, f"neighbour list {source!r} is not declared")
        if kind == "systems" and source not in self.systems:
            self.fail(node, f"systems {source!r} are not an input")

    # -- domains ---------------------------------------------------------------------------------
    def domain(self, domain, scope: set, node):
        if isinstance(domain, ir.RangeDomain):
            if not isinstance(domain.start, int) or not isinstance(domain.stop, int) or domain.start > domain.stop:
                self.fail(node, f"a range from {domain.start} to {domain.stop}")
        elif isinstance(domain, (ir.SpeciesDomain, ir.AtomsDomain, ir.SystemsDomain)):
            self.source(node, "systems", domain.systems)
        elif isinstance(domain, ir.PairsDomain):
            self.pairs_name(domain.pairs, node)
        elif isinstance(domain, ir.PairsFrom):
            self.pairs_name(domain.pairs, node)
            if isinstance(domain.pairs, RoleName):
                self.fail(node, "PairsFrom over the rows of a gradient")
            self.expect(domain.atom, scope, INT, "an atom")
        elif isinstance(domain, ir.IrrepDomain):
            if not isinstance(domain.max_degree, int) or domain.max_degree < 0:
                self.fail(node, f"an irrep of maximal degree {domain.max_degree}")
            self.expect(domain.degree, scope, INT, "a degree")
        elif isinstance(domain, GradRows) and self.stage == "autodiff":
            if domain.tensor not in self.done:
                self.fail(node, f"the gradient rows of {domain.tensor!r}, not a kernel computed before")
        elif isinstance(domain, DERIVATIVE_NODES):
            self.fail(node, f"{type(domain).__name__} is no domain of the IR: {_UNLOWERED}")
        elif not isinstance(domain, ir.XyzDomain):
            self.fail(node, f"{type(domain).__name__} is no domain of the IR")

    def pairs_name(self, pairs, node):
        if isinstance(pairs, GradientRows):
            self.derived_only(node, pairs)
        elif isinstance(pairs, RowMap):
            if self.stage == "lowered":
                self.fail(node, "a RowMap range after lowering")
        elif isinstance(pairs, RoleName) or pairs not in self.pairs:
            self.fail(node, f"{pairs!r} is not a neighbour list of the module")

    def derived_only(self, node, role):
        if not isinstance(self.kernel.name, DerivedKernel):
            self.fail(node, f"a {type(role).__name__} outside a term, scatter or product kernel")
        if isinstance(role, (GradientRows, GradientValues, GradientBlocks)) and role.tensor not in self.done:
            self.fail(node, f"the gradient of {role.tensor!r}, not a kernel computed before")

    # -- expressions -----------------------------------------------------------------------------
    def expect(self, expr, scope: set, kind: str, what: str):
        found = self.expr(expr, scope)
        if found != kind and not (kind == INT and found == BOOL):
            self.fail(expr, f"{what} of type {found}, not {kind}")

    def number(self, expr, scope: set, what: str, vector: bool = False) -> str:
        found = self.expr(expr, scope)
        if found == VEC and not vector:
            self.fail(expr, f"a vector as {what}")
        return found

    def expr(self, expr, scope: set) -> str:
        if isinstance(expr, ir.Const):
            if isinstance(expr.value, bool):
                return BOOL
            if isinstance(expr.value, int):
                return INT
            if isinstance(expr.value, float):
                return REAL
            self.fail(expr, f"a constant of type {type(expr.value).__name__}")
        if isinstance(expr, ir.Var):
            if expr.name not in scope:
                self.fail(expr, f"variable {expr.name} is bound by no index and no enclosing sum")
            return INT
        if isinstance(expr, ir.Data):
            return self.data(expr, scope)
        if isinstance(expr, ir.ParamRef):
            declaration = self.params.get(expr.name)
            if declaration is None:
                self.fail(expr, f"no parameter {expr.name!r}")
            if len(expr.index) != len(declaration.domains):
                self.fail(expr, f"{len(expr.index)} indices for {len(declaration.domains)} slots")
            for index in expr.index:
                self.number(index, scope, "a parameter index")
            return REAL
        if isinstance(expr, ir.BlockRef):
            return self.block(expr, scope)
        if isinstance(expr, ir.Unary):
            if expr.op == "not":
                self.expect(expr.operand, scope, BOOL, "the operand of not")
                return BOOL
            if expr.op == "neg":
                found = self.expr(expr.operand, scope)
                return INT if found == BOOL else found
            self.fail(expr, f"unknown unary operator {expr.op!r}")
        if isinstance(expr, ir.Binary):
            return self.binary(expr, scope)
        if isinstance(expr, ir.Select):
            self.expect(expr.condition, scope, BOOL, "a select's condition")
            kinds = {self.expr(expr.if_true, scope), self.expr(expr.if_false, scope)}
            return VEC if VEC in kinds else REAL if REAL in kinds else INT if INT in kinds else BOOL
        if isinstance(expr, ir.Call):
            if expr.function not in _FUNCTIONS:
                self.fail(expr, f"unknown function {expr.function!r}")
            builtin = builtins.lookup(expr.function)
            vector_args = builtin is None or any(p.kind == "vector" for p in builtin.params)  # or a `d_...`
            kinds = [self.number(a, scope, f"an argument of {expr.function}", vector=vector_args) for a in expr.args]
            if builtin is not None and builtin.result == "vector":
                return VEC
            return INT if builtin is not None and builtin.integer_valued and REAL not in kinds else REAL
        if isinstance(expr, ir.Reduce):
            inner = set(scope)
            for binder in expr.binders:
                if binder.name in inner - scope:
                    self.fail(binder, "a second binder of this name in one sum")
                inner.add(binder.name)
            for binder in expr.binders:
                self.domain(binder.domain, inner, binder)
                if isinstance(binder.domain, ir.PairsDomain) and isinstance(binder.domain.pairs, RowMap):
                    self.fail(binder, "a RowMap range summed over (it is a kernel's rows)")
            if expr.where is not None:
                self.expect(expr.where, inner, BOOL, "a sum's where")
            found = self.expr(expr.body, inner)
            return REAL if found in (INT, BOOL) else found
        if isinstance(expr, (UnitVector, GradLabel, GradValue)):
            return self.derivative(expr, scope)
        self.fail(expr, f"{type(expr).__name__} is no expression of the IR")

    def binary(self, expr: ir.Binary, scope: set) -> str:
        op = expr.op
        if op not in ir.BINARY_OPS:
            self.fail(expr, f"unknown binary operator {op!r}")
        if op in ("and", "or"):
            self.expect(expr.left, scope, BOOL, f"an operand of {op}")
            self.expect(expr.right, scope, BOOL, f"an operand of {op}")
            return BOOL
        if op in _COMPARISONS:
            self.number(expr.left, scope, f"an operand of {op}")
            self.number(expr.right, scope, f"an operand of {op}")
            return BOOL
        left = self.number(expr.left, scope, f"an operand of {op}", vector=op in ("add", "sub", "mul", "div"))
        right = self.number(expr.right, scope, f"an operand of {op}", vector=op in ("add", "sub", "mul"))
        if op == "mod" and (left == REAL or right == REAL):
            self.fail(expr, "mod of a real")
        if VEC in (left, right):
            return VEC
        if op in ("div", "pow") or REAL in (left, right):
            return REAL if op != "pow" or REAL in (left, right) else INT
        return INT

    def data(self, expr: ir.Data, scope: set) -> str:
        source = expr.source
        for index in expr.index:
            self.number(index, scope, "a data index")
        if isinstance(source, GradientRows):
            self.derived_only(expr, source)
            if len(expr.index) != 1:
                self.fail(expr, "the label of a gradient row is read at one row")
            if not isinstance(expr.field, RowField):
                self.fail(expr, f"the label of a gradient row is a RowField, not {expr.field!r}")
            return INT
        if isinstance(source, GradientValues):
            self.derived_only(expr, source)
            if not isinstance(expr.field, DenseValues):
                self.fail(expr, f"a gradient's written values are read by DenseValues, not {expr.field!r}")
            if len(expr.index) != len(expr.field.sizes) + 1:
                self.fail(expr, "a gradient's written values are read at a row and one position per axis")
            return REAL
        if isinstance(source, RowMap):
            if not isinstance(self.kernel.name, ScatterKernel) or source.fields[:3] != self.kernel.name.fields:
                self.fail(expr, "a row map read outside its scatter kernel")
            return INT
        if isinstance(source, PresenceTable):  # a reverse product skips its tensor's absent points
            if not isinstance(self.kernel.name, VjpKernel) or source.fields[0] != self.kernel.name.fields[0]:
                self.fail(expr, "a presence table read outside the reverse products of its tensor")
            return INT
        if isinstance(source, RoleName):
            self.fail(expr, f"a {type(source).__name__} is no data source")
        if source in self.systems:
            fields = _SYSTEMS_FIELDS
        elif source in self.pairs:
            fields = _PAIRS_FIELDS
        else:
            self.fail(expr, f"{source!r} is neither systems nor a neighbour list of the module")
        if expr.field not in fields:
            self.fail(expr, f"{source!r} has no field {expr.field!r}")
        if not expr.index:
            self.fail(expr, "data read at no index")
        if expr.field in _VECTOR_FIELDS:
            return REAL if len(expr.index) == 2 else VEC
        return fields[expr.field]

    def block(self, expr: ir.BlockRef, scope: set) -> str:
        tensor = expr.tensor
        if isinstance(tensor, GradientBlocks):
            self.derived_only(expr, tensor)
        elif isinstance(tensor, Cotangent):
            if not isinstance(self.kernel.name, VjpKernel):
                self.fail(expr, "a cotangent read outside a VJP kernel")
        elif isinstance(tensor, (Tangent, TensorTangent)):
            if not isinstance(self.kernel.name, JvpKernel):
                self.fail(expr, "a tangent read outside a JVP kernel")
        elif isinstance(tensor, RoleName):
            self.fail(expr, f"a {type(tensor).__name__} is no tensor")
        elif tensor not in self.inputs and tensor not in self.done:
            self.fail(expr, f"{tensor!r} is neither an input nor a kernel computed before")
        if isinstance(tensor, (Cotangent, Tangent, TensorTangent)) and tensor not in self.done:
            self.fail(expr, f"the stand-in {tensor} is not a kernel before its reader")
        for _, value in expr.keys:
            self.number(value, scope, "a key")
        for slot in expr.samples + expr.components + expr.properties:
            if slot.kind not in ("value", "atoms", "pairs", "systems"):
                self.fail(slot, f"a slot of kind {slot.kind!r}")
            self.source(slot, slot.kind, slot.source)
            self.number(slot.expr, scope, "a slot")
        return REAL
