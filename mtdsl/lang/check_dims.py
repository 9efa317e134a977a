"""Dimension and metadata checking of a resolved program (LANGUAGE.md §4).

Reports:

- E201: a value bound to a slot of another dimension (an index of `range(8)`
  in a `radial` slot, an atom in a pair slot), an axis labelled by a dimension
  that may not label it (`atoms(S)` as a property), and other ill-typed
  operands (a vector where a number is expected, a float as an index);
- E202: an index free in an expression but neither in the signature nor summed
  (also the `l` of an `m : irrep(l)` that is used while `l` is not bound);
- E203: a wrong number of indices or arguments, and block access that does
  not bind a key of more than one value (every key of a tensormap input);
- E204: an index used in a key entry that is not a sample, component,
  property or key index of the signature;
- E205: a tensormap input read with a key label its signature does not declare.

E206 (a param indexed by `species(S)` without fixed species) belongs to
`compile`; :func:`params_needing_species` finds the params it is about.
"""

from __future__ import annotations

from typing import Optional

from . import program as P
from .builtins import BUILTINS
from .checker import ProgramChecker
from .diagnostics import Reporter, did_you_mean
from .evaluate import UNKNOWN, TooManyPoints, closure, evaluate, points, refs_of
from .resolve import dispatch, arith_type, dims_fit, is_unknown_dim

_AXIS = {"keys": "key", "samples": "sample", "components": "component", "properties": "property"}

# free indices: {Index: (span of first use, the index whose dim needs it or None)}
Free = dict




def _merge(into: Free, other: Free) -> None:
    for index, where in other.items():
        into.setdefault(index, where)


def describe_value(expr: P.Expr) -> str:
    if isinstance(expr, P.IndexRef):
        return f"index `{expr.index.name}` of `{expr.index.dim}`"
    if expr.type.dim is not None:
        return f"`{P.describe(expr)}` (a value of `{expr.type.dim}`)"
    kind = expr.type.kind
    article = "an" if kind[0] in "aeiou" else "a"
    return f"`{P.describe(expr)}` ({article} {kind})"


#: built-ins whose last argument is an `m` of an irrep, and the degree of that irrep
_HARMONIC_DEGREE = {
    "sph": lambda args: args[1],
    "to_irrep": lambda args: P.Const(1, P.INT),
}


