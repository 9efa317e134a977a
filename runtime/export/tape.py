"""The tape of an exported model's C++ operator (docs/simulation.md, "The C++ operator"): the
kernel calls of a forward run of one energy output and of its reverse product (VJP) with respect
to the positions and the cell, recorded once at export with every size a function of the atom,
system and pair counts, for `codegen/torch_op.py` to replay in C++.

The tape follows `runtime/gradients/native_products.py` (`NativeProducts.run` for the values, `.vjp` for
the products, the same kernels of the same compiled module) without running it: each kernel
argument (`codegen/schedule/abi.py`) is resolved symbolically, by its type:

- structure (`abi.SystemsField`, `abi.PairsField`) becomes an *input* the exported
  TorchScript module computes from the engine's system and neighbour list
  (`runtime/export/native_module.py`), listed in `Tape.structure`;
- parameters, compile-time tables and species become *constants*, their values taken now;
- grids of earlier kernels and cotangents become *buffers* the driver allocates;
- scalars become counts or literals.

Arguments built from labels (lookup tables of block accesses, gradient rows) cannot be replayed
without the Python runtime: such a program is refused by `TapeError`, naming the kernel and the
access. The tape is built from two systems of different sizes; a literal that differs between
them (a size the tape cannot express) is refused too.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from mtdsl.codegen.schedule import abi
from mtdsl.errors import MtdslError, Unsupported
from mtdsl.ir import nodes as ir
from mtdsl.ir.passes.autodiff import AutodiffError
from mtdsl.ir.passes.products import cotangent_tensor
from mtdsl.ir.roles import RowMap
from mtdsl.systems import System, SystemBatch

from ..bridges.calculator import _is_scalar_per
from ..gradients.native_products import NativeProducts, _parallel_over_an_index

#: structure fields the exported module computes (runtime/export/native_module.py), by argument type
STRUCTURE_FIELDS = {
    abi.SystemsField: ("types", "positions", "system", "atom", "atom_offsets"),
    abi.PairsField: ("first", "second", "system", "first_atom", "second_atom", "cell_shifts", "vectors", "distances",
              "offsets"),
}
INT64_MAX = 2**63 - 1


class TapeError(MtdslError):
    """A program whose kernel calls cannot be replayed without the Python runtime (says which)."""


@dataclass
class Tape:
    """The calls of one output's forward run and VJP. Dims are literals (>= 0) or counts
    (`-1 - k`: k-th of `counts`). An array reference is `(0, k)`: input k (structure first, then
    constants), or `(1, b)`: buffer b. A scalar is `(0, value)` or `(1, dim)`."""

    output: str
    counts: list = field(default_factory=list)  # ("n_atoms",), ("n_systems",), ("n_pairs", P)
    structure: list = field(default_factory=list)  # abi.SystemsField / abi.PairsField inputs computed per call
    constants: list = field(default_factory=list)  # (abi argument or lookup table key, array)
    symbols: list = field(default_factory=list)  # kernel function names, by index
    buffers: list = field(default_factory=list)  # (dims, dtype) of each buffer
    forward: list = field(default_factory=list)  # ops
    backward: list = field(default_factory=list)
    result: int = -1  # buffer of the output's grid
    cotangent: int = -1  # buffer the backward's cotangent is written into
    positions_bar: int = -1
    cell_bar: int = -1

    def signature(self):
        """Everything but the constants' values: equal for two recordings of one program."""
        return (self.counts, self.structure, [d for d, _ in self.constants], self.symbols, self.buffers,
                self.forward, self.backward, self.result, self.cotangent, self.positions_bar, self.cell_bar)


