"""The loop-nest IR (`codegen/schedule/nest.py`): the routines both backends print, and `--emit nest`.

The spherical harmonics are lowered once to straight-line routines (`schedule/sph.py`); here a
routine is evaluated statement by statement (a few lines of Python, independent of either
printer) against `mtdsl.math.sph`, values and gradients, both conventions, the origin included.
The printers themselves are checked by the backend parity tests (test_backends.py, test_llvm.py).
"""

import math
import pathlib

import numpy as np
import pytest

from mtdsl.cli import main
from mtdsl.codegen.schedule import nest
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
    path = str(EXAMPLES / "soap_power_spectrum.mt")
    assert main(["compile", path, "--emit", "nest", "--set", "n_radial=3", "--gradients", "positions"]) == 0
    text = capsys.readouterr().out
    assert "kernel ps (direct):" in text and "parallel(dynamic) for i in {atoms(S)}:" in text
    assert "guard {(b1 <= b2)}  # where" in text
    # a value tabulated over l outside the loops between (the prefactor of ps, with 3 radial channels)
    assert "T1[{l}] = {" in text
    # the gradient kernels: local accumulators, and fused kernels whose members write their own buffers
    assert "kernel ·scatter·dps/dpositions#0 (accumulate):" in text and "alloc A: real[27] = 0" in text
    assert "(fused):" in text and "out1[" in text and "dstrain" not in text
