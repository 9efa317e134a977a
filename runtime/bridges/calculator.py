"""`model.as_calculator(output="energy")`: a compiled model as an ASE calculator.

The output must be a per-system scalar (one block, one sample per system, one property, no
components) declaring `gradients(positions)`; `strain` too for the stress. Every new geometry
costs one model call, which computes the energy and its gradient blocks together: forces are
`-dE/dr` from the positions gradient block, the stress the strain gradient block divided by the
cell's volume (ASE's sign and Voigt order), for any periodicity ASE's `pbc` gives (molecules,
crystals, slabs). The parameters are the model's at call time: training the model (or loading a
file into it) changes what the calculator computes, without a new calculator.

Per-atom energies (`energies`) come from a second output of the program, named
`{output}_per_atom` by default (`per_atom=` names another): a tensor sampled by the atoms of the
systems input with one property. They are computed in the same call when asked for.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from mtdsl.errors import MtdslError
from mtdsl.ir import nodes as ir



class CalculatorError(MtdslError):
    """A model that cannot be an ASE calculator over the output asked (says why)."""


def _is_scalar_per(kernel: ir.TensorKernel, domain_type) -> bool:
    """Whether `kernel` is one block of one property, no components, one sample per entity of
    `domain_type` (systems or atoms)."""
    indices = {b.name: b.domain for b in kernel.indices}
    if any(not isinstance(entry.expr, ir.Const) for entry in kernel.keys + kernel.properties):
        return False
    if kernel.components or len(kernel.properties) != 1 or len(kernel.samples) != 1:
        return False
    sample = kernel.samples[0].expr
    return isinstance(sample, ir.Var) and isinstance(indices.get(sample.name), domain_type)


def check_energy_output(module: ir.Module, output: str) -> ir.Output:
    """The module's `output`, if it is a per-system scalar with positions gradients; else a
    CalculatorError that says what is missing."""
    outputs = {o.name: o for o in module.outputs}
    if output not in outputs:
        raise CalculatorError(f"the model has no output {output!r}: its outputs are {sorted(outputs)}")
    if not _is_scalar_per(module.kernel(output), ir.SystemsDomain):
        raise CalculatorError(
            f"output {output!r} is not a per-system scalar (one block, samples (s) with s in systems(S), "
            "one property, no components): an ASE calculator needs an energy per system")
    if "positions" not in outputs[output].gradients:
        raise CalculatorError(f"output {output!r} declares gradients {list(outputs[output].gradients) or 'none'}: "
                              f"forces need `output {output} with gradients(positions)` (and strain for stress)")
    return outputs[output]


def _fingerprint(parameters: dict) -> str:
    digest = hashlib.sha1()
    for name in sorted(parameters):
        value = np.ascontiguousarray(parameters[name])
        digest.update(name.encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


class _Restricted:
    """The user's model restricted to some outputs (a model of the same kernels whose other
    outputs are not computed: the energy alone keeps the reverse-mode gradient path), built once
    per set of outputs; parameters and threads are copied from the user's model at every call."""

    def __init__(self, model, outputs: tuple[ir.Output, ...]):
        if outputs == model.module.outputs:  # the model itself (its native code already built)
            self.model = model
            return
        module = dataclasses.replace(model.module, outputs=outputs)
        # the class of the given model (runtime.model.Model imports this module: no import back)
        self.model = type(model)(module, backend=model.backend, dtype=model.dtype, provenance=model.provenance)

    def __call__(self, user, atoms, gradients):
        if self.model is not user:
            self.model.parameters = user.parameters
            self.model.threads = user.threads
        return self.model(atoms, gradients=gradients)


