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


def _calculator_base():
    from ase.calculators.calculator import Calculator

    return Calculator


class _Restricted:
    """The user's model restricted to some outputs (a model of the same kernels whose other
    outputs are not computed), built once per set of outputs; parameters and threads are copied
    from the user's model at every call. Gradients are computed for the outputs that declare
    them; an output declaring none (the per-atom energies) gives its values only."""

    def __init__(self, model, outputs: tuple[ir.Output, ...]):
        from .model import Model

        class ValuesOfSome(Model):
            def _check_gradients(self, gradients):
                for declared in self.module.outputs:
                    undeclared = [g for g in gradients if declared.gradients and g not in declared.gradients]
                    if undeclared:
                        raise CalculatorError(f"output {declared.name} declares gradients "
                                              f"{list(declared.gradients)}; cannot compute {undeclared}")

        if outputs == model.module.outputs:  # the model itself (its native code already built)
            self.model = model
            return
        module = dataclasses.replace(model.module, outputs=outputs)
        self.model = ValuesOfSome(module, backend=model.backend, dtype=model.dtype, provenance=model.provenance)

    def __call__(self, user, atoms, gradients):
        if self.model is not user:
            self.model.parameters = user.parameters
            self.model.threads = user.threads
        return self.model(atoms, gradients=gradients)


def make_calculator(model, output: str = "energy", per_atom: str | None = None):
    """`model.as_calculator()`: see the module docstring."""
    from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
    from ase.stress import full_3x3_to_voigt_6_stress

    declared = check_energy_output(model.module, output)
    per_atom_name = per_atom or f"{output}_per_atom"
    outputs = {o.name: o for o in model.module.outputs}
    per_atom_output = outputs.get(per_atom_name)
    if per_atom_output is not None and not _is_scalar_per(model.module.kernel(per_atom_name), ir.AtomsDomain):
        if per_atom is not None:
            raise CalculatorError(f"output {per_atom_name!r} is not a per-atom scalar (samples (i) with i in "
                                  "atoms(S), one property): it cannot give per-atom energies")
        per_atom_output = None
    elif per_atom is not None and per_atom_output is None:
        raise CalculatorError(f"the model has no output {per_atom!r} for per-atom energies")
    has_strain = "strain" in declared.gradients

    class MtdslCalculator(Calculator):
        """An ASE calculator over a compiled mtdsl model (runtime/calculator.py)."""

        implemented_properties = ["energy", "free_energy", "forces"] + (["stress"] if has_strain else []) \
            + (["energies"] if per_atom_output is not None else [])

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.model = model
            self.output = output
            self._energy_only = _Restricted(model, (ir.Output(output, declared.gradients),))
            self._with_per_atom = None
            self._parameters_seen = None
            #: model calls made so far (one per geometry and parameter values)
            self.calls = 0

        def check_state(self, atoms, tol=1e-15):
            changes = super().check_state(atoms, tol)
            if self._parameters_seen is not None and _fingerprint(self.model.parameters) != self._parameters_seen:
                changes = list(changes) + ["parameters"]
            return changes

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            atoms = self.atoms
            if "stress" in properties and not has_strain:
                raise PropertyNotImplementedError(
                    f"stress: output {output!r} does not declare gradients(strain)")
            volume = abs(float(np.linalg.det(np.asarray(atoms.cell)))) if atoms.cell.rank == 3 else 0.0
            stress = has_strain and volume > 0
            if "stress" in properties and not stress:
                raise PropertyNotImplementedError("stress needs a cell of three non-zero lattice vectors "
                                                  f"(this cell has rank {atoms.cell.rank})")
            gradients = ["positions"] + (["strain"] if stress else [])
            if "energies" in properties and per_atom_output is not None:
                if self._with_per_atom is None:
                    self._with_per_atom = _Restricted(
                        model, (ir.Output(output, declared.gradients), ir.Output(per_atom_name, ())))
                results = self._with_per_atom(model, atoms, gradients)
            else:
                results = self._energy_only(model, atoms, gradients)
            self.calls += 1
            self._parameters_seen = _fingerprint(model.parameters)
            block = results[output].block()
            energy = float(np.asarray(block.values).reshape(-1)[0])
            self.results["energy"] = energy
            self.results["free_energy"] = energy
            self.results["forces"] = -_positions_gradient(block.gradient("positions"), len(atoms))
            if stress:
                strain = np.asarray(block.gradient("strain").values).reshape(3, 3)
                self.results["stress"] = full_3x3_to_voigt_6_stress(strain / volume)
            if per_atom_name in results:
                self.results["energies"] = np.asarray(results[per_atom_name].block().values).reshape(-1).copy()

    return MtdslCalculator()


def _positions_gradient(gradient, n_atoms: int) -> np.ndarray:
    """dE/dr `[n_atoms, 3]` from a positions gradient block of one system's scalar."""
    values = np.asarray(gradient.values).reshape(len(gradient.samples), 3)
    atoms = np.asarray(gradient.samples.column("atom"), dtype=np.int64)
    result = np.zeros((n_atoms, 3))
    np.add.at(result, atoms, values)
    return result
