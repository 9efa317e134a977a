"""Native reverse products (`runtime/gradients/native_products.py`) against the gradient blocks.

The reference is the same contraction done in numpy on the gradient blocks that a model
(`mtdsl.runtime.model.Model`, the same backend) returns for `gradients=["positions", "cell"]`:

    positions_bar[atom, x] = sum over the rows r of atom of G[r, x, cols] C[sample(r), cols]
    cell_bar[system, a, x] = sum over the rows r of system of G[r, a, x, cols] C[sample(r), cols]

for the spherical expansion and the power spectrum (small hypers), on a molecule, two small
crystals (one triclinic, two species), an isolated atom and a far-apart pair, with random
cotangents, cpp and llvm, float64: within 1e-10 of the largest entry.
"""

import dataclasses

import numpy as np
import pytest

from mtdsl.codegen.schedule import abi
from mtdsl.compile import check_and_lower
from mtdsl.ir import nodes as ir
from mtdsl.runtime.bindings import RunError
from mtdsl.runtime.model import Model
from mtdsl.runtime.gradients.native_products import NativeProducts

from ..runtime.test_gradients import EXAMPLES
from .test_native_gradients import systems

BACKENDS = ["cpp", "llvm"]
PROGRAMS = {
    "rho": ("spherical_expansion.mt", {"max_angular": 3, "n_radial": 4}),
    "ps": ("soap_power_spectrum.mt", {"max_angular": 2, "n_radial": 3}),
}


def module_of(name):
    program, hypers = PROGRAMS[name]
    return check_and_lower(EXAMPLES / program, **hypers)[1]


def reference_products(module, names, backend, frames, cotangents):
    """The products from the gradient blocks of a model whose outputs are `names`."""
    outputs = tuple(ir.Output(name, ("positions", "cell")) for name in names)
    model = Model(dataclasses.replace(module, outputs=outputs), backend=backend)
    model.dense = True  # the products' cotangents and tangents are one array per block of the dense layout
    results = model(frames, gradients=["positions", "cell"])
    batch = model.bind(frames, {}).systems[module.systems[0].name]
    offsets = np.asarray(batch.atom_offsets, dtype=np.int64)
    positions_bar = np.zeros((batch.n_atoms, 3))
    cell_bar = np.zeros((batch.n_systems, 3, 3))
    for name in names:
        for block, cotangent in zip(results[name].blocks(), cotangents[name]):
            gradient = block.gradient("positions")
            rows = np.asarray(gradient.samples.values, dtype=np.int64)
            parent = cotangent[rows[:, 0]].reshape(len(rows), -1)
            values = np.asarray(gradient.values).reshape(len(rows), 3, -1)
            np.add.at(positions_bar, offsets[rows[:, 1]] + rows[:, 2], np.einsum("rxk,rk->rx", values, parent))
            gradient = block.gradient("cell")
            rows = np.asarray(gradient.samples.values, dtype=np.int64)[:, 0]
            systems_ = np.asarray(block.samples.column("system"), dtype=np.int64)[rows]
            values = np.asarray(gradient.values).reshape(len(rows), 3, 3, -1)
            np.add.at(cell_bar, systems_, np.einsum("raxk,rk->rax", values, cotangent[rows].reshape(len(rows), -1)))
    return positions_bar, cell_bar


