"""`open_dataset(path)`: a directory written by `write_frames`, read lazily.

Shards are loaded on demand with `mmap` (values are read-only views of the files), one at a time
(the last one kept), and checked against the sha256 in their record first: a corrupted or
missing shard is an error naming its file.
"""

from __future__ import annotations

import bisect
import json
import os

from mtdsl.errors import MtdslError
from mtdsl.io.mts import load
from mtdsl.provenance import sha256_of_file
from mtdsl.tensor import Labels, TensorMap

from .join import join_chunks, slice_systems
from .shards import FORMAT, INDEX


class ShardError(MtdslError):
    """A shard of a dataset that cannot be read: missing, truncated, corrupted."""


def open_dataset(path, *, verify: bool = True) -> "Dataset":
    """The dataset of the directory `path` (written by `mtdsl.distributed.write_frames`)."""
    return Dataset(path, verify=verify)


class Dataset:
    """The outputs of many frames, stored as shards: `len()` frames, `ds[i]` the outputs of frame
    `i` (`{output: TensorMap}`, its system numbered 0), iteration frame by frame,
    `ds.load(output)` every frame in one TensorMap, `ds.select(output, **key)` the blocks whose
    key matches over every frame, `ds.shards(output)` the TensorMap of each shard."""

    def __init__(self, path, *, verify: bool = True):
        self.path = os.fspath(path)
        index_path = os.path.join(self.path, INDEX)
        try:
            with open(index_path) as handle:
                index = json.load(handle)
        except FileNotFoundError:
            raise MtdslError(f"{self.path}: not a sharded dataset (no {INDEX}; was the writing finished?)") from None
        except json.JSONDecodeError as error:
            raise MtdslError(f"{index_path}: unreadable index ({error})") from None
        if index.get("format") != FORMAT:
            raise MtdslError(f"{index_path}: format {index.get('format')!r}, expected {FORMAT!r}")
        self.index = index
        self.verify = verify
        self.outputs: list[str] = list(index["outputs"])
        self._records = index["shards"]
        self._firsts = [record["frames"][0] for record in self._records]
        self._cached: tuple | None = None

    def __len__(self) -> int:
        return int(self.index["n_frames"])

    @property
    def n_shards(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        return f"Dataset({self.path!r}: {len(self)} frames in {self.n_shards} shards, outputs {self.outputs})"

    def _output(self, output: str | None) -> str:
        if output is None:
            if len(self.outputs) != 1:
                raise MtdslError(f"the dataset has outputs {self.outputs}: name one")
            return self.outputs[0]
        if output not in self.outputs:
            raise MtdslError(f"no output {output!r} in the dataset: it has {self.outputs}")
        return output

    def shard(self, k: int, output: str | None = None):
        """The TensorMap of shard `k` (mmap-loaded, checked against its recorded hash)."""
        output = self._output(output)
        if self._cached is not None and self._cached[:2] == (k, output):
            return self._cached[2]
        entry = self._records[k]["files"][output]
        file = os.path.join(self.path, entry["file"])
        if not os.path.isfile(file):
            raise ShardError(f"shard {entry['file']} is missing from {self.path}")
        if self.verify and (os.path.getsize(file) != entry["bytes"] or sha256_of_file(file) != entry["sha256"]):
            raise ShardError(f"shard {entry['file']} is corrupted: its content does not match the hash in "
                             f"{INDEX} (rerun write_frames to recompute it)")
        try:
            tensor = load(file, mmap=True)
        except MtdslError as error:
            raise ShardError(f"shard {entry['file']} cannot be read: {error}") from None
        self._cached = (k, output, tensor)
        return tensor

    def shards(self, output: str | None = None):
        """Each shard's TensorMap in frame order (systems numbered from 0 in each)."""
        for k in range(self.n_shards):
            yield self.shard(k, output)

    def verify_all(self) -> list[str]:
        """The files of the shards that are missing or do not match their recorded hash."""
        bad = []
        for record in self._records:
            for entry in record["files"].values():
                file = os.path.join(self.path, entry["file"])
                if not os.path.isfile(file) or sha256_of_file(file) != entry["sha256"]:
                    bad.append(entry["file"])
        return bad

    def frame(self, i: int, output: str | None = None):
        """The outputs of frame `i` (`output`: only that one's TensorMap)."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"frame {i} out of range: the dataset has {len(self)} frames")
        i %= len(self)
        k = bisect.bisect_right(self._firsts, i) - 1
        local = i - self._firsts[k]
        names = [self._output(output)] if output is not None else self.outputs
        found = {name: slice_systems(self.shard(k, name), local, local + 1) for name in names}
        return found[names[0]] if output is not None else found

    def __getitem__(self, i: int):
        return self.frame(i)

    def __iter__(self):
        for i in range(len(self)):
            yield self.frame(i)

    def load(self, output: str | None = None):
        """Every frame's `output` as one TensorMap (in memory): what one call would have returned."""
        output = self._output(output)
        return join_chunks([self.shard(k, output) for k in range(self.n_shards)], self._firsts)

    def select(self, output: str | None = None, **key):
        """The blocks of `output` whose key has these values (`center_type=8`), over every frame."""
        output = self._output(output)
        parts = []
        for k in range(self.n_shards):
            tensor = self.shard(k, output)
            indices = tensor.blocks_matching(**key)
            parts.append(TensorMap(_rows(tensor.keys, indices), tensor.blocks_by_id(indices)))
        return join_chunks(parts, self._firsts)


def _rows(labels, indices):
    """The entries `indices` of `labels`."""
    import numpy as np

    array = np.asarray(labels.values, dtype=np.int32)[list(indices)]
    return Labels(labels.names, array.reshape(len(indices), len(labels.names)))
