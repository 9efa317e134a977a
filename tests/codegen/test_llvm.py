"""The LLVM backend (`mtdsl.codegen.llvm`) against the reference interpreter.

The same corner and reference modules, structures and tolerances as
`test_backends.py` (same metadata bit for bit; values within 1e-12 / 1e-5 of
each block's largest magnitude), plus the reference programs compiled from
their `.mt` files, threads, fallbacks and the emitted IR.
"""

from __future__ import annotations

import pathlib

import ase
import numpy as np
import pytest

from mtdsl.codegen.schedule import abi
from mtdsl.codegen import llvm as backend
from mtdsl.codegen import threads as native_threads
from mtdsl.compile import check_and_lower
from mtdsl.ir import nodes as ir
from mtdsl.runtime.bindings import RunError
from mtdsl.runtime.native.compiled import compile_module

from . import modules
from .test_backends import (  # noqa: F401  (`compiled` is the session fixture)
    CHO, MODULES, STRUCTURES, assert_same, bind, compiled, interpret, rocksalt, silicon, water,
)
from .test_safety import HOSTILE, hostile_module

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("structure", sorted(STRUCTURES))
@pytest.mark.parametrize("name", sorted(MODULES))
def test_equals_interpreter(compiled, name, structure):
    if name == "energy" and structure not in CHO:
        pytest.skip("the energy model is compiled for H, C, O")
    module, native = compiled(name, "llvm", np.float64)
    assert native.fallbacks == {}
    frames = STRUCTURES[structure]()
    ours = native.run(bind(module, frames), all_tensors=True)
    assert native.last_run_fallbacks == {}
    assert_same(ours, interpret(module, bind(module, frames)), np.float64)


@pytest.mark.parametrize("name", ["power_spectrum", "convolution", "convolution_e3nn", "corners"])
def test_float32_equals_interpreter(compiled, name):
    module, native = compiled(name, "llvm", np.float32)
    frames = [rocksalt(), water()]
    ours = native.run(bind(module, frames, np.float32), all_tensors=True)
    assert native.last_run_fallbacks == {}
    assert_same(ours, interpret(module, bind(module, frames, np.float32)), np.float32)


@pytest.mark.parametrize("name", ["spherical_expansion", "power_spectrum", "convolution"])
def test_threads_give_the_same_values(compiled, name):
    """Chunks of the driver run from the thread pool write disjoint rows: the values do not depend
    on the number of threads (bit for bit: every row is computed by one call)."""
    module, native = compiled(name, "llvm", np.float64)
    frames = [rocksalt(), silicon(), water()]
    one = native.run(bind(module, frames), threads=1, all_tensors=True)
    for threads in (2, 5):
        many = native.run(bind(module, frames), threads=threads, all_tensors=True)
        for tensor in one:
            for a, b in zip(one[tensor].blocks(), many[tensor].blocks()):
                np.testing.assert_array_equal(a.values, b.values)


def test_kernels_split_the_driver_range(compiled):
    import os

    module, native = compiled("spherical_expansion", "llvm", np.float64)
    kernel = native.kernels["rho"].function
    assert kernel.parallel and kernel.rendered.driver_count == abi.AtomCount("S")
    native.run(bind(module, [rocksalt()]), threads=3)  # two pool workers and the calling thread
    assert ("llvm", os.getpid(), 2) in native_threads._POOLS


def test_unknown_species_is_the_interpreters_error(compiled):
    module, native = compiled("energy", "llvm", np.float64)
    with pytest.raises(RunError, match="not among the species"):
        native.run(bind(module, [rocksalt()]))


def test_missing_block_is_an_error():
    """A block access to a key that does not exist: the native run flags it, the interpreter names it."""
    V = modules.V
    bad = ir.BlockRef("rho", (("o3_lambda", modules.C(7)), ("o3_sigma", modules.C(1)),
                              ("center_type", ir.Data("S", "type", (V("i"),))), ("neighbor_type", modules.C(1))),
                      (ir.Slot("atoms", V("i"), "S"),), (ir.Slot("value", modules.C(0)),),
                      (ir.Slot("value", modules.C(0)),))
    kernel = ir.TensorKernel("bad", (ir.Binder("i", ir.AtomsDomain("S")),), (ir.Entry("_", "value", ir.Const(0)),),
                             (modules.atoms_entry(),), (), (ir.Entry("x", "value", ir.Const(0)),), bad)
    base = modules.spherical_expansion(n_radial=2, max_angular=1, cutoff=3.0)
    module = ir.Module("m", base.systems, (), base.pairs, (), base.kernels + (kernel,), ())
    native = compile_module(module, backend="llvm")
    assert native.fallbacks == {}
    with pytest.raises(RunError, match="tensor bad.*does not exist"):
        native.run(bind(module, [water()]))
    assert "bad" in native.last_run_fallbacks


