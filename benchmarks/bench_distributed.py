"""Dask distributed runs against one process (docs/distributed.md, docs/performance.md).

(a) A large silicon system's SOAP energy and forces (examples/soap_energy.mt) through
    `run_domains` on a LocalCluster: total time, each domain's owned / ghost atoms, its peak
    traced memory (tracemalloc) and the workers' peak RSS, against one process: measured on small
    systems and extrapolated to the large one (`--single` runs it for real when it fits).
(b) `map_frames` over many small structures (the power spectrum), 1 and 2 workers, against one
    process; the scheduler's cost per task (no-op tasks) against the work of one chunk.

The million-atom run of the issue: `python benchmarks/bench_distributed.py --atoms 1000000
--grid 4,4,2`. The defaults are scaled down for a shared 2-core machine; `make bench` runs them.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import tracemalloc

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import mtdsl  # noqa: E402
from mtdsl.distributed import map_frames, run_domains  # noqa: E402

EXAMPLES = os.path.join(os.path.dirname(HERE), "examples")


def silicon(n_atoms: int, seed: int = 0):
    import ase.build

    repeat = max(1, round((n_atoms / 8) ** (1 / 3)))
    atoms = ase.build.bulk("Si", "diamond", a=5.43, cubic=True) * (repeat, repeat, repeat)
    atoms.rattle(0.03, seed=seed)
    return atoms


def energy_model():
    model = mtdsl.compile(os.path.join(EXAMPLES, "soap_energy.mt"), species=[14])
    rng = np.random.default_rng(0)
    for name, value in model.parameters.items():
        model.parameters[name] = rng.normal(size=value.shape) * 1e-3
    return model


def single_process(model, atoms) -> tuple[float, int]:
    """(seconds, peak traced bytes) of one call with forces."""
    gc.collect()
    tracemalloc.start()
    start = time.perf_counter()
    model([atoms], gradients=["positions"])
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak


def large_system(args, client) -> dict:
    model = energy_model()
    atoms = silicon(args.atoms)
    n = len(atoms)
    print(f"\n(a) SOAP energy + forces of {n} silicon atoms (cutoff 5 A, n_radial 6, max_angular 4)")
    # one process: two small sizes give the per-atom cost and memory, extrapolated linearly
    model([silicon(64)], gradients=["positions"])  # compile / load once
    sizes = [silicon(s) for s in args.single_sizes]
    measured = [(len(a),) + single_process(model, a) for a in sizes]
    (n0, t0, m0), (n1, t1, m1) = measured[0], measured[-1]
    per_atom_bytes = (m1 - m0) / max(n1 - n0, 1)
    per_atom_seconds = t1 / n1
    estimate_bytes = m1 + per_atom_bytes * (n - n1)
    for size, seconds, peak in measured:
        print(f"  one process, {size:>8} atoms: {seconds:8.2f} s, peak {peak / 2**20:9.1f} MiB")
    print(f"  one process, {n:>8} atoms: estimated {per_atom_seconds * n:8.1f} s, "
          f"peak {estimate_bytes / 2**30:6.2f} GiB ({per_atom_bytes / 1024:.1f} KiB per atom)")
    if args.single:
        seconds, peak = single_process(model, atoms)
        print(f"  one process, {n:>8} atoms: measured {seconds:8.2f} s, peak {peak / 2**30:6.2f} GiB")
    # load the model on every worker first (a cold first call under tracemalloc takes seconds)
    run_domains(model, silicon(512), client=client, grid=(args.workers, 1, 1), gradients=["positions"])
    start = time.perf_counter()
    out = run_domains(model, atoms, client=client, grid=args.grid, gradients=["positions"])
    total = time.perf_counter() - start
    details = json.loads(out["energy"].get_info("provenance"))[-1]["distributed"]
    compute = np.array([d["seconds"] for d in details["domains"]])
    if args.traced:  # the memory in a second run: tracemalloc slows the allocations down
        out = run_domains(model, atoms, client=client, grid=args.grid, gradients=["positions"], measure_memory=True)
        details = json.loads(out["energy"].get_info("provenance"))[-1]["distributed"]
    domains = details["domains"]
    owned = np.array([d["owned"] for d in domains])
    ghosts = np.array([d["ghosts"] for d in domains])
    peaks = np.array([d.get("peak_bytes", d["max_rss_bytes"]) for d in domains])
    rss = max(d["max_rss_bytes"] for d in domains)
    # what travels per domain: types (4 B) and positions (24 B) of every atom out; back, the
    # energy share and one force row per domain atom (24 B of values, 12 B of labels)
    sent = 28 * (owned + ghosts)
    received = 36 * (owned + ghosts)
    print(f"  run_domains grid {tuple(args.grid)} on {details['workers']} workers: {total:8.2f} s in all, "
          f"{compute.sum():.2f} s of model calls ({compute.sum() / (owned + ghosts).sum() * 1e6:.1f} us per domain atom, "
          f"one process {per_atom_seconds * 1e6:.1f} us per atom)")
    print(f"    per domain: {owned.mean():.0f} owned + {ghosts.mean():.0f} ghost atoms "
          f"(ghost fraction {ghosts.sum() / owned.sum():.2f}), peak {'traced' if args.traced else 'RSS'} "
          f"{peaks.max() / 2**20:.1f} MiB "
          f"({peaks.max() / (owned + ghosts).max() / 1024:.1f} KiB per domain atom), worker peak RSS "
          f"{rss / 2**20:.0f} MiB; sent {sent.mean() / 2**20:.2f} MiB, received {received.mean() / 2**20:.2f} MiB")
    print(f"    largest domain's peak / one process's estimated peak: {peaks.max() / estimate_bytes:.3f}")
    return {"per_atom_seconds": compute.sum() / (owned + ghosts).sum(), "ghost_fraction": ghosts.sum() / owned.sum(),
            "per_atom_bytes": peaks.max() / (owned + ghosts).max()}


def small_frames(count: int):
    from mtdsl.testing import random_systems

    base = random_systems(species=(1, 6, 8), n_systems=30, seed=1)
    return [base[k % len(base)] for k in range(count)]


def many_frames(args) -> None:
    import distributed

    model = mtdsl.compile(os.path.join(EXAMPLES, "soap_power_spectrum.mt"))
    frames = small_frames(args.frames)
    model(frames[:10])
    start = time.perf_counter()
    model(frames)
    single = time.perf_counter() - start
    print(f"\n(b) power spectrum of {len(frames)} small structures ({sum(len(f) for f in frames)} atoms)")
    print(f"  one process: {single:.2f} s")
    for workers in (1, 2):
        with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0") as cluster, \
                distributed.Client(cluster) as client:
            map_frames(model, frames[: 4 * workers], client=client, chunk_size=1)  # load the model on every worker
            start = time.perf_counter()
            out = map_frames(model, frames, client=client, chunk_size=args.chunk_size)
            seconds = time.perf_counter() - start
            record = json.loads(out["ps"].get_info("provenance"))[-1]["distributed"]
            chunks = -(-len(frames) // args.chunk_size)
            noop = client.map(lambda x: x, range(200), pure=False)
            start = time.perf_counter()
            client.gather(noop)
            per_task = (time.perf_counter() - start) / 200
            print(f"  map_frames, {workers} worker(s), chunks of {args.chunk_size}: {seconds:.2f} s "
                  f"(x{single / seconds:.2f} of one process); {chunks} chunks of {single / chunks * 1e3:.1f} ms of "
                  f"work each, scheduler cost {per_task * 1e3:.2f} ms per task "
                  f"({per_task / (single / chunks) * 100:.1f} % of a chunk); the workers' model calls took "
                  f"{record['model_seconds']:.2f} s in all")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--atoms", type=int, default=30_000, help="atoms of the large system (1000000: the issue's)")
    parser.add_argument("--grid", default="2,2,1", help="domains NX,NY,NZ")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--single-sizes", type=lambda t: [int(x) for x in t.split(",")], default=[1000, 4000])
    parser.add_argument("--single", action="store_true", help="also run the large system in one process")
    parser.add_argument("--no-traced", dest="traced", action="store_false",
                        help="skip the second run under tracemalloc (the workers' peak RSS is still reported)")
    parser.add_argument("--frames", type=int, default=2000, help="small structures of (b) (10000: the issue's)")
    parser.add_argument("--chunk-size", type=int, default=100)
    parser.add_argument("--skip", choices=("a", "b"), action="append", default=[])
    args = parser.parse_args()
    args.grid = tuple(int(x) for x in args.grid.split(","))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if "a" not in args.skip:
        import distributed

        with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=":0") as \
                cluster, distributed.Client(cluster) as client:
            found = large_system(args, client)
        # projection: 10^7 atoms on 64 workers, one domain each, from the measured per-atom cost
        atoms, workers, halo, density = 10**7, 64, 5.0, 8 / 5.43**3
        edge = (atoms / workers / density) ** (1 / 3)
        ghosts = ((edge + 2 * halo) ** 3 - edge**3) * density
        per_domain = atoms / workers
        print(f"\n  projection, 10^7 atoms on 64 workers (one {edge:.0f} A cube each): {per_domain:.0f} owned + "
              f"{ghosts:.0f} ghosts ({ghosts / per_domain:.2f}), "
              f"{found['per_atom_seconds'] * (per_domain + ghosts):.1f} s of model calls per domain, "
              f"{found['per_atom_bytes'] * (per_domain + ghosts) / 2**30:.2f} GiB per worker, "
              f"{28 * (per_domain + ghosts) / 2**20:.1f} MiB sent and {36 * (per_domain + ghosts) / 2**20:.1f} MiB "
              "received per domain")
    if "b" not in args.skip:
        many_frames(args)


if __name__ == "__main__":
    main()
