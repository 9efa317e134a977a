"""`TensorMap`: a block-sparse tensor, a set of `TensorBlock` indexed by `keys`.

All blocks share their sample, component and property names, their dtype, array
library and device, and their set of gradients; a mismatch is an error that names
the block's key and what differs. `info` holds string metadata such as provenance.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from ..errors import MetadataError
from . import _convert, _convert_torch, _reshape
from ._array import array_device, array_kind, dtype_name, to_arguments
from ._display import tensormap_text
from ._metatensor_api import MetatensorOperators, Serializable
from .block import TensorBlock, short_dtype
from .labels import Labels, LabelsEntry, describe_key  # noqa: F401 - describe_key importable from here


class BlockIndexError(MetadataError, IndexError):
    """`tensor.block(i)` with `i` out of range: metatensor's error and Python's IndexError."""


class TensorMap(Serializable, MetatensorOperators):
    """Blocks indexed by keys; mirrors metatensor-core's `TensorMap`."""

    __slots__ = ("_keys", "_blocks", "_info")

    def __init__(self, keys: Labels, blocks: Sequence[TensorBlock]):
        if not isinstance(keys, Labels):
            raise TypeError(f"`keys` must be metatensor Labels, not {type(keys)}")
        blocks = list(blocks)
        if len(blocks) != len(keys):
            raise MetadataError(f"got {len(blocks)} blocks for {len(keys)} keys")
        for i, block in enumerate(blocks):
            if not isinstance(block, TensorBlock):
                raise TypeError(
                    f"`blocks` elements must be metatensor TensorBlock, not {type(block)} "
                    f"(block {describe_key(keys, i)})"
                )
        if blocks:
            _check_blocks_agree(keys, blocks)
        self._keys = keys
        self._blocks = blocks
        self._info: dict[str, str] = {}

    # -- blocks -----------------------------------------------------------------------
    @property
    def keys(self) -> Labels:
        return self._keys

    def __len__(self) -> int:
        return len(self._blocks)

    def __iter__(self) -> Iterator[TensorBlock]:
        """The blocks, in key order (as metatensor iterates; `items()` gives (key, block))."""
        return iter(list(self._blocks))

    def __getitem__(self, selection) -> TensorBlock:
        """`tensor[i]`, `tensor[selection]`, `tensor[dict]`: the same as `block(selection)`."""
        return self.block(selection)

    def items(self) -> list[tuple[LabelsEntry, TensorBlock]]:
        return [(self._keys[i], block) for i, block in enumerate(self._blocks)]

    def block_by_id(self, index: int) -> TensorBlock:
        return self._blocks[index]

    def blocks_by_id(self, indices: Sequence[int]) -> list[TensorBlock]:
        return [self._blocks[i] for i in indices]

    def blocks_matching(self, selection=None, **kwargs) -> list[int]:
        """Indices of the blocks whose keys match `selection` (Labels, entry, dict or kwargs)."""
        selection = self._selection(selection, kwargs)
        if selection is None:
            return list(range(len(self._blocks)))
        return self._keys.select(selection).tolist()

    def _selection(self, selection, kwargs) -> Labels | None:
        if isinstance(selection, (int, np.integer)):
            raise TypeError("an integer selection is handled by block()")
        if selection is not None and kwargs:
            raise TypeError("give a selection or keyword arguments, not both")
        if isinstance(selection, dict):
            kwargs, selection = selection, None
        if kwargs:
            names = list(kwargs)
            for name in names:
                if name not in self._keys.names:
                    raise MetadataError(
                        f"invalid parameter: {name!r} in selection is not part of these Labels "
                        f"(no key named {name!r} in this TensorMap, keys are {self._keys.names})"
                    )
            return Labels(names, np.array([[int(kwargs[n]) for n in names]], dtype=np.int32))
        if isinstance(selection, LabelsEntry):
            return Labels(selection.names, np.asarray(selection.values).reshape(1, -1))
        return selection

    def block(self, selection=None, **kwargs) -> TensorBlock:
        """The single block matching the selection (`tmap.block(center_type=8)`, `tmap.block(3)`)."""
        if isinstance(selection, (int, np.integer)):
            if not -len(self._blocks) <= selection < len(self._blocks):
                raise BlockIndexError(
                    f"block index out of bounds: we have {len(self._blocks)} blocks but the index is {selection}"
                )
            return self._blocks[selection]
        if selection is None and not kwargs:
            if not self._blocks:
                raise MetadataError("there are no blocks in this TensorMap")
            if len(self._blocks) != 1:
                raise MetadataError(
                    f"block() without a selection needs exactly one block, this TensorMap has {len(self._blocks)}"
                )
            return self._blocks[0]
        self._selection(selection, kwargs)  # unknown names first, as metatensor
        if not self._blocks:
            raise MetadataError("there are no blocks in this TensorMap")
        matching = self.blocks_matching(selection, **kwargs)
        if len(matching) != 1:
            wanted = self._selection(selection, kwargs)
            what = ", ".join(f"{n}={int(v)}" for n, v in zip(wanted.names, wanted.array[0])) if len(wanted) == 1 else repr(wanted)
            if not matching:
                raise MetadataError(f"couldn't find any block matching ({what})")
            raise MetadataError(
                f"more than one block matched ({what}), use `TensorMap.blocks` to get all of them "
                f"({len(matching)} blocks match)"
            )
        return self._blocks[matching[0]]

    def blocks(self, selection=None, **kwargs) -> list[TensorBlock]:
        if isinstance(selection, (int, np.integer)):
            return [self._blocks[selection]]
        return [self._blocks[i] for i in self.blocks_matching(selection, **kwargs)]

    # -- shared metadata -------------------------------------------------------------------
    @property
    def sample_names(self) -> list[str]:
        return self._blocks[0].samples.names if self._blocks else []

    @property
    def component_names(self) -> list[str]:
        return [c.names[0] for c in self._blocks[0].components] if self._blocks else []

    @property
    def property_names(self) -> list[str]:
        return self._blocks[0].properties.names if self._blocks else []

    @property
    def dtype(self):
        return self._blocks[0].dtype if self._blocks else None

    @property
    def device(self) -> str:
        return self._blocks[0].device if self._blocks else "cpu"

    # -- info ------------------------------------------------------------------------------
    def info(self) -> dict[str, str]:
        """The string metadata (provenance among it), as a copy."""
        return dict(self._info)

    def get_info(self, key: str) -> str | None:
        return self._info.get(key)

    def set_info(self, key: str, value: str) -> None:
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError("info keys and values must be strings")
        self._info[key] = value

    # -- copies ---------------------------------------------------------------------------------
    def copy(self, deep: bool = True) -> "TensorMap":
        """A copy with the same keys and info; `deep=False` shares the blocks' arrays."""
        result = TensorMap(self._keys, [b.copy(deep=deep) for b in self._blocks])
        result._info = dict(self._info)
        return result

    def __copy__(self) -> "TensorMap":
        return self.copy(deep=False)

    def __deepcopy__(self, memo) -> "TensorMap":
        return self.copy(deep=True)

    def to(self, *args, dtype=None, device=None, arrays: str | None = None, non_blocking: bool = False) -> "TensorMap":
        """The same TensorMap with arrays of another dtype, device or library (`to("cpu")`,
        `to(torch.float32)` and keywords, as in metatensor)."""
        dtype, device = to_arguments(args, dtype, device, "TensorMap.to")
        # labels are numpy or torch: with jax values (`arrays="jax"`) they stay numpy
        labels_arrays = "numpy" if arrays == "jax" else arrays
        result = TensorMap(self._keys.to(device=device, arrays=labels_arrays) if arrays is not None else self._keys,
                           [b.to(dtype=dtype, device=device, arrays=arrays, non_blocking=non_blocking)
                            for b in self._blocks])
        result._info = dict(self._info)
        return result

    @property
    def is_view(self) -> bool:
        return False

    # -- reshaping metadata -------------------------------------------------------------------
    def keys_to_samples(self, keys_to_move, *, fill_value=0.0, sort_samples=True) -> "TensorMap":
        """Move key dimensions into the samples, merging the blocks that differ only there."""
        self._check_keys_to_move()
        return _reshape.keys_to_samples(self, keys_to_move, fill_value=fill_value, sort_samples=sort_samples)

    def keys_to_properties(self, keys_to_move, *, fill_value=0.0, sort_samples=True) -> "TensorMap":
        """Move key dimensions into the properties; samples absent from a block are `fill_value`."""
        self._check_keys_to_move()
        return _reshape.keys_to_properties(self, keys_to_move, fill_value=fill_value, sort_samples=sort_samples)

    def _check_keys_to_move(self) -> None:
        if not self._blocks:
            raise MetadataError("invalid parameter: there are no keys to move in an empty TensorMap")

    def components_to_properties(self, dimensions) -> "TensorMap":
        """Move component dimensions into the properties (component-major, like metatensor)."""
        return _reshape.components_to_properties(self, dimensions)

    # -- conversions ------------------------------------------------------------------------------
    def to_metatensor(self):
        """This TensorMap as a `metatensor.TensorMap` (metatensor-core imported only here)."""
        return _convert.to_metatensor(self)

    def to_metatensor_torch(self):
        """This TensorMap as a `metatensor.torch.TensorMap` (numpy values shared as torch tensors)."""
        return _convert_torch.to_metatensor_torch(self)

    @staticmethod
    def from_metatensor(tensor) -> "TensorMap":
        """An mtdsl TensorMap from a metatensor-core or metatensor-torch one (Labels and
        TensorBlock give mtdsl Labels and TensorBlock); gradients and info kept."""
        return _convert_torch.from_metatensor(tensor, TensorMap)

    # -- display ---------------------------------------------------------------------------------
    def print(self, max_keys: int) -> str:
        """The keys and block shapes, at most `max_keys` blocks (-1: all), as metatensor prints."""
        return tensormap_text(self, max_keys)

    def __repr__(self) -> str:
        return self.print(-1)

    def __str__(self) -> str:
        return self.print(7)


