"""`mtdsl compile --emit nest`: the loop nests a backend printed its module from, as text.

Each backend records it while it renders (`RenderedModule.nest`, `RenderedKernel.nest`), from
the very nests it prints (`schedule/kernel.py: ModuleLowering`), so what `--emit nest` shows is
what the library was built from: the helper routines first, then each kernel and fused kernel
in the order they are rendered; a kernel with no native form is named with the reason (the
interpreter runs it).
"""

from __future__ import annotations

from . import nest


def kernel_text(lowered) -> str:
    """The text of one lowered kernel (`schedule/kernel.py: LoweredKernel`)."""
    return nest.text(lowered.nest)


def module_text(routines, kernels: dict, unsupported: dict) -> str:
    """The text of `mtdsl compile --emit nest`: the `routines` (`nest.Routine`), then the
    `kernels` (`RenderedKernel`s with their `.nest` text) and the `unsupported` ones with their reason."""
    parts = [nest.text(routine) for routine in routines]
    parts += [kernel.nest for kernel in kernels.values()]
    parts += [f"# {name}: no compiled form ({reason}); the interpreter runs it" for name, reason in unsupported.items()]
    return "\n\n".join(parts)
