"""The built-in functions of the kernel walk (`KernelBuilder`'s calls): LLVM intrinsics and C
library functions of a real (two tables), the special functions inline (`gto`, `cosine_cutoff`,
their derivatives), and the tables filled once where their arguments are bound (`sph` through its
nest routine, `soap_radial` splines, Clebsch-Gordan reads)."""

from __future__ import annotations

import math

import llvmlite.ir as ll

from mtdsl.ir import nodes as ir

from .. import plan as planning
from ..plan import INT, REAL, VEC, BOOL, Unsupported, harmonic_arguments
from ..schedule.sph import sph_routine
from .emit import I64, Value, i64
from .printer import NestPrinter

#: scalar built-ins that are one LLVM intrinsic of a real
LLVM_INTRINSICS = {
    "sqrt": "llvm.sqrt", "exp": "llvm.exp", "log": "llvm.log", "sin": "llvm.sin", "cos": "llvm.cos",
    "tanh": "llvm.tanh", "acos": "llvm.acos", "asin": "llvm.asin", "floor": "llvm.floor",
    "round": "llvm.roundeven",  # half to even, as numpy, torch and C's nearbyint
}

#: scalar built-ins that are a call of the C library (no LLVM intrinsic for them)
LIBM_FUNCTIONS = ("erf", "erfc", "atan2")