def _check_blocks_agree(keys: Labels, blocks: list[TensorBlock]) -> None:
    """Every block must share names, dtype, array type, device and gradients with the first."""
    reference = blocks[0]
    kind, dtype = array_kind(reference.values), dtype_name(reference.dtype)
    for index, block in enumerate(blocks[1:], start=1):
        if array_kind(block.values) == kind and dtype_name(block.dtype) == dtype \
                and not _block_difference(reference, block):
            continue  # (the message below only for a block that differs: describing keys costs)
        where = f"block {describe_key(keys, index)} differs from block {describe_key(keys, 0)}"
        # metatensor's wording (and order: array library first, then dtype) for these two
        if array_kind(block.values) != array_kind(reference.values):
            raise MetadataError(
                "invalid parameter: invalid tensor map: got blocks with different origins, at least "
                f"('python.{array_kind(reference.values)}') and ('python.{array_kind(block.values)}') were "
                f"detected ({where})"
            )
        if dtype_name(block.dtype) != dtype_name(reference.dtype):
            raise MetadataError(
                "invalid parameter: invalid tensor map: got blocks with different dtypes, at least "
                f"'{short_dtype(reference.dtype)}' and '{short_dtype(block.dtype)}' were detected ({where}: "
                f"{dtype_name(block.dtype)} instead of {dtype_name(reference.dtype)})"
            )
        difference = _block_difference(reference, block)
        if difference:
            raise MetadataError(
                f"block {describe_key(keys, index)} differs from block {describe_key(keys, 0)}: {difference}"
            )


def _block_difference(reference: TensorBlock, block: TensorBlock, where: str = "") -> str:
    checks = [
        ("sample names", reference.samples.names, block.samples.names),
        ("component names", [c.names[0] for c in reference.components], [c.names[0] for c in block.components]),
        ("property names", reference.properties.names, block.properties.names),
        ("dtype", dtype_name(reference.dtype), dtype_name(block.dtype)),
        ("array type", array_kind(reference.values), array_kind(block.values)),
        ("device", array_device(reference.values), array_device(block.values)),
        ("gradients", sorted(reference.gradients_list()), sorted(block.gradients_list())),
    ]
    for what, expected, found in checks:
        if expected != found:
            return f"{where}{what} {found} instead of {expected}"
    for parameter, gradient in reference.gradients():
        difference = _block_difference(gradient, block.gradient(parameter), f"{where}{parameter} gradient: ")
        if difference:
            return difference
    return ""
