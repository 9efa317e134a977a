"""The values and the gradient terms of a tensor in one pass over pairs (`codegen/schedule/fuse.py`).

`ir.FusedKernel` groups a tensor's values kernel with the scatter kernels of its gradient that
can start with the values' loops up to the pass over pairs (`codegen/schedule/plan.py: plan_fused`);
both renderers write one function for them, which the runtime runs instead of the values'
kernel when that gradient is asked (`runtime/native/compiled.py: _run_fused`). Checked here: which
terms fuse, the rules of the shared loops, the same values and gradients as the kernels run
apart (`compiled.fuse = False`) and as the interpreter, on 1 and 2 threads, the thread
decision, and the fallback when a fused run fails. `test_native_gradients.py` checks every
reference program's gradients, fused where they can be, against the interpreter.
"""

import dataclasses

import ase.build
import numpy as np
import pytest

from mtdsl.codegen.schedule import abi
from mtdsl.codegen import cpp
from mtdsl.codegen.schedule import derived
from mtdsl.codegen.schedule import plan as planning
from mtdsl.compile import compile
from mtdsl.ir import nodes as ir
from mtdsl.runtime.native import compiled as compiled_module
from mtdsl.runtime.gradients import forward as gradients_module

from ..runtime.test_gradients import EXAMPLES, PAIRS_PROGRAM, with_gradients, write
from .test_native_gradients import ALL, assert_same_gradients, systems

BACKENDS = ["cpp", "llvm"]


def extended(path, wrts, **hypers):
    from mtdsl.codegen.schedule.parts import first_terms

    model = compile(path, backend="interpreter", **hypers)
    rendered, _, _ = first_terms(model.module)  # as compile_module renders it (codegen/schedule/parts.py)
    return derived.extended_module(rendered, {w: model.gradient_kernels[w] for w in wrts})


def silicon(repeat=2):
    atoms = ase.build.bulk("Si", "diamond", a=5.43, cubic=True).repeat((repeat,) * 3)
    atoms.rattle(0.05, seed=1)
    return [atoms]


def test_expansion_terms_are_fused_with_its_values(tmp_path):
    module, info = extended(with_gradients(tmp_path, "spherical_expansion.mt"), ALL, max_angular=2, n_radial=3)
    assert {key: keys for key, (_, keys) in info["fused"].items()} == {
        ("rho", ("positions",)): (("rho", "positions", 0), ("rho", "positions", 1)),
        ("rho", ("strain",)): (("rho", "strain", 0),),
        ("rho", ("cell",)): (("rho", "cell", 0),),
        ("rho", ("cell", "positions", "strain")): (("rho", "cell", 0), ("rho", "positions", 0),
                                                   ("rho", "positions", 1), ("rho", "strain", 0)),
    }
    assert {f.names[0] for f in module.fused} == {"rho"}
    pair_systems = {p.name: p.systems for p in module.pairs}
    for fused in module.fused:
        plan = planning.plan_fused(fused, pair_systems)
        shared = plan.plans[0].loops[:plan.shared]
        assert [(loop.var, loop.kind) for loop in shared] == [("i", "domain"), ("p", "pairs_of")]
        for member in plan.plans[1:]:  # every member starts with the same loops
            assert [(lp.var, lp.kind, lp.domain) for lp in member.loops[:plan.shared]] == \
                   [(lp.var, lp.kind, lp.domain) for lp in shared]


def test_power_spectrum_fuses_the_expansion_only():
    """The power spectrum's terms read the expansion's gradient rows: they run after, apart."""
    module, info = extended(EXAMPLES / "soap_power_spectrum.mt", ["positions"], max_angular=2, n_radial=3)
    assert list(info["fused"]) == [("rho", ("positions",))]