class _Recorder:
    def __init__(self, products, bindings, output: str, species=()):
        self.products = products
        self.compiled = products.compiled
        self.module = products.module
        self.bindings = bindings
        self.tape = Tape(output)
        self.tape.counts = [("n_atoms",), ("n_systems",)] + [("n_pairs", p.name) for p in self.module.pairs]
        self.inputs: dict = {}  # input key -> input index among structure + constants (fixed at the end)
        self.grids: dict = {}  # tensor or stand-in name -> buffer
        self.arguments = self.compiled.arguments_for(bindings)
        self.lookups: dict = {}  # block access key -> (arrays, scalars) of its dense tables
        self.model_species = species

    # -- sizes -----------------------------------------------------------------------------------
    def count(self, key) -> int:
        return -1 - self.tape.counts.index(key)

    def dim(self, domain) -> int:
        systems = self.module.systems[0].name
        if isinstance(domain, ir.AtomsDomain) and domain.systems == systems:
            return self.count(("n_atoms",))
        if isinstance(domain, ir.SystemsDomain) and domain.systems == systems:
            return self.count(("n_systems",))
        if isinstance(domain, ir.PairsDomain) and ("n_pairs", domain.pairs) in self.tape.counts:
            return self.count(("n_pairs", domain.pairs))
        return len(self.bindings.domain_values(domain))

    def buffer(self, dims, dtype="real", fill=()) -> int:
        """A buffer the driver allocates: zeros, or (int64) `fill`: `("iota",)` 0, 1, ...,
        `("dims", dims)` the values of those dims."""
        self.tape.buffers.append((tuple(int(d) for d in dims), dtype, tuple(fill)))
        return len(self.tape.buffers) - 1

    def kernel_of(self, tensor: str):
        """The IR kernel whose grid holds `tensor` (a tensor of the module or a stand-in: the
        cotangent of one, laid out as it is), or None."""
        stand_in = self.products.stand_ins.get(tensor)
        if stand_in is not None:
            return stand_in
        try:
            return self.module.kernel(tensor)
        except (KeyError, ValueError, StopIteration):
            return None

    def strides(self, kernel) -> list:
        """Each grid index's stride, as terms `[(coefficient, (count dims...))]` (one term)."""
        dims = [self.dim(b.domain) for b in kernel.indices]
        strides, literal, counts = [], 1, ()
        for dim in reversed(dims):
            strides.append([(literal, counts)])
            if dim >= 0:
                literal *= dim
            else:
                counts = counts + (dim,)
        return strides[::-1]

    def slot(self, kernel, entry):
        """`(values, grid index of each value or None, stride terms)` of one label slot of a
        kernel entry; values a list of literals, or a count dim (the values 0 .. n - 1 of an atoms,
        pairs or systems index, their own grid index)."""
        if isinstance(entry.expr, ir.Const):
            return [int(entry.expr.value)], [None], None
        names = [b.name for b in kernel.indices]
        if not isinstance(entry.expr, ir.Var) or entry.expr.name not in names:
            return None
        position = names.index(entry.expr.name)
        domain = kernel.indices[position].domain
        stride = self.strides(kernel)[position]
        if isinstance(domain, (ir.AtomsDomain, ir.PairsDomain, ir.SystemsDomain)):
            return self.dim(domain), None, stride
        if not isinstance(domain, (ir.RangeDomain, ir.SpeciesDomain)):
            return None  # an irrep's values depend on another index: no table of one slot
        values = [int(v) for v in self.bindings.domain_values(domain)]
        return values, list(range(len(values))), stride

    def dense_lookup(self, kernel_name: str, argument):
        """The lookup tables of a block access to a tensor the tape holds as a grid, mapping every
        label to its grid point (`codegen/schedule/reads.py: _render_BlockRef` reads `values[base[block] +
        ((row * 1 + c) * 1 ...) * 1 + column]`: the tables hold grid offsets, the shape ones);
        None when the access cannot be made dense this way."""
        key = argument.key
        tensor, bound, sample_slots, component_slots, property_slots = key
        if tensor not in self.grids:
            return None
        if key not in self.lookups:
            self.lookups[key] = self._dense_lookup(self.kernel_of(tensor), key)
        found = self.lookups[key]
        if found is None:
            return None
        if isinstance(argument, abi.BlockTable):
            return found[0].get(argument.field)
        return found[1].get((argument.field, argument.k))

    def _dense_lookup(self, kernel, key):
        tensor, bound, sample_slots, component_slots, property_slots = key
        if kernel is None:
            return None
        arrays, scalars = {"values": (1, self.grids[tensor])}, {}
        entries = {e.label: e for e in kernel.keys}
        if set(entries) - set(bound) and any(not isinstance(entries[k].expr, ir.Const) for k in set(entries) - set(bound)):
            return None
        # keys: every combination of bound key values is a block; base[block] its grid offset
        key_values, key_grid = [], []
        for k, label in enumerate(bound):
            entry = entries.get(label)
            if entry is None:
                return None
            found = self.slot(kernel, entry)
            if found is None:  # a key computed from other entries (center_type = S.type[i]): any species
                species = self.bindings.species(ir.SpeciesDomain(self.module.systems[0].name,
                                                                  tuple(self.model_species)))
                found = ([int(z) for z in species], [None] * len(species), None)
            values, grid, stride = found
            if not isinstance(values, list):
                return None
            key_values.append((values, grid, stride))
        n_blocks = 1
        table_size = 1
        for k, (values, _, _) in enumerate(key_values):
            low, high = min(values), max(values)
            scalars[("key_min", k)] = (0, low)
            scalars[("key_size", k)] = (0, high - low + 1)
            table_size *= high - low + 1
        key_table = np.full(max(table_size, 1), -1, dtype=np.int64)
        base_terms = []
        for block, combination in enumerate(itertools.product(*[range(len(v)) for v, _, _ in key_values])):
            index = 0
            terms = []
            for (values, grid, stride), choice in zip(key_values, combination):
                low, high = min(values), max(values)
                index = index * (high - low + 1) + values[choice] - low
                if grid[choice] is not None:
                    terms += [(coefficient * grid[choice], dims) for coefficient, dims in stride]
            key_table[index] = block
            base_terms.append(terms)
            n_blocks = block + 1
        arrays["key_table"] = self.input(("dense", key, "key_table"), key_table)
        arrays["base"] = (1, self.buffer((len(base_terms),), "int64", ("terms", tuple(map(tuple, base_terms)))))
        width = len(component_slots) + 2
        arrays["shape"] = self.input(("dense", key, "shape"), np.ones(n_blocks * width, dtype=np.int64))
        groups = [("sample", kernel.samples, sample_slots)]
        groups += [(f"component{k}", (entry,), (slot,)) for k, (entry, slot) in
                   enumerate(zip(kernel.components, component_slots))]
        groups.append(("property", kernel.properties, property_slots))
        if len(kernel.components) != len(component_slots):
            return None
        for group, group_entries, slots in groups:
            if len(group_entries) != len(slots) or [e.kind for e in group_entries] != [s[0] for s in slots]:
                return None
            found = [self.slot(kernel, entry) for entry in group_entries]
            if any(f is None for f in found):
                return None
            counted = [f for f in found if not isinstance(f[0], list)]
            if counted:  # one atoms, pairs or systems slot: table[b * n + v] = v * stride
                if len(found) != 1:
                    return None
                dim, _, stride = found[0]
                scalars[(f"{group}_stride", 0)] = (1, dim) if dim < 0 else (0, dim)
                scalars[(f"{group}_min", 0)] = (0, 0)
                scalars[(f"{group}_size", 0)] = (1, dim) if dim < 0 else (0, dim)
                arrays[f"{group}_table"] = (1, self.buffer((n_blocks, dim), "int64",
                                                           ("periodic", dim, tuple(map(tuple, stride)))))
                continue
            total = 1
            for k, (values, _, stride) in enumerate(found):
                if stride is not None and any(dims for _, dims in stride):
                    return None  # a literal slot whose grid stride depends on the counts
                low, high = min(values), max(values)
                scalars[(f"{group}_min", k)] = (0, low)
                scalars[(f"{group}_size", k)] = (0, high - low + 1)
                total *= high - low + 1
            scalars[(f"{group}_stride", 0)] = (0, total)
            row = np.full(max(total, 1), -1, dtype=np.int64)
            for combination in itertools.product(*[range(len(v)) for v, _, _ in found]):
                index, offset = 0, 0
                for (values, grid, stride), choice in zip(found, combination):
                    low, high = min(values), max(values)
                    index = index * (high - low + 1) + values[choice] - low
                    if grid[choice] is not None:
                        offset += grid[choice] * stride[0][0]
                row[index] = offset
            arrays[f"{group}_table"] = self.input(("dense", key, f"{group}_table"), np.tile(row, n_blocks))
        return arrays, scalars

    # -- arguments -------------------------------------------------------------------------------
    def array(self, kernel: str, argument) -> tuple:
        if isinstance(argument, abi.Grid):
            if argument.tensor not in self.grids:
                raise TapeError(f"kernel {kernel} reads the grid of {argument.tensor}, which the export's runs "
                                "do not compute")
            return (1, self.grids[argument.tensor])
        if type(argument) in STRUCTURE_FIELDS:
            source = argument.subject
            if argument.field not in STRUCTURE_FIELDS[type(argument)]:
                raise TapeError(f"kernel {kernel} reads {'systems' if isinstance(argument, abi.SystemsField) else 'pairs'} "
                                f"field {argument.field!r} of {source}, which the exported module does not compute")
            if isinstance(argument, abi.PairsField) and source not in {p.name for p in self.module.pairs}:
                raise TapeError(f"kernel {kernel} reads the pairs {source}, not a neighbour list")
            return self.input(argument, None)
        if isinstance(argument, (abi.SpeciesValues, abi.SpeciesRank, abi.ParamValues, abi.ConstTable)):
            return self.input(argument, np.array(self.arguments.array(argument), copy=True))
        if isinstance(argument, (abi.RowMapArray, abi.Presence)):  # a presence table of size 0 (n_present): every point computed
            return self.input(argument, np.zeros(1, dtype=np.int64))
        found = self.dense_lookup(kernel, argument) if isinstance(argument, abi.BlockTable) else None
        if found is not None:
            return found
        if isinstance(argument, abi.BlockTable):
            what = (f"{argument.key[0]} through a lookup table built from its labels (a block access the export "
                    "cannot make dense)")
        elif isinstance(argument, abi.GradientRowField):
            what = f"the rows of a materialized gradient ({argument.source})"
        elif isinstance(argument, abi.DenseGradient):
            what = f"a materialized gradient ({argument.source})"
        else:
            what = f"{argument!r}"
        raise TapeError(f"kernel {kernel} reads {what}")

    def input(self, key, value) -> tuple:
        """Input `key` (an `abi` argument, or a table of `_dense_lookup`): structure when `value` is None."""
        if key not in self.inputs:
            if value is None:
                self.tape.structure.append(key)
            else:
                self.tape.constants.append((key, value))
            self.inputs[key] = None
        return ("input", key)

    def scalar(self, kernel: str, argument, out_dims) -> tuple:
        if isinstance(argument, abi.AtomCount):
            return (1, self.count(("n_atoms",)))
        if isinstance(argument, abi.SystemCount):
            return (1, self.count(("n_systems",)))
        if isinstance(argument, abi.PairCount):
            if ("n_pairs", argument.source) in self.tape.counts:
                return (1, self.count(("n_pairs", argument.source)))
            if isinstance(argument.source, RowMap):  # a product's target rows: its output's first dim
                return (1, out_dims[0])
            raise TapeError(f"kernel {kernel} counts the rows of {argument.source} (a materialized gradient)")
        if isinstance(argument, abi.PresenceCount):  # the export runs on any structures: no presence table
            return (0, 0)
        if isinstance(argument, abi.DriverRange):
            return (0, 0 if argument.end == 0 else INT64_MAX)
        if isinstance(argument, abi.BlockScalar):
            found = self.dense_lookup(kernel, argument)
            if found is not None:
                return found
            raise TapeError(f"kernel {kernel} reads {argument.key[0]} through a lookup table built from its labels "
                            "(a block access the export cannot make dense)")
        if isinstance(argument, abi.GridSize):
            stand_in = self.products.stand_ins.get(argument.tensor)
            kernel_ir = stand_in if stand_in is not None else self.module.kernel(argument.tensor)
            return (1, self.dim(kernel_ir.indices[argument.axis].domain))
        return (0, int(self.products._scalar(self.arguments, argument)))

    # -- calls -----------------------------------------------------------------------------------
    def call(self, ops: list, name: str, out: int, n_outputs: int = 1, parallel: bool = True) -> None:
        native = self.compiled.kernels.get(name)
        if native is None:
            reason = self.compiled.fallbacks.get(name, "no compiled form") if hasattr(self.compiled, "fallbacks") \
                else "no compiled form"
            raise TapeError(f"kernel {name} has no compiled form ({reason})")
        rendered = native.rendered
        out_dims = self.tape.buffers[out][0]
        arrays = [self.array(name, d) for d in rendered.arrays[n_outputs:]]
        scalars = [self.scalar(name, d, out_dims) for d in rendered.scalars]
        if rendered.symbol not in self.tape.symbols:
            self.tape.symbols.append(rendered.symbol)
        ops.append(("call", self.tape.symbols.index(rendered.symbol), out, n_outputs, arrays, scalars, parallel, name))

    def forward(self, names) -> None:
        for kernel in self.module.kernels:  # every kernel, as NativeProducts.run computes them
            out = self.buffer([self.dim(b.domain) for b in kernel.indices])
            self.call(self.tape.forward, kernel.name, out)
            for part, _ in self.compiled.parts.get(kernel.name, ()):
                more = self.buffer(self.tape.buffers[out][0])
                self.call(self.tape.forward, part.rendered.name, more)
                self.tape.forward.append(("add", out, more))
            self.grids[kernel.name] = out

    def product(self, ops: list, name: str, dims, n_outputs: int = 1) -> int:
        """`NativeProducts._run_product`: one product kernel into a fresh zeroed buffer of `dims`;
        a kernel whose points share entries runs on one thread (its driver range whole)."""
        out = self.buffer(dims)
        self.call(ops, name, out, n_outputs, _parallel_over_an_index(self.compiled.kernels[name].rendered))
        return out

    def products_into(self, ops: list, names, total: int) -> None:
        """`NativeProducts._run_products`: the product kernels `names` (the terms of one gradient)
        added into buffer `total`, by their fused kernel when they have one."""
        names = tuple(names)
        if not names:
            return
        dims = self.tape.buffers[total][0]
        fused = self.products.fused_products.get(names)
        if fused is not None and fused in self.compiled.kernels:
            ops.append(("add", total, self.product(ops, fused, dims, n_outputs=len(names))))
            return
        for name in names:
            ops.append(("add", total, self.product(ops, name, dims)))

    def backward(self, name: str) -> None:
        """`NativeProducts.vjp` of `name` with the cotangent in `tape.cotangent`."""
        products, ops = self.products, self.tape.backward
        tape = self.tape
        tape.positions_bar = self.buffer((self.count(("n_atoms",)), 3))
        tape.cell_bar = self.buffer((self.count(("n_systems",)), 3, 3))
        outputs = {"positions": tape.positions_bar, "cell": tape.cell_bar}
        sizes = {}
        for kernel in self.module.kernels:
            sizes[kernel.name] = tuple(self.dim(b.domain) for b in kernel.indices)
        tape.cotangent = self.buffer(sizes[name])
        grids = {}
        if name in products.through:
            grids[name] = tape.cotangent
        else:
            self.grids[cotangent_tensor(name)] = tape.cotangent
            for wrt in ("positions", "cell"):
                self.products_into(ops, products.vjp_kernels.get((name, wrt), ()), outputs[wrt])
        for tensor in reversed(products._swept()):
            if tensor not in grids:
                continue
            self.grids[cotangent_tensor(tensor)] = grids.pop(tensor)
            for wrt in products.wrt:
                self.products_into(ops, products.direct_vjp.get((tensor, wrt), ()), outputs[wrt])
            for read, kernel, gathered in products.read_vjp.get(tensor, ()):
                found = self.product(ops, kernel, sizes[read] if gathered else (1,) + sizes[read])
                if read not in grids:
                    grids[read] = self.buffer(sizes[read])
                ops.append(("add", grids[read], found))

    def finish(self) -> Tape:
        """Inputs numbered (structure first, then constants), references resolved."""
        tape = self.tape
        order = {d: k for k, d in enumerate(tape.structure + [d for d, _ in tape.constants])}
        for ops in (tape.forward, tape.backward):
            for position, op in enumerate(ops):
                if op[0] == "call":
                    arrays = [(0, order[ref[1]]) if ref[0] == "input" else ref for ref in op[4]]
                    ops[position] = op[:4] + (arrays,) + op[5:]
        return tape


