"""File formats: `.mts` (metatensor's, in `mts`), structures (`structures`), conversions to and
from metatensor-core objects (`metatensor`).

`mtdsl.io` offers the names of `metatensor.io` (`save`, `load`, `save_buffer`, `load_buffer`,
`load_block`, `load_labels` and their `_buffer` forms), so code written for metatensor finds them.
"""

from .mts import (
    load,
    load_block,
    load_block_buffer,
    load_buffer,
    load_labels,
    load_labels_buffer,
    save,
    save_buffer,
)

__all__ = [
    "load",
    "load_block",
    "load_block_buffer",
    "load_buffer",
    "load_labels",
    "load_labels_buffer",
    "save",
    "save_buffer",
]
