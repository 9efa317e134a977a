"""The metatensor-compatible data model: Labels, TensorBlock, TensorMap."""

from .block import TensorBlock
from .labels import Labels, LabelsEntry
from .tensormap import TensorMap

__all__ = ["Labels", "LabelsEntry", "TensorBlock", "TensorMap"]
