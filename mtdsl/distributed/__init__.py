"""Runs past one process, on Dask distributed (docs/distributed.md).

- `map_frames(model, frames, client=...)`: many frames, in chunks on the workers, joined in order;
- `write_frames(model, frames_or_files, path, client=...)`: the same, each chunk written as a
  shard as it finishes; `open_dataset(path)` reads the shards back lazily;
- `run_domains(model, system, client=..., grid=(nx, ny, nz))`: one large system split into
  spatial domains with ghost atoms.

dask is imported only when one of these runs (the `distributed` extra).
"""

from .dataset import Dataset, ShardError, open_dataset
from .domains import run_domains
from .frames import map_frames
from .shards import write_frames

__all__ = ["Dataset", "ShardError", "map_frames", "open_dataset", "run_domains", "write_frames"]
