"""The primitive operations of the loop-nest IR as LLVM instructions: one table entry per
`nest.INTRINSICS` name (math of reals through LLVM intrinsics or the C library, the integer and
vector helpers, the closed-form radial functions, the checked reads and lookups that set error
bits) and the `FILL_FUNCTIONS` (the radial splines, a vectorizable loop filling a local table).

Each entry is `emit(printer, b, args)`: `args` the printed operands (a vector is a tuple of three
values, an array an element pointer), `b` the IRBuilder at the current position; `printer` gives
the float type (`real`, `rconst`), intrinsic and C library declarations, `flag` (`err |=`) and
`safe` (an index read from memory, 0 on the side of a `Select` not chosen).
These are the LLVM counterparts of the C++ module template's `mt_*` helpers.
"""

from __future__ import annotations

import math

import llvmlite.ir as ll

from ..schedule.plan import Unsupported
from .emit import I64, i64

#: real functions that are one LLVM intrinsic
LLVM_INTRINSICS = {
    "sqrt": "llvm.sqrt", "exp": "llvm.exp", "log": "llvm.log", "sin": "llvm.sin", "cos": "llvm.cos",
    "tanh": "llvm.tanh", "acos": "llvm.acos", "asin": "llvm.asin", "floor": "llvm.floor",
    "round": "llvm.roundeven",  # half to even, as numpy, torch and C's nearbyint
    "abs": "llvm.fabs",
}

#: real functions of the C library (no LLVM intrinsic for them), resolved by the JIT
LIBM_FUNCTIONS = {"erf": 1, "erfc": 1, "atan2": 2, "log1p": 1}


def _intrinsic(name):
    def emit(p, b, args):
        return b.call(p.intrinsic(name), list(args))
    return emit


def _libm(name, arity):
    def emit(p, b, args):
        return b.call(p.libm(name, arity), list(args))
    return emit


def imod(b, x, y):
    """Floor-mod of integers (the sign of `y`), 0 when `y` is 0."""
    zero = b.icmp_signed("==", y, i64(0))
    r = b.srem(x, b.select(zero, i64(1), y))
    fix = b.and_(b.icmp_signed("!=", r, i64(0)),
                 b.icmp_signed("!=", b.icmp_signed("<", r, i64(0)), b.icmp_signed("<", y, i64(0))))
    return b.select(zero, i64(0), b.select(fix, b.add(r, y), r))


def fmod(p, b, x, y):
    """Floor-mod of reals (the sign of `y`)."""
    r = b.frem(x, y)
    zero = p.rconst(0.0)
    fix = b.and_(b.fcmp_unordered("!=", r, zero),
                 b.icmp_signed("!=", b.fcmp_ordered("<", r, zero), b.fcmp_ordered("<", y, zero)))
    return b.select(fix, b.fadd(r, y), r)


def ipow(b, x, exponent):
    """`x ** exponent` of integers: by squaring for a constant exponent, else a product loop in
    selects is not worth it: only constants reach here (the IR's integer powers)."""
    if not isinstance(exponent, ll.Constant):
        raise Unsupported("an integer power with a variable exponent")
    exponent = int(exponent.constant)
    result, base = i64(1), x
    while exponent > 0:
        if exponent & 1:
            result = b.mul(result, base)
        exponent >>= 1
        if exponent:
            base = b.mul(base, base)
    return result


def _cross(p, b, args):
    u, v = args
    return tuple(b.fsub(b.fmul(u[(k + 1) % 3], v[(k + 2) % 3]), b.fmul(u[(k + 2) % 3], v[(k + 1) % 3]))
                 for k in range(3))


def _dot(p, b, args):
    u, v = args
    total = b.fmul(u[0], v[0])
    total = b.fadd(total, b.fmul(u[1], v[1]))
    return b.fadd(total, b.fmul(u[2], v[2]))


def _component(p, b, args):
    v, k = args
    return b.select(b.icmp_signed("==", k, i64(0)), v[0], b.select(b.icmp_signed("==", k, i64(1)), v[1], v[2]))


def _cosine_cutoff(p, b, args):
    r, c, w = args
    one, pi = p.rconst(1.0), p.rconst(math.pi)
    inside = b.fcmp_ordered("<=", r, b.fsub(c, w))
    outside = b.fcmp_ordered(">=", r, c)
    s = b.fdiv(b.fmul(pi, b.fadd(b.fsub(r, c), w)), w)
    smooth = b.fmul(p.rconst(0.5), b.fadd(one, b.call(p.intrinsic("llvm.cos"), [s])))
    return b.select(inside, one, b.select(outside, p.rconst(0.0), smooth))


