"""`append_dimension`, `insert_dimension`, `permute_dimensions`, `remove_dimension`,
`rename_dimension`: change the dimensions of the keys, samples, components or properties.

Values are shared with the input, never copied. Gradient blocks get the new
properties; `rename_dimension` also renames the dimension in the gradients'
samples (e.g. ``system``) and components. Gradients: unchanged values.
"""

from __future__ import annotations

from typing import List, Union

import numpy as np

from ..tensor import Labels, TensorBlock, TensorMap
from ..tensor._array import to_numpy
from ._utils import check_tensor_map, no_gradients_of_gradients

AXES = ("keys", "samples", "components", "properties")


def _check_axis(axis: str) -> None:
    if axis not in AXES:
        raise ValueError(f"'{axis}' is not a valid axis. Choose from 'keys', 'samples', 'components', or 'properties'.")


def _rebuild(tensor: TensorMap, keys: Labels, change_samples, change_properties, change_components=None,
             change_gradient=None) -> TensorMap:
    """A TensorMap with each block's labels changed by the given functions (identity when None)."""
    blocks = []
    for block in tensor.blocks():
        samples = change_samples(block.samples) if change_samples else block.samples
        properties = change_properties(block.properties) if change_properties else block.properties
        components = change_components(block.components) if change_components else block.components
        result = TensorBlock(block.values, samples, components, properties)
        for parameter, gradient in block.gradients():
            no_gradients_of_gradients(gradient)
            g_samples, g_components = gradient.samples, gradient.components
            if change_gradient:
                g_samples, g_components = change_gradient(g_samples, g_components)
            result.add_gradient(parameter, TensorBlock(gradient.values, g_samples, g_components, properties))
        blocks.append(result)
    result = TensorMap(keys, blocks)
    for key, value in tensor.info().items():
        result.set_info(key, value)
    return result


def _relabel(tensor: TensorMap, axis: str, change, change_components=None, change_gradient=None) -> TensorMap:
    """``tensor`` with the labels of ``axis`` (keys, samples or properties) changed by ``change``."""
    keys = change(tensor.keys) if axis == "keys" else tensor.keys
    return _rebuild(
        tensor,
        keys,
        change if axis == "samples" else None,
        change if axis == "properties" else None,
        change_components,
        change_gradient,
    )


def _column(values, n: int) -> np.ndarray:
    if isinstance(values, (int, np.integer)):
        return np.full(n, int(values), dtype=np.int32)
    return np.asarray(to_numpy(values)).reshape(-1)


def insert_dimension(tensor: TensorMap, axis: str, index: int, name: str, values: Union[np.ndarray, int]) -> TensorMap:
    """Insert a dimension ``name`` at position ``index`` of ``axis`` (not ``"components"``).

    :param values: the new dimension's values, one per entry of the axis (the same
        array for every block), or a single integer for all entries
    """
    check_tensor_map(tensor, "tensor")
    _check_axis(axis)
    return _relabel(tensor, axis, lambda labels: labels.insert(index, name, _column(values, len(labels))))


def append_dimension(tensor: TensorMap, axis: str, name: str, values: Union[np.ndarray, int]) -> TensorMap:
    """Append a dimension ``name`` at the end of ``axis`` (see `insert_dimension`)."""
    check_tensor_map(tensor, "tensor")
    if axis == "keys":
        index = len(tensor.keys.names)
    elif axis == "samples":
        index = len(tensor.sample_names)
    elif axis == "properties":
        index = len(tensor.property_names)
    else:
        raise ValueError(f"'{axis}' is not a valid axis. Choose from 'keys', 'samples' or 'properties'.")
    return insert_dimension(tensor, axis, index, name, values)


def permute_dimensions(tensor: TensorMap, axis: str, dimensions_indexes: List[int]) -> TensorMap:
    """Reorder the dimensions of ``axis``: new dimension ``i`` is old ``dimensions_indexes[i]``."""
    check_tensor_map(tensor, "tensor")
    _check_axis(axis)
    return _relabel(tensor, axis, lambda labels: labels.permute(dimensions_indexes))


def remove_dimension(tensor: TensorMap, axis: str, name: str) -> TensorMap:
    """Remove the dimension ``name`` of ``axis``; the remaining entries must stay unique."""
    check_tensor_map(tensor, "tensor")
    _check_axis(axis)
    return _relabel(tensor, axis, lambda labels: labels.remove(name))


def rename_dimension(tensor: TensorMap, axis: str, old: str, new: str) -> TensorMap:
    """Rename the dimension ``old`` of ``axis`` to ``new`` (gradients follow)."""
    check_tensor_map(tensor, "tensor")
    _check_axis(axis)
    def rename_components(components):
        return [c.rename(old, new) if old in c.names else c for c in components]

    def rename_gradient(samples, components):
        if axis == "samples" and old in samples.names:
            samples = samples.rename(old, new)
        elif axis == "components":
            components = rename_components(components)
        return samples, components

    return _relabel(
        tensor,
        axis,
        lambda labels: labels.rename(old, new),
        rename_components if axis == "components" else None,
        rename_gradient,
    )