class DimChecker(ProgramChecker):
    # ---- definitions (walked by ProgramChecker.run)
    def param(self, param: P.Param) -> None:
        for index in param.indices:
            if isinstance(index.dim, (P.AtomsDim, P.PairsDim, P.SystemsDim, P.OpaqueDim)):
                self.error("E201", param.span,
                           f"param `{param.name}` is indexed by `{index.name}` of `{index.dim}`, whose size "
                           "is only known at run time",
                           hint="params have a fixed shape: index them by range or species dimensions")

    def let(self, let: P.Let) -> None:
        free = self.visit(let.body)
        allowed = set(let.indices)
        self.report_free(free, allowed, f"the parameters of let `{let.name}`")

    def tensor(self, tensor: P.Tensor) -> None:
        bound: set[P.Index] = set()
        for entry in tensor.keys:
            if isinstance(entry.value, P.IndexRef):
                bound.add(entry.value.index)
        for slot in tensor.slots:
            if isinstance(slot.value, P.IndexRef):
                bound.add(slot.value.index)
        # keys: integer expressions of the signature's indices
        for entry in tensor.keys:
            value = entry.value
            self.visit(value)
            if value.type.kind not in ("int", "unknown", "bool"):
                self.error("E201", value.span, f"key `{entry.label}` must be an integer, found {value.type}")
            if isinstance(value, P.IndexRef):
                self.axis_kind(value.index, "keys", entry.span, entry.label)
                continue
            for ref in _refs(value):
                if ref.index not in bound:
                    self.error(
                        "E204", ref.span,
                        f"index `{ref.index.name}` is used in key `{entry.label}` but is not a sample, component, "
                        f"property or key index of `{tensor.name}`",
                        hint=f"add `{ref.index.name}` to the samples or properties, or sum over it in the value",
                    )
        for section in ("samples", "components", "properties"):
            for slot in getattr(tensor, section):
                if isinstance(slot.value, P.IndexRef):
                    self.axis_kind(slot.value.index, section, slot.span, slot.labels[0])
                    for dep in _dim_refs(slot.value.index.dim):
                        if dep not in bound:
                            self.error(
                                "E202", slot.span,
                                f"index `{slot.value.index.name}` ranges over `{slot.value.index.dim}`, but "
                                f"`{dep.name}` is not in the signature of `{tensor.name}`",
                                hint=f"add a key such as `o3_lambda = {dep.name}`",
                            )
        where = f"the signature of `{tensor.name}`"
        if tensor.where is not None:
            self.expect_bool(tensor.where, "a `where` condition")
            self.report_free(self.visit(tensor.where), bound, where)
        free = self.visit(tensor.body)
        if tensor.body.type.kind not in ("int", "float", "unknown"):
            self.error("E201", tensor.body.span,
                       f"the value of tensor `{tensor.name}` must be a number, found {tensor.body.type}",
                       hint="index vectors with an `xyz` index" if tensor.body.type.kind == "vector" else None)
        self.report_free(free, bound, where)

    def axis_kind(self, index: P.Index, section: str, span, label: str) -> None:
        axis = _AXIS[section]
        if is_unknown_dim(index.dim) or axis in index.dim.axes:
            return
        allowed = ", ".join(sorted(index.dim.axes))
        self.error("E201", span, f"`{label}`: an index of `{index.dim}` cannot label {section}",
                   hint=f"`{index.dim}` may label: {allowed}")

    def report_free(self, free: Free, bound: set, where: str) -> None:
        for index, (span, via) in free.items():
            if index in bound:
                continue
            if via is not None:
                message = (f"index `{via.name}` ranges over `{via.dim}`, but `{index.name}` is neither in "
                           f"{where} nor summed")
            else:
                message = f"index `{index.name}` is free: neither in {where} nor summed"
            self.error("E202", span, message,
                       hint=f"add `{index.name}` to the signature, or sum over it: `sum({index.name}) ...`")

    def expect_bool(self, expr: P.Expr, what: str) -> None:
        if expr.type.kind not in ("bool", "unknown"):
            self.error("E201", expr.span, f"{what} must be a boolean, found {expr.type}")

    # ---- expressions: type checks, and the free indices
    def visit(self, expr: P.Expr) -> Free:
        method = dispatch(self, "_", type(expr))
        if method is None:
            free: Free = {}
            for child in P.children(expr):
                _merge(free, self.visit(child))
            return free
        return method(expr)

    def _Const(self, expr: P.Const) -> Free:
        return {}

    def _Invalid(self, expr: P.Invalid) -> Free:
        return {}

    def _IndexRef(self, expr: P.IndexRef) -> Free:
        free: Free = {expr.index: (expr.span, None)}
        for dep in _dim_refs(expr.index.dim):
            free.setdefault(dep, (expr.span, expr.index))
        return free

    def _Unary(self, expr: P.Unary) -> Free:
        free = self.visit(expr.operand)
        kind = expr.operand.type.kind
        if expr.op == "-" and kind not in ("int", "float", "vector", "unknown"):
            self.error("E201", expr.span, f"cannot negate {expr.operand.type}")
        if expr.op == "not":
            self.expect_bool(expr.operand, "the operand of `not`")
        return free

    def _Binary(self, expr: P.Binary) -> Free:
        free = self.visit(expr.left)
        _merge(free, self.visit(expr.right))
        lt, rt = expr.left.type, expr.right.type
        if expr.op in ("and", "or"):
            self.expect_bool(expr.left, f"the operands of `{expr.op}`")
            self.expect_bool(expr.right, f"the operands of `{expr.op}`")
        elif expr.op in ("==", "!=", "<", "<=", ">", ">="):
            numbers = {"int", "float", "unknown"}
            if expr.op in ("==", "!=") and lt.kind == rt.kind == "bool":
                pass
            elif lt.kind not in numbers or rt.kind not in numbers:
                self.error("E201", expr.op_span, f"cannot compare {lt} with {rt}")
            elif lt.dim is not None and rt.dim is not None and not dims_fit(lt.dim, rt.dim):
                self.error("E201", expr.op_span, f"comparison of values of different dimensions: "
                           f"`{lt.dim}` and `{rt.dim}`")
        elif arith_type(expr.op, lt, rt) is None:
            hint = "use dot(u, v) for the scalar product of vectors" if lt.kind == rt.kind == "vector" else None
            self.error("E201", expr.op_span, f"operator `{expr.op}` cannot combine {lt.kind} and {rt.kind}", hint)
        return free

    def _Ternary(self, expr: P.Ternary) -> Free:
        free = self.visit(expr.cond)
        _merge(free, self.visit(expr.then))
        _merge(free, self.visit(expr.otherwise))
        self.expect_bool(expr.cond, "the condition of `?:`")
        a, b = expr.then.type, expr.otherwise.type
        if not (a.kind == "unknown" or b.kind == "unknown" or a.kind == b.kind
                or {a.kind, b.kind} <= {"int", "float"}):
            self.error("E201", expr.span, f"the branches of `?:` have different types: {a.kind} and {b.kind}")
        return free

    def _Call(self, expr: P.Call) -> Free:
        free: Free = {}
        builtin = BUILTINS[expr.function]
        for param, arg in zip(builtin.params, expr.args):
            _merge(free, self.visit(arg))
            kind = arg.type.kind
            if kind == "unknown":
                continue
            if param.kind == "number" and kind not in ("int", "float"):
                self.error("E201", arg.span, f"argument `{param.name}` of `{expr.function}` must be a number, "
                           f"found {arg.type.kind}", hint=builtin.doc)
            elif param.kind == "int" and kind != "int":
                self.error("E201", arg.span, f"argument `{param.name}` of `{expr.function}` must be an integer, "
                           f"found {arg.type.kind}", hint=builtin.doc)
            elif param.kind == "vector" and kind != "vector":
                self.error("E201", arg.span, f"argument `{param.name}` of `{expr.function}` must be a vector, "
                           f"found {arg.type.kind}", hint=builtin.doc)
        if expr.function in _HARMONIC_DEGREE:
            degree, m = _HARMONIC_DEGREE[expr.function](expr.args), expr.args[-1]
            if isinstance(m, P.IndexRef):
                if not dims_fit(P.IrrepDim(degree), m.index.dim):
                    self.error("E201", m.span,
                               f"index `{m.index.name}` of `{m.index.dim}` is not of `irrep({P.describe(degree)})`",
                               hint=f"declare `index {m.index.name} : irrep({P.describe(degree)})`")
            elif not isinstance(m, P.Invalid):
                self.error("E201", m.span, f"the `m` of {expr.function} must be an index of "
                           f"`irrep({P.describe(degree)})`")
        return free

    def check_slot(self, arg: P.Expr, dim: Optional[P.Dim], slot_name: str) -> None:
        """``arg`` fills a slot of ``dim`` (None: any integer)."""
        kind = arg.type.kind
        if kind == "unknown":
            return
        if kind != "int":
            expected = f"an index of `{dim}`" if dim is not None else "an integer"
            self.error("E201", arg.span, f"{slot_name}: expected {expected}, found {describe_value(arg)}")
            return
        if dim is None or is_unknown_dim(dim):
            return
        if arg.type.dim is None:
            if isinstance(dim, (P.RangeDim, P.SpeciesDim)):
                return  # an integer expression may fill a range or species slot
            if isinstance(dim, P.IrrepDim) and evaluate(dim.degree) == 0 and evaluate(arg) == 0:
                return  # the single component of an invariant block
            self.error("E201", arg.span,
                       f"{slot_name}: expected an index of `{dim}`, found an integer expression",
                       hint=f"use an index of `{dim}`")
            return
        if not dims_fit(dim, arg.type.dim):
            self.error("E201", arg.span,
                       f"{describe_value(arg)} bound to {slot_name} of `{dim}`",
                       hint=f"expected a value of `{dim}`, found one of `{arg.type.dim}`")

    def _indexed(self, expr, what: str, dims: list) -> Free:
        free: Free = {}
        for arg in expr.indices:
            _merge(free, self.visit(arg))
        if len(expr.indices) != len(dims):
            self.error("E203", expr.span, f"{what} takes {len(dims)} indices, found {len(expr.indices)}")
            return free
        for position, (arg, dim) in enumerate(zip(expr.indices, dims)):
            self.check_slot(arg, dim, f"slot {position + 1} of {what}")
        return free

    def _HyperItem(self, expr: P.HyperItem) -> Free:
        free = self.visit(expr.index)
        index = expr.index
        if index.type.kind not in ("int", "unknown"):
            self.error("E201", index.span, f"an item of list hyper `{expr.hyper}` needs an integer index, "
                       f"found {index.type}")
            return free
        dim = index.type.dim
        size = len(expr.values)
        if expr.keys is not None:
            return self._table_item(expr, free)
        if isinstance(dim, P.RangeDim) and (dim.start < 0 or dim.stop > size):
            self.error("E201", index.span,
                       f"{describe_value(index)} ranges over {dim.start}..{dim.stop - 1}, but list hyper "
                       f"`{expr.hyper}` has {size} items", hint=f"use an index of `range({size})`")
        elif dim is not None and not isinstance(dim, P.RangeDim) and not is_unknown_dim(dim):
            self.error("E201", index.span, f"{describe_value(index)} cannot index list hyper `{expr.hyper}`")
        else:
            value = evaluate(index)
            if isinstance(value, int) and not 0 <= value < size:
                self.error("E201", index.span, f"item {value} of list hyper `{expr.hyper}` does not exist "
                           f"({size} items)")
        return free

    def _table_item(self, expr: P.HyperItem, free: Free) -> Free:
        """`radius[S.type[i]]`: every value the index can take must be a key (a species value is
        checked when the model runs, `runtime/model.py`)."""
        index, keys = expr.index, set(expr.keys)
        dim = index.type.dim
        shown = ", ".join(map(str, expr.keys))
        if isinstance(dim, P.RangeDim):
            missing = [k for k in range(dim.start, dim.stop) if k not in keys]
            if missing:
                self.error("E201", index.span, f"{describe_value(index)} takes the values {missing}, which table "
                           f"hyper `{expr.hyper}` has no entry for (its keys: {shown})")
            return free
        value = evaluate(index)
        if isinstance(value, int) and value not in keys:
            self.error("E201", index.span, f"table hyper `{expr.hyper}` has no entry {value} (its keys: {shown})")
        return free

    def _ParamRef(self, expr: P.ParamRef) -> Free:
        return self._indexed(expr, f"param `{expr.param.name}`", [i.dim for i in expr.param.indices])

    def _LetRef(self, expr: P.LetRef) -> Free:
        return self._indexed(expr, f"let `{expr.let.name}`", [i.dim for i in expr.let.indices])

    def _data_indices(self, expr, what: str, shapes: tuple[int, ...]) -> tuple[Free, bool]:
        """The free indices of a read of built-in data (``S.positions[i, x]``...), and
        whether it has one of the index counts of ``shapes`` (an error if not)."""
        free: Free = {}
        for arg in expr.indices:
            _merge(free, self.visit(arg))
        if len(expr.indices) not in shapes:
            counts = " or ".join(str(n) for n in shapes)
            self.error("E203", expr.span, f"{what} takes {counts} indices, found {len(expr.indices)}")
            return free, False
        return free, True

    def _SystemData(self, expr: P.SystemData) -> Free:
        S = expr.systems
        first = {"positions": P.AtomsDim(S), "type": P.AtomsDim(S), "system": P.AtomsDim(S),
                 "cell": P.SystemsDim(S), "pbc": P.SystemsDim(S)}[expr.field]
        shapes = {"positions": (1, 2), "type": (1,), "system": (1,), "cell": (1, 3), "pbc": (1, 2)}[expr.field]
        what = f"`{S}.{expr.field}`"
        free, counted = self._data_indices(expr, what, shapes)
        if not counted:
            return free
        for position, arg in enumerate(expr.indices):
            if position == 0:
                dim: Optional[P.Dim] = first
            elif expr.field in ("cell", "pbc") and position == 1:
                dim = None  # which cell vector: any integer, not a Cartesian component
            else:
                dim = P.XyzDim()
            self.check_slot(arg, dim, f"slot {position + 1} of {what}")
        return free

    def _PairData(self, expr: P.PairData) -> Free:
        pairs = self.program.pairs.get(expr.pairs)
        dim = P.PairsDim(expr.pairs, pairs.systems if pairs else "?")
        shapes = (1, 2) if expr.field == "vector" else (1,)
        what = f"`{expr.pairs}.{expr.field}`"
        free, counted = self._data_indices(expr, what, shapes)
        if not counted:
            return free
        for position, arg in enumerate(expr.indices):
            self.check_slot(arg, dim if position == 0 else P.XyzDim(), f"slot {position + 1} of {what}")
        return free

    def _BlockRef(self, expr: P.BlockRef) -> Free:
        free: Free = {}
        for _, value in expr.keys:
            _merge(free, self.visit(value))
        for arg in expr.indices:
            _merge(free, self.visit(arg))
        source = expr.source
        given = dict(expr.keys)
        spans = dict(zip((label for label, _ in expr.keys), expr.key_spans))
        mapping: dict = {}
        if isinstance(source, P.TensorMapInput):
            for label, value in expr.keys:
                if label not in source.keys:
                    self.error("E205", spans.get(label, expr.span),
                               f"tensormap input `{source.name}` has no key `{label}`",
                               hint=did_you_mean(label, source.keys)
                               or f"its keys are ({', '.join(source.keys)})")
                else:
                    self.check_slot(value, None, f"key `{label}` of `{source.name}`")
                    mapping[label] = value
            missing = [label for label in source.keys if label not in given]
            unknown = [label for label in given if label not in source.keys]
            if missing and not unknown:  # with a misspelled label, E205 says it all
                self.error("E203", expr.span,
                           f"block access to `{source.name}` does not bind key(s) {', '.join(missing)}",
                           hint=f"write `{source.name}{{{', '.join(f'{k} = ...' for k in source.keys)}}}[...]`")
        else:
            labels = [entry.label for entry in source.keys]
            for label, value in expr.keys:
                entry = next((e for e in source.keys if e.label == label), None)
                if entry is None:
                    self.error("E101", spans.get(label, expr.span), f"tensor `{source.name}` has no key `{label}`",
                               did_you_mean(label, labels)
                               or (f"its keys are ({', '.join(labels)})" if labels else "it has a single block"))
                    continue
                slot_dim = entry.value.type.dim if not isinstance(entry.value, P.Const) else None
                self.check_slot(value, slot_dim, f"key `{label}` of `{source.name}`")
                if isinstance(entry.value, P.IndexRef):
                    mapping[entry.value.index] = value
            unknown = [label for label in given if label not in labels]
            for entry in source.keys:
                if entry.label in given or unknown:
                    continue
                if not isinstance(entry.value, P.Invalid) and not _single_valued(entry.value, source):
                    self.error("E203", expr.span,
                               f"block access to `{source.name}` does not bind key `{entry.label}`, which has "
                               "more than one value",
                               hint=f"add `{entry.label} = ...` inside the braces")
        slots = source.slots
        if len(expr.indices) != len(slots):
            shown = ", ".join("/".join(slot.labels) if len(slot.labels) > 1 else slot.labels[0] for slot in slots)
            self.error("E203", expr.span,
                       f"`{source.name}` takes {len(slots)} indices ({shown}), found {len(expr.indices)}")
            return free
        if isinstance(source, P.Tensor):
            for slot, arg in zip(slots, expr.indices):
                if isinstance(slot.value, P.IndexRef):
                    mapping.setdefault(slot.value.index, arg)
        for slot, arg in zip(slots, expr.indices):
            dim = P.substitute_dim(slot.dim, mapping) if slot.dim is not None else None
            if isinstance(dim, P.IrrepDim) and any(isinstance(n, P.KeyLabel) for n in _nodes(dim.degree)):
                dim = None  # the degree is not bound: E203 above
            self.check_slot(arg, dim, f"slot `{'/'.join(slot.labels)}` of `{source.name}`")
        return free

    def _Sum(self, expr: P.Sum) -> Free:
        free: Free = {}
        for binder in expr.binders:
            if isinstance(binder.domain, P.PairsFrom):
                atom = binder.domain.atom
                _merge(free, self.visit(atom))
                pairs = self.program.pairs.get(binder.domain.pairs)
                if pairs is not None:
                    self.check_slot(atom, P.AtomsDim(pairs.systems), f"the atom of `{binder.domain.pairs}.from`")
            for dep in _dim_refs(binder.index.dim):
                free.setdefault(dep, (binder.span, binder.index))
        if expr.where is not None:
            self.expect_bool(expr.where, "a `where` condition")
            _merge(free, self.visit(expr.where))
        _merge(free, self.visit(expr.body))
        if expr.body.type.kind not in ("int", "float", "vector", "unknown"):
            self.error("E201", expr.body.span, f"a sum adds numbers, found {expr.body.type}")
        for binder in expr.binders:
            free.pop(binder.index, None)
        return free


