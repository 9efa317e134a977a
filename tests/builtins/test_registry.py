"""The registry of built-ins (mtdsl/builtins/): every built-in is defined in one module there, and
everything else reads it.

- a composite built-in's name (one with a native expansion or an IR definition: softplus, relu...)
  is a string literal of no source module outside mtdsl/builtins/; no source module outside it keeps a
  table (a tuple, list, set or dict literal) of two or more elementwise built-ins, except the printers'
  tables of primitives, whose keys are registered primitives;
- every elementwise built-in prints natively on both backends (no kernel left to the interpreter: a
  missing primitive would pass every numeric test through the fallback);
- each expansion and definition equals the built-in's numpy form, each derivative its finite
  differences (the per-backend values and gradients: tests/runtime/test_builtins.py).

The numpy mathematics (mtdsl/math/functions.py: `ELEMENTARY`, below the registry, which takes its
numpy forms from it) is exempt from the first rule.
"""

from __future__ import annotations

import ast

import numpy as np
import pytest

from mtdsl import builtins
from mtdsl.codegen import cache, cpp, llvm
from mtdsl.compile import check_and_lower
from mtdsl.ir import nodes as ir
from mtdsl.ir.passes.native_forms import expand_native_forms

from ..test_architecture import ROOT, source_modules

#: the printers' fixed tables of primitives: (module, assigned name)
PRIMITIVE_TABLES = {("mtdsl.codegen.schedule.nest", "INTRINSICS"), ("mtdsl.codegen.cpp.printer", "FUNCTIONS"), ("mtdsl.codegen.llvm.primitives", "LLVM_INTRINSICS"),
                    ("mtdsl.codegen.llvm.primitives", "LIBM_FUNCTIONS")}
EXEMPT = ("mtdsl.builtins", "mtdsl.math")

ELEMENTWISE = [b for b in builtins.registered() if b.elementwise or b.definition is not None]
COMPOSITE = {b.name for b in ELEMENTWISE if b.expansion is not None or b.definition is not None}


def _outside_registry():
    for module, path in sorted(source_modules().items()):
        if not any(module == e or module.startswith(e + ".") for e in EXEMPT):
            yield module, path, ast.parse(path.read_text(), str(path))


def _table_name(tree, node):
    for parent in ast.walk(tree):
        if isinstance(parent, (ast.Assign, ast.AnnAssign)) and parent.value is node:
            targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
            return next((t.id for t in targets if isinstance(t, ast.Name)), None)
    return None


def test_composite_builtins_are_named_in_their_module_only():
    assert {"softplus", "relu", "sigmoid", "silu", "min", "max", "clamp"} <= COMPOSITE
    found = []
    for module, path, tree in _outside_registry():
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in COMPOSITE:
                found.append(f"  {path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not found, "built-ins treated by name outside mtdsl/builtins/ (read the registry):\n" + "\n".join(found)


def test_no_table_of_elementwise_builtins_outside_the_registry():
    names = {b.name for b in ELEMENTWISE}
    primitives = {b.name for b in builtins.registered() if b.primitive}
    found, tables = [], set()
    for module, path, tree in _outside_registry():
        for node in ast.walk(tree):
            items = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", None)
            if not isinstance(node, (ast.Dict, ast.Tuple, ast.List, ast.Set)) or items is None:
                continue
            listed = {i.value for i in items if isinstance(i, ast.Constant) and i.value in names}
            if len(listed) < 2:
                continue
            table = (module, _table_name(tree, node))
            if table in PRIMITIVE_TABLES:
                tables.add(table)
                assert listed <= primitives, f"{table[1]} prints non-primitives {sorted(listed - primitives)}"
                continue
            found.append(f"  {path.relative_to(ROOT)}:{node.lineno}: {sorted(listed)}")
    assert not found, "tables of built-ins outside mtdsl/builtins/ (give the registry a field):\n" + "\n".join(found)
    assert tables == PRIMITIVE_TABLES


def _program(tmp_path):
    """A tensor over pairs whose body calls every public elementwise built-in of the registry."""
    calls = []
    for k, b in enumerate(b for b in ELEMENTWISE if b.public):
        args = ", ".join(f"{0.3 * (j + 1)} * (d[p] - {1.5 + 0.1 * k})" for j in range(len(b.params)))
        calls.append(f"{b.name}({args})")
    path = tmp_path / "every_builtin.mt"
    path.write_text("input S : systems\npairs P = neighbors(S, cutoff = 3.0)\nindex p : P\n"
                    "let d[p] = P.distance[p]\n"
                    "tensor every\n    samples (p)\n  = " + "\n    + ".join(calls) + "\n"
                    "output every with gradients(positions)\n")
    return check_and_lower(path)[1]


@pytest.mark.parametrize("backend", [cpp, llvm])
def test_every_elementwise_builtin_prints_natively(tmp_path, backend):
    module = _program(tmp_path)
    called = {n.function for n in _walk(module) if isinstance(n, ir.Call)}
    assert {"softplus", "sigmoid", "atan2", "erf"} <= called  # the composites reach the backends...
    rendered = backend.render_module(module)
    assert not rendered.unsupported and set(rendered.kernels) == {"every"}
    expanded = {n.function for n in _walk(expand_native_forms(module)) if isinstance(n, ir.Call)}
    assert not expanded & COMPOSITE and "log1p" in expanded  # ...and are printed as their expansions
    if backend is cpp:
        assert "std::log1p" in rendered.source and "mt_softplus" not in rendered.source


def _walk(node):
    yield node
    if isinstance(node, tuple):
        for item in node:
            yield from _walk(item)
    elif hasattr(node, "__dataclass_fields__"):
        for name in node.__dataclass_fields__:
            yield from _walk(getattr(node, name))


def _evaluate(expr, x):
    """A scalar IR expression of the variables `x0, x1...` over numpy arrays, calls by the registry."""
    if isinstance(expr, ir.Const):
        return np.float64(expr.value)
    if isinstance(expr, ir.Var):
        return x[int(expr.name[1:])]
    if isinstance(expr, ir.Unary):
        return -_evaluate(expr.operand, x)
    if isinstance(expr, ir.Binary):
        a, b = _evaluate(expr.left, x), _evaluate(expr.right, x)
        return {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "gt": np.greater,
                "ge": np.greater_equal, "lt": np.less, "le": np.less_equal}[expr.op](a, b)
    if isinstance(expr, ir.Select):
        return np.where(_evaluate(expr.condition, x), _evaluate(expr.if_true, x), _evaluate(expr.if_false, x))
    if isinstance(expr, ir.Call):
        return builtins.get(expr.function).numpy(*(_evaluate(a, x) for a in expr.args))
    raise TypeError(expr)


X = np.array([-800.0, -40.0, -3.0, -1.0, -0.3, 0.0, 0.2, 0.7, 2.5, 40.0, 800.0])
#: independent numpy references of the composites (a built-in defined by IR has no numpy form of
#: its own: it needs a row here; one with an expansion is also checked against its numpy form)
REFERENCES = {"softplus": lambda x: np.logaddexp(0.0, x), "relu": lambda x: np.maximum(x, 0.0),
              "sigmoid": lambda x: 0.5 * (1.0 + np.tanh(0.5 * x)), "silu": lambda x: x * 0.5 * (1.0 + np.tanh(0.5 * x)),
              "min": np.minimum, "max": np.maximum, "clamp": lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi)}


