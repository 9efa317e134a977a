"""Equivariance checking of a resolved program (LANGUAGE.md §4).

Every expression gets an :class:`Eq`: its free component indices (each with
the representation of its slot and how many factors carry it), its parity
``sigma`` (metatensor's o3_sigma: the parity relative to (-1)^l, possibly a
function of index values), and the conditions under which it is non-zero
(`where` filters of sums inside it, triangle rules of `cg`).  The rules:

- `P.vector`, `S.positions` are proper vectors (o3_sigma 1); `sph(v, l, m)` has
  o3_sigma 1 (parity (-1)^l); a product's sigma is the product of its factors';
- `cg(l1, m1, l2, m2, L, M)` couples (l1) x (l2) -> (L) with
  sigma (-1)^(l1 + l2 + L); `sum(m) A[m] B[m]` contracts two irrep(l) factors;
- a component index of irrep(l) with l restricted to 0 counts as invariant.

Reports E301 (`+`/`-` of operands with different components or parity), E302
(non-linear function of a non-invariant operand), E303 (a sum over a component
index that is not contracted), E304 (a component index twice in a product and
not summed), E305 (a param indexed by a component index), E306 (declared
o3_sigma / component irrep differs from the computed one), E307 (`cg` that can
never satisfy the triangle rule, or with m indices of the wrong irreps) and
W401 (an output key value that never receives a contribution).

Questions that depend on index values are answered by enumerating the finite
domains (:mod:`mtdsl.lang.evaluate`) under every applicable `where`
condition; an error is reported only for a definite counterexample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from . import program as P
from .builtins import BUILTINS
from .checker import ProgramChecker
from .diagnostics import Reporter
from .evaluate import (
    UNKNOWN, TooManyPoints, always, closure, dim_values, evaluate, memoized, points, refs_of,
)
from .irreps import Irrep
from .resolve import dispatch, dims_fit, is_unknown_dim

# ---- parity -----------------------------------------------------------------------------------




@dataclass(frozen=True, slots=True)
class Sigma:
    """``sign * prod((-1)^e for e in exponents) * prod(f for f in factors)``;
    factors are expressions valued ±1 (a declared o3_sigma)."""

    sign: int = 1
    exponents: tuple = ()
    factors: tuple = ()

    def __mul__(self, other: "Sigma") -> "Sigma":
        return Sigma(self.sign * other.sign, self.exponents + other.exponents, self.factors + other.factors)

    def power(self, k: int) -> "Sigma":
        return ONE if k % 2 == 0 else self

    def value(self, env: dict) -> Optional[int]:
        result = self.sign
        for exponent in self.exponents:
            value = evaluate(exponent, env)
            if value is UNKNOWN or not isinstance(value, int):
                return None
            result *= -1 if value % 2 else 1
        for factor in self.factors:
            value = evaluate(factor, env)
            if value is UNKNOWN or value not in (1, -1):
                return None
            result *= value
        return result

    def variables(self) -> list[P.Index]:
        found: list[P.Index] = []
        for expr in self.exponents + self.factors:
            found.extend(refs_of(expr))
        return found

    @property
    def is_constant(self) -> bool:
        return not self.exponents and not self.factors


ONE = Sigma()


@dataclass(frozen=True, slots=True)
class Eq:
    """How an expression transforms.  ``comps``: {Index: (count, rep)} with rep
    the dimension of the component slot it fills; ``vector``: an unindexed
    Cartesian vector; ``unknown``: could not be analysed (error elsewhere)."""

    comps: dict = field(default_factory=dict)
    sigma: Sigma = ONE
    conds: tuple = ()
    vector: bool = False
    unknown: bool = False


INVARIANT = Eq()
UNKNOWN_EQ = Eq(unknown=True)


def _rep_name(rep: P.Dim) -> str:
    return str(rep)


# ---- the checker --------------------------------------------------------------------------------


@dataclass
class _Ctx:
    conds: tuple = ()
    summed: frozenset = frozenset()

    def with_sum(self, binders, where) -> "_Ctx":
        conds = self.conds + ((where,) if where is not None else ())
        return _Ctx(conds, self.summed | {b.index for b in binders})


def _cartesian(expr, whole: bool) -> Eq:
    """A read of Cartesian data (positions, cell, pair vectors): the whole vector when
    ``whole`` or when its last index is not an index variable, else that index
    carries the degree 1."""
    last = expr.indices[-1] if expr.indices else None
    if whole or not isinstance(last, P.IndexRef):
        return Eq(vector=True)
    return Eq({last.index: (1, P.XyzDim())})


class EquivarianceChecker(ProgramChecker):
    def __init__(self, program: P.Program, reporter: Reporter):
        super().__init__(program, reporter)
        self._tensor_sigma: dict = {}

    def let(self, let: P.Let) -> None:
        self.visit(let.body, _Ctx())

    # ---- helpers about index values
    def trivial(self, rep: P.Dim, conds) -> bool:
        """Whether a component of ``rep`` is invariant: irrep(l) with l restricted to 0."""
        if not isinstance(rep, P.IrrepDim):
            return False
        degree = rep.degree
        return memoized("trivial", (degree, tuple(conds)), lambda: always(
            lambda env: _eq(evaluate(degree, env), 0), refs_of(degree), conds) is True)

    def nontrivial(self, eq: Eq, conds) -> dict:
        return {index: value for index, value in eq.comps.items() if not self.trivial(value[1], conds)}

    def sigma_is(self, sigma: Sigma, target, conds) -> Optional[bool]:
        """Whether ``sigma`` equals ``target`` (an int or an expression) at every allowed point."""
        if sigma.is_constant and isinstance(target, int):
            return sigma.sign == target
        return memoized("sigma", (sigma.sign, sigma.exponents, sigma.factors, target, tuple(conds)),
                        lambda: self._sigma_is(sigma, target, conds))

    def _sigma_is(self, sigma: Sigma, target, conds) -> Optional[bool]:
        variables = sigma.variables()
        if not isinstance(target, int):
            variables += refs_of(target)

        def predicate(env):
            value = sigma.value(env)
            goal = target if isinstance(target, int) else evaluate(target, env)
            if value is None or goal is UNKNOWN:
                return None
            return value == goal

        return always(predicate, variables, conds)

    def invariant(self, eq: Eq, conds) -> Optional[str]:
        """None when ``eq`` is invariant, else how it transforms (for messages)."""
        if eq.unknown:
            return None
        if eq.vector:
            return "a vector"
        comps = self.nontrivial(eq, conds)
        if comps:
            return "carries component(s) " + ", ".join(
                f"`{index.name}` of `{_rep_name(rep)}`" for index, (_, rep) in comps.items())
        if self.sigma_is(eq.sigma, 1, conds) is False:
            return "is a pseudoscalar (o3_sigma = -1)"
        return None

    def describe(self, eq: Eq, conds) -> str:
        if eq.vector:
            return "a vector (1o)"
        comps = self.nontrivial(eq, conds)
        if not comps:
            return "an invariant (0e)" if self.sigma_is(eq.sigma, 1, conds) is not False else "a pseudoscalar (0o)"
        parts = []
        for index, (count, rep) in comps.items():
            irrep = ""
            if isinstance(rep, P.IrrepDim):
                degree = evaluate(rep.degree)
                if isinstance(degree, int):
                    irrep = f" = {Irrep(degree, 1 if degree % 2 == 0 else -1)}"
            parts.append(f"`{rep}`{irrep} on `{index.name}`")
        return " x ".join(parts)

    # ---- definitions
    def component_basis(self, slot: P.Slot) -> None:
        """E308: metatensor's component labels name a basis: `o3_mu` the real spherical harmonics of
        an `irrep(l)` index, `xyz` (`xyz_1`, `xyz_2`...) the Cartesian axes of an `xyz` index."""
        label, index = slot.labels[0], slot.value.index
        if is_unknown_dim(index.dim):
            return
        if label == "o3_mu" and not isinstance(index.dim, P.IrrepDim):
            fix = f"to_irrep(v, m)` with `index m : irrep(1)" if isinstance(index.dim, P.XyzDim) else "an irrep(l) index"
            self.error("E308", slot.span,
                       f"component `o3_mu = {index.name}` binds an index of `{index.dim}`: `o3_mu` labels the "
                       f"components of an irrep, in the basis of the spherical harmonics",
                       hint=f"label a Cartesian axis `xyz` (e.g. `xyz = {index.name}`), or use `{fix}`")
        elif label.startswith("xyz") and isinstance(index.dim, P.IrrepDim):
            self.error("E308", slot.span,
                       f"component `{label} = {index.name}` binds an index of `{index.dim}`: `{label}` labels "
                       f"Cartesian axes x, y, z, not the components of an irrep",
                       hint=f"label it `o3_mu = {index.name}` (with keys o3_lambda and o3_sigma)")

    def param(self, param: P.Param) -> None:
        for position, index in enumerate(param.indices):
            if index.is_component:
                span = param.index_spans[position] if position < len(param.index_spans) else param.span
                self.error("E305", span,
                           f"param `{param.name}` is indexed by the component index `{index.name}` of `{index.dim}`",
                           hint="a learnable weight per component breaks equivariance: index params by "
                                "channels, degrees or species only")

    def tensor(self, tensor: P.Tensor) -> Eq:
        ctx = _Ctx(((tensor.where,) if tensor.where is not None else ()), frozenset())
        eq = self.visit(tensor.body, ctx)
        if eq.unknown:
            return eq
        conds = ctx.conds + eq.conds
        declared = {}
        for slot in tensor.components:
            if isinstance(slot.value, P.IndexRef):
                declared[slot.value.index] = slot
                self.component_basis(slot)
        body_comps = self.nontrivial(eq, conds)
        for index, slot in declared.items():
            if index in eq.comps or self.trivial(index.dim, ctx.conds) or is_unknown_dim(index.dim):
                continue
            if not index.is_component:
                continue
            self.error("E306", slot.span,
                       f"component `{slot.labels[0]} = {index.name}` is declared as `{index.dim}`, but the value "
                       f"of `{tensor.name}` does not transform with it (it is {self.describe(eq, conds)})",
                       hint=f"the value must carry `{index.name}`, e.g. through sph(v, l, {index.name}) or "
                            f"cg(..., {index.name})")
        keys = {entry.label: entry for entry in tensor.keys}
        lam = keys.get("o3_lambda")
        if lam is not None:
            for index in declared:
                if isinstance(index.dim, P.IrrepDim) and not dims_fit(P.IrrepDim(lam.value), index.dim):
                    degree = index.dim.degree
                    agree = always(lambda env, degree=degree: _eq(evaluate(degree, env), evaluate(lam.value, env)),
                                   refs_of(degree) + refs_of(lam.value), conds)
                    if agree is False:
                        self.error("E306", lam.span,
                                   f"o3_lambda = {P.describe(lam.value)} differs from the irrep `{index.dim}` "
                                   f"of component `{index.name}`")
        sig = keys.get("o3_sigma")
        if sig is not None:
            result = self.sigma_is(eq.sigma, sig.value, conds)
            if result is False:
                computed = self._computed_sigma_text(eq.sigma, conds)
                self.error("E306", sig.span,
                           f"declared o3_sigma = {P.describe(sig.value)}, but the value of `{tensor.name}` "
                           f"transforms with o3_sigma = {computed}",
                           hint="o3_sigma is the parity relative to (-1)^l: sph and proper vectors have 1, "
                                "cg coupling multiplies by (-1)^(l1 + l2 + L)")
        elif not body_comps and self.sigma_is(eq.sigma, 1, conds) is False:
            self.error("E306", tensor.span,
                       f"the value of `{tensor.name}` is a pseudoscalar, but no o3_sigma is declared",
                       hint="add the key `o3_sigma = -1`")
        if tensor.name in self.program.outputs:
            self.unreachable_keys(tensor, ctx, eq)
        self._tensor_sigma[tensor] = eq.sigma
        return eq

    def _computed_sigma_text(self, sigma: Sigma, conds) -> str:
        if sigma.is_constant:
            return str(sigma.sign)
        variables, used = closure(sigma.variables(), conds)
        values = set()
        try:
            for env in points(variables, used):
                value = sigma.value(env)
                if value is not None:
                    values.add(value)
        except TooManyPoints:
            pass
        if len(values) == 1:
            return str(values.pop())
        return "±1 depending on " + ", ".join(sorted({v.name for v in sigma.variables()}))

    def unreachable_keys(self, tensor: P.Tensor, ctx: _Ctx, eq: Eq) -> None:
        for entry in tensor.keys:
            refs = refs_of(entry.value)
            if any(dim_values(index.dim, {}) is None and not isinstance(index.dim, P.IrrepDim)
                   for index in refs):
                continue
            declared = self._key_values(entry.value, ctx.conds)
            reached = self._key_values(entry.value, ctx.conds + eq.conds, declared)
            if declared is None or reached is None:
                continue
            for value in sorted(declared - reached):
                self.reporter.warning(
                    "W401", entry.span,
                    f"key `{entry.label} = {value}` of output `{tensor.name}` never receives a contribution",
                    hint="its block will be all zeros: check the `where` conditions and the triangle rules",
                )

    def _key_values(self, value_expr: P.Expr, conds, enough: Optional[set] = None) -> Optional[set]:
        """The values the key takes at the allowed points (stops once it has ``enough``)."""
        return memoized("key values", (value_expr, tuple(conds), tuple(sorted(enough)) if enough else None),
                        lambda: self._key_values_points(value_expr, conds, enough))

    def _key_values_points(self, value_expr: P.Expr, conds, enough: Optional[set]) -> Optional[set]:
        variables, used = closure(refs_of(value_expr), conds)
        values = set()
        try:
            for env in points(variables, used):
                value = evaluate(value_expr, env)
                if value is UNKNOWN:
                    return None
                values.add(value)
                if enough is not None and len(values) >= len(enough) and values >= enough:
                    break
        except TooManyPoints:
            return None
        return values

    # ---- expressions
    def visit(self, expr: P.Expr, ctx: _Ctx) -> Eq:
        method = dispatch(self, "_", type(expr))
        if method is None:
            return INVARIANT
        return method(expr, ctx)

    def _Invalid(self, expr, ctx) -> Eq:
        return UNKNOWN_EQ

    def _Const(self, expr, ctx) -> Eq:
        return INVARIANT

    def _IndexRef(self, expr, ctx) -> Eq:
        return INVARIANT

    def _KeyLabel(self, expr, ctx) -> Eq:
        return INVARIANT

    def _Unary(self, expr: P.Unary, ctx: _Ctx) -> Eq:
        eq = self.visit(expr.operand, ctx)
        return eq if expr.op == "-" else INVARIANT

    def _Binary(self, expr: P.Binary, ctx: _Ctx) -> Eq:
        left = self.visit(expr.left, ctx)
        right = self.visit(expr.right, ctx)
        if left.unknown or right.unknown:
            return UNKNOWN_EQ
        op = expr.op
        if op in ("+", "-"):
            return self.combine(left, right, ctx, expr.op_span, f"`{op}`")
        if op == "*":
            return self.product(left, right, ctx, expr.op_span)
        if op == "/":
            how = self.invariant(right, ctx.conds + right.conds)
            if how is not None:
                self.error("E302", expr.op_span, f"division by a non-invariant operand: the divisor {how}",
                           hint="divide by invariants only (norms, distances, contractions)")
            return Eq(left.comps, left.sigma * right.sigma, left.conds + right.conds, left.vector)
        # % ^ comparisons and logic: non-linear in their operands
        for side, eq in (("left", left), ("right", right)):
            how = self.invariant(eq, ctx.conds + eq.conds)
            if how is not None:
                self.error("E302", expr.op_span,
                           f"non-linear operator `{op}` applied to a non-invariant operand: its {side} operand {how}",
                           hint="apply non-linear operations to invariants only (contract components first)")
                return UNKNOWN_EQ
        if op == "^":
            exponent = evaluate(expr.right)
            if isinstance(exponent, int) and not isinstance(exponent, bool):
                return Eq({}, left.sigma.power(exponent), left.conds)
            return Eq({}, ONE, left.conds)
        return INVARIANT

    def combine(self, left: Eq, right: Eq, ctx: _Ctx, span, what: str) -> Eq:
        """The two operands of `+`, `-` or the branches of `?:`: same components, same parity."""
        conds = ctx.conds
        lc = {index: count for index, (count, _) in self.nontrivial(left, conds).items()}
        rc = {index: count for index, (count, _) in self.nontrivial(right, conds).items()}
        if lc != rc or left.vector != right.vector:
            self.error("E301", span,
                       f"{what} of operands with different irrep components",
                       hint=f"left is {self.describe(left, conds)}, right is {self.describe(right, conds)}")
            return UNKNOWN_EQ
        same = self._same_sigma(left.sigma, right.sigma, conds + tuple(c for c in left.conds if c in right.conds))
        if same is False:
            self.error("E301", span, f"{what} of operands with different parity (o3_sigma)",
                       hint=f"left has o3_sigma = {self._computed_sigma_text(left.sigma, conds)}, right has "
                            f"o3_sigma = {self._computed_sigma_text(right.sigma, conds)}")
            return UNKNOWN_EQ
        comps = dict(left.comps)
        for index, value in right.comps.items():
            comps.setdefault(index, value)
        common = tuple(c for c in left.conds if c in right.conds)
        return Eq(comps, left.sigma, common, left.vector)

    def _same_sigma(self, a: Sigma, b: Sigma, conds) -> Optional[bool]:
        if a.is_constant and b.is_constant:
            return a.sign == b.sign
        return memoized("same sigma", (a.sign, a.exponents, a.factors, b.sign, b.exponents, b.factors,
                                       tuple(conds)), lambda: self._same_sigma_points(a, b, conds))

    def _same_sigma_points(self, a: Sigma, b: Sigma, conds) -> Optional[bool]:

        def predicate(env):
            x, y = a.value(env), b.value(env)
            if x is None or y is None:
                return None
            return x == y

        return always(predicate, a.variables() + b.variables(), conds)

    def product(self, left: Eq, right: Eq, ctx: _Ctx, span) -> Eq:
        comps = dict(left.comps)
        for index, (count, rep) in right.comps.items():
            if index in comps:
                total = comps[index][0] + count
                comps[index] = (total, comps[index][1])
                if (total > 2 or index not in ctx.summed) and not self.trivial(rep, ctx.conds):
                    self.error("E304", span,
                               f"component index `{index.name}` used {'twice' if total == 2 else f'{total} times'} "
                               "in a product" + ("" if total > 2 else " and not summed"),
                               hint=f"an element-wise product of components is not equivariant: contract "
                                    f"with `sum({index.name}) ...` or couple with cg")
            else:
                comps[index] = (count, rep)
        return Eq(comps, left.sigma * right.sigma, left.conds + right.conds, left.vector or right.vector)

    def _Ternary(self, expr: P.Ternary, ctx: _Ctx) -> Eq:
        cond = self.visit(expr.cond, ctx)
        then = self.visit(expr.then, ctx)
        otherwise = self.visit(expr.otherwise, ctx)
        if then.unknown or otherwise.unknown or cond.unknown:
            return UNKNOWN_EQ
        how = self.invariant(cond, ctx.conds)
        if how is not None:
            self.error("E302", expr.cond.span, f"condition of `?:` is not invariant: it {how}")
        return self.combine(then, otherwise, ctx, expr.span, "the branches of `?:`")

    def _Call(self, expr: P.Call, ctx: _Ctx) -> Eq:
        builtin = BUILTINS[expr.function]
        args = [self.visit(arg, ctx) for arg in expr.args]
        if any(arg.unknown for arg in args):
            return UNKNOWN_EQ
        conds = tuple(c for arg in args for c in arg.conds)
        name = expr.function
        if name == "sph":
            v, degree, m = expr.args
            vec = args[0]
            sigma = ONE if vec.sigma.is_constant and vec.sigma.sign == 1 else Sigma(1, (degree,)) * ONE
            comps = {}
            if isinstance(m, P.IndexRef):
                comps[m.index] = (1, P.IrrepDim(degree))
            return Eq(comps, sigma if vec.sigma.is_constant else vec.sigma, conds)
        if name == "cg":
            return self.cg(expr, ctx, conds)
        if name == "norm":  # a length is a true scalar, of a proper or an axial vector
            return Eq({}, ONE, conds)
        if name == "dot":
            return Eq({}, args[0].sigma * args[1].sigma, conds)
        if name == "cross":  # an axial vector from two proper ones: sigma -s_u s_v, as irrep 1
            return Eq({}, Sigma(-1) * args[0].sigma * args[1].sigma, conds, vector=True)
        if name == "to_irrep":  # the vector's components in the basis of irrep 1, its sigma kept
            v, m = expr.args
            comps = {m.index: (1, P.IrrepDim(P.Const(1, P.INT)))} if isinstance(m, P.IndexRef) else {}
            return Eq(comps, args[0].sigma, conds)
        if builtin.nonlinear:
            for param, arg, eq in zip(builtin.params, expr.args, args):
                how = self.invariant(eq, ctx.conds + eq.conds)
                if how is not None:
                    self.error("E302", expr.span,
                               f"non-linear function `{name}` applied to a non-invariant operand: "
                               f"`{param.name}` {how}",
                               hint="apply non-linear functions to invariants only (e.g. to o3_lambda = 0 "
                                    "blocks, norms, or contractions)")
                    return UNKNOWN_EQ
        return Eq({}, ONE, conds)

    def cg(self, expr: P.Call, ctx: _Ctx, conds) -> Eq:
        l1, m1, l2, m2, L, M = expr.args
        comps = {}
        for degree, m, which in ((l1, m1, "l1"), (l2, m2, "l2"), (L, M, "L")):
            if not isinstance(m, P.IndexRef):
                if not isinstance(m, P.Invalid):
                    self.error("E307", m.span, f"the m index of cg for `{which}` must be an index of "
                               f"`irrep({P.describe(degree)})`")
                continue
            if not dims_fit(P.IrrepDim(degree), m.index.dim):
                self.error("E307", m.span,
                           f"index `{m.index.name}` of `{m.index.dim}` is not of `irrep({P.describe(degree)})`",
                           hint="cg(l1, m1, l2, m2, L, M) needs m1 of irrep(l1), m2 of irrep(l2), M of irrep(L)")
            comps[m.index] = (1, P.IrrepDim(degree))
        rule = _triangle(l1, l2, L)
        possible = memoized("never triangle", (rule, tuple(ctx.conds)), lambda: always(
            lambda env: _not(evaluate(rule, env)), refs_of(rule), ctx.conds))
        if possible is True:  # the triangle rule fails everywhere
            self.error("E307", expr.span,
                       f"cg({P.describe(l1)}, ., {P.describe(l2)}, ., {P.describe(L)}, .) can never satisfy the "
                       "triangle rule |l1 - l2| <= L <= l1 + l2",
                       hint="check the degrees and the `where` conditions")
        sigma = Sigma(1, (l1, l2, L))
        return Eq(comps, sigma, conds + (rule,))

    def _ParamRef(self, expr: P.ParamRef, ctx: _Ctx) -> Eq:
        for arg in expr.indices:
            self.visit(arg, ctx)
        return INVARIANT

    def _LetRef(self, expr: P.LetRef, ctx: _Ctx) -> Eq:
        let = expr.let
        if len(expr.indices) != len(let.indices):
            return UNKNOWN_EQ
        mapping = {index: arg for index, arg in zip(let.indices, expr.indices)}
        body = P.substitute(let.body, mapping)
        self.reporter.muted += 1
        try:
            return self.visit(body, ctx)
        finally:
            self.reporter.muted -= 1

    def _SystemData(self, expr: P.SystemData, ctx: _Ctx) -> Eq:
        if expr.field in ("positions", "cell"):
            return _cartesian(expr, whole=expr.type.kind in ("vector", "matrix"))
        return INVARIANT

    def _PairData(self, expr: P.PairData, ctx: _Ctx) -> Eq:
        if expr.field == "vector":
            return _cartesian(expr, whole=len(expr.indices) <= 1)
        return INVARIANT

    def _BlockRef(self, expr: P.BlockRef, ctx: _Ctx) -> Eq:
        source = expr.source
        given = dict(expr.keys)
        slots = source.slots
        if len(slots) != len(expr.indices):
            return UNKNOWN_EQ
        mapping: dict = {}
        if isinstance(source, P.TensorMapInput):
            mapping.update(given)
        else:
            for entry in source.keys:
                if isinstance(entry.value, P.IndexRef) and entry.label in given:
                    mapping[entry.value.index] = given[entry.label]
            for slot, arg in zip(slots, expr.indices):
                if isinstance(slot.value, P.IndexRef):
                    mapping.setdefault(slot.value.index, arg)
        comps = {}
        for slot, arg in zip(source.components, expr.indices[len(source.samples):]):
            if isinstance(arg, P.IndexRef) and slot.dim is not None:
                comps[arg.index] = (1, P.substitute_dim(slot.dim, mapping))
        # parity: the o3_sigma the block is labelled with
        if "o3_sigma" in given:
            sigma_expr = given["o3_sigma"]
        elif isinstance(source, P.Tensor):
            entry = next((e for e in source.keys if e.label == "o3_sigma"), None)
            sigma_expr = P.substitute(entry.value, mapping) if entry is not None else None
        else:
            sigma_expr = None
        if sigma_expr is not None:
            constant = evaluate(sigma_expr)
            sigma = Sigma(constant) if constant in (1, -1) else Sigma(1, (), (sigma_expr,))
        elif isinstance(source, P.Tensor):
            computed = self._tensor_sigma.get(source)
            sigma = computed if computed is not None and computed.is_constant else ONE
        else:
            sigma = ONE
        return Eq(comps, sigma)

    def _Sum(self, expr: P.Sum, ctx: _Ctx) -> Eq:
        inner = ctx.with_sum(expr.binders, expr.where)
        body = self.visit(expr.body, inner)
        if body.unknown:
            return UNKNOWN_EQ
        comps = dict(body.comps)
        conds = inner.conds + body.conds
        for binder in expr.binders:
            entry = comps.pop(binder.index, None)
            if entry is None:
                continue
            count, rep = entry
            if isinstance(rep, P.OpaqueDim):
                self.error("E303", binder.span,
                           f"sum over `{binder.index.name}`, which fills the opaque component `{rep.label}`",
                           hint="opaque components may not be contracted")
            elif count == 1 and not self.trivial(rep, conds):
                self.error("E303", binder.span,
                           f"sum over the component index `{binder.index.name}` of `{rep}`, which is neither "
                           "contracted with a second occurrence nor coupled by cg",
                           hint=f"contract it: `sum({binder.index.name}) A[..{binder.index.name}..] * "
                                f"B[..{binder.index.name}..]`, or couple it with cg")
        own = ((expr.where,) if expr.where is not None else ())
        return Eq(comps, body.sigma, body.conds + own, body.vector)


def _eq(a, b) -> Optional[bool]:
    if a is UNKNOWN or b is UNKNOWN:
        return None
    return a == b


def _not(value) -> Optional[bool]:
    if value is UNKNOWN:
        return None
    return not value


def _triangle(l1: P.Expr, l2: P.Expr, L: P.Expr) -> P.Expr:  # noqa: N803
    """The resolved condition |l1 - l2| <= L <= l1 + l2."""
    diff = P.Call("abs", (P.Binary("-", l1, l2, P.INT),), P.INT)
    low = P.Binary("<=", diff, L, P.BOOL)
    high = P.Binary("<=", L, P.Binary("+", l1, l2, P.INT), P.BOOL)
    return P.Binary("and", low, high, P.BOOL)


def check_equivariance(program: P.Program, reporter: Reporter) -> None:
    """Run the equivariance checks, adding diagnostics to ``reporter``."""
    EquivarianceChecker(program, reporter).run()
