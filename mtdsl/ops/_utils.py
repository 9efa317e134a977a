"""Checks shared by the operations, as `check_*` / `check_*_raise` pairs.

Every `check_*_impl` returns an empty string when the check passes and otherwise a
message naming the operation, the block key, the axis and the first differing
label; `check_*` turns it into a bool and `check_*_raise` into a `NotEqualError`.
"""

from __future__ import annotations

from typing import List, Union

import numpy as np

from ..errors import MetadataError
from ..tensor import Labels, TensorBlock, TensorMap
from ..tensor.tensormap import describe_key

AXES = ("samples", "components", "properties")


class NotEqualError(MetadataError):
    """Two TensorMaps or TensorBlocks differ (in metadata or in values)."""


# -- labels -------------------------------------------------------------------------------
def labels_equal(first: Labels, second: Labels) -> bool:
    """`first == second`, with a shortcut for the same object."""
    return first is second or first == second


def _entry(labels: Labels, index: int) -> str:
    row = labels.array[index]
    return "(" + ", ".join(f"{n}={int(v)}" for n, v in zip(labels.names, row)) + ")"


def labels_difference(first: Labels, second: Labels) -> str:
    """'' when equal, else where the two labels first differ: names, length or entry."""
    if first is second:
        return ""
    if first.names != second.names:
        return f"names {first.names} and {second.names}"
    a, b = first.array, second.array
    if a.shape == b.shape and np.array_equal(a, b):
        return ""
    n = min(len(a), len(b))
    if n:
        differ = np.nonzero(np.any(a[:n] != b[:n], axis=1))[0]
        if len(differ):
            i = int(differ[0])
            return f"first difference at entry {i}: {_entry(first, i)} and {_entry(second, i)}"
    if len(a) != len(b):
        longer, index = (first, n) if len(a) > len(b) else (second, n)
        return (
            f"{len(a)} and {len(b)} entries, the first extra one is {_entry(longer, index)}"
        )
    return ""


def _metadata_to_check(check: Union[List[str], str]) -> List[str]:
    if isinstance(check, str):
        if check == "all":
            return list(AXES)
        raise ValueError("`check` must be a list of strings or 'all'")
    check = list(check)
    for metadata in check:
        if metadata not in AXES:
            raise ValueError(
                f"'{metadata}' does not refer to metadata to check, "
                "choose from 'samples', 'properties' and 'components'"
            )
    return check


def _where(key: str) -> str:
    return f" for block {key}" if key else ""


# -- keys ---------------------------------------------------------------------------------------
def check_same_keys_impl(a: TensorMap, b: TensorMap, fname: str) -> str:
    """'' when both maps have the same keys (in any order)."""
    keys_a, keys_b = a.keys, b.keys
    if keys_a.names != keys_b.names:
        return f"inputs to '{fname}' should have the same keys names, got {keys_a.names} and {keys_b.names}"
    if len(keys_a) != len(keys_b):
        return f"inputs to '{fname}' should have the same number of blocks, got {len(keys_a)} and {len(keys_b)}"
    if keys_a is keys_b or np.array_equal(keys_a.array, keys_b.array):
        return ""
    missing = np.nonzero(keys_a.positions(keys_b.array) < 0)[0]
    if len(missing):
        return (
            f"inputs to '{fname}' should have the same keys, the key "
            f"{describe_key(keys_b, int(missing[0]))} of the second is not in the first"
        )
    return ""


def check_same_keys(a: TensorMap, b: TensorMap, fname: str) -> bool:
    return not check_same_keys_impl(a, b, fname)


def check_same_keys_raise(a: TensorMap, b: TensorMap, fname: str) -> None:
    message = check_same_keys_impl(a, b, fname)
    if message:
        raise NotEqualError(message)


def matching_blocks(a: TensorMap, b: TensorMap) -> list[TensorBlock]:
    """The blocks of `b` in the order of the keys of `a` (keys already checked equal)."""
    if a.keys is b.keys or np.array_equal(a.keys.array, b.keys.array):
        return b.blocks()
    return b.blocks_by_id(b.keys.positions(a.keys.array).tolist())


