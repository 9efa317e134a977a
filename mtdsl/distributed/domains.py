"""`run_domains`: one large system, split into spatial domains run on Dask workers.

Each domain is sent its owned atoms and its ghosts (mtdsl/distributed/decompose.py) as one open
(non-periodic) system: types, positions (ghosts at their periodic images' positions), and the
rows of the tensormap inputs for those atoms. The worker runs the model on it with the whole
system's species, keeps the rows of its owned atoms (per-atom outputs) or its share (per-system
outputs, mtdsl/distributed/shares.py), and maps every atom label back to the system's: a
gradient row on a ghost becomes a row on the atom it is an image of. The driver sums rows with
the same labels (LAMMPS's reverse communication with `newton on`: forces on ghosts go back to
their owners) and sorts them, which gives the labels and the order of one call.
"""

from __future__ import annotations

import math
import uuid

import numpy as np

from mtdsl.errors import MtdslError
from mtdsl.runtime.model import Model
from mtdsl.systems import System, as_batch
from mtdsl.tensor import Labels, TensorBlock, TensorMap

from ._cluster import client_for, n_workers, ship, worker_model
from .decompose import decompose
from .frames import asked, gather_in_order, mark_distributed, run_copy
from .join import _key_union, select_rows
from .shares import OWNED, output_kinds, share_module

#: gradients a domain can compute: the cell of an open domain is not the system's
DOMAIN_GRADIENTS = ("positions", "strain")


def domain_model(model, species, n_atoms: int):
    """The model a domain runs: the shares of per-system outputs, the whole system's species, the
    gradient path of one call over the whole system."""
    shipped = run_copy(model, species, n_atoms)
    module = share_module(model.module)
    if module is model.module:
        return shipped
    share = Model(module, backend=model.backend, dtype=model.dtype, provenance=model.provenance)
    share.parameters = model.parameters
    share.threads = model.threads
    share.run_species = shipped.run_species
    share.reverse_gradients = shipped.reverse_gradients
    return share


def halo_of(model, halo) -> float:
    if halo is not None:
        return float(halo)
    found = model.interaction_range
    if not math.isfinite(found):
        raise MtdslError("the model's outputs depend on a whole system (interaction range infinite): "
                         "it cannot be split into domains")
    return float(found)


def run_domains(model, system, *, client=None, grid=(1, 1, 1), gradients=None, halo=None, progress=None,
                measure_memory: bool = False, **tensormaps) -> dict:
    """`model([system], gradients=gradients, **tensormaps)`, with `system` split into
    `nx * ny * nz` spatial domains, each run on a Dask worker with its ghost atoms.

    :param grid: domains along each cell vector (along a non-periodic direction without a cell
        vector: along the normal of the others); a domain may be thinner than the halo (its
        ghosts then come from further domains and further periodic images) or empty (skipped)
    :param halo: the ghost shell's width (default `model.interaction_range`; smaller gives wrong
        results for atoms near a domain's faces)
    :param measure_memory: record each domain's peak of traced allocations (tracemalloc) in the
        provenance (`distributed.domains[k].peak_bytes`)
    :return: `{output: TensorMap}`, the labels and order of one call, values equal to rounding
    """
    gradients = asked(model, gradients)
    wrts = {w for ws in gradients.values() for w in ws} if isinstance(gradients, dict) else set(gradients)
    refused = sorted(wrts - set(DOMAIN_GRADIENTS))
    if refused:
        raise MtdslError(f"run_domains computes gradients {list(DOMAIN_GRADIENTS)}, not {refused}")
    batch = as_batch(system)
    if batch.n_systems != 1:
        raise MtdslError(f"run_domains splits one system, got {batch.n_systems}")
    system = batch[0]
    if system.is_torch:
        raise MtdslError("run_domains needs a numpy system, not torch tensors")
    kinds = output_kinds(model.module)
    width = halo_of(model, halo)
    positions = np.asarray(system.positions, dtype=np.float64)
    types = np.asarray(system.types)
    decomposition = decompose(positions, np.asarray(system.cell), np.asarray(system.pbc), grid, width)
    shipped = domain_model(model, batch.species, batch.n_atoms)
    if shipped.backend != "interpreter" and wrts:
        shipped.compiled  # noqa: B018 - render and compile here once: the workers load it from the kernel cache
    work = [d for d in decomposition.domains if d.n_owned]
    if not work:
        raise MtdslError("the system has no atoms")
    with client_for(client) as active:
        workers = n_workers(active)
        future, token = ship(active, shipped)
        run = uuid.uuid4().hex[:8]
        futures = []
        for k, domain in enumerate(work):
            inputs = {name: domain_input(t, domain.atoms) for name, t in tensormaps.items()}
            if any(t.name == OWNED for t in shipped.module.tensormaps):
                inputs[OWNED] = ownership(len(domain.atoms), domain.n_owned)
            local = System(types[domain.atoms], decomposition.positions(positions, domain))  # open: no cell
            futures.append(active.submit(run_domain, future, token, local, domain.atoms, domain.n_owned, gradients,
                                         inputs, kinds, measure_memory, key=f"mtdsl-domain-{run}-{k}", pure=False))
        results = gather_in_order(futures, progress, "domains")
        scheduler = active.scheduler.address
    details = {"workers": workers, "scheduler": scheduler, "grid": [int(n) for n in grid],
               "halo": width, "domains": [
                   dict(index=list(d.index), owned=int(d.n_owned), ghosts=int(d.n_ghosts), **info)
                   for d, (_, info) in zip(work, results)],
               "empty_domains": len(decomposition.domains) - len(work)}
    outputs = {}
    for name in kinds:
        outputs[name] = merge_domains([found[name] for found, _ in results])
        mark_distributed(outputs[name], [system.source] if system.source else [], details)
    return outputs


