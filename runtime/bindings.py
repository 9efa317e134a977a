"""`Bindings`: the run-time values a module's names refer to.

Systems batches, neighbour lists, the species of each `species(S)` dimension,
parameter arrays, input TensorMaps and the TensorMaps computed so far. Backends
read everything they need from here; nothing else carries run-time state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mtdsl.errors import RunError
from mtdsl.ir import nodes as ir


@dataclass
class Bindings:
    systems: dict  # systems input name -> SystemBatch
    pairs: dict  # pairs name -> Pairs
    params: dict  # param name -> array
    tensors: dict = field(default_factory=dict)  # tensor or tensormap input name -> TensorMap
    dtype: type = np.float64
    #: structural sparsity (runtime/presence.py): a read of an absent block or sample is absent
    #: (0 in the dense grids), not an error; False keeps the dense form's error
    sparse: bool = False
    #: {output tensor: runtime/presence.py PresentSet}, decided before the kernels run: the
    #: model keeps only these blocks and samples
    outputs_present: dict = field(default_factory=dict)
    #: {tensor: PresentSet} of the outputs and every kernel they read (`module_presence`)
    kernels_present: dict = field(default_factory=dict)
    #: the same when the forward run builds the present blocks alone (their samples are
    #: restricted after) and the gradient terms skip the points on absent blocks
    #: (runtime/gradients/forward.py); empty for the dense layout (the reverse products' cotangents)
    present: dict = field(default_factory=dict)
    #: {systems input: atomic numbers} its `species(S)` dimensions take instead of those present
    #: in the batch (`Model.run_species`: a chunk of a dataset or a domain of a large system is
    #: labelled as the whole, mtdsl/distributed)
    species_present: dict = field(default_factory=dict)

    def batch(self, name: str):
        return self.systems[name]

    def species(self, domain: ir.SpeciesDomain) -> np.ndarray:
        """The atomic numbers of a species dimension, sorted."""
        present = np.unique(np.asarray(self.systems[domain.systems].types))
        if domain.systems in self.species_present:
            whole = np.asarray(self.species_present[domain.systems], dtype=np.int64)
            unknown = np.setdiff1d(present, whole)
            if len(unknown):
                raise RunError(f"atoms of species {unknown.tolist()} are not among the run's species {whole.tolist()}")
            present = whole
        if domain.fixed is None:
            return present.astype(np.int64)
        fixed = np.array(sorted(domain.fixed), dtype=np.int64)
        unknown = np.setdiff1d(present, fixed)
        if len(unknown):
            raise RunError(
                f"atoms of species {unknown.tolist()} are not among the species {fixed.tolist()} "
                f"the model was compiled for"
            )
        return fixed

    def domain_values(self, domain) -> np.ndarray:
        """The values an index of `domain` takes (irreps excepted: they depend on another index)."""
        if isinstance(domain, ir.RangeDomain):
            return np.arange(domain.start, domain.stop, dtype=np.int64)
        if isinstance(domain, ir.SpeciesDomain):
            return self.species(domain)
        if isinstance(domain, ir.AtomsDomain):
            return np.arange(self.systems[domain.systems].n_atoms, dtype=np.int64)
        if isinstance(domain, ir.SystemsDomain):
            return np.arange(self.systems[domain.systems].n_systems, dtype=np.int64)
        if isinstance(domain, ir.PairsDomain):
            return np.arange(self.pairs[domain.pairs].n_pairs, dtype=np.int64)
        if isinstance(domain, ir.XyzDomain):
            return np.arange(3, dtype=np.int64)
        if isinstance(domain, ir.IrrepDomain):
            return np.arange(-domain.max_degree, domain.max_degree + 1, dtype=np.int64)
        raise TypeError(f"no values for domain {domain}")

    def positions_in_domain(self, domain, values: np.ndarray) -> np.ndarray:
        """Storage positions of domain values (for parameters), with a clear error when absent."""
        if isinstance(domain, ir.RangeDomain):
            positions = values - domain.start
            bad = (positions < 0) | (positions >= domain.stop - domain.start)
        elif isinstance(domain, ir.SpeciesDomain):
            species = self.species(domain)
            positions = np.searchsorted(species, values)
            clipped = np.minimum(positions, len(species) - 1)
            bad = species[clipped] != values if len(species) else np.ones(values.shape, bool)
            positions = clipped
        elif isinstance(domain, ir.XyzDomain):
            positions = values
            bad = (values < 0) | (values > 2)
        elif isinstance(domain, ir.IrrepDomain):
            positions = values + domain.max_degree
            bad = (positions < 0) | (positions > 2 * domain.max_degree)
        else:
            raise TypeError(f"parameters cannot be indexed by {domain}")
        return positions, bad
