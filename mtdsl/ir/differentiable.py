"""E309: a declared gradient that cannot be computed, found before anything runs.

Derivatives are branchwise (`mtdsl/ir/passes/autodiff.py`): comparisons, `?:`, `where`,
`min`/`max`/`clamp`/`abs`/`relu`, `floor`/`round` and `%` are differentiable
almost everywhere, so what remains is an output that does not depend on the
input of a gradient it declares (`output t with gradients(positions)` of a
tensor of the species only). `mtdsl check` and `mtdsl.compile` report it at the
`output` statement, with file, line and column.
"""

from __future__ import annotations

from mtdsl.lang import program as P
from mtdsl.lang.diagnostics import Diagnostic

from . import nodes as ir
from .passes.autodiff import AutodiffError, differentiate
from .lower import LoweringError, lower


def gradient_diagnostics(program: P.Program, module: ir.Module | None = None) -> list[Diagnostic]:
    """E309 for each output and declared gradient that has no derivative; `module` is the
    lowered program when the caller has it (else it is lowered here, without species)."""
    if module is None:
        try:
            module = lower(program)
        except LoweringError:
            return []  # compile reports it
    found = []
    for name, output in program.outputs.items():
        for wrt in output.gradients:
            try:
                differentiate(module, wrt, [name])
            except AutodiffError as error:
                message = str(error)
                hint = None if "remove" in message else f"remove `{wrt}` from the output's `with gradients(...)`"
                found.append(Diagnostic.at(output.span, "E309", message, hint=hint))
    return found
