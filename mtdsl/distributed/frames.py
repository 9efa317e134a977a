"""`map_frames`: a dataset of many frames, in chunks, on Dask workers.

Every chunk is a batch of consecutive frames run by the same compiled model on some worker; the
chunks' outputs are joined in frame order (mtdsl/distributed/join.py). Each chunk runs with the
species of the whole dataset (`Model.run_species`), so `species(S)` dimensions, and the blocks
and properties they label, are those of one call over every frame.
"""

from __future__ import annotations

import json
import sys
import uuid

import numpy as np

from mtdsl.provenance import PROVENANCE_KEY, history
from mtdsl.runtime.gradients.asked import asked_gradients
from mtdsl.runtime.model import REVERSE_MIN_ATOMS
from mtdsl.systems import as_batch

from ._cluster import client_for, n_workers, ship, worker_model
from .join import join_chunks, slice_systems

#: chunks per worker when no chunk size is given: enough to balance uneven frames, few enough
#: that the scheduler's per-task cost (about a millisecond) stays small
CHUNKS_PER_WORKER = 4


def run_copy(model, species=None, n_atoms: int | None = None):
    """A copy of `model` (sharing its IR and parameters, without its native code) whose runs take
    the `species(S)` values `species` and, for `n_atoms` atoms in all, the gradient path (reverse
    or forward, runtime/model.py) one call over all of them takes: the parts then add the same
    terms in the same order as the whole."""
    copy = object.__new__(type(model))
    copy.__dict__.update(model.__getstate__())
    copy.run_species = None if species is None else np.asarray(species, dtype=np.int64)
    if n_atoms is not None and getattr(model, "reverse_gradients", True) is True:
        copy.reverse_gradients = "always" if n_atoms >= REVERSE_MIN_ATOMS else False
    return copy


def asked(model, gradients):
    """The gradients of a call in a canonical, JSON-able form (a list for every output, or
    `{output: [...]}`), checked against the model's outputs (runtime/gradients/asked.py)."""
    asked_gradients(model.module, gradients)
    if isinstance(gradients, dict):
        return {name: [wrts] if isinstance(wrts, str) else list(dict.fromkeys(wrts or []))
                for name, wrts in gradients.items()}
    return list(dict.fromkeys(gradients or []))


def chunk_bounds(n_frames: int, chunk_size: int | None, workers: int) -> list[tuple[int, int]]:
    if chunk_size is None:
        chunk_size = max(1, -(-n_frames // (CHUNKS_PER_WORKER * workers)))
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be a positive number of frames, got {chunk_size}")
    chunk_size = int(chunk_size)
    return [(start, min(start + chunk_size, n_frames)) for start in range(0, n_frames, chunk_size)]


def run_chunk(model, token: str, frames, gradients, tensormaps: dict):
    """On a worker: the outputs of `frames` and `{"loaded": whether this task loaded the model}`."""
    import time

    loaded_model, loaded = worker_model(model, token)
    start = time.perf_counter()
    outputs = loaded_model(frames, gradients=gradients, **tensormaps)
    return outputs, {"loaded": loaded, "seconds": time.perf_counter() - start}


def progress_bar(total: int, progress, description: str):
    """A tqdm bar on stderr when `progress` is True, or None and stderr is a terminal."""
    from tqdm import tqdm

    enabled = sys.stderr.isatty() if progress is None else bool(progress)
    return tqdm(total=total, unit="chunk", desc=description, disable=not enabled, file=sys.stderr)


def gather_in_order(futures: list, progress=None, description: str = "chunks", on_result=None) -> list:
    """The results of `futures` in their order, taken as they finish (`as_completed`) with a bar."""
    from distributed import as_completed

    position = {future.key: k for k, future in enumerate(futures)}
    results = [None] * len(futures)
    with progress_bar(len(futures), progress, description) as bar:
        for future, result in as_completed(futures, with_results=True):
            k = position[future.key]
            results[k] = on_result(k, result) if on_result is not None else result
            bar.update(1)
    return results


def mark_distributed(tensor, sources: list, details: dict) -> None:
    """The run's record (the last of the history) names every frame's source and says how the run
    was distributed."""
    records = history(tensor)
    if records:
        records[-1] = dict(records[-1], inputs=sources, distributed=details)
        tensor.set_info(PROVENANCE_KEY, json.dumps(records, sort_keys=True))


def map_frames(model, frames, *, client=None, gradients=None, chunk_size=None, progress=None, **tensormaps):
    """`model(frames, gradients=gradients, **tensormaps)`, run in chunks of frames on Dask workers.

    :param client: a `distributed.Client`; None takes the current client, else starts a
        `LocalCluster` of one single-threaded worker per core for this call
    :param gradients: as for `model(...)`: a list for every output or `{output: [...]}`
    :param chunk_size: frames per task (default: the frames spread over 4 tasks per worker)
    :param progress: a tqdm bar over finished chunks (default: when stderr is a terminal)
    :param tensormaps: the model's tensormap inputs over all frames; each chunk gets its frames'
        samples (`system` renumbered)
    :return: `{output: TensorMap}`, equal to one call over every frame (same keys, samples,
        values and gradient blocks); the provenance record says it ran distributed
    """
    gradients = asked(model, gradients)
    systems = list(as_batch(frames).systems)
    if not systems:
        return model(systems, gradients=gradients, **tensormaps)
    batch = as_batch(systems)
    shipped = run_copy(model, batch.species, batch.n_atoms)
    with client_for(client) as active:
        workers = n_workers(active)
        bounds = chunk_bounds(len(systems), chunk_size, workers)
        future, token = ship(active, shipped)
        run = uuid.uuid4().hex[:8]
        futures = [
            active.submit(run_chunk, future, token, systems[start:stop], gradients,
                          {name: slice_systems(t, start, stop) for name, t in tensormaps.items()},
                          key=f"mtdsl-chunk-{run}-{k}", pure=False)
            for k, (start, stop) in enumerate(bounds)
        ]
        results = gather_in_order(futures, progress)
        scheduler = active.scheduler.address
    details = {"workers": workers, "chunks": len(bounds), "scheduler": scheduler,
               "loaded_on_workers": sum(info["loaded"] for _, info in results),
               "model_seconds": sum(info["seconds"] for _, info in results)}
    firsts = [start for start, _ in bounds]
    sources = [s.source for s in systems if s.source]
    outputs = {}
    for name in results[0][0]:
        outputs[name] = join_chunks([outputs_k[name] for outputs_k, _ in results], firsts)
        mark_distributed(outputs[name], sources, details)
    return outputs
