"""Lowering the checked program to the IR: names, lets, list hypers, options, dependency order."""

import ase
import numpy as np
import pytest

import mtdsl
from mtdsl.compile import check_and_lower
from mtdsl.ir import nodes as ir

H2 = ase.Atoms("H2", positions=[[0, 0, 0], [0, 0, 1.5]])


def lower_text(tmp_path, text, **hypers):
    path = tmp_path / "program.mt"
    path.write_text(text)
    return check_and_lower(path, **hypers)[1], path


HEADER = """
hyper cutoff = 4.0
hyper scales = [0.5, 1.0, 2.0]
input S : systems
pairs P = neighbors(S, cutoff = cutoff)
dim channel = range(3)
index k : channel
index i : atoms(S)
"""


def test_list_hyper_items(tmp_path):
    module, path = lower_text(tmp_path, HEADER + """
tensor t
    samples (i)
    properties (k)
  = sum(p in P.from(i)) scales[k] * P.distance[p] + scales[1]
output t
""")
    assert "1.0" in str(module.kernel("t").body)
    values = mtdsl.compile(path)([H2])["t"].block().values
    np.testing.assert_allclose(values, [[1.75, 2.5, 4.0]] * 2)


def test_lets_are_inlined_with_fresh_binders(tmp_path):
    module, path = lower_text(tmp_path, HEADER + """
let density[i] = sum(p in P.from(i)) exp(-P.distance[p])
tensor t
    samples (i)
    properties (k)
  = density[i] * density[i] + k
output t
""")
    body = str(module.kernel("t").body)
    assert body.count("P.from(i)") == 2
    assert "p_2" in body  # the two uses sum over two different variables
    values = mtdsl.compile(path)([H2])["t"].block().values
    np.testing.assert_allclose(values[:, 0], np.exp(-3.0))


def test_builtin_options_are_constants(tmp_path):
    module, _ = lower_text(tmp_path, HEADER + """
tensor t
    samples (i)
    properties (k)
  = sum(p in P.from(i)) cosine_cutoff(P.distance[p], cutoff, width = 0.5) * gto(P.distance[p], k, width = 0.3)
output t
""")
    calls = [node for node in _walk(module.kernel("t").body) if isinstance(node, ir.Call)]
    assert {c.function: dict(c.options) for c in calls} == {
        "cosine_cutoff": {"cutoff": 4.0, "width": 0.5}, "gto": {"width": 0.3}}


def test_block_access_to_a_tensor_without_keys(tmp_path):
    module, path = lower_text(tmp_path, HEADER + """
tensor a
    samples (i)
    properties (k)
  = k + 1.0
tensor b
    samples (i)
    properties (k)
  = a[i, k] * 2.0
output b
""")
    assert [k.name for k in module.kernels] == ["a", "b"]
    np.testing.assert_allclose(mtdsl.compile(path)([H2])["b"].block().values, [[2.0, 4.0, 6.0]] * 2)


def test_irrep_domain_gets_the_largest_degree(tmp_path):
    _, module, _ = check_and_lower(pathlib_examples() / "spherical_expansion.mt", max_angular=3)
    irreps = [b.domain for b in module.kernel("rho").indices if isinstance(b.domain, ir.IrrepDomain)]
    assert irreps[0].max_degree == 3


def pathlib_examples():
    import pathlib

    return pathlib.Path(__file__).resolve().parents[2] / "examples"


def _walk(node):
    yield node
    for name in getattr(node, "__slots__", ()):
        value = getattr(node, name)
        children = value if isinstance(value, tuple) else (value,)
        for child in children:
            if isinstance(child, (ir.Const, ir.Var, ir.Data, ir.ParamRef, ir.BlockRef, ir.Unary, ir.Binary,
                                  ir.Select, ir.Call, ir.Reduce)):
                yield from _walk(child)


def test_a_condition_on_hypers_only_is_folded(tmp_path):
    path = tmp_path / "fold.mt"
    path.write_text("""model fold
hyper smooth = true
hyper r0 = 1.5
input S : systems
pairs P = neighbors(S, cutoff = 3.0)
index i : atoms(S)
tensor t
    samples (i)
  = sum(p in P.from(i)) (smooth and r0 > 1.0 ? exp(-P.distance[p]) : log(P.distance[p]))
    + (P.distance[p] < r0 ? 1.0 : 0.0)
output t with gradients(positions)
""")
    body = str(check_and_lower(path)[1].kernel("t").body)
    assert "log" not in body and "exp" in body  # the dead branch is gone
    assert "?" in body  # a condition on positions stays (branchwise)
    overridden = str(check_and_lower(path, smooth=False)[1].kernel("t").body)
    assert "log" in overridden and "exp" not in overridden
