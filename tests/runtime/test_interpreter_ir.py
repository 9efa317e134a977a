"""The reference interpreter on hand-built IR: featomic parity, block sparsity, missing blocks.

(tests/runtime/test_programs.py runs the same through the front end from `.mt` files.)
"""

import ase
import ase.build
import featomic
import numpy as np
import pytest

from mtdsl.ir import nodes as ir
from mtdsl.runtime.assemble import evaluate_kernel
from mtdsl.runtime.bindings import Bindings, RunError
from mtdsl.runtime.evaluate.evaluator import Evaluator
from mtdsl.systems import as_batch, neighbors

V = ir.Var
HYPERS = {
    "cutoff": {"radius": 5.0, "smoothing": {"type": "ShiftedCosine", "width": 0.5}},
    "density": {"type": "Gaussian", "width": 0.3, "center_atom_weight": 0.0},
    "basis": {"type": "TensorProduct", "max_angular": 4, "radial": {"type": "Gto", "max_radial": 5}, "spline_accuracy": 1e-12},
}


def spherical_expansion_module() -> ir.Module:
    distance = ir.Data("P", "distance", (V("p"),))
    body = ir.Reduce(
        (ir.Binder("p", ir.PairsFrom("P", V("i"))),),
        ir.Binary("mul", ir.Binary("mul",
            ir.Call("soap_radial", (distance, V("n"), V("l")), (("n_radial", 6), ("cutoff", 5.0), ("density_width", 0.3))),
            ir.Call("cosine_cutoff", (distance,), (("cutoff", 5.0), ("width", 0.5)))),
            ir.Call("sph", (ir.Data("P", "vector", (V("p"),)), V("l"), V("m")))),
        ir.Binary("eq", ir.Data("S", "type", (ir.Data("P", "second", (V("p"),)),)), V("b")),
    )
    kernel = ir.TensorKernel(
        "rho",
        (ir.Binder("l", ir.RangeDomain("angular", 0, 5)), ir.Binder("b", ir.SpeciesDomain("S")),
         ir.Binder("i", ir.AtomsDomain("S")), ir.Binder("m", ir.IrrepDomain(V("l"), 4)),
         ir.Binder("n", ir.RangeDomain("radial", 0, 6))),
        keys=(ir.Entry("o3_lambda", "value", V("l")), ir.Entry("o3_sigma", "value", ir.Const(1)),
              ir.Entry("center_type", "value", ir.Data("S", "type", (V("i"),))), ir.Entry("neighbor_type", "value", V("b"))),
        samples=(ir.Entry("i", "atoms", V("i"), "S"),),
        components=(ir.Entry("o3_mu", "value", V("m")),),
        properties=(ir.Entry("n", "value", V("n")),),
        body=body,
    )
    return ir.Module("spherical_expansion", (ir.SystemsInput("S"),), (), (ir.PairsDecl("P", "S", 5.0),), (),
                     (kernel,), (ir.Output("rho"),))


def run(module, frames):
    batch = as_batch(frames)
    bindings = Bindings({"S": batch}, {p.name: neighbors(batch, p.cutoff) for p in module.pairs}, {})
    interpreter = Evaluator(module, bindings)
    for kernel in module.kernels:
        bindings.tensors[kernel.name] = evaluate_kernel(interpreter, kernel)
    return bindings.tensors


def mixed():
    atoms = ase.build.bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    atoms.numbers[3] = 6
    atoms.rattle(0.1, seed=3)
    return atoms


def water():
    return ase.Atoms("OH2", positions=[[0, 0, 0], [0.757, 0.586, 0.1], [-0.757, 0.586, -0.05]])


@pytest.mark.parametrize("make", [water, mixed])
def test_spherical_expansion_equals_featomic(make):
    atoms = make()
    ours = run(spherical_expansion_module(), [atoms])["rho"]
    theirs = featomic.SphericalExpansion(**HYPERS).compute(atoms)
    assert ours.keys.names == theirs.keys.names
    assert len(ours) == len(theirs)
    for key, block in theirs.items():
        mine = ours.block(**{name: int(value) for name, value in zip(key.names, key.values)})
        assert mine.samples.names == block.samples.names
        assert mine.properties.names == block.properties.names
        np.testing.assert_array_equal(mine.components[0].array, np.asarray(block.components[0].values))
        rows = mine.samples.positions(np.asarray(block.samples.values))
        assert (rows >= 0).all()
        scale = np.abs(block.values).max()
        np.testing.assert_allclose(mine.values[rows], block.values, rtol=0, atol=1e-8 * scale)
        # samples featomic drops (no neighbour of this type) are zeros here
        extra = np.setdiff1d(np.arange(len(mine.samples)), rows)
        assert np.all(mine.values[extra] == 0.0)


def test_absent_species_gives_no_block():
    ours = run(spherical_expansion_module(), [water()])["rho"]
    assert sorted(set(ours.keys.column("center_type").tolist())) == [1, 8]
    isolated = ase.Atoms("H", positions=[[0, 0, 0]])
    single = run(spherical_expansion_module(), [isolated])["rho"]
    assert len(single) == 5  # one block per l, all zeros: the atom has no neighbour
    assert all(np.all(block.values == 0) for block in single.blocks())


def test_missing_block_is_an_error():
    rho_access = ir.BlockRef("rho", (("o3_lambda", ir.Const(7)), ("o3_sigma", ir.Const(1)),
                                     ("center_type", ir.Data("S", "type", (V("i"),))), ("neighbor_type", ir.Const(1))),
                             (ir.Slot("atoms", V("i"), "S"),), (ir.Slot("value", ir.Const(0)),), (ir.Slot("value", ir.Const(0)),))
    kernel = ir.TensorKernel("bad", (ir.Binder("i", ir.AtomsDomain("S")),), (ir.Entry("_", "value", ir.Const(0)),),
                             (ir.Entry("i", "atoms", V("i"), "S"),), (), (ir.Entry("x", "value", ir.Const(0)),), rho_access)
    base = spherical_expansion_module()
    module = ir.Module("m", base.systems, (), base.pairs, (), base.kernels + (kernel,), ())
    with pytest.raises(RunError, match="tensor bad.*does not exist"):
        run(module, [water()])