def _single_valued(value: P.Expr, tensor: P.Tensor) -> bool:
    """Whether a key entry takes one value over the tensor's iteration domain
    (a constant, or an expression that the `where` condition pins down)."""
    if evaluate(value) is not UNKNOWN:
        return True
    conditions = [tensor.where] if tensor.where is not None else []
    variables, used = closure(refs_of(value), conditions)
    seen = set()
    try:
        for env in points(variables, used):
            result = evaluate(value, env)
            if result is UNKNOWN:
                return False
            seen.add(result)
            if len(seen) > 1:
                return False
    except TooManyPoints:
        return False
    return len(seen) == 1


def _nodes(expr: P.Expr):
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(P.children(node))


def _refs(expr: P.Expr) -> list[P.IndexRef]:
    return [node for node in _nodes(expr) if isinstance(node, P.IndexRef)]


def _dim_refs(dim: P.Dim) -> list[P.Index]:
    if isinstance(dim, P.IrrepDim):
        return [ref.index for ref in _refs(dim.degree)]
    return []


def check_dims(program: P.Program, reporter: Reporter) -> None:
    """Run the dimension and metadata checks, adding diagnostics to ``reporter``."""
    DimChecker(program, reporter).run()


def params_needing_species(program: P.Program) -> list[tuple[P.Param, P.Index]]:
    """The params (with the offending index) whose shape depends on `species(S)`:
    `compile` raises E206 for them when no species were given."""
    found = []
    for param in program.params.values():
        for index in param.indices:
            if isinstance(index.dim, P.SpeciesDim):
                found.append((param, index))
                break
    return found