# -- blocks -------------------------------------------------------------------------------------
def check_blocks_impl(
    a: TensorBlock, b: TensorBlock, fname: str, check: Union[List[str], str] = "all", key: str = ""
) -> str:
    """'' when the blocks have the same `check` metadata, in the same order."""
    for metadata in _metadata_to_check(check):
        difference = _axis_difference(a, b, metadata, 0)
        if difference:
            return (
                f"inputs to '{fname}' should have the same {metadata}, but they are not the same or not in the "
                f"same order{_where(key)}: {difference}"
            )
    return ""


def _axis_difference(a: TensorBlock, b: TensorBlock, axis: str, skip: int) -> str:
    """Difference along `axis`; `skip` leading components are ignored (gradient-only ones)."""
    if axis == "samples":
        return labels_difference(a.samples, b.samples)
    if axis == "properties":
        return labels_difference(a.properties, b.properties)
    components_a, components_b = a.components, b.components
    if len(components_a) != len(components_b):
        return f"{len(components_a)} and {len(components_b)} components"
    for first, second in zip(components_a, components_b):
        difference = labels_difference(first, second)
        if difference:
            return f"component '{first.names[0]}': {difference}"
    return ""


def check_blocks(a: TensorBlock, b: TensorBlock, fname: str, check: Union[List[str], str] = "all") -> bool:
    return not check_blocks_impl(a, b, fname, check)


def check_blocks_raise(
    a: TensorBlock, b: TensorBlock, fname: str, check: Union[List[str], str] = "all", key: str = ""
) -> None:
    message = check_blocks_impl(a, b, fname, check, key)
    if message:
        raise NotEqualError(message)


def check_same_gradients_impl(
    a: TensorBlock, b: TensorBlock, fname: str, check: Union[List[str], str] = "all", key: str = ""
) -> str:
    """'' when both blocks have the same gradients with the same `check` metadata."""
    metadata_to_check = _metadata_to_check(check)
    list_a, list_b = a.gradients_list(), b.gradients_list()
    if sorted(list_a) != sorted(list_b):
        return (
            f"inputs to '{fname}' should have the same gradient parameters{_where(key)}, "
            f"got {sorted(list_a)} and {sorted(list_b)}"
        )
    for parameter in list_a:
        gradient_a, gradient_b = a.gradient(parameter), b.gradient(parameter)
        for metadata in metadata_to_check:
            difference = _axis_difference(gradient_a, gradient_b, metadata, 0)
            if difference:
                return (
                    f"inputs to '{fname}' should have the same gradients: gradient '{parameter}' {metadata} are "
                    f"not the same or not in the same order{_where(key)}: {difference}"
                )
    return ""


def check_same_gradients(a: TensorBlock, b: TensorBlock, fname: str, check: Union[List[str], str] = "all") -> bool:
    return not check_same_gradients_impl(a, b, fname, check)


def check_same_gradients_raise(
    a: TensorBlock, b: TensorBlock, fname: str, check: Union[List[str], str] = "all", key: str = ""
) -> None:
    message = check_same_gradients_impl(a, b, fname, check, key)
    if message:
        raise NotEqualError(message)


def check_gradient_presence_raise(block: TensorBlock, parameters: List[str], fname: str) -> None:
    for parameter in parameters:
        if parameter not in block.gradients_list():
            raise ValueError(f"requested gradient '{parameter}' in '{fname}' is not defined in this tensor")


def check_tensor_map(value, name: str) -> None:
    if not isinstance(value, TensorMap):
        raise TypeError(f"`{name}` must be a metatensor TensorMap, not {type(value)}")


def check_block(value, name: str) -> None:
    if not isinstance(value, TensorBlock):
        raise TypeError(f"`{name}` must be a metatensor TensorBlock, not {type(value)}")


def no_gradients_of_gradients(gradient: TensorBlock) -> None:
    if gradient.gradients_list():
        raise NotImplementedError("gradients of gradients are not supported")


def key_name(tensor: TensorMap, index: int) -> str:
    return describe_key(tensor.keys, index)


def select(labels: Labels, selection: Labels) -> np.ndarray:
    """Positions of the entries of `labels` matching `selection`, like metatensor-core's
    `Labels.select`: in the order of `selection` when it has exactly the names of
    `labels` (entries absent from `labels` are skipped), else in the order of `labels`."""
    if selection.names == labels.names:
        positions = labels.positions(selection.array)
        return positions[positions >= 0]
    return labels.select(selection)
