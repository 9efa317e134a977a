"""The walk the checks of a resolved program share (:mod:`.check_dims`, :mod:`.equivariance`).

A check reads the :class:`~mtdsl.lang.program.Program` and reports what is
wrong through one :class:`~mtdsl.lang.diagnostics.Reporter`; it visits every
param, then every let, then every tensor, in the order they were written.
"""

from __future__ import annotations

from . import program as P
from .diagnostics import Reporter


class ProgramChecker:
    """Subclasses say what to check of a param, a let and a tensor."""

    def __init__(self, program: P.Program, reporter: Reporter):
        self.program = program
        self.reporter = reporter

    def error(self, code, span, message, hint=None):
        self.reporter.error(code, span, message, hint)

    def run(self) -> None:
        for param in self.program.params.values():
            self.param(param)
        for let in self.program.lets.values():
            self.let(let)
        for tensor in self.program.tensors.values():
            self.tensor(tensor)

    def param(self, param: P.Param) -> None:
        raise NotImplementedError

    def let(self, let: P.Let) -> None:
        raise NotImplementedError

    def tensor(self, tensor: P.Tensor) -> None:
        raise NotImplementedError
