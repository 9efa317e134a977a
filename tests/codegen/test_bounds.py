"""Reads that stay inside their local array (`codegen/schedule/bounds.py`), marked once by the lowering.

The pass is checked on nests built by hand (which reads it marks, under which scopes) and on a
real program: in the example convolution's nests (its column table `c[q]`, issue #15) reads are
marked, and only reads of the kernel's own local arrays. `test_llvm_printer.py` checks that the
LLVM printer masks exactly the unmarked reads on a side of a `Select` not chosen.
"""

import dataclasses
import pathlib

from mtdsl.codegen.schedule import nest
from mtdsl.codegen.schedule.bounds import interval, mark_in_bounds
from mtdsl.codegen.schedule.kernel import ModuleLowering
from mtdsl.codegen.schedule.nest import (BOOL, INT, REAL, VEC, Alloc, Binary, Const, Guard, If, Kernel, Let, Load,
                                         Local, Loop, Param, Ref, Select, Store, View)
from mtdsl.compile import check_and_lower

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def i(value):
    return Const(int(value), INT)


def ref(name):
    return Ref(name, INT)


def loads(node) -> list:
    """Every `Load` of a nest node (statements, expressions, tuples of them), in order."""
    if isinstance(node, (tuple, list)):
        return [load for item in node for load in loads(item)]
    if not dataclasses.is_dataclass(node):
        return []
    found = [node] if isinstance(node, Load) else []
    return found + [load for field in dataclasses.fields(node) for load in loads(getattr(node, field.name))]


def marked(body) -> list:
    """`(text, in_bounds)` of every read of `body` once marked, in order."""
    kernel = Kernel("k", "mt_k", "direct", (Param("out", "output", REAL, ("buffer",)),), tuple(body))
    return [(nest.expr_text(load), load.in_bounds) for load in loads(mark_in_bounds(kernel).body)]


def test_interval_of_sums_differences_and_products():
    ranges = {"q": (0, 3), "m": (-2, 2)}
    q, m = ref("q"), ref("m")
    assert interval(Binary("add", Binary("mul", q, i(3), INT), i(2), INT), ranges) == (2, 11)
    assert interval(Binary("sub", q, m, INT), ranges) == (-2, 5)
    assert interval(Binary("mul", m, m, INT), ranges) == (-4, 4)
    assert interval(Binary("div", q, i(2), INT), ranges) is None
    assert interval(ref("p"), ranges) is None


def test_marks_only_reads_their_bounds_keep_inside():
    q, m = ref("q"), ref("m")
    chosen = Binary("gt", m, i(0), BOOL)
    body = [Alloc("c", 4, INT), Alloc("v", 6), Alloc("t", 4), View("row", "t", i(1)),
            Loop("m", i(0), i(4), (
                Loop("q", i(0), i(4), (
                    Let("w", Binary("add", q, i(1), INT)),
                    Store("out", q, Select(chosen, Load("t", Binary("sub", m, i(1), INT)), Load("c", ref("w"), INT))),
                    Store("out", q, Load("c", q, INT)),
                    Store("out", q, Load("v", Binary("sub", i(1), m, INT), VEC)),
                    Store("out", q, Load("v", Binary("mul", m, i(0), INT), VEC)),
                    Store("out", q, Load("v", Binary("add", Binary("mul", m, i(0), INT), i(1), INT), VEC)),
                    Store("out", q, Load("row", q)),
                    Store("out", q, Load("t", Load("c", q, INT))),
                )),)),
            Store("out", 0, Load("c", q, INT))]
    assert marked(body) == [
        ("t[(m - 1)]", False),  # -1 at m = 0
        ("c[w]", False),  # w = q + 1 reaches 4
        ("c[q]", True),
        ("v[(1 - m)].xyz", False),  # 1 - m reaches -2
        ("v[(m * 0)].xyz", True),  # entries 0..2 of 6
        ("v[((m * 0) + 1)].xyz", True),  # entries 3..5 of 6
        ("row[q]", False),  # a view: its size unknown
        ("t[c[q]]", False), ("c[q]", True),  # an index read from memory; the read of the index
        ("c[q]", False),  # q no longer bound after its loop
    ]


def test_scopes_locals_parameters_and_equal_loops():
    q, n = ref("q"), ref("n")
    body = [Alloc("c", 4),
            Loop("q", i(0), n, (Store("out", q, Load("c", q)),)),
            Loop("q", i(0), i(4), (
                If(Binary("gt", q, i(1), BOOL), (Alloc("d", 2), Store("out", q, Load("d", Binary("sub", q, i(2), INT))))),
                Store("out", q, Load("d", i(0))),
                Loop("e", Binary("add", q, i(0), INT), None, (Store("out", q, Load("c", ref("e"))),), kind="equal"),
                Local("s", q),
                Store("out", q, Load("c", ref("s"))),
            )),
            Let("k", i(5)), Guard(Binary("lt", ref("k"), i(9), BOOL)),
            Store("out", 0, Load("c", Binary("sub", ref("k"), i(2), INT)))]
    assert marked(body) == [
        ("c[q]", False),  # bounded by a parameter: unknown
        ("d[(q - 2)]", False),  # an If does not narrow q: -2 .. 1
        ("d[0]", False),  # d belongs to the If's body
        ("c[e]", True),  # an equality binding to q + 0
        ("c[s]", False),  # a mutable local: no bounds
        ("c[(k - 2)]", True),
    ]


def test_the_example_convolution_marks_reads_of_its_local_tables():
    """In the example convolution's lowered nests reads are marked (its column table `c[q]`, read
    under a `Select`), and each is a read of one of the kernel's local arrays, never a parameter."""
    _, module, _ = check_and_lower(EXAMPLES / "equivariant_convolution.mt")
    kernels, _ = ModuleLowering(module).lower()
    reads = [(lowered.nest, load) for lowered in kernels.values() for load in loads(lowered.nest.body)]
    marked_reads = [(kernel, load) for kernel, load in reads if load.in_bounds]
    assert marked_reads
    for kernel, load in marked_reads:
        assert load.array not in {p.name for p in kernel.params}
        allocs = [s for s in _statements(kernel.body) if isinstance(s, Alloc) and s.name == load.array]
        assert allocs, load


def _statements(body):
    for statement in body:
        yield statement
        if isinstance(statement, (Loop, If)):
            yield from _statements(statement.body)
