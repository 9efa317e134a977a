"""The `.mt` language front end: parse, resolve, check.

- :func:`check` (``mtdsl.check``): every diagnostic of a file;
- :func:`load`: the resolved, typed :class:`~mtdsl.lang.program.Program`
  of a file without errors (raises :class:`CheckError`), for the compiler;
- :func:`resolve`: ``(Program | None, diagnostics)`` after name resolution only;
- :func:`parse` / :func:`deparse`: text <-> syntax tree.
"""

from .ast import deparse
from .check import CheckError, analyse, check, check_source, load
from .check_dims import params_needing_species
from .diagnostics import Diagnostic, render
from .parse import ParseError, parse, parse_module
from .program import Program
from .resolve import resolve

__all__ = [
    "CheckError", "Diagnostic", "ParseError", "analyse", "check", "check_source", "deparse", "load",
    "Program", "params_needing_species", "parse", "parse_module", "render", "resolve",
]
