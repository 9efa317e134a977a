"""The torch operators an exported model calls (runtime/export/atomistic.py): `mtdsl_export::energy`.

An exported `AtomisticModel` is TorchScript; its forward calls

    torch.ops.mtdsl_export.energy(blob, key, positions, cell, types, pbc, pairs, selected, per_atom)

which runs the compiled model on one system with the engine's own neighbour lists (`pairs`: the
samples of each requested full list, `[first, second, a, b, c]`, filtered here to the program's
cutoffs and oriented as its half lists need) and returns the energy (of the `selected` atoms)
or the per-atom energies, together with their gradient rows with respect to the positions and
the cell, from the same model call. Its autograd formula contracts those rows with the
cotangent, so the engine's `backward()` gives forces and virials.

The operator runs the model through mtdsl's Python runtime (the native kernels of the model's
backend, in process): an engine that hosts Python (ASE, i-PI, torch-sim, any Python driver)
runs models exported with it; one that does not (LAMMPS, GROMACS) needs the C++ operator
(runtime/export/cpp.py), which the export uses wherever the program allows: this one is the
fallback for the programs it refuses. `blob` is the pickled model (no native code;
rebuilt from the kernel cache on first use), `key` its sha256: the model is unpickled once per
process and key.
"""

from __future__ import annotations

import dataclasses
import functools
import pickle
from typing import List

import numpy as np
import torch

from mtdsl._version import __version__
from mtdsl.ir import nodes as ir
from mtdsl.systems import System, SystemBatch
from mtdsl.systems.neighbors import Pairs, _canonical_half, pair_vectors

from ..bindings import Bindings

_MODELS: dict = {}  # key -> _Evaluator


class _Evaluator:
    """A model whose energy (and per-atom energy) outputs declare positions and cell gradients,
    run on one system with neighbour lists given by the engine."""

    def __init__(self, spec: dict):
        model = spec["model"]
        self.source = model
        self.output = spec["output"]
        self.per_atom = spec.get("per_atom")
        self._models: dict = {}

    def model(self, with_per_atom: bool):
        """The model computing the energy (and the per-atom energies), both with positions and
        cell gradients, on the engine's neighbour lists; built on first use (its native code from
        the kernel cache)."""
        if with_per_atom not in self._models:
            source = self.source
            outputs = [ir.Output(self.output, ("positions", "cell"))]
            if with_per_atom:
                outputs.append(ir.Output(self.per_atom, ("positions", "cell")))
            module = dataclasses.replace(source.module, outputs=tuple(outputs))
            model = _given_pairs_model(type(source))(module, backend=source.backend, dtype=source.dtype,
                                                     provenance=source.provenance)
            model.parameters = source.parameters
            model.threads = source.threads
            self._models[with_per_atom] = model
        return self._models[with_per_atom]

    def run(self, positions, cell, types, pbc, pairs: List[torch.Tensor], selected, per_atom: bool):
        dtype = self.source.dtype
        system = System(types.numpy().astype(np.int32), positions.detach().numpy().astype(dtype),
                        cell.detach().numpy().astype(dtype), pbc.numpy().astype(bool))
        batch = SystemBatch([system])
        selected = selected.numpy().astype(bool)
        whole = bool(selected.all()) and not per_atom
        if not whole and self.per_atom is None:
            raise RuntimeError(
                f"per-atom energies or a selection of atoms need a per-atom output: the program has no "
                f"`{self.output}_per_atom` output (docs/simulation.md)")
        model = self.model(with_per_atom=not whole)
        model.given_pairs = {declaration.name: _program_pairs(batch, declaration, samples.numpy())
                             for declaration, samples in zip(self.source.module.pairs, pairs)}
        outputs = model(batch, gradients=["positions", "cell"])
        if whole:
            found = _energy_rows(outputs[self.output].block())
        else:
            found = _selected_rows(outputs[self.per_atom].block(), selected, per_atom)
        return [torch.from_numpy(np.ascontiguousarray(array)).to(positions.dtype if array.dtype.kind == "f"
                                                                  else torch.int64)
                for array in found]


def _energy_rows(block):
    """`(values [1], rows [R, 3], their sample [R], their atom [R], cell rows [1, 3, 3])` of a
    per-system energy of one system."""
    gradient = block.gradient("positions")
    return (np.asarray(block.values).reshape(1), np.asarray(gradient.values).reshape(-1, 3),
            np.asarray(gradient.samples.column("sample"), dtype=np.int64),
            np.asarray(gradient.samples.column("atom"), dtype=np.int64),
            np.asarray(block.gradient("cell").values).reshape(-1, 3, 3))


def _selected_rows(block, selected: np.ndarray, per_atom: bool):
    """The rows of `_energy_rows` from the per-atom energies `block`: the energy of the selected
    atoms (`per_atom=False`), or one value per atom, zero for those not selected."""
    n_atoms = len(selected)
    atoms = np.asarray(block.samples.column("atom"), dtype=np.int64)
    energies = np.zeros(n_atoms)
    energies[atoms] = np.asarray(block.values).reshape(-1)
    keep = selected[atoms]  # which rows of the block are selected atoms
    gradient = block.gradient("positions")
    sample = np.asarray(gradient.samples.column("sample"), dtype=np.int64)
    rows = np.asarray(gradient.values).reshape(-1, 3)
    atom = np.asarray(gradient.samples.column("atom"), dtype=np.int64)
    inside = keep[sample]
    cell_block = block.gradient("cell")
    cell_sample = np.asarray(cell_block.samples.column("sample"), dtype=np.int64)
    cell_values = np.where(keep[cell_sample][:, None, None], np.asarray(cell_block.values).reshape(-1, 3, 3), 0.0)
    if per_atom:  # the output's rows are the atoms
        cell_rows = np.zeros((n_atoms, 3, 3))
        np.add.at(cell_rows, atoms[cell_sample], cell_values)
        return np.where(selected, energies, 0.0), rows[inside], atoms[sample[inside]], atom[inside], cell_rows
    return (np.asarray([energies[selected].sum()]), rows[inside], np.zeros(int(inside.sum()), np.int64),
            atom[inside], cell_values.sum(axis=0, keepdims=True))


