"""Every compiled backend against the reference interpreter (the oracle).

Same metadata bit for bit; values within 1e-12 (float64) / 1e-5 (float32) of
the largest magnitude in each block; on the reference programs and the corner
programs of `modules.py`, with random structures: molecules, periodic
crystals, isolated atoms, several species, several systems in one batch.
Each module is compiled once per session (and the kernel cache makes reruns cheap).
"""

from __future__ import annotations

import ase
import ase.build
import numpy as np
import pytest

from mtdsl.codegen.schedule import abi
from mtdsl.runtime.assemble import evaluate_kernel
from mtdsl.runtime.bindings import Bindings, RunError
from mtdsl.runtime.native.compiled import compile_module
from mtdsl.runtime.evaluate.evaluator import Evaluator
from mtdsl.runtime.model import initial_parameters
from mtdsl.systems import as_batch, neighbors

from . import modules

BACKENDS = ["cpp"]
TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}


# ---- structures ------------------------------------------------------------------------------------


def water():
    return ase.Atoms("OH2", positions=[[0, 0, 0], [0.757, 0.586, 0.1], [-0.757, 0.586, -0.05]])


def methanol(seed=1):
    atoms = ase.Atoms("CH3OH", positions=[[0, 0, 0], [1.09, 0, 0], [-0.36, 1.03, 0], [-0.36, -0.51, 0.89],
                                          [-0.47, -0.67, -1.17], [-1.43, -0.67, -1.17]])
    atoms.rattle(0.05, seed=seed)
    return atoms


def rocksalt(seed=3):
    atoms = ase.build.bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    atoms.numbers[3] = 6
    atoms.rattle(0.1, seed=seed)
    return atoms


def silicon(seed=5):
    atoms = ase.build.bulk("Si", cubic=True)
    atoms.rattle(0.05, seed=seed)
    return atoms


def isolated():
    return ase.Atoms("H", positions=[[0, 0, 0]])


def random_cluster(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 9))
    numbers = rng.choice([1, 6, 8], size=n)
    return ase.Atoms(numbers=numbers, positions=rng.uniform(0, 4.0, size=(n, 3)))


STRUCTURES = {
    "water": lambda: [water()],
    "rocksalt": lambda: [rocksalt()],
    "silicon+water": lambda: [silicon(), water()],
    "isolated+methanol": lambda: [isolated(), methanol()],
    "random": lambda: [random_cluster(seed) for seed in range(3)],
}
CHO = {"water": 1, "isolated+methanol": 1, "random": 1}  # batches with only H, C, O (for fixed species)


# ---- running ------------------------------------------------------------------------------------


def bind(module, frames, dtype=np.float64, seed=0):
    batch = as_batch(frames)
    pairs = {p.name: neighbors(batch, p.cutoff, full=p.full) for p in module.pairs}
    params = initial_parameters(module, seed)
    rng = np.random.default_rng(seed + 1)
    params = {name: rng.normal(size=np.shape(value)) for name, value in params.items()}
    bindings = Bindings({"S": batch}, pairs, params, dtype=dtype)
    for declaration in module.tensormaps:
        bindings.tensors[declaration.name] = modules.features(batch, seed=seed)
    return bindings


def interpret(module, bindings):
    interpreter = Evaluator(module, bindings)
    for kernel in module.kernels:
        bindings.tensors[kernel.name] = evaluate_kernel(interpreter, kernel)
    return {k.name: bindings.tensors[k.name] for k in module.kernels}


def assert_same(ours, oracle, dtype):
    assert set(ours) == set(oracle)
    for name in oracle:
        mine, theirs = ours[name], oracle[name]
        assert mine.keys.names == theirs.keys.names, name
        np.testing.assert_array_equal(mine.keys.array, theirs.keys.array)
        for a, b in zip(mine.blocks(), theirs.blocks()):
            assert a.samples.names == b.samples.names
            np.testing.assert_array_equal(a.samples.array, b.samples.array)
            assert len(a.components) == len(b.components)
            for x, y in zip(a.components, b.components):
                assert x.names == y.names
                np.testing.assert_array_equal(x.array, y.array)
            assert a.properties.names == b.properties.names
            np.testing.assert_array_equal(a.properties.array, b.properties.array)
            assert a.values.dtype == b.values.dtype
            assert a.values.shape == b.values.shape
            scale = float(np.abs(b.values).max()) if b.values.size else 0.0
            np.testing.assert_allclose(a.values, b.values, rtol=0, atol=TOLERANCE[dtype] * scale, err_msg=name)


