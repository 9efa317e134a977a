"""The LLVM printer of the loop-nest IR (`codegen/llvm/printer.py`) on nests built by hand.

Each kernel is printed, optimized and JIT-compiled by llvmlite, run through ctypes (whole, and
in chunks of its parallel driver as `LLVMKernel` runs it) and compared with numpy: loops over
ranges and CSR segments, equality bindings, lets, locals, guards (continue and return), ifs,
local arrays and views, stores, the primitive table, the error bits, the radial spline fill and
the spherical harmonics routines of `schedule/sph.py`. Each nest goes through the lowering's
`schedule/bounds.py` first, as the backend's do (the reads it marks in bounds are printed unmasked).
"""

import ctypes
import math

import llvmlite.binding as llvm
import llvmlite.ir as ll
import numpy as np
import pytest

from mtdsl.codegen.llvm.jit import optimize
from mtdsl.codegen.llvm.printer import NestPrinter
from mtdsl.codegen.schedule import nest
from mtdsl.codegen.schedule.bounds import mark_in_bounds
from mtdsl.codegen.schedule.nest import (INT, REAL, VEC, Alloc, Binary, Cast, Const, Fill, Guard, If, Intrinsic,
                                         Kernel, Lane, Let, Load, Local, Loop, Param, Ref, Select, Store, Update, View)
from mtdsl.codegen.schedule.sph import sph_routine
from mtdsl.math.sph import spherical_harmonics

_TYPE = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
_KEEP = []  # engines whose code the returned functions call


def i(value):
    return Const(int(value), INT)


def r(value):
    return Const(float(value))


def ref(name, type_=INT):
    return Ref(name, type_)


def compiled(kernel: Kernel, routines=(), dtype="float64"):
    """The printed kernel, JIT-compiled: `function(arrays, scalars, lo, hi) -> err`."""
    module = ll.Module(name="t")
    module.triple = llvm.get_process_triple()
    real = ll.DoubleType() if dtype == "float64" else ll.FloatType()
    function = NestPrinter(module, real, {routine.name: routine for routine in routines}).kernel(mark_in_bounds(kernel))
    assert function.name == kernel.symbol and len(function.args) == 4
    parsed, machine = optimize(str(module))
    engine = llvm.create_mcjit_compiler(parsed, machine)
    engine.finalize_object()
    _KEEP.append(engine)
    raw = _TYPE(engine.get_function_address(kernel.symbol))

    def call(arrays, scalars=(), lo=0, hi=2**63 - 1):
        pointers = (ctypes.c_void_p * max(len(arrays), 1))(*[a.ctypes.data for a in arrays])
        values = (ctypes.c_int64 * max(len(scalars), 1))(*scalars)
        return int(raw(ctypes.addressof(pointers), ctypes.addressof(values), lo, hi))
    return call


def test_parallel_loop_lets_locals_guards_and_chunks():
    """out[a] = sum over b < a of x[b] * x[a], skipping odd a; the driver run whole and in chunks."""
    a, b = ref("a"), ref("b")
    xa = Let("xa", Load("x", a))
    inner = Loop("b", i(0), a, (Guard(Binary("ne", Load("x", b), r(0.0), nest.BOOL)),
                                Update("s", Binary("mul", Load("x", b), ref("xa", REAL), REAL))))
    body = (Guard(Binary("eq", Intrinsic("imod", (a, i(2)), INT), i(0), nest.BOOL), "even"), xa,
            Local("s", r(0.0)), inner, Store("out", a, ref("s", REAL)))
    kernel = Kernel("k", "mt_k", "direct", (Param("out", "output", REAL, ("buffer",)),
                                            Param("x", "array", REAL, ("x",)),
                                            Param("n", "scalar", INT, ("n_atoms", "S"))),
                    (Loop("a", i(0), ref("n"), body, parallel="dynamic"),), driver="a")
    call = compiled(kernel)
    x = np.random.default_rng(1).normal(size=11)
    x[3] = 0.0
    expected = np.array([0.0 if k % 2 else sum(x[j] * x[k] for j in range(k)) for k in range(11)])
    out = np.zeros(11)
    assert call([out, x], [11]) == 0
    np.testing.assert_allclose(out, expected, rtol=1e-14)
    chunked = np.zeros(11)
    for lo, hi in ((0, 4), (4, 5), (5, 11), (11, 20)):
        assert call([chunked, x], [11], lo, hi) == 0
    np.testing.assert_array_equal(chunked, out)