def test_unsupported_kernel_falls_back_to_the_interpreter():
    V = modules.V
    kernel = ir.TensorKernel("cellish", (ir.Binder("i", ir.AtomsDomain("S")),), (ir.Entry("_", "value", ir.Const(0)),),
                             (modules.atoms_entry(),), (), (ir.Entry("x", "value", ir.Const(0)),),
                             ir.Data("S", "cell", (ir.Data("S", "system", (V("i"),)), ir.Const(0), ir.Const(0))))
    base = modules.spherical_expansion(n_radial=2, max_angular=1, cutoff=3.0)
    module = ir.Module("m", base.systems, (), base.pairs, (), base.kernels + (kernel,), ())
    native = compile_module(module, backend="llvm")
    assert "cellish" in native.fallbacks and "rho" not in native.fallbacks
    assert "mt_kernel_1" not in native.source  # the half-built function is dropped
    with pytest.raises(RunError):
        native.run(bind(module, [water()]))


def test_dense_access_reads_the_buffer():
    """The power spectrum reads rho from its dense buffer: rho is never assembled when not needed."""
    module = modules.power_spectrum(n_radial=3, max_angular=2, cutoff=3.5, width=0.4)
    module = ir.Module(module.name, module.systems, (), module.pairs, (), module.kernels, (ir.Output("ps"),))
    native = compile_module(module, backend="llvm")
    assert abi.Grid("rho") in native.rendered.kernels["ps"].arrays
    bindings = bind(module, [water()])
    out = native.run(bindings)
    assert "rho" not in bindings.tensors
    assert_same(out, {"ps": interpret(module, bind(module, [water()]))["ps"]}, np.float64)


# ---- the reference programs, from their .mt files -------------------------------------------------------


def random_systems(seed):
    rng = np.random.default_rng(seed)
    crystal = ase.build.bulk("NaCl", "rocksalt", a=5.0, cubic=True)
    crystal.rattle(0.1, seed=seed)
    molecule = ase.Atoms(numbers=rng.choice([1, 8, 11], size=5), positions=rng.uniform(0, 3.5, size=(5, 3)))
    lonely = ase.Atoms("Cl", positions=[[0, 0, 0]])
    return [crystal, molecule, lonely]


PROGRAMS = {
    "spherical_expansion.mt": dict(cutoff=3.5, n_radial=4, max_angular=3),
    "soap_power_spectrum.mt": dict(cutoff=3.5, n_radial=3, max_angular=2),
    "soap_energy.mt": dict(species=[1, 8, 11, 17], cutoff=3.5, n_radial=3, max_angular=2),
    "equivariant_convolution.mt": dict(cutoff=3.5, width=4),
}


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_reference_programs_equal_interpreter(program):
    _, module, _ = check_and_lower(EXAMPLES / program, **PROGRAMS[program])
    native = compile_module(module, backend="llvm")
    assert native.fallbacks == {}
    for seed in (0, 1):
        frames = random_systems(seed)
        ours = native.run(bind(module, frames, seed=seed), all_tensors=True)
        assert native.last_run_fallbacks == {}
        assert_same(ours, interpret(module, bind(module, frames, seed=seed)), np.float64)


# ---- the emitted IR ---------------------------------------------------------------------------------


def test_emitted_ir_is_valid_and_optimizes():
    module = modules.power_spectrum(n_radial=4, max_angular=3, cutoff=3.5, width=0.4)
    source = backend.render(module)
    assert "define i64 @\"mt_kernel_0\"" in source and "define i64 @\"mt_kernel_1\"" in source
    optimized, _ = backend.optimize(source)
    assert "mt_kernel_1" in str(optimized)


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_never_reach_the_ir(name):
    names = [f"{name}{k}" for k in range(9)]
    module = hostile_module(names)
    source = backend.render(module)
    for part in (name, name.strip(), "system(", "rm -rf", "passwd", "$(id)"):
        if part and not part.isalnum():
            assert part not in source
    backend.optimize(source)  # parses and verifies


