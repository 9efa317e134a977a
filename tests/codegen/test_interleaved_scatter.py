"""Scatter kernels of one gradient run interleaved (`runtime/gradients/forward.py: _interleaved_groups`,
`CompiledModule.scatter_interleaved`): the power spectrum's two terms (`drho1 * rho2` and
`rho1 * drho2`, both over the rows of `drho`) run chunk by chunk of their common driver, every
term on a chunk before the next, on one or two threads; the result is the interpreter's.

Their fused kernel (one pass, `codegen/schedule/fuse.py`) runs first where it can: these tests turn it
off (`compiled.fuse = False`) to reach the interleaved path, which runs where the fused kernel
cannot (an entry with points of two driver positions on several threads)."""

import ase
import ase.build
import numpy as np
import pytest

from mtdsl.compile import compile
from mtdsl.runtime.native import compiled as compiled_module
from mtdsl.runtime.gradients import forward as gradients_module

from ..runtime.test_gradients import small_batch, with_gradients
from .test_native_gradients import assert_same_gradients

BACKENDS = ["cpp", "llvm"]


def silicon():
    atoms = ase.build.bulk("Si", cubic=True)
    atoms.rattle(0.05, seed=3)
    return [atoms]


def spy(monkeypatch):
    calls = []
    original = compiled_module.CompiledModule.scatter_interleaved

    def interleaved(self, keys, *args, **kwargs):
        calls.append(tuple(keys))
        return original(self, keys, *args, **kwargs)

    monkeypatch.setattr(compiled_module.CompiledModule, "scatter_interleaved", interleaved)
    return calls


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("chunk", [1, 3, 1024])
def test_power_spectrum_terms_interleaved(tmp_path, monkeypatch, threads, chunk):
    monkeypatch.setattr(gradients_module, "INTERLEAVE_CHUNK", chunk)
    calls = spy(monkeypatch)
    path = with_gradients(tmp_path, "soap_power_spectrum.mt", "positions, strain")
    hypers = {"max_angular": 2, "n_radial": 3}
    for batch in (silicon(), small_batch()):
        expected = compile(path, backend="interpreter", **hypers)(batch, gradients=["positions", "strain"])
        for backend in BACKENDS:
            calls.clear()
            model = compile(path, backend=backend, **hypers)
            model.compiled.fuse = False
            model.threads = threads
            ours = model(batch, gradients=["positions", "strain"])
            assert_same_gradients(expected, ours, ["positions", "strain"], 1e-12)
            assert set(model.compiled.last_gradient_terms.values()) == {"scatter"}
            if batch is not None and len(batch) == 1:  # one species: both terms write the same rows, chunk by chunk
                assert (("ps", "positions", 0), ("ps", "positions", 1)) in calls, (backend, calls)


def test_interleaving_off_gives_the_same_values(tmp_path, monkeypatch):
    path = with_gradients(tmp_path, "soap_power_spectrum.mt", "positions")
    batch = silicon() + small_batch()
    for backend in BACKENDS:
        model = compile(path, backend=backend, max_angular=2, n_radial=3)
        monkeypatch.setenv("MTDSL_INTERLEAVE", "0")
        calls = spy(monkeypatch)
        off = model(batch, gradients=["positions"])
        assert calls == []
        monkeypatch.setenv("MTDSL_INTERLEAVE", "1")
        on = model(batch, gradients=["positions"])
        assert_same_gradients(off, on, ["positions"], 1e-14)


def test_chunk_owned():
    where = np.ones(4, dtype=bool)
    # two terms over a driver of 4 positions (row maps over (driver,)): each entry written by one chunk
    same = [np.array([0, 1, 2, 3]), np.array([0, 1, 2, 3])]
    found = [(where, None, None, None, None, []), (where, None, None, None, None, [])]
    assert gradients_module._chunk_owned(same, found, [(4,), (4,)], [0, 0], chunk=2)
    # the second term writes row 0 from position 3 (another chunk than the first term's position 0)
    crossed = [np.array([0, 1, 2, 3]), np.array([3, 1, 2, 0])]
    assert not gradients_module._chunk_owned(crossed, found, [(4,), (4,)], [0, 0], chunk=2)
    assert gradients_module._chunk_owned(crossed, found, [(4,), (4,)], [0, 0], chunk=4)
    # an aliased column separates the entries of one row
    columns = [(where, None, None, None, None, [np.array([0, 0, 1, 1])]),
               (where, None, None, None, None, [np.array([1, 1, 0, 0])])]
    rows = [np.array([0, 1, 0, 1]), np.array([0, 1, 0, 1])]
    assert not gradients_module._chunk_owned(rows, columns, [(4,), (4,)], [0, 0], chunk=2)
    assert gradients_module._chunk_owned(rows, columns[:1] + columns[:1], [(4,), (4,)], [0, 0], chunk=2)


def test_output_gradients_are_contiguous_intermediate_ones_views(tmp_path):
    """The gradient blocks of an output are contiguous arrays; those of a tensor only read by
    later terms (the power spectrum's `rho`) are views of the buffer its kernels wrote."""
    path = with_gradients(tmp_path, "soap_power_spectrum.mt", "positions")
    model = compile(path, backend="cpp", max_angular=2, n_radial=3)
    batch = silicon()
    bindings = model.bind(batch, {})
    model.compiled.run(bindings, all_tensors=True)
    gradients_module.compute_gradients(model.module, bindings, model.gradient_kernels["positions"], "positions",
                                       ["ps"], native=model.compiled)
    for block in bindings.tensors["ps"].blocks():
        assert block.gradient("positions").values.flags.c_contiguous
    views = [b.gradient("positions").values for b in bindings.tensors["rho"].blocks()]
    assert any(not v.flags.c_contiguous for v in views)
    expansion = compile(with_gradients(tmp_path, "spherical_expansion.mt", "positions"), backend="cpp",
                        max_angular=2, n_radial=3)
    for block in expansion(batch, gradients=["positions"])["rho"].blocks():
        assert block.gradient("positions").values.flags.c_contiguous


def test_the_interpreter_takes_over_when_an_interleaved_run_fails(tmp_path):
    """An interleaved group that reports an error leaves its tensor's gradient to the interpreter."""
    path = with_gradients(tmp_path, "soap_power_spectrum.mt", "positions")
    batch = silicon()
    expected = compile(path, backend="interpreter", max_angular=2, n_radial=3)(batch, gradients=["positions"])
    for backend in BACKENDS:
        model = compile(path, backend=backend, max_angular=2, n_radial=3)
        model.compiled.fuse = False
        model.compiled.scatter_interleaved = lambda *args, **kwargs: False
        ours = model(batch, gradients=["positions"])
        assert_same_gradients(expected, ours, ["positions"], 1e-12)
        ran = model.compiled.last_gradient_terms
        assert ("rho", "positions", 0) in ran and not any(key[0] == "ps" for key in ran), ran