def test_segments_equal_bindings_ifs_and_views():
    """For each atom, its CSR segment of pairs; an equality-bound species rank; an If; a view."""
    offsets = np.array([0, 2, 2, 5], dtype=np.int64)
    first = np.array([0, 0, 2, 2, 2], dtype=np.int64)
    weights = np.arange(1.0, 6.0)
    rank = np.array([-1, 0, 1], dtype=np.int64)  # species value -> position, -1 absent
    species = np.array([2, 1, 0], dtype=np.int64)
    a, p, s = ref("a"), ref("p"), ref("s")
    seg = [Intrinsic("seg", (Ref("offsets", nest.ARRAY), i(3), a, i(end)), INT) for end in (0, 1)]
    rows = Loop("p", seg[0], seg[1], (
        Store("row", Binary("sub", p, seg[0], INT), Load("w", p)),
        If(Binary("gt", Load("w", p), r(3.5), nest.BOOL), (Store("out", a, r(100.0), True),)),
        Store("out", a, Load("w", p), True)), kind="segment")
    equal = Loop("s", Load("rank", Load("species", a, INT), INT), None, (
        Guard(Binary("ge", s, i(0), nest.BOOL)), Store("out", a, Cast(s, REAL), True)), kind="equal")
    body = (Alloc("table", 8, zero=True), View("row", "table", i(1)), rows, equal,
            Store("out", a, Load("table", i(1)), True))
    params = (Param("out", "output", REAL, ("buffer",)), Param("offsets", "array", INT, ("offsets",)),
              Param("w", "array", REAL, ("w",)), Param("rank", "array", INT, ("rank",)),
              Param("species", "array", INT, ("species",)), Param("first", "array", INT, ("first",)))
    kernel = Kernel("k", "mt_k", "direct", params, (Loop("a", i(0), i(3), body, parallel="dynamic"),), driver="a")
    call = compiled(kernel)
    out = np.zeros(3)
    assert call([out, offsets, weights, rank, species, first]) == 0
    expected = np.zeros(3)
    for atom in range(3):
        segment = range(offsets[atom], offsets[atom + 1])
        expected[atom] = sum(weights[q] + (100.0 if weights[q] > 3.5 else 0.0) for q in segment)
        expected[atom] += max(rank[species[atom]], 0) if rank[species[atom]] >= 0 else 0.0
        expected[atom] += weights[offsets[atom]] if len(segment) else 0.0  # row[0] = table[1]
    np.testing.assert_allclose(out, expected)


def test_error_bits_and_return_guard():
    """`check` sets bit 2 (and reads 0), `read` bit 1 (and reads 0); a return guard leaves early."""
    k = ref("k")
    body = (Let("j", Intrinsic("check", (Load("index", k, INT), i(4)), INT)),
            Let("v", Intrinsic("read", (Ref("flat", nest.ARRAY), Load("offset", k, INT)))),
            Store("out", k, Binary("add", Load("flat", ref("j")), ref("v", REAL), REAL)))
    params = (Param("out", "output", REAL, ("buffer",)), Param("flat", "array", REAL, ("flat",)),
              Param("index", "array", INT, ("index",)), Param("offset", "array", INT, ("offset",)),
              Param("go", "scalar", INT, ("go",)))
    kernel = Kernel("k", "mt_k", "direct", params,
                    (Guard(Binary("ne", ref("go"), i(0), nest.BOOL), exit="return"), Loop("k", i(0), i(3), body)))
    call = compiled(kernel)
    flat = np.array([1.0, 2.0, 3.0, 4.0])
    out = np.zeros(3)
    assert call([out, flat, np.array([0, 1, 2]), np.array([3, 2, 1])], [1]) == 0
    np.testing.assert_array_equal(out, [1 + 4, 2 + 3, 3 + 2])
    assert call([out, flat, np.array([0, 7, 2]), np.array([3, 2, 1])], [1]) == 2
    assert call([out, flat, np.array([0, 1, 2]), np.array([3, -1, 1])], [1]) == 1
    assert call([out, flat, np.array([9, 1, 2]), np.array([-1, 2, 1])], [1]) == 3
    out[:] = 7.0
    assert call([out, flat, np.array([9, 1, 2]), np.array([-1, 2, 1])], [0]) == 0  # returned first
    assert (out == 7.0).all()


