"""The gradient rows' buffers kept between calls of a compiled model (`runtime/gradients/arena.py`).

A call reuses the buffer of the previous one only when nothing references it any more: a result
(or any view of the buffer) that a caller keeps is never changed by a later call, and a result is
the same, bit for bit, whether its buffer was fresh or reused.
"""

import gc
import weakref

import ase.build
import numpy as np
import pytest

from mtdsl.compile import compile
from mtdsl.runtime.gradients.arena import GradientArena

from .test_gradients import with_gradients

WRT = ["positions", "strain"]


def frames(seed):
    atoms = ase.build.bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.05, seed=seed)
    water = ase.Atoms("OH2", positions=[[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    water.rattle(0.05, seed=seed)
    return [atoms, water]


def arrays(result) -> list:
    """Every values and gradient array of a model's result, in a fixed order (references, not copies)."""
    out = []
    for name in sorted(result):
        for block in result[name].blocks():
            out.append(block.values)
            out.extend(block.gradient(wrt).values for wrt in WRT)
    return out


def kept(model) -> dict:
    """Weak references to the arrays the model's arena keeps (a strong one would keep them in use)."""
    return {key: weakref.ref(array) for key, array in model.compiled.gradient_arena._arrays.items()}


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    return with_gradients(tmp_path_factory.mktemp("arena"), "spherical_expansion.mt", "positions, strain")


@pytest.mark.parametrize("backend", ["cpp", "llvm"])
def test_a_kept_result_is_not_changed_by_the_next_call(program, backend):
    model = compile(program, backend=backend, max_angular=2, n_radial=3)
    first = model(frames(1), gradients=WRT)
    saved = [a.copy() for a in arrays(first)]
    before = kept(model)
    assert before, "the scatter kernels' rows ran (the arena is in use)"
    second = model(frames(2), gradients=WRT)  # other positions, the same shapes
    for array, copy in zip(arrays(first), saved):
        assert np.array_equal(array, copy)  # bit for bit, while the next result lives
    differ = [not np.array_equal(a, b) for a, b in zip(arrays(first), arrays(second))]
    assert sum(differ) > len(differ) // 2  # (so a write of the second call into the first's would show)
    # the same frames again, with the first result dropped: its buffer is free and reused
    del first, second
    gc.collect()
    before = kept(model)
    again = model(frames(1), gradients=WRT)
    after = model.compiled.gradient_arena._arrays
    assert all(after[key] is reference() for key, reference in before.items()), "a free buffer is reused"
    for array, copy in zip(arrays(again), saved):
        assert np.array_equal(array, copy)  # a reused buffer gives the same result as a fresh one


@pytest.mark.parametrize("backend", ["cpp", "llvm"])
def test_a_view_kept_by_a_caller_is_not_reused(program, backend):
    """Any view of a buffer (an intermediate tensor's gradient blocks are such views) keeps it from
    the next call: that call writes into a fresh buffer and the view keeps its values."""
    model = compile(program, backend=backend, max_angular=2, n_radial=3)
    model(frames(1), gradients=WRT)
    key, array = next(iter(model.compiled.gradient_arena._arrays.items()))
    view = array[: min(len(array), 1000)]
    del array
    saved = view.copy()
    assert np.any(saved != 0)
    reference = model(frames(2), gradients=WRT)
    assert np.array_equal(view, saved)
    assert model.compiled.gradient_arena._arrays[key] is not view.base
    fresh = compile(program, backend=backend, max_angular=2, n_radial=3)(frames(2), gradients=WRT)
    for mine, theirs in zip(arrays(reference), arrays(fresh)):
        assert np.array_equal(mine, theirs)


def test_the_arena_zeroes_and_hands_out_free_arrays_only():
    arena = GradientArena()
    first = arena.zeros("g", (4, 3, 5), np.float64)
    assert first.shape == (4, 3, 5) and not first.any()
    first[...] = 1.0
    base = weakref.ref(first.base)
    del first
    second = arena.zeros("g", (3, 3, 5), np.float64)  # smaller: the same array, zeroed
    assert second.base is base() and not second.any()
    held = second[1:]
    second[...] = 2.0
    del second
    third = arena.zeros("g", (3, 3, 5), np.float64)  # `held` is a view of the kept array: a fresh one
    assert not np.shares_memory(third, held) and np.all(held == 2.0) and not third.any()
    assert arena.zeros("g", (3, 3, 5), np.float32).dtype == np.float32  # one array per dtype
    del third
    assert arena.zeros("g", (40, 3, 5), np.float64).base is not held.base  # larger: a fresh one
