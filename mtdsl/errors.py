"""Every error class that crosses a layer of mtdsl, in the one module all layers may import.

Every error a user can provoke is an `MtdslError` (a `ValueError`). This module
imports nothing of mtdsl, so the lowest layer (the data model) and the highest
(the CLI) share one hierarchy. What lives here, and what does not:

- here: the base classes, and each error raised in one package and caught in
  another (`CompileError`: compile -> cli; `RunError`: runtime -> users and
  cli; `Unsupported` and `NativeCompileError`: codegen -> runtime;
  `LoweringError`: ir -> compile; `AutodiffError`: ir -> runtime);
- next to their owner: refinements only that owner raises, each subclassing a
  class here (`StructureError` in `io.structures`, `TorchModelError` in
  `runtime.torch.module`, `ProductUnsupported` in `runtime.gradients.native_products`,
  `EquivarianceError` in `testing`, `NotEqualError` in `ops`), and private
  signals raised and caught inside one module (`NativeFallback`,
  `TooManyPoints`, the parser's `_Unexpected`).

Each class stays importable from where it was first defined
(`mtdsl.CompileError`, `mtdsl.compile.CompileError`,
`mtdsl.runtime.bindings.RunError`, `mtdsl.codegen.schedule.plan.Unsupported`,
`mtdsl.codegen.cache.CompileError`, ...), which re-export it.
"""


class MtdslError(ValueError):
    """Base class of the errors mtdsl raises on bad input."""


class MetadataError(MtdslError):
    """Labels, blocks or tensor maps whose metadata do not fit together."""


class FormatError(MtdslError):
    """A file or buffer that is not a valid `.mts` (or other supported) file."""


# metatensor's name for its error type, so that `except metatensor.MetatensorError` code ported
# to mtdsl catches the same errors
MetatensorError = MtdslError


class CompileError(MtdslError):
    """A program that does not compile; `diagnostics` says where and why.

    The diagnostics are `mtdsl.lang.diagnostics.Diagnostic`s; the message is
    their rendering (each renders itself, so this module needs no import of the
    language front end)."""

    def __init__(self, diagnostics, sources: dict | None = None):
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(d.render(sources=sources, color=False) for d in self.diagnostics)
                         if self.diagnostics else "compilation failed")


class LoweringError(MtdslError):
    """A checked program that the IR cannot express (e.g. a run-time value where a constant is needed)."""


class AutodiffError(MtdslError):
    """A gradient that cannot be computed: no dependence, or a non-differentiable operation."""


class RunError(MtdslError):
    """A model run that cannot go on: missing blocks, unknown species, bad inputs."""


class Unsupported(Exception):
    """This kernel (or expression) has no compiled form; the interpreter evaluates it.

    A signal between codegen and the runtime, not a user error: hence not an `MtdslError`."""


class NativeCompileError(RuntimeError):
    """The C++ compiler is missing or rejected the generated source (`codegen.cache.CompileError`).

    An environment failure, not bad input: hence a `RuntimeError`, not an `MtdslError`."""