# ---- the object-code cache ------------------------------------------------------------------------------


def test_object_cache_hit_and_corrupted_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("MTDSL_CACHE_DIR", str(tmp_path))
    module = modules.spherical_expansion(n_radial=3, max_angular=2, cutoff=3.5, width=0.4)
    cold = compile_module(module, backend="llvm")
    assert not cold.cache_hit and cold.path.exists()
    warm = compile_module(module, backend="llvm")
    assert warm.cache_hit
    frames = [rocksalt(), water()]
    assert_same(warm.run(bind(module, frames)), interpret(module, bind(module, frames)), np.float64)
    data = bytearray(cold.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cold.path.write_bytes(bytes(data))
    rebuilt = compile_module(module, backend="llvm")
    assert not rebuilt.cache_hit
    assert compile_module(module, backend="llvm").cache_hit
    assert_same(rebuilt.run(bind(module, frames)), interpret(module, bind(module, frames)), np.float64)


# ---- through mtdsl.compile and the CLI ------------------------------------------------------------------


def test_compile_with_the_llvm_backend():
    import mtdsl

    hypers = dict(cutoff=3.5, n_radial=3, max_angular=2)
    model = mtdsl.compile(EXAMPLES / "soap_power_spectrum.mt", backend="llvm", threads=2, **hypers)
    reference = mtdsl.compile(EXAMPLES / "soap_power_spectrum.mt", backend="interpreter", **hypers)
    frames = [rocksalt(), water()]
    ours, theirs = model(frames, gradients=["positions"]), reference(frames, gradients=["positions"])
    assert model.compiled.fallbacks == {}
    assert_same(ours, theirs, np.float64)
    for a, b in zip(ours["ps"].blocks(), theirs["ps"].blocks()):
        gradient, expected = a.gradient("positions"), b.gradient("positions")
        np.testing.assert_array_equal(gradient.samples.array, expected.samples.array)
        scale = float(np.abs(expected.values).max()) if expected.values.size else 0.0
        np.testing.assert_allclose(gradient.values, expected.values, rtol=0, atol=1e-12 * scale)


def test_default_backend_without_a_compiler_is_llvm(monkeypatch):
    from mtdsl.compile import default_backend

    monkeypatch.setenv("CXX", "no-such-compiler-mtdsl")
    with pytest.warns(UserWarning, match="llvm backend"):
        assert default_backend() == "llvm"


def test_cli_emits_llvm_ir(capsys):
    from mtdsl.cli import main

    assert main(["compile", str(EXAMPLES / "spherical_expansion.mt"), "--emit", "llvm", "--set", "n_radial=3"]) == 0
    text = capsys.readouterr().out
    assert 'define i64 @"mt_kernel_0"' in text
    backend.optimize(text)


# ---- random kernels (tests/codegen/test_random_programs.py's generator) ------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_random_kernels_equal_the_interpreter(seed):
    random_programs = pytest.importorskip("tests.codegen.test_random_programs")
    from .test_backends import methanol

    module = random_programs.random_module(seed)
    native = compile_module(module, backend="llvm")
    assert native.fallbacks == {}
    frames = [rocksalt(), water(), methanol()]
    with np.errstate(all="ignore"):
        ours = native.run(bind(module, frames), all_tensors=True)
        oracle = interpret(module, bind(module, frames))
    assert native.last_run_fallbacks == {}
    assert_same(ours, oracle, np.float64)


def test_vector_sums():
    from .test_backends import methanol, vector_sums

    module = vector_sums()
    native = compile_module(module, backend="llvm")
    assert native.fallbacks == {}
    frames = [rocksalt(), methanol()]
    assert_same(native.run(bind(module, frames)), interpret(module, bind(module, frames)), np.float64)


def test_parameter_of_the_wrong_shape_is_left_to_the_interpreter(compiled):
    module, native = compiled("energy", "llvm", np.float64)
    bindings = bind(module, [water()])
    bindings.params["e0"] = np.zeros(2)  # three species declared
    with pytest.raises(IndexError):
        native.run(bindings)
    assert "energy" in native.last_run_fallbacks


def test_threads_after_fork(compiled):
    """A forked child (multiprocessing, data loaders) runs threaded kernels with its own pool."""
    import multiprocessing

    module, native = compiled("spherical_expansion", "llvm", np.float64)
    native.run(bind(module, [rocksalt()]), threads=2)  # the parent's pool exists

    def child():
        out = native.run(bind(module, [rocksalt(), silicon()]), threads=2)
        raise SystemExit(0 if out["rho"].blocks() else 1)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(timeout=60)
    if process.is_alive():
        process.kill()
    assert process.exitcode == 0


def test_concurrent_processes_share_the_cache(tmp_path):
    """Processes compiling the same module at once into an empty cache: each loads a complete
    object (its own or another's, sha256-checked) and computes the same values."""
    import os
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[2]
    script = (
        "import sys, numpy as np; sys.path.insert(0, {root!r})\n"
        "from tests.codegen import modules\n"
        "from tests.codegen.test_backends import bind, water\n"
        "from mtdsl.runtime.native.compiled import compile_module\n"
        "module = modules.corners()\n"
        "native = compile_module(module, backend='llvm')\n"
        "out = native.run(bind(module, [water()]))\n"
        "print(repr([float(np.abs(b.values).sum()) for t in out.values() for b in t.blocks()]))\n"
    ).format(root=str(root))
    environment = dict(os.environ, MTDSL_CACHE_DIR=str(tmp_path))
    processes = [subprocess.Popen([sys.executable, "-c", script], env=environment, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        results.append(out.strip())
    assert len(set(results)) == 1
    assert list((tmp_path / "llvm").glob("*.tmp")) == []


def test_cli_runs_with_the_llvm_backend(tmp_path, capsys):
    import mtdsl
    from mtdsl.cli import main

    data = EXAMPLES / "data" / "water.xyz"
    outputs = {}
    for backend in ("llvm", "interpreter"):
        path = tmp_path / f"{backend}.mts"
        assert main(["run", str(EXAMPLES / "soap_power_spectrum.mt"), str(data), "-o", str(path),
                     "--set", "n_radial=3", "--set", "max_angular=2", "--backend", backend, "--threads", "2"]) == 0
        outputs[backend] = {"ps": mtdsl.load(path)}
    assert_same(outputs["llvm"], outputs["interpreter"], np.float64)


def test_dense_access_with_a_wrong_derived_key_is_an_error():
    """`rho{center_type = 1}[i, ...]` read from rho's dense buffer: for an oxygen `i` the sample is
    not in that block, so the access is missing, exactly as through the TensorMap."""
    V = modules.V
    keys = (("o3_lambda", ir.Const(0)), ("center_type", ir.Const(1)), ("neighbor_type", ir.Const(1)))
    access = ir.BlockRef("rho", keys, (ir.Slot("atoms", V("i"), "S"),), (ir.Slot("value", ir.Const(0)),),
                         (ir.Slot("value", ir.Const(0)),))
    kernel = ir.TensorKernel("hydrogen_only", (ir.Binder("i", ir.AtomsDomain("S")),),
                             (ir.Entry("_", "value", ir.Const(0)),), (modules.atoms_entry(),), (),
                             (ir.Entry("x", "value", ir.Const(0)),), access)
    base = modules.spherical_expansion(n_radial=2, max_angular=1, cutoff=3.0)
    module = ir.Module("m", base.systems, (), base.pairs, (), base.kernels + (kernel,), (ir.Output("hydrogen_only"),))
    native = compile_module(module, backend="llvm")
    assert abi.Grid("rho") in native.rendered.kernels["hydrogen_only"].arrays
    with pytest.raises(RunError, match="does not exist"):
        native.run(bind(module, [water()]))
    hydrogens = ase.Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]])
    bindings = bind(module, [hydrogens])
    out = native.run(bindings)
    assert "rho" not in bindings.tensors
    assert_same(out, {"hydrogen_only": interpret(module, bind(module, [hydrogens]))["hydrogen_only"]}, np.float64)
