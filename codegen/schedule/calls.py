"""The kernel lowering's built-in calls (a mixin of `schedule/kernel.py: KernelLowering`).

A scalar built-in with a primitive of the nest's fixed table (`nest.INTRINSICS`)
becomes one `Intrinsic`; the others are lowered here: `gto` into `exp` and
`pow`, `sph` / `d_sph` into an entry of a table filled once where the vector is
known (the `Routine` of `schedule/sph.py`), `soap_radial` / `d_soap_radial`
into an entry of the spline's table for every `(l, n)` (`Fill` of the
template's spline), `cg` into a read of the module's dense Clebsch-Gordan
table (`schedule/tables.py`).
"""

from __future__ import annotations

from mtdsl import builtins
from mtdsl.ir import nodes as ir

from . import plan as planning
from .plan import Unsupported, harmonic_arguments
from . import abi, nest
from .exprs import Value, array, as_int, as_real, both, call, compare, iadd, iconst, imul, rconst
from .nest import F64, INT, REAL, VEC

#: built-ins that are one primitive of a real argument list (nest.INTRINSICS): built-in -> intrinsic
SCALAR_INTRINSICS = {b.name: b.name for b in builtins.registered() if b.primitive and b.name != "abs"}


class CallLowering:
    def _render_Call(self, expr: ir.Call) -> Value:
        name = expr.function
        if name in SCALAR_INTRINSICS:
            xs = [self.scalar_argument(expr, k) for k in range(len(expr.args))]
            code = call(SCALAR_INTRINSICS[name], *(as_real(x.expr) for x in xs))
            return self.hoist(Value(code, *self.join(*xs)), "f")
        if name == "cross":
            u, v = self.vector_argument(expr, 0), self.vector_argument(expr, 1)
            return self.hoist(Value(call("cross", u.expr, v.expr), *self.join(u, v)), "f")
        if name == "to_irrep":
            v = self.vector_argument(expr, 0)
            axis = self.render(ir.irrep1_axis(expr.args[1], self.module.convention))
            return self.hoist(Value(call("component", v.expr, as_int(axis.expr)), *self.join(v, axis)), "f")
        if name == "abs":
            x = self.unary_argument(expr)
            if x.type in (INT, nest.BOOL):
                return self.hoist(Value(call("iabs", as_int(x.expr)), *x.place), "f")
            return self.hoist(Value(call("abs", x.expr), *x.place), "f")
        if name == "norm":
            v = self.vector_argument(expr, 0)
            return self.hoist(Value(call("norm", v.expr), *v.place), "f")
        if name == "dot":
            u, v = self.vector_argument(expr, 0), self.vector_argument(expr, 1)
            return self.hoist(Value(call("dot", u.expr, v.expr), *self.join(u, v)), "f")
        if name == "gto":
            return self.call_gto(expr)
        if name in ("cosine_cutoff", "d_cosine_cutoff"):
            return self.call_cosine_cutoff(expr, derivative=name == "d_cosine_cutoff")
        if name in ("sph", "d_sph"):
            return self.call_sph(expr)
        if name in ("soap_radial", "d_soap_radial"):
            return self.call_soap_radial(expr, derivative=name == "d_soap_radial")
        if name == "cg":
            return self.call_cg(expr)
        if name == "d_gto":
            width = float(self.option(expr, "width"))
            r, n = self.scalar_argument(expr, 0), self.scalar_argument(expr, 1)
            code = call("d_gto", as_real(r.expr), as_real(n.expr), rconst(width))
            return self.hoist(Value(code, *self.join(r, n)), "g")
        raise Unsupported(f"function {name}")

    def unary_argument(self, expr) -> Value:
        if len(expr.args) != 1:
            raise Unsupported(f"{expr.function} with {len(expr.args)} arguments")
        value = self.render(expr.args[0])
        if value.type == VEC:
            raise Unsupported(f"{expr.function} of a vector")
        return value

    def vector_argument(self, expr, k) -> Value:
        value = self.render(expr.args[k])
        if value.type != VEC:
            raise Unsupported(f"{expr.function} needs a vector")
        return value

    def option(self, expr, name) -> float:
        value = expr.option(name)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Unsupported(f"{expr.function} without a numeric option {name}")
        return value

    def scalar_argument(self, expr, k) -> Value:
        value = self.render(expr.args[k])
        if value.type == VEC:
            raise Unsupported(f"{expr.function}: argument {k} is a vector")
        return value

    def call_gto(self, expr) -> Value:
        width = float(self.option(expr, "width"))
        r, n = self.scalar_argument(expr, 0), self.scalar_argument(expr, 1)
        x = as_real(r.expr)
        exponent = nest.Binary("div", nest.Unary("neg", nest.Binary("mul", x, x, REAL), REAL), rconst(2.0 * width * width), REAL)
        gaussian = self.hoist(Value(call("exp", exponent), *r.place), "g")
        power = self.hoist(Value(call("pow", x, as_real(n.expr)), *self.join(r, n)), "g")
        return self.hoist(Value(nest.Binary("mul", power.expr, gaussian.expr, REAL), *self.join(power, gaussian)), "g")

    def call_cosine_cutoff(self, expr, derivative: bool = False) -> Value:
        width = float(self.option(expr, "width"))
        r = self.scalar_argument(expr, 0)
        if len(expr.args) > 1:  # the cutoff as an argument (older IR)
            cutoff = self.scalar_argument(expr, 1)
        else:
            cutoff = Value(rconst(float(self.option(expr, "cutoff"))), 0)
        function = "d_cosine_cutoff" if derivative else "cosine_cutoff"
        code = call(function, as_real(r.expr), as_real(cutoff.expr), rconst(width))
        return self.hoist(Value(code, *self.join(r, cutoff)), "fc")

    def bounded(self, expr, what: str) -> tuple:
        value = self.index(expr)
        found = planning.bounds(expr, self.domains)
        if found is None:
            raise Unsupported(f"{what}: the bounds of {expr} are not known at compile time")
        return value, found

    def call_sph(self, expr) -> Value:
        """`sph(v, l, m)`, and `d_sph(v, l, m, c)` (component `c` of d sph(v, l, m) / d v): an entry of
        a table of every (l, m) (and c), filled once where `v` is known (`schedule/sph.py`)."""
        v, integers = harmonic_arguments(self, expr)
        (l, (l_lo, l_hi)), (m, (m_lo, m_hi)) = integers[:2]
        if l_hi < 0:
            return Value(rconst(0.0), 0)
        gradient = len(integers) == 3
        top = l_hi
        width = 2 * top + 1
        function = self.context.sph_function(top, gradient=gradient)
        size = (top + 1) * width * (3 if gradient else 1)
        table = self.table(function, (v.expr,), (), size, v.place, "dY" if gradient else "Y")
        index = iadd(iadd(imul(l.expr, iconst(width)), m.expr), iconst(top))
        if gradient:
            index = iadd(imul(index, iconst(3)), integers[2][0].expr)
        code = nest.Load(table, index, REAL)
        if l_lo < 0 or m_lo < -top or m_hi > top:
            inside = both(compare("ge", l.expr, iconst(0)), compare("le", call("iabs", m.expr), l.expr))
            code = nest.Select(inside, code, rconst(0.0), REAL)
        place = self.join(Value(nest.Ref(table, REAL), *v.place), *(value for value, _ in integers))
        return self.hoist(Value(code, *place), "dy" if gradient else "y")

    def table(self, function: str, args: tuple, template: tuple, size: int, place: tuple, hint: str) -> str:
        """A local array filled once where `place` says by `function(args..., array)`; its name."""
        level, body = place
        key = (id(self.stack[level]), body, ("table", function, args, template))
        if key in self.memo:
            return self.memo[key]
        name = self.fresh(hint)
        self.statement(place, nest.Alloc(name, size, REAL))
        self.statement(place, nest.Fill(function, args, name, template))
        self.memo[key] = name
        return name

    def call_soap_radial(self, expr, derivative: bool = False) -> Value:
        if len(expr.args) != 3:
            raise Unsupported("soap_radial with a wrong number of arguments")
        n_radial = int(self.option(expr, "n_radial"))
        cutoff = float(self.option(expr, "cutoff"))
        width = float(self.option(expr, "density_width"))
        r = self.scalar_argument(expr, 0)
        n, (n_lo, n_hi) = self.bounded(expr.args[1], "soap_radial")
        l, (l_lo, l_hi) = self.bounded(expr.args[2], "soap_radial")
        if n_lo < 0 or n_hi >= n_radial or l_lo < 0:
            raise Unsupported("soap_radial indices outside the table")
        name, spline = self.context.spline(l_hi, n_radial, cutoff, width)
        # the derivative differences neighbouring knots: its tables stay in float64 (float32 loses 1e-3)
        element = F64 if derivative else REAL
        values = self.array(abi.ConstTable(name + "_values", derivative), element, f"soap_radial spline values {name}")
        derivatives = self.array(abi.ConstTable(name + "_derivatives", derivative), element, f"soap_radial spline derivatives {name}")
        args = (as_real(r.expr), array(values), array(derivatives), nest.Const(float(spline.step), element),
                iconst(spline.n_intervals), nest.Const(float(spline.cutoff), element))
        function = "spline_derivative" if derivative else "spline"
        table = self.table(function, args, (l_hi + 1, n_radial), (l_hi + 1) * n_radial, r.place,
                           "dR" if derivative else "R")
        code = nest.Load(table, iadd(imul(l.expr, iconst(n_radial)), n.expr), REAL)
        return self.hoist(Value(code, *self.join(Value(nest.Ref(table, REAL), *r.place), n, l)), "rad")

    def call_cg(self, expr) -> Value:
        if len(expr.args) != 6:
            raise Unsupported("cg with a wrong number of arguments")
        parts = [self.bounded(a, "cg") for a in expr.args]
        degrees = [parts[0], parts[2], parts[4]]
        orders = [parts[1], parts[3], parts[5]]
        if any(lo < 0 for _, (lo, _) in degrees):
            raise Unsupported("cg with possibly negative degrees")
        top = max(hi for _, (_, hi) in degrees)
        if any(lo < -top or hi > top for _, (lo, hi) in orders):
            raise Unsupported("cg orders outside the table")
        name = self.context.cg_table(top)
        table = self.array(abi.ConstTable(name), REAL, f"dense Clebsch-Gordan table up to l = {top}")
        size, width, shift = iconst(top + 1), iconst(2 * top + 1), iconst(top)
        (l1, _), (l2, _), (big_l, _) = degrees
        (m1, _), (m2, _), (big_m, _) = orders
        index = iadd(imul(iadd(imul(l1.expr, size), l2.expr), size), big_l.expr)
        for m in (m1, m2, big_m):
            index = iadd(iadd(imul(index, width), m.expr), shift)
        values = [v for v, _ in parts]
        return self.hoist(Value(nest.Load(table, index, REAL), *self.join(*values)), "cg")
