"""The Dask client a run uses, and the compiled model on each worker.

`client=None` takes the current Dask client (`distributed.get_client()`), else starts a
`LocalCluster` sized to the machine (one single-threaded worker process per core: the native
kernels are serial per call and the Python assembly holds the GIL) and closes it at the end.

The model travels once per run: `client.scatter(model, broadcast=True)` puts one pickled copy on
every worker (a compiled `Model` pickles without its native library, runtime/model.py), and each
task looks it up by a token (a hash of what the model computes) in a per-process table, so the
native library is loaded once per worker process and reused by every chunk and every later run
of the same model. Loading goes through the kernel cache ($MTDSL_CACHE_DIR, inherited by the
worker processes of a LocalCluster; on a cluster, a directory every node sees or each node
renders once).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle

from mtdsl.errors import MtdslError

#: per worker process: {token: Model} of the models already loaded (with their native code)
_MODELS: dict = {}
#: how many models a worker process keeps loaded
_KEEP = 8


def dask_distributed():
    """`distributed`, or a clear error naming the extra to install."""
    try:
        import distributed
    except ImportError:  # pragma: no cover - the test extra installs it
        raise MtdslError("mtdsl.distributed needs dask.distributed: pip install 'mtdsl[dask]'") from None
    return distributed


@contextlib.contextmanager
def client_for(client=None, n_workers: int | None = None):
    """`client`, else the current Dask client, else a LocalCluster's (closed on exit)."""
    distributed = dask_distributed()
    if client is not None:
        yield client
        return
    current = None
    if n_workers is None:
        try:
            current = distributed.get_client()
        except ValueError:  # no client in this process
            current = None
    if current is not None:
        yield current
        return
    workers = n_workers or os.cpu_count() or 1
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as local:
        yield local


def scheduler_client(address: str):
    """A client for the CLI's `--scheduler`: `local` or `local:N` starts a LocalCluster of N
    workers (the cores when N is absent), anything else is a scheduler's address."""
    if address == "local" or address.startswith("local:"):
        _, _, count = address.partition(":")
        if count and not (count.isdigit() and int(count) > 0):
            raise MtdslError(f"--scheduler {address}: expected local or local:N with N a positive number of workers")
        return client_for(None, int(count) if count else (os.cpu_count() or 1))
    distributed = dask_distributed()
    try:
        return distributed.Client(address, timeout=30)
    except OSError as error:
        raise MtdslError(f"--scheduler {address}: cannot reach the Dask scheduler ({error})") from None


def n_workers(client) -> int:
    return max(len(client.scheduler_info(n_workers=-1).get("workers", {})), 1)


def model_token(model) -> str:
    """What identifies a model's computation: its pickled state (IR, parameters, backend, dtype,
    run species) without its native code."""
    return hashlib.sha256(pickle.dumps(model.__getstate__(), protocol=5)).hexdigest()[:24]


def ship(client, model):
    """`(future of the model on every worker, token)`."""
    token = model_token(model)
    future = client.scatter(model, broadcast=True, hash=False)
    return future, token


def worker_model(model, token: str):
    """The model this worker process keeps for `token` (with the native code its calls built),
    `model` (the scattered copy) the first time: `(model, whether it was taken now)`."""
    found = _MODELS.get(token)
    if found is not None:
        return found, False
    # its native code is built by its first call (the values-only module, or the one with the
    # gradient kernels when asked) and kept with it for every later task on this worker
    while len(_MODELS) >= _KEEP:
        _MODELS.pop(next(iter(_MODELS)))
    _MODELS[token] = model
    return model, True