def ownership(n_atoms: int, n_owned: int) -> TensorMap:
    """The `mtdsl_owned` input of a domain: 1 for its owned atoms (the first ones), 0 for ghosts."""
    values = np.zeros((n_atoms, 1))
    values[:n_owned] = 1.0
    samples = Labels(["system", "atom"], np.stack([np.zeros(n_atoms, np.int32), np.arange(n_atoms, dtype=np.int32)],
                                                  axis=1), assume_unique=True)
    block = TensorBlock(values, samples, [], Labels(["owned"], np.zeros((1, 1), dtype=np.int32)))
    return TensorMap(Labels(["_"], np.zeros((1, 1), dtype=np.int32)), [block])


def domain_input(tensor: TensorMap, atoms: np.ndarray) -> TensorMap:
    """The rows of a tensormap input for a domain's atoms (the system's atoms `atoms`, in order),
    relabelled by their index in the domain; blocks without atom samples are kept whole."""
    blocks = []
    for block in tensor.blocks():
        names = block.samples.names
        if "atom" not in names:
            blocks.append(block)
            continue
        array = np.asarray(block.samples.values, dtype=np.int64)
        atom_column = array[:, names.index("atom")]
        row_of = np.full(int(max(atom_column.max(initial=-1), atoms.max(initial=-1))) + 1, -1, dtype=np.int64)
        row_of[atom_column] = np.arange(len(array))
        rows = row_of[atoms]
        present = np.flatnonzero(rows >= 0)
        labels = array[rows[present]].copy()
        labels[:, names.index("atom")] = present
        if "system" in names:
            labels[:, names.index("system")] = 0
        blocks.append(TensorBlock(np.asarray(block.values)[rows[present]],
                                  Labels(names, labels.astype(np.int32), assume_unique=True),
                                  block.components, block.properties))
    return TensorMap(tensor.keys, blocks)


