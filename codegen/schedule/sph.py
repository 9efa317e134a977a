"""Real spherical harmonics and their gradients as straight-line routines of the loop-nest IR.

`sph_routine(name, top, convention)` fills `out[l * (2 top + 1) + m + top]` for
every `(l, m)` up to `top` (zeros for `|m| > l`, as the interpreter's padded
rows); `gradient=True` fills `out[(l * (2 top + 1) + m + top) * 3 + c]` with
`d sph(v, l, m) / d v_c`. Both are the recurrences of `mtdsl.math.sph`
(docs/builtins.md) generated for that degree: `c_m + i s_m = (x + i y)^m` and
the scaled Legendre `Q_l^m(z)` of the unit vector, times the normalization
(`schedule/tables.py`), then for e3nn the literal change of basis `B_l`.

Gradients, as `mtdsl.math.sph`: for `Y(v) = P(v / r)` with `P` homogeneous of
degree `l`, `dY/dv = (grad P(u) - l P(u) u) / r`; `dQ_l^m/dx = -x Q_{l-1}^{m+1}`,
`dQ_l^m/dy = -y Q_{l-1}^{m+1}`, `dQ_l^m/dz = (l + m) Q_{l-1}^m`, `d c_m/dx = m c_{m-1}`,
`d c_m/dy = -m s_{m-1}`, `d s_m/dx = m s_{m-1}`, `d s_m/dy = m c_{m-1}`.

At the origin (`r == 0`) every entry is selected to its limit: `Y_0^0` for the
values, zero elsewhere and for the gradients. Written once; the C++ and LLVM
backends only print the routine.
"""

from __future__ import annotations

import functools

from mtdsl.math.wigner import e3nn_change_of_basis

from .nest import BOOL, VEC, Binary, Intrinsic, Lane, Let, Ref, Routine, Select, Store, Unary
from .nest import add, div, mul, real, sub, total
from .tables import sph_normalization


@functools.lru_cache(maxsize=64)
def sph_routine(name: str, top: int, convention: str, gradient: bool = False) -> Routine:
    if convention not in ("metatensor", "e3nn"):
        raise ValueError(f"unknown sph convention {convention!r}")
    width = 2 * top + 1
    body: list = []

    def let(label: str, value, type_=None):
        body.append(Let(label, value))
        return Ref(label, type_ or value.type)

    v = Ref("v", VEC)
    vx, vy, vz = (Lane(v, k) for k in range(3))
    r = let("r", Intrinsic("sqrt", (add(add(mul(vx, vx), mul(vy, vy)), mul(vz, vz)),)))
    origin = let("origin", Binary("eq", r, real(0.0), BOOL))
    safe_r = let("safe_r", Select(origin, real(1.0), r))
    x, y, z = (let(axis, div(component, safe_r)) for axis, component in zip("xyz", (vx, vy, vz)))
    inv_r = let("inv_r", div(real(1.0), safe_r)) if gradient else None

    # c_m + i s_m = (x + i y)^m and the scaled Legendre Q_l^m(z)
    cs, ss = [real(1.0)], [real(0.0)]
    for m in range(1, top + 1):
        cs.append(let(f"c{m}", sub(mul(x, cs[m - 1]), mul(y, ss[m - 1]))))
        ss.append(let(f"s{m}", add(mul(x, ss[m - 1]), mul(y, cs[m - 1]))))
    q = {(0, 0): real(1.0)}
    for m in range(1, top + 1):
        q[(m, m)] = let(f"q{m}_{m}", mul(real(2 * m - 1), q[(m - 1, m - 1)]))
    for m in range(0, top):
        q[(m + 1, m)] = let(f"q{m + 1}_{m}", mul(mul(real(2 * m + 1), z), q[(m, m)]))
    for m in range(0, top + 1):
        for l in range(m + 2, top + 1):
            numerator = sub(mul(mul(real(2 * l - 1), z), q[(l - 1, m)]), mul(real(l + m - 1), q[(l - 2, m)]))
            q[(l, m)] = let(f"q{l}_{m}", div(numerator, real(l - m)))

    def qq(l, m):
        return q[(l, m)] if 0 <= m <= l else real(0.0)

    lanes = 3 if gradient else 1
    out: dict = {}  # index of `out` -> value away from the origin
    for l in range(top + 1):
        metatensor = {}  # m -> the metatensor-convention value (or its gradient's 3 lanes)
        for m in range(0, l + 1):
            norm = real(sph_normalization(l, m))
            if not gradient:
                if m == 0:
                    metatensor[0] = (mul(norm, q[(l, 0)]),)
                else:
                    metatensor[m] = (mul(mul(norm, q[(l, m)]), cs[m]),)
                    metatensor[-m] = (mul(mul(norm, q[(l, m)]), ss[m]),)
                continue
            up, down = qq(l - 1, m + 1), qq(l - 1, m)
            dq = (Unary("neg", mul(x, up)), Unary("neg", mul(y, up)), mul(real(l + m), down))
            if m == 0:
                parts = [(0, dq, q[(l, 0)])]
            else:
                dc = (mul(real(m), cs[m - 1]), mul(real(-m), ss[m - 1]), real(0.0))
                ds = (mul(real(m), ss[m - 1]), mul(real(m), cs[m - 1]), real(0.0))
                parts = [(m, tuple(add(mul(dq[k], cs[m]), mul(q[(l, m)], dc[k])) for k in range(3)),
                          mul(q[(l, m)], cs[m])),
                         (-m, tuple(add(mul(dq[k], ss[m]), mul(q[(l, m)], ds[k])) for k in range(3)),
                          mul(q[(l, m)], ss[m]))]
            for order, grad, value in parts:
                tag = f"{l}_{'n' if order < 0 else ''}{abs(order)}"
                lp = let(f"lp{tag}", mul(real(l), value))
                metatensor[order] = tuple(let(f"g{tag}_{'xyz'[k]}", mul(mul(norm, sub(grad[k], mul(lp, u))), inv_r))
                                          for k, u in enumerate((x, y, z)))
        if convention == "metatensor":
            for m in range(-l, l + 1):
                for k in range(lanes):
                    out[(l * width + top + m) * lanes + k] = metatensor[m][k]
        else:
            basis = e3nn_change_of_basis(l)
            if not gradient:  # named once, read by several rows of B_l
                metatensor = {m: (let(f"y{l}_{'n' if m < 0 else ''}{abs(m)}", lane[0]),) for m, lane in metatensor.items()}
            for a in range(2 * l + 1):
                for k in range(lanes):
                    terms = [mul(real(basis[a, b]), metatensor[b - l][k]) for b in range(2 * l + 1) if basis[a, b] != 0.0]
                    out[(l * width + top - l + a) * lanes + k] = total(terms, real(0.0))

    at_origin = {top: real(sph_normalization(0, 0))} if not gradient else {}
    for index in range((top + 1) * width * lanes):
        value = out.get(index)
        limit = at_origin.get(index, real(0.0))
        if value is None:
            body.append(Store("out", index, limit))
        else:
            body.append(Store("out", index, Select(origin, limit, value)))
    return Routine(name, (("v", VEC),), "out", (top + 1) * width * lanes, tuple(body))
