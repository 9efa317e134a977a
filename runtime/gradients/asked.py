"""Which gradient blocks a call asks for: `model(frames, gradients=...)`.

Two forms (docs/gradients.md):

- a list, `gradients=["positions", "strain"]`: every output gets those gradient
  blocks, and every output must declare them (`output X with gradients(...)`);
- a dict, `gradients={"dipole": ["positions"], "charges": []}`: per output; an
  output left out gets none.

An unknown output or gradient name is an error with the closest known name.
"""

from __future__ import annotations

from mtdsl.errors import MtdslError
from mtdsl.ir import nodes as ir
from mtdsl.ir.passes.autodiff import WRT
from mtdsl.suggest import did_you_mean


def asked_gradients(module: ir.Module, gradients) -> dict[str, list[str]]:
    """`{output: [wrt, ...]}` of the outputs' asked gradients, in the module's order, checked
    against what each output declares."""
    declared = {o.name: o.gradients for o in module.outputs}
    if gradients is None:
        return {name: [] for name in declared}
    if isinstance(gradients, str):
        raise MtdslError(f"gradients must be a list of names or a dict {{output: [names]}}, got the string "
                         f"{gradients!r} (write gradients=[{gradients!r}])")
    if isinstance(gradients, dict):
        for name in gradients:
            if name not in declared:
                raise MtdslError(f"gradients: unknown output {name!r}{_hint(name, declared)}; "
                                 f"the outputs are {list(declared)}")
        asked = {name: _names(gradients.get(name) or [], f"output {name}") for name in declared}
    else:
        names = _names(gradients, "gradients")
        asked = {name: names for name in declared}
    for name, wrts in asked.items():
        undeclared = [w for w in wrts if w not in declared[name]]
        if undeclared:
            raise MtdslError(f"output {name} declares gradients {list(declared[name]) or 'none'}; "
                             f"cannot compute {undeclared}")
    return asked


def _names(values, where: str) -> list[str]:
    if isinstance(values, str):
        values = [values]
    names = list(dict.fromkeys(values))
    for value in names:
        if value not in WRT:
            raise MtdslError(f"{where}: unknown gradient {value!r}{_hint(str(value), WRT)}; "
                             f"gradients are taken with respect to {', '.join(WRT)}")
    return names


def _hint(name: str, known) -> str:
    suggestion = did_you_mean(name, list(known))
    return f" ({suggestion})" if suggestion else ""
