"""`sum_over_properties`, `mean_over_properties`, `var_over_properties`, `std_over_properties`.

The named property dimensions are reduced away: properties that agree on the
remaining dimensions are merged, sorted. Without remaining dimensions the result
has a single property ``_ = 0``. Samples are unchanged, so gradient blocks keep
their samples and are reduced over the same properties.

Gradients, for a group of :math:`n` properties :math:`x_j` merged into one:
sum :math:`\\sum_j \\nabla x_j`; mean :math:`\\frac1n \\sum_j \\nabla x_j`;
var :math:`2 (\\frac1n \\sum_j x_j \\nabla x_j - \\bar{x} \\frac1n \\sum_j \\nabla x_j)`;
std :math:`\\nabla \\sigma^2 / (2 \\sigma)`, 0 where :math:`\\sigma = 0`.
(metatensor-operations 0.5.0 gets var and std gradients wrong for blocks with
components, and std gradients wrong for torch; we follow the formulas above,
checked by finite differences.)
"""

from __future__ import annotations

from typing import List, Union

import numpy as np

from ..tensor import Labels, TensorBlock, TensorMap
from . import _dispatch
from ._block import values_at_gradient_samples
from ._reduce_over_samples import REDUCTIONS, _names_list, group_rows
from ._parallel import map_blocks
from ._utils import check_tensor_map, no_gradients_of_gradients


def _reduce_over_properties_block(
    block: TensorBlock, property_names: Union[List[str], str], reduction: str
) -> TensorBlock:
    names = block.properties.names
    reduced = _names_list(property_names)
    remaining = [n for n in names if n not in reduced]
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}, choose from {list(REDUCTIONS)}")

    if len(block.properties) == 0:
        properties = Labels(remaining or ["_"], np.zeros((0, len(remaining) or 1), dtype=np.int32))
        result = TensorBlock(block.values, block.samples, block.components, properties)
        for parameter, gradient in block.gradients():
            no_gradients_of_gradients(gradient)
            result.add_gradient(
                parameter, TensorBlock(gradient.values, gradient.samples, gradient.components, properties)
            )
        return result

    if remaining:
        columns = [names.index(n) for n in remaining]
        new_properties, index = group_rows(block.properties.array[:, columns])
        properties = Labels._trusted(tuple(remaining), new_properties, like=block.properties.values)
    else:
        index = np.zeros(len(block.properties), dtype=np.int64)
        properties = Labels._trusted(("_",), np.zeros((1, 1), dtype=np.int32), like=block.properties.values)
    n_new = len(properties)
    counts = np.bincount(index, minlength=n_new)
    values = block.values
    n = _dispatch.as_like(counts.astype(np.float64), values)
    total = _dispatch.columns_add(n_new, values, index)

    mean = std = None
    if reduction == "sum":
        result_values = total
    else:
        mean = total / n
        if reduction == "mean":
            result_values = mean
        else:
            centered = values - _dispatch.take(mean, index, axis=values.ndim - 1)
            var = _dispatch.columns_add(n_new, centered * centered, index) / n
            result_values = var if reduction == "var" else _dispatch.sqrt(var)
            std = result_values

    result = TensorBlock(result_values, block.samples, block.components, properties)
    for parameter, gradient in block.gradients():
        no_gradients_of_gradients(gradient)
        g = gradient.values
        g_total = _dispatch.columns_add(n_new, g, index)
        if reduction == "sum":
            g_result = g_total
        else:
            g_mean = g_total / n
            if reduction == "mean":
                g_result = g_mean
            else:
                x = values_at_gradient_samples(block, gradient)
                mean_x_g = _dispatch.columns_add(n_new, g * x, index) / n
                g_result = 2 * (mean_x_g - values_at_gradient_samples(block, gradient, mean) * g_mean)
                if reduction == "std":
                    with np.errstate(divide="ignore", invalid="ignore"):
                        std_at = values_at_gradient_samples(block, gradient, std)
                        g_result = _dispatch.nan_to_zero(g_result / (2 * std_at))
        result.add_gradient(parameter, TensorBlock(g_result, gradient.samples, gradient.components, properties))
    return result


def _reduce_over_properties(tensor: TensorMap, property_names: Union[List[str], str], reduction: str) -> TensorMap:
    check_tensor_map(tensor, "tensor")
    reduced = _names_list(property_names)
    for name in reduced:
        if name not in tensor.property_names:
            raise ValueError(f"one of the requested property name ({name}) is not part of this TensorMap")
    blocks = map_blocks(lambda b: _reduce_over_properties_block(b, reduced, reduction), tensor.blocks())
    return TensorMap(tensor.keys, blocks)


def sum_over_properties_block(block: TensorBlock, property_names: Union[List[str], str]) -> TensorBlock:
    """Sum the values of `block` over the property dimensions `property_names`."""
    return _reduce_over_properties_block(block, property_names, "sum")


def sum_over_properties(tensor: TensorMap, property_names: Union[List[str], str]) -> TensorMap:
    """Sum the values of every block over the property dimensions `property_names`."""
    return _reduce_over_properties(tensor, property_names, "sum")


def mean_over_properties_block(block: TensorBlock, property_names: Union[List[str], str]) -> TensorBlock:
    """Average the values of `block` over the property dimensions `property_names`."""
    return _reduce_over_properties_block(block, property_names, "mean")


def mean_over_properties(tensor: TensorMap, property_names: Union[List[str], str]) -> TensorMap:
    """Average the values of every block over the property dimensions `property_names`."""
    return _reduce_over_properties(tensor, property_names, "mean")


def var_over_properties_block(block: TensorBlock, property_names: Union[List[str], str]) -> TensorBlock:
    """Variance (biased) of `block` over the property dimensions `property_names`."""
    return _reduce_over_properties_block(block, property_names, "var")


def var_over_properties(tensor: TensorMap, property_names: Union[List[str], str]) -> TensorMap:
    """Variance (biased) of every block over the property dimensions `property_names`."""
    return _reduce_over_properties(tensor, property_names, "var")


def std_over_properties_block(block: TensorBlock, property_names: Union[List[str], str]) -> TensorBlock:
    """Standard deviation of `block` over the property dimensions `property_names`."""
    return _reduce_over_properties_block(block, property_names, "std")


def std_over_properties(tensor: TensorMap, property_names: Union[List[str], str]) -> TensorMap:
    """Standard deviation of every block over the property dimensions `property_names`."""
    return _reduce_over_properties(tensor, property_names, "std")