def _record(model, outputs: list, batch) -> tuple[list, str]:
    try:
        products = NativeProducts(model.module, outputs, model.backend, dtype=model.dtype, threads=model.threads,
                                  constants=True)
    except (Unsupported, AutodiffError, ValueError) as error:  # ProductUnsupported is an Unsupported
        raise TapeError(f"the reverse products of {', '.join(outputs)} do not lower: {error}") from None
    bindings = model.bind(batch, {})
    tapes = []
    for output in outputs:
        recorder = _Recorder(products, bindings, output, (model.provenance or {}).get("species") or ())
        recorder.forward([output])
        recorder.tape.result = recorder.grids[output]
        recorder.backward(output)
        tapes.append(recorder.finish())
    return tapes, products.compiled.rendered.source


def record(model, outputs: list) -> tuple[list, str]:
    """`(tapes, module source)`: the tape of each of `outputs` (per-system or per-atom energies)
    of `model` (compiled by the cpp backend), all calling the kernels of the module source; raises
    `TapeError` naming the kernel and access that cannot be replayed."""
    if model.backend != "cpp":
        raise TapeError(f"the C++ operator is built from the cpp backend's code; this model uses {model.backend!r}")
    species = list((model.provenance or {}).get("species") or [])
    for output in outputs:
        kernel = model.module.kernel(output)
        scalar = any(_is_scalar_per(kernel, domain) for domain in (ir.AtomsDomain, ir.SystemsDomain))
        if not scalar or len(kernel.indices) != 1 or not species:
            raise TapeError(f"{output} is not a per-system or per-atom scalar of a model compiled with species")
    recorded = []
    for n_atoms, seed in ((3, 1), (5, 2)):  # two sizes: a literal that differs is a size the tape cannot express
        rng = np.random.default_rng(seed)
        positions = rng.uniform(0.0, 2.5, (n_atoms, 3))
        types = np.asarray([species[k % len(species)] for k in range(n_atoms)], dtype=np.int32)
        system = System(types, positions, 8.0 * np.eye(3), np.array([True, True, False]))
        recorded.append(_record(model, outputs, SystemBatch([system])))
    (tapes, source), (others, _) = recorded
    for tape, other in zip(tapes, others):
        if tape.signature() != other.signature():
            raise TapeError(f"the kernel calls of {tape.output} depend on the system beyond its atom, system and "
                            "pair counts")
    return tapes, source
