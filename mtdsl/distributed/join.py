"""Cutting TensorMaps by systems and joining the outputs of consecutive chunks of frames.

A chunk of frames `start:stop` is run as its own batch, so its systems are numbered from 0:
joining renumbers every `system` column (samples and gradient samples) by the chunk's first
frame and every gradient's `sample` column by the rows of the same block in earlier chunks.
Chunks joined in frame order give the rows in the order one call over all frames gives.
"""

from __future__ import annotations

import numpy as np

from mtdsl.errors import MtdslError
from mtdsl.tensor import Labels, TensorBlock, TensorMap

SYSTEM = "system"


def _shifted(labels: Labels, shifts: dict[str, int]) -> Labels:
    """`labels` with `shifts[name]` added to the columns named in `shifts`."""
    if not any(name in labels.names for name in shifts):
        return labels
    array = np.array(labels.values, dtype=np.int32, copy=True)
    for name, shift in shifts.items():
        if name in labels.names and shift:
            array[:, labels.names.index(name)] += shift
    return Labels(labels.names, array, assume_unique=True)


def _concatenate_labels(parts: list[Labels]) -> Labels:
    names = parts[0].names
    array = np.concatenate([np.asarray(p.values, dtype=np.int32).reshape(-1, len(names)) for p in parts])
    return Labels(names, array, assume_unique=True)


def _join_blocks(parts: list[tuple[TensorBlock, int]]) -> TensorBlock:
    """One block from `(block, first system)` parts, in order."""
    first = parts[0][0]
    values = np.concatenate([np.asarray(b.values) for b, _ in parts], axis=0)
    samples = _concatenate_labels([_shifted(b.samples, {SYSTEM: s}) for b, s in parts])
    block = TensorBlock(values, samples, first.components, first.properties)
    for parameter in first.gradients_list():
        rows, gradient_parts = 0, []
        for part, system in parts:
            gradient = part.gradient(parameter)
            gradient_parts.append((gradient, {"sample": rows, SYSTEM: system}))
            rows += len(part.samples)
        grad_values = np.concatenate([np.asarray(g.values) for g, _ in gradient_parts], axis=0)
        grad_samples = _concatenate_labels([_shifted(g.samples, shift) for g, shift in gradient_parts])
        block.add_gradient(parameter, TensorBlock(grad_values, grad_samples, gradient_parts[0][0].components,
                                                  first.properties))
    return block


def _key_union(maps: list[TensorMap]) -> Labels:
    """The keys of every part: the first part's when all agree (the usual case: chunks run with
    the species of the whole dataset), else their union, sorted when every part's keys are."""
    first = maps[0].keys
    if all(m.keys == first for m in maps[1:]):
        return first
    rows, seen = [], set()
    for tensor in maps:
        for row in np.asarray(tensor.keys.values):
            if tuple(row) not in seen:
                seen.add(tuple(row))
                rows.append(row)
    array = np.array(rows, dtype=np.int32).reshape(len(rows), len(first.names))
    if all(_is_sorted(np.asarray(m.keys.values)) for m in maps):
        array = array[np.lexsort(array.T[::-1])] if len(array) else array
    return Labels(first.names, array)


def _is_sorted(array: np.ndarray) -> bool:
    return all(tuple(a) <= tuple(b) for a, b in zip(array[:-1], array[1:]))


def join_chunks(parts: list[TensorMap], first_systems: list[int]) -> TensorMap:
    """The TensorMap of consecutive chunks' outputs `parts`, chunk `k` starting at system
    `first_systems[k]` of the whole."""
    if not parts:
        raise MtdslError("no chunk to join")
    names = parts[0].keys.names
    for k, part in enumerate(parts[1:], start=1):
        if part.keys.names != names:
            raise MtdslError(f"chunk {k} has keys {part.keys.names}, chunk 0 {names}: cannot join them")
    keys = _key_union(parts)
    blocks = []
    for row in np.asarray(keys.values):
        selection = Labels(names, row.reshape(1, -1))
        found = []
        for part, first in zip(parts, first_systems):
            index = part.keys.position(selection.entry(0))
            if index is not None:
                found.append((part.block_by_id(index), first))
        blocks.append(_join_blocks(found))
    joined = TensorMap(keys, blocks)
    for key, value in parts[0].info().items():
        joined.set_info(key, value)
    return joined


def slice_systems(tensor: TensorMap, start: int, stop: int) -> TensorMap:
    """The rows of `tensor` whose `system` sample is in `start:stop`, renumbered from 0 (a chunk's
    tensormap input); blocks without a `system` sample column are kept whole."""
    blocks = []
    for block in tensor.blocks():
        if SYSTEM not in block.samples.names:
            blocks.append(block)
            continue
        systems = np.asarray(block.samples.column(SYSTEM))
        keep = np.flatnonzero((systems >= start) & (systems < stop))
        blocks.append(select_rows(block, keep, {SYSTEM: -start}))
    return TensorMap(tensor.keys, blocks)


def select_rows(block: TensorBlock, keep: np.ndarray, shifts: dict[str, int] | None = None,
                gradient_shifts: dict[str, int] | None = None) -> TensorBlock:
    """The sample rows `keep` (sorted) of `block`, label columns shifted by `shifts`; its gradient
    rows follow their samples (the `sample` column renumbered)."""
    samples = Labels(block.samples.names, np.asarray(block.samples.values, dtype=np.int32)[keep],
                     assume_unique=True)
    result = TensorBlock(np.asarray(block.values)[keep], _shifted(samples, shifts or {}), block.components,
                         block.properties)
    renumber = np.full(len(block.samples), -1, dtype=np.int64)
    renumber[keep] = np.arange(len(keep))
    for parameter in block.gradients_list():
        gradient = block.gradient(parameter)
        array = np.asarray(gradient.samples.values, dtype=np.int32)
        rows = np.flatnonzero(renumber[array[:, 0]] >= 0)
        array = array[rows].copy()
        array[:, 0] = renumber[array[:, 0]]
        labels = _shifted(Labels(gradient.samples.names, array, assume_unique=True),
                          gradient_shifts if gradient_shifts is not None else (shifts or {}))
        result.add_gradient(parameter, TensorBlock(np.asarray(gradient.values)[rows], labels,
                                                   gradient.components, block.properties))
    return result
