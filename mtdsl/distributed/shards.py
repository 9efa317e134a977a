"""`write_frames`: a dataset's outputs streamed to a directory of `.mts` shards.

Layout of `path/` (docs/distributed.md):

- `shard-00007.energy.mts`: the outputs of frames `first:stop` of shard 7, one file per output,
  systems numbered from 0 inside the shard;
- `shard-00007.json`: the shard's record, written last (atomically) once its `.mts` files are in
  place: its frames, the hash of its inputs (model, frames, gradients, tensormap inputs) and the
  size and sha256 of each file. A shard without its record was not finished;
- `index.json`: every shard's record in frame order, written when the run ends.

Each worker writes its own shards (the directory must be one every worker sees: a local disk
for a LocalCluster, a shared filesystem on a cluster), so the outputs never pass through one
process. A rerun skips every shard whose record is there, whose inputs hash the same, and whose
files have the recorded sizes and hashes; it recomputes the others.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid

import numpy as np

from mtdsl import atomic
from mtdsl.errors import MtdslError
from mtdsl.io.mts import save, save_buffer
from mtdsl.io.structures import read_structures
from mtdsl.provenance import sha256_of_file
from mtdsl.systems import as_batch

from ._cluster import client_for, model_token, n_workers, ship, worker_model
from .frames import asked, chunk_bounds, gather_in_order, mark_distributed, run_copy
from .join import slice_systems

INDEX = "index.json"
FORMAT = "mtdsl-shards/1"


def shard_name(k: int) -> str:
    return f"shard-{k:05d}"


def write_json_atomically(path: str, value) -> None:
    # mtdsl.atomic: a killed writer's temporary file is removed by the next write (no debris)
    atomic.write_bytes(path, json.dumps(value, indent=1, sort_keys=True).encode())


def inputs_hash(token: str, gradients: list, frames, tensormaps: dict) -> str:
    """What a shard's outputs depend on: the model, the gradients asked, every array of its
    frames and of its tensormap inputs."""
    digest = hashlib.sha256(token.encode())
    digest.update(json.dumps(gradients, sort_keys=True).encode())
    for system in frames:
        for array in (system.types, system.positions, system.cell, system.pbc):
            array = np.ascontiguousarray(np.asarray(array))
            digest.update(str((array.dtype.str, array.shape)).encode())
            digest.update(array.tobytes())
    for name in sorted(tensormaps):
        digest.update(name.encode())
        digest.update(save_buffer(tensormaps[name]))
    return digest.hexdigest()


def finished(path: str, name: str, expected_hash: str) -> dict | None:
    """The record of shard `name` if it is finished, for these inputs, with intact files."""
    try:
        with open(os.path.join(path, f"{name}.json")) as handle:
            record = json.load(handle)
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("inputs_sha256") != expected_hash:
        return None
    for entry in record.get("files", {}).values():
        file = os.path.join(path, entry["file"])
        if not os.path.isfile(file) or os.path.getsize(file) != entry["bytes"] or sha256_of_file(file) != entry["sha256"]:
            return None
    return record


def write_shard(model, token: str, path: str, name: str, first: int, frames, gradients, tensormaps: dict,
                expected_hash: str, details: dict) -> dict:
    """On a worker: run the shard's frames, write one `.mts` per output (atomically), then its
    record. Returns the record."""
    loaded_model, loaded = worker_model(model, token)
    outputs = loaded_model(frames, gradients=gradients, **tensormaps)
    files = {}
    for output, tensor in outputs.items():
        mark_distributed(tensor, [s.source for s in frames if s.source], details)
        file = f"{name}.{output}.mts"
        save(os.path.join(path, file), tensor)
        full = os.path.join(path, file)
        files[output] = {"file": file, "bytes": os.path.getsize(full), "sha256": sha256_of_file(full)}
    record = {"shard": name, "frames": [first, first + len(frames)], "inputs_sha256": expected_hash,
              "files": files, "loaded": loaded}
    write_json_atomically(os.path.join(path, f"{name}.json"), record)
    return record


def write_frames(model, frames_or_files, path, *, client=None, gradients=None, chunk_size=None, progress=None,
                 **tensormaps) -> dict:
    """Run `model` over `frames` on Dask workers, writing each chunk's outputs as a shard of the
    directory `path` as soon as it is computed; read them with `mtdsl.open_dataset(path)`.

    :param frames_or_files: Systems / ase.Atoms, or structure files (paths: read here, every frame)
    :param chunk_size: frames per shard (default: 4 shards per worker)
    :return: the index (also written to `path/index.json`) with `"written"` and `"skipped"`
        counts of this run
    """
    gradients = asked(model, gradients)
    given = [frames_or_files] if isinstance(frames_or_files, (str, os.PathLike)) else list(frames_or_files)
    systems = []
    for frame in given:
        systems += read_structures(frame) if isinstance(frame, (str, os.PathLike)) else list(as_batch(frame).systems)
    if not systems:
        raise MtdslError("write_frames: no frames to run on")
    path = os.fspath(path)
    os.makedirs(path, exist_ok=True)
    batch = as_batch(systems)
    shipped = run_copy(model, batch.species, batch.n_atoms)
    token = model_token(shipped)
    with client_for(client) as active:
        workers = n_workers(active)
        bounds = chunk_bounds(len(systems), chunk_size, workers)
        details = {"workers": workers, "chunks": len(bounds), "scheduler": active.scheduler.address}
        records: list = [None] * len(bounds)
        todo = []
        for k, (start, stop) in enumerate(bounds):
            inputs = {n: slice_systems(t, start, stop) for n, t in tensormaps.items()}
            expected = inputs_hash(token, gradients, systems[start:stop], inputs)
            records[k] = finished(path, shard_name(k), expected)
            if records[k] is None:
                todo.append((k, start, stop, inputs, expected))
        if todo:
            future, _ = ship(active, shipped)
            run = uuid.uuid4().hex[:8]
            futures = [
                active.submit(write_shard, future, token, path, shard_name(k), start, systems[start:stop],
                              gradients, inputs, expected, details, key=f"mtdsl-shard-{run}-{k}", pure=False)
                for k, start, stop, inputs, expected in todo
            ]
            for (k, *_), record in zip(todo, gather_in_order(futures, progress, "shards")):
                records[k] = record
    index = {"format": FORMAT, "n_frames": len(systems), "outputs": sorted(records[0]["files"]),
             "model": token, "gradients": gradients, "shards": records}
    _remove_stale(path, {shard_name(k) for k in range(len(bounds))})
    write_json_atomically(os.path.join(path, INDEX), index)
    return dict(index, written=len(todo), skipped=len(bounds) - len(todo))


def _remove_stale(path: str, names: set) -> None:
    """Shards of an earlier run with more chunks than this one: no longer part of the dataset."""
    for entry in os.listdir(path):
        if entry.startswith("shard-") and entry.split(".")[0] not in names:
            os.remove(os.path.join(path, entry))
