"""Conversion to and from metatensor-core objects (`TensorMap.to_metatensor`; `.from_metatensor`
reads metatensor-core and metatensor-torch objects alike: `_convert_torch.py`).

metatensor-core is imported only inside these functions: mtdsl never needs it to run.
Arrays are shared, not copied, where both libraries allow it. This module belongs to the
data model (below `tensormap.py`, whose methods call it); `mtdsl.io.metatensor` re-exports it.
"""

from __future__ import annotations

import numpy as np

from ._array import is_torch
from .block import TensorBlock
from .labels import Labels


def _metatensor():
    try:
        import metatensor
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("converting to metatensor needs metatensor-core: pip install metatensor-core") from error
    return metatensor


def labels_to_metatensor(labels: Labels):
    metatensor = _metatensor()
    values = labels.values if is_torch(labels.values) else labels.array
    return metatensor.Labels(labels.names, values, assume_unique=True)


def labels_from_metatensor(labels) -> Labels:
    return Labels(labels.names, np.asarray(labels.values), assume_unique=True)


def block_to_metatensor(block: TensorBlock):
    metatensor = _metatensor()
    result = metatensor.TensorBlock(
        block.values,
        labels_to_metatensor(block.samples),
        [labels_to_metatensor(c) for c in block.components],
        labels_to_metatensor(block.properties),
    )
    for parameter, gradient in block.gradients():
        result.add_gradient(parameter, block_to_metatensor(gradient))
    return result


def block_from_metatensor(block) -> TensorBlock:
    result = TensorBlock(
        block.values,
        labels_from_metatensor(block.samples),
        [labels_from_metatensor(c) for c in block.components],
        labels_from_metatensor(block.properties),
    )
    for parameter in block.gradients_list():
        result.add_gradient(parameter, block_from_metatensor(block.gradient(parameter)))
    return result


def to_metatensor(tensor):
    """`tensor` as a `metatensor.TensorMap`, info included."""
    metatensor = _metatensor()
    result = metatensor.TensorMap(
        labels_to_metatensor(tensor.keys), [block_to_metatensor(b) for b in tensor.blocks()]
    )
    for key, value in tensor.info().items():
        result.set_info(key, value)
    return result
