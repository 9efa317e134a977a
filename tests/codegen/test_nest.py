"""The loop-nest IR (`codegen/schedule/nest.py`): the routines both backends print, and `--emit nest`.

The spherical harmonics are lowered once to straight-line routines (`schedule/sph.py`); here a
routine is evaluated statement by statement (a few lines of Python, independent of either
printer) against `mtdsl.math.sph`, values and gradients, both conventions, the origin included.
The printers themselves are checked by the backend parity tests (test_backends.py, test_llvm.py).
"""

import math
import pathlib
import re

import numpy as np
import pytest

from mtdsl.cli import main
from mtdsl.codegen.cpp import printer, render_module
from mtdsl.codegen.schedule.derived import extended_module
from mtdsl.codegen.schedule.kernel import ModuleLowering
from mtdsl.compile import compile
from mtdsl.codegen.schedule import abi, nest
from mtdsl.codegen.schedule.sph import sph_routine
from mtdsl.math.sph import spherical_harmonics

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def evaluate(expr, env):
    if isinstance(expr, nest.Const):
        return expr.value
    if isinstance(expr, nest.Ref):
        return env[expr.name]
    if isinstance(expr, nest.Lane):
        return evaluate(expr.vector, env)[expr.lane]
    if isinstance(expr, nest.Unary):
        assert expr.op == "neg"
        return -evaluate(expr.operand, env)
    if isinstance(expr, nest.Binary):
        a, b = evaluate(expr.left, env), evaluate(expr.right, env)
        return {"add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b, "div": lambda: a / b,
                "eq": lambda: a == b}[expr.op]()
    if isinstance(expr, nest.Select):
        return evaluate(expr.if_true if evaluate(expr.condition, env) else expr.if_false, env)
    if isinstance(expr, nest.Intrinsic):
        assert expr.name == "sqrt"
        return math.sqrt(evaluate(expr.args[0], env))
    raise AssertionError(f"unexpected {expr!r}")


def run(routine, vector):
    env, out = {"v": tuple(float(x) for x in vector)}, [None] * routine.size
    for statement in routine.body:
        if isinstance(statement, nest.Let):
            assert statement.name not in env, "a name bound twice"
            env[statement.name] = evaluate(statement.value, env)
        else:
            out[statement.index] = evaluate(statement.value, env)
    assert all(value is not None for value in out), "an entry of the table left unwritten"
    return np.array(out)


@pytest.mark.parametrize("convention", ["metatensor", "e3nn"])
def test_sph_routines_match_the_reference(convention):
    top, width = 3, 7
    vectors = np.random.default_rng(7).normal(size=(4, 3))
    vectors = np.concatenate([vectors, np.zeros((1, 3))])  # the origin: Y_0^0 and zero gradients
    values, grads = spherical_harmonics(vectors, top, convention, gradients=True)
    for k, vector in enumerate(vectors):
        table = run(sph_routine("y", top, convention), vector).reshape(top + 1, width)
        dtable = run(sph_routine("dy", top, convention, gradient=True), vector).reshape(top + 1, width, 3)
        for l in range(top + 1):
            rows = slice(l * l, (l + 1) ** 2)
            np.testing.assert_allclose(table[l, top - l: top + l + 1], values[k, rows], atol=1e-13)
            np.testing.assert_allclose(dtable[l, top - l: top + l + 1], grads[k, :, rows].T, atol=1e-12)
            # the padding of |m| > l is zero, as the interpreter's rows
            assert not table[l, : top - l].any() and not table[l, top + l + 1:].any()


def test_text_form():
    routine = sph_routine("mt_sph1", 1, "metatensor")
    text = nest.text(routine)
    assert text.startswith("routine mt_sph1(v: vec) -> out[6]:")
    assert "let r: real = sqrt((((v.x * v.x) + (v.y * v.y)) + (v.z * v.z)))" in text
    assert "out[1] = (origin ? 0.28209479177387814 : (0.28209479177387814 * 1.0))" in text