_UNARY = {"sqrt": np.sqrt, "exp": np.exp, "log": np.log, "sin": np.sin, "cos": np.cos, "tanh": np.tanh,
          "erf": np.vectorize(math.erf), "erfc": np.vectorize(math.erfc), "floor": np.floor, "round": np.round,
          "abs": np.abs, "log1p": np.log1p, "acos": np.arccos, "asin": np.arcsin}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_primitive_table_against_numpy(dtype):
    names = sorted(_UNARY)
    x = np.array([0.3, 1.7, 2.5, -0.5, 40.0, -3.5, 0.9], dtype=dtype)
    k = ref("k")
    xk = Load("x", k)
    clipped = Select(Binary("gt", xk, r(1.0), nest.BOOL), r(0.5), Select(Binary("lt", xk, r(-1.0), nest.BOOL),
                                                                            r(-0.5), xk))
    positive = Intrinsic("abs", (xk,))
    stores = []
    for j, name in enumerate(names):
        argument = clipped if name in ("acos", "asin") else positive if name in ("sqrt", "log", "log1p") else xk
        stores.append(Store("out", Binary("add", Binary("mul", i(len(names) + 4), k, INT), i(j), INT),
                            Intrinsic(name, (argument,))))
    extra = [Intrinsic("atan2", (xk, r(0.7))), Intrinsic("pow", (positive, r(1.5))),
             Intrinsic("fmod", (xk, r(-0.8))), Cast(Intrinsic("imod", (i(-7), i(3)), INT), REAL)]
    for j, value in enumerate(extra, len(names)):
        stores.append(Store("out", Binary("add", Binary("mul", i(len(names) + 4), k, INT), i(j), INT), value))
    kernel = Kernel("k", "mt_k", "direct", (Param("out", "output", REAL, ("buffer",)),
                                            Param("x", "array", REAL, ("x",))), (Loop("k", i(0), i(len(x)), tuple(stores)),))
    call = compiled(kernel, dtype=dtype)
    out = np.zeros((len(x), len(names) + 4), dtype=dtype)
    assert call([out, x]) == 0
    x64 = x.astype(np.float64)
    for j, name in enumerate(names):
        clipped = np.where(x64 > 1, 0.5, np.where(x64 < -1, -0.5, x64))
        argument = clipped if name in ("acos", "asin") else np.abs(x64) if name in ("sqrt", "log", "log1p") else x64
        expected = _UNARY[name](argument)
        np.testing.assert_allclose(out[:, j], expected, rtol=1e-13 if dtype == "float64" else 2e-6,
                                   atol=1e-300 if dtype == "float64" else 1e-6, err_msg=name)
    tolerance = dict(rtol=1e-13) if dtype == "float64" else dict(rtol=2e-6)
    np.testing.assert_allclose(out[:, len(names)], np.arctan2(x64, 0.7), **tolerance)
    np.testing.assert_allclose(out[:, len(names) + 1], np.abs(x64) ** 1.5, **tolerance)
    np.testing.assert_allclose(out[:, len(names) + 2], np.mod(x64, -0.8), atol=1e-6, rtol=1e-5)
    assert (out[:, len(names) + 3] == (-7) % 3).all()


