"""The shortcuts of the gradient rows' preparation (`runtime/gradients/forward.py`) against their plain definitions."""

from types import SimpleNamespace

import numpy as np
import pytest

from mtdsl.runtime.gradients import forward as G
from mtdsl.runtime.blocks import expand_slot
from mtdsl.runtime.named import Named, apply, broadcast_to, union_axes


def _plain_lookup(lookup, block, values, entries=None, bindings=None):
    """`_lookup` as one `DenseLookup.positions` over every point of the union of the axes."""
    arrays = [block] + list(values)
    axes = union_axes(*arrays)
    flat_block = G._broadcast(block, axes, arrays)
    columns = []
    for k, value in enumerate(values):
        flat = G._broadcast(value, axes, arrays).reshape(-1).astype(np.int64)
        columns += expand_slot(entries[k].kind, entries[k].source, flat, bindings) if entries else [flat]
    return Named(axes, lookup.positions(flat_block.reshape(-1).astype(np.int64), columns).reshape(flat_block.shape))


@pytest.mark.parametrize("seed", range(6))
def test_table_lookup_matches_positions(seed):
    rng = np.random.default_rng(seed)
    blocks = [rng.integers(-2, 5, size=(rng.integers(0, 12), 3)) for _ in range(3)]
    blocks = [np.unique(b, axis=0) for b in blocks]
    lookup = G.DenseLookup(blocks)
    assert lookup.table is not None
    block = Named(("a",), rng.integers(0, 3, size=4))
    # values over other axes, some outside the table's ranges (-> -1)
    values = [Named(("b",), rng.integers(-4, 7, size=5)), Named(("a", "c"), rng.integers(-3, 6, size=(4, 2))),
              Named((), np.asarray(rng.integers(-2, 5)))]
    found = G._lookup(lookup, block, values)
    plain = _plain_lookup(lookup, block, values)
    assert found.axes == plain.axes
    np.testing.assert_array_equal(found.data, plain.data)


@pytest.mark.parametrize("seed", range(4))
def test_table_lookup_of_atom_slots_matches_positions(seed):
    rng = np.random.default_rng(seed)
    n_atoms = 7
    batch = SimpleNamespace(system=np.array([0, 0, 0, 1, 1, 2, 2]), atom=np.array([0, 1, 2, 0, 1, 0, 1]))
    bindings = SimpleNamespace(systems={"S": batch})
    entries = [SimpleNamespace(kind="atoms", source="S")]
    # samples (system, atom) of two blocks, one atom of system 2 absent from both
    samples = np.stack([batch.system, batch.atom], axis=1)
    lookup = G.DenseLookup([samples[[0, 2, 3, 5]], samples[[1, 3, 4]]])
    block = Named(("p",), rng.integers(0, 2, size=20))
    atoms = Named(("p",), rng.integers(0, n_atoms, size=20))  # more values than atoms: encoded per atom
    found = G._lookup(lookup, block, [atoms], entries, bindings)
    plain = _plain_lookup(lookup, block, [atoms], entries, bindings)
    np.testing.assert_array_equal(found.data, plain.data)
    assert (found.data == -1).any()


@pytest.mark.parametrize("seed", range(6))
def test_exists_is_any_of_the_product(seed):
    rng = np.random.default_rng(seed)
    sizes = {"p": 5, "l": 3, "m": 4, "q": 2}
    row_vars = ("p", "l")
    choices = [("p",), ("l", "m"), ("m",), ("q",), ("p", "q"), ("l",)]
    masks = [Named(axes, rng.random(tuple(sizes[a] for a in axes)) < 0.6)
             for axes in (choices[k] for k in rng.choice(len(choices), size=rng.integers(1, 5)))]
    exists = G._exists(masks, row_vars)
    product = Named.scalar(True)
    for mask in masks:
        product = apply(np.logical_and, product, mask)
    extra = tuple(k for k, a in enumerate(product.axes) if a not in row_vars)
    plain = Named(tuple(a for a in product.axes if a in row_vars), np.any(product.data, axis=extra))
    full = {a: sizes[a] for a in row_vars}
    np.testing.assert_array_equal(broadcast_to(exists, row_vars, full), broadcast_to(plain, row_vars, full))


@pytest.mark.parametrize("seed", range(8))
def test_one_to_one_counts_entries(seed):
    rng = np.random.default_rng(seed)
    n = 50
    row_map = rng.permutation(200)[:n] if seed % 2 else rng.integers(0, 60, size=n)
    where = rng.random(n) < (1.0 if seed % 4 < 2 else 0.7)
    aliased = [rng.integers(0, 3, size=n)] if seed % 3 == 0 else []
    code = row_map[where].astype(np.int64)
    for values in aliased:
        code = code * 3 + values[where]
    assert G._one_to_one(row_map, where, aliased) == (len(np.unique(code)) == len(code))
    assert G._one_to_one(np.sort(row_map), np.ones(n, bool), []) == (len(np.unique(row_map)) == n)