def reference_tangents(module, names, backend, frames, positions_dot, cell_dot):
    """`{name: [array per block]}`: the gradient blocks contracted with the tangents."""
    outputs = tuple(ir.Output(name, ("positions", "cell")) for name in names)
    model = Model(dataclasses.replace(module, outputs=outputs), backend=backend)
    model.dense = True  # the products' cotangents and tangents are one array per block of the dense layout
    results = model(frames, gradients=["positions", "cell"])
    batch = model.bind(frames, {}).systems[module.systems[0].name]
    offsets = np.asarray(batch.atom_offsets, dtype=np.int64)
    expected = {}
    for name in names:
        expected[name] = []
        for block in results[name].blocks():
            value = np.zeros(block.values.shape)
            width = int(np.prod(block.values.shape[1:]))
            gradient = block.gradient("positions")
            rows = np.asarray(gradient.samples.values, dtype=np.int64)
            values = np.asarray(gradient.values).reshape(len(rows), 3, width)
            moved = positions_dot[offsets[rows[:, 1]] + rows[:, 2]]
            np.add.at(value.reshape(len(value), width), rows[:, 0], np.einsum("rxk,rx->rk", values, moved))
            gradient = block.gradient("cell")
            rows = np.asarray(gradient.samples.values, dtype=np.int64)[:, 0]
            systems_ = np.asarray(block.samples.column("system"), dtype=np.int64)[rows]
            values = np.asarray(gradient.values).reshape(len(rows), 3, 3, width)
            np.add.at(value.reshape(len(value), width), rows, np.einsum("raxk,rax->rk", values, cell_dot[systems_]))
            expected[name].append(value)
    return expected


def random_cotangents(bindings, names, seed=0):
    rng = np.random.default_rng(seed)
    return {name: [rng.normal(size=block.values.shape) for block in bindings.tensors[name].blocks()] for name in names}


def assert_close(ours, expected, tolerance=1e-10):
    scale = max(np.abs(expected).max(initial=0.0), 1e-300)
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=0, atol=tolerance * scale)


