"""Scatter kernels whose points share a gradient entry, on several threads (`mtdsl/ir/passes/terms.py`,
`CompiledModule.scatter_term`): each thread runs a range of the driver, cut where no row has
points on both sides (`owner_splits`), else into its own buffer.

A two-atom silicon cell with a cutoff beyond the cell, so that a neighbour appears through
several periodic images (several pairs add into one (sample, atom) row of the positions
gradient), and a pair energy per system, whose strain and cell gradients add every pair of a
system into the system's row (one system: no cut, per-thread buffers; two systems: cut between
them); with threads=2 on both backends, against the interpreter (1e-12 of the largest gradient
value) and against one thread.
"""

import ase.build
import numpy as np
import pytest

import mtdsl.runtime.native.compiled as compiled_module
from mtdsl.codegen import threads as native_threads
from mtdsl.compile import compile

from ..runtime.test_gradients import with_gradients, write
from .test_native_gradients import assert_same_gradients

BACKENDS = ["cpp", "llvm"]
ALL = ["positions", "strain", "cell"]

PAIR_ENERGY = """
model pair_energy
hyper cutoff = 5.0
input S : systems
pairs P = neighbors(S, cutoff = cutoff)
index s : systems(S)
index k : range(3)

tensor e
    samples (s)
    properties (k)
  = sum(p in P where S.system[P.first[p]] == s)
        gto(P.distance[p], k, width = 0.8) * cosine_cutoff(P.distance[p], cutoff, width = 0.5)

output e with gradients(positions, strain, cell)
"""


def small_cells():
    silicon = ase.build.bulk("Si", "diamond", a=5.43)  # 2 atoms: each neighbour through many images
    silicon.rattle(0.1, seed=2)
    salt = ase.build.bulk("NaCl", "rocksalt", a=5.64)
    salt.rattle(0.1, seed=1)
    return [silicon, salt]


class Spy:
    """Records the shared-entry scatter terms, their cuts by owner and the thread pools they ran on."""

    def __init__(self, monkeypatch):
        self.shared, self.pools, self.cuts = [], [], []
        scatter_term, pool = compiled_module.CompiledModule.scatter_term, native_threads.pool
        owner_splits = compiled_module.owner_splits

        def spy_splits(*args):
            self.cuts.append(owner_splits(*args))
            return self.cuts[-1]

        def spy_term(module, key, *args, shared=False, **kwargs):
            if shared:
                self.shared.append(key)
            return scatter_term(module, key, *args, shared=shared, **kwargs)

        def spy_pool(name, workers):
            if name == "scatter":
                self.pools.append(workers)
            return pool(name, workers)

        monkeypatch.setattr(compiled_module.CompiledModule, "scatter_term", spy_term)
        monkeypatch.setattr(native_threads, "pool", spy_pool)
        monkeypatch.setattr(compiled_module, "owner_splits", spy_splits)

    def clear(self):
        self.shared.clear()
        self.pools.clear()
        self.cuts.clear()


def check(path, spy, wrt_shared, batch, **hypers):
    expected = compile(path, backend="interpreter", **hypers)(batch, gradients=ALL)
    for backend in BACKENDS:
        spy.clear()
        model = compile(path, backend=backend, threads=2, **hypers)
        model.compiled.fuse = False  # the scatter kernels on their own (test_fused_pass.py: fused)
        ours = model(batch, gradients=ALL)
        assert_same_gradients(expected, ours, ALL, 1e-12)
        assert set(model.compiled.last_gradient_terms.values()) == {"scatter"}
        assert {wrt for _, wrt, _ in spy.shared} >= set(wrt_shared), (backend, spy.shared)
        assert spy.pools and set(spy.pools) == {1}, (backend, spy.pools)  # two threads, not one
        cuts = list(spy.cuts)
        model.threads = 1
        assert_same_gradients(model(batch, gradients=ALL), ours, ALL, 1e-12)
        return cuts


def test_images_of_one_neighbour(tmp_path, monkeypatch):
    spy = Spy(monkeypatch)
    path = with_gradients(tmp_path, "spherical_expansion.mt")
    for batch in (small_cells()[:1], small_cells()):
        cuts = check(path, spy, ["positions"], batch, max_angular=3, n_radial=4)
        assert any(cut is not None for cut in cuts)  # a centre's pairs are one range


def test_strain_and_cell_of_a_pair_energy(tmp_path, monkeypatch):
    spy = Spy(monkeypatch)
    path = write(tmp_path, PAIR_ENERGY)
    cuts = check(path, spy, ["positions", "strain", "cell"], small_cells()[:1])
    assert None in cuts  # one system: its strain row receives every pair, per-thread buffers
    cuts = check(path, spy, ["positions", "strain", "cell"], small_cells())
    assert None not in cuts  # two systems: cut between them


@pytest.mark.parametrize("backend", BACKENDS)
def test_large_private_buffers_run_on_one_thread(tmp_path, monkeypatch, backend):
    """No cut by owner and per-thread buffers beyond `PRIVATE_LIMIT` bytes: the kernel runs
    serially, with the same result."""
    spy = Spy(monkeypatch)
    monkeypatch.setattr(compiled_module, "PRIVATE_LIMIT", 0)
    monkeypatch.setattr(compiled_module, "owner_splits", lambda *args: None)
    path = write(tmp_path, PAIR_ENERGY)
    batch = small_cells()
    expected = compile(path, backend="interpreter")(batch, gradients=ALL)
    ours = compile(path, backend=backend, threads=2)(batch, gradients=ALL)
    assert_same_gradients(expected, ours, ALL, 1e-12)
    assert spy.shared and not spy.pools