def test_the_pair_tables_are_computed_once_per_pair():
    module, _ = extended(EXAMPLES / "spherical_expansion.mt", ["positions"])
    rendered = cpp.render_module(module)
    (fused,) = module.fused
    source = rendered.kernels[fused.name].source
    assert rendered.kernels[fused.name].arrays[:3] == [abi.OutputBuffer(0), abi.OutputBuffer(1), abi.OutputBuffer(2)]
    # one sph table, one spline and one table of their derivatives for values and both terms
    assert source.count("mt_sph4(") == 1 and source.count("mt_dsph4(") == 1
    assert source.count("mt_spline<") == 1 and source.count("mt_spline_derivative<") == 1
    for name in fused.names:  # the members are still compiled on their own
        assert name in rendered.kernels


def test_shared_loops_test_the_conditions_every_member_has():
    """A condition of the first member's shared loops that another member lacks is tested in the
    first member's own loops instead; a member whose binders the shared loops do not enumerate
    is not fused."""
    module, _ = extended(EXAMPLES / "spherical_expansion.mt", ["positions"], max_angular=1, n_radial=2)
    kernels = {k.name: k for k in module.kernels}
    pair_systems = {p.name: p.systems for p in module.pairs}
    values = kernels["rho"]
    # the values restricted to close pairs: the shared pair loop tests a condition the terms lack
    close = ir.Binary("lt", ir.Data("P", "distance", (ir.Var("p"),)), ir.Const(2.0))
    restricted = dataclasses.replace(values, body=dataclasses.replace(
        values.body, where=ir.Binary("and", values.body.where, close)))
    term = next(k for k in module.kernels if k.name.startswith("·scatter·drho/dpositions"))
    plan = planning.plan_fused(ir.FusedKernel("f", (restricted, term)), pair_systems)
    first = plan.plans[0]
    assert close not in [g for loop in first.loops[:plan.shared] for g in loop.guards]
    assert close in first.loops[plan.shared].guards  # the values' own first loop tests it
    assert close not in [g for loop in plan.plans[1].loops for g in loop.guards]
    # the segments of P.from(i) enumerate `p in pairs(P)` only when i runs over P's systems
    planning.plan_fused(ir.FusedKernel("f", (values, term)), pair_systems)
    with pytest.raises(planning.Unsupported):
        planning.plan_fused(ir.FusedKernel("f", (values, term)), {"P": "other"})


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_equals_apart(tmp_path, backend, threads):
    path = with_gradients(tmp_path, "spherical_expansion.mt")
    for batch in (systems(), silicon()):
        expected = compile(path, backend="interpreter", max_angular=3, n_radial=4)(batch, gradients=ALL)
        model = compile(path, backend=backend, threads=threads, max_angular=3, n_radial=4)
        ours = model(batch, gradients=ALL)
        ran = model.compiled.last_gradient_terms
        assert set(ran.values()) == {"fused"}, (backend, ran)  # the three gradients in the values' pass
        assert_same_gradients(expected, ours, ALL, 1e-12)
        # two of the three: the positions' terms in the values' pass, the strain's apart
        model(batch, gradients=["positions", "strain"])
        ran = model.compiled.last_gradient_terms
        assert ran[("rho", "positions", 0)] == ran[("rho", "positions", 1)] == "fused", (backend, ran)
        assert ran[("rho", "strain", 0)] == "scatter"
        model.compiled.fuse = False
        apart = model(batch, gradients=ALL)
        assert set(model.compiled.last_gradient_terms.values()) == {"scatter"}
        for key, block in apart["rho"].items():
            mine = ours["rho"].block(key)
            np.testing.assert_allclose(mine.values, block.values, rtol=0, atol=1e-14)
            for wrt in ALL:
                assert mine.gradient(wrt).samples == block.gradient(wrt).samples
                np.testing.assert_allclose(mine.gradient(wrt).values, block.gradient(wrt).values, rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_kernel_runs_on_threads_where_each_entry_has_one_owner(tmp_path, backend, monkeypatch):
    """Every row of the expansion's gradients belongs to one centre (positions: (sample i, atom j)
    and (i, i), even through the periodic images of one neighbour in a 2-atom cell; strain and
    cell: one row per sample i), so its fused kernel runs on 2 threads; the interpreter's values.
    (`test_entries_owned`: the decision itself.)"""
    decisions = []
    owned = gradients_module.entries_owned

    def spy(*args):
        decisions.append(owned(*args))
        return decisions[-1]

    monkeypatch.setattr(gradients_module, "entries_owned", spy)
    path = with_gradients(tmp_path, "spherical_expansion.mt")
    batch = [ase.build.bulk("Si", "diamond", a=5.43)]
    for wrt in ALL:
        decisions.clear()
        expected = compile(path, backend="interpreter", max_angular=2, n_radial=3)(batch, gradients=[wrt])
        model = compile(path, backend=backend, threads=2, max_angular=2, n_radial=3)
        ours = model(batch, gradients=[wrt])
        assert decisions == [True]
        assert set(model.compiled.last_gradient_terms.values()) == {"fused"}
        assert_same_gradients(expected, ours, [wrt], 1e-12)


def test_entries_owned():
    rows = gradients_module.GradientRows(
        scatters=[], found=[(np.array([True, True, False]), None, None, None, None, []),
                            (np.array([True, True]), None, None, None, None, [])],
        unique=np.arange(3), per_sample=1, row_targets=np.zeros(3, np.int64), column_values=[],
        buffer=np.zeros(3), row_maps=[np.array([0, 1, 2]), np.array([2, 1])], shared=[False, False], row_shapes=[])
    # entry 1 receives a point of owner 0 (term 0) and of owner 5 (term 1): not owned
    assert not gradients_module.entries_owned(rows, [0, 1], [np.array([0, 0, 7]), np.array([3, 5])])
    assert gradients_module.entries_owned(rows, [0, 1], [np.array([0, 4, 7]), np.array([3, 4])])
    assert not gradients_module.entries_owned(rows, [0, 1], [np.array([0, 4, 7]), None])


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failing_fused_run_falls_back(tmp_path, backend):
    """A fused kernel that reports an error (here: made to) leaves the values to their own kernel
    and the terms to theirs; the results are the same."""
    path = with_gradients(tmp_path, "spherical_expansion.mt", "positions")
    batch = systems()
    expected = compile(path, backend="interpreter", max_angular=2, n_radial=3)(batch, gradients=["positions"])
    model = compile(path, backend=backend, max_angular=2, n_radial=3)
    compiled = model.compiled
    (name,) = [name for name, _ in compiled.fused.values()]
    native = compiled.fused_kernels[name]
    compiled.fused_kernels[name] = compiled_module.NativeKernel(native.rendered, lambda *args: 2)  # bit 1 is no error (sparse)
    ours = model(batch, gradients=["positions"])
    assert set(compiled.last_gradient_terms.values()) == {"scatter"}
    assert "error bits" in compiled.last_run_fallbacks[name]
    assert_same_gradients(expected, ours, ["positions"], 1e-12)
    for key, block in expected["rho"].items():
        np.testing.assert_allclose(ours["rho"].block(key).values, block.values, rtol=0, atol=1e-13)


def test_pair_programs_fuse(tmp_path):
    """A program of the gradient tests with sums over pairs: its fused terms agree too."""
    path = write(tmp_path, PAIRS_PROGRAM)
    batch = systems()
    expected = compile(path, backend="interpreter")(batch, gradients=ALL)
    for backend in BACKENDS:
        model = compile(path, backend=backend, threads=2)
        ours = model(batch, gradients=ALL)
        assert_same_gradients(expected, ours, ALL, 1e-12)
        fused = [key for key, how in model.compiled.last_gradient_terms.items() if how == "fused"]
        assert fused or not model.compiled.fused, model.compiled.last_gradient_terms


# ---- terms of one gradient over one driver (the power spectrum's product terms) ------------------


def test_power_spectrum_terms_are_fused_over_the_rows_they_read(tmp_path):
    module, info = extended(with_gradients(tmp_path, "soap_power_spectrum.mt"), ALL, max_angular=2, n_radial=3)
    for wrt in ALL:
        ((name, keys, drivers),) = info["fused_terms"][("ps", wrt)]
        assert keys == (("ps", wrt, 0), ("ps", wrt, 1)) and drivers == ("·g1", "·g2")
        (fused,) = [f for f in module.fused if f.name == name]
        plan = planning.plan_fused(fused, {p.name: p.systems for p in module.pairs})
        assert plan.shared == 1 and all(p.loops[0].var == "·g1" for p in plan.plans)  # the second renamed


def test_rename_driver():
    from mtdsl.codegen.schedule.fuse import rename_driver

    p = ir.Var("p")
    body = ir.Reduce((ir.Binder("p", ir.PairsDomain("P")), ir.Binder("q", ir.PairsFrom("P", ir.Data("P", "second", (p,))))),
                     ir.Data("P", "distance", (ir.Var("q"),)), ir.Binary("lt", p, ir.Const(3)))
    kernel = ir.TensorKernel("t", (), (), (), (), (), body)
    renamed = rename_driver(kernel, "p", "g")
    assert [b.name for b in renamed.body.binders] == ["g", "q"]
    assert renamed.body.binders[1].domain.atom == ir.Data("P", "second", (ir.Var("g"),))
    assert renamed.body.where == ir.Binary("lt", ir.Var("g"), ir.Const(3))
    with pytest.raises(planning.Unsupported):  # a name the kernel uses already
        rename_driver(kernel, "p", "q")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_terms_equal_apart(tmp_path, backend, threads):
    """One species: both terms of a row come from one row of drho, so the fused kernel runs on
    every thread; two species (a molecule in the batch): on 2 threads an entry receives points of
    two rows of drho, so the terms run apart (interleaved), on 1 thread fused."""
    path = with_gradients(tmp_path, "soap_power_spectrum.mt", "positions, strain")
    for batch, fused_on_two in ((silicon(), True), (systems(), False)):
        expected = compile(path, backend="interpreter", max_angular=2, n_radial=3)(batch, gradients=["positions", "strain"])
        model = compile(path, backend=backend, threads=threads, max_angular=2, n_radial=3)
        ours = model(batch, gradients=["positions", "strain"])
        ran = model.compiled.last_gradient_terms
        fused = threads == 1 or fused_on_two
        assert {ran[("ps", wrt, k)] for wrt in ("positions", "strain") for k in (0, 1)} == {
            "fused" if fused else "scatter"}, (backend, threads, ran)
        assert_same_gradients(expected, ours, ["positions", "strain"], 1e-12)
        model.compiled.fuse = False
        apart = model(batch, gradients=["positions", "strain"])
        for key, block in apart["ps"].items():
            for wrt in ("positions", "strain"):
                np.testing.assert_allclose(ours["ps"].block(key).gradient(wrt).values, block.gradient(wrt).values,
                                           rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failing_fused_terms_run_leaves_the_gradient_to_the_interpreter(tmp_path, backend):
    path = with_gradients(tmp_path, "soap_power_spectrum.mt", "positions")
    batch = silicon()
    expected = compile(path, backend="interpreter", max_angular=2, n_radial=3)(batch, gradients=["positions"])
    model = compile(path, backend=backend, max_angular=2, n_radial=3)
    compiled = model.compiled
    ((name, _, _),) = compiled.fused_terms[("ps", "positions")]
    native = compiled.fused_kernels[name]
    compiled.fused_kernels[name] = compiled_module.NativeKernel(native.rendered, lambda *args: 2)  # bit 1 is no error (sparse)
    ours = model(batch, gradients=["positions"])
    assert "error bits" in compiled.last_run_fallbacks[name]
    assert not any(key[0] == "ps" for key in compiled.last_gradient_terms)  # the interpreter's
    assert_same_gradients(expected, ours, ["positions"], 1e-12)
