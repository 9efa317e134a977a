"""Runs past one process, on Dask distributed (docs/distributed.md).

- `map_frames(model, frames, client=...)`: many frames, in chunks on the workers, joined in order;
- `write_frames(model, frames_or_files, path, client=...)`: the same, each chunk written as a
  shard as it finishes; `open_dataset(path)` reads the shards back lazily;
- `run_domains(model, system, client=..., grid=(nx, ny, nz))`: one large system split into
  spatial domains with ghost atoms.

dask is imported only when one of these runs (the `distributed` extra).
"""

import importlib

#: public name -> the module defining it: imported on first use, so `import mtdsl` stays light
_HOMES = {
    "Dataset": "dataset", "ShardError": "dataset", "open_dataset": "dataset",
    "map_frames": "frames", "run_domains": "domains", "write_frames": "shards",
}

__all__ = sorted(_HOMES)


def __getattr__(name):
    if name in _HOMES:
        return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
