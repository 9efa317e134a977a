"""Conversion to metatensor-torch objects, and from metatensor-core or metatensor-torch ones:
importable from here, defined in the data model.

`TensorMap.to_metatensor_torch()` and `TensorMap.from_metatensor()` call these functions, so they
live below `mtdsl/tensor/tensormap.py` (in `mtdsl/tensor/_convert_torch.py`); metatensor-torch is
imported only inside them.
"""

from ..tensor import TensorMap
from ..tensor._convert_torch import (  # noqa: F401 - the public names of this module
    block_from_metatensor,
    block_to_metatensor_torch,
    labels_from_metatensor,
    labels_to_metatensor_torch,
    to_metatensor_torch,
)
from ..tensor._convert_torch import from_metatensor as _from_metatensor
from ..tensor._convert_torch import tensormap_from_metatensor as _tensormap_from_metatensor


def tensormap_from_metatensor(tensor) -> TensorMap:
    return _tensormap_from_metatensor(tensor, TensorMap)


def from_metatensor(value):
    """An mtdsl `Labels`, `TensorBlock` or `TensorMap` from the metatensor-core or
    metatensor-torch object of that kind (gradients and info included)."""
    return _from_metatensor(value, TensorMap)
