"""`sort` and `sort_block`: order keys, samples, components and properties lexicographically.

Gradient rows follow: their ``sample`` column is renumbered after sorting the
samples, then the gradient rows are sorted too. Gradients are permuted like their
parent, no other rule applies.
"""

from __future__ import annotations

from typing import List, Union

import numpy as np

from ..tensor import Labels, TensorBlock, TensorMap
from . import _dispatch
from ._utils import no_gradients_of_gradients

AXES = ("samples", "components", "properties")


def argsort_rows(array: np.ndarray, descending: bool = False) -> np.ndarray:
    """Lexicographic order of the rows of `array` (reversed when `descending`)."""
    if array.shape[1] == 0 or len(array) == 0:
        order = np.arange(len(array))
    else:
        order = np.lexsort(array.T[::-1])
    return order[::-1].copy() if descending else order


def _labels(labels: Labels, rows: np.ndarray) -> Labels:
    return Labels._trusted(tuple(labels.names), rows, like=labels.values)


def _sort_other_axes(values, components, properties, axes, descending, offset=0):
    """Sort components and properties of `values` (components from `offset` on)."""
    components = list(components)
    if "components" in axes:
        for i, component in enumerate(components):
            order = argsort_rows(component.array, descending)
            if not np.array_equal(order, np.arange(len(order))):
                components[i] = _labels(component, component.array[order])
                values = _dispatch.take(values, order, axis=i + 1)
    if "properties" in axes:
        order = argsort_rows(properties.array, descending)
        if not np.array_equal(order, np.arange(len(order))):
            properties = _labels(properties, properties.array[order])
            values = _dispatch.take(values, order, axis=values.ndim - 1)
    return values, components, properties


def _sort_block(block: TensorBlock, axes: List[str], descending: bool) -> TensorBlock:
    samples = block.samples
    values = block.values
    inverse = None
    if "samples" in axes:
        order = argsort_rows(samples.array, descending)
        inverse = np.empty(len(order), dtype=np.int64)
        inverse[order] = np.arange(len(order))
        samples = _labels(samples, samples.array[order])
        values = _dispatch.take(values, order)
    values, components, properties = _sort_other_axes(values, block.components, block.properties, axes, descending)
    result = TensorBlock(values, samples, components, properties)
    for parameter, gradient in block.gradients():
        no_gradients_of_gradients(gradient)
        g_samples, g_values = gradient.samples, gradient.values
        if inverse is not None:
            rows = g_samples.array.copy()
            rows[:, 0] = inverse[rows[:, 0]]
            order = argsort_rows(rows, descending)
            g_samples = _labels(g_samples, rows[order])
            g_values = _dispatch.take(g_values, order)
        g_values, g_components, _ = _sort_other_axes(
            g_values, gradient.components, gradient.properties, axes, descending
        )
        result.add_gradient(parameter, TensorBlock(g_values, g_samples, g_components, properties))
    return result


def _axes_list(axes) -> List[str]:
    if isinstance(axes, str):
        axes_list = list(AXES) if axes == "all" else [axes]
    elif isinstance(axes, (list, tuple)):
        axes_list = list(axes)
    else:
        raise TypeError(f"'axes' should be a string or list of strings, not {type(axes)}")
    for axis in axes_list:
        if axis not in AXES:
            raise ValueError(f"`axes` must be one of 'samples', 'components' or 'properties', not '{axis}'")
    return axes_list


def sort_block(block: TensorBlock, axes: Union[str, List[str]] = "all", descending: bool = False) -> TensorBlock:
    """Sort the samples, components and/or properties (``axes``) of ``block``.

    :param axes: ``"all"``, one of ``"samples"``, ``"components"``,
        ``"properties"``, or a list of them
    :param descending: sort in decreasing order
    """
    return _sort_block(block, _axes_list(axes), descending)


def sort(tensor: TensorMap, axes: Union[str, List[str]] = "all", descending: bool = False) -> TensorMap:
    """Sort the keys and/or the samples, components and properties of every block.

    :param axes: ``"all"`` (keys included), ``"keys"``, one of ``"samples"``,
        ``"components"``, ``"properties"``, or a list of them (``"keys"`` allowed)
    :param descending: sort in decreasing order
    """
    if isinstance(axes, str) and axes in ("all", "keys"):
        sort_keys = True
        axes_list = list(AXES) if axes == "all" else []
    elif isinstance(axes, (list, tuple)):
        sort_keys = "keys" in axes
        axes_list = _axes_list([a for a in axes if a != "keys"])
    else:
        sort_keys = False
        axes_list = _axes_list(axes)
    if sort_keys:
        order = argsort_rows(tensor.keys.array, descending)
        keys = _labels(tensor.keys, tensor.keys.array[order])
    else:
        order = np.arange(len(tensor.keys))
        keys = tensor.keys
    blocks = tensor.blocks()
    return TensorMap(keys, [_sort_block(blocks[i], axes_list, descending) for i in order.tolist()])
