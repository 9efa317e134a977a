"""Conversion to and from metatensor-core objects: importable from here, defined in the data model.

`TensorMap.to_metatensor()` and `TensorMap.from_metatensor()` call these functions, so they live
below `mtdsl/tensor/tensormap.py` (in `mtdsl/tensor/_convert.py`); metatensor-core is imported only
inside them.
"""

from ..tensor import TensorMap
from ..tensor._convert import (  # noqa: F401 - the public names of this module
    block_from_metatensor,
    block_to_metatensor,
    labels_from_metatensor,
    labels_to_metatensor,
    to_metatensor,
)


def from_metatensor(tensor) -> TensorMap:
    """A `metatensor.TensorMap` as an mtdsl `TensorMap`, info included."""
    return TensorMap.from_metatensor(tensor)