def test_compile_emits_the_nest(capsys):
    """`--emit nest` shows the nest the C++ backend prints: routines, every kernel with its arguments,
    loops with their notes, guards, tables, local accumulators, simd marks, fused kernels."""
    path = str(EXAMPLES / "soap_power_spectrum.mt")
    assert main(["compile", path, "--emit", "nest", "--set", "n_radial=3", "--gradients", "positions"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("routine mt_sph4(v: vec) -> out[45]:") and "routine mt_dsph4(v: vec)" in text
    assert "kernel ps (direct): mt_kernel_1(mt_buffer: output real," in text
    assert re.search(r"parallel\(dynamic, 4\) for v1 in \[0, s1\):  # i in atoms\(S\)", text)
    assert re.search(r"guard \(v\d+ <= v\d+\)  # where \(b1 <= b2\)", text)
    # a value tabulated over l outside the loops between (the prefactor of ps, with 3 radial channels)
    assert re.search(r"alloc T\d+: real\[5\]  # .* for every l", text)
    # the harmonics of each pair's vector, read from the pair list, filled once per pair (rho's pass
    # over pairs, as the model runs it: codegen/schedule/parts.py)
    assert re.search(r"let (d\d+): vec = a\d+\[v\d+\]\.xyz\n +alloc Y\d+: real\[45\]\n +fill Y\d+ = mt_sph4\(\1\)", text)
    # the gradient kernels: local accumulators, simd channel loops, and fused kernels whose members
    # write their own buffers
    assert "kernel ·scatter·dps/dpositions#0 (accumulate):" in text and re.search(r"alloc A\d+: real\[27\] = 0", text)
    assert re.search(r"simd for v\d+ in \[0, 3\):  # ·α in xyz", text)
    assert "(fused): mt_fused_0(mt_buffer0: output real, mt_buffer1: output real" in text
    assert "mt_buffer1[" in text and "dstrain" not in text


def test_the_nest_is_whole():
    """Every kernel the C++ backend compiles is a nest whose every node is of the vocabulary, and
    the C++ source is that nest printed (nothing else decides it): one kernel per native function,
    arguments in the same order."""
    model = compile(EXAMPLES / "soap_power_spectrum.mt", backend="cpp")
    module, _ = extended_module(model.module, model.gradient_kernels)
    kernels, _ = ModuleLowering(module).lower()
    rendered = render_module(module)
    assert kernels.keys() == rendered.kernels.keys() and len(kernels) >= 6
    for name, lowered in kernels.items():
        vocabulary = set(nest.Stmt.__args__) | set(nest.Expr.__args__) | {int}
        assert {type(node) for node in walk(lowered.nest.body)} <= vocabulary, name
        assert lowered.arrays == rendered.kernels[name].arrays and lowered.scalars == rendered.kernels[name].scalars
        assert printer.kernel(lowered.nest) == rendered.kernels[name].source


def walk(body):
    """Every statement and expression of a nest body."""
    for statement in body:
        yield statement
        for field in statement.__slots__:
            value = getattr(statement, field)
            if isinstance(value, tuple) and value and not isinstance(value[0], (str, int)):
                yield from walk(value)
            elif hasattr(value, "__slots__"):
                yield from walk_expr(value)


def walk_expr(expr):
    yield expr
    for child in nest.children(expr):
        yield from walk_expr(child)


def test_text_form_of_statements():
    """The text form names each statement kind and its flags (what `--emit nest` shows)."""
    i = nest.Ref("i", nest.INT)
    body = (nest.Guard(nest.Binary("lt", i, nest.Const(3, nest.INT), nest.BOOL), "where", "return"),
            nest.Alloc("T", 4, nest.REAL, True, "a table"),
            nest.Fill("spline", (nest.Const(1.0), nest.Ref("a1", nest.ARRAY)), "T", (2, 2)),
            nest.Loop("v", nest.Load("a2", i, nest.INT), None, (nest.Store("T", i, nest.Load("T", 0), True),), "equal"),
            nest.Loop("k", nest.Const(0, nest.INT), nest.Const(4, nest.INT), (), "domain", "", True, "k in range"))
    kernel = nest.Kernel("t", "mt_kernel_0", "direct", (nest.Param("a1", "array", nest.REAL, abi.ParamValues("w")),), body)
    assert nest.text(kernel).splitlines() == [
        "kernel t (direct): mt_kernel_0(a1: array real)",
        "    arg a1 = param w",
        "    guard (i < 3) else return  # where",
        "    alloc T: real[4] = 0  # a table",
        "    fill T = spline<2, 2>(1.0, a1)",
        "    with v = a2[i]:",
        "        T[i] += T[0]",
        "    simd for k in [0, 4):  # k in range",
        "        pass",
    ]
    assert nest.sets_error(nest.Intrinsic("check", (i, i), nest.INT)) and not nest.sets_error(nest.Load("T", i))