def test_vectors_integers_and_radial_closed_forms():
    k = ref("k")
    u, v = Load("u", k, VEC), Load("v", k, VEC)
    values = [Intrinsic("dot", (u, v)), Intrinsic("norm", (u,)), Lane(Intrinsic("cross", (u, v), VEC), 1),
              Intrinsic("component", (Binary("mul", u, r(2.0), VEC), i(2))),
              Intrinsic("cosine_cutoff", (Intrinsic("norm", (u,)), r(1.5), r(0.5))),
              Intrinsic("d_cosine_cutoff", (Intrinsic("norm", (u,)), r(1.5), r(0.5))),
              Intrinsic("d_gto", (Intrinsic("norm", (u,)), r(2.0), r(0.4))),
              Cast(Intrinsic("ipow", (Binary("add", k, i(2), INT), i(3)), INT), REAL),
              Cast(Intrinsic("imax", (Intrinsic("iabs", (Binary("sub", i(1), k, INT),), INT), i(1)), INT), REAL)]
    stores = tuple(Store("out", Binary("add", Binary("mul", i(len(values)), k, INT), i(j), INT), value)
                   for j, value in enumerate(values))
    params = (Param("out", "output", REAL, ("buffer",)), Param("u", "array", REAL, ("u",)),
              Param("v", "array", REAL, ("v",)))
    call = compiled(Kernel("k", "mt_k", "direct", params, (Loop("k", i(0), i(4), stores),)))
    rng = np.random.default_rng(3)
    uu, vv = rng.normal(size=(4, 3)) * 0.8, rng.normal(size=(4, 3))
    out = np.zeros((4, len(values)))
    assert call([out, uu, vv]) == 0
    rr = np.linalg.norm(uu, axis=1)
    s = np.pi * (rr - 1.5 + 0.5) / 0.5
    cutoff = np.where(rr <= 1.0, 1.0, np.where(rr >= 1.5, 0.0, 0.5 * (1 + np.cos(s))))
    dcutoff = np.where((rr <= 1.0) | (rr >= 1.5), 0.0, -0.5 * np.pi * np.sin(s) / 0.5)
    dgto = (2 * rr - rr**3 / 0.16) * np.exp(-rr**2 / (2 * 0.16))
    expected = np.stack([np.sum(uu * vv, axis=1), rr, np.cross(uu, vv)[:, 1], 2 * uu[:, 2], cutoff, dcutoff, dgto,
                         (np.arange(4) + 2.0) ** 3, np.maximum(np.abs(1 - np.arange(4)), 1)], axis=1)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("derivative", [False, True])
def test_spline_fill_interpolates_a_cubic_and_flags_beyond_the_cutoff(derivative):
    """Hermite interpolation is exact for a cubic: knots of f(r) = (r-1)^3 + r on [0, 2] in 8 steps,
    two (l, n) entries (the second 2 f); error bit 4 and zeros beyond the cutoff."""
    step, n_intervals, cutoff = 0.25, 8, 2.0
    knots = np.arange(n_intervals + 1) * step
    f, df = (knots - 1) ** 3 + knots, 3 * (knots - 1) ** 2 + 1
    values = np.stack([f, 2 * f], axis=1).ravel()  # [interval][entry]
    derivatives = np.stack([df, 2 * df], axis=1).ravel()
    k = ref("k")
    function = "spline_derivative" if derivative else "spline"
    array_type = nest.F64 if derivative else REAL
    body = (Alloc("t", 2), Fill(function, (Load("r", k), Ref("values", nest.ARRAY), Ref("derivatives", nest.ARRAY),
                                           r(step), i(n_intervals), r(cutoff)), "t", (1, 2)),
            Store("out", Binary("mul", k, i(2), INT), Load("t", i(0))),
            Store("out", Binary("add", Binary("mul", k, i(2), INT), i(1), INT), Load("t", i(1))))
    params = (Param("out", "output", REAL, ("buffer",)), Param("r", "array", REAL, ("r",)),
              Param("values", "array", array_type, ("values",)), Param("derivatives", "array", array_type, ("d",)))
    call = compiled(Kernel("k", "mt_k", "direct", params, (Loop("k", i(0), i(4), body),)))
    rs = np.array([0.0, 0.6, 1.33, 2.0])
    out = np.zeros((4, 2))
    assert call([out, rs, values, derivatives]) == 0
    exact = 3 * (rs - 1) ** 2 + 1 if derivative else (rs - 1) ** 3 + rs
    np.testing.assert_allclose(out, np.stack([exact, 2 * exact], axis=1), rtol=1e-12, atol=1e-12)
    assert call([out, np.array([0.5, 2.5, 1.0, 0.1]), values, derivatives]) == 4
    assert (out[1] == 0).all()


