"""`Model`: a compiled `.mt` program, called on atomic systems.

`model(frames, gradients=[...], h=features)` binds the frames to the systems
input, computes the neighbour lists, checks the input TensorMaps against their
declared signatures, runs the kernels with the chosen backend and returns the
outputs as `{name: TensorMap}`, each with its provenance in `info`.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from mtdsl.errors import MtdslError, Unsupported
from mtdsl.ir import nodes as ir
from mtdsl.ir.passes.autodiff import AutodiffError, module_gradients
from mtdsl.ir.walk import conjuncts
from mtdsl.ir.reads import read_closure
from mtdsl.provenance import append_provenance, make_record, package_versions
from mtdsl.systems import SystemBatch, as_batch, neighbors
from mtdsl.systems._pyg import is_pyg, systems_from_pyg
from mtdsl.tensor import Labels, TensorBlock, TensorMap

from .assemble import evaluate_kernel
from .gradients.asked import asked_gradients
from .bindings import Bindings
from .bridges.calculator import make_calculator
from .native.compiled import compile_module, model_arguments
from .export.atomistic import export as export_model
from .finite import check_finite, finite_check_enabled
from .gradients.forward import DIRECTION_LABELS, FusedGradients, compute_gradients
from .inputs import check_tensormap_input, check_tensormap_inputs  # noqa: F401 - importable from here as before
from .interaction import interaction_range
from .evaluate.evaluator import Evaluator
from .bridges.jax_function import JaxFunction
from .gradients.native_products import NativeProducts
from .parameters import load_parameters, save_parameters
from .presence import module_presence, restrict
from .species_tables import check_species_tables

BACKENDS = ("interpreter", "cpp", "llvm")


def initial_parameters(module: ir.Module, seed: int = 0) -> dict[str, np.ndarray]:
    """Parameter arrays drawn from each `param`'s initializer, deterministically from `seed`."""
    rng = np.random.default_rng(seed)
    params = {}
    for param in module.params:
        shape = tuple(_domain_size(d, param.name) for d in param.domains)
        name, args = param.init
        if name == "zeros":
            values = np.zeros(shape)
        elif name == "ones":
            values = np.ones(shape)
        elif name == "constant":
            values = np.full(shape, args[0])
        elif name == "normal":
            mean, std = (args + (0.0, 1.0)[len(args):]) if len(args) < 2 else args
            values = rng.normal(mean, std, size=shape)
        elif name == "uniform":
            low, high = (args + (0.0, 1.0)[len(args):]) if len(args) < 2 else args
            values = rng.uniform(low, high, size=shape)
        else:
            raise MtdslError(f"parameter {param.name}: unknown initializer {name!r}")
        params[param.name] = values
    return params


def _domain_size(domain, param: str) -> int:
    if isinstance(domain, ir.RangeDomain):
        return max(domain.stop - domain.start, 0)
    if isinstance(domain, ir.SpeciesDomain):
        if domain.fixed is None:
            raise MtdslError(f"parameter {param} is indexed by species: compile with species=[...] (E206)")
        return len(domain.fixed)
    if isinstance(domain, ir.XyzDomain):
        return 3
    raise MtdslError(f"parameter {param} cannot be indexed by {domain}")