def _d_cosine_cutoff(p, b, args):
    r, c, w = args
    pi = p.rconst(math.pi)
    flat = b.or_(b.fcmp_ordered("<=", r, b.fsub(c, w)), b.fcmp_ordered(">=", r, c))
    s = b.fdiv(b.fmul(pi, b.fadd(b.fsub(r, c), w)), w)
    value = b.fdiv(b.fmul(b.fmul(p.rconst(-0.5), pi), b.call(p.intrinsic("llvm.sin"), [s])), w)
    return b.select(flat, p.rconst(0.0), value)


def _d_gto(p, b, args):
    """d gto(r, n) / dr = (n r^(n-1) - r^(n+1) / w^2) exp(-r^2 / (2 w^2))."""
    x, y, w = args
    exp, pow_ = p.intrinsic("llvm.exp"), p.intrinsic("llvm.pow")
    one, zero = p.rconst(1.0), p.rconst(0.0)
    w2 = b.fmul(w, w)
    lower = b.select(b.fcmp_ordered(">", y, zero), b.fmul(y, b.call(pow_, [x, b.fsub(y, one)])), zero)
    upper = b.fdiv(b.call(pow_, [x, b.fadd(y, one)]), w2)
    gaussian = b.call(exp, [b.fdiv(b.fneg(b.fmul(x, x)), b.fmul(p.rconst(2.0), w2))])
    return b.fmul(b.fsub(lower, upper), gaussian)


def _check(p, b, args):
    """`i` when `0 <= i < n`, else 0 and error bit 2."""
    i, n = args
    bad = b.icmp_unsigned(">=", i, n)
    p.flag(b.shl(b.zext(bad, I64), i64(1)))
    return b.select(bad, i64(0), i)


def _read(p, b, args):
    """`flat[off]`, or 0 and error bit 1 when `off < 0`."""
    flat, offset = args
    bad = b.icmp_signed("<", offset, i64(0))
    p.flag(b.zext(bad, I64))
    value = b.load(b.gep(flat, [p.safe(b.select(bad, i64(0), offset))]))
    return b.select(bad, ll.Constant(flat.type.pointee, 0.0), value)


def _dense(p, b, args):
    """-1 when `acc < 0` or `v - lo` outside `[0, n)`, else `acc * n + v - lo`."""
    acc, v, lo, n = args
    shifted = b.sub(v, lo)
    bad = b.or_(b.icmp_signed("<", acc, i64(0)), b.icmp_unsigned(">=", shifted, n))
    return b.select(bad, i64(-1), b.add(b.mul(acc, n), shifted))


def _at(p, b, args):
    """-1 when `blk < 0` or `idx < 0`, else `table[blk * stride + idx]`."""
    table, blk, stride, idx = args
    bad = b.or_(b.icmp_signed("<", blk, i64(0)), b.icmp_signed("<", idx, i64(0)))
    offset = p.safe(b.select(bad, i64(0), b.add(b.mul(blk, stride), idx)))
    return b.select(bad, i64(-1), b.load(b.gep(table, [offset])))


def _seg(p, b, args):
    """`offsets[a + end]` of a CSR segment, 0 for `a` outside `[0, n)`."""
    offsets, n, a, end = args
    ok = b.icmp_unsigned("<", a, n)
    value = b.load(b.gep(offsets, [p.safe(b.add(b.select(ok, a, i64(0)), end))]))
    return b.select(ok, value, i64(0))


def _select_int(predicate):
    def emit(p, b, args):
        x, y = args
        return b.select(b.icmp_signed(predicate, x, y), x, y)
    return emit


#: `nest.INTRINSICS` name -> emit(printer, builder, printed args)
PRIMITIVES = {name: _intrinsic(symbol) for name, symbol in LLVM_INTRINSICS.items()}
PRIMITIVES.update({name: _libm(name, arity) for name, arity in LIBM_FUNCTIONS.items()})
PRIMITIVES.update({
    "pow": _intrinsic("llvm.pow"),
    "fmod": lambda p, b, args: fmod(p, b, *args),
    "iabs": lambda p, b, args: b.select(b.icmp_signed("<", args[0], i64(0)), b.neg(args[0]), args[0]),
    "imod": lambda p, b, args: imod(b, *args),
    "ipow": lambda p, b, args: ipow(b, *args),
    "imin": _select_int("<"),
    "imax": _select_int(">"),
    "cross": _cross,
    "dot": _dot,
    "norm": lambda p, b, args: b.call(p.intrinsic("llvm.sqrt"), [_dot(p, b, (args[0], args[0]))]),
    "component": _component,
    "cosine_cutoff": _cosine_cutoff,
    "d_cosine_cutoff": _d_cosine_cutoff,
    "d_gto": _d_gto,
    "check": _check,
    "read": _read,
    "dense": _dense,
    "at": _at,
    "seg": _seg,
})