class Calls:
    """Mixed into `KernelBuilder` (`kernel.py`): `_render_Call` and what it needs."""

    # -- built-in functions ------------------------------------------------------------------------------------
    def _render_Call(self, expr: ir.Call) -> Value:
        name = expr.function
        if name in LLVM_INTRINSICS:
            x = self.unary_argument(expr)
            return Value(self.call1(x.place, LLVM_INTRINSICS[name], self.as_real(x)), REAL, *x.place)
        if name in LIBM_FUNCTIONS:
            xs = [self.scalar_argument(expr, k) for k in range(len(expr.args))]
            function = self.libm(name, len(xs))
            place = self.join(*xs)
            value = self.emit(place, name, lambda b, *x: b.call(function, list(x)), *(self.as_real(x) for x in xs))
            return Value(value, REAL, *place)
        if name == "softplus":  # max(x, 0) + log1p(exp(-|x|)): no overflow
            x = self.unary_argument(expr)
            exp, fabs = self.intrinsic("llvm.exp"), self.intrinsic("llvm.fabs")
            log1p, zero = self.libm("log1p", 1), self.rconst(0.0)

            def make(b, x):
                tail = b.call(log1p, [b.call(exp, [b.fneg(b.call(fabs, [x]))])])
                return b.fadd(b.select(b.fcmp_ordered(">", x, zero), x, zero), tail)
            return Value(self.emit(x.place, name, make, self.as_real(x)), REAL, *x.place)
        if name == "cross":
            u, v = self.vector_argument(expr, 0), self.vector_argument(expr, 1)
            place = self.join(u, v)

            def make(b, u, v):
                return tuple(b.fsub(b.fmul(u[(k + 1) % 3], v[(k + 2) % 3]), b.fmul(u[(k + 2) % 3], v[(k + 1) % 3]))
                             for k in range(3))
            return Value(self.emit(place, "cross", make, u.v, v.v), VEC, *place)
        if name == "to_irrep":
            v = self.vector_argument(expr, 0)
            axis = self.render(ir.irrep1_axis(expr.args[1], self.module.convention))
            place = self.join(v, axis)

            def make(b, v, k):
                return b.select(b.icmp_signed("==", k, i64(0)), v[0],
                                b.select(b.icmp_signed("==", k, i64(1)), v[1], v[2]))
            return Value(self.emit(place, "to_irrep", make, v.v, self.as_int(axis)), REAL, *place)
        if name in ("sigmoid", "silu"):
            x = self.unary_argument(expr)
            tanh = self.intrinsic("llvm.tanh")
            half, one = self.rconst(0.5), self.rconst(1.0)

            def make(b, x):
                s = b.fmul(half, b.fadd(one, b.call(tanh, [b.fmul(half, x)])))
                return s if name == "sigmoid" else b.fmul(x, s)
            return Value(self.emit(x.place, name, make, self.as_real(x)), REAL, *x.place)
        if name == "abs":
            x = self.unary_argument(expr)
            if x.type in (INT, BOOL):
                v = self.emit(x.place, "iabs", lambda b, x: b.select(b.icmp_signed("<", x, i64(0)), b.neg(x), x),
                              self.as_int(x))
                return Value(v, INT, *x.place)
            return Value(self.call1(x.place, "llvm.fabs", x.v), REAL, *x.place)
        if name == "norm":
            v = self.vector_argument(expr, 0)
            d = self.dot(v, v)
            return Value(self.call1(v.place, "llvm.sqrt", d), REAL, *v.place)
        if name == "dot":
            u, v = self.vector_argument(expr, 0), self.vector_argument(expr, 1)
            return Value(self.dot(u, v), REAL, *self.join(u, v))
        if name == "gto":
            return self.call_gto(expr)
        if name == "cosine_cutoff":
            return self.call_cosine_cutoff(expr)
        if name == "sph":
            return self.call_sph(expr)
        if name == "soap_radial":
            return self.call_soap_radial(expr)
        if name == "cg":
            return self.call_cg(expr)
        if name == "d_sph":
            return self.call_d_sph(expr)
        if name == "d_soap_radial":
            return self.call_soap_radial(expr, derivative=True)
        if name == "d_cosine_cutoff":
            return self.call_cosine_cutoff(expr, derivative=True)
        if name == "d_gto":
            return self.call_d_gto(expr)
        raise Unsupported(f"function {name}")

    def call_d_gto(self, expr) -> Value:
        """d gto(r, n) / dr = (n r^(n-1) - r^(n+1) / w^2) exp(-r^2 / (2 w^2))."""
        width = float(self.option(expr, "width"))
        r, n = self.scalar_argument(expr, 0), self.scalar_argument(expr, 1)
        exp, pow_ = self.intrinsic("llvm.exp"), self.intrinsic("llvm.pow")
        one, zero = self.rconst(1.0), self.rconst(0.0)
        scale, w2 = self.rconst(2.0 * width * width), self.rconst(width * width)

        def make(b, x, y):
            lower = b.select(b.fcmp_ordered(">", y, zero), b.fmul(y, b.call(pow_, [x, b.fsub(y, one)])), zero)
            upper = b.fdiv(b.call(pow_, [x, b.fadd(y, one)]), w2)
            gaussian = b.call(exp, [b.fdiv(b.fneg(b.fmul(x, x)), scale)])
            return b.fmul(b.fsub(lower, upper), gaussian)
        place = self.join(r, n)
        return Value(self.emit(place, ("d_gto", width), make, self.as_real(r), self.as_real(n)), REAL, *place)


    def nest_printer(self) -> NestPrinter:
        """The nest printer for a routine inline (its arrays in this function's entry block)."""
        printer = NestPrinter(self.llmodule, self.real)
        printer.entry = self.allocas
        return printer

    def dot(self, u: Value, v: Value):
        place = self.join(u, v)

        def make(b, u, v):
            total = b.fmul(u[0], v[0])
            total = b.fadd(total, b.fmul(u[1], v[1]))
            return b.fadd(total, b.fmul(u[2], v[2]))
        return self.emit(place, "dot", make, u.v, v.v)

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

    def scalar_argument(self, expr, k) -> Value:
        value = self.render(expr.args[k])
        if value.type == VEC:
            raise Unsupported(f"{expr.function}: argument {k} is a vector")
        return value

    @staticmethod
    def option(expr, name) -> float:
        value = expr.option(name)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Unsupported(f"{expr.function} without a numeric option {name}")
        return value

    def call_gto(self, expr) -> Value:
        width = float(self.option(expr, "width"))
        r, n = self.scalar_argument(expr, 0), self.scalar_argument(expr, 1)
        x = self.as_real(r)
        exp, pow_ = self.intrinsic("llvm.exp"), self.intrinsic("llvm.pow")
        scale = self.rconst(2.0 * width * width)
        gaussian = self.emit(r.place, ("gauss", width),
                             lambda b, x: b.call(exp, [b.fdiv(b.fneg(b.fmul(x, x)), scale)]), x)
        place = self.join(r, n)
        power = self.emit(place, "pow", lambda b, x, y: b.call(pow_, [x, y]), x, self.as_real(n))
        return Value(self.emit(place, "fmul", lambda b, x, y: b.fmul(x, y), power, gaussian), REAL, *place)

    def call_cosine_cutoff(self, expr, derivative: bool = False) -> Value:
        width = float(self.option(expr, "width"))
        r = self.scalar_argument(expr, 0)
        if len(expr.args) > 1:
            cutoff = self.scalar_argument(expr, 1)
        else:
            cutoff = Value(self.rconst(float(self.option(expr, "cutoff"))), REAL, 0)
        cos = self.intrinsic("llvm.cos")
        w, one, half, pi = self.rconst(width), self.rconst(1.0), self.rconst(0.5), self.rconst(math.pi)
        if derivative:
            sin = self.intrinsic("llvm.sin")

            def slope(b, r, c):
                flat = b.or_(b.fcmp_ordered("<=", r, b.fsub(c, w)), b.fcmp_ordered(">=", r, c))
                s = b.fdiv(b.fmul(pi, b.fadd(b.fsub(r, c), w)), w)
                value = b.fdiv(b.fmul(b.fmul(self.rconst(-0.5), pi), b.call(sin, [s])), w)
                return b.select(flat, self.rconst(0.0), value)
            place = self.join(r, cutoff)
            value = self.emit(place, ("d_cosine_cutoff", width), slope, self.as_real(r), self.as_real(cutoff))
            return Value(value, REAL, *place)

        def make(b, r, c):
            inside = b.fcmp_ordered("<=", r, b.fsub(c, w))
            outside = b.fcmp_ordered(">=", r, c)
            s = b.fdiv(b.fmul(pi, b.fadd(b.fsub(r, c), w)), w)
            smooth = b.fmul(half, b.fadd(one, b.call(cos, [s])))
            return b.select(inside, one, b.select(outside, self.rconst(0.0), smooth))
        place = self.join(r, cutoff)
        value = self.emit(place, ("cosine_cutoff", width), make, self.as_real(r), self.as_real(cutoff))
        return Value(value, REAL, *place)

    def bounded(self, expr, what: str):
        value = self.index(expr)
        found = planning.bounds(expr, self.domains)
        if found is None:
            raise Unsupported(f"{what}: the bounds of {expr} are not known at compile time")
        return value, found

    def table_index(self, place, table, index):
        return self.emit(place, "load", lambda b, t, k: b.load(b.gep(t, [i64(0), k])), table, index)

    def call_sph(self, expr) -> Value:
        """`sph(v, l, m)`, and `d_sph(v, l, m, c)` (component `c` of d sph(v, l, m) / d v): an entry of
        a table of every (l, m) (and c), filled once where `v` is known."""
        v, integers = harmonic_arguments(self, expr)
        (l, (l_lo, l_hi)), (m, (m_lo, m_hi)) = integers[:2]
        if l_hi < 0:
            return Value(self.rconst(0.0), REAL, 0)
        top = l_hi
        width = 2 * top + 1
        if len(integers) == 3:  # d_sph: 3 components per (l, m)
            c = integers[2][0]
            array_type = ll.ArrayType(self.real, (top + 1) * width * 3)
            routine = sph_routine(f"dsph{top}", top, self.module.convention, gradient=True)
            table = self.emit(v.place, ("dsph", top), lambda b, *xyz: self.nest_printer().routine(b, routine, {"v": xyz},
                                                                                         array_type), *v.v)
            place = self.join(v, l, m, c)
            index = self.emit(place, ("dsph-index", top),
                              lambda b, l, m, c: b.add(b.mul(b.add(b.mul(l, i64(width)), b.add(m, i64(top))), i64(3)), c),
                              l.v, m.v, c.v)
            checked = "dsph-checked"
        else:
            array_type = ll.ArrayType(self.real, (top + 1) * width)
            routine = sph_routine(f"sph{top}", top, self.module.convention)
            table = self.emit(v.place, ("sph", top), lambda b, *xyz: self.nest_printer().routine(b, routine, {"v": xyz},
                                                                                        array_type), *v.v)
            place = self.join(v, l, m)
            index = self.emit(place, ("sph-index", top),
                              lambda b, l, m: b.add(b.mul(l, i64(width)), b.add(m, i64(top))), l.v, m.v)
            checked = "sph-checked"
        if l_lo < 0 or m_lo < -top or m_hi > top:
            def make(b, t, l, m, k):
                magnitude = b.select(b.icmp_signed("<", m, i64(0)), b.neg(m), m)
                ok = b.and_(b.icmp_signed(">=", l, i64(0)), b.icmp_signed("<=", magnitude, l))
                value = b.load(b.gep(t, [i64(0), b.select(ok, k, i64(0))]))
                return b.select(ok, value, self.rconst(0.0))
            return Value(self.emit(place, checked, make, table, l.v, m.v, index), REAL, *place)
        return Value(self.table_index(place, table, index), REAL, *place)

    call_d_sph = call_sph

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
        name, spline = self.renderer.tables.spline(l_hi, n_radial, cutoff, width)
        if derivative:  # it differences neighbouring knots: float64 tables and arithmetic whatever the dtype
            values = self.array(("const64", name + "_values"), "f64")
            derivatives = self.array(("const64", name + "_derivatives"), "f64")
        else:
            values = self.array(("const", name + "_values"), "real")
            derivatives = self.array(("const", name + "_derivatives"), "real")
        count = (l_hi + 1) * n_radial
        table = self.emit(r.place, ("spline", name, count, derivative),
                          lambda b, x, v, d: self.fill_spline(r.place, x, v, d, spline, count, derivative),
                          self.as_real(r), values, derivatives)
        place = self.join(r, n, l)
        index = self.emit(place, ("radial-index", n_radial), lambda b, l, n: b.add(b.mul(l, i64(n_radial)), n),
                          l.v, n.v)
        return Value(self.table_index(place, table, index), REAL, *place)

    def fill_spline(self, place, r, values, derivatives, spline, count: int, derivative: bool = False):
        """The cubic Hermite spline of `soap_radial` for every `(l, n)` at once (`mt_spline` of the
        C++ backend): a vectorizable loop into a new table, error bit 4 beyond the cutoff."""
        table = self.alloca(ll.ArrayType(self.real, count), "radial")
        if derivative:
            return self.fill_spline_derivative(place, r, values, derivatives, spline, count, table)
        c = self.rconst
        b = self.at(place)
        k, t, scale = self.spline_interval(b, r, spline, self.real)
        t2 = b.fmul(t, t)
        t3 = b.fmul(t2, t)
        h00 = b.fadd(b.fsub(b.fmul(c(2.0), t3), b.fmul(c(3.0), t2)), c(1.0))
        h10 = b.fmul(b.fadd(b.fsub(t3, b.fmul(c(2.0), t2)), t), c(spline.step))
        h01 = b.fadd(b.fmul(c(-2.0), t3), b.fmul(c(3.0), t2))
        h11 = b.fmul(b.fsub(t3, t2), c(spline.step))
        h00, h10, h01, h11 = (b.fmul(h, scale) for h in (h00, h10, h01, h11))

        def entry(b, v0, v1, d0, d1):
            return b.fadd(b.fadd(b.fmul(h00, v0), b.fmul(h10, d0)), b.fadd(b.fmul(h01, v1), b.fmul(h11, d1)))
        self.spline_loop(place, "spline", k, count, values, derivatives, table, entry)
        return table

    def fill_spline_derivative(self, place, r, values, derivatives, spline, count: int, table):
        """d/dr of the spline (`mt_spline_derivative` of the C++ backend), in double precision from
        float64 tables: 6 (t^2 - t) / step (p0 - p1) + (3 t^2 - 4 t + 1) d0 + (3 t^2 - 2 t) d1."""
        f64 = ll.DoubleType()

        def c(value):
            return ll.Constant(f64, float(value))
        b = self.at(place)
        k, t, scale = self.spline_interval(b, r, spline, f64)
        t2 = b.fmul(t, t)
        a = b.fmul(b.fdiv(b.fmul(c(6.0), b.fsub(t2, t)), c(spline.step)), scale)
        h0 = b.fmul(b.fadd(b.fsub(b.fmul(c(3.0), t2), b.fmul(c(4.0), t)), c(1.0)), scale)
        h1 = b.fmul(b.fsub(b.fmul(c(3.0), t2), b.fmul(c(2.0), t)), scale)

        def entry(b, v0, v1, d0, d1):
            value = b.fadd(b.fmul(a, b.fsub(v0, v1)), b.fadd(b.fmul(h0, d0), b.fmul(h1, d1)))
            return value if self.real == f64 else b.fptrunc(value, self.real)
        self.spline_loop(place, "dspline", k, count, values, derivatives, table, entry)
        return table

    def spline_interval(self, b, r, spline, real):
        """The spline's interval `k` of `r`, the position `t` in it and the scale (0 beyond the
        cutoff, where error bit 4 is set); the cutoff is checked in the kernel's precision, `t`
        computed in the float type `real`."""

        def c(value):
            return ll.Constant(real, float(value))
        ok = b.fcmp_ordered("<=", r, self.rconst(spline.cutoff))
        b.store(b.or_(b.load(self.err), b.select(ok, i64(0), i64(4))), self.err)
        x = b.fdiv(r if real == self.real else b.fpext(r, real), c(spline.step))
        k = b.fptosi(b.call(self.intrinsic("llvm.floor", real), [b.select(ok, x, c(0.0))]), I64)
        k = b.select(b.icmp_signed(">", k, i64(spline.n_intervals - 1)), i64(spline.n_intervals - 1), k)
        k = b.select(b.icmp_signed("<", k, i64(0)), i64(0), k)
        t = b.fsub(b.select(ok, x, c(0.0)), b.sitofp(k, real))
        return k, t, b.select(ok, c(1.0), c(0.0))

    def spline_loop(self, place, name: str, k, count: int, values, derivatives, table, entry):
        """The loop `j in [0, count)` storing `entry(b, values[p0], values[p1], derivatives[p0],
        derivatives[p1])` (`p0 = k count + j`, `p1 = p0 + count`) into `table`, linked into the
        region of `place` at once."""
        b = self.at(place)
        start = b.mul(k, i64(count))
        level, body = place
        region = self.stack[level].body if body else self.stack[level].prelude
        f = self.function
        header, loop, exit_ = (f.append_basic_block(f"{name}.{part}") for part in ("head", "body", "exit"))
        entry_block = region.tail
        b.branch(header)
        b.position_at_end(header)
        j = b.phi(I64, name=f"{name}.j")
        j.add_incoming(i64(0), entry_block)
        b.cbranch(b.icmp_signed("<", j, i64(count)), loop, exit_)
        b.position_at_end(loop)
        p0 = b.add(start, j)
        p1 = b.add(p0, i64(count))
        value = entry(b, b.load(b.gep(values, [p0])), b.load(b.gep(values, [p1])),
                      b.load(b.gep(derivatives, [p0])), b.load(b.gep(derivatives, [p1])))
        b.store(value, b.gep(table, [i64(0), j]))
        j.add_incoming(b.add(j, i64(1)), loop)
        b.branch(header)
        region.tail = exit_

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
        name = self.renderer.tables.cg_table(top)
        array = self.array(("const", name), "real")
        size, width = top + 1, 2 * top + 1
        (l1, _), (l2, _), (big_l, _) = degrees
        (m1, _), (m2, _), (big_m, _) = orders

        def make(b, l1, l2, big_l, m1, m2, big_m):
            index = b.add(b.mul(b.add(b.mul(l1, i64(size)), l2), i64(size)), big_l)
            for m in (m1, m2, big_m):
                index = b.add(b.mul(index, i64(width)), b.add(m, i64(top)))
            return b.load(b.gep(array, [index]))
        ordered = [l1, l2, big_l, m1, m2, big_m]
        place = self.join(*ordered)
        return Value(self.emit(place, ("cg", top), make, *[v.v for v in ordered]), REAL, *place)

