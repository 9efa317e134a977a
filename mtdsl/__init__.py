"""mtdsl: a language and compiler for equivariant atomistic ML on TensorMaps.

The data model mirrors metatensor's Python API (`Labels`, `TensorBlock`,
`TensorMap`, `save`, `load`); `mtdsl.ops` mirrors metatensor-operations; the
compiler turns `.mt` programs into models.
"""

from ._version import __version__  # noqa: F401 - mtdsl.__version__

from . import ops
from .compile import CompileError, compile
from .errors import FormatError, MetadataError, MetatensorError, MtdslError
from .lang.check import check
from .ops import NotEqualError
from .io.mts import load, load_block, load_buffer, load_labels, save, save_buffer
from .io.structures import StructureError, read_structures
from .systems import Pairs, System, SystemBatch, neighbors, systems_from_ase
from .tensor import Labels, LabelsEntry, TensorBlock, TensorMap
from . import distributed  # its modules (and dask) load on first use


def open_dataset(path, **options):
    """The sharded outputs written by `mtdsl.distributed.write_frames` (docs/distributed.md)."""
    return distributed.open_dataset(path, **options)


__all__ = [
    "CompileError",
    "check",
    "compile",
    "FormatError",
    "Labels",
    "LabelsEntry",
    "MetadataError",
    "MetatensorError",
    "MtdslError",
    "NotEqualError",
    "Pairs",
    "StructureError",
    "System",
    "SystemBatch",
    "TensorBlock",
    "TensorMap",
    "load",
    "load_block",
    "load_buffer",
    "load_labels",
    "neighbors",
    "open_dataset",
    "ops",
    "read_structures",
    "save",
    "save_buffer",
    "systems_from_ase",
]