def check(module, names, backend, frames=None, seed=0, threads=2):
    frames = frames or systems()
    products = NativeProducts(module, names, backend, np.float64, threads=threads)
    bindings = Model(module, backend=backend).bind(frames, {})
    products.run(bindings)
    cotangents = random_cotangents(bindings, names, seed)
    positions_bar, cell_bar = products.vjp(bindings, cotangents)
    expected_positions, expected_cell = reference_products(module, names, backend, frames, cotangents)
    assert np.abs(expected_positions).max() > 0 and np.abs(expected_cell).max() > 0
    assert_close(positions_bar, expected_positions)
    assert_close(cell_bar, expected_cell)
    return products, bindings


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["rho", "ps"])
def test_vjp_equals_the_contracted_gradient_blocks(name, backend):
    check(module_of(name), [name], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_thread(backend):
    check(module_of("ps"), ["ps"], backend, threads=1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_power_spectrum_gradient_is_never_materialized(backend):
    products, bindings = check(module_of("ps"), ["ps"], backend)
    # through the cotangent of the expansion: no gradient of rho or of ps is computed, or compiled
    assert products.through == {"ps": ["rho", "ps"]}
    assert products.reads == {"positions": [], "cell": []}
    assert not products.compiled.scatters
    assert not products._state.tables and not products._state.dense
    assert not any(block.gradients_list() for name in ("rho", "ps") for block in bindings.tensors[name].blocks())
    assert set(products.vjp_kernels) == {("ps", "positions"), ("ps", "cell")}
    assert [(read, gathered) for read, _, gathered in products.read_vjp["ps"]] == [("rho", True), ("rho", True)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_power_spectrum_through_the_expansion_gradient(backend):
    # through=False: the terms of ps read the expansion's gradient blocks, as before
    module = module_of("ps")
    frames = systems()
    products = NativeProducts(module, ["ps"], backend, np.float64, threads=2, through=False)
    assert not products.through
    assert products.reads == {"positions": ["rho"], "cell": ["rho"]}
    assert all(key[0] == "rho" for key in products.compiled.scatters)
    bindings = Model(module, backend=backend).bind(frames, {})
    products.run(bindings)
    cotangents = random_cotangents(bindings, ["ps"], seed=7)
    positions_bar, cell_bar = products.vjp(bindings, cotangents)
    expected_positions, expected_cell = reference_products(module, ["ps"], backend, frames, cotangents)
    assert_close(positions_bar, expected_positions)
    assert_close(cell_bar, expected_cell)
    assert all(block.gradients_list() for block in bindings.tensors["rho"].blocks())


@pytest.mark.parametrize("backend", BACKENDS)
def test_products_of_a_tensor_and_of_one_it_reads_add_up(backend):
    check(module_of("ps"), ["rho", "ps"], backend, seed=3)


def test_a_second_call_with_other_cotangents():
    module = module_of("rho")
    frames = systems()
    products = NativeProducts(module, ["rho"], "cpp", np.float64)
    bindings = Model(module, backend="cpp").bind(frames, {})
    products.run(bindings)
    first = random_cotangents(bindings, ["rho"], seed=1)
    second = random_cotangents(bindings, ["rho"], seed=2)
    products.vjp(bindings, first)
    positions_bar, cell_bar = products.vjp(bindings, second)
    expected_positions, expected_cell = reference_products(module, ["rho"], "cpp", frames, second)
    assert_close(positions_bar, expected_positions)
    assert_close(cell_bar, expected_cell)


def test_bad_calls():
    module = module_of("rho")
    with pytest.raises(ValueError, match="not a tensor"):
        NativeProducts(module, ["nope"], "cpp")
    with pytest.raises(ValueError, match="native backend"):
        NativeProducts(module, ["rho"], "interpreter")
    products = NativeProducts(module, ["rho"], "cpp")
    bindings = Model(module, backend="cpp").bind(systems()[:1], {})
    with pytest.raises(RunError, match="run"):
        products.vjp(bindings, {"rho": []})
    products.run(bindings)
    with pytest.raises(ValueError, match="arrays for"):
        products.vjp(bindings, {"rho": []})
    blocks = [np.zeros((1,) + b.values.shape[1:]) for b in bindings.tensors["rho"].blocks()]
    with pytest.raises(ValueError, match="shape"):
        products.vjp(bindings, {"rho": blocks})


def test_tensors_that_read_params_are_refused(tmp_path):
    path = tmp_path / "program.mt"
    path.write_text("""
model program
input S : systems
pairs P = neighbors(S, cutoff = 3.0)
index i : atoms(S)
index k : range(2)
param w[k] ~ normal(0.0, 1.0)
tensor t
    samples (i)
    properties (k)
  = sum(p in P.from(i)) w[k] * P.distance[p]
output t with gradients(positions)
""")
    module = check_and_lower(path)[1]
    with pytest.raises(ValueError, match="parameter w"):
        NativeProducts(module, ["t"], "cpp")


@pytest.mark.parametrize("backend", BACKENDS)
def test_positions_only(backend):
    module = module_of("ps")
    frames = systems()
    products = NativeProducts(module, ["ps"], backend, np.float64, wrt=("positions",))
    assert set(products.vjp_kernels) == {("ps", "positions")}
    bindings = Model(module, backend=backend).bind(frames, {})
    products.run(bindings)
    cotangents = random_cotangents(bindings, ["ps"], seed=5)
    positions_bar, cell_bar = products.vjp(bindings, cotangents)
    expected_positions, _ = reference_products(module, ["ps"], backend, frames, cotangents)
    assert_close(positions_bar, expected_positions)
    assert not cell_bar.any()
    with pytest.raises(ValueError, match="with respect to"):
        NativeProducts(module, ["ps"], backend, wrt=("strain",))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("names", [["rho"], ["ps"], ["rho", "ps"]])
def test_jvp_equals_the_contracted_gradient_blocks(names, backend):
    module = module_of(names[-1])
    frames = systems()
    products = NativeProducts(module, names, backend, np.float64, threads=2)
    assert not products.jvp_unsupported
    bindings = Model(module, backend=backend).bind(frames, {})
    products.run(bindings)
    batch = bindings.systems["S"]
    rng = np.random.default_rng(11)
    positions_dot = rng.normal(size=(batch.n_atoms, 3))
    cell_dot = rng.normal(size=(batch.n_systems, 3, 3))
    ours = products.jvp(bindings, positions_dot, cell_dot)
    expected = reference_tangents(module, names, backend, frames, positions_dot, cell_dot)
    for name in names:
        scale = max(np.abs(e).max(initial=0.0) for e in expected[name])
        assert scale > 0
        assert len(ours[name]) == len(expected[name])
        for mine, reference in zip(ours[name], expected[name]):
            assert mine.shape == reference.shape
            np.testing.assert_allclose(mine, reference, rtol=0, atol=1e-10 * scale)
    # one tangent at a time: the products are linear
    only_positions = products.jvp(bindings, positions_dot, None)
    only_cell = products.jvp(bindings, None, cell_dot)
    for name in names:
        for a, b, total in zip(only_positions[name], only_cell[name], ours[name]):
            np.testing.assert_allclose(a + b, total, rtol=0, atol=1e-12 * max(np.abs(total).max(initial=0.0), 1.0))
    # a new tangent on the same bindings replaces the bound one (abi.Grid of the tangent invalidated)
    doubled = products.jvp(bindings, 2 * positions_dot, None)
    for name in names:
        for a, twice in zip(only_positions[name], doubled[name]):
            np.testing.assert_allclose(twice, 2 * a, rtol=0, atol=1e-12 * max(np.abs(a).max(initial=0.0), 1.0))


def test_jvp_checks_its_tangents():
    module = module_of("rho")
    products = NativeProducts(module, ["rho"], "cpp")
    bindings = Model(module, backend="cpp").bind(systems()[:1], {})
    products.run(bindings)
    with pytest.raises(ValueError, match="tangent of the positions"):
        products.jvp(bindings, np.zeros((1, 3)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32(backend):
    module = module_of("ps")
    frames = systems()
    products = NativeProducts(module, ["ps"], backend, np.float32, threads=2)
    bindings = Model(module, backend=backend, dtype=np.float32).bind(frames, {})
    products.run(bindings)
    cotangents = random_cotangents(bindings, ["ps"], seed=9)
    positions_bar, cell_bar = products.vjp(bindings, cotangents)
    assert positions_bar.dtype == np.float32 and cell_bar.dtype == np.float32
    expected_positions, expected_cell = reference_products(module, ["ps"], backend, frames, cotangents)
    assert_close(positions_bar, expected_positions, 1e-5)
    assert_close(cell_bar, expected_cell, 1e-5)


CONSTANT_PROPERTY = """
model program
input S : systems
pairs P = neighbors(S, cutoff = 3.0)
index i : atoms(S)
index k : range(3)
index b : species(S)
tensor t
    keys (center_type = S.type[i], neighbor_type = b)
    samples (i)
    properties (k, c = 7)
  = sum(p in P.from(i) where S.type[P.second[p]] == b) exp(-P.distance[p] * (k + 1.0))
output t
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_constant_property_reads_the_cotangent_through_lookup_tables(tmp_path, backend):
    # a constant property (not a kernel index): no dense grid of the cotangent, a TensorMap instead
    path = tmp_path / "program.mt"
    path.write_text(CONSTANT_PROPERTY)
    module = check_and_lower(path)[1]
    frames = systems()
    products = NativeProducts(module, ["t"], backend, np.float64, threads=2)
    kernel = products.compiled.kernels[products.vjp_kernels[("t", "positions")][0]]
    assert any(isinstance(d, abi.BlockTable) and d.key[0] == "·cot·t" for d in kernel.rendered.arrays)
    bindings = Model(module, backend=backend).bind(frames, {})
    products.run(bindings)
    for seed in (1, 2):  # the second call reads the new cotangent, not the first one's tables
        cotangents = random_cotangents(bindings, ["t"], seed)
        positions_bar, cell_bar = products.vjp(bindings, cotangents)
        expected_positions, expected_cell = reference_products(module, ["t"], backend, frames, cotangents)
        assert_close(positions_bar, expected_positions)
        assert_close(cell_bar, expected_cell)
    batch = bindings.systems["S"]
    rng = np.random.default_rng(4)
    positions_dot, cell_dot = rng.normal(size=(batch.n_atoms, 3)), rng.normal(size=(batch.n_systems, 3, 3))
    ours = products.jvp(bindings, positions_dot, cell_dot)["t"]
    expected = reference_tangents(module, ["t"], backend, frames, positions_dot, cell_dot)["t"]
    for mine, reference in zip(ours, expected):
        assert_close(mine, reference)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("program", ["BUILTINS_PROGRAM", "PAIRS_PROGRAM", "MESSAGE_PASSING_PROGRAM", "DIPOLE_PROGRAM"])
def test_programs_of_the_gradient_tests(tmp_path, program, backend):
    """Every built-in, pair samples, message passing over a computed tensor (neighbours of
    neighbours, three-body sums), a vector output reading the positions: VJP and JVP of every
    tensor of each program."""
    from ..runtime import test_gradients

    path = tmp_path / "program.mt"
    path.write_text(getattr(test_gradients, program))
    module = check_and_lower(path)[1]
    frames = systems()
    for name in [k.name for k in module.kernels]:
        products = NativeProducts(module, [name], backend, np.float64, threads=2)
        assert not products.jvp_unsupported
        # every tensor reading another goes through its cotangent / tangent: no forward gradient
        assert not products.compiled.scatters and not any(products.reads.values())
        if name == "h2":  # reads h1[P.second[p], k]: a scatter into h1's cotangent, not a gather
            assert products.through == {"h2": ["h1", "h2"]}
            assert [gathered for _, _, gathered in products.read_vjp["h2"]] == [False]
        bindings = Model(module, backend=backend).bind(frames, {})
        products.run(bindings)
        cotangents = random_cotangents(bindings, [name])
        positions_bar, cell_bar = products.vjp(bindings, cotangents)
        expected_positions, expected_cell = reference_products(module, [name], backend, frames, cotangents)
        assert_close(positions_bar, expected_positions)
        assert_close(cell_bar, expected_cell)
        batch = bindings.systems["S"]
        rng = np.random.default_rng(4)
        positions_dot, cell_dot = rng.normal(size=(batch.n_atoms, 3)), rng.normal(size=(batch.n_systems, 3, 3))
        ours = products.jvp(bindings, positions_dot, cell_dot)[name]
        expected = reference_tangents(module, [name], backend, frames, positions_dot, cell_dot)[name]
        for mine, reference in zip(ours, expected):
            assert_close(mine, reference)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_expansion_terms_run_fused(backend, threads):
    """The expansion's two VJP terms and its two JVP terms run as one pass over the pairs each
    (`codegen/schedule/fuse.py: fused_group`): the same products as the terms run one after the other,
    on 1 and 2 threads (2: ranges of the pairs into per-thread buffers)."""
    module = module_of("rho")
    products = NativeProducts(module, ["rho"], backend, np.float64, threads=threads)
    assert set(products.fused_products) == {tuple(products.vjp_kernels[("rho", "positions")]),
                                            tuple(products.jvp_kernels[("rho", "positions")])}
    assert all(name in products.compiled.kernels for name in products.fused_products.values())
    frames = systems()
    bindings = Model(module, backend=backend).bind(frames, {})
    products.run(bindings)
    cotangents = random_cotangents(bindings, ["rho"], 3)
    rng = np.random.default_rng(4)
    positions_dot = rng.normal(size=(sum(len(f) for f in frames), 3))
    fused_vjp = products.vjp(bindings, cotangents)
    fused_jvp = products.jvp(bindings, positions_dot, None)
    products.fused_products = {}  # the terms one after the other
    for ours, apart in zip(fused_vjp, products.vjp(bindings, cotangents)):
        assert_close(ours, apart, 1e-12)
    for ours, apart in zip(fused_jvp["rho"], products.jvp(bindings, positions_dot, None)["rho"]):
        assert_close(ours, apart, 1e-12)