class Model:
    """A compiled program: call it on frames to get its outputs."""

    def __init__(self, module: ir.Module, *, backend: str = "interpreter", dtype=np.float64,
                 provenance: dict | None = None, seed: int = 0):
        if backend not in BACKENDS:
            raise MtdslError(f"unknown backend {backend!r}: choose among {list(BACKENDS)}")
        self.module = module
        self.backend = backend
        self.dtype = np.dtype(dtype)
        self.parameters = initial_parameters(module, seed)
        self.provenance = dict(provenance or {})
        # forward-mode gradient kernels of the declared gradients (errors at compile time)
        self.gradient_kernels = module_gradients(module)
        self.threads = None  # native backends: OMP_NUM_THREADS when None
        #: True: a block for every key tuple and sample of the domains, zeros included; False
        #: (default): only the structurally present blocks and samples (runtime/presence.py)
        self.dense = False
        #: a NaN or infinity in an output or gradient is an error (runtime/finite.py) unless False
        self.check_finite = True
        #: gradient blocks of qualifying outputs by reverse products (`_reverse_gradients`): True
        #: for batches of at least REVERSE_MIN_ATOMS atoms, "always" whatever the batch, False never
        #: (so does the environment variable MTDSL_FORWARD_GRADIENTS=1)
        self.reverse_gradients = True
        #: {output: "reverse" | "forward"}: how the last call computed each output's gradient blocks
        self.last_gradient_path: dict = {}
        #: atomic numbers every `species(S)` dimension without compile-time species takes, instead
        #: of those present in the frames (None): a chunk of a dataset or a domain of a large
        #: system labelled as the whole (mtdsl/distributed)
        self.run_species = None
        self._compiled = None
        self._compiled_values = None  # the values' kernels only, for calls without gradients
        self._products: dict = {}  # wrt -> NativeProducts of the qualifying outputs, or None
        self._qualifies: dict = {}  # output -> whether its samples are per system (`_per_system`)

    def __getstate__(self):
        """Pickled without its native code (ctypes handles): rebuilt on first use after loading,
        from the rendering cache when the same version rendered it before."""
        state = dict(self.__dict__)
        state["_compiled"] = None
        state["_compiled_values"] = None
        state["_products"] = {}
        return state

    @property
    def compiled(self):
        """The native module of the cpp / llvm backends (runtime/native/compiled.py), built on first use."""
        if self.backend != "interpreter" and self._compiled is None:
            self._compiled = compile_module(**model_arguments(self))
        return self._compiled

    @property
    def outputs(self) -> dict[str, tuple[str, ...]]:
        """Output names with the gradients each may be asked for."""
        return {o.name: o.gradients for o in self.module.outputs}

    @property
    def interaction_range(self) -> float:
        """How far an atom's contribution to the outputs can depend on other atoms: the cutoffs of
        the pair sets summed along the longest chain of pair hops, `math.inf` when an output
        depends on a whole system (runtime/interaction.py)."""
        return interaction_range(self.module)

    def save_parameters(self, path) -> None:
        """Write `self.parameters` to `path` (.npz) with the program's sha256, hypers and species
        (runtime/parameters.py, docs/simulation.md)."""
        save_parameters(self, path)

    def load_parameters(self, path) -> None:
        """Set `self.parameters` from a file of `save_parameters`; refused (ParametersError, saying
        what differs) for another program, other hypers or species."""
        self.parameters = load_parameters(self, path)

    def as_calculator(self, output: str = "energy", **options):
        """An ASE calculator over this model's per-system scalar `output` (energy, forces and stress
        from one call per geometry; runtime/bridges/calculator.py, docs/simulation.md)."""
        return make_calculator(self, output, **options)

    def export(self, path, extensions_directory="extensions", **options):
        """Write a metatomic `AtomisticModel` of this model to `path` (runtime/export/atomistic.py,
        docs/simulation.md); its compiled extension goes into `extensions_directory`."""
        return export_model(self, path, extensions_directory=extensions_directory, **options)

    def to_torch(self):
        """A `torch.nn.Module` over this model: its params trainable, autograd through the kernels
        (runtime/torch/module.py, docs/torch.md)."""
        from .torch.module import TorchModel  # the torch bridge: torch (1.5 s to import) loads on first use

        return TorchModel(self)

    def to_jax(self, output: str | None = None):
        """One output as a JAX function `f(positions, *, types, cell, pbc, params, **tensormaps)`,
        differentiable by jax.grad, jit-able and vmap-able (runtime/bridges/jax_function.py, docs/interop.md)."""
        return JaxFunction(self, output)

    def _values_native(self):
        """The native module for a call without gradients: the full one if built, else one without
        the gradient kernels (built lazily, so asking no gradient never compiles them)."""
        if self.backend == "interpreter":
            return None
        if self._compiled is not None:
            return self._compiled
        if getattr(self, "_compiled_values", None) is None:  # (absent from models pickled before it)
            self._compiled_values = compile_module(**model_arguments(self, gradients={}))
        return self._compiled_values

    def __call__(self, frames, gradients=None, **tensormaps) -> dict[str, TensorMap]:
        # a list for every output, or {output: [...]} per output (runtime/gradients/asked.py)
        asked = asked_gradients(self.module, gradients)
        gradients = list(dict.fromkeys(w for wrts in asked.values() for w in wrts))
        self.last_gradient_path = {}
        bindings = self.bind(frames, tensormaps)
        same_for_all = all(set(wrts) == set(gradients) for wrts in asked.values())
        if gradients and same_for_all and self._reverse_allowed() and _all_per_system(self):
            batch = next(iter(bindings.systems.values()))
            if batch.n_atoms >= REVERSE_MIN_ATOMS or getattr(self, "reverse_gradients", True) == "always":
                bindings.present = bindings.kernels_present  # the products' run assembles the present blocks alone
                if _reverse_gradients(self, bindings, list(dict.fromkeys(gradients))):
                    return self._outputs(bindings)
                bindings = self.bind(frames, tensormaps)  # fresh: the products may have run on them
        gradients = list(dict.fromkeys(gradients))
        bindings.present = bindings.kernels_present  # the assembly builds the present blocks alone
        outputs = {wrt: [name for name, wrts in asked.items() if wrt in wrts] for wrt in gradients}
        fused = {}
        if not gradients and self._values_native() is not None:
            self._values_native().run(bindings, threads=self.threads, all_tensors=False, fused=fused)
        elif self.compiled is not None:
            # the asked gradients that have fused kernels are computed in the values' pass over pairs
            for wrt in gradients:
                if any(wrt in wrts for _, wrts in self.compiled.fused):
                    fused[wrt] = FusedGradients(self.module, bindings, self.gradient_kernels[wrt], wrt, outputs[wrt],
                                                self.compiled)
            self.compiled.run(bindings, threads=self.threads, all_tensors=bool(gradients), fused=fused)
        else:
            interpreter = Evaluator(self.module, bindings)
            for kernel in self.module.kernels:
                bindings.tensors[kernel.name] = evaluate_kernel(interpreter, kernel)
        for wrt in gradients:
            compute_gradients(self.module, bindings, self.gradient_kernels[wrt], wrt, outputs[wrt],
                              native=self.compiled, fused=fused.get(wrt))
            self.last_gradient_path.update({name: "forward" for name in outputs[wrt]})
        return self._outputs(bindings)

    def _reverse_allowed(self) -> bool:
        return (self.backend != "interpreter" and getattr(self, "reverse_gradients", True)
                and os.environ.get("MTDSL_FORWARD_GRADIENTS", "") not in ("1", "true", "yes"))

    def bind(self, frames, tensormaps: dict) -> Bindings:
        if len(self.module.systems) != 1:
            raise MtdslError("models with several systems inputs are not supported yet")
        systems_name = self.module.systems[0].name
        if is_pyg(frames):  # a PyTorch Geometric Data / Batch: its graphs, read into numpy once
            frames = systems_from_pyg(frames, numpy=True)
        batch = as_batch(frames)
        if batch.is_torch:  # the backends compute in numpy: read torch systems once
            batch = SystemBatch([system.to_numpy() for system in batch.systems])
        check_species_tables(self.module, batch)
        pairs = {p.name: neighbors(batch, p.cutoff, full=p.full) for p in self.module.pairs}
        bindings = Bindings({systems_name: batch}, pairs, self.parameters, dtype=self.dtype.type,
                            sparse=not getattr(self, "dense", False))
        if getattr(self, "run_species", None) is not None:
            bindings.species_present[systems_name] = np.unique(np.asarray(self.run_species, dtype=np.int64))
        check_tensormap_inputs(self.module, tensormaps)
        for declaration in self.module.tensormaps:
            bindings.tensors[declaration.name] = tensormaps[declaration.name]
        if bindings.sparse:  # which blocks and samples the outputs have: the assembly builds only those
            outputs = [o.name for o in self.module.outputs]
            present = module_presence(self.module, bindings, outputs)
            bindings.outputs_present = {name: present[name] for name in outputs if name in present}
            bindings.kernels_present = present
        return bindings

    def _check_gradients(self, gradients: list[str]) -> None:
        for output in self.module.outputs:
            undeclared = [g for g in gradients if g not in output.gradients]
            if undeclared:
                raise MtdslError(
                    f"output {output.name} declares gradients {list(output.gradients) or 'none'}; "
                    f"cannot compute {undeclared}"
                )

    def _outputs(self, bindings: Bindings) -> dict[str, TensorMap]:
        batch = next(iter(bindings.systems.values()))
        inputs = [source for source in batch.sources if source] if hasattr(batch, "sources") else []
        record = make_record("mtdsl.compile", inputs=inputs, backend=self.backend,
                             versions=package_versions(), **self.provenance)
        result = {}
        present = bindings.outputs_present if bindings.sparse else {}
        for output in self.module.outputs:
            tensor = bindings.tensors[output.name]
            if output.name in present:
                tensor = restrict(tensor, present[output.name])
            append_provenance(tensor, record)
            result[output.name] = tensor
        if finite_check_enabled(self):  # never a NaN handed back as a success (runtime/finite.py)
            check_finite(result, batch.sources if hasattr(batch, "sources") else ())
        return result