@pytest.mark.parametrize("name", sorted(COMPOSITE))
def test_expansions_and_definitions_equal_numpy(name):
    builtin = builtins.get(name)
    arity = len(builtin.params)
    grid = [X, np.roll(X, 3) * 0.5, np.abs(np.roll(X, 5)) + 1.0][:arity]
    variables = [ir.Var(f"x{k}") for k in range(arity)]
    form = builtin.expansion or builtin.definition
    with np.errstate(over="ignore"):
        value = _evaluate(form(*variables), grid)
    assert name in REFERENCES or builtin.numpy is not None, f"{name}: add a numpy reference to REFERENCES"
    if name in REFERENCES:
        np.testing.assert_allclose(value, REFERENCES[name](*grid), rtol=1e-15, atol=1e-300, err_msg=name)
    if builtin.numpy is not None:
        np.testing.assert_allclose(builtin.numpy(*grid), value, rtol=1e-15, atol=1e-300, err_msg=name)


@pytest.mark.parametrize("name", sorted(b.name for b in builtins.registered() if b.partials is not None))
def test_partials_equal_finite_differences(name):
    builtin = builtins.get(name)
    arity = len(builtin.params)
    grid = [np.array([0.3, 0.55, 0.9]), np.array([-0.7, 0.4, 1.5])][:arity]  # in acos's domain
    variables = [ir.Var(f"x{k}") for k in range(arity)]
    for k, partial in enumerate(builtin.partials(*variables)):
        step = np.zeros(arity)
        step[k] = 1e-6
        shifted = [[g + s for g, s in zip(grid, sign * step)] for sign in (1, -1)]
        difference = (builtin.numpy(*shifted[0]) - builtin.numpy(*shifted[1])) / 2e-6
        np.testing.assert_allclose(_evaluate(partial, grid), difference, rtol=1e-7, atol=1e-10, err_msg=name)


def test_torch_forms_equal_numpy():
    torch = pytest.importorskip("torch")
    x = np.array([-3.0, -0.3, 0.2, 0.7, 2.5])
    for b in builtins.registered():
        if b.torch is not None:
            args = [x, np.roll(x, 1)][: len(b.params)]
            value = b.torch(*(torch.from_numpy(a) for a in args)).numpy()
            with np.errstate(invalid="ignore"):
                np.testing.assert_allclose(value, b.numpy(*args), rtol=1e-14, atol=1e-15, err_msg=b.name)


def test_lookup_and_signatures():
    assert builtins.lookup("nope") is None and builtins.get("softplus").name == "softplus"
    assert builtins.get("gto").options == ("width",) and builtins.get("cross").result == "vector"
    assert not builtins.get("log1p").public and builtins.get("floor").piecewise_constant
    assert len(set(builtins.names())) == len(builtins.names())


def test_a_changed_builtin_invalidates_cached_renderings():
    """Rendering runs the built-ins' derivatives and expansions: their sources key the rendering cache."""
    assert {"softplus.py", "elementary.py", "spec.py"} <= {path.name for path in cache.passes_files()}