MODULES = {
    "spherical_expansion": lambda: modules.spherical_expansion(n_radial=4, max_angular=3, cutoff=3.5, width=0.4),
    "power_spectrum": lambda: modules.power_spectrum(n_radial=4, max_angular=3, cutoff=3.5, width=0.4),
    "energy": lambda: modules.energy(species=(1, 6, 8)),
    "convolution": lambda: modules.convolution(lmax=2, width=5, cutoff=3.5, n_k=3),
    "convolution_e3nn": lambda: modules.convolution(lmax=2, width=3, cutoff=3.5, n_k=2, convention="e3nn"),
    "corners": modules.corners,
}


@pytest.fixture(scope="session")
def compiled():
    cache = {}

    def get(name, backend, dtype):
        key = (name, backend, dtype)
        if key not in cache:
            module = MODULES[name]()
            cache[key] = (module, compile_module(module, backend=backend, dtype=dtype))
        return cache[key]

    return get


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("structure", sorted(STRUCTURES))
@pytest.mark.parametrize("name", sorted(MODULES))
def test_equals_interpreter(compiled, backend, name, structure):
    if name == "energy" and structure not in CHO:
        pytest.skip("the energy model is compiled for H, C, O")
    module, native = compiled(name, backend, np.float64)
    assert native.fallbacks == {}
    frames = STRUCTURES[structure]()
    ours = native.run(bind(module, frames), all_tensors=True)
    assert native.last_run_fallbacks == {}
    assert_same(ours, interpret(module, bind(module, frames)), np.float64)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["power_spectrum", "convolution", "corners"])
