"""`block_from_array`: a TensorBlock labelling every axis of an array with its indices."""

from __future__ import annotations

from typing import List, Optional

import numpy as np

from ..tensor import Labels, TensorBlock
from ..tensor._array import is_torch


def _indices(shape) -> np.ndarray:
    """All index tuples of `shape`, in row-major order, as an int32 [n, len(shape)] array."""
    if not shape:
        return np.zeros((1, 0), dtype=np.int32)
    grids = np.meshgrid(*[np.arange(n, dtype=np.int32) for n in shape], indexing="ij")
    return np.stack([g.reshape(-1) for g in grids], axis=1)


def block_from_array(
    array,
    sample_names: Optional[List[str]] = None,
    component_names: Optional[List[str]] = None,
    property_names: Optional[List[str]] = None,
) -> TensorBlock:
    """Wrap ``array`` (numpy or torch, at least 2-D) in a TensorBlock.

    The first ``len(sample_names)`` axes (default ``["sample"]``) become the
    samples, the last ``len(property_names)`` (default ``["property"]``) the
    properties and the axes between the components (default names
    ``component_1``, ...). Every label is the index along its axis.
    """
    shape = tuple(array.shape)
    if len(shape) < 2:
        raise ValueError(
            f"the array provided to `block_from_array` must have at least two dimensions. "
            f"Too few provided: {len(shape)}"
        )
    sample_names = ["sample"] if sample_names is None else list(sample_names)
    property_names = ["property"] if property_names is None else list(property_names)
    d_samples, d_properties = len(sample_names), len(property_names)
    d_components = len(shape) - d_samples - d_properties
    if d_components < 0:
        raise ValueError(
            f"the array provided to `block_from_array` with shape {shape} does not have enough "
            "dimensions to match the sample and property names"
        )
    if component_names is None:
        component_names = [f"component_{i + 1}" for i in range(d_components)]
    if len(component_names) != d_components:
        raise ValueError(
            f"the array provided to `block_from_array` with shape {shape} does not have enough "
            "dimensions to match the given sample, component, and property names"
        )
    like = array if is_torch(array) else None
    samples = Labels._trusted(tuple(sample_names), _indices(shape[:d_samples]), like=like)
    Labels(sample_names, np.zeros((0, d_samples), np.int32))  # checks the names
    properties_shape = shape[len(shape) - d_properties :]
    properties = Labels._trusted(tuple(property_names), _indices(properties_shape), like=like)
    Labels(property_names, np.zeros((0, d_properties), np.int32))
    components = [
        Labels._trusted((name,), np.arange(n, dtype=np.int32).reshape(-1, 1), like=like)
        for name, n in zip(component_names, shape[d_samples : d_samples + d_components])
    ]
    for component in components:
        Labels(component.names, component.array[:0])
    block_shape = (len(samples), *shape[d_samples : d_samples + d_components], len(properties))
    # the block's values are the given array itself when no axes are merged (as in metatensor)
    values = array if tuple(block_shape) == shape else array.reshape(block_shape)
    return TensorBlock(values, samples, components, properties)
