"""mtdsl: a language and compiler for equivariant atomistic ML on TensorMaps.

The data model mirrors metatensor's Python API (`Labels`, `TensorBlock`,
`TensorMap`, `save`, `load`); the compiler turns `.mt` programs into models.
"""

__version__ = "0.1.0"

from .errors import FormatError, MetadataError, MtdslError
from .tensor import Labels, LabelsEntry, TensorBlock, TensorMap

__all__ = [
    "FormatError",
    "Labels",
    "LabelsEntry",
    "MetadataError",
    "MtdslError",
    "TensorBlock",
    "TensorMap",
]