def test_float32_equals_interpreter(compiled, backend, name):
    module, native = compiled(name, backend, np.float32)
    frames = [rocksalt(), water()]
    ours = native.run(bind(module, frames, np.float32), all_tensors=True)
    assert_same(ours, interpret(module, bind(module, frames, np.float32)), np.float32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_threads_give_the_same_values(compiled, backend):
    module, native = compiled("power_spectrum", backend, np.float64)
    frames = [rocksalt(), silicon()]
    one = native.run(bind(module, frames), threads=1)
    two = native.run(bind(module, frames), threads=2)
    for a, b in zip(one["ps"].blocks(), two["ps"].blocks()):
        np.testing.assert_allclose(a.values, b.values, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_unknown_species_is_the_interpreters_error(compiled, backend):
    module, native = compiled("energy", backend, np.float64)
    with pytest.raises(RunError, match="not among the species"):
        native.run(bind(module, [rocksalt()]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_missing_block_is_an_error(backend):
    """A block access to a key that does not exist: the native run flags it, the interpreter names it."""
    V = modules.V
    bad = modules.ir.BlockRef("rho", (("o3_lambda", modules.C(7)), ("o3_sigma", modules.C(1)),
                                      ("center_type", modules.ir.Data("S", "type", (V("i"),))),
                                      ("neighbor_type", modules.C(1))),
                              (modules.ir.Slot("atoms", V("i"), "S"),), (modules.ir.Slot("value", modules.C(0)),),
                              (modules.ir.Slot("value", modules.C(0)),))
    ir = modules.ir
    kernel = ir.TensorKernel("bad", (ir.Binder("i", ir.AtomsDomain("S")),), (ir.Entry("_", "value", ir.Const(0)),),
                             (modules.atoms_entry(),), (), (ir.Entry("x", "value", ir.Const(0)),), bad)
    base = modules.spherical_expansion(n_radial=2, max_angular=1, cutoff=3.0)
    module = ir.Module("m", base.systems, (), base.pairs, (), base.kernels + (kernel,), ())
    native = compile_module(module, backend=backend)
    assert native.fallbacks == {}
    with pytest.raises(RunError, match="tensor bad.*does not exist"):
        native.run(bind(module, [water()]))
    assert "bad" in native.last_run_fallbacks


@pytest.mark.parametrize("backend", BACKENDS)
def test_unsupported_kernel_falls_back_to_the_interpreter(backend):
    ir = modules.ir
    V = modules.V
    # S.cell has no compiled form (the interpreter itself rejects it): the kernel is left to the interpreter
    kernel = ir.TensorKernel("cellish", (ir.Binder("i", ir.AtomsDomain("S")),), (ir.Entry("_", "value", ir.Const(0)),),
                             (modules.atoms_entry(),), (), (ir.Entry("x", "value", ir.Const(0)),),
                             ir.Data("S", "cell", (ir.Data("S", "system", (V("i"),)), ir.Const(0), ir.Const(0))))
    base = modules.spherical_expansion(n_radial=2, max_angular=1, cutoff=3.0)
    module = ir.Module("m", base.systems, (), base.pairs, (), base.kernels + (kernel,), ())
    native = compile_module(module, backend=backend)
    assert "cellish" in native.fallbacks and "rho" not in native.fallbacks
    with pytest.raises(RunError):
        native.run(bind(module, [water()]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_dense_access_with_a_wrong_derived_key_is_an_error(backend):
    """`rho{center_type = 1}[i, ...]` read from rho's dense buffer: for an oxygen `i` the sample is not in
    that block, so the access is missing, exactly as through the TensorMap."""
    ir = modules.ir
    V = modules.V
    access = ir.BlockRef("rho", (("o3_lambda", ir.Const(0)), ("center_type", ir.Const(1)), ("neighbor_type", ir.Const(1))),
                         (ir.Slot("atoms", V("i"), "S"),), (ir.Slot("value", ir.Const(0)),), (ir.Slot("value", ir.Const(0)),))
    kernel = ir.TensorKernel("hydrogen_only", (ir.Binder("i", ir.AtomsDomain("S")),), (ir.Entry("_", "value", ir.Const(0)),),
                             (modules.atoms_entry(),), (), (ir.Entry("x", "value", ir.Const(0)),), access)
    base = modules.spherical_expansion(n_radial=2, max_angular=1, cutoff=3.0)
    module = ir.Module("m", base.systems, (), base.pairs, (), base.kernels + (kernel,), (ir.Output("hydrogen_only"),))
    native = compile_module(module, backend=backend)
    assert abi.Grid("rho") in native.rendered.kernels["hydrogen_only"].arrays
    with pytest.raises(RunError, match="does not exist"):
        native.run(bind(module, [water()]))
    # only hydrogens: every access exists, and rho is never assembled (not an output, read densely)
    hydrogens = ase.Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]])
    bindings = bind(module, [hydrogens])
    out = native.run(bindings)
    assert "rho" not in bindings.tensors
    assert_same(out, {"hydrogen_only": interpret(module, bind(module, [hydrogens]))["hydrogen_only"]}, np.float64)


def vector_sums() -> "modules.ir.Module":
    """Vector-valued sums: a smoothed dipole per atom and its projection on the position."""
    ir = modules.ir
    V = modules.V
    distance = ir.Data("P", "distance", (V("p"),))
    dipole = ir.Reduce((ir.Binder("p", ir.PairsFrom("P", V("i"))),),
                       ir.Binary("mul", ir.Data("P", "vector", (V("p"),)),
                                 ir.Call("cosine_cutoff", (distance,), (("cutoff", 3.5), ("width", 0.5)))))
    body = ir.Select(ir.Binary("eq", V("c"), ir.Const(0)), ir.Call("norm", (dipole,)),
                     ir.Call("dot", (dipole, ir.Data("S", "positions", (V("i"),)))))
    kernel = ir.TensorKernel(
        "dipole", (ir.Binder("i", ir.AtomsDomain("S")), ir.Binder("c", ir.RangeDomain("c", 0, 2))),
        keys=(ir.Entry("_", "value", ir.Const(0)),), samples=(modules.atoms_entry(),), components=(),
        properties=(ir.Entry("c", "value", V("c")),), body=body)
    return ir.Module("vector_sums", (ir.SystemsInput("S"),), (), (ir.PairsDecl("P", "S", 3.5),), (), (kernel,),
                     (ir.Output("dipole"),))


@pytest.mark.parametrize("backend", BACKENDS)
def test_vector_sums(backend):
    module = vector_sums()
    native = compile_module(module, backend=backend)
    assert native.fallbacks == {}
    frames = [rocksalt(), methanol()]
    assert_same(native.run(bind(module, frames)), interpret(module, bind(module, frames)), np.float64)


@pytest.mark.parametrize("backend", BACKENDS)
def test_parameter_of_the_wrong_shape_is_left_to_the_interpreter(compiled, backend):
    module, native = compiled("energy", backend, np.float64)
    bindings = bind(module, [water()])
    bindings.params["e0"] = np.zeros(2)  # three species declared
    with pytest.raises(IndexError):
        native.run(bindings)
    assert "energy" in native.last_run_fallbacks