@pytest.mark.parametrize("convention", ["metatensor", "e3nn"])
@pytest.mark.parametrize("gradient", [False, True])
def test_sph_routines_printed_inline(convention, gradient):
    """The spherical harmonics routine filled into a local array per vector, copied out."""
    top = 3
    width = 2 * top + 1
    routine = sph_routine("dsph3" if gradient else "sph3", top, convention, gradient=gradient)
    size = routine.size
    k, j = ref("k"), ref("j")
    body = (Alloc("t", size), Fill(routine.name, (Load("v", k, VEC),), "t"),
            Loop("j", i(0), i(size), (Store("out", Binary("add", Binary("mul", k, i(size), INT), j, INT),
                                            Load("t", j)),), simd=True))
    params = (Param("out", "output", REAL, ("buffer",)), Param("v", "array", REAL, ("v",)))
    call = compiled(Kernel("k", "mt_k", "direct", params, (Loop("k", i(0), i(5), body),)), (routine,))
    vectors = np.concatenate([np.random.default_rng(5).normal(size=(4, 3)), np.zeros((1, 3))])
    out = np.zeros((5, size))
    assert call([out, vectors]) == 0
    values, grads = spherical_harmonics(vectors, top, convention, gradients=True)
    for l in range(top + 1):
        rows = slice(l * l, (l + 1) ** 2)
        if gradient:
            table = out.reshape(5, top + 1, width, 3)[:, l, top - l: top + l + 1]
            np.testing.assert_allclose(table, np.transpose(grads[:, :, rows], (0, 2, 1)), atol=1e-12)
        else:
            np.testing.assert_allclose(out.reshape(5, top + 1, width)[:, l, top - l: top + l + 1], values[:, rows],
                                       atol=1e-13)


def test_select_masks_only_reads_that_may_leave_their_array():
    """In a Select both sides are computed: a read on the side not chosen is masked to entry 0,
    unless the lowering marked it in bounds (`schedule/bounds.py`: a local array read at an index
    constants bound inside it; issue #15: the mask made a contiguous vector load a gather); loops
    count from 0. Results equal numpy either way."""
    q, m = ref("q"), ref("m")
    # c[q] (q in [0, 4), c of 4): inside; t[m - 1] (m in [0, 4)): may be -1, masked where m == 0
    ok = Binary("gt", m, i(0), nest.BOOL)
    value = Binary("add", Cast(Load("c", q, INT), REAL), Load("t", Binary("sub", m, i(1), INT)), REAL)
    body = (Alloc("c", 4, INT), Alloc("t", 4),
            Loop("q", i(0), i(4), (Store("c", q, Binary("mul", q, i(10), INT)),)),
            Loop("m", i(0), i(4), (Store("t", m, Cast(m, REAL)),)),
            Loop("m", i(0), i(4), (Loop("q", i(0), i(4), (
                Store("out", Binary("add", Binary("mul", m, i(4), INT), q, INT),
                      Select(ok, value, r(-1.0), REAL)),)),)))
    kernel = Kernel("k", "mt_k", "direct", (Param("out", "output", REAL, ("buffer",)),), body)
    module = ll.Module(name="t")
    text = str(NestPrinter(module, ll.DoubleType()).kernel(mark_in_bounds(kernel)))
    # one masked index (t[m - 1]), none for c[q]
    masked = [line for line in text.splitlines() if "select" in line and line.rstrip().endswith("i64 0")]
    assert len(masked) == 1, masked
    # the printer decides nothing: unmarked, both reads are masked
    unmarked = str(NestPrinter(ll.Module(name="t"), ll.DoubleType()).kernel(kernel))
    assert len([line for line in unmarked.splitlines() if "select" in line and line.rstrip().endswith("i64 0")]) == 2
    out = np.zeros(16)
    assert compiled(kernel)([out]) == 0
    expected = [[-1.0 if mm == 0 else 10.0 * qq + mm - 1 for qq in range(4)] for mm in range(4)]
    np.testing.assert_array_equal(out.reshape(4, 4), expected)
    # a loop from a non-zero start counts from 0 and offsets its variable
    shifted = Kernel("k", "mt_k", "direct", (Param("out", "output", REAL, ("buffer",)),),
                     (Loop("m", i(2), i(5), (Store("out", Binary("sub", m, i(2), INT), Cast(m, REAL)),)),))
    out = np.zeros(3)
    assert compiled(shifted)([out]) == 0
    np.testing.assert_array_equal(out, [2.0, 3.0, 4.0])
