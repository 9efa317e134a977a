"""Names and numbers from a program reach the generated C++ only as generated identifiers,
comments (escaped) or literals: hostile IR built by hand (the parser would reject these
names, the renderer must not rely on it) renders, compiles and runs like the interpreter."""

from __future__ import annotations

import re

import numpy as np
import pytest

from mtdsl.codegen.cpp import Unsupported, comment, int_literal, real_literal, render
from mtdsl.ir import nodes as ir
from mtdsl.runtime.native.compiled import compile_module

from . import modules
from .test_backends import assert_same, bind, interpret, water

HOSTILE = [
    'x); system("rm -rf /',
    "*/ system(\"touch /tmp/pwned\"); /*",
    "a\n#include </etc/passwd>\n",
    "n\\\nsystem(\"id\");",
    "?? ??/ \" ' ` $(id)",
    "ends with a backslash \\",
    "tab\tand\x00nul\u2028line separator",
]


def hostile_module(names):
    """The spherical expansion with every IR name replaced by a hostile one."""
    tensor, systems, pairs, l, b, i, m, n, p = names
    V = ir.Var
    distance = ir.Data(pairs, "distance", (V(p),))
    body = ir.Reduce(
        (ir.Binder(p, ir.PairsFrom(pairs, V(i))),),
        modules.mul(ir.Call("soap_radial", (distance, V(n), V(l)), (("n_radial", 3), ("cutoff", 3.0), ("density_width", 0.4))),
                    ir.Call("cosine_cutoff", (distance,), (("cutoff", 3.0), ("width", 0.5))),
                    ir.Call("sph", (ir.Data(pairs, "vector", (V(p),)), V(l), V(m)))),
        ir.Binary("eq", ir.Data(systems, "type", (ir.Data(pairs, "second", (V(p),)),)), V(b)),
    )
    kernel = ir.TensorKernel(
        tensor,
        (ir.Binder(l, ir.RangeDomain(l, 0, 3)), ir.Binder(b, ir.SpeciesDomain(systems)),
         ir.Binder(i, ir.AtomsDomain(systems)), ir.Binder(m, ir.IrrepDomain(V(l), 2)),
         ir.Binder(n, ir.RangeDomain(n, 0, 3))),
        keys=(ir.Entry("o3_lambda", "value", V(l)), ir.Entry("center_type", "value", ir.Data(systems, "type", (V(i),))),
              ir.Entry("neighbor_type", "value", V(b))),
        samples=(ir.Entry("i", "atoms", V(i), systems),),
        components=(ir.Entry("o3_mu", "value", V(m)),),
        properties=(ir.Entry("n", "value", V(n)),),
        body=body,
    )
    return ir.Module(tensor, (ir.SystemsInput(systems),), (), (ir.PairsDecl(pairs, systems, 3.0),), (),
                     (kernel,), (ir.Output(tensor),))


def strip_comments(source: str) -> str:
    source = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    return re.sub(r"//[^\n]*", "", source)


def test_comments_cannot_be_closed_or_broken():
    for name in HOSTILE:
        text = comment(name)
        assert "*/" not in text and "/*" not in text and "\n" not in text and "\r" not in text
        assert "\\" not in text and text.isprintable()


def test_literals():
    assert real_literal(0.1) == "real(0.1)"
    assert float(real_literal(1 / 3)[5:-1]) == 1 / 3  # repr: full precision
    assert real_literal(float("inf")) == "real(INFINITY)"
    assert real_literal(float("nan")) == "real(NAN)"
    assert int_literal(-(2**63) + 1) == "INT64_C(-9223372036854775807)"
    with pytest.raises(Unsupported):
        int_literal(2**63)


@pytest.mark.parametrize("shift", range(len(HOSTILE)))
def test_hostile_names_never_reach_the_code(shift):
    pool = HOSTILE[shift:] + HOSTILE[:shift]
    names = [pool[k % len(pool)] + f"·{k}" for k in range(9)]  # distinct names
    module = hostile_module(names)
    source = render(module)
    code = strip_comments(source)
    for name in names:
        assert name not in code
    for needle in ("system(", "rm -rf", "/etc/passwd", "$(id)", "pwned", "#include </"):
        assert needle not in code
    # every preprocessor line of the code is one of ours
    assert {line.strip() for line in code.splitlines() if line.strip().startswith("#")} <= {
        "#include <cmath>", "#include <cstdint>", "#include <cstring>", "#include <algorithm>",
        "#pragma omp parallel for schedule(dynamic, 4) num_threads(mt_threads) reduction(|: err)",
        "#pragma omp simd"}


def test_hostile_module_runs_like_the_interpreter():
    names = [HOSTILE[k % len(HOSTILE)] + f"·{k}" for k in range(9)]
    module = hostile_module(names)
    native = compile_module(module)
    assert native.fallbacks == {}

    def bindings():
        plain = bind(modules.spherical_expansion(n_radial=3, max_angular=2, cutoff=3.0), [water()])
        plain.systems = {names[1]: plain.systems["S"]}
        plain.pairs = {names[2]: plain.pairs["P"]}
        return plain

    assert_same(native.run(bindings()), interpret(module, bindings()), np.float64)


def test_constants_are_literals():
    V = ir.Var
    kernel = ir.TensorKernel(
        "c", (ir.Binder("i", ir.AtomsDomain("S")),), keys=(ir.Entry("_", "value", ir.Const(0)),),
        samples=(modules.atoms_entry(),), components=(), properties=(ir.Entry("x", "value", ir.Const(0)),),
        body=ir.Binary("add", ir.Binary("mul", ir.Const(1e-300), ir.Const(2**62)),
                       ir.Binary("mul", ir.Const(0.1), ir.Data("S", "type", (V("i"),)))))
    module = ir.Module("m", (ir.SystemsInput("S"),), (), (), (), (kernel,), (ir.Output("c"),))
    source = render(module)
    assert "real(1e-300)" in source and "INT64_C(4611686018427387904)" in source and "real(0.1)" in source
    huge = ir.TensorKernel("h", kernel.indices, kernel.keys, kernel.samples, (), kernel.properties, ir.Const(2**70))
    rendered = compile_module(ir.Module("m", module.systems, (), (), (), (huge,), (ir.Output("h"),)))
    assert "h" in rendered.fallbacks  # out of 64 bits: left to the interpreter, never truncated
