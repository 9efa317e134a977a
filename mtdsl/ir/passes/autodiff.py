"""Forward-mode differentiation of the loop IR: gradient kernels for gradient blocks.

The derivative of an expression `E` with respect to positions (or strain, or
the cell) is kept *sparse*: a sum of `Term`s, each meaning

    dE / dx[t, d...] = sum over the term's binders (where `where` holds)
                       of [target == t] * coefficient(d...)

`t` is the moved atom (positions) or the system (strain, cell); `d...` are the
direction variables (`DIRECTIONS[wrt]`): one xyz axis for positions, two for
strain and cell. The coefficient is an ordinary IR expression of the program's
variables, of the term's binders and of the direction variables. A term's
`aliases` replace variables of enclosing scopes by expressions of its binders:
once `sum(p in P.from(i))` is differentiated, the pair `p` stays a free binder
of the term (its target, `P.second[p]`, depends on it) and the centre `i`
becomes `P.first[p]`. So a gradient is never a dense atoms x pairs array: it is
evaluated over the pairs and scattered to (sample, atom) at the very end.

Rules (positions; `u = P.vector[p] / P.distance[p]`):

- `S.positions[e]` -> `e_d` at atom `e`;
- `P.vector[p]` -> `e_d` at `P.second[p]`, `-e_d` at `P.first[p]`;
- `P.distance[p]` -> `u_d` at `P.second[p]`, `-u_d` at `P.first[p]`;
- strain (`r -> r (1 + eps)`, `H -> H (1 + eps)`, directions `(a, b)`):
  `d v_c / d eps_ab = v_a [b == c]` for positions, pair vectors and the
  rows of the cell; `d |v| / d eps_ab = v_a v_b / |v|`; all at the system;
- cell (`H`, positions fixed, directions `(x, a)`): `d v_c / d H_ax =
  shift_a [x == c]` for pair vectors, `d H_rc / d H_ax = [r == a][c == x]`;
- sums, products, quotients, powers, `?:` and calls by the chain rule; the
  built-ins' derivatives are the calls `d_sph` (vector), `d_soap_radial`,
  `d_cosine_cutoff`, `d_gto` (d/dr) and elementary expressions;
- `T{...}[...]` of a tensor computed earlier reads T's own gradient: a binder
  `g` over the rows of T's gradient blocks (`GradRows`), whose keys and sample
  (`GradLabel`) alias the variables of the access, and the values
  (`GradValue`) gathered at the access's components and properties;
- parameters, input tensormaps, integer data and constants have no gradient.

Comparisons, `and`/`or`/`not` and `where` conditions are piecewise constant:
what they select is differentiated branch by branch (`d(c ? a : b) = c ? da : db`,
as `jax.numpy.where`), and `a % b` as `a - b floor(a / b)`. Asking for a gradient
an output does not have is an `AutodiffError`, raised when the model is compiled.

The nodes this pass gives (`Term`, `GradientKernel`, `GradRows`, `GradLabel`, `GradValue`,
`UnitVector`) are the derivative IR of `mtdsl/ir/derivative_nodes.py`; the variables an
expression reads are `mtdsl/ir/walk.py: free_vars`.
"""

from __future__ import annotations

import functools
import itertools
from typing import Optional

from mtdsl import builtins
# the simplifying IR builders, written once with the built-ins' derivatives
from mtdsl.builtins.spec import ONE, ZERO, is_one
from mtdsl.builtins.spec import mul as _mul
from mtdsl.builtins.spec import neg as _neg
from mtdsl.errors import AutodiffError  # defined with the other errors; importable from here as before

from .. import nodes as ir
from ..derivative_nodes import GradientKernel, GradLabel, GradRows, GradValue, Term, UnitVector
from ..walk import conjuncts, domain_vars, free_vars

WRT = ("positions", "strain", "cell")

#: the direction variables of each gradient (names that are never identifiers)
DIRECTIONS = {"positions": ("·α",), "strain": ("·α", "·β"), "cell": ("·α", "·β")}

#: derivative built-ins (d/dr, or d/dv for `d_sph`), added to the IR's functions
DERIVATIVE_FUNCTIONS = ("d_sph", "d_soap_radial", "d_cosine_cutoff", "d_gto")


# ---- small constructors ------------------------------------------------------------------------

def _div(a, b):
    return a if is_one(b) else ir.Binary("div", a, b)


