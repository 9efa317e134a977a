"""`mtdsl compile --emit nest`: the loop nest of every kernel the native backends compile.

The same lowering the C++ backend prints (`schedule/kernel.py`), shown in the
nest's text form (`nest.text`): the helper routines first, then each kernel
and fused kernel in the order they are rendered; a kernel with no native form
is named with the reason (the interpreter runs it).
"""

from __future__ import annotations

from mtdsl.ir import nodes as ir

from . import nest
from .kernel import ModuleLowering


def render(module: ir.Module) -> str:
    """The text of `mtdsl compile --emit nest`."""
    lowering = ModuleLowering(module)
    kernels, unsupported = lowering.lower()
    parts = [nest.text(routine) for routine in lowering.routines.values()]
    parts += [nest.text(lowered.nest) for lowered in kernels.values()]
    parts += [f"# {name}: no compiled form ({reason}); the interpreter runs it" for name, reason in unsupported.items()]
    return "\n\n".join(parts)