def run_domain(model, token, system, atoms, n_owned, gradients, inputs, kinds, measure_memory):
    """On a worker: one domain's outputs, its owned rows / shares with the system's atom labels."""
    import resource
    import tracemalloc

    if measure_memory:
        tracemalloc.start()
    import time

    loaded_model, loaded = worker_model(model, token)
    start = time.perf_counter()
    outputs = loaded_model([system], gradients=gradients, **inputs)
    seconds = time.perf_counter() - start
    found = {name: to_system_labels(outputs[name], atoms, n_owned, kinds[name] == "atoms") for name in kinds}
    info = {"loaded": loaded, "seconds": seconds,
            "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    if measure_memory:
        info["peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return found, info


def to_system_labels(tensor: TensorMap, atoms: np.ndarray, n_owned: int, owned_rows: bool) -> TensorMap:
    """A domain's output with atom labels of the system: per-atom outputs keep their owned
    atoms' rows; every gradient row on a domain atom moves to the system atom it is (an image
    of), rows landing on the same atom summed."""
    blocks = []
    for block in tensor.blocks():
        names = block.samples.names
        keep = np.arange(len(block.samples))
        if owned_rows:
            keep = np.flatnonzero(np.asarray(block.samples.column("atom")) < n_owned)
        kept = select_rows(block, keep)  # gradient rows follow their samples, renumbered
        samples = np.asarray(kept.samples.values, dtype=np.int64)
        if owned_rows:
            samples[:, names.index("atom")] = atoms[samples[:, names.index("atom")]]
        result = TensorBlock(kept.values, Labels(names, samples.astype(np.int32), assume_unique=True),
                             block.components, block.properties)
        for parameter in kept.gradients_list():
            gradient = kept.gradient(parameter)
            rows = np.asarray(gradient.samples.values, dtype=np.int64)
            if "atom" in gradient.samples.names:
                column = gradient.samples.names.index("atom")
                rows[:, column] = atoms[rows[:, column]]
            labels, values = sum_rows([rows], [np.asarray(gradient.values)])
            result.add_gradient(parameter, TensorBlock(values, Labels(gradient.samples.names, labels.astype(np.int32),
                                                                      assume_unique=True),
                                                       gradient.components, block.properties))
        blocks.append(result)
    found = TensorMap(tensor.keys, blocks)
    for key, value in tensor.info().items():
        found.set_info(key, value)
    return found


def sum_rows(labels: list, values: list):
    """`(unique rows, summed values)` of rows given in parts, sorted lexicographically."""
    rows = np.concatenate(labels) if labels else np.zeros((0, 0), dtype=np.int64)
    stacked = np.concatenate(values) if values else np.zeros((0,))
    if not len(rows):
        return rows.reshape(0, rows.shape[1] if rows.ndim == 2 else 0), stacked
    low = rows.min(axis=0)
    spans = rows.max(axis=0) - low + 1
    codes = np.zeros(len(rows), dtype=np.int64)
    for column in range(rows.shape[1]):
        codes = codes * spans[column] + (rows[:, column] - low[column])
    unique, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    summed = np.zeros((len(unique),) + stacked.shape[1:], dtype=stacked.dtype)
    np.add.at(summed, inverse, stacked)
    return rows[first], summed


def merge_domains(parts: list[TensorMap]) -> TensorMap:
    """The whole system's TensorMap from the domains' (system labels): rows with the same labels
    summed (shares), sorted; gradient rows follow their samples."""
    keys = _key_union(parts)
    blocks = []
    for entry in keys:
        found = [p.block_by_id(p.keys.position(entry)) for p in parts if p.keys.position(entry) is not None]
        first = found[0]
        names = first.samples.names
        sample_parts = [np.asarray(b.samples.values, dtype=np.int64).reshape(-1, len(names)) for b in found]
        samples, values = sum_rows(sample_parts, [np.asarray(b.values) for b in found])
        block = TensorBlock(values, Labels(names, samples.astype(np.int32), assume_unique=True), first.components,
                            first.properties)
        # the final row of every part's sample: its position among the sorted unique samples
        codes = _codes(samples, samples)
        for parameter in first.gradients_list():
            rows, gradient_values = [], []
            for b, part_samples in zip(found, sample_parts):
                gradient = b.gradient(parameter)
                array = np.asarray(gradient.samples.values, dtype=np.int64).copy()
                array[:, 0] = np.searchsorted(codes, _codes(part_samples, samples))[array[:, 0]]
                rows.append(array)
                gradient_values.append(np.asarray(gradient.values))
            labels, summed = sum_rows(rows, gradient_values)
            gradient = first.gradient(parameter)
            block.add_gradient(parameter, TensorBlock(summed, Labels(gradient.samples.names, labels.astype(np.int32),
                                                                     assume_unique=True),
                                                      gradient.components, first.properties))
        blocks.append(block)
    merged = TensorMap(keys, blocks)
    for key, value in parts[0].info().items():
        merged.set_info(key, value)
    return merged


def _codes(rows: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Row codes in the order of `sum_rows` (the column ranges of `reference`, which holds `rows`)."""
    low = reference.min(axis=0) if len(reference) else np.zeros(rows.shape[1], dtype=np.int64)
    spans = reference.max(axis=0) - low + 1 if len(reference) else np.ones(rows.shape[1], dtype=np.int64)
    codes = np.zeros(len(rows), dtype=np.int64)
    for column in range(rows.shape[1]):
        codes = codes * spans[column] + (rows[:, column] - low[column])
    return codes