# ---- the radial splines (FILL_FUNCTIONS) --------------------------------------------------------------


def fill_spline(p, b, args, output, template, derivative: bool = False):
    """The cubic Hermite spline of `soap_radial` (its derivative in double precision from float64
    tables when `derivative`) for every `(l, n)` at once into `output`: `args` are `(r, values,
    derivatives, step, n_intervals, cutoff)` as the C++ `mt_spline`, `template` `(NL, NR)`; error
    bit 4 (and zeros) beyond the cutoff. A vectorizable loop."""
    r, values, derivatives, step, n_intervals, cutoff = args
    count = int(template[0]) * int(template[1])
    real = ll.DoubleType() if derivative else p.real

    def c(value):
        return ll.Constant(real, float(value))
    ok = b.fcmp_ordered("<=", r, cutoff if cutoff.type == p.real else b.fptrunc(cutoff, p.real))
    p.flag(b.select(ok, i64(0), i64(4)))
    step = step if step.type == real else (b.fpext(step, real) if real == ll.DoubleType() else b.fptrunc(step, real))
    x = b.fdiv(r if real == p.real else b.fpext(r, real), step)
    k = b.fptosi(b.call(p.intrinsic("llvm.floor", real), [b.select(ok, x, c(0.0))]), I64)
    last = b.sub(n_intervals, i64(1))
    k = b.select(b.icmp_signed(">", k, last), last, k)
    k = b.select(b.icmp_signed("<", k, i64(0)), i64(0), k)
    t = b.fsub(b.select(ok, x, c(0.0)), b.sitofp(k, real))
    scale = b.select(ok, c(1.0), c(0.0))
    t2 = b.fmul(t, t)
    if derivative:  # 6 (t^2 - t) / step (p0 - p1) + (3 t^2 - 4 t + 1) d0 + (3 t^2 - 2 t) d1
        a = b.fmul(b.fdiv(b.fmul(c(6.0), b.fsub(t2, t)), step), scale)
        h0 = b.fmul(b.fadd(b.fsub(b.fmul(c(3.0), t2), b.fmul(c(4.0), t)), c(1.0)), scale)
        h1 = b.fmul(b.fsub(b.fmul(c(3.0), t2), b.fmul(c(2.0), t)), scale)

        def entry(b, v0, v1, d0, d1):
            value = b.fadd(b.fmul(a, b.fsub(v0, v1)), b.fadd(b.fmul(h0, d0), b.fmul(h1, d1)))
            return value if p.real == real else b.fptrunc(value, p.real)
    else:
        t3 = b.fmul(t2, t)
        h00 = b.fadd(b.fsub(b.fmul(c(2.0), t3), b.fmul(c(3.0), t2)), c(1.0))
        h10 = b.fmul(b.fadd(b.fsub(t3, b.fmul(c(2.0), t2)), t), step)
        h01 = b.fadd(b.fmul(c(-2.0), t3), b.fmul(c(3.0), t2))
        h11 = b.fmul(b.fsub(t3, t2), step)
        h00, h10, h01, h11 = (b.fmul(h, scale) for h in (h00, h10, h01, h11))

        def entry(b, v0, v1, d0, d1):
            return b.fadd(b.fadd(b.fmul(h00, v0), b.fmul(h10, d0)), b.fadd(b.fmul(h01, v1), b.fmul(h11, d1)))
    start = b.mul(k, i64(count))

    def body(b, j):
        p0 = b.add(start, j)
        p1 = b.add(p0, i64(count))
        value = entry(b, b.load(b.gep(values, [p0])), b.load(b.gep(values, [p1])),
                      b.load(b.gep(derivatives, [p0])), b.load(b.gep(derivatives, [p1])))
        b.store(value, b.gep(output, [j]))
    p.counted(i64(0), i64(count), body, "spline")


#: `nest.FILL_FUNCTIONS` name -> fill(printer, builder, printed args, output pointer, template)
FILLS = {
    "spline": fill_spline,
    "spline_derivative": lambda p, b, args, output, template: fill_spline(p, b, args, output, template, True),
}