@functools.lru_cache(maxsize=None)
def _given_pairs_model(model_class: type) -> type:
    """`model_class` (runtime.model.Model, the class of the exported model: this module does not
    import it, runtime/model.py reaches this one through `Model.export`) run on the neighbour lists
    an engine gives (`given_pairs`, set before each call) instead of its own."""
    return type("_GivenPairsModel", (model_class,), {"given_pairs": {}, "bind": _bind_given_pairs})


def _bind_given_pairs(self, frames, tensormaps):
    """`Model.bind` on the engine's neighbour lists."""
    # fresh Pairs at every bind: a run may keep state on them
    pairs = {name: Pairs(frames, p.cutoff, p.full, p.first, p.second, p.cell_shifts)
             for name, p in self.given_pairs.items()}
    return Bindings({self.module.systems[0].name: frames}, pairs, self.parameters, dtype=self.dtype.type)


def _program_pairs(batch, declaration: ir.PairsDecl, samples: np.ndarray):
    """The program's pairs `declaration` from an engine's full list (`[first, second, a, b, c]`
    rows, possibly with a skin beyond the cutoff): those closer than the cutoff, oriented as
    mtdsl's half lists when the program asks for one, sorted as `neighbors()` sorts."""
    samples = np.asarray(samples, dtype=np.int64).reshape(-1, 5)
    first, second, shifts = samples[:, 0], samples[:, 1], samples[:, 2:5].astype(np.int32)
    vectors = pair_vectors(np.asarray(batch.positions), np.asarray(batch.cell)[0], first, second, shifts)
    distance = np.linalg.norm(vectors, axis=1)
    keep = (distance < declaration.cutoff) & (distance > 0)
    first, second, shifts = first[keep], second[keep], shifts[keep]
    if not declaration.full:
        oriented_first, _, oriented_shifts = _canonical_half(first, second, shifts)
        own = (oriented_first == first) & (oriented_shifts == shifts).all(axis=1)
        first, second, shifts = first[own], second[own], shifts[own]
    order = np.lexsort((shifts[:, 2], shifts[:, 1], shifts[:, 0], second, first))
    return Pairs(batch, declaration.cutoff, declaration.full, first[order], second[order], shifts[order])


def _evaluator(blob: torch.Tensor, key: str) -> _Evaluator:
    if key not in _MODELS:
        try:
            spec = pickle.loads(blob.numpy().tobytes())
        except Exception as error:  # a model pickled by another mtdsl whose classes moved
            raise RuntimeError(f"this exported model cannot be read by mtdsl {__version__} ({error}): "
                               "export it again with the mtdsl installed here") from None
        if spec.get("mtdsl") != __version__:
            import warnings

            warnings.warn(f"model exported by mtdsl {spec.get('mtdsl')}, run by mtdsl {__version__}",
                          stacklevel=2)
        _MODELS[key] = _Evaluator(spec)
    return _MODELS[key]


@torch.library.custom_op("mtdsl_export::energy", mutates_args=())
def energy(blob: torch.Tensor, key: str, positions: torch.Tensor, cell: torch.Tensor, types: torch.Tensor,
           pbc: torch.Tensor, pairs: List[torch.Tensor], selected: torch.Tensor,
           per_atom: bool) -> List[torch.Tensor]:
    """`[values, gradient rows [R, 3], their sample [R], their atom [R], cell rows [n, 3, 3]]`."""
    return _evaluator(blob, key).run(positions, cell, types, pbc, pairs, selected, per_atom)


@energy.register_fake
def _energy_fake(blob, key, positions, cell, types, pbc, pairs, selected, per_atom):
    n = positions.shape[0] if per_atom else 1
    rows = torch.library.get_ctx().new_dynamic_size()
    return [positions.new_empty(n), positions.new_empty(rows, 3), positions.new_empty(rows, dtype=torch.int64),
            positions.new_empty(rows, dtype=torch.int64), positions.new_empty(n, 3, 3)]


def _setup(ctx, inputs, output):
    _, _, positions, _, _, _, pairs, _, _ = inputs
    _, rows, sample, atom, cell_rows = output
    ctx.save_for_backward(rows, sample, atom, cell_rows)
    ctx.n_atoms = positions.shape[0]
    ctx.n_pairs = len(pairs)


def _backward(ctx, grads):
    rows, sample, atom, cell_rows = ctx.saved_tensors
    cotangent = grads[0]
    if cotangent is None:
        cotangent = rows.new_zeros(cell_rows.shape[0])
    positions_bar = rows.new_zeros(ctx.n_atoms, 3).index_add_(0, atom, rows * cotangent[sample].unsqueeze(1))
    cell_bar = (cell_rows * cotangent.reshape(-1, 1, 1)).sum(dim=0)
    return None, None, positions_bar, cell_bar, None, None, [None] * ctx.n_pairs, None, None


energy.register_autograd(_backward, setup_context=_setup)
