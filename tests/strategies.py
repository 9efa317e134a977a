"""Hypothesis strategies for random TensorMaps, shared by the data-model, I/O and operation tests.

The generated maps look like real atomistic data: several blocks, samples
`system, atom`, optional components, properties `n`, and gradient blocks with
metatensor's layout (positions: `sample, system, atom` x `xyz`; strain:
`xyz_2, xyz_1`).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import mtdsl
from mtdsl import Labels, TensorBlock, TensorMap


def unique_rows(draw, n_columns: int, max_rows: int, low: int = 0, high: int = 6, min_rows: int = 0) -> np.ndarray:
    rows = draw(
        st.lists(
            st.tuples(*[st.integers(low, high)] * n_columns),
            min_size=min_rows,
            max_size=max_rows,
            unique=True,
        )
    )
    return np.array(rows, dtype=np.int32).reshape(-1, n_columns)


def _component(name: str, size: int) -> Labels:
    return Labels([name], np.arange(size, dtype=np.int32).reshape(-1, 1))


def _gradient(rng, block_samples: Labels, components, properties, parameter: str, dtype) -> TensorBlock:
    if parameter == "positions":
        extra = [_component("xyz", 3)]
        rows = []
        for s, (system, atom) in enumerate(block_samples.array.tolist()):
            for other in sorted({atom, atom + 1}):
                rows.append((s, system, other))
        samples = Labels(["sample", "system", "atom"], np.array(rows, dtype=np.int32).reshape(-1, 3))
    else:
        extra = [_component("xyz_2", 3), _component("xyz_1", 3)]
        rows = [(s, system) for s, (system, _) in enumerate(block_samples.array.tolist())]
        samples = Labels(["sample", "system"], np.array(rows, dtype=np.int32).reshape(-1, 2))
    all_components = extra + list(components)
    shape = (len(samples), *[len(c) for c in all_components], len(properties))
    return TensorBlock(rng.standard_normal(shape).astype(dtype), samples, all_components, properties)


@st.composite
def tensormaps(
    draw,
    dtype=np.float64,
    arrays: str = "numpy",
    gradients=None,
    max_blocks: int = 4,
    min_samples: int = 0,
    components=None,
    same_properties: bool = False,
    shuffled_gradients: bool = False,
):
    """A random TensorMap. `gradients`: None draws a subset of (positions, strain)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    key_rows = unique_rows(draw, 2, max_blocks, high=3, min_rows=1)
    keys = Labels(["o3_lambda", "center_type"], key_rows)
    if components is None:
        components = draw(st.lists(st.integers(1, 3), max_size=2))
    component_labels = [_component(f"c{i}", size) for i, size in enumerate(components)]
    if gradients is None:
        gradients = draw(st.lists(st.sampled_from(["positions", "strain"]), unique=True, max_size=2))
    shared_properties = Labels(["n"], unique_rows(draw, 1, 4, high=9, min_rows=1))
    blocks = []
    for _ in range(len(keys)):
        samples = Labels(["system", "atom"], unique_rows(draw, 2, 6, high=4, min_rows=min_samples))
        properties = shared_properties if same_properties else Labels(["n"], unique_rows(draw, 1, 4, high=9, min_rows=1))
        shape = (len(samples), *components, len(properties))
        block = TensorBlock(rng.standard_normal(shape).astype(dtype), samples, component_labels, properties)
        for parameter in gradients:
            gradient = _gradient(rng, samples, component_labels, properties, parameter, dtype)
            if shuffled_gradients:  # gradient rows in no particular order
                order = rng.permutation(len(gradient.samples))
                gradient = TensorBlock(gradient.values[order], Labels(gradient.samples.names, gradient.samples.array[order]),
                                       gradient.components, gradient.properties)
            block.add_gradient(parameter, gradient)
        blocks.append(block)
    tensor = TensorMap(keys, blocks)
    if arrays == "torch":
        tensor = tensor.to(arrays="torch")
    return tensor


__all__ = ["tensormaps", "unique_rows", "mtdsl"]