class MtdslCalculator(Calculator):
    """An ASE calculator over a compiled mtdsl model's per-system scalar output (module docstring).

    `calls` counts the model calls (one per geometry and parameter values)."""

    def __init__(self, model, output: str = "energy", per_atom: str | None = None, **kwargs):
        declared = check_energy_output(model.module, output)
        self.model = model
        self.output = output
        self.per_atom = _per_atom_output(model.module, output, per_atom)
        self.has_strain = "strain" in declared.gradients
        self.implemented_properties = ["energy", "free_energy", "forces"] \
            + (["stress"] if self.has_strain else []) + (["energies"] if self.per_atom else [])
        super().__init__(**kwargs)
        self._energy_only = _Restricted(model, (ir.Output(output, declared.gradients),))
        self._with_per_atom = _Restricted(model, (ir.Output(output, declared.gradients),
                                                  ir.Output(self.per_atom, ()))) if self.per_atom else None
        self._parameters_seen = None
        self.calls = 0

    def check_state(self, atoms, tol=1e-15):
        changes = super().check_state(atoms, tol)
        if self._parameters_seen is not None and _fingerprint(self.model.parameters) != self._parameters_seen:
            changes = list(changes) + ["parameters"]
        return changes

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        if "stress" in properties and not self.has_strain:
            raise PropertyNotImplementedError(f"stress: output {self.output!r} does not declare gradients(strain)")
        volume = abs(float(np.linalg.det(np.asarray(atoms.cell)))) if atoms.cell.rank == 3 else 0.0
        stress = self.has_strain and volume > 0
        if "stress" in properties and not stress:
            raise PropertyNotImplementedError("stress needs a cell of three non-zero lattice vectors "
                                              f"(this cell has rank {atoms.cell.rank})")
        gradients = ["positions"] + (["strain"] if stress else [])
        with_per_atom = "energies" in properties and self.per_atom is not None
        # gradients of the energy only: the per-atom energies are values
        results = (self._with_per_atom if with_per_atom else self._energy_only)(self.model, atoms,
                                                                                {self.output: gradients})
        self.calls += 1
        self._parameters_seen = _fingerprint(self.model.parameters)
        block = results[self.output].block()
        energy = float(np.asarray(block.values).reshape(-1)[0])
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["forces"] = -_positions_gradient(block.gradient("positions"), len(atoms))
        if stress:
            strain = np.asarray(block.gradient("strain").values).reshape(3, 3)
            self.results["stress"] = full_3x3_to_voigt_6_stress(strain / volume)
        if with_per_atom:
            # an atom whose energy is absent (docs/language.md, "Sparsity": no neighbour, say) has none: 0
            per_atom = results[self.per_atom]
            energies = np.zeros(len(atoms))
            if len(per_atom):
                block = per_atom.block()
                atom = np.asarray(block.samples.column("atom"), dtype=np.int64)
                energies[atom] = np.asarray(block.values).reshape(-1)
            self.results["energies"] = energies


def _per_atom_output(module: ir.Module, output: str, per_atom: str | None) -> str | None:
    """The per-atom energies output: `per_atom` (an error when it is not one), else
    `{output}_per_atom` when the program has such a per-atom scalar, else None."""
    name = per_atom or f"{output}_per_atom"
    if name not in {o.name for o in module.outputs}:
        if per_atom is not None:
            raise CalculatorError(f"the model has no output {per_atom!r} for per-atom energies")
        return None
    if not _is_scalar_per(module.kernel(name), ir.AtomsDomain):
        if per_atom is not None:
            raise CalculatorError(f"output {name!r} is not a per-atom scalar (samples (i) with i in atoms(S), "
                                  "one property): it cannot give per-atom energies")
        return None
    return name


def make_calculator(model, output: str = "energy", per_atom: str | None = None) -> MtdslCalculator:
    """`model.as_calculator()`: see the module docstring."""
    return MtdslCalculator(model, output, per_atom)


def _positions_gradient(gradient, n_atoms: int) -> np.ndarray:
    """dE/dr `[n_atoms, 3]` from a positions gradient block of one system's scalar."""
    values = np.asarray(gradient.values).reshape(len(gradient.samples), 3)
    atoms = np.asarray(gradient.samples.column("atom"), dtype=np.int64)
    result = np.zeros((n_atoms, 3))
    np.add.at(result, atoms, values)
    return result