# -- gradient blocks by reverse mode -------------------------------------------------------------
#: the most columns (components x properties, summed over an output's blocks) an output may have
#: for its gradient blocks to be computed by reverse products: one VJP per column
MAX_REVERSE_COLUMNS = 16
#: the fewest atoms of a batch for which `reverse_gradients=True` takes the reverse path: below,
#: both paths take milliseconds and the products' native library (compiled on the first reverse
#: call, seconds when not in the rendering cache) is not worth building
REVERSE_MIN_ATOMS = 32


def _nodes(value):
    """Every IR node under `value` (expressions, binders, domains, entries), depth first."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, (tuple, list)):
            stack.extend(node)
        elif dataclasses.is_dataclass(node) and not isinstance(node, type):
            yield node
            stack.extend(getattr(node, f.name) for f in dataclasses.fields(node))


#: the domains of a variable that names one atom, pair or system (so: one system)
_ENTITY_DOMAINS = (ir.AtomsDomain, ir.PairsDomain, ir.PairsFrom, ir.SystemsDomain)


def _names_an_entity(expr, domains: dict) -> bool:
    """Whether `expr`, used as an atom / pair / system index, names an entity of one system: a
    variable bound only over atoms, pairs or systems, or a data field read at such an index
    (`P.second[p]`, `S.system[i]`). Constants and range / species variables do not."""
    if isinstance(expr, ir.Var):
        found = domains.get(expr.name)
        return bool(found) and all(isinstance(d, _ENTITY_DOMAINS) for d in found)
    if isinstance(expr, ir.Data):
        return bool(expr.index) and _names_an_entity(expr.index[0], domains)
    return False


def _restricts_to_one_system(where, atom: str, domains: dict) -> bool:
    """Whether `where` has a conjunct `S.system[atom] == x`, x naming one system (a systems
    variable, or the system of an atom / pair variable)."""
    for condition in conjuncts(where):
        if isinstance(condition, ir.Binary) and condition.op == "eq":
            for side, other in ((condition.left, condition.right), (condition.right, condition.left)):
                if (isinstance(side, ir.Data) and side.field == "system" and len(side.index) == 1
                        and isinstance(side.index[0], ir.Var) and side.index[0].name == atom
                        and (isinstance(other, ir.Data) and other.field == "system"
                             or isinstance(other, ir.Var)
                             and all(isinstance(d, ir.SystemsDomain) for d in domains.get(other.name, [None])))
                        and _names_an_entity(other, domains)):
                    return True
    return False


def _is_one_atom(where, atom: str, domains: dict) -> bool:
    """Whether `where` has a conjunct `atom == x`, x naming an atom (`j in atoms(S) where j == i`,
    the central-atom term)."""
    for condition in conjuncts(where):
        if isinstance(condition, ir.Binary) and condition.op == "eq":
            for side, other in ((condition.left, condition.right), (condition.right, condition.left)):
                if isinstance(side, ir.Var) and side.name == atom and _names_an_entity(other, domains):
                    return True
    return False


def per_system(module: ir.Module, name: str) -> bool:
    """Whether each sample of tensor `name` depends on the atoms of one system only, by a
    conservative structural criterion (docs/gradients.md, "Gradient blocks by reverse mode"):

    - its samples are one label, a kernel index over `systems(S)`;
    - in its kernel and every computed tensor it reads (recursively), every sum over
      `atoms(S)` has a condition `S.system[i] == x` (x a systems variable or the system of an
      atom / pair variable), no sum ranges over `systems(S)` or over all the pairs (`P.from(i)`
      is within one system: neighbour lists never cross systems), and every atom, pair or
      system index (the first index of a data field, the samples of a block access) is a
      variable over atoms, pairs or systems or a field read at one (`P.second[p]`): never a
      constant or a range variable (`S.positions[0, x]`, `t[k, n]`).

    Kernel indices over atoms, pairs or systems are per-entry and so within one system. Params
    and input tensormaps are constants. Refusing is always sound (forward mode runs)."""
    kernels = {k.name: k for k in module.kernels}
    kernel = kernels[name]
    if len(kernel.samples) != 1 or not isinstance(kernel.samples[0].expr, ir.Var):
        return False
    index = {b.name: b.domain for b in kernel.indices}.get(kernel.samples[0].expr.name)
    if not isinstance(index, ir.SystemsDomain):
        return False
    for tensor in read_closure(module, [name]):
        everything = list(_nodes((tensor.body, tensor.where, tensor.keys, tensor.samples, tensor.components,
                                  tensor.properties, tensor.indices)))
        domains: dict = {}
        for binder in [n for n in everything if isinstance(n, ir.Binder)]:
            domains.setdefault(binder.name, []).append(binder.domain)
        for node in everything:
            if isinstance(node, ir.Reduce):
                for binder in node.binders:
                    if isinstance(binder.domain, (ir.SystemsDomain, ir.PairsDomain)):
                        return False
                    if isinstance(binder.domain, ir.AtomsDomain) and not _restricts_to_one_system(
                            node.where, binder.name, domains) and not _is_one_atom(node.where, binder.name, domains):
                        return False
            elif isinstance(node, ir.Data):
                if node.index and not _names_an_entity(node.index[0], domains):
                    return False
            elif isinstance(node, ir.BlockRef):
                if not all(_names_an_entity(slot.expr, domains) for slot in node.samples):
                    return False
            elif isinstance(node, ir.PairsFrom):
                if not _names_an_entity(node.atom, domains):
                    return False
    return True


def _all_per_system(model: Model) -> bool:
    """Whether every output of the model is `per_system` (cached on the model)."""
    qualifies = model.__dict__.setdefault("_qualifies", {})
    for output in model.module.outputs:
        if output.name not in qualifies:
            qualifies[output.name] = per_system(model.module, output.name)
        if not qualifies[output.name]:
            return False
    return True


def _reverse_gradients(model: Model, bindings: Bindings, gradients: list[str]) -> bool:
    """Gradient blocks of every output by reverse products, if they all qualify (per-system
    samples, at most MAX_REVERSE_COLUMNS columns) and the products lower; False otherwise (the
    caller then runs forward mode on fresh bindings)."""
    names = [o.name for o in model.module.outputs]
    if not _all_per_system(model):
        return False
    wrt = tuple(w for w, needs in (("positions", {"positions", "strain"}), ("cell", {"strain", "cell"}))
                if needs & set(gradients))
    cache = model.__dict__.setdefault("_products", {})
    if wrt not in cache:
        try:
            cache[wrt] = NativeProducts(model.module, names, model.backend, dtype=model.dtype,
                                        threads=model.threads, wrt=wrt, constants=True)
        except (Unsupported, ValueError, AutodiffError):
            cache[wrt] = None
    products = cache[wrt]
    if products is None:
        return False
    products.threads = model.threads
    try:
        products.run(bindings)
        tensors = {name: bindings.tensors[name] for name in names}
        for name, tensor in tensors.items():
            columns = sum(int(np.prod(block.values.shape[1:], dtype=np.int64)) for block in tensor.blocks())
            if columns > MAX_REVERSE_COLUMNS:
                return False
        found = {}
        for name, tensor in tensors.items():
            found[name] = [_block_products(products, bindings, name, tensor, b) for b in range(len(tensor))]
    except Unsupported:
        return False
    finally:
        products.release(bindings)
    batch = next(iter(bindings.systems.values()))
    for name, tensor in tensors.items():
        for b, block in enumerate(tensor.blocks()):
            for wrt_name in gradients:
                block.add_gradient(wrt_name, _gradient_block(wrt_name, block, tensor, batch, *found[name][b]))
        model.last_gradient_path[name] = "reverse"
    return True


def _block_products(products, bindings, name: str, tensor, b: int):
    """`(positions_bar [columns, atoms, 3], cell_bar [columns, systems, 3, 3])` of block `b` of
    `name`: one VJP per column, the cotangent 1 at that column for every sample."""
    block = tensor.block(b)
    shape = block.values.shape
    columns = int(np.prod(shape[1:], dtype=np.int64))
    zeros = [np.zeros(other.values.shape, dtype=products.dtype) for other in tensor.blocks()]
    positions, cells = [], []
    for c in range(columns):
        cotangent = np.zeros((shape[0], columns), dtype=products.dtype)
        cotangent[:, c] = 1.0
        blocks = list(zeros)
        blocks[b] = cotangent.reshape(shape)
        positions_bar, cell_bar = products.vjp(bindings, {name: blocks})
        positions.append(positions_bar)
        cells.append(cell_bar)
    if not columns:
        batch = next(iter(bindings.systems.values()))
        return (np.zeros((0, batch.n_atoms, 3), dtype=products.dtype),
                np.zeros((0, batch.n_systems, 3, 3), dtype=products.dtype))
    return np.asarray(positions), np.asarray(cells)


def _gradient_block(wrt: str, block, tensor, batch, positions_bar, cell_bar):
    """The gradient block of `block` w.r.t. `wrt` in forward mode's layout (runtime/gradients/forward.py):
    every atom of each sample's system (positions), one row per sample (strain, cell)."""
    systems = np.asarray(block.samples.array[:, 0], dtype=np.int64)
    offsets = np.asarray(batch.atom_offsets, dtype=np.int64)
    columns_shape = block.values.shape[1:]
    taken = set(tensor.component_names)
    direction_names = [n + "_gradient" if n in taken else n for n in DIRECTION_LABELS[wrt]]
    directions = [Labels([n], np.arange(3, dtype=np.int32).reshape(-1, 1)) for n in direction_names]
    if wrt == "positions":
        counts = offsets[systems + 1] - offsets[systems]
        sample = np.repeat(np.arange(len(systems)), counts)
        atoms = np.concatenate([np.arange(offsets[s], offsets[s + 1]) for s in systems]) if len(systems) \
            else np.zeros(0, np.int64)
        rows = np.stack([sample, systems[sample], atoms - offsets[systems[sample]]], axis=1)
        names = ["sample", "system", "atom"]
        values = np.moveaxis(positions_bar[:, atoms, :], 0, -1)  # [rows, 3, columns]
    else:
        rows = np.arange(len(systems)).reshape(-1, 1)
        names = ["sample"]
        cell = cell_bar[:, systems]  # [columns, samples, a, x] = d/dH_ax
        if wrt == "cell":
            values = cell
        else:  # d/d eps_ab = sum_i r_ia d/dr_ib + sum_k H_ka d/dH_kb (r -> r (1 + eps), H -> H (1 + eps))
            positions = np.asarray(batch.positions, dtype=positions_bar.dtype)
            H = np.asarray(batch.cell, dtype=positions_bar.dtype)[systems]
            per_column = []
            for c in range(positions_bar.shape[0]):
                strain = np.einsum("ska,skb->sab", H, cell[c])
                for k, s in enumerate(systems):
                    span = slice(offsets[s], offsets[s + 1])
                    strain[k] += positions[span].T @ positions_bar[c, span]
                per_column.append(strain)
            values = np.asarray(per_column).reshape((-1, len(systems), 3, 3))
        values = np.moveaxis(values, 0, -1)  # [rows, 3, 3, columns]
    values = np.ascontiguousarray(values.reshape(values.shape[:-1] + tuple(columns_shape)))
    return TensorBlock(values, Labels(names, rows.astype(np.int32).reshape(len(rows), len(names)),
                                      assume_unique=True),
                       directions + list(block.components), block.properties)
