"""Conversion to metatensor-torch objects, and from metatensor-core or metatensor-torch ones.

metatensor-torch is imported only inside these functions (through `mtdsl._coexist`, so that
it imports even after torch_geometric). Its objects are TorchScript classes: values and label
values are torch tensors. Conversions share the arrays where they can: a numpy block's values
become a torch tensor over the same memory (`torch.from_numpy`), and the values of a
metatensor-torch block are used as they are. The blocks of a metatensor-torch TensorMap are
moved into it, so each conversion builds fresh blocks (never reused ones).

This module belongs to the data model (below `tensormap.py`, whose `to_metatensor_torch` and
`from_metatensor` call it); `mtdsl.io.metatensor_torch` re-exports it.
"""

from __future__ import annotations

import numpy as np

from .._coexist import import_metatensor_torch
from ._array import is_torch
from .block import TensorBlock
from .labels import Labels


def _torch_array(array):
    import torch

    if is_torch(array):
        return array
    array = np.asarray(array)
    if not array.flags.writeable or not array.flags.c_contiguous:
        array = np.ascontiguousarray(array).copy()
    return torch.from_numpy(array)


def labels_to_metatensor_torch(labels: Labels, device=None):
    mts = import_metatensor_torch()
    values = _torch_array(labels.values if is_torch(labels.values) else labels.array)
    if device is not None:
        values = values.to(device)
    return mts.Labels(list(labels.names), values)


def block_to_metatensor_torch(block: TensorBlock):
    mts = import_metatensor_torch()
    values = _torch_array(block.values)
    device = values.device
    result = mts.TensorBlock(
        values,
        labels_to_metatensor_torch(block.samples, device),
        [labels_to_metatensor_torch(c, device) for c in block.components],
        labels_to_metatensor_torch(block.properties, device),
    )
    for parameter, gradient in block.gradients():
        result.add_gradient(parameter, block_to_metatensor_torch(gradient))
    return result


def to_metatensor_torch(tensor):
    """`tensor` as a `metatensor.torch.TensorMap`, gradients and info included."""
    mts = import_metatensor_torch()
    device = tensor.block(0).values.device if len(tensor) and is_torch(tensor.block(0).values) else None
    result = mts.TensorMap(labels_to_metatensor_torch(tensor.keys, device),
                           [block_to_metatensor_torch(b) for b in tensor.blocks()])
    for key, value in tensor.info().items():
        result.set_info(key, value)
    return result


# -- from metatensor-core or metatensor-torch ------------------------------------------------------


def _kind(value) -> str | None:
    """'Labels', 'TensorBlock' or 'TensorMap' for a metatensor-core or metatensor-torch object."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.ScriptObject):
        name = value._type().name()
        return name if name in ("Labels", "TensorBlock", "TensorMap") else None
    module = type(value).__module__ or ""
    if module.startswith("metatensor"):
        name = type(value).__name__
        return name if name in ("Labels", "TensorBlock", "TensorMap") else None
    return None


def labels_from_metatensor(labels) -> Labels:
    values = labels.values
    if is_torch(values):
        return Labels(list(labels.names), values, assume_unique=True)
    return Labels(list(labels.names), np.asarray(values), assume_unique=True)


def block_from_metatensor(block) -> TensorBlock:
    values = block.values
    if not is_torch(values):
        values = np.asarray(values)
    result = TensorBlock(values, labels_from_metatensor(block.samples),
                         [labels_from_metatensor(c) for c in block.components],
                         labels_from_metatensor(block.properties))
    for parameter in block.gradients_list():
        result.add_gradient(parameter, block_from_metatensor(block.gradient(parameter)))
    return result


def tensormap_from_metatensor(tensor, tensormap_class):
    """`tensormap_class` (mtdsl's `TensorMap`, passed by its `from_metatensor`: this module sits below it)."""
    result = tensormap_class(labels_from_metatensor(tensor.keys), [block_from_metatensor(b) for b in tensor.blocks()])
    for key, value in tensor.info().items():
        result.set_info(key, value)
    return result


def from_metatensor(value, tensormap_class):
    """An mtdsl `Labels`, `TensorBlock` or `TensorMap` (`tensormap_class`) from the metatensor-core or
    metatensor-torch object of that kind (gradients and info included)."""
    kind = _kind(value)
    if kind == "TensorMap":
        return tensormap_from_metatensor(value, tensormap_class)
    if kind == "TensorBlock":
        return block_from_metatensor(value)
    if kind == "Labels":
        return labels_from_metatensor(value)
    raise TypeError(
        f"from_metatensor expects a metatensor or metatensor.torch TensorMap, TensorBlock or Labels, "
        f"got {type(value).__module__}.{type(value).__name__}"
    )
