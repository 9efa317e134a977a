"""The plan pass on the reference kernels: drivers, segments, equality bindings, loop order."""

from mtdsl.codegen.schedule import plan
from mtdsl.codegen.cpp import render_module
from mtdsl.ir import nodes as ir

from . import modules


def loops(kernel):
    return [(loop.var, loop.kind) for loop in plan.plan_kernel(kernel).loops]


def test_density_is_one_pass_over_the_pairs_of_each_atom():
    kernel = modules.spherical_expansion().kernels[0]
    planned = plan.plan_kernel(kernel)
    assert planned.schedule == "accumulate" and planned.parallel
    assert loops(kernel) == [("i", "domain"), ("p", "pairs_of"), ("b", "equal"), ("l", "domain"),
                             ("m", "domain"), ("n", "domain")]


def test_power_spectrum_is_parallel_over_atoms_with_its_where_as_a_guard():
    kernel = modules.power_spectrum().kernels[1]
    planned = plan.plan_kernel(kernel)
    assert planned.schedule == "direct" and planned.loops[0].var == "i"
    assert loops(kernel)[-1] == ("n2", "domain")  # the contiguous axis innermost
    guarded = [loop for loop in planned.loops if loop.guards]
    assert len(guarded) == 1 and str(guarded[0].guards[0]) == "(b1 <= b2)"


def test_energy_sums_the_atoms_of_each_system_as_a_segment():
    kernel = modules.energy().kernels[2]
    assert loops(kernel) == [("s", "domain"), ("i", "atoms_of")]


def test_convolution_order_and_tabulation():
    module = modules.convolution()
    order = loops(module.kernels[0])
    assert order[:2] == [("i", "domain"), ("p", "pairs_of")] and order[-1] == ("q", "domain")
    source = render_module(module).source
    assert "for every q" in source  # the radial weights and h, once per (l1, l2, L) / m2, over q
    assert "for every k" in source  # gto(r, k) once per pair
    assert "a zero coefficient" in source
    assert "for every q and m2" in source  # h[j, l2, m2, q] once per (p, l2), outside the l1, L loops
    assert "triangle rule of cg" in source  # (l1, l2, L) failing it are not entered
    assert "property columns of h" in source  # h's column per q looked up once per block


def test_tabulation_place_spans_an_irrep_index_bound_below_its_degree():
    planned = plan.plan_kernel(modules.convolution().kernels[0])
    position = {loop.var: k for k, loop in enumerate(planned.loops)}
    names = [loop.var for loop in planned.loops]
    assert position["m2"] - position["l2"] >= 2, names  # loops (l1, L) between the degree and its irrep index
    over, level, row = plan.tabulation_place({"p", "l2", "m2", "q"}, "q", position["m2"], planned.loops, position)
    assert (over, row) == ("q", "m2") and level == position["l2"] + 1, names
    # without the irrep index among the variables, a table over q alone, below the innermost variable
    assert plan.tabulation_place({"p", "l2", "q"}, "q", position["l2"], planned.loops, position) == \
        ("q", position["l2"] + 1, None)


def test_all_pairs_with_a_first_atom_condition_is_a_segment():
    kernel = modules.corners().kernel("dipole_like")
    body = plan.plan_kernel(kernel).body
    assert isinstance(body, ir.Binary)  # direct: the scan is an inner sum
    scan = body.left
    inner, _ = plan.schedule_loops([(b, False) for b in scan.binders], plan.conjuncts(scan.where), {"i", "x"})
    assert [(loop.var, loop.kind) for loop in inner] == [("p", "pairs_of")]
    assert len(inner[0].guards) == 1  # the type condition stays a guard


def test_best_order_prefers_cheap_placements():
    trips = {"a": 10.0, "b": 2.0}
    order = plan.best_order(["a", "b"], lambda name, placed: trips[name], lambda name: set(),
                            [(frozenset({"b"}), 100.0)], set())
    assert order == ["b", "a"]  # the expensive value of b alone is computed twice, not twenty times
