"""The distributed modes of `mtdsl run` and `mtdsl inspect` on a sharded output.

- `mtdsl run FILE.mt STRUCTURES... -o OUT --scheduler ADDRESS|local[:N] [--chunk-size K]`: every
  frame, in chunks on the Dask workers, written as shards of the directory OUT (`write_frames`);
- `mtdsl run FILE.mt STRUCTURE -o OUT.mts --domains NX,NY,NZ [--scheduler ...]`: one large
  structure split into spatial domains (`run_domains`), written as one `.mts` per output;
- `mtdsl inspect DIRECTORY`: the shards of a dataset, verified against their hashes.
"""

from __future__ import annotations

import os

from mtdsl.errors import MtdslError
from mtdsl.io.mts import save

from ._cluster import client_for, scheduler_client
from .dataset import ShardError, open_dataset
from .domains import run_domains
from .shards import write_frames


def parse_domains(text: str) -> tuple[int, int, int]:
    parts = text.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise MtdslError(f"--domains expects three positive integers NX,NY,NZ, got {text!r}")
    return tuple(int(p) for p in parts)


def run_distributed(args, model, frames) -> dict | None:
    """Runs `mtdsl run`'s distributed modes; prints what it wrote. None when neither is asked."""
    if not args.scheduler and not args.domains:
        return None
    # both are context managers: a LocalCluster's client closed with it, or a connected Client
    context = scheduler_client(args.scheduler) if args.scheduler else client_for(None)
    with context as active:
        if args.domains:
            return _run_domains(args, model, frames, active)
        return _write_dataset(args, model, frames, active)


def _write_dataset(args, model, frames, client):
    if args.output.endswith(".mts"):
        raise MtdslError(f"-o {args.output}: with --scheduler the output is a directory of shards "
                         "(give a directory name, not a .mts file)")
    index = write_frames(model, frames, args.output, client=client, gradients=args.gradients,
                         chunk_size=args.chunk_size)
    print(f"{index['n_frames']} frames in {len(index['shards'])} shards ({index['written']} written, "
          f"{index['skipped']} already done) -> {args.output}/ (outputs {', '.join(index['outputs'])})")
    return index


def _run_domains(args, model, frames, client):
    if len(frames) != 1:
        raise MtdslError(f"--domains runs one structure, got {len(frames)} frames")
    outputs = run_domains(model, frames[0], client=client, grid=parse_domains(args.domains),
                          gradients=args.gradients)
    names = list(outputs)
    stem, extension = os.path.splitext(args.output)
    for name, tensor in outputs.items():
        path = args.output if len(names) == 1 else f"{stem}.{name}{extension or '.mts'}"
        save(path, tensor)
        print(f"{name}: {len(tensor)} blocks -> {path}")
    return outputs


def inspect_dataset(path: str) -> str:
    """A summary of a sharded dataset; a missing or corrupted shard is an error naming it."""
    dataset = open_dataset(path)
    bad = dataset.verify_all()
    if bad:
        raise ShardError(f"{path}: corrupted or missing shard{'s' if len(bad) > 1 else ''}: {', '.join(bad)}")
    lines = [repr(dataset)]
    for output in dataset.outputs:
        first = dataset.shard(0, output)
        lines.append(f"{output}: keys {first.keys.names}, samples {first.sample_names}, "
                     f"properties {first.property_names}, gradients {first.block(0).gradients_list() if len(first) else []}")
    for record in dataset.index["shards"]:
        start, stop = record["frames"]
        lines.append(f"    {record['shard']}: frames {start}:{stop}")
    return "\n".join(lines)