def _and(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return ir.Binary("and", a, b)


def _eq(a, b):
    return ir.Binary("eq", a, b)


def _indicator(condition):
    return ir.Select(condition, ONE, ZERO)


# ---- substitution ----------------------------------------------------------------------------


def substitute(expr, mapping: dict, nodes: Optional[dict] = None):
    """`expr` with the variables named in `mapping` replaced by expressions (not under a binder
    of the same name), and the sub-expressions that are keys of `nodes` by their values."""
    if expr is None or (not mapping and not nodes):
        return expr
    if nodes and expr in nodes:
        return nodes[expr]

    def sub(e, m=mapping):
        return substitute(e, m, nodes)

    def slot(s):
        return ir.Slot(s.kind, sub(s.expr), s.source)

    if isinstance(expr, ir.Var):
        return mapping.get(expr.name, expr)
    if isinstance(expr, ir.Const):
        return expr
    if isinstance(expr, ir.Reduce):
        binders = []
        inner = dict(mapping)
        for binder in expr.binders:
            domain = binder.domain
            if isinstance(domain, ir.PairsFrom):
                domain = ir.PairsFrom(domain.pairs, sub(domain.atom, inner))
            elif isinstance(domain, ir.IrrepDomain):
                domain = ir.IrrepDomain(sub(domain.degree, inner), domain.max_degree)
            binders.append(ir.Binder(binder.name, domain))
            inner.pop(binder.name, None)
        return ir.Reduce(tuple(binders), sub(expr.body, inner), sub(expr.where, inner))
    if isinstance(expr, ir.BlockRef):
        return ir.BlockRef(expr.tensor, tuple((k, sub(v)) for k, v in expr.keys), tuple(map(slot, expr.samples)),
                           tuple(map(slot, expr.components)), tuple(map(slot, expr.properties)))
    if isinstance(expr, GradValue):
        return GradValue(expr.tensor, expr.wrt, sub(expr.row), tuple(sub(d) for d in expr.directions),
                         tuple(map(slot, expr.components)), tuple(map(slot, expr.properties)))
    if isinstance(expr, ir.Data):
        return ir.Data(expr.source, expr.field, tuple(sub(i) for i in expr.index))
    if isinstance(expr, ir.ParamRef):
        return ir.ParamRef(expr.name, tuple(sub(i) for i in expr.index))
    if isinstance(expr, ir.Unary):
        return ir.Unary(expr.op, sub(expr.operand))
    if isinstance(expr, ir.Binary):
        return ir.Binary(expr.op, sub(expr.left), sub(expr.right))
    if isinstance(expr, ir.Select):
        return ir.Select(sub(expr.condition), sub(expr.if_true), sub(expr.if_false))
    if isinstance(expr, ir.Call):
        return ir.Call(expr.function, tuple(sub(a) for a in expr.args), expr.options)
    if isinstance(expr, UnitVector):
        return UnitVector(sub(expr.direction))
    if isinstance(expr, GradLabel):
        return GradLabel(expr.tensor, expr.wrt, sub(expr.row), expr.what, expr.label, expr.slot)
    raise TypeError(f"unknown IR node {type(expr).__name__}")


# ---- the differentiation -------------------------------------------------------------------------


def differentiate(module: ir.Module, wrt: str, outputs=None) -> dict[str, GradientKernel]:
    """Gradient kernels w.r.t. `wrt` of the `outputs` (default: those declaring `wrt`) and of
    every kernel they read that depends on `wrt`, in the module's order.

    Raises `AutodiffError` when an output does not depend on `wrt`, or only through
    something that has no derivative.
    """
    if wrt not in WRT:
        raise AutodiffError(f"unknown gradient {wrt!r}: gradients are taken w.r.t. {', '.join(WRT)}")
    if outputs is None:
        outputs = [o.name for o in module.outputs if wrt in o.gradients]
    differentiator = _Differentiator(module, wrt)
    for name in outputs:
        if differentiator.kernel(name) is None:
            raise AutodiffError(
                f"output {name} does not depend on {_INPUT_NAMES[wrt]}: it has no gradient with respect to "
                f"{wrt} (remove `{wrt}` from its `with gradients(...)`)"
            )
    found = differentiator.kernels
    return {k.name: found[k.name] for k in module.kernels if found.get(k.name) is not None}


def gradient_kernel(module: ir.Module, wrt: str, name: str) -> Optional[GradientKernel]:
    """The gradient kernel of tensor `name` w.r.t. `wrt`, None when it does not depend on `wrt`
    (an `AutodiffError` when it depends on it through something that has no derivative)."""
    return _Differentiator(module, wrt).kernel(name)


_INPUT_NAMES = {"positions": "the positions", "strain": "the positions or the cell", "cell": "the cell"}


class _Differentiator:
    def __init__(self, module: ir.Module, wrt: str):
        self.module = module
        self.wrt = wrt
        self.directions = tuple(ir.Var(d) for d in DIRECTIONS.get(wrt, ()))
        self.input_name = _INPUT_NAMES.get(wrt, wrt)
        self.kernels: dict[str, Optional[GradientKernel]] = {}
        self.tensors = {k.name: k for k in module.kernels}
        self.pairs_systems = {p.name: p.systems for p in module.pairs}
        self.counter = itertools.count(1)
        self.context = ""
        self.cache: dict = {}

    # -- kernels -----------------------------------------------------------------------------------
    def kernel(self, name: str) -> Optional[GradientKernel]:
        if name in self.kernels:
            return self.kernels[name]
        self.kernels[name] = None  # a cycle would read no gradient (there are none: kernels are ordered)
        kernel = self.tensors[name]
        outer, self.context = self.context, f"tensor {name}"
        try:
            if kernel.where is not None:
                self.require_constant(kernel.where, "its `where` condition")
            for entry in kernel.keys + kernel.samples + kernel.components + kernel.properties:
                self.require_constant(entry.expr, f"its label `{entry.label}`")
            terms = [self.kernel_term(kernel, t) for t in self.terms(kernel.body)]
        finally:
            self.context = outer
        result = GradientKernel(name, self.wrt, DIRECTIONS.get(self.wrt, ()), tuple(terms)) if terms else None
        self.kernels[name] = result
        return result

    def kernel_term(self, kernel: ir.TensorKernel, term: Term) -> Term:
        aliases = list(term.aliases)
        aliased = {n for n, _ in aliases}
        where = term.where
        # `where s == X` with `s` a kernel index: `s` follows X instead of being iterated
        known = {b.name for b in term.binders} | aliased
        for conjunct in conjuncts(_and(kernel.where, where)):
            if not (isinstance(conjunct, ir.Binary) and conjunct.op == "eq"):
                continue
            for var, other in ((conjunct.left, conjunct.right), (conjunct.right, conjunct.left)):
                if (isinstance(var, ir.Var) and var.name not in aliased
                        and any(b.name == var.name for b in kernel.indices)
                        and free_vars(other) <= known and not isinstance(
                            next(b.domain for b in kernel.indices if b.name == var.name), ir.IrrepDomain)):
                    aliases.append((var.name, other))
                    aliased.add(var.name)
                    known.add(var.name)
                    break
        # an index that an alias fixes is not iterated: its value must still lie in its domain
        for binder in kernel.indices:
            if binder.name in aliased:
                where = _and(where, _domain_condition(binder, aliases))
        return Term(term.binders, tuple(aliases), where, term.target, term.coefficient)

    # -- errors --------------------------------------------------------------------------------------
    def fail(self, what: str):
        where = f" {self.context}" if self.context else ""
        raise AutodiffError(f"cannot differentiate{where} with respect to {self.wrt}: {what}")

    def require_constant(self, expr, what: str) -> None:
        try:
            terms = self.terms(expr)
        except AutodiffError as error:
            raise AutodiffError(f"{error} (in {what})") from None
        if terms:
            self.fail(f"{what} ({expr}) depends on {self.input_name}")

    # -- expressions -------------------------------------------------------------------------------
    def terms(self, expr) -> list[Term]:
        if expr not in self.cache:
            self.cache[expr] = getattr(self, f"_d_{type(expr).__name__}")(expr)
        return self.cache[expr]

    def _d_Const(self, expr):
        return []

    def _d_Var(self, expr):
        return []

    def _d_ParamRef(self, expr):
        return []

    def _d_Data(self, expr: ir.Data):
        return getattr(self, f"_data_{self.wrt}")(expr)

    def _d_BlockRef(self, expr: ir.BlockRef):
        if expr.tensor not in self.tensors or self.kernel(expr.tensor) is None:
            return []  # input tensormaps are constants
        row = ir.Var(f"·g{next(self.counter)}")
        tensor = expr.tensor
        aliases, conditions, aliased = [], [], set()

        def match(value, label: GradLabel):
            if isinstance(value, ir.Var) and value.name not in aliased:
                aliases.append((value.name, label))
                aliased.add(value.name)
            else:
                conditions.append(_eq(value, label))

        for key, value in expr.keys:
            match(value, GradLabel(tensor, self.wrt, row, "key", label=key))
        for k, slot in enumerate(expr.samples):
            match(slot.expr, GradLabel(tensor, self.wrt, row, "sample", slot=k))
        where = None
        for condition in conditions:
            where = _and(where, condition)
        value = GradValue(tensor, self.wrt, row, self.directions, expr.components, expr.properties)
        target = GradLabel(tensor, self.wrt, row, "target")
        return [Term((ir.Binder(row.name, GradRows(tensor, self.wrt)),), tuple(aliases), where, target, value)]

    def _d_Unary(self, expr: ir.Unary):
        terms = self.terms(expr.operand)
        if expr.op == "not":
            return []  # piecewise constant
        return _scale(terms, _neg)

    def _d_Binary(self, expr: ir.Binary):
        op = expr.op
        left, right = self.terms(expr.left), self.terms(expr.right)
        if op == "add":
            return _merge(left + right)
        if op == "sub":
            return _merge(left + _scale(right, _neg))
        if op == "mul":
            return _merge(_scale(left, lambda c: _mul(c, expr.right)) + _scale(right, lambda c: _mul(expr.left, c)))
        if op == "div":
            denominator = expr.right
            square = ir.Binary("mul", denominator, denominator)
            return _merge(_scale(left, lambda c: _div(c, denominator))
                          + _scale(right, lambda c: _neg(_mul(_div(expr.left, square), c))))
        if op == "pow":
            result = []
            if left:
                exponent = expr.right
                power = ir.Binary("pow", expr.left, ir.Binary("sub", exponent, ONE))
                result += _scale(left, lambda c: _mul(_mul(exponent, power), c))
            if right:
                log = ir.Call("log", (expr.left,))
                result += _scale(right, lambda c: _mul(_mul(expr, log), c))
            return _merge(result)
        if op == "mod":
            # a % b = a - b floor(a / b): floor is piecewise constant
            quotient = ir.Call("floor", (ir.Binary("div", expr.left, expr.right),))
            return _merge(left + _scale(right, lambda c: _neg(_mul(quotient, c))))
        # comparisons and `and`/`or`: piecewise constant, so their derivative is 0 almost
        # everywhere; what they select is differentiated branch by branch (`_d_Select`)
        return []

    def _d_Select(self, expr: ir.Select):
        # branchwise, as `jax.numpy.where`: d(c ? a : b) = c ? da : db, the condition held fixed
        yes, no = self.terms(expr.if_true), self.terms(expr.if_false)
        return _merge(_scale(yes, lambda c: ir.Select(expr.condition, c, ZERO))
                      + _scale(no, lambda c: ir.Select(expr.condition, ZERO, c)))

    def _d_Call(self, expr: ir.Call):
        name, args = expr.function, expr.args
        if name in DERIVATIVE_FUNCTIONS:
            if any(self.terms(a) for a in args):
                self.fail(f"second derivatives ({name}) are not available")
            return []
        builtin = builtins.lookup(name)  # its derivative rule (mtdsl/builtins/)
        if builtin is not None and builtin.piecewise_constant:  # derivative 0 almost everywhere
            return []
        if builtin is not None and builtin.bilinear:  # d f(u, v) = f(du, v) + f(u, dv)
            u, v = args
            return _merge(_scale(self.terms(u), lambda c: ir.Call(name, (c, v)))
                          + _scale(self.terms(v), lambda c: ir.Call(name, (u, c))))
        if builtin is not None and builtin.partials is not None and len(args) > 1:
            # scalar functions of several arguments: the chain rule per argument
            result = []
            for arg, partial in zip(args, builtin.partials(*args)):
                result += _scale(self.terms(arg), lambda c, partial=partial: _mul(partial, c))
            return _merge(result)
        first = self.terms(args[0]) if args else []
        for index, arg in enumerate(args):
            if index > 0 and self.terms(arg):
                self.fail(f"argument {index + 1} of {name}() depends on {self.input_name}")
        if not first:
            return []
        x = args[0]
        if builtin is not None and builtin.partials is not None:
            (derivative,) = builtin.partials(x)
            return _scale(first, lambda c: _mul(derivative, c))
        if name == "norm":
            return _scale(first, lambda c: _div(ir.Call("dot", (x, c)), expr))
        if name == "to_irrep":  # linear in the vector
            return _scale(first, lambda c: ir.Call("to_irrep", (c,) + args[1:]))
        if name == "sph":
            gradient = ir.Call("d_sph", args, expr.options)
            return _scale(first, lambda c: ir.Call("dot", (gradient, c)))
        if name in ("gto", "cosine_cutoff", "soap_radial"):
            derivative = ir.Call(f"d_{name}", args, expr.options)
            return _scale(first, lambda c: _mul(derivative, c))
        self.fail(f"{name}() has no derivative")

    def _d_Reduce(self, expr: ir.Reduce):
        terms = self.terms(expr.body)
        if not terms:
            return []
        if expr.where is not None:
            self.require_constant(expr.where, "a `where` condition of a sum")
        return _merge([self.reduce_term(expr, t) for t in terms])

    def reduce_term(self, expr: ir.Reduce, term: Term) -> Term:
        """A term of a sum's body as a term of the sum: binders the term's target (or its
        aliases) depend on stay free binders of the term; the others are summed inside."""
        binders, aliases, where = list(term.binders), list(term.aliases), term.where
        aliased = {n for n, _ in aliases}
        names = [b.name for b in expr.binders]
        # inside `p in P.from(i)`, `P.first[p]` is `i`: a target at the centre (or its system)
        # does not depend on the pair, so the pair is summed inside (a CSR segment)
        centres = {ir.Data(b.domain.pairs, "first", (ir.Var(b.name),)): b.domain.atom
                   for b in expr.binders if isinstance(b.domain, ir.PairsFrom)}
        target = substitute(term.target, {}, centres) if centres else term.target
        if not (free_vars(target) & {b.name for b in expr.binders if isinstance(b.domain, ir.PairsFrom)}):
            term = Term(term.binders, term.aliases, term.where, target, term.coefficient)
        needed = free_vars(term.target) | (free_vars(term.where) if term.where is not None else frozenset())
        for _, alias in aliases:
            needed |= free_vars(alias)
        escaping = {n for n in names if n in needed and n not in aliased}
        changed = True
        while changed:  # an escaping binder's domain needs the binders it depends on
            changed = False
            for binder in expr.binders:
                if binder.name in escaping:
                    for name in domain_vars(binder.domain):
                        if name in names and name not in escaping and name not in aliased \
                                and not isinstance(binder.domain, ir.PairsFrom):
                            escaping.add(name)
                            changed = True
        conditions = []
        # pairs first: `p in P.from(i)` escaping makes `i` follow `P.first[p]`
        ordered = sorted(expr.binders, key=lambda b: not isinstance(b.domain, ir.PairsFrom))
        for binder in ordered:
            if binder.name in aliased:
                conditions.append(_domain_condition(binder, aliases))
            elif binder.name in escaping:
                domain = binder.domain
                if isinstance(domain, ir.PairsFrom):
                    binders.append(ir.Binder(binder.name, ir.PairsDomain(domain.pairs)))
                    first = ir.Data(domain.pairs, "first", (ir.Var(binder.name),))
                    atom = domain.atom
                    if isinstance(atom, ir.Var) and atom.name not in aliased and atom.name not in escaping:
                        aliases.append((atom.name, first))
                        aliased.add(atom.name)
                    elif isinstance(atom, ir.Var) and atom.name in aliased:
                        # in terms of the term's binders, so the runtime can join instead of masking
                        conditions.append(_eq(first, dict(aliases)[atom.name]))
                    else:
                        conditions.append(_eq(first, atom))
                else:
                    binders.append(binder)
        inner = tuple(b for b in expr.binders if b.name not in aliased and b.name not in escaping)
        coefficient = term.coefficient
        if inner:
            coefficient = _sum_of(inner, coefficient, expr.where)
        else:
            where = _and(where, expr.where)
        for condition in conditions:
            where = _and(where, condition)
        return Term(tuple(binders), tuple(aliases), where, term.target, coefficient)

    # -- data: positions ------------------------------------------------------------------------------
    def _data_positions(self, expr: ir.Data):
        alpha = self.directions[0]
        if expr.field == "positions":
            atom = expr.index[0]
            return [Term((), (), None, atom, self._unit(expr, alpha))]
        if expr.field in ("vector", "distance") and expr.source in self.pairs_systems:
            p = expr.index[0]
            first = ir.Data(expr.source, "first", (p,))
            second = ir.Data(expr.source, "second", (p,))
            if expr.field == "vector":
                coefficient = self._unit(expr, alpha)
            else:
                coefficient = _div(ir.Data(expr.source, "vector", (p, alpha)), expr)
            return [Term((), (), None, second, coefficient), Term((), (), None, first, _neg(coefficient))]
        return []

    def _unit(self, expr: ir.Data, direction):
        """d v / d v_direction: a unit vector, or for `v[c]` the indicator `c == direction`."""
        if len(expr.index) == 2:
            return _indicator(_eq(expr.index[1], direction))
        return UnitVector(direction)

    # -- data: strain -----------------------------------------------------------------------------------
    def _data_strain(self, expr: ir.Data):
        alpha, beta = self.directions
        if expr.field == "positions":
            atom = expr.index[0]
            system = ir.Data(expr.source, "system", (atom,))
            return [Term((), (), None, system, _mul(ir.Data(expr.source, "positions", (atom, alpha)), self._unit(expr, beta)))]
        if expr.field == "cell":
            s, row, column = expr.index
            value = ir.Data(expr.source, "cell", (s, row, alpha))
            return [Term((), (), None, s, _mul(value, _indicator(_eq(column, beta))))]
        if expr.field in ("vector", "distance") and expr.source in self.pairs_systems:
            return self._pair_terms(expr, ir.Data(expr.source, "vector", (expr.index[0], alpha)), beta)
        return []

    # -- data: cell (positions fixed) -----------------------------------------------------------------------
    def _data_cell(self, expr: ir.Data):
        x, a = self.directions
        if expr.field == "cell":
            s, row, column = expr.index
            coefficient = _indicator(_and(_eq(row, a), _eq(column, x)))
            return [Term((), (), None, s, coefficient)]
        if expr.field in ("vector", "distance") and expr.source in self.pairs_systems:
            return self._pair_terms(expr, ir.Data(expr.source, "cell_shift", (expr.index[0], a)), x)
        return []

    def _pair_terms(self, expr: ir.Data, factor, direction):
        """The term of a pair's vector or distance (``expr``) when the vector moves by
        ``factor`` along ``direction``: ``factor * [y == direction]`` for ``vector[p, y]``,
        ``factor * vector[p, direction] / distance`` for the distance."""
        p = expr.index[0]
        system = self._pair_system(expr.source, p)
        if expr.field == "vector":
            coefficient = _mul(factor, self._unit(expr, direction))
        else:
            coefficient = _div(_mul(factor, ir.Data(expr.source, "vector", (p, direction))), expr)
        return [Term((), (), None, system, coefficient)]

    def _pair_system(self, pairs: str, p):
        return ir.Data(self.pairs_systems[pairs], "system", (ir.Data(pairs, "first", (p,)),))


# ---- derivatives with respect to the entries of a computed tensor ------------------------------------

TENSOR_PREFIX = "tensor:"


def tensor_wrt(tensor: str) -> str:
    """The `wrt` of a derivative with respect to the entries of the computed tensor `tensor`."""
    return f"{TENSOR_PREFIX}{tensor}"


def differentiate_tensor(module: ir.Module, kernel: str, tensor: str) -> Optional[GradientKernel]:
    """The partial derivative of the entries of kernel `kernel` with respect to the entries of the
    computed tensor `tensor` it reads, None when it does not read it (in a differentiable place).

    Each term means `dK[entry] / dU[e] = sum over its binders (where it holds) of [target == e] *
    coefficient`, where the *target* is the accessed entry itself: the `ir.BlockRef` of `tensor`
    as `kernel` reads it (keys, samples, components and properties as expressions of the kernel's
    indices, of the term's binders and of its aliases); no direction variables. `_d_BlockRef` of
    `tensor` gives a term of coefficient 1 at that access; the chain rule, and the sums whose
    binders the target reads (they escape: `m` in the power spectrum), are those of the
    positions. Everything else is held fixed: the positions and the cell, parameters, and the
    other computed tensors (even those computed from `tensor`: a partial derivative, as the
    reverse sweep of `runtime/gradients/native_products.py` needs it). Conditions on values read from
    `tensor` are branchwise, as for the positions; a label of them is not differentiable
    (`AutodiffError`)."""
    if tensor not in {k.name for k in module.kernels}:
        raise AutodiffError(f"{tensor} is not a computed tensor of module {module.name}")
    return _TensorDifferentiator(module, tensor).kernel(kernel)


class _TensorDifferentiator(_Differentiator):
    """Derivatives with respect to the entries of one computed tensor (`differentiate_tensor`)."""

    def __init__(self, module: ir.Module, tensor: str):
        super().__init__(module, tensor_wrt(tensor))
        self.tensor = tensor
        self.input_name = f"the entries of {tensor}"

    def kernel(self, name: str) -> Optional[GradientKernel]:
        if name == self.tensor:
            raise AutodiffError(f"{name} does not read itself")
        return super().kernel(name)

    def _d_Data(self, expr: ir.Data):
        return []

    def _d_BlockRef(self, expr: ir.BlockRef):
        if expr.tensor != self.tensor:
            return []  # other tensors are held fixed
        return [Term((), (), None, expr, ONE)]


def _product_factors(expr, inverted: bool = False) -> list:
    """The factors of a product/quotient tree, each with whether it divides."""
    if isinstance(expr, ir.Binary) and expr.op == "mul":
        return _product_factors(expr.left, inverted) + _product_factors(expr.right, inverted)
    if isinstance(expr, ir.Binary) and expr.op == "div":
        return _product_factors(expr.left, inverted) + _product_factors(expr.right, not inverted)
    return [(expr, inverted)]


def _rebuild(factors):
    numerator = [e for e, inverted in factors if not inverted]
    denominator = [e for e, inverted in factors if inverted]
    result = functools.reduce(_mul, numerator) if numerator else ONE
    if denominator:
        result = ir.Binary("div", result, functools.reduce(_mul, denominator))
    return result


def _sum_of(binders, body, where):
    """`sum(binders where where) body`, with the factors of `body` that do not depend on
    the binders taken out of the sum (a gradient row's value is not re-read per pair)."""
    names = {b.name for b in binders}
    outside, inside = [], []
    for factor in _product_factors(body):
        (inside if free_vars(factor[0]) & names else outside).append(factor)
    if not outside or not inside:
        return ir.Reduce(tuple(binders), body, where)
    result = ir.Reduce(tuple(binders), _rebuild(inside), where)
    return _rebuild([(e, False) for e, inverted in outside if not inverted] + [(result, False)]
                    + [(e, True) for e, inverted in outside if inverted])


def _scale(terms: list[Term], function) -> list[Term]:
    return [Term(t.binders, t.aliases, t.where, t.target, function(t.coefficient)) for t in terms]


def _merge(terms: list[Term]) -> list[Term]:
    """Terms with the same binders, aliases, condition and target, added into one."""
    merged: dict = {}
    for term in terms:
        key = (term.binders, term.aliases, term.where, term.target)
        if key in merged:
            merged[key] = ir.Binary("add", merged[key], term.coefficient)
        else:
            merged[key] = term.coefficient
    return [Term(b, a, w, t, c) for (b, a, w, t), c in merged.items()]


def _domain_condition(binder: ir.Binder, aliases) -> Optional[ir.Expr]:
    """The condition that an aliased variable's value lies in its binder's domain."""
    x = ir.Var(binder.name)
    domain = binder.domain
    if isinstance(domain, ir.RangeDomain):
        return _and(ir.Binary("ge", x, ir.Const(domain.start)), ir.Binary("lt", x, ir.Const(domain.stop)))
    if isinstance(domain, ir.IrrepDomain):
        return _and(ir.Binary("ge", x, _neg(domain.degree)), ir.Binary("le", x, domain.degree))
    if isinstance(domain, ir.XyzDomain):
        return _and(ir.Binary("ge", x, ir.Const(0)), ir.Binary("lt", x, ir.Const(3)))
    if isinstance(domain, ir.PairsFrom):
        return _eq(ir.Data(domain.pairs, "first", (x,)), domain.atom)
    return None


def module_gradients(module: ir.Module) -> dict[str, dict[str, GradientKernel]]:
    """For each gradient some output declares, the gradient kernels (compile-time checks included)."""
    declared = []
    for output in module.outputs:
        for wrt in output.gradients:
            if wrt not in declared:
                declared.append(wrt)
    return {wrt: differentiate(module, wrt) for wrt in declared}

